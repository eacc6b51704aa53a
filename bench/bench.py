#!/usr/bin/env python3
"""Switchboard vs Kamailio load benchmark (SIPp), standard library only.

Usage: bench/run.sh SCENARIO [options]      (see --help, and bench/README.md)

SCENARIO is one of: register, message, presence, conference (Switchboard
only: Kamailio has no IM conference focus).

For each server (Kamailio, then Switchboard) the harness:
  * makes a fresh temporary directory, picks free loopback ports,
  * provisions the same users (user0000.. in domain bench.test),
  * starts the server, waits until it answers OPTIONS on UDP,
  * runs the SIPp scenario for a bounded time (a warm-up run first),
  * reads the server's CPU time (utime+stime of every process in its process
    group, from /proc/PID/stat) before and after the measured window, and
    samples its memory,
  * stops everything it started (also on error or Ctrl-C),
and prints a Markdown table plus writes JSON into bench/results/.

Every load targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SCENARIO_DIR = BENCH_DIR / "scenarios"
KAMAILIO_DIR = BENCH_DIR / "kamailio"
RESULTS_DIR = BENCH_DIR / "results"

DOMAIN = "bench.test"
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

SCENARIOS = ("register", "message", "presence", "conference")
MAX_PAIRS = 5  # --pairs: at most 5 archiving off/on pairs (10 server runs)
KAMAILIO_SCENARIOS = ("register", "message", "presence")  # conference: Switchboard only
SERVERS = ("kamailio", "switchboard")

DEFAULT_SWITCHBOARD_BIN = REPO_DIR / "target" / "release" / "switchboard"


class BenchError(Exception):
    """A failure that aborts one server's run (reported, the run goes on)."""


