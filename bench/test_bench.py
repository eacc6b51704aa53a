#!/usr/bin/env python3
"""Unit tests of the harness's own logic (no server, no SIPp):
    python3 bench/test_bench.py
"""

import contextlib
import io
import os
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


class SubscriptionMemory(unittest.TestCase):
    @staticmethod
    def point(pss, rss, procs=1):
        return {"pss_kb": pss, "rss_sum_kb": rss, "pss_samples_kb": [pss] * 3, "processes": procs,
                "idle": True, "settle_s": 0.5}

    def test_kib_per_subscription(self):
        self.assertEqual(bench.kib_per_subscription(80_000, 84_096, 1000), 4.1)
        self.assertEqual(bench.kib_per_subscription(80_000, 80_000, 1000), 0.0)
        self.assertEqual(bench.kib_per_subscription(80_000, 79_000, 2000), -0.5)  # memory given back
        self.assertIsNone(bench.kib_per_subscription(80_000, 84_096, 0))
        self.assertIsNone(bench.kib_per_subscription(None, 84_096, 1000))

    def test_record_and_line_under_the_presence_table(self):
        sm = bench.subscription_memory(self.point(75_000, 400_000, 8), self.point(78_000, 424_000, 8), 1000,
                                       held=dict(self.point(77_500, 420_000, 8), hold_s=40.0))
        self.assertEqual(sm["delta_pss_kb"], 3000)
        self.assertEqual(sm["kib_per_subscription"], 3.0)
        self.assertEqual(sm["rss_sum_kib_per_subscription"], 24.0)
        self.assertEqual(sm["kib_per_subscription_held"], 2.5)
        sm["before"]["threads"], sm["after"]["threads"] = 8, 8
        line = bench.subscription_memory_line("kamailio", sm)
        self.assertIn("threads 8 -> 8)", line)
        self.assertIn("**3.00 KiB**", line)
        self.assertIn("75,000 KiB idle before SUBSCRIBE, 78,000 KiB with 1,000 subscriptions up, +3,000 KiB", line)
        self.assertIn("8 processes", line)
        self.assertIn("after 40 s more without traffic: 77,500 KiB, 2.50 KiB per subscription", line)
        self.assertNotIn("not idle", line)
        sm = bench.subscription_memory(self.point(75_000, 75_000), dict(self.point(76_000, 76_000), idle=False), 500)
        self.assertNotIn("held", sm)
        self.assertIn("not idle", bench.subscription_memory_line("switchboard", sm))

    def test_group_memory_of_this_process_group(self):
        m = bench.group_mem_kb(os.getpgrp())
        self.assertGreaterEqual(m["processes"], 1)
        self.assertGreater(m["pss_kb"], 0)
        self.assertGreaterEqual(m["rss_sum_kb"], m["pss_kb"])

    def test_presence_table_has_the_column(self):
        sm = bench.subscription_memory(self.point(75_000, 75_000), self.point(79_096, 79_096), 1000)
        r = {"status": "ok", "subscribed": 1000, "watchers": 1000, "ops": 5000, "lost_subscriptions": 0,
             "memory": {"peak_pss_kb": 81_920}, "window": {"background_cpu_s": 0.0, "wall_s": 6.0},
             "subscription_memory": sm, "pss_kib_per_subscription": sm["kib_per_subscription"]}
        result = {"scenario": "presence", "started": "t", "machine": {"cpus": 2, "kernel": "k"},
                  "params": {"watchers": 1000, "rounds": 5, "gap_ms": 1000, "rate": 500.0},
                  "servers": {"switchboard": r}}
        md = bench.markdown(result)
        self.assertIn("| PSS KiB per subscription |", md)
        self.assertIn("| 4.10 | 80 |", md)
        self.assertIn("switchboard: resident memory per subscription: **4.10 KiB**", md)

    def test_presence_config_only_above_the_per_device_limit(self):
        self.assertIsNone(bench.presence_config(bench.parse_args(["presence", "--watchers", "2000"])))
        cfg = bench.presence_config(bench.parse_args(["presence", "--watchers", "5000"]))
        self.assertIn("[presence]\nmax_subscriptions_per_device = 5000\n", cfg)

    def test_hold_is_bounded_by_the_watchers_notify_timeout(self):
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(SystemExit):
                bench.parse_args(["presence", "--watchers", "2000", "--sub-mem-hold", "45"])
        o = bench.parse_args(["presence", "--watchers", "2000", "--sub-mem-hold", "40"])
        self.assertEqual(o.sub_mem_hold, 40.0)


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
        for scenario in bench.KAMAILIO_SCENARIOS:
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


