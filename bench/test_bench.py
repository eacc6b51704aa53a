#!/usr/bin/env python3
"""Unit tests of the harness's own logic (no server, no SIPp):
    python3 bench/test_bench.py
"""

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


class StatParsing(unittest.TestCase):
    def test_last_row_of_sipp_stat_csv(self):
        header = ("StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);OutgoingCall(C);"
                  "SuccessfulCall(C);FailedCall(C);Retransmissions(C);OutOfCallMsgs(C);")
        row1 = ("2026-11-24\t05:56:03.496119\t1795499763.496119;x;2026-11-24\t05:56:04.0\t1795499764.0;"
                "00:00:01;00:00:01;10;9;0;0;0;")
        row2 = ("2026-11-24\t05:56:03.496119\t1795499763.496119;x;2026-11-24\t05:56:08.996119\t1795499768.996119;"
                "00:00:05;00:00:05;50;48;2;3;1;")
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write(header + "\n" + row1 + "\n" + row2 + "\n")
        c = bench.sipp_counts(bench.parse_sipp_stat(Path(f.name)))
        self.assertEqual(c["successful"], 48)
        self.assertEqual(c["failed"], 2)
        self.assertEqual(c["retransmissions"], 3)
        self.assertEqual(c["out_of_call_msgs"], 1)
        self.assertAlmostEqual(c["elapsed_s"], 5.5, places=3)

    def test_missing_stat_file_gives_zeros(self):
        c = bench.sipp_counts(bench.parse_sipp_stat(Path("/nonexistent/stat.csv")))
        self.assertEqual(c["successful"], 0)
        self.assertIsNone(c["elapsed_s"])


class Percentiles(unittest.TestCase):
    def test_nearest_rank(self):
        v = sorted(float(i) for i in range(1, 101))
        self.assertEqual(bench.percentile(v, 50), 50.0)
        self.assertEqual(bench.percentile(v, 99), 99.0)
        self.assertEqual(bench.percentile(v, 100), 100.0)
        self.assertIsNone(bench.percentile([], 50))

    def test_sipp_prints_zero_as_empty(self):
        self.assertEqual(bench.sipp_float(""), 0.0)
        self.assertEqual(bench.sipp_float("1500.000000"), 1500.0)


class RoundAttribution(unittest.TestCase):
    pubs = {1: 100.0, 2: 101.0, 3: 102.0}

    def test_marker_mode_counts_each_watcher_once_per_round(self):
        n = [(100.01, "1", 1), (100.02, "2", 1), (100.03, "1", 1),  # duplicate for watcher 1
             (101.01, "1", 2), (102.05, "2", 3)]
        mode, ntf = bench.attribute_rounds(self.pubs, n)
        self.assertEqual(mode, "marker")
        self.assertEqual(sorted(ntf[1]), [100.01, 100.02])
        self.assertEqual(ntf[2], [101.01])
        self.assertEqual(ntf[3], [102.05])

    def test_time_window_mode_without_markers(self):
        n = [(99.5, "1", None),                      # before the first PUBLISH: ignored
             (100.01, "1", None), (100.02, "2", None), (100.5, "1", None),
             (101.02, "2", None), (102.01, "1", None), (102.02, "2", None)]
        mode, ntf = bench.attribute_rounds(self.pubs, n)
        self.assertEqual(mode, "time-window")
        self.assertEqual(sorted(ntf[1]), [100.01, 100.02])
        self.assertEqual(ntf[2], [101.02])          # watcher 1 missed round 2
        self.assertEqual(sorted(ntf[3]), [102.01, 102.02])


class Users(unittest.TestCase):
    def test_deterministic_users_and_sipp_auth_field(self):
        a, b = bench.make_users(3), bench.make_users(3)
        self.assertEqual([u.name for u in a], ["user0000", "user0001", "user0002"])
        self.assertEqual([u.password for u in a], [u.password for u in b])
        self.assertTrue(a[0].password.isalnum())
        self.assertEqual(a[1].auth_field(), f"[authentication username=user0001 password={a[1].password}]")
        self.assertEqual(len(a[0].ha1()), 32)


class KamailioConfigs(unittest.TestCase):
    def test_every_placeholder_is_known(self):
        known = {"PORT", "DOMAIN", "CHILDREN", "AUTH_DB_URL", "PRESENCE_DB_URL"}
        import re
        for scenario in bench.SCENARIOS:
            text = (bench.KAMAILIO_DIR / f"{scenario}.cfg").read_text()
            found = set(re.findall(r"@@([A-Z_]+)@@", text))
            self.assertTrue(found <= known, (scenario, found - known))
            self.assertIn("PORT", found)


class Markdown(unittest.TestCase):
    def test_skipped_switchboard_is_reported_and_ratio_na(self):
        result = {
            "scenario": "register", "started": "t", "machine": {"cpus": 2, "kernel": "k"},
            "params": {"rate": 100.0, "duration": 1.0, "warmup": 0.0, "users": 10},
            "servers": {"switchboard": {"status": "skipped", "reason": "binary not found at X"}},
            "ratio_note": "not measured: switchboard skipped",
        }
        md = bench.markdown(result)
        self.assertIn("| switchboard | skipped: binary not found at X |", md)
        self.assertIn("n/a", md)


if __name__ == "__main__":
    unittest.main()