def log(msg: str) -> None:
    ts = time.strftime("%H:%M:%S")
    print(f"[bench {ts}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Processes we start: every one gets its own session / process group, so the
# whole tree (Kamailio forks ~10 children) can be signalled and measured by
# process group. The live groups are mirrored into $BENCH_PIDFILE so that
# run.sh's trap can kill them even if this interpreter dies hard.
# --------------------------------------------------------------------------


class ProcRegistry:
    def __init__(self) -> None:
        self._procs: dict[int, tuple[str, subprocess.Popen]] = {}
        self._lock = threading.Lock()
        self._pidfile = os.environ.get("BENCH_PIDFILE")

    def _sync(self) -> None:
        if not self._pidfile:
            return
        try:
            with open(self._pidfile, "w") as f:
                for pgid in self._procs:
                    f.write(f"{pgid}\n")
        except OSError:
            pass

    def spawn(self, name: str, cmd: list[str], cwd: Path, out_path: Path,
              env: dict | None = None, stdin_data: bytes | None = None) -> subprocess.Popen:
        out = open(out_path, "ab")
        try:
            proc = subprocess.Popen(
                cmd, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                start_new_session=True, env=env)
        finally:
            out.close()
        if stdin_data is not None:
            try:
                proc.stdin.write(stdin_data)
                proc.stdin.close()
            except OSError:
                pass
        with self._lock:
            self._procs[proc.pid] = (name, proc)
            self._sync()
        return proc

    def forget(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)
            self._sync()

    def stop(self, proc: subprocess.Popen, grace: float = 3.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        pgid = proc.pid
        if proc.poll() is None or group_pids(pgid):
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if proc.poll() is not None and not group_pids(pgid):
                    break
                time.sleep(0.05)
            if group_pids(pgid) or proc.poll() is None:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        else:
            proc.poll()
        self.forget(proc)

    def stop_named(self, prefix: str) -> None:
        with self._lock:
            procs = [p for n, p in self._procs.values() if n.startswith(prefix)]
        for p in procs:
            self.stop(p, grace=2.0)

    def stop_all(self) -> None:
        with self._lock:
            procs = [p for _, p in self._procs.values()]
        for p in procs:
            try:
                self.stop(p, grace=2.0)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


PROCS = ProcRegistry()


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------
# /proc readers
# --------------------------------------------------------------------------


def _read_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rparen = data.rfind(")")
    if rparen < 0:
        return None
    # fields after "pid (comm)": state ppid pgrp session tty tpgid flags
    # minflt cminflt majflt cmajflt utime stime cutime cstime ...
    return data[rparen + 2:].split()


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _read_stat(int(entry))
        if st is None or st[0] == "Z":
            continue
        if int(st[2]) == pgid:
            pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime (+ reaped children's) of every process in the group."""
    ticks = 0
    for pid in group_pids(pgid):
        st = _read_stat(pid)
        if st is None:
            continue
        ticks += int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])
    return ticks / CLK_TCK


def group_cpu_split(pgid: int) -> tuple[float, float]:
    """(user, system) CPU seconds (utime+cutime, stime+cstime) of the group."""
    user = sys_ = 0
    for pid in group_pids(pgid):
        st = _read_stat(pid)
        if st is None:
            continue
        user += int(st[11]) + int(st[13])
        sys_ += int(st[12]) + int(st[14])
    return user / CLK_TCK, sys_ / CLK_TCK


def group_io(pgid: int) -> dict:
    """Sum of /proc/PID/io counters (syscw, write_bytes, ...) over a process group."""
    tot = {"syscr": 0, "syscw": 0, "read_bytes": 0, "write_bytes": 0}
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/io") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in tot:
                        tot[k] += int(v)
        except (OSError, ValueError):
            pass
    return tot


def _kb_field(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_mem_kb(pgid: int) -> dict:
    """One reading of a process group's memory: sum of Pss (smaps_rollup)
    and of VmRSS over its processes, in KiB, how many processes and threads."""
    pss = rss = threads = 0
    pids = group_pids(pgid)
    for pid in pids:
        pss += _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")
        rss += _kb_field(f"/proc/{pid}/status", "VmRSS:")
        threads += _kb_field(f"/proc/{pid}/status", "Threads:")
    return {"pss_kb": pss, "rss_sum_kb": rss, "processes": len(pids), "threads": threads}


def memory_point(server: "Server", settle_timeout: float = 10.0, samples: int = 3,
                 step: float = 0.2) -> dict:
    """The server's memory at one point of a scenario: wait (at most
    `settle_timeout` s) until it is idle (see settle()), then read the
    group's PSS `samples` times `step` s apart; the median is the figure,
    the samples show how steady it was."""
    st = settle(server, timeout=settle_timeout)
    reads = []
    for i in range(samples):
        if i:
            time.sleep(step)
        reads.append(group_mem_kb(server.pgid))
    pss = sorted(r["pss_kb"] for r in reads)
    rss = sorted(r["rss_sum_kb"] for r in reads)
    return {"pss_kb": pss[len(pss) // 2], "rss_sum_kb": rss[len(rss) // 2],
            "pss_samples_kb": [r["pss_kb"] for r in reads],
            "processes": max(r["processes"] for r in reads),
            "threads": max(r["threads"] for r in reads),
            "idle": st["settled"], "settle_s": st["settle_s"]}


def kib_per_subscription(before_kb: int | None, after_kb: int | None, subscriptions: int) -> float | None:
    """Resident memory per subscription: (PSS after - PSS before) / number
    of subscriptions, KiB (may be negative if the server gave memory back)."""
    if before_kb is None or after_kb is None or subscriptions <= 0:
        return None
    return round((after_kb - before_kb) / subscriptions, 2)


def subscription_memory(before: dict, after: dict, subscriptions: int, held: dict | None = None) -> dict:
    """The JSON record of the per-subscription memory measurement."""
    rec = {
        "subscriptions": subscriptions,
        "before": before,
        "after": after,
        "delta_pss_kb": after["pss_kb"] - before["pss_kb"],
        "kib_per_subscription": kib_per_subscription(before["pss_kb"], after["pss_kb"], subscriptions),
        "rss_sum_kib_per_subscription": kib_per_subscription(before["rss_sum_kb"], after["rss_sum_kb"],
                                                             subscriptions),
    }
    if held is not None:
        rec["held"] = held
        rec["kib_per_subscription_held"] = kib_per_subscription(before["pss_kb"], held["pss_kb"], subscriptions)
    return rec


class MemSampler:
    """Samples the memory of a process group every `interval` seconds.

    peak_pss_kb: highest sum of Pss (proportional set size) over the group:
                 shared memory counted once; comparable between one process
                 and a forking server.
    peak_rss_kb: highest sum of VmRSS (counts shared pages once per process).
    hwm_kb:      sum over the group of VmHWM (each process's own peak RSS).
    """

    def __init__(self, pgid: int, interval: float = 1.0) -> None:
        self.pgid = pgid
        self.interval = interval
        self.peak_pss_kb = 0
        self.peak_rss_kb = 0
        self.hwm_kb = 0
        self.nprocs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        pss = rss = hwm = 0
        pids = group_pids(self.pgid)
        for pid in pids:
            pss += _kb_field(f"/proc/{pid}/smaps_rollup", "Pss:")
            rss += _kb_field(f"/proc/{pid}/status", "VmRSS:")
            hwm += _kb_field(f"/proc/{pid}/status", "VmHWM:")
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.hwm_kb = max(self.hwm_kb, hwm)
        self.nprocs = max(self.nprocs, len(pids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "MemSampler":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
        return {
            "peak_pss_kb": self.peak_pss_kb,
            "peak_rss_sum_kb": self.peak_rss_kb,
            "vmhwm_sum_kb": self.hwm_kb,
            "processes": self.nprocs,
        }


def proc_snapshot() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (pgid, comm, utime+stime+cutime+cstime ticks, utime+stime
    ticks) for every process."""
    snap = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        lp, rp = data.find("("), data.rfind(")")
        st = data[rp + 2:].split()
        if len(st) < 15:
            continue
        own = int(st[11]) + int(st[12])
        snap[pid] = (int(st[2]), data[lp + 1:rp], own + int(st[13]) + int(st[14]), own)
    return snap


SIPP_PGIDS: set[int] = set()


class CpuWindow:
    """CPU spent during one window, by the server and by everything else.

    Per-process accounting from /proc/PID/stat (utime+stime, plus cutime+
    cstime so that children reaped during the window still count): the
    server's process group; the load generator (SIPp process groups and this
    harness, which reaps SIPp); and any other process on the machine
    ("background": a quiet machine shows ~0). /proc/stat's idle counter is
    not used: on these VMs it does not match what processes consume.
    """

    def __init__(self, server_pgid: int) -> None:
        self.server_pgid = server_pgid

    def begin(self) -> None:
        self.t0 = time.monotonic()
        self.io0 = group_io(self.server_pgid)
        self.split0 = group_cpu_split(self.server_pgid)
        self.snap0 = proc_snapshot()

    def end(self) -> dict:
        snap1 = proc_snapshot()
        wall = time.monotonic() - self.t0
        me = os.getpid()

        def classify(pid: int, pgid: int) -> str:
            if pgid == self.server_pgid:
                return "server"
            if pid == me or pgid in SIPP_PGIDS:
                return "gen"
            return "bg"

        # Sum at the end minus sum at the start, per class: a process that
        # ended in the window moved its CPU into its reaper's cutime/cstime,
        # so it is subtracted at the start and found again at the end.
        tot = {"server": 0, "gen": 0, "bg": 0}
        bg_by: dict[str, int] = {}
        for sign, snap in ((1, snap1), (-1, self.snap0)):
            for pid, (pgid, comm, ticks, _own) in snap.items():
                tot[classify(pid, pgid)] += sign * ticks
        # the biggest background consumers by name: own CPU (no reaped
        # children's) of the processes alive at the end, in the window. A
        # reaper's cutime would name it for its child's whole lifetime
        # (e.g. "process_api 200 s" when a long-lived shell exits); the
        # total above is right either way.
        for pid, (pgid, comm, _ticks, own) in snap1.items():
            if classify(pid, pgid) == "bg":
                before = self.snap0.get(pid)
                # (same pid = same process: a kworker's comm changes with its work)
                d = own - (before[3] if before else 0)
                bg_by[comm] = bg_by.get(comm, 0) + d
        top = sorted(((k, v) for k, v in bg_by.items() if v > 0), key=lambda kv: -kv[1])[:3]
        io1 = group_io(self.server_pgid)
        split1 = group_cpu_split(self.server_pgid)
        return {
            # user / kernel split of the server's CPU (kernel: syscalls, e.g.
            # the archive's writes and fsyncs)
            "server_user_s": round(split1[0] - self.split0[0], 3),
            "server_sys_s": round(split1[1] - self.split0[1], 3),
            # the server's own I/O over the window (/proc/PID/io): write
            # syscalls and bytes sent to the storage layer (archive, store)
            "server_io": {k: io1.get(k, 0) - self.io0.get(k, 0) for k in io1},
            "wall_s": round(wall, 3),
            "server_cpu_s": round(tot["server"] / CLK_TCK, 3),
            "loadgen_cpu_s": round(max(0, tot["gen"]) / CLK_TCK, 3),
            "background_cpu_s": round(max(0, tot["bg"]) / CLK_TCK, 3),
            "background_top": {k: round(v / CLK_TCK, 2) for k, v in top},
        }


def wait_for_quiet(max_wait: float, threshold: float = 0.05, need: int = 3) -> dict:
    """Wait (at most max_wait s) until other processes use < threshold CPU
    for `need` consecutive seconds. Returns what was seen."""
    start = time.monotonic()
    quiet = 0
    last = 0.0
    while True:
        snap0 = proc_snapshot()
        time.sleep(1.0)
        snap1 = proc_snapshot()
        me = os.getpid()
        busy = (sum(t for pid, (_g, _c, t, _o) in snap1.items() if pid != me)
                - sum(t for pid, (_g, _c, t, _o) in snap0.items() if pid != me))
        last = max(0, busy) / CLK_TCK
        quiet = quiet + 1 if last < threshold else 0
        waited = time.monotonic() - start
        if quiet >= need:
            return {"quiet": True, "waited_s": round(waited, 1), "last_cpu_per_s": round(last, 3)}
        if waited >= max_wait:
            return {"quiet": False, "waited_s": round(waited, 1), "last_cpu_per_s": round(last, 3)}


# --------------------------------------------------------------------------
# Ports and readiness
# --------------------------------------------------------------------------

_used_ports: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (not handed out twice)."""
    for _ in range(500):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((LOOPBACK, 0))
            port = u.getsockname()[1]
            if port in _used_ports:
                continue
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind((LOOPBACK, port))
            except OSError:
                continue
            finally:
                t.close()
            _used_ports.add(port)
            return port
        finally:
            u.close()
    raise BenchError("no free loopback port found")


def sip_options_probe(port: int, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Send OPTIONS over UDP until any SIP response comes back.

    Returns the seconds waited; raises BenchError on timeout or if `proc`
    exits meanwhile. Any status code counts as "up".
    """
    start = time.monotonic()
    deadline = start + timeout
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    lport = sock.getsockname()[1]
    sock.settimeout(0.2)
    n = 0
    try:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"server exited with code {proc.returncode} before answering OPTIONS")
            n += 1
            msg = (
                f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{lport};branch=z9hG4bKprobe{os.getpid()}x{n};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:probe@{DOMAIN}>;tag=probe{n}\r\n"
                f"To: <sip:{LOOPBACK}:{port}>\r\n"
                f"Call-ID: probe-{os.getpid()}-{n}@{LOOPBACK}\r\n"
                f"CSeq: {n} OPTIONS\r\n"
                f"Content-Length: 0\r\n\r\n"
            ).encode()
            try:
                sock.sendto(msg, (LOOPBACK, port))
                data, _ = sock.recvfrom(65535)
                if data.startswith(b"SIP/2.0 "):
                    return time.monotonic() - start
            except (socket.timeout, ConnectionRefusedError):
                pass
            time.sleep(0.05)
    finally:
        sock.close()
    raise BenchError(f"no SIP answer to OPTIONS on udp {LOOPBACK}:{port} within {timeout:.0f}s")


def tail(path: Path, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-8000:].decode("utf-8", "replace")
        return "\n".join(data.splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------


class User:
    __slots__ = ("name", "password")

    def __init__(self, name: str, password: str) -> None:
        self.name = name
        self.password = password

    def ha1(self, realm: str = DOMAIN) -> str:
        return hashlib.md5(f"{self.name}:{realm}:{self.password}".encode()).hexdigest()

    def ha1b(self, realm: str = DOMAIN) -> str:
        return hashlib.md5(f"{self.name}@{DOMAIN}:{realm}:{self.password}".encode()).hexdigest()

    def auth_field(self) -> str:
        # SIPp 3.6 cannot nest [fieldN] inside [authentication ...], but it
        # expands a whole [authentication ...] keyword taken from a field.
        return f"[authentication username={self.name} password={self.password}]"


def make_users(n: int) -> list[User]:
    # Deterministic per-user passwords (letters and digits only: they travel
    # through SIPp keyword parsing and a CLI's stdin).
    return [User(f"user{i:04d}", "pw" + hashlib.sha256(f"switchboard-bench-{i}".encode()).hexdigest()[:14])
            for i in range(n)]


def write_csv(path: Path, rows: list[tuple[str, ...]], mode: str = "SEQUENTIAL") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(mode + "\n")
        for r in rows:
            f.write(";".join(r) + "\n")
    return path


# --------------------------------------------------------------------------
# SIPp
# --------------------------------------------------------------------------


class Sipp:
    """One SIPp process with its own run directory and output files."""

    def __init__(self, name: str, rundir: Path, scenario: str, local_port: int,
                 remote_port: int | None, args: list[str], trace_err: bool = True) -> None:
        self.name = name
        self.dir = rundir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stat = self.dir / "stat.csv"
        self.log = self.dir / "actions.log"
        self.err = self.dir / "errors.log"
        self.out = self.dir / "sipp.out"
        cmd = ["sipp"]
        if remote_port is not None:
            cmd.append(f"{LOOPBACK}:{remote_port}")
        cmd += [
            "-sf", str(SCENARIO_DIR / scenario),
            "-i", LOOPBACK, "-p", str(local_port),
            "-nostdin",
            "-trace_stat", "-stf", str(self.stat), "-fd", "1",
            "-trace_logs", "-log_file", str(self.log),
        ] + (["-trace_err", "-error_file", str(self.err)] if trace_err else []) + [
            "-buff_size", "4194304",
        ] + args
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sipp":
        (self.dir / "cmd.txt").write_text(" ".join(self.cmd) + "\n")
        self.proc = PROCS.spawn(f"sipp-{self.name}", self.cmd, self.dir, self.out)
        SIPP_PGIDS.add(self.proc.pid)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def soft_stop(self) -> None:
        """SIGUSR1: place no new calls, exit when the ongoing ones are done."""
        if self.running():
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc, grace=2.0)

    def finish(self, grace: float) -> tuple[int | None, bool]:
        """Wait up to `grace` s for exit, kill otherwise. Returns (rc, killed)."""
        rc = self.wait(grace)
        killed = rc is None
        self.kill()
        return (self.proc.returncode if not killed else None), killed

    def stats(self) -> dict:
        return parse_sipp_stat(self.stat)

    def log_lines(self, prefix: str) -> list[list[str]]:
        out = []
        try:
            with open(self.log, errors="replace") as f:
                for line in f:
                    if line.startswith(prefix):
                        out.append(line.split())
        except OSError:
            pass
        return out

    def diagnostics(self) -> str:
        parts = []
        t = tail(self.err, 12)
        if t:
            parts.append(f"--- {self.err} (tail)\n{t}")
        t = tail(self.out, 25)
        if t:
            parts.append(f"--- {self.out} (tail)\n{t}")
        return "\n".join(parts)


def parse_sipp_stat(path: Path) -> dict:
    """Last row of a SIPp -trace_stat CSV as {counter: value}."""
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(";")
    row = lines[-1].split(";")
    d: dict = {}
    for k, v in zip(header, row):
        if not k:
            continue
        if k in ("StartTime", "LastResetTime", "CurrentTime"):
            # "2026-11-24\t05:56:03.496119\t1795499763.496119"
            try:
                d[k] = float(v.split("\t")[-1])
            except ValueError:
                d[k] = None
            continue
        try:
            d[k] = int(v)
        except ValueError:
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    return d


def sipp_counts(st: dict) -> dict:
    def c(name: str) -> int:
        v = st.get(name + "(C)", 0)
        return v if isinstance(v, int) else 0

    elapsed = None
    if st.get("StartTime") and st.get("CurrentTime"):
        elapsed = st["CurrentTime"] - st["StartTime"]
    return {
        "created": c("OutgoingCall") + c("IncomingCall"),
        "successful": c("SuccessfulCall"),
        "failed": c("FailedCall"),
        "failed_unexpected_msg": c("FailedUnexpectedMessage"),
        "failed_max_udp_retrans": c("FailedMaxUDPRetrans"),
        "failed_regexp": c("FailedRegexpDoesntMatch"),
        "failed_call_rejected": c("FailedCallRejected"),
        "retransmissions": c("Retransmissions"),
        "out_of_call_msgs": c("OutOfCallMsgs"),
        "dead_call_msgs": c("DeadCallMsgs"),
        "elapsed_s": round(elapsed, 3) if elapsed is not None else None,
    }


def percentile(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    # nearest rank: the smallest value with at least p % of the values <= it
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals) - 1e-9) - 1))
    return sorted_vals[k]


def latency_summary_us(values_us: list[float]) -> dict:
    v = sorted(values_us)
    ms = lambda x: None if x is None else round(x / 1000.0, 3)  # noqa: E731
    return {
        "samples": len(v),
        "p50_ms": ms(percentile(v, 50)),
        "p90_ms": ms(percentile(v, 90)),
        "p99_ms": ms(percentile(v, 99)),
        "max_ms": ms(v[-1] if v else None),
    }


def sipp_float(tok: str) -> float:
    # SIPp prints a double variable with %lf, but prints 0 as an empty string.
    try:
        return float(tok)
    except ValueError:
        return 0.0


def read_latencies(sipp: Sipp) -> list[float]:
    vals = []
    for parts in sipp.log_lines("LAT"):
        vals.append(sipp_float(parts[1]) if len(parts) > 1 else 0.0)
    return vals


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


class Server:
    name = "server"

    def __init__(self, opts: argparse.Namespace, workdir: Path, label: str | None = None) -> None:
        self.opts = opts
        self.label = label or self.name
        self.dir = workdir / self.label
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.logfile = self.dir / "server.log"
        self.info: dict = {}

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"{self.name} is not running (exit code {code})\n{tail(self.logfile)}")

    def stop(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc, grace=5.0)

    # subclasses: provision(users, scenario), start(scenario)


class KamailioServer(Server):
    name = "kamailio"

    def provision(self, users: list[User], scenario: str) -> None:
        t0 = time.monotonic()
        db = self.dir / "kamailio.sqlite"
        con = sqlite3.connect(db)
        con.executescript(
            """
            CREATE TABLE version (
                id INTEGER PRIMARY KEY NOT NULL,
                table_name VARCHAR(32) NOT NULL,
                table_version INTEGER DEFAULT 0 NOT NULL,
                CONSTRAINT version_table_name_idx UNIQUE (table_name));
            INSERT INTO version (table_name, table_version) VALUES ('version', 1);
            CREATE TABLE subscriber (
                id INTEGER PRIMARY KEY NOT NULL,
                username VARCHAR(64) DEFAULT '' NOT NULL,
                domain VARCHAR(64) DEFAULT '' NOT NULL,
                password VARCHAR(64) DEFAULT '' NOT NULL,
                ha1 VARCHAR(128) DEFAULT '' NOT NULL,
                ha1b VARCHAR(128) DEFAULT '' NOT NULL,
                CONSTRAINT subscriber_account_idx UNIQUE (username, domain));
            CREATE INDEX subscriber_username_idx ON subscriber (username);
            INSERT INTO version (table_name, table_version) VALUES ('subscriber', 7);
            """)
        con.executemany(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES (?, ?, ?, ?, ?)",
            [(u.name, DOMAIN, u.password, u.ha1(), u.ha1b()) for u in users])
        con.commit()
        con.close()
        subs = {
            "PORT": str(self.port),
            "DOMAIN": DOMAIN,
            "CHILDREN": str(self.opts.kamailio_children),
            "AUTH_DB_URL": f"sqlite://{db}",
        }
        if scenario == "presence":
            dbtext = self.dir / "dbtext"
            dbtext.mkdir(exist_ok=True)
            src = Path("/usr/share/kamailio/dbtext/kamailio")
            for table in ("version", "presentity", "active_watchers", "watchers", "xcap", "pua"):
                if not (src / table).exists():
                    raise BenchError(f"missing {src / table} (is kamailio installed?)")
                shutil.copy(src / table, dbtext / table)
            subs["PRESENCE_DB_URL"] = f"text://{dbtext}"
        template = (KAMAILIO_DIR / f"{scenario}.cfg").read_text()
        for k, v in subs.items():
            template = template.replace(f"@@{k}@@", v)
        if "@@" in template.replace("@@...@@", ""):
            raise BenchError(f"unrendered placeholder in kamailio/{scenario}.cfg")
        self.cfg = self.dir / "kamailio.cfg"
        self.cfg.write_text(template)
        self.info["provision_s"] = round(time.monotonic() - t0, 3)

    def start(self, scenario: str) -> None:
        kam = shutil.which("kamailio") or "/usr/sbin/kamailio"
        if not Path(kam).exists():
            raise BenchError("kamailio not found (apt-get install kamailio ...)")
        cmd = [kam, "-f", str(self.cfg), "-DD", "-E",
               "-m", str(self.opts.kamailio_shm), "-M", str(self.opts.kamailio_pkg),
               "-Y", str(self.dir)]
        (self.dir / "cmd.txt").write_text(" ".join(cmd) + "\n")
        self.proc = PROCS.spawn("kamailio", cmd, self.dir, self.logfile)
        waited = sip_options_probe(self.port, 20.0, self.proc)
        self.info.update({
            "version": _first_line([kam, "-v"]),
            "udp": f"{LOOPBACK}:{self.port}",
            "children": self.opts.kamailio_children,
            "shm_mb": self.opts.kamailio_shm,
            "pkg_mb": self.opts.kamailio_pkg,
            "startup_s": round(waited, 3),
            "processes": len(group_pids(self.pgid)),
        })


class SwitchboardServer(Server):
    """Switchboard through its fixed CLI contract:

      switchboard --data DIR domain add D
      switchboard --data DIR user add USER@D --password-stdin   (password on stdin)
      switchboard --data DIR serve --domain D --sip-udp A --sip-tcp A --sip-tls A --http ""
    """

    name = "switchboard"

    @staticmethod
    def binary(opts: argparse.Namespace) -> Path:
        return Path(opts.switchboard_bin or os.environ.get("SWITCHBOARD_BIN") or DEFAULT_SWITCHBOARD_BIN).absolute()

    @classmethod
    def unavailable_reason(cls, opts: argparse.Namespace) -> str | None:
        b = cls.binary(opts)
        if not b.exists():
            return (f"binary not found at {b} -- build it with "
                    f"`cargo build --release -p switchboard-server` (or pass --switchboard-bin PATH "
                    f"/ set SWITCHBOARD_BIN, or use --build-switchboard)")
        if not os.access(b, os.X_OK):
            return f"{b} is not executable"
        return None

    def __init__(self, opts: argparse.Namespace, workdir: Path, label: str | None = None) -> None:
        super().__init__(opts, workdir, label)
        self.bin = self.binary(opts)
        self.data = self.dir / "data"
        self.tcp_port = self.port  # same number, other transport
        self.tls_port = free_port()
        self.env = dict(os.environ)
        # the configuration is what this harness passes, nothing inherited
        self.env.pop("SWITCHBOARD_CONFIG", None)
        self.env["RUST_LOG"] = switchboard_log_filter(opts)
        # informative only (the real server ignores it; testing/fake-switchboard uses it)
        self.env["SWITCHBOARD_BENCH_SCENARIO"] = opts.scenario
        self.archiving = getattr(opts, "switchboard_archiving", "off") == "on"
        self.config_file: Path | None = None

    def _cli(self, args: list[str], stdin: bytes | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
        cmd = [str(self.bin), "--data", str(self.data)] + args
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout,
                                  env=self.env, cwd=str(self.dir), start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"`{' '.join(cmd)}` timed out after {timeout:.0f}s") from e

    def provision(self, users: list[User], scenario: str) -> None:
        t0 = time.monotonic()
        self.data.mkdir(parents=True, exist_ok=True)
        r = self._cli(["domain", "add", DOMAIN])
        if r.returncode != 0:
            # `serve --domain` may create it as well; a real problem shows up
            # as failing `user add` below.
            log(f"switchboard: `domain add {DOMAIN}` exited {r.returncode}: "
                f"{(r.stderr or r.stdout).decode(errors='replace').strip()[:300]}")

        def add(u: User) -> tuple[User, subprocess.CompletedProcess]:
            return u, self._cli(["user", "add", f"{u.name}@{DOMAIN}", "--password-stdin"],
                                stdin=(u.password + "\n").encode())

        pending = list(users)
        for attempt in range(3):
            failed: list[tuple[User, subprocess.CompletedProcess]] = []
            jobs = max(1, self.opts.provision_jobs if attempt == 0 else 1)
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=jobs) as ex:
                for u, r in ex.map(add, pending):
                    if r.returncode != 0:
                        failed.append((u, r))
            if not failed:
                break
            pending = [u for u, _ in failed]
            u, r = failed[0]
            log(f"switchboard: {len(failed)} `user add` failed (attempt {attempt + 1}), e.g. {u.name}: "
                f"exit {r.returncode}: {(r.stderr or r.stdout).decode(errors='replace').strip()[:300]}")
        else:
            raise BenchError(f"switchboard: could not provision {len(pending)} users (see messages above)")
        self.info["provision_s"] = round(time.monotonic() - t0, 3)
        self.info["provision_ms_per_user"] = round(1000 * self.info["provision_s"] / max(1, len(users)), 2)
        self.info["archiving"] = "on" if self.archiving else "off"
        if self.archiving:
            self.enable_archiving()
        if scenario == "conference":
            self.config_file = self.dir / "switchboard.toml"
            self.config_file.write_text(conference_config(self.opts))
        elif scenario == "presence" and presence_config(self.opts):
            self.config_file = self.dir / "switchboard.toml"
            self.config_file.write_text(presence_config(self.opts))

    def enable_archiving(self) -> None:
        """Archive every MESSAGE between users of the domain, non-critical
        mode (records are written behind delivery, spooled if the archive
        cannot take them)."""
        for args in (["archive", "config", "set", "--enabled", "on"],
                     ["archive", "policy", "set", "--global", "--internal", "on"]):
            r = self._cli(args)
            if r.returncode != 0:
                raise BenchError(f"switchboard: `{' '.join(args)}` exited {r.returncode}: "
                                 f"{(r.stderr or r.stdout).decode(errors='replace').strip()[:300]}")
        self.info["archive_setup"] = ["archive config set --enabled on",
                                      "archive policy set --global --internal on"]

    def archive_report(self) -> dict:
        """What the archive holds: `archive status --json` (head and
        retention anchor: records = head seq - anchor seq, nothing is purged
        during a run; plus records waiting in the spool), and the records per
        kind read from DATA/archive.db (read-only; informative)."""
        rep: dict = {}
        r = self._cli(["archive", "status", "--json"], timeout=60)
        if r.returncode != 0:
            rep["error"] = (f"`archive status --json` exited {r.returncode}: "
                            f"{(r.stderr or r.stdout).decode(errors='replace').strip()[:300]}")
        else:
            rep.update(parse_archive_status(r.stdout.decode(errors="replace")))
        rep["by_kind"] = archive_kinds(self.data / "archive.db")
        return rep

    def archive_seq(self) -> int | None:
        """Highest record number in DATA/archive.db (read-only), None if unreadable."""
        try:
            con = sqlite3.connect(f"file:{self.data / 'archive.db'}?mode=ro", uri=True, timeout=1.0)
            try:
                row = con.execute("SELECT MAX(seq) FROM archive_records").fetchone()
            finally:
                con.close()
            return int(row[0] or 0)
        except (sqlite3.Error, OSError, TypeError, ValueError):
            return None

    def start(self, scenario: str) -> None:
        cfg = ["--config", str(self.config_file)] if self.config_file else []
        cmd = [str(self.bin), "--data", str(self.data)] + cfg + ["serve", "--domain", DOMAIN,
               "--sip-udp", f"{LOOPBACK}:{self.port}",
               "--sip-tcp", f"{LOOPBACK}:{self.tcp_port}",
               "--sip-tls", f"{LOOPBACK}:{self.tls_port}",
               # no HTTP listener: nothing outside loopback, nothing measured there
               "--http", ""]
        (self.dir / "cmd.txt").write_text(" ".join(cmd) + "\n")
        # which build ran: on a shared machine target/release/switchboard is
        # rebuilt by others between runs (copy it elsewhere and pass
        # --switchboard-bin to keep one build for a series of runs)
        ident = binary_identity(self.bin)
        self.proc = PROCS.spawn("switchboard", cmd, self.dir, self.logfile, env=self.env)
        waited = sip_options_probe(self.port, 30.0, self.proc)
        self.info.update({
            "binary": str(self.bin),
            "binary_identity": ident,
            "version": _first_line([str(self.bin), "--version"]),
            "udp": f"{LOOPBACK}:{self.port}",
            "tcp": f"{LOOPBACK}:{self.tcp_port}",
            "tls": f"{LOOPBACK}:{self.tls_port}",
            "rust_log": self.env.get("RUST_LOG"),
            "config": self.config_file.read_text() if self.config_file else None,
            "startup_s": round(waited, 3),
        })


def binary_identity(path: Path) -> dict:
    """sha256 (first 16 hex digits), size and modification time of a file."""
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        st = os.stat(path)
    except OSError as e:
        return {"error": str(e)}
    mtime = _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).replace(microsecond=0)
    return {"sha256": h.hexdigest()[:16], "size": st.st_size, "mtime": mtime.isoformat()}


def switchboard_log_filter(opts: argparse.Namespace) -> str:
    """RUST_LOG of the server: --switchboard-log, else `warn`; the conference
    scenario also keeps the focus's info lines (conference created, member
    joined, "member unreachable; removing them"), which explain lost
    deliveries and cost nothing measurable (a few hundred lines a run)."""
    if getattr(opts, "switchboard_log", None):
        return opts.switchboard_log
    if opts.scenario == "conference":
        return "warn,switchboard::sip::conference=info"
    return "warn"


def conference_config(opts: argparse.Namespace) -> str:
    """The configuration file `serve` gets in the conference scenario."""
    return ("# written by bench/bench.py (conference scenario)\n"
            "[conference]\n"
            "open_to_organisation = true\n"
            f"max_participants = {max(250, opts.participants)}\n")


SWITCHBOARD_MAX_SUBSCRIPTIONS_PER_DEVICE = 2000  # Switchboard's default [presence] limit


def presence_config(opts: argparse.Namespace) -> str | None:
    """The configuration file `serve` gets in the presence scenario, or None
    (default configuration). Every watcher subscribes from the one SIPp
    socket, which Switchboard counts as one device: above its default limit
    of subscriptions per device the limit is raised to --watchers."""
    if opts.watchers <= SWITCHBOARD_MAX_SUBSCRIPTIONS_PER_DEVICE:
        return None
    return ("# written by bench/bench.py (presence scenario: all watchers share one SIPp socket)\n"
            "[presence]\n"
            f"max_subscriptions_per_device = {opts.watchers}\n")


def parse_archive_status(text: str) -> dict:
    """`archive status --json` -> records held (head seq - anchor seq), spooled."""
    try:
        st = json.loads(text)
    except ValueError:
        return {"error": f"archive status is not JSON: {text.strip()[:200]}"}

    def seq(v) -> int:
        try:
            return int(str(v).split(":", 1)[0])
        except (TypeError, ValueError):
            return 0

    head = seq(st.get("head")) if st.get("head") else 0
    anchor = seq(st.get("anchor")) if st.get("anchor") else 0
    return {"head": st.get("head"), "anchor": st.get("anchor"), "records": max(0, head - anchor),
            "spooled": int(st.get("spooled") or 0)}


def archive_kinds(db: Path) -> dict | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = con.execute("SELECT kind, COUNT(*) FROM archive_records GROUP BY kind").fetchall()
        finally:
            con.close()
        return {str(k): int(n) for k, n in rows}
    except (sqlite3.Error, OSError):
        return None


def _first_line(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=10)
        text = (r.stdout or r.stderr).decode(errors="replace").strip()
        return text.splitlines()[0] if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None


# --------------------------------------------------------------------------
# Scenario runs
# --------------------------------------------------------------------------


def load_args(opts: argparse.Namespace, rate: float) -> list[str]:
    return ["-r", f"{rate:g}", "-rp", "1000", "-l", str(opts.limit)]


def timed_load(sipp: Sipp, seconds: float, server: Server, drain: float = 15.0) -> dict:
    """Run a SIPp client for `seconds`, then stop placing calls and drain."""
    sipp.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not sipp.running():
            break
        server.check_alive()
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    early_exit = not sipp.running()
    sipp.soft_stop()
    rc = sipp.wait(drain)
    killed = rc is None
    sipp.kill()
    return {"sipp_rc": sipp.proc.returncode, "sipp_killed_after_drain": killed, "sipp_exited_early": early_exit}


def register_rows(users: list[User]) -> list[tuple[str, ...]]:
    return [(u.name, DOMAIN, u.password, u.auth_field()) for u in users]


def scenario_register(server: Server, users: list[User], opts: argparse.Namespace, rundir: Path) -> dict:
    csv = write_csv(rundir / "users.csv", register_rows(users))
    common = ["-inf", str(csv), "-auth_uri", DOMAIN] + load_args(opts, opts.rate)
    res: dict = {"offered_rate": opts.rate, "users": len(users)}
    if opts.warmup > 0:
        log(f"{server.name}: register warm-up {opts.warmup:g}s at {opts.rate:g}/s")
        w = Sipp("warmup", rundir / "warmup", "register.xml", free_port(), server.port, common)
        timed_load(w, opts.warmup, server)
        res["warmup"] = sipp_counts(w.stats())
    log(f"{server.name}: register measured run {opts.duration:g}s at {opts.rate:g}/s")
    s = Sipp("register", rundir / "measured", "register.xml", free_port(), server.port, common)
    cpu = CpuWindow(server.pgid)
    mem = MemSampler(server.pgid).start()
    cpu.begin()
    run = timed_load(s, opts.duration, server)
    res["window"] = cpu.end()
    res["memory"] = mem.stop()
    res["sipp"] = sipp_counts(s.stats())
    res["sipp"].update(run)
    res["latency"] = latency_summary_us(read_latencies(s))
    if res["sipp"]["successful"] == 0:
        res["diagnostics"] = s.diagnostics()
    finish_ops(res, res["sipp"]["successful"], "registrations")
    return res


def register_one(server: Server, user: User, port: int, rundir: Path) -> None:
    """REGISTER one user (with digest) whose contact is 127.0.0.1:port."""
    csv = write_csv(rundir / "rcpt.csv", register_rows([user]))
    s = Sipp("register-recipient", rundir, "register.xml", port, server.port,
             ["-inf", str(csv), "-auth_uri", DOMAIN, "-m", "1", "-timeout", "15s"]).start()
    rc = s.wait(20)
    s.kill()
    st = sipp_counts(s.stats())
    if rc != 0 or st["successful"] != 1:
        raise BenchError(f"{server.name}: registering recipient {user.name} failed (sipp rc={rc})\n"
                         + s.diagnostics())


def start_uas(server: Server, port: int, rundir: Path) -> Sipp:
    uas = Sipp("uas", rundir, "message-uas.xml", port, None, []).start()
    time.sleep(0.3)
    if not uas.running():
        raise BenchError("SIPp UAS (recipient) did not start\n" + uas.diagnostics())
    return uas


def stop_uas(uas: Sipp) -> dict:
    uas.soft_stop()
    uas.finish(5.0)
    c = sipp_counts(uas.stats())
    return {
        "received": c["created"],
        "answered": c["successful"],
        "failed": c["failed"],
        "out_of_call_msgs": c["out_of_call_msgs"],
        "dead_call_msgs": c["dead_call_msgs"],
        "retransmissions": c["retransmissions"],
    }


def scenario_message(server: Server, users: list[User], opts: argparse.Namespace, rundir: Path) -> dict:
    recipient, senders = users[0], users[1:]
    uas_port = free_port()
    register_one(server, recipient, uas_port, rundir / "register-recipient")
    rows = [(u.name, DOMAIN, recipient.name, u.auth_field()) for u in senders]
    csv = write_csv(rundir / "senders.csv", rows)
    common = ["-inf", str(csv), "-auth_uri", f"{recipient.name}@{DOMAIN}"] + load_args(opts, opts.rate)
    res: dict = {"offered_rate": opts.rate, "senders": len(senders),
                 "recipient": f"{recipient.name}@{DOMAIN} at udp {LOOPBACK}:{uas_port}"}
    if opts.warmup > 0:
        log(f"{server.name}: message warm-up {opts.warmup:g}s at {opts.rate:g}/s")
        uas = start_uas(server, uas_port, rundir / "warmup-uas")
        w = Sipp("warmup", rundir / "warmup", "message-uac.xml", free_port(), server.port, common)
        timed_load(w, opts.warmup, server)
        res["warmup"] = sipp_counts(w.stats())
        res["warmup"]["uas"] = stop_uas(uas)
        if settle_wanted(opts):
            # the warm-up's archive writes must not spill into the window
            res["warmup"]["settle"] = settle(server)
    log(f"{server.name}: message measured run {opts.duration:g}s at {opts.rate:g}/s")
    uas = start_uas(server, uas_port, rundir / "uas")
    s = Sipp("message", rundir / "measured", "message-uac.xml", free_port(), server.port, common)
    cpu = CpuWindow(server.pgid)
    mem = MemSampler(server.pgid).start()
    cpu.begin()
    run = timed_load(s, opts.duration, server)
    if settle_wanted(opts):
        # archiving writes behind delivery: the window ends when the server
        # has finished (idle, archive no longer growing), so that the
        # archive's CPU is counted
        res["settle"] = settle(server)
    res["window"] = cpu.end()
    res["memory"] = mem.stop()
    res["sipp"] = sipp_counts(s.stats())
    res["sipp"].update(run)
    res["uas"] = stop_uas(uas)
    res["latency"] = latency_summary_us(read_latencies(s))
    codes: dict[str, int] = {}
    for parts in s.log_lines("LAT"):
        code = parts[2] if len(parts) > 2 else "?"
        codes[code] = codes.get(code, 0) + 1
    res["final_responses"] = codes  # 200: relayed from the recipient; 202: accepted for later delivery
    if res["sipp"]["successful"] == 0:
        res["diagnostics"] = s.diagnostics()
    finish_ops(res, res["sipp"]["successful"], "messages")
    return res


def settle_wanted(opts: argparse.Namespace) -> bool:
    return getattr(opts, "switchboard_archiving", "off") == "on" or bool(getattr(opts, "archiving_compare", False))


def settle(server: Server, timeout: float = 30.0, step: float = 0.5) -> dict:
    """Wait (at most `timeout` s) until the server is idle: less than 15 ms
    of CPU per `step` and, for Switchboard, no new archive record, twice in a
    row. Returns how long it took (the confirming steps not counted)."""
    t0 = time.monotonic()
    seq_of = getattr(server, "archive_seq", None)
    last_cpu = group_cpu_seconds(server.pgid)
    last_seq = seq_of() if seq_of else None
    calm, calm_since = 0, t0
    while time.monotonic() - t0 < timeout:
        time.sleep(step)
        server.check_alive()
        cpu = group_cpu_seconds(server.pgid)
        seq = seq_of() if seq_of else None
        if cpu - last_cpu <= 0.015 and seq == last_seq:
            if calm == 0:
                calm_since = time.monotonic() - step
            calm += 1
        else:
            calm = 0
        last_cpu, last_seq = cpu, seq
        if calm >= 2:
            return {"settle_s": round(calm_since - t0, 2), "archive_seq": seq, "settled": True}
    return {"settle_s": round(time.monotonic() - t0, 2), "archive_seq": last_seq, "settled": False}


def finish_ops(res: dict, ops: int, unit: str) -> None:
    w = res["window"]
    elapsed = res["sipp"].get("elapsed_s") or w["wall_s"]
    cpu = w["server_cpu_s"]
    res["unit"] = unit
    res["ops"] = ops
    res["achieved_rate"] = round(ops / elapsed, 1) if elapsed else None
    res["cpu_ms_per_1000"] = round(1000.0 * cpu / ops * 1000.0, 1) if ops else None
    res["ops_per_cpu_s"] = round(ops / cpu, 1) if cpu > 0 else None
    s = res["sipp"]
    res["failures"] = {
        "failed_calls": s["failed"],
        "unexpected_msgs": s["failed_unexpected_msg"] + s["out_of_call_msgs"],
        "retransmissions": s["retransmissions"],
    }
    if "uas" in res:
        res["failures"]["uas_failed_calls"] = res["uas"]["failed"]
        res["failures"]["unexpected_msgs"] += res["uas"]["out_of_call_msgs"]


def attribute_rounds(pubs: dict[int, float], notifies: list[tuple[float, str, int | None]]
                     ) -> tuple[str, dict[int, list[float]]]:
    """Which NOTIFY (time, watcher call, round marker) answers which PUBLISH.

    "marker": the PIDF note "bench-round-K" came through in the NOTIFY; the
    first NOTIFY per watcher carrying K counts for round K.
    "time-window": the server's NOTIFY bodies do not carry the note; round
    K's NOTIFY for a watcher is its first NOTIFY after PUBLISH K and before
    PUBLISH K+1.
    Returns (mode, {round: [arrival times, one per notified watcher]}).
    """
    ntf: dict[int, list[float]] = {}
    if any(k is not None for _, _, k in notifies):
        seen: set[tuple[str, int]] = set()
        for t, call, k in notifies:
            if k is not None and (call, k) not in seen:
                seen.add((call, k))
                ntf.setdefault(k, []).append(t)
        return "marker", ntf
    starts = sorted(pubs.items(), key=lambda kv: kv[1])
    by_call: dict[str, list[float]] = {}
    for t, call, _ in notifies:
        by_call.setdefault(call, []).append(t)
    for i, (k, t0) in enumerate(starts):
        t1 = starts[i + 1][1] if i + 1 < len(starts) else float("inf")
        for times in by_call.values():
            first = next((t for t in sorted(times) if t0 <= t < t1), None)
            if first is not None:
                ntf.setdefault(k, []).append(first)
    return "time-window", ntf


def scenario_presence(server: Server, users: list[User], opts: argparse.Namespace, rundir: Path) -> dict:
    presentity, watchers = users[0], users[1:opts.watchers + 1]
    nw = len(watchers)
    aor = f"{presentity.name}@{DOMAIN}"
    wcsv = write_csv(rundir / "watchers.csv",
                     [(u.name, DOMAIN, presentity.name, u.auth_field()) for u in watchers])
    pcsv = write_csv(rundir / "presentity.csv",
                     [(presentity.name, DOMAIN, presentity.name, presentity.auth_field())])
    res: dict = {"watchers": nw, "presentity": aor, "rounds": opts.rounds, "gap_ms": opts.gap_ms,
                 "subscribe_rate": opts.rate}
    # 0. the server's memory idle, users provisioned, before any SUBSCRIBE
    mem_before = memory_point(server)
    log(f"{server.name}: presence: idle PSS {mem_before['pss_kb']:,} KiB before subscribing "
        f"(samples {mem_before['pss_samples_kb']}, idle={mem_before['idle']})")
    cpu_sub = CpuWindow(server.pgid)
    mem = MemSampler(server.pgid).start()
    # 1. subscribe every watcher (digest-authenticated SUBSCRIBE, Event: presence)
    log(f"{server.name}: presence: subscribing {nw} watchers at {opts.rate:g}/s")
    w = Sipp("watchers", rundir / "watchers", "presence-watcher.xml", free_port(), server.port,
             ["-inf", str(wcsv), "-auth_uri", aor, "-m", str(nw),
              "-r", f"{opts.rate:g}", "-rp", "1000", "-l", str(nw + 10)])
    cpu_sub.begin()
    w.start()
    sub_deadline = time.monotonic() + nw / opts.rate + 20.0
    subscribed = 0
    while time.monotonic() < sub_deadline:
        server.check_alive()
        subscribed = len(w.log_lines("SUB"))
        if subscribed >= nw or not w.running():
            break
        time.sleep(0.1)
    time.sleep(0.5)  # let the initial NOTIFY transactions settle
    subscribed = len(w.log_lines("SUB"))
    res["subscribe_window"] = cpu_sub.end()
    res["subscribed"] = subscribed
    res["subscribe_cpu_ms_per_1000"] = (round(1e6 * res["subscribe_window"]["server_cpu_s"] / subscribed, 1)
                                        if subscribed else None)
    if subscribed == 0:
        w.kill()
        res["memory"] = mem.stop()
        raise BenchError(f"{server.name}: no watcher could subscribe\n" + w.diagnostics())
    # memory with every subscription up (initial NOTIFYs answered), before
    # any PUBLISH; optionally again after --sub-mem-hold s without traffic
    mem_after = memory_point(server)
    held = None
    if opts.sub_mem_hold > 0:
        log(f"{server.name}: presence: holding {opts.sub_mem_hold:g} s without traffic, then memory again")
        t_hold = time.monotonic() + opts.sub_mem_hold
        while time.monotonic() < t_hold:
            server.check_alive()
            time.sleep(min(1.0, max(0.0, t_hold - time.monotonic())))
        held = memory_point(server)
        held["hold_s"] = opts.sub_mem_hold
    res["subscription_memory"] = subscription_memory(mem_before, mem_after, subscribed, held)
    res["pss_kib_per_subscription"] = res["subscription_memory"]["kib_per_subscription"]
    log(f"{server.name}: presence: PSS {mem_before['pss_kb']:,} -> {mem_after['pss_kb']:,} KiB "
        f"with {subscribed} subscriptions: {res['pss_kib_per_subscription']} KiB per subscription"
        + (f"; after {opts.sub_mem_hold:g} s: {held['pss_kb']:,} KiB, "
           f"{res['subscription_memory']['kib_per_subscription_held']} KiB per subscription" if held else ""))
    # 2. publish `rounds` PIDF documents; every subscribed watcher should get
    #    one NOTIFY per round
    log(f"{server.name}: presence: {subscribed} subscribed; publishing {opts.rounds} rounds, {opts.gap_ms} ms apart")
    p = Sipp("publisher", rundir / "publisher", "presence-publisher.xml", free_port(), server.port,
             ["-inf", str(pcsv), "-auth_uri", aor, "-m", "1",
              "-set", "rounds", str(opts.rounds), "-set", "gap_ms", str(opts.gap_ms)])
    cpu = CpuWindow(server.pgid)
    cpu.begin()
    p.start()
    # Done when the publisher has finished and either every watcher call
    # ended (they end on the "bench-last" note) or no NOTIFY came for 1 s
    # (a server whose NOTIFY bodies drop the note: watchers are killed).
    pub_deadline = time.monotonic() + opts.rounds * (opts.gap_ms / 1000.0 + 1.0) + 20.0
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < pub_deadline and (p.running() or w.running()):
        server.check_alive()
        count = len(w.log_lines("NTF"))
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if not p.running() and time.monotonic() - last_change > 1.0:
            break
        time.sleep(0.1)
    time.sleep(0.2)
    res["window"] = cpu.end()
    prc, pkilled = p.finish(0.1)
    wrc, wkilled = w.finish(2.0)
    res["memory"] = mem.stop()
    res["sipp"] = {"watchers": sipp_counts(w.stats()), "publisher": sipp_counts(p.stats()),
                   "watchers_rc": wrc, "watchers_killed": wkilled,
                   "publisher_rc": prc, "publisher_killed": pkilled}
    pubs: dict[int, float] = {}
    for parts in p.log_lines("PUB"):
        if len(parts) >= 4:
            pubs[int(sipp_float(parts[3]))] = sipp_float(parts[1]) + sipp_float(parts[2]) / 1e6
    # NTF <sec> <usec> <watcher call> [bench-round-K ...]
    notifies = []
    for parts in w.log_lines("NTF"):
        if len(parts) >= 4:
            marker = parts[4] if len(parts) >= 5 else ""
            k = int(marker[len("bench-round-"):]) if marker.startswith("bench-round-") else None
            notifies.append((sipp_float(parts[1]) + sipp_float(parts[2]) / 1e6, parts[3], k))
    res["attribution"], ntf = attribute_rounds(pubs, notifies)
    res["notifies_logged"] = len(notifies)
    rounds = []
    for k in range(1, opts.rounds + 1):
        t0 = pubs.get(k)
        times = sorted(ntf.get(k, []))
        r = {"round": k, "published": t0 is not None, "notified": len(times),
             "lost": subscribed - len(times)}
        if t0 is not None and times:
            delays = [(t - t0) * 1000.0 for t in times]
            r["first_ms"] = round(delays[0], 3)
            r["p50_ms"] = round(percentile(delays, 50), 3)
            r["last_ms"] = round(delays[-1], 3)
            r["notify_per_s"] = round(len(times) / max(delays[-1] / 1000.0, 1e-6), 1)
        rounds.append(r)
    res["rounds_detail"] = rounds
    done = [r for r in rounds if "last_ms" in r]
    notified = sum(r["notified"] for r in rounds)
    res["ops"] = notified
    res["unit"] = "NOTIFYs"
    if done:
        lasts = sorted(r["last_ms"] for r in done)
        res["fanout_last_ms_median"] = round(percentile(lasts, 50), 3)
        res["fanout_last_ms_max"] = round(lasts[-1], 3)
        res["notify_per_s_median"] = round(percentile(sorted(r["notify_per_s"] for r in done), 50), 1)
        res["achieved_rate"] = res["notify_per_s_median"]
    else:
        res["achieved_rate"] = None
    res["lost_subscriptions"] = max((r["lost"] for r in rounds), default=nw) + (nw - subscribed)
    cpu_s = res["window"]["server_cpu_s"]
    res["cpu_ms_per_1000"] = round(1e6 * cpu_s / notified, 1) if notified else None
    res["ops_per_cpu_s"] = round(notified / cpu_s, 1) if cpu_s > 0 else None
    wc = res["sipp"]["watchers"]
    res["failures"] = {
        "failed_subscriptions": nw - subscribed,
        "failed_calls": wc["failed"] + res["sipp"]["publisher"]["failed"],
        "unexpected_msgs": wc["failed_unexpected_msg"] + wc["out_of_call_msgs"],
        "retransmissions": wc["retransmissions"] + res["sipp"]["publisher"]["retransmissions"],
    }
    if len(pubs) < opts.rounds:
        res["diagnostics"] = p.diagnostics()
    return res

# --------------------------------------------------------------------------
# conference: message fan-out in one conference (Switchboard only)
# --------------------------------------------------------------------------

CONF_FACTORY = "conf-factory"


class LogCounter:
    """Counts the lines starting with `prefix` in a file that grows, reading
    only what was appended since the last call."""

    def __init__(self, path: Path, prefix: bytes) -> None:
        self.path = path
        self.prefix = prefix
        self.pos = 0
        self.partial = b""
        self.count = 0

    def update(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return self.count
        if not data:
            return self.count
        self.pos += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        self.count += sum(1 for ln in lines if ln.startswith(self.prefix))
        return self.count


def tagged_fields(parts: list[str]) -> dict[str, str]:
    """"KEY a=1 b=2 ..." -> {"a": "1", "b": "2"} (the conference scenarios log
    key=value fields: SIPp prints a variable equal to 0 as an empty string,
    which would shift positional fields)."""
    out = {}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        if eq:
            out[k] = v
    return out


def tagged_time(v: str | None) -> float | None:
    """"<sec>:<usec>" (SIPp doubles, either may print empty for 0) -> seconds."""
    if not v or ":" not in v:
        return None
    sec, _, usec = v.partition(":")
    if sipp_float(sec) <= 0:
        return None  # no clock reading (a truncated line)
    return sipp_float(sec) + sipp_float(usec) / 1e6


def parse_receipts(lines: list[list[str]]) -> list[tuple[float, str, int | None]]:
    """Receipt lines -> (time, user, K or None). Either
    "RCV t=<sec>:<usec> to=<user> mk=[msg-K]" (the scenarios) or the older
    positional "RCV <sec> <usec> <user> [msg-K]". Lines without a time or a
    user (truncated) are skipped."""
    out = []
    for parts in lines:
        f = tagged_fields(parts)
        if "t" in f:
            t, who, mk = tagged_time(f.get("t")), f.get("to", ""), f.get("mk", "")
            if t is None or not who:
                continue
        elif len(parts) >= 4:
            t = sipp_float(parts[1]) + sipp_float(parts[2]) / 1e6
            who, mk = parts[3], (parts[4] if len(parts) >= 5 else "")
        else:
            continue
        k = None
        if mk.startswith("msg-"):
            try:
                k = int(mk[4:])
            except ValueError:
                k = None
        out.append((t, who, k))
    return out


def parse_sends(lines: list[list[str]]) -> dict[int, float]:
    """"SND t=<sec>:<usec> k=<K>" lines -> {K: send time}."""
    sends: dict[int, float] = {}
    for parts in lines:
        f = tagged_fields(parts)
        t = tagged_time(f.get("t"))
        try:
            k = int(f.get("k", ""))
        except ValueError:
            continue
        if t is not None:
            sends[k] = t
    return sends


def parse_joined(lines: list[list[str]]) -> set[str]:
    """"JOINED t=<sec>:<usec> user=<user>" lines -> the users who joined."""
    return {f["user"] for f in map(tagged_fields, lines) if f.get("user")}


def analyse_conference(sends: dict[int, float], receipts: list[tuple[float, str, int | None]],
                       recipients: list[str]) -> dict:
    """Fan-out figures from the send time of each message (marker K ->
    time the sender sent the MESSAGE the focus accepted) and every receipt
    (time, recipient, K or None) logged by the recipients.

    deliveries: distinct (recipient, K) pairs with K a message that was sent
    and the recipient one of `recipients`; expected: sent x recipients; lost:
    the difference. A message is complete when every recipient got it; its
    completion latency is its last receipt minus its send time.
    out_of_order: receipts of a message sent before one the same recipient
    already had (the focus promises each member the order it accepted them).
    """
    rset = set(recipients)
    first: dict[tuple[str, int], float] = {}
    dup = other = unknown = stranger = out_of_order = 0
    order = {k: i for i, k in enumerate(sorted(sends, key=lambda k: (sends[k], k)))}
    max_rank: dict[str, int] = {}
    for t, who, k in sorted(receipts, key=lambda r: r[0]):
        if k is None:
            other += 1
            continue
        if k not in sends:
            unknown += 1
            continue
        if who not in rset:
            stranger += 1
            continue
        if (who, k) in first:
            dup += 1
            continue
        first[(who, k)] = t
        rank = order[k]
        if rank < max_rank.get(who, -1):
            out_of_order += 1
        max_rank[who] = max(max_rank.get(who, -1), rank)
    by_msg: dict[int, list[float]] = {}
    for (who, k), t in first.items():
        by_msg.setdefault(k, []).append(t)
    n = len(rset)
    completion, first_lat, all_lat = [], [], []
    complete = 0
    for k, t0 in sends.items():
        times = by_msg.get(k, [])
        all_lat.extend((t - t0) * 1e6 for t in times)
        if times:
            first_lat.append((min(times) - t0) * 1e6)
        if len(times) == n:
            complete += 1
            completion.append((max(times) - t0) * 1e6)
    deliveries = len(first)
    expected = len(sends) * n
    res = {
        "messages": len(sends),
        "recipients_per_message": n,
        "expected": expected,
        "deliveries": deliveries,
        "lost": expected - deliveries,
        "complete_messages": complete,
        "duplicates": dup,
        "out_of_order": out_of_order,
        "other_messages": other,
        "unknown_markers": unknown,
        "not_a_recipient": stranger,
        "completion": latency_summary_us(completion),
        "first_delivery": latency_summary_us(first_lat),
        "per_delivery": latency_summary_us(all_lat),
        "lost_by_recipient": {},
    }
    if deliveries and sends:
        t_first = min(sends.values())
        t_last = max(first.values())
        span = max(t_last - t_first, 1e-6)
        res["span_s"] = round(span, 3)
        res["deliveries_per_s"] = round(deliveries / span, 1)
        res["messages_completed_per_s"] = round(complete / span, 2)
    if res["lost"]:
        got: dict[str, int] = {}
        for who, _k in first:
            got[who] = got.get(who, 0) + 1
        missing = {w: len(sends) - got.get(w, 0) for w in recipients if got.get(w, 0) < len(sends)}
        res["lost_by_recipient"] = dict(sorted(missing.items(), key=lambda kv: -kv[1])[:20])
        res["recipients_missing_some"] = len(missing)
    return res


def server_log_evidence(path: Path) -> dict:
    """Warnings, errors and focus removals in the Switchboard log."""
    counts = {"warn": 0, "error": 0, "member_unreachable": 0}
    examples: list[str] = []
    ansi = re.compile(r"\x1b\[[0-9;]*m")
    try:
        with open(path, errors="replace") as f:
            for line in f:
                line = ansi.sub("", line)
                hit = None
                if "member unreachable" in line:
                    counts["member_unreachable"] += 1
                    hit = line
                if " WARN " in line or "WARN " in line[:40]:
                    counts["warn"] += 1
                    hit = line
                if " ERROR " in line or "ERROR " in line[:40]:
                    counts["error"] += 1
                    hit = line
                if hit and len(examples) < 8:
                    examples.append(hit.strip()[:300])
    except OSError:
        pass
    counts["examples"] = examples
    return counts


def wait_log(sipp: Sipp, prefix: str, want: int, timeout: float, server: Server) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    lines: list[list[str]] = []
    while time.monotonic() < deadline:
        server.check_alive()
        lines = sipp.log_lines(prefix)
        if len(lines) >= want or not sipp.running():
            break
        time.sleep(0.1)
    return sipp.log_lines(prefix)


def scenario_conference(server: Server, users: list[User], opts: argparse.Namespace, rundir: Path) -> dict:
    """One conference of `--participants` users: user0000 creates it through
    the factory (IM session, stays in as a session member), user0001.. join
    in pager mode (REGISTERed, then a MESSAGE to the conference URI), and
    user0001 posts `--messages` messages at `--rate` per second; every other
    member must receive each one."""
    creator, members = users[0], users[1:opts.participants]
    sender = members[0]
    nmsg = opts.messages
    res: dict = {"participants": 1 + len(members), "messages_offered": nmsg, "offered_rate": opts.rate,
                 "creator": f"{creator.name}@{DOMAIN} (session member)",
                 "sender": f"{sender.name}@{DOMAIN} (pager member)"}
    mem = MemSampler(server.pgid).start()
    setup = CpuWindow(server.pgid)
    setup.begin()
    # 1. the creator: INVITE to the factory, stays in the session
    ccsv = write_csv(rundir / "creator.csv", [(creator.name, DOMAIN, CONF_FACTORY, creator.auth_field())])
    c = Sipp("conf-creator", rundir / "creator", "conference-creator.xml", free_port(), server.port,
             ["-inf", str(ccsv), "-auth_uri", f"{CONF_FACTORY}@{DOMAIN}", "-m", "1"]).start()
    conf = wait_log(c, "CONF", 1, 15.0, server)
    if not conf or len(conf[0]) < 2 or "@" not in conf[0][1]:
        res["memory"] = mem.stop()
        raise BenchError(f"{server.name}: the conference could not be created through "
                         f"sip:{CONF_FACTORY}@{DOMAIN}\n" + c.diagnostics())
    conf_uri = conf[0][1]
    conf_user = conf_uri.split(":", 1)[-1].split("@", 1)[0]
    res["conference"] = conf_uri
    log(f"{server.name}: conference {conf_uri} created by {creator.name}")
    # 2. the members REGISTER from the port their SIPp will listen on
    mport = free_port()
    rcsv = write_csv(rundir / "members-register.csv", register_rows(members))
    r = Sipp("conf-register", rundir / "members-register", "register.xml", mport, server.port,
             ["-inf", str(rcsv), "-auth_uri", DOMAIN, "-m", str(len(members)),
              "-r", "500", "-rp", "1000", "-l", "100", "-timeout", "40s"]).start()
    rrc = r.wait(45)
    r.kill()
    reg = sipp_counts(r.stats())
    res["registered"] = reg["successful"]
    if reg["successful"] != len(members):
        res["memory"] = mem.stop()
        raise BenchError(f"{server.name}: only {reg['successful']}/{len(members)} members registered "
                         f"(sipp rc={rrc})\n" + r.diagnostics())
    # 3. the members join (pager mode) and answer what the focus sends them
    log(f"{server.name}: {len(members)} members registered; joining them to the conference")
    jcsv = write_csv(rundir / "members.csv", [(u.name, DOMAIN, conf_user, u.auth_field()) for u in members])
    m = Sipp("conf-members", rundir / "members", "conference-member.xml", mport, server.port,
             ["-inf", str(jcsv), "-auth_uri", f"{conf_user}@{DOMAIN}",
              "-oocsf", str(SCENARIO_DIR / "conference-member-recv.xml"),
              "-m", str(len(members)), "-r", "200", "-rp", "1000", "-l", str(len(members) + 10),
              "-set", "hold_ms", "600000"],
             # -trace_err would write a line for every out-of-call MESSAGE
             # (every delivery): SIPp CPU taken from the server's two cores
             trace_err=False).start()
    joined_lines = wait_log(m, "JOINED", len(members), len(members) / 200.0 + 20.0, server)
    joined = parse_joined(joined_lines)
    if settle_wanted(opts):
        # the joins' archive records are written behind them: count them in
        # the join window, not in the fan-out window
        res["join_settle"] = settle(server)
    res["join_window"] = setup.end()
    res["joined"] = len(joined)
    res["join_cpu_ms_per_member"] = (round(1000 * res["join_window"]["server_cpu_s"] / (len(joined) + 1), 2)
                                     if joined else None)
    if sender.name not in joined:
        c.kill()
        m.kill()
        res["memory"] = mem.stop()
        raise BenchError(f"{server.name}: {len(joined)}/{len(members)} members joined, not the sender "
                         f"{sender.name}\n" + m.diagnostics())
    if len(joined) < len(members):
        log(f"{server.name}: WARNING: only {len(joined)}/{len(members)} members joined")
    recipients = [creator.name] + [u.name for u in members[1:] if u.name in joined]
    # 4. the sender posts nmsg messages at opts.rate per second
    log(f"{server.name}: {len(joined)} members joined; {sender.name} posts {nmsg} messages at {opts.rate:g}/s "
        f"to {len(recipients)} recipients each")
    scsv = write_csv(rundir / "sender.csv", [(sender.name, DOMAIN, conf_user, sender.auth_field())])
    s = Sipp("conf-sender", rundir / "sender", "conference-sender.xml", free_port(), server.port,
             ["-inf", str(scsv), "-auth_uri", f"{conf_user}@{DOMAIN}", "-m", str(nmsg),
              "-r", f"{opts.rate:g}", "-rp", "1000", "-l", str(max(10, nmsg))])
    expected_total = nmsg * len(recipients)
    cnt_m, cnt_c = LogCounter(m.log, b"RCV "), LogCounter(c.log, b"RCV ")
    cnt_m.update()
    cnt_c.update()
    base = cnt_m.count + cnt_c.count  # anything the focus sent before (none expected)
    cpu = CpuWindow(server.pgid)
    cpu.begin()
    s.start()
    t_start = time.monotonic()
    send_deadline = t_start + nmsg / opts.rate + 15.0
    hard_deadline = t_start + nmsg / opts.rate + opts.conference_drain
    last_total, last_change, sender_done_at = -1, t_start, None
    ended = "timeout"
    while time.monotonic() < hard_deadline:
        server.check_alive()
        now = time.monotonic()
        total = cnt_m.update() + cnt_c.update() - base
        if total != last_total:
            last_total, last_change = total, now
        if sender_done_at is None:
            if not s.running():
                sender_done_at = now
            elif now > send_deadline:
                s.soft_stop()
        else:
            if total >= expected_total:
                ended = "all delivered"
                break
            if now - last_change > 3.0 and now - sender_done_at > 3.0:
                ended = "no delivery for 3 s"
                break
        time.sleep(0.05)
    res["window_end"] = ended
    if settle_wanted(opts):
        res["settle"] = settle(server)
    res["window"] = cpu.end()
    src, skilled = s.finish(5.0)
    res["memory"] = mem.stop()
    m.kill()
    c.kill()
    res["sipp"] = {"sender": sipp_counts(s.stats()), "members": sipp_counts(m.stats()),
                   "creator": sipp_counts(c.stats()), "sender_rc": src, "sender_killed": skilled}
    sends = parse_sends(s.log_lines("SND"))
    receipts = parse_receipts(m.log_lines("RCV")) + parse_receipts(c.log_lines("RCV"))
    fan = analyse_conference(sends, receipts, recipients)
    res["fanout"] = fan
    res["messages_sent"] = len(sends)
    if len(sends) >= 2:
        span = max(sends.values()) - min(sends.values())
        res["achieved_send_rate"] = round((len(sends) - 1) / span, 2) if span > 0 else None
    res["ops"] = fan["deliveries"]
    res["unit"] = "deliveries"
    res["achieved_rate"] = fan.get("deliveries_per_s")
    cpu_s = res["window"]["server_cpu_s"]
    res["cpu_ms_per_1000"] = round(1e6 * cpu_s / fan["deliveries"], 1) if fan["deliveries"] else None
    res["ops_per_cpu_s"] = round(fan["deliveries"] / cpu_s, 1) if cpu_s > 0 else None
    res["latency"] = fan["completion"]
    sc, mc = res["sipp"]["sender"], res["sipp"]["members"]
    res["failures"] = {
        "failed_posts": nmsg - len(sends),
        "lost_deliveries": fan["lost"],
        "member_calls_failed": mc["failed"],
        "dead_call_msgs": mc["dead_call_msgs"] + res["sipp"]["creator"]["dead_call_msgs"],
        "retransmissions": sc["retransmissions"] + mc["retransmissions"] + res["sipp"]["creator"]["retransmissions"],
    }
    res["server_log"] = server_log_evidence(server.logfile)
    if not sends:
        res["diagnostics"] = s.diagnostics()
    return res


SCENARIO_FUNCS = {
    "register": scenario_register,
    "message": scenario_message,
    "presence": scenario_presence,
    "conference": scenario_conference,
}


def users_needed(opts: argparse.Namespace) -> int:
    if opts.scenario == "presence":
        return max(opts.users, opts.watchers + 1)
    if opts.scenario == "message":
        return max(opts.users, 2)
    if opts.scenario == "conference":
        return opts.participants  # exactly the participants (--users does not apply)
    return opts.users


def run_server(kind: str, opts: argparse.Namespace, workdir: Path, label: str | None = None) -> dict:
    cls = KamailioServer if kind == "kamailio" else SwitchboardServer
    server = cls(opts, workdir, label)
    users = make_users(users_needed(opts))
    rundir = server.dir / "run"
    rundir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    quiet = None
    if opts.quiet_wait > 0:
        log(f"{kind}: waiting up to {opts.quiet_wait:g}s for the machine to be quiet")
        quiet = wait_for_quiet(opts.quiet_wait)
        if not quiet["quiet"]:
            log(f"{kind}: machine still busy ({quiet['last_cpu_per_s']:g} CPU-s/s used by other processes); "
                f"running anyway")
    try:
        log(f"{kind}: provisioning {len(users)} users in {DOMAIN}")
        server.provision(users, opts.scenario)
        log(f"{kind}: starting on udp {LOOPBACK}:{server.port}")
        server.start(opts.scenario)
        res = SCENARIO_FUNCS[opts.scenario](server, users, opts, rundir)
        server.check_alive()
        if isinstance(server, SwitchboardServer) and server.archiving:
            res["archive"] = server.archive_report()
            res["archive"]["delivered"] = delivered_for_archive(opts.scenario, res)
            log(f"{kind}: archive holds {res['archive'].get('records')} records "
                f"(by kind {res['archive'].get('by_kind')}), {res['archive']['delivered']}")
        res["status"] = "ok"
    except BenchError as e:
        log(f"{kind}: FAILED: {e}")
        res = {"status": "failed", "error": str(e), "server_log_tail": tail(server.logfile, 30)}
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a harness bug: report it, go on with the next server
        traceback.print_exc()
        log(f"{kind}: FAILED (harness error): {e!r}")
        res = {"status": "failed", "error": f"harness error: {e!r}", "server_log_tail": tail(server.logfile, 30)}
    finally:
        PROCS.stop_named("sipp-")  # SIPp left behind by an aborted scenario
        server.stop()
    res["server"] = server.info
    res["quiet_before_run"] = quiet
    res["total_s"] = round(time.monotonic() - t0, 1)
    return res


def delivered_for_archive(scenario: str, res: dict) -> dict:
    """What the archive should hold, to compare with what it holds: every
    MESSAGE the server accepted in the whole run (warm-up included)."""
    if scenario == "message":
        w = res.get("warmup", {})
        return {
            "expected_message_records":
                res.get("uas", {}).get("received", 0) + w.get("uas", {}).get("received", 0),
            "messages_delivered_to_uas": res.get("uas", {}).get("received", 0) + w.get("uas", {}).get("received", 0),
            "measured_window": res.get("uas", {}).get("received", 0),
            "warmup": w.get("uas", {}).get("received", 0),
            "final_200s_measured": res.get("final_responses", {}).get("200", 0),
        }
    if scenario == "conference":
        return {"expected_message_records": res.get("messages_sent", 0),
                "messages_posted": res.get("messages_sent", 0),
                "deliveries": res.get("fanout", {}).get("deliveries", 0),
                "joins": res.get("joined", 0) + 1}
    return {"operations": res.get("ops")}


def archive_shortfall(a: dict) -> int:
    """Messages accepted but not (yet) archived: expected message records
    minus the `message` records (or, kinds unknown, all records)."""
    want = (a.get("delivered") or {}).get("expected_message_records")
    if not isinstance(want, int):
        return 0
    kinds = a.get("by_kind")
    have = kinds.get("message", 0) if kinds else (a.get("records") or 0) + (a.get("spooled") or 0)
    return max(0, want - have)


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def _fmt(v, nd=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _mb(kb) -> str:
    return "-" if not kb else f"{kb / 1024:,.0f}"


def subscription_memory_line(name: str, sm: dict) -> str:
    """One line under the presence table: the per-subscription memory."""
    b, a = sm["before"], sm["after"]
    line = (f"{name}: resident memory per subscription: **{_fmt(sm['kib_per_subscription'], 2)} KiB** "
            f"(PSS summed over {a['processes']} process{'es' if a['processes'] != 1 else ''}: "
            f"{b['pss_kb']:,} KiB idle before SUBSCRIBE, {a['pss_kb']:,} KiB with {sm['subscriptions']:,} "
            f"subscriptions up, {sm['delta_pss_kb']:+,} KiB; RSS sum "
            f"{_fmt(sm.get('rss_sum_kib_per_subscription'), 2)} KiB per subscription"
            + (f"; threads {b['threads']} -> {a['threads']}" if "threads" in b and "threads" in a else "")
            + ")")
    h = sm.get("held")
    if h is not None:
        line += (f"; after {h.get('hold_s', 0):g} s more without traffic: {h['pss_kb']:,} KiB, "
                 f"{_fmt(sm.get('kib_per_subscription_held'), 2)} KiB per subscription")
    if not (b.get("idle", True) and a.get("idle", True)):
        line += " (server not idle at a memory reading: the figure may include in-flight work)"
    return line + "."


NO_KAMAILIO_CONFERENCE = ("Kamailio is not run: it has no IM conference focus (its `imc` module is a "
                          "different, MESSAGE-command chat room model), so there is nothing to compare; "
                          "the figures are Switchboard's alone.")


def markdown(result: dict) -> str:
    sc = result["scenario"]
    p = result["params"]
    servers = result["servers"]
    if result.get("mode") == "archiving-compare":
        title = f"### {sc}: Switchboard, archiving off vs on"
    elif sc == "conference":
        title = f"### {sc}: Switchboard (message fan-out in one conference)"
    else:
        title = f"### {sc}: Switchboard vs Kamailio"
    out = [f"{title} ({result['started']}, {result['machine']['cpus']} CPUs, {result['machine']['kernel']})", ""]
    if sc == "presence":
        out.append(f"{p['watchers']} watchers of one presentity, {p['rounds']} PUBLISH rounds "
                   f"{p['gap_ms']} ms apart; subscriptions at {p['rate']:g}/s.")
        out.append("")
        out.append("| server | subscribed | NOTIFYs rcvd/expected | lost subs | fan-out last NOTIFY ms (median / max) "
                   "| NOTIFY/s (median) | server CPU ms per 1k NOTIFY | CPU ms per 1k SUBSCRIBE "
                   "| PSS KiB per subscription | peak PSS MB | peak RSS sum MB | other CPU s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    elif sc == "conference":
        out.append(f"one conference of {p['participants']} participants (creator in an IM session, the others "
                   f"pager members); one pager member posts {p['messages']} messages at {p['rate']:g}/s, each "
                   f"delivered by the focus to every other member ({p['participants'] - 1} deliveries per "
                   f"message); UDP, SIPp and server on the same {result['machine']['cpus']} CPUs.")
        out.append("")
        out.append(NO_KAMAILIO_CONFERENCE)
        out.append("")
        out.append("| server | joined | messages sent / offered | deliveries rcvd / expected | lost | dup "
                   "| out of order | fan-out deliveries/s | completion p50 / p99 / max ms | first delivery p50 ms "
                   "| server CPU s | CPU ms per 1k deliveries | peak RSS MB | peak PSS MB "
                   "| SIPp+harness CPU s | other CPU s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        out.append(f"offered {p['rate']:g}/s for {p['duration']:g} s (after {p['warmup']:g} s warm-up), "
                   f"{p['users']} users, UDP, SIPp and server on the same {result['machine']['cpus']} CPUs.")
        out.append("")
        out.append("| server | achieved ops/s | completed | failed calls | unexpected msgs | retrans "
                   "| p50 ms | p99 ms | server CPU s | CPU ms per 1k ops | ops per CPU s "
                   "| peak PSS MB | peak RSS sum MB | SIPp+harness CPU s | other CPU s |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ac = result.get("archiving_compare") or {}
    several = result.get("mode") == "archiving-compare" and ac.get("pairs", 1) > 1
    pair_of_on = {pp["on"]: pp for pp in ac.get("per_pair", [])}
    if several:  # the on run of each pair shows that pair's ratio
        out[-2] += " pair ratio on / off |"
        out[-1] += "---|"
    for name, r in servers.items():
        if r.get("status") != "ok":
            why = r.get("reason") or next(iter((r.get("error") or "").splitlines()), "")
            out.append(f"| {name} | {r.get('status')}: {why} |")
            continue
        m = r.get("memory", {})
        if sc == "presence":
            expected = r["subscribed"] * p["rounds"]
            out.append(
                f"| {name} | {r['subscribed']}/{r['watchers']} | {r['ops']}/{expected} | {r['lost_subscriptions']} "
                f"| {_fmt(r.get('fanout_last_ms_median'), 2)} / {_fmt(r.get('fanout_last_ms_max'), 2)} "
                f"| {_fmt(r.get('notify_per_s_median'), 0)} | {_fmt(r.get('cpu_ms_per_1000'))} "
                f"| {_fmt(r.get('subscribe_cpu_ms_per_1000'))} "
                f"| {_fmt(r.get('pss_kib_per_subscription'), 2)} "
                f"| {_mb(m.get('peak_pss_kb'))} | {_mb(m.get('peak_rss_sum_kb'))} "
                f"| {_fmt(r['window']['background_cpu_s'], 2)} |")
        elif sc == "conference":
            f = r["fanout"]
            c = f["completion"]
            out.append(
                f"| {name} | {r['joined'] + 1}/{r['participants']} | {r['messages_sent']}/{r['messages_offered']} "
                f"| {f['deliveries']:,}/{f['expected']:,} | {f['lost']:,} | {f['duplicates']} | {f['out_of_order']} "
                f"| {_fmt(f.get('deliveries_per_s'), 0)} "
                f"| {_fmt(c['p50_ms'], 1)} / {_fmt(c['p99_ms'], 1)} / {_fmt(c['max_ms'], 1)} "
                f"| {_fmt(f['first_delivery']['p50_ms'], 2)} "
                f"| {_fmt(r['window']['server_cpu_s'], 2)} | {_fmt(r.get('cpu_ms_per_1000'))} "
                f"| {_mb(m.get('peak_rss_sum_kb'))} | {_mb(m.get('peak_pss_kb'))} "
                f"| {_fmt(r['window']['loadgen_cpu_s'], 2)} | {_fmt(r['window']['background_cpu_s'], 2)} |")
        else:
            f = r["failures"]
            lat = r["latency"]
            out.append(
                f"| {name} | {_fmt(r['achieved_rate'])} | {r['ops']:,} | {f['failed_calls']} "
                f"| {f['unexpected_msgs']} | {f['retransmissions']} "
                f"| {_fmt(lat['p50_ms'], 2)} | {_fmt(lat['p99_ms'], 2)} | {_fmt(r['window']['server_cpu_s'], 2)} "
                f"| {_fmt(r['cpu_ms_per_1000'])} | {_fmt(r['ops_per_cpu_s'], 0)} "
                f"| {_mb(m.get('peak_pss_kb'))} | {_mb(m.get('peak_rss_sum_kb'))} "
                f"| {_fmt(r['window']['loadgen_cpu_s'], 2)} | {_fmt(r['window']['background_cpu_s'], 2)} |")
        if several:
            pp = pair_of_on.get(name)
            out[-1] += f" {_fmt(pp['ratio'], 3) if pp else ''} |"
    out.append("")
    for name, r in servers.items():
        if r.get("status") != "ok":
            continue
        if sc == "presence" and r.get("subscription_memory"):
            out.append(subscription_memory_line(name, r["subscription_memory"]))
        if sc == "conference":
            f = r["fanout"]
            ev = r.get("server_log", {})
            extra = []
            if f["lost"]:
                extra.append(f"{f.get('recipients_missing_some', '?')} recipients missed messages "
                             f"(most: {', '.join(f'{k} {v}' for k, v in list(f['lost_by_recipient'].items())[:5])})")
            if ev.get("member_unreachable") or ev.get("warn") or ev.get("error"):
                extra.append(f"server log: {ev.get('member_unreachable', 0)} 'member unreachable' removals, "
                             f"{ev.get('warn', 0)} WARN, {ev.get('error', 0)} ERROR lines")
            fl = r["failures"]
            if fl["failed_posts"] or fl["dead_call_msgs"] or fl["member_calls_failed"]:
                extra.append(f"{fl['failed_posts']} posts not accepted, {fl['member_calls_failed']} member calls "
                             f"failed, {fl['dead_call_msgs']} messages to finished SIPp calls (retransmissions "
                             f"by the focus)")
            out.append(f"{name}: achieved send rate {_fmt(r.get('achieved_send_rate'), 1)}/s; "
                       f"{f['complete_messages']}/{f['messages']} messages reached all {f['recipients_per_message']} "
                       f"recipients; window ended: {r.get('window_end')}; joins: "
                       f"{_fmt(r.get('join_cpu_ms_per_member'), 2)} ms server CPU per member"
                       + ("; " + "; ".join(extra) if extra else "") + ".")
        a = r.get("archive")
        if a is not None:
            d = a.get("delivered", {})
            have = a.get("records")
            if "error" in a:
                out.append(f"{name}: archive: {a['error']}")
            else:
                what = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in d.items()
                                 if isinstance(v, int) and k != "expected_message_records")
                kinds = ", ".join(f"{k} {v:,}" for k, v in (a.get("by_kind") or {}).items())
                st = r.get("settle") or {}
                out.append(f"{name}: archive holds {have:,} records ({kinds or 'kinds unknown'}; "
                           f"{a.get('spooled', 0)} spooled) for {what}"
                           + (f"; archive writes went on {st.get('settle_s')} s after the load (inside the CPU "
                              f"window)" if st else "") + ".")
                miss = archive_shortfall(a)
                if miss:
                    out.append(f"WARNING: {name}: the archive is missing {miss:,} of the "
                               f"{d.get('expected_message_records'):,} messages the server accepted.")
    seen_bins = set()
    for name, r in servers.items():
        info = r.get("server") or {}
        ident = info.get("binary_identity") or {}
        if ident.get("sha256") and (info.get("binary"), ident["sha256"]) not in seen_bins:
            seen_bins.add((info.get("binary"), ident["sha256"]))
            out.append(f"{name}: binary {info.get('binary')} ({info.get('version')}, modified "
                       f"{ident.get('mtime')}, sha256 {ident['sha256']}...).")
    if result.get("mode") == "archiving-compare" or p.get("switchboard_archiving") == "on":
        for name, r in servers.items():
            io = (r.get("window") or {}).get("server_io")
            if r.get("status") == "ok" and io and r.get("ops"):
                k = 1000.0 / r["ops"]
                out.append(f"{name}: server I/O per 1,000 {r.get('unit', 'operations')}: "
                           f"{io.get('syscw', 0) * k:,.0f} write syscalls, "
                           f"{io.get('write_bytes', 0) * k / 1024:,.0f} KiB written to storage"
                           + (f"; server CPU user {r['window']['server_user_s']:g} s, kernel "
                              f"{r['window']['server_sys_s']:g} s" if "server_sys_s" in r["window"] else "")
                           + ".")
    for name, r in servers.items():
        w = r.get("window")
        if r.get("status") == "ok" and w and w["background_cpu_s"] > 0.02 * NCPU * w["wall_s"]:
            top = ", ".join(f"{k} {v:g}s" for k, v in w["background_top"].items())
            out.append(f"WARNING: the machine was not quiet during the {name} window: other processes used "
                       f"{w['background_cpu_s']:g} CPU-s in {w['wall_s']:g} s ({top}); rates, latencies "
                       f"and CPU per operation are all disturbed (Kamailio's CPU per operation rose by up to "
                       f"~25 % in such runs).")
    unit, one = {"presence": ("NOTIFYs", "NOTIFY"),
                 "conference": ("deliveries", "delivery")}.get(sc, ("operations", "operation"))
    if result.get("mode") == "archiving-compare":
        ratio = result.get("ratio_archiving_on_over_off_ops_per_cpu_s")
        if ratio is not None and several:
            verdict = "meets" if ratio >= 0.8 else "MISSES"
            out.append(f"**Archiving on / off, {unit} per server CPU second: {ratio:.2f}** (ratio of the medians "
                       f"over {ac['pairs']} alternating pairs: on {_fmt(ac['median_ops_per_cpu_s_on'], 0)} / off "
                       f"{_fmt(ac['median_ops_per_cpu_s_off'], 0)} {unit} per CPU s; per-pair ratios "
                       f"{ac['pair_ratio_min']:.2f} to {ac['pair_ratio_max']:.2f}; {verdict} the target: "
                       f"archiving costs at most 20 %, ratio >= 0.80; CPU per {one} "
                       f"{result.get('archiving_cpu_increase_pct'):+.0f} % between the medians)")
        elif ratio is not None:
            verdict = "meets" if ratio >= 0.8 else "MISSES"
            out.append(f"**Archiving on / off, {unit} per server CPU second: {ratio:.2f}** "
                       f"({verdict} the target: archiving costs at most 20 %, ratio >= 0.80; "
                       f"CPU per {one} {result.get('archiving_cpu_increase_pct'):+.0f} %)")
        else:
            out.append(f"Archiving on / off, {unit} per server CPU second: n/a "
                       f"({result.get('ratio_note', 'both runs must complete')})")
        return "\n".join(out)
    if sc == "conference":
        return "\n".join(out)
    ratio = result.get("ratio_switchboard_over_kamailio_ops_per_cpu_s")
    if ratio is not None:
        out.append(f"**Switchboard / Kamailio, {unit} per server CPU second: {ratio:.2f}** "
                   f"(> 1 means Switchboard needs less CPU per {one})")
    else:
        out.append(f"Switchboard / Kamailio, {unit} per server CPU second: n/a "
                   f"({result.get('ratio_note', 'both servers must complete the run')})")
    return "\n".join(out)


def machine_info() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = _kb_field("/proc/meminfo", "MemTotal:")
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "cpus": NCPU,
        "cpu_model": model,
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sipp": _first_line(["sipp", "-v"]) if shutil.which("sipp") else None,
    }


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

DEFAULT_RATES = {"register": 2000.0, "message": 2000.0, "presence": 500.0, "conference": 20.0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Benchmark Switchboard against Kamailio with SIPp on loopback.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("scenario", choices=SCENARIOS)
    ap.add_argument("--duration", type=float, default=20.0,
                    help="measured seconds of load per server (register, message)")
    ap.add_argument("--warmup", type=float, default=3.0,
                    help="unmeasured seconds of the same load before the measured run (0: none)")
    ap.add_argument("--rate", type=float, default=None,
                    help="offered calls per second (register, message; presence: SUBSCRIBEs per second; "
                         "conference: messages posted per second). "
                         "Default: register/message 2000, presence 500, conference 20")
    ap.add_argument("--limit", type=int, default=2000,
                    help="SIPp -l: maximum calls in flight")
    ap.add_argument("--only", choices=SERVERS, help="run one server only")
    ap.add_argument("--users", type=int, default=1000, help="users provisioned (user0000..)")
    ap.add_argument("--watchers", type=int, default=1000, help="presence: number of watchers")
    ap.add_argument("--rounds", type=int, default=5, help="presence: number of PUBLISH rounds")
    ap.add_argument("--gap-ms", type=int, default=1000, help="presence: pause between PUBLISH rounds")
    ap.add_argument("--sub-mem-hold", type=float, default=0.0,
                    help="presence: after the memory reading with every subscription up, wait this many "
                         "seconds without traffic and read the memory again (transactions kept by timers "
                         "expire; at most 45 s minus watchers/rate: a watcher ends after 60 s without a NOTIFY)")
    ap.add_argument("--participants", type=int, default=250,
                    help="conference: participants (the creator + pager members; [conference] max_participants "
                         "is raised to match above 250)")
    ap.add_argument("--messages", type=int, default=200,
                    help="conference: messages posted to the conference by one member")
    ap.add_argument("--conference-drain", type=float, default=30.0,
                    help="conference: at most this many seconds after the last post is due for the deliveries "
                         "to arrive")
    ap.add_argument("--switchboard-archiving", choices=("on", "off"), default="off",
                    help="Switchboard: before `serve`, `archive config set --enabled on` and `archive policy set "
                         "--global --internal on` (every MESSAGE archived, non-critical mode); reports the "
                         "records the archive holds after the run")
    ap.add_argument("--archiving-compare", action="store_true",
                    help="message/conference: run Switchboard twice with the same load, archiving off then on, "
                         "and print the ratio of operations per server CPU second (on / off); Kamailio not run")
    ap.add_argument("--pairs", type=int, default=1, metavar="N",
                    help=f"--archiving-compare: run N alternating pairs (off #1, on #1, off #2, on #2, ...), "
                         f"each a fresh server run, and report the ratio of the medians (at most {MAX_PAIRS})")
    ap.add_argument("--kamailio-children", type=int, default=2,
                    help="Kamailio UDP worker processes (children=)")
    ap.add_argument("--kamailio-shm", type=int, default=1024, help="Kamailio -m (MB shared memory)")
    ap.add_argument("--kamailio-pkg", type=int, default=16, help="Kamailio -M (MB private memory per process)")
    ap.add_argument("--switchboard-bin", default=None,
                    help=f"Switchboard binary (default $SWITCHBOARD_BIN or {DEFAULT_SWITCHBOARD_BIN})")
    ap.add_argument("--switchboard-log", default=None,
                    help="RUST_LOG for the Switchboard server (default: warn; conference: "
                         "warn,switchboard::sip::conference=info)")
    ap.add_argument("--build-switchboard", action="store_true",
                    help="run `cargo build --release -p switchboard-server` first")
    ap.add_argument("--provision-jobs", type=int, default=2,
                    help="parallel `switchboard user add` processes")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each server, wait up to this many seconds for other processes on the "
                         "machine to go idle (0: don't wait)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SIPp traces)")
    ap.add_argument("--out", default=None, help="JSON result path (default bench/results/SCENARIO-TIMESTAMP.json)")
    opts = ap.parse_args(argv)
    if opts.rate is None:
        opts.rate = DEFAULT_RATES[opts.scenario]
    if opts.rate <= 0 or opts.duration <= 0 or opts.users < 1 or opts.watchers < 1 or opts.rounds < 1:
        ap.error("rate, duration, users, watchers and rounds must be positive")
    if opts.sub_mem_hold < 0 or (opts.sub_mem_hold > 0 and opts.sub_mem_hold + opts.watchers / opts.rate > 45):
        ap.error("--sub-mem-hold: at most 45 s minus the subscription phase (--watchers / --rate): a watcher "
                 "ends after 60 s without a NOTIFY")
    if opts.duration > 600 or opts.warmup > 120:
        ap.error("runs are bounded: --duration at most 600 s, --warmup at most 120 s")
    if opts.scenario == "conference":
        if opts.only == "kamailio":
            ap.error("conference is Switchboard only: Kamailio has no IM conference focus")
        if opts.participants < 3 or opts.messages < 1:
            ap.error("conference: --participants at least 3, --messages at least 1")
        if opts.messages / opts.rate > 300 or opts.conference_drain > 120 or opts.participants > 2000:
            ap.error("runs are bounded: conference --messages / --rate at most 300 s, --conference-drain at "
                     "most 120 s, --participants at most 2000")
    if opts.archiving_compare:
        if opts.scenario not in ("message", "conference"):
            ap.error("--archiving-compare applies to message and conference")
        if opts.only == "kamailio":
            ap.error("--archiving-compare runs Switchboard only")
    if not 1 <= opts.pairs <= MAX_PAIRS:
        ap.error(f"runs are bounded: --pairs from 1 to {MAX_PAIRS}")
    if opts.pairs != 1 and not opts.archiving_compare:
        ap.error("--pairs applies to --archiving-compare")
    return opts


ARCHIVING_OFF, ARCHIVING_ON = "switchboard archiving off", "switchboard archiving on"


def archiving_run_name(archiving: str, i: int, pairs: int) -> str:
    """Name of run i (1-based) of an --archiving-compare: the plain names
    with one pair (as before --pairs), "... #i" with several."""
    base = ARCHIVING_ON if archiving == "on" else ARCHIVING_OFF
    return base if pairs == 1 else f"{base} #{i}"


def planned_runs(opts: argparse.Namespace) -> list[tuple[str, str, str | None]]:
    """(server kind, name in the result, archiving override) for each run;
    --archiving-compare alternates off #1, on #1, off #2, on #2, ..."""
    if opts.archiving_compare:
        n = getattr(opts, "pairs", 1)
        return [("switchboard", archiving_run_name(a, i, n), a) for i in range(1, n + 1) for a in ("off", "on")]
    if opts.scenario == "conference":
        return [("switchboard", "switchboard", None)]
    return [(k, k, None) for k in ([opts.only] if opts.only else list(SERVERS))]


def _ops_per_cpu(r: dict) -> float | None:
    return r.get("ops_per_cpu_s") if r.get("status") == "ok" and r.get("ops_per_cpu_s") else None


def compute_archiving_compare(result: dict, runs: list[tuple[str, str, str | None]]) -> None:
    """The archiving on / off ratio over the planned pairs: the headline is
    the ratio of the medians (median ops per CPU s of the on runs / of the
    off runs); each pair's own ratio is kept to show the spread. Any run not
    ok: no headline (n/a, with a note); the complete pairs' ratios are kept."""
    servers = result["servers"]
    offs = [name for _, name, a in runs if a == "off"]
    ons = [name for _, name, a in runs if a == "on"]
    pairs = []
    for i, (off_n, on_n) in enumerate(zip(offs, ons), 1):
        off, on = _ops_per_cpu(servers.get(off_n, {})), _ops_per_cpu(servers.get(on_n, {}))
        pairs.append({"pair": i, "off": off_n, "on": on_n, "off_ops_per_cpu_s": off, "on_ops_per_cpu_s": on,
                      "ratio": round(on / off, 3) if off and on else None})
    ac = {"pairs": len(pairs), "per_pair": pairs, "pair_ratios": [p["ratio"] for p in pairs]}
    result["archiving_compare"] = ac
    bad = [n for n in offs + ons if _ops_per_cpu(servers.get(n, {})) is None]
    if bad or not pairs:
        result["ratio_note"] = "not measured: " + ", ".join(
            f"{n} {servers.get(n, {}).get('status', 'not run')}"
            + (" (no ops per CPU s)" if servers.get(n, {}).get("status") == "ok" else "") for n in bad)
        return
    med_off = statistics.median(p["off_ops_per_cpu_s"] for p in pairs)
    med_on = statistics.median(p["on_ops_per_cpu_s"] for p in pairs)
    ac.update({"median_ops_per_cpu_s_off": round(med_off, 1), "median_ops_per_cpu_s_on": round(med_on, 1),
               "ratio_of_medians": round(med_on / med_off, 3),
               "pair_ratio_min": min(ac["pair_ratios"]), "pair_ratio_max": max(ac["pair_ratios"])})
    result["ratio_archiving_on_over_off_ops_per_cpu_s"] = ac["ratio_of_medians"]
    result["archiving_cpu_increase_pct"] = round(100.0 * (med_off / med_on - 1), 1)


def compute_ratios(result: dict, runs: list[tuple[str, str, str | None]]) -> None:
    servers = result["servers"]
    if result.get("mode") == "archiving-compare":
        compute_archiving_compare(result, runs)
        return
    if result["scenario"] == "conference":
        return
    k = servers.get("kamailio", {})
    s = servers.get("switchboard", {})
    if k.get("status") == "ok" and s.get("status") == "ok" and k.get("ops_per_cpu_s") and s.get("ops_per_cpu_s"):
        result["ratio_switchboard_over_kamailio_ops_per_cpu_s"] = round(s["ops_per_cpu_s"] / k["ops_per_cpu_s"], 3)
    else:
        missing = [n for n in SERVERS if servers.get(n, {}).get("status") != "ok"]
        result["ratio_note"] = "not measured: " + ", ".join(
            f"{n} {servers.get(n, {}).get('status', 'not run')}" for n in missing)


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _on_signal)
    if not shutil.which("sipp"):
        log("sipp not found: apt-get install sip-tester")
        return 2

    runs = planned_runs(opts)
    started = _dt.datetime.now().astimezone().replace(microsecond=0).isoformat()
    result: dict = {
        "scenario": opts.scenario,
        "started": started,
        "machine": machine_info(),
        "params": {
            "duration": opts.duration, "warmup": opts.warmup, "rate": opts.rate, "limit": opts.limit,
            "users": users_needed(opts), "domain": DOMAIN, "transport": "udp",
            "watchers": opts.watchers, "rounds": opts.rounds, "gap_ms": opts.gap_ms,
            "sub_mem_hold_s": opts.sub_mem_hold,
            "kamailio_children": opts.kamailio_children, "kamailio_shm_mb": opts.kamailio_shm,
            "switchboard_archiving": "compare" if opts.archiving_compare else opts.switchboard_archiving,
        },
        "servers": {},
    }
    if opts.scenario == "conference":
        result["params"].update({"participants": opts.participants, "messages": opts.messages,
                                 "conference_drain": opts.conference_drain})
        result["kamailio"] = NO_KAMAILIO_CONFERENCE
    if opts.archiving_compare:
        result["mode"] = "archiving-compare"
        result["params"]["archiving_pairs"] = opts.pairs
    workdir = Path(tempfile.mkdtemp(prefix=f"switchboard-bench-{opts.scenario}-"))
    log(f"work directory {workdir}")
    if opts.scenario == "conference":
        log(f"conference: Switchboard only -- {NO_KAMAILIO_CONFERENCE}")
    rc = 0
    try:
        if any(kind == "switchboard" for kind, _, _ in runs) and opts.build_switchboard:
            log("building switchboard: cargo build --release -p switchboard-server")
            b = subprocess.run(["cargo", "build", "--release", "-p", "switchboard-server"], cwd=str(REPO_DIR))
            if b.returncode != 0:
                log("cargo build failed; switchboard will be skipped if no binary exists")
        for k, (kind, name, archiving) in enumerate(runs, 1):
            if len(runs) > 2:  # several archiving pairs: which run this is
                log(f"run {k} of {len(runs)}: {name}")
            if kind == "switchboard":
                why = SwitchboardServer.unavailable_reason(opts)
                if why:
                    log(f"{name}: SKIPPED: {why}")
                    result["servers"][name] = {"status": "skipped", "reason": why}
                    continue
            run_opts = argparse.Namespace(**vars(opts))
            if archiving is not None:
                run_opts.switchboard_archiving = archiving
            result["servers"][name] = run_server(kind, run_opts, workdir,
                                                 label=name.replace(" #", "-").replace(" ", "-"))
            if result["servers"][name].get("status") != "ok":
                rc = 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        result["interrupted"] = True
        rc = 130
    except Exception:  # noqa: BLE001 - report, clean up, exit non-zero
        traceback.print_exc()
        rc = 1
    finally:
        PROCS.stop_all()
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)

    compute_ratios(result, runs)

    if opts.keep or rc != 0:
        result["workdir"] = str(workdir)
        log(f"kept {workdir} (server logs, SIPp traces)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        if workdir.exists():
            log(f"could not remove all of {workdir}")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = Path(opts.out) if opts.out else RESULTS_DIR / f"{opts.scenario}-{stamp}.json"
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nJSON: {out_path}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