class Conference(unittest.TestCase):
    sends = {1: 100.0, 2: 101.0, 3: 102.0}

    def test_receipt_lines(self):
        lines = [["RCV", "100.000000", "500000.000000", "user0002", "msg-1"],
                 ["RCV", "100.000000", "", "user0003"],          # no marker: a notice
                 ["RCV", "1"]]                                    # truncated: ignored
        r = bench.parse_receipts(lines)
        self.assertEqual(r, [(100.5, "user0002", 1), (100.0, "user0003", None)])

    def test_tagged_receipt_lines_as_the_scenarios_log_them(self):
        # conference-member-recv.xml / conference-creator.xml; SIPp prints a 0 variable as ""
        lines = [l.split() for l in (
            "RCV t=1795500000.000000:250000.000000 to=user0002 mk=msg-7",
            "RCV t=1795500000.000000: to=user0003 mk=msg-8",        # usec 0
            "RCV t=1795500001.000000:5.000000 to=user0004 mk=",     # no marker: a notice
            "RCV t=:5.000000 to=user0005 mk=msg-1",                 # no time: skipped
            "RCV t=1795500001.000000:1.000000 to= mk=msg-1")]       # no user: skipped
        r = bench.parse_receipts(lines)
        self.assertEqual([(w, k) for _, w, k in r], [("user0002", 7), ("user0003", 8), ("user0004", None)])
        self.assertAlmostEqual(r[0][0], 1795500000.25, places=5)
        self.assertAlmostEqual(r[1][0], 1795500000.0, places=5)

    def test_send_and_join_lines(self):
        sends = bench.parse_sends([l.split() for l in (
            "SND t=1795500000.000000:100.000000 k=1",
            "SND t=1795500000.000000:600000.000000 k=2",
            "SND t=1795500000.000000:1.000000 k=")])
        self.assertEqual(sorted(sends), [1, 2])
        self.assertAlmostEqual(sends[2] - sends[1], 0.5999, places=4)
        joined = bench.parse_joined([l.split() for l in (
            "JOINED t=1795500000.000000:1.000000 user=user0001",
            "JOINED t=1795500000.000000:2.000000 user=user0002", "JOINED t=1")])
        self.assertEqual(joined, {"user0001", "user0002"})

    def test_everything_delivered(self):
        rec = []
        for k, t0 in self.sends.items():
            rec += [(t0 + 0.010, "a", k), (t0 + 0.020, "b", k)]
        f = bench.analyse_conference(self.sends, rec, ["a", "b"])
        self.assertEqual((f["expected"], f["deliveries"], f["lost"]), (6, 6, 0))
        self.assertEqual(f["complete_messages"], 3)
        self.assertEqual(f["completion"]["p50_ms"], 20.0)
        self.assertEqual(f["first_delivery"]["p50_ms"], 10.0)
        self.assertEqual(f["out_of_order"], 0)
        self.assertAlmostEqual(f["deliveries_per_s"], 6 / 2.02, places=1)

    def test_lost_duplicate_out_of_order_and_strangers(self):
        rec = [(100.01, "a", 1), (100.02, "a", 1),                  # duplicate
               (102.01, "a", 3), (102.02, "a", 2),                  # 2 after 3: out of order
               (100.01, "b", 1),                                     # b misses 2 and 3
               (100.03, "c", 1),                                     # not a recipient
               (100.04, "a", None), (100.05, "b", 9)]                # notice, unknown marker
        f = bench.analyse_conference(self.sends, rec, ["a", "b"])
        self.assertEqual(f["deliveries"], 4)
        self.assertEqual(f["lost"], 2)
        self.assertEqual(f["duplicates"], 1)
        self.assertEqual(f["out_of_order"], 1)
        self.assertEqual(f["not_a_recipient"], 1)
        self.assertEqual(f["other_messages"], 1)
        self.assertEqual(f["unknown_markers"], 1)
        self.assertEqual(f["complete_messages"], 1)
        self.assertEqual(f["lost_by_recipient"], {"b": 2})

    def test_log_counter_reads_only_what_was_appended(self):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "actions.log"
            c = bench.LogCounter(path, b"RCV ")
            self.assertEqual(c.update(), 0)
            path.write_bytes(b"JOINED 1\nRCV 1 2 a msg-1\nRCV 1 2")
            self.assertEqual(c.update(), 1)                  # the last line is not complete yet
            with open(path, "ab") as f:
                f.write(b" b msg-1\nRCV 3 4 c msg-2\n")
            self.assertEqual(c.update(), 3)

    def test_config_and_log_filter(self):
        o = bench.parse_args(["conference"])
        self.assertEqual((o.participants, o.messages, o.rate), (250, 200, 20.0))
        cfg = bench.conference_config(o)
        self.assertIn("[conference]", cfg)
        self.assertIn("open_to_organisation = true", cfg)
        self.assertIn("max_participants = 250", cfg)
        self.assertIn("switchboard::sip::conference=info", bench.switchboard_log_filter(o))
        self.assertEqual(bench.switchboard_log_filter(bench.parse_args(["message"])), "warn")
        self.assertEqual(bench.users_needed(o), 250)
        self.assertEqual(bench.planned_runs(o), [("switchboard", "switchboard", None)])

    def test_kamailio_is_refused(self):
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            bench.parse_args(["conference", "--only", "kamailio"])

    def test_markdown_conference_row_and_no_kamailio(self):
        lat = {"samples": 1, "p50_ms": 29.3, "p90_ms": 50.0, "p99_ms": 69.8, "max_ms": 79.0}
        fan = {"messages": 200, "recipients_per_message": 249, "expected": 49800, "deliveries": 49790,
               "lost": 10, "complete_messages": 190, "duplicates": 0, "out_of_order": 0, "deliveries_per_s": 4987.0,
               "completion": lat, "first_delivery": lat, "lost_by_recipient": {"user0007": 10},
               "recipients_missing_some": 1}
        r = {"status": "ok", "participants": 250, "joined": 249, "messages_offered": 200, "messages_sent": 200,
             "fanout": fan, "cpu_ms_per_1000": 142.8, "memory": {"peak_rss_sum_kb": 126976},
             "window": {"server_cpu_s": 7.11, "loadgen_cpu_s": 2.3, "background_cpu_s": 0.0, "wall_s": 10.0,
                        "background_top": {}},
             "failures": {"failed_posts": 0, "dead_call_msgs": 0, "member_calls_failed": 0},
             "server_log": {"member_unreachable": 1, "warn": 0, "error": 0}, "window_end": "no delivery for 3 s"}
        result = {"scenario": "conference", "started": "t", "machine": {"cpus": 2, "kernel": "k"},
                  "params": {"rate": 20.0, "participants": 250, "messages": 200}, "servers": {"switchboard": r}}
        md = bench.markdown(result)
        self.assertIn("Kamailio is not run", md)
        self.assertIn("| switchboard | 250/250 | 200/200 | 49,790/49,800 | 10 | 0 | 0 | 4,987 | 29.3 / 69.8 / 79.0 |", md)
        self.assertIn("1 'member unreachable' removals", md)
        self.assertNotIn("Switchboard / Kamailio", md)


class Archiving(unittest.TestCase):
    def test_status_json(self):
        st = bench.parse_archive_status('{"head": "12000:ab12", "anchor": "0:0000", "spooled": 3, "mail": null}')
        self.assertEqual((st["records"], st["spooled"]), (12000, 3))
        st = bench.parse_archive_status('{"head": null, "anchor": "0:0000", "spooled": 0, "mail": null}')
        self.assertEqual(st["records"], 0)
        self.assertIn("error", bench.parse_archive_status("archive is empty"))

    def test_archive_shortfall(self):
        a = {"records": 450, "spooled": 0, "by_kind": {"message": 195, "join": 250},
             "delivered": {"expected_message_records": 200}}
        self.assertEqual(bench.archive_shortfall(a), 5)
        a = {"records": 200, "spooled": 0, "by_kind": None, "delivered": {"expected_message_records": 200}}
        self.assertEqual(bench.archive_shortfall(a), 0)

    def test_compare_runs_and_ratio(self):
        o = bench.parse_args(["message", "--archiving-compare"])
        runs = bench.planned_runs(o)
        self.assertEqual([r[2] for r in runs], ["off", "on"])
        result = {"scenario": "message", "mode": "archiving-compare", "servers": {
            bench.ARCHIVING_OFF: {"status": "ok", "ops_per_cpu_s": 10000.0},
            bench.ARCHIVING_ON: {"status": "ok", "ops_per_cpu_s": 8500.0}}}
        bench.compute_ratios(result, runs)
        self.assertEqual(result["ratio_archiving_on_over_off_ops_per_cpu_s"], 0.85)
        self.assertAlmostEqual(result["archiving_cpu_increase_pct"], 17.6)
        with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
            bench.parse_args(["presence", "--archiving-compare"])

    def test_markdown_compare_verdict(self):
        row = {"status": "ok", "achieved_rate": 2000.0, "ops": 40000, "ops_per_cpu_s": 3000.0,
               "cpu_ms_per_1000": 333.3, "memory": {},
               "failures": {"failed_calls": 0, "unexpected_msgs": 0, "retransmissions": 0},
               "latency": {"p50_ms": 2.0, "p99_ms": 9.0},
               "window": {"server_cpu_s": 13.3, "loadgen_cpu_s": 5.0, "background_cpu_s": 0.0, "wall_s": 20.0,
                          "background_top": {}}}
        on = dict(row, archive={"records": 48000, "spooled": 0, "by_kind": {"message": 48000},
                                "delivered": {"messages_delivered_to_uas": 48000}})
        result = {"scenario": "message", "mode": "archiving-compare", "started": "t",
                  "machine": {"cpus": 2, "kernel": "k"},
                  "params": {"rate": 2000.0, "duration": 20.0, "warmup": 3.0, "users": 1000},
                  "servers": {bench.ARCHIVING_OFF: row, bench.ARCHIVING_ON: on},
                  "ratio_archiving_on_over_off_ops_per_cpu_s": 0.5, "archiving_cpu_increase_pct": 100.0}
        md = bench.markdown(result)
        self.assertIn("| switchboard archiving on | 2,000.0 | 40,000 |", md)
        self.assertIn("archive holds 48,000 records (message 48,000; 0 spooled)", md)
        self.assertIn("MISSES the target", md)
        self.assertIn("CPU per operation +100 %", md)

    def test_pairs_plan_alternating_runs(self):
        o = bench.parse_args(["message", "--archiving-compare", "--pairs", "3"])
        runs = bench.planned_runs(o)
        self.assertEqual(runs, [
            ("switchboard", "switchboard archiving off #1", "off"), ("switchboard", "switchboard archiving on #1", "on"),
            ("switchboard", "switchboard archiving off #2", "off"), ("switchboard", "switchboard archiving on #2", "on"),
            ("switchboard", "switchboard archiving off #3", "off"), ("switchboard", "switchboard archiving on #3", "on")])
        # one pair (the default, or --pairs 1): the names of before --pairs
        for argv in (["conference", "--archiving-compare"], ["conference", "--archiving-compare", "--pairs", "1"]):
            self.assertEqual([r[1] for r in bench.planned_runs(bench.parse_args(argv))],
                             [bench.ARCHIVING_OFF, bench.ARCHIVING_ON])
        for bad in (["message", "--archiving-compare", "--pairs", "0"],
                    ["message", "--archiving-compare", "--pairs", str(bench.MAX_PAIRS + 1)],
                    ["message", "--pairs", "2"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                bench.parse_args(bad)

    @staticmethod
    def _pairs_result(values: list[tuple[float, float]]) -> tuple[dict, list]:
        o = bench.parse_args(["message", "--archiving-compare", "--pairs", str(len(values))])
        runs = bench.planned_runs(o)
        servers = {}
        for (_, name, _a), v in zip(runs, [x for pair in values for x in pair]):
            servers[name] = {"status": "ok", "ops_per_cpu_s": v}
        return {"scenario": "message", "mode": "archiving-compare", "servers": servers}, runs

    def test_pairs_ratio_of_medians(self):
        # off 10,000 / 9,000 / 11,000 (median 10,000); on 8,500 / 8,100 / 8,000 (median 8,100)
        result, runs = self._pairs_result([(10000.0, 8500.0), (9000.0, 8100.0), (11000.0, 8000.0)])
        bench.compute_ratios(result, runs)
        ac = result["archiving_compare"]
        self.assertEqual(ac["pair_ratios"], [0.85, 0.9, 0.727])
        self.assertEqual((ac["pair_ratio_min"], ac["pair_ratio_max"]), (0.727, 0.9))
        self.assertEqual((ac["median_ops_per_cpu_s_off"], ac["median_ops_per_cpu_s_on"]), (10000.0, 8100.0))
        self.assertEqual(ac["ratio_of_medians"], 0.81)
        self.assertEqual(result["ratio_archiving_on_over_off_ops_per_cpu_s"], 0.81)
        self.assertAlmostEqual(result["archiving_cpu_increase_pct"], 23.5)  # 10,000 / 8,100 - 1
        self.assertEqual(ac["per_pair"][2], {"pair": 3, "off": "switchboard archiving off #3",
                                             "on": "switchboard archiving on #3", "off_ops_per_cpu_s": 11000.0,
                                             "on_ops_per_cpu_s": 8000.0, "ratio": 0.727})
        self.assertNotIn("ratio_note", result)
        # an even count: the median is the mean of the middle two
        result, runs = self._pairs_result([(10000.0, 9000.0), (8000.0, 7000.0)])
        bench.compute_ratios(result, runs)
        self.assertEqual(result["ratio_archiving_on_over_off_ops_per_cpu_s"], 0.889)  # 8,000 / 9,000

    def test_pairs_any_failed_run_means_no_headline(self):
        result, runs = self._pairs_result([(10000.0, 8500.0), (9000.0, 8100.0)])
        result["servers"]["switchboard archiving on #2"] = {"status": "failed", "error": "boom"}
        bench.compute_ratios(result, runs)
        self.assertNotIn("ratio_archiving_on_over_off_ops_per_cpu_s", result)
        self.assertNotIn("archiving_cpu_increase_pct", result)
        self.assertEqual(result["ratio_note"], "not measured: switchboard archiving on #2 failed")
        self.assertEqual(result["archiving_compare"]["pair_ratios"], [0.85, None])
        # interrupted: the runs never started count as not run
        result, runs = self._pairs_result([(10000.0, 8500.0)])
        runs = bench.planned_runs(bench.parse_args(["message", "--archiving-compare", "--pairs", "2"]))
        result["servers"] = {"switchboard archiving off #1": {"status": "ok", "ops_per_cpu_s": 10000.0}}
        bench.compute_ratios(result, runs)
        self.assertEqual(result["ratio_note"], "not measured: switchboard archiving off #2 not run, "
                                               "switchboard archiving on #1 not run, "
                                               "switchboard archiving on #2 not run")

    def _pairs_markdown_result(self, fail_last: bool = False,
                               values=((10000.0, 8500.0), (9000.0, 8100.0))) -> dict:
        def row(ops_per_cpu):
            return {"status": "ok", "achieved_rate": 2000.0, "ops": 40000, "ops_per_cpu_s": ops_per_cpu,
                    "cpu_ms_per_1000": round(1e6 / ops_per_cpu, 1), "memory": {},
                    "failures": {"failed_calls": 0, "unexpected_msgs": 0, "retransmissions": 0},
                    "latency": {"p50_ms": 2.0, "p99_ms": 9.0},
                    "window": {"server_cpu_s": 4.0, "loadgen_cpu_s": 5.0, "background_cpu_s": 0.0,
                               "wall_s": 20.0, "background_top": {},
                               "server_io": {"syscw": 4000, "write_bytes": 4096000}},
                    "archive": None}
        servers = {}
        n = len(values)
        for i, (off, on) in enumerate(values, 1):
            servers[bench.archiving_run_name("off", i, n)] = dict(row(off))
            servers[bench.archiving_run_name("off", i, n)].pop("archive")
            servers[bench.archiving_run_name("on", i, n)] = dict(
                row(on), archive={"records": 39000, "spooled": 0, "by_kind": {"message": 39000},
                                  "delivered": {"expected_message_records": 40000,
                                                "messages_delivered_to_uas": 40000}})
        if fail_last:
            servers["switchboard archiving on #2"] = {"status": "failed", "error": "server died\nmore"}
        result = {"scenario": "message", "mode": "archiving-compare", "started": "t",
                  "machine": {"cpus": 2, "kernel": "k"},
                  "params": {"rate": 2000.0, "duration": 20.0, "warmup": 3.0, "users": 1000,
                             "switchboard_archiving": "compare", "archiving_pairs": n},
                  "servers": servers}
        bench.compute_ratios(result, bench.planned_runs(
            bench.parse_args(["message", "--archiving-compare", "--pairs", str(n)])))
        return result

    def test_markdown_pairs_headline(self):
        md = bench.markdown(self._pairs_markdown_result())
        self.assertIn("| other CPU s | pair ratio on / off |", md)
        self.assertIn("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", md)
        self.assertIn("| switchboard archiving off #1 | 2,000.0 | 40,000 |", md)
        self.assertRegex(md, r"\| switchboard archiving off #2 \|.*\| 0\.00 \|  \|\n")  # off rows: no ratio
        self.assertRegex(md, r"\| switchboard archiving on #1 \|.*\| 0\.850 \|\n")
        self.assertRegex(md, r"\| switchboard archiving on #2 \|.*\| 0\.900 \|\n")
        # medians: off 9,500, on 8,300 -> 0.874; CPU per operation +14 %
        self.assertIn("**Archiving on / off, operations per server CPU second: 0.87** (ratio of the medians over "
                      "2 alternating pairs: on 8,300 / off 9,500 operations per CPU s; per-pair ratios 0.85 to "
                      "0.90; meets the target: archiving costs at most 20 %, ratio >= 0.80; CPU per operation "
                      "+14 % between the medians)", md)
        # the per-run lines, for every run
        for i in (1, 2):
            self.assertIn(f"WARNING: switchboard archiving on #{i}: the archive is missing 1,000 of the 40,000", md)
            self.assertIn(f"switchboard archiving on #{i}: archive holds 39,000 records", md)
            for a in ("off", "on"):
                self.assertIn(f"switchboard archiving {a} #{i}: server I/O per 1,000 operations: 100 write "
                              f"syscalls, 100 KiB written", md)

    def test_markdown_pairs_failed_run(self):
        md = bench.markdown(self._pairs_markdown_result(fail_last=True))
        self.assertIn("| switchboard archiving on #2 | failed: server died |", md)
        self.assertRegex(md, r"\| switchboard archiving on #1 \|.*\| 0\.850 \|\n")
        self.assertIn("Archiving on / off, operations per server CPU second: n/a "
                      "(not measured: switchboard archiving on #2 failed)", md)
        self.assertNotIn("**Archiving", md)

    def test_markdown_one_pair_unchanged(self):
        result = self._pairs_markdown_result(values=((10000.0, 8500.0),))
        self.assertEqual(list(result["servers"]), [bench.ARCHIVING_OFF, bench.ARCHIVING_ON])
        self.assertEqual(result["archiving_compare"]["pair_ratios"], [0.85])
        self.assertEqual(result["ratio_archiving_on_over_off_ops_per_cpu_s"], 0.85)
        md = bench.markdown(result)
        self.assertNotIn("pair ratio", md)
        self.assertIn("| peak PSS MB | peak RSS sum MB | SIPp+harness CPU s | other CPU s |\n", md)
        self.assertIn("| switchboard archiving on | 2,000.0 | 40,000 |", md)
        self.assertIn("**Archiving on / off, operations per server CPU second: 0.85** (meets the target: "
                      "archiving costs at most 20 %, ratio >= 0.80; CPU per operation +18 %)", md)

    def test_binary_identity_is_reported_once_per_build(self):
        with tempfile.TemporaryDirectory() as d:
            b = Path(d) / "switchboard"
            b.write_bytes(b"build 1")
            ident = bench.binary_identity(b)
            self.assertEqual((ident["size"], len(ident["sha256"])), (7, 16))
            self.assertIn("error", bench.binary_identity(Path(d) / "missing"))
        row = {"status": "failed", "error": "x",
               "server": {"binary": "/b/switchboard", "version": "switchboard 0.1.0", "binary_identity": ident}}
        result = {"scenario": "message", "mode": "archiving-compare", "started": "t",
                  "machine": {"cpus": 2, "kernel": "k"},
                  "params": {"rate": 2000.0, "duration": 20.0, "warmup": 3.0, "users": 1000},
                  "servers": {bench.ARCHIVING_OFF: row, bench.ARCHIVING_ON: dict(row)}}
        md = bench.markdown(result)
        self.assertEqual(md.count(f"sha256 {ident['sha256']}"), 1)


if __name__ == "__main__":
    unittest.main()
