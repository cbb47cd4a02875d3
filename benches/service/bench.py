#!/usr/bin/env python3
"""Measures `signin-radar run` (the service) against `signin-radar replay`: CPU and wall time to
catch up with a file, /metrics scrape latency with the top-K family, and memory under a spray.

Driven by run.sh; stdlib only. Every service it starts is stopped on exit, and its pid is
written to --pid-file while it runs so the calling shell can stop it too.

    bench.py overhead --bin BIN --input FILE [--tiny FILE] [--runs 5]
    bench.py scrape   --bin BIN --input FILE [--scrapes 50] [--top-k 1000]
    bench.py memory   --bin BIN --input FILE --work DIR [--max-keys 200000]
"""

import argparse
import atexit
import datetime as dt
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PID_FILE = None
LIVE = {}  # pid -> Popen


# ---------------------------------------------------------------- /proc


def proc_cpu(pid):
    """CPU time of the whole process (every thread, live and exited), seconds: the process's
    CPU clock (ns resolution), else utime + stime of /proc/PID/stat (clock ticks)."""
    try:
        return time.clock_gettime((~pid << 3) | 2)  # CPUCLOCK_SCHED of the process (Linux)
    except OSError:
        pass
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem(pid):
    """VmHWM, VmRSS, RssAnon, RssFile of a live process, MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    return out


class MemSampler:
    """Peak RssAnon / RssFile of a process, sampled every `every` seconds."""

    def __init__(self, pid, every=0.02):
        self.pid, self.every = pid, every
        self.anon = self.file = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                m = proc_mem(self.pid)
            except (OSError, ValueError, IndexError):
                return
            self.anon = max(self.anon, m.get("RssAnon", 0))
            self.file = max(self.file, m.get("RssFile", 0))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._t.join()


# ---------------------------------------------------------------- children


def note_pids():
    if PID_FILE:
        with open(PID_FILE, "w") as f:
            f.write("".join(f"{p}\n" for p in LIVE))


def reap(p):
    """Waits for p; (exit code, rusage)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    LIVE.pop(p.pid, None)
    note_pids()
    return p.returncode, ru


def kill_all():
    for pid, p in list(LIVE.items()):
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        LIVE.pop(pid, None)
    note_pids()


atexit.register(kill_all)


def _on_signal(signum, _frame):
    kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


def run_replay(bin_, path, threads=None, sample=False, extra=()):
    """One replay: dict(cpu, wall, maxrss_mib, anon_peak, file_peak, report)."""
    cmd = [bin_, "replay", "--format", "json", "--retention", "3650d", "--quiet"]
    if threads:
        cmd += ["--threads", str(threads)]
    cmd += list(extra) + [path]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    LIVE[p.pid] = p
    note_pids()
    s = MemSampler(p.pid) if sample else None
    out_chunks = []
    reader = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()), daemon=True)
    reader.start()
    err = p.stderr.read()
    reader.join()
    code, ru = reap(p)
    wall = time.perf_counter() - t0
    if s:
        s.stop()
    if code != 0:
        raise SystemExit(f"replay failed ({code}): {err.decode(errors='replace')[-2000:]}")
    return {
        "cpu": ru.ru_utime + ru.ru_stime,
        "wall": wall,
        "maxrss": ru.ru_maxrss / 1024,
        "anon_peak": s.anon if s else None,
        "file_peak": s.file if s else None,
        "report": json.loads(b"".join(out_chunks)),
    }


class Service:
    """`signin-radar run --source file:PATH` on a free port."""

    def __init__(self, bin_, path, extra=(), sample=False):
        cmd = [bin_, "run", "--source", f"file:{path}", "--listen", "127.0.0.1:0",
               "--retention", "3650d", "--log-format", "human"] + list(extra)
        env = dict(os.environ, RUST_LOG="info")
        self.t0 = time.perf_counter()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        LIVE[self.p.pid] = self.p
        note_pids()
        self.pid = self.p.pid
        self.log = []
        self.finished = threading.Event()
        threading.Thread(target=self._stderr, daemon=True).start()
        self.sampler = MemSampler(self.pid) if sample else None
        line = self._first_line(30)
        m = re.search(r"listening on http://([\d.]+):(\d+)", line or "")
        if not m:
            self.stop()
            raise SystemExit(f"service did not say where it listens: {line!r}\n{self.tail()}")
        self.host, self.port = m.group(1), int(m.group(2))

    def _first_line(self, timeout):
        box = []
        t = threading.Thread(target=lambda: box.append(self.p.stdout.readline().decode()), daemon=True)
        t.start()
        t.join(timeout)
        return box[0] if box else None

    def _stderr(self):
        for raw in self.p.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            del self.log[:-200]
            if "read to its end" in line:
                self.finished.set()

    def tail(self):
        return "".join(self.log[-20:])

    def get(self, path, timeout=60):
        """(seconds, status, body bytes) on a new connection."""
        t = time.perf_counter()
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        return time.perf_counter() - t, r.status, body

    def status(self):
        _, code, body = self.get("/api/v1/status")
        return json.loads(body) if code == 200 else None

    def wait_caught_up(self, timeout=1800):
        """Polls /api/v1/status; slowly until the source says it read its end (a log line),
        then every 2 ms. Returns (wall s since spawn, CPU s at that moment)."""
        end = time.monotonic() + timeout
        slow = time.monotonic()
        while time.monotonic() < end:
            if self.p.poll() is not None:
                raise SystemExit(f"service exited ({self.p.returncode}):\n{self.tail()}")
            if self.finished.is_set() or time.monotonic() - slow >= 0.5:
                slow = time.monotonic()
                try:
                    st = self.status()
                except OSError:
                    st = None
                if st and st.get("caught_up"):
                    wall = time.perf_counter() - self.t0
                    cpu = proc_cpu(self.pid)
                    self.caught_up_unix = time.time()
                    return wall, cpu
                if st and st.get("source_state") == "failed":
                    raise SystemExit(f"the source failed:\n{self.tail()}")
            time.sleep(0.002 if self.finished.is_set() else 0.02)
        raise SystemExit(f"not caught up after {timeout} s:\n{self.tail()}")

    def metrics(self):
        return self.get("/metrics")[2].decode()

    def stop(self, timeout=60):
        """SIGTERM; (seconds to exit, rusage)."""
        if self.sampler:
            self.sampler.stop()
        if self.p.poll() is not None:
            LIVE.pop(self.pid, None)
            return 0.0, None
        t = time.perf_counter()
        self.p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.p.poll() is None:
            self.p.kill()
        # poll() reaped it; rusage of a reaped child is not available any more.
        LIVE.pop(self.pid, None)
        note_pids()
        return time.perf_counter() - t, self.p.returncode


def metric(text, name, labels=None):
    """Value of the first series `name{labels...}` (labels: substring of the label set)."""
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            if labels and labels not in line:
                continue
            return float(line.rsplit(" ", 1)[1])
    return None


def parse_rfc3339(s):
    s = s.replace("Z", "+00:00")
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", s)
    frac = (m.group(2) or ".0")[:7]
    return dt.datetime.fromisoformat(m.group(1) + frac.ljust(7, "0")[:7] + m.group(3)).timestamp()


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))
    return xs[k]


def fmt_mib(x):
    return "-" if x is None else f"{x:,.0f}"


def size_of(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- 1. overhead


def cmd_overhead(a):
    size = os.path.getsize(a.input)
    print(f"input: {a.input}, {size / 1e6:,.0f} MB")
    if a.tiny:
        print("\n### startup (one-record file): best of", a.runs)
        su_cpu, su_wall, rp_cpu, rp_wall = [], [], [], []
        for _ in range(a.runs):
            s = Service(a.bin, a.tiny)
            w, c = s.wait_caught_up()
            s.stop()
            su_cpu.append(c)
            su_wall.append(w)
            r = run_replay(a.bin, a.tiny)
            rp_cpu.append(r["cpu"])
            rp_wall.append(r["wall"])
        print("| | CPU s (best / median) | wall s (best / median) |\n|---|---|---|")
        print(f"| service, spawn to caught_up | {min(su_cpu):.3f} / {statistics.median(su_cpu):.3f} "
              f"| {min(su_wall):.3f} / {statistics.median(su_wall):.3f} |")
        print(f"| replay, whole process | {min(rp_cpu):.3f} / {statistics.median(rp_cpu):.3f} "
              f"| {min(rp_wall):.3f} / {statistics.median(rp_wall):.3f} |")
        startup = min(su_cpu)
    else:
        startup = None

    configs = [("replay", 1), ("service", 1), ("replay", None), ("service", None)]
    res = {c: {"cpu": [], "wall": [], "total": []} for c in configs}
    checked = {}
    for run in range(a.runs):
        for kind, threads in configs:
            extra = ["--threads", str(threads)] if threads else []
            if kind == "replay":
                r = run_replay(a.bin, a.input, threads)
                res[(kind, threads)]["cpu"].append(r["cpu"])
                res[(kind, threads)]["wall"].append(r["wall"])
                checked.setdefault("replay", r["report"])
            else:
                s = Service(a.bin, a.input, extra)
                w, c = s.wait_caught_up()
                if "service" not in checked:
                    checked["service"] = json.loads(s.get("/api/v1/report?top=10")[2])
                s.stop()
                res[(kind, threads)]["cpu"].append(c)
                res[(kind, threads)]["wall"].append(w)
            print(f"  run {run + 1}/{a.runs} {kind} threads={threads or 'default'}: "
                  f"cpu {res[(kind, threads)]['cpu'][-1]:.3f} s, wall {res[(kind, threads)]['wall'][-1]:.3f} s",
                  file=sys.stderr, flush=True)

    rr, sr = checked["replay"], checked["service"]
    same = all(rr[k1][k2] == sr[k1][k2] for k1, k2 in
               [("input", "records"), ("input", "duplicates"), ("legacy", "total"),
                ("legacy", "users"), ("legacy", "ips")])
    print(f"\nsame answer (records, duplicates, legacy total/users/ips): {'yes' if same else 'NO'} "
          f"(records {rr['input']['records']:,}, legacy {rr['legacy']['total']:,}; service "
          f"{sr['input']['records']:,}, {sr['legacy']['total']:,})")

    print(f"\n### service over replay, best of {a.runs} (alternating runs)")
    print("| threads | replay CPU s | service CPU s to caught_up | overhead | replay wall s | "
          "service wall s to caught_up | wall overhead | records / CPU-s replay, service |")
    print("|---|---|---|---|---|---|---|---|")
    recs = rr["input"]["records"]
    for threads in (1, None):
        rc, sc = min(res[("replay", threads)]["cpu"]), min(res[("service", threads)]["cpu"])
        rw, sw = min(res[("replay", threads)]["wall"]), min(res[("service", threads)]["wall"])
        print(f"| {threads or 'default (' + str(os.cpu_count()) + ')'} | {rc:.3f} | {sc:.3f} | "
              f"{(sc / rc - 1) * 100:+.1f} % | {rw:.3f} | {sw:.3f} | {(sw / rw - 1) * 100:+.1f} % | "
              f"{recs / rc:,.0f}, {recs / sc:,.0f} |")
    print(f"\n### medians of {a.runs}")
    print("| threads | replay CPU s | service CPU s | overhead | replay wall s | service wall s |")
    print("|---|---|---|---|---|---|")
    for threads in (1, None):
        rc, sc = (statistics.median(res[(k, threads)]["cpu"]) for k in ("replay", "service"))
        rw, sw = (statistics.median(res[(k, threads)]["wall"]) for k in ("replay", "service"))
        print(f"| {threads or 'default'} | {rc:.3f} | {sc:.3f} | {(sc / rc - 1) * 100:+.1f} % | "
              f"{rw:.3f} | {sw:.3f} |")
    print("\nall runs (CPU s):")
    for (kind, threads), v in res.items():
        print(f"  {kind:7} threads={threads or 'default'}: " + " ".join(f"{x:.3f}" for x in v["cpu"]))
    if startup is not None:
        print(f"\nservice startup CPU (tiny input): {startup:.3f} s, included in the service figures")


# ---------------------------------------------------------------- 2. scrape


def timed_scrapes(s, n, gap):
    times, sizes = [], []
    for _ in range(n):
        t, code, body = s.get("/metrics")
        if code != 200:
            raise SystemExit(f"/metrics answered {code}")
        times.append(t)
        sizes.append(len(body))
        time.sleep(gap)
    return times, sizes


def wait_refresh_after(s, since_unix, timeout=60):
    """Waits for a metrics refresh that started after `since_unix`; returns the scrape text."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = s.metrics()
        ts = metric(text, "signin_radar_metrics_refresh_timestamp_seconds")
        dur = metric(text, "signin_radar_metrics_refresh_duration_seconds") or 0
        if ts is not None and ts - dur > since_unix:
            return text
        time.sleep(0.5)
    raise SystemExit("no metrics refresh after catching up")


def cmd_scrape(a):
    size = os.path.getsize(a.input)
    print(f"input: {a.input}, {size / 1e6:,.0f} MB")
    rows = []
    for top_k in (a.top_k, 0):
        s = Service(a.bin, a.input, ["--top-k-metrics", str(top_k)])
        busy = []
        # Scrapes while the service ingests (every core busy).
        while not s.finished.is_set() and len(busy) < 200 and s.p.poll() is None:
            t, _, body = s.get("/metrics")
            busy.append(t)
            time.sleep(0.1)
        w, c = s.wait_caught_up()
        text = wait_refresh_after(s, s.caught_up_unix)
        time.sleep(1)
        times, sizes = timed_scrapes(s, a.scrapes, a.gap)
        text = s.metrics()
        top_users = sum(1 for l in text.splitlines() if l.startswith("signin_radar_legacy_top_user_signins{"))
        top_ips = sum(1 for l in text.splitlines() if l.startswith("signin_radar_legacy_top_ip_signins{"))
        series = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
        refresh = metric(text, "signin_radar_metrics_refresh_duration_seconds")
        users_1h = {p: metric(text, "signin_radar_legacy_users", f'protocol="{p}",window="1h"')
                    for p in ("IMAP4", "Authenticated SMTP")}
        omitted = metric(text, "signin_radar_legacy_top_omitted", 'kind="user"')
        # CPU the service uses with nothing to read (the background refresh, every 10 s).
        c0, t0 = proc_cpu(s.pid), time.perf_counter()
        time.sleep(a.idle)
        idle = (proc_cpu(s.pid) - c0) / (time.perf_counter() - t0)
        down, code = s.stop()
        rows.append((top_k, times, sizes, top_users, top_ips, series, refresh, busy, users_1h, omitted, w,
                     idle, down, code))
    print(f"\n### GET /metrics, {a.scrapes} scrapes {a.gap} s apart after catching up "
          "(new connection each, loopback, body read)")
    print("| top_k_metrics | p50 ms | p99 ms | max ms | bytes | series | top-K user / IP series | "
          "refresh s (background, every 10 s) | CPU cores used when idle | shutdown s (exit code) | "
          "scrapes while ingesting: n, p50 / max ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for top_k, times, sizes, tu, ti, series, refresh, busy, users_1h, omitted, _, idle, down, code in rows:
        bz = (f"{len(busy)}, {pct(busy, .5) * 1e3:.1f} / {max(busy) * 1e3:.1f}" if busy else "-")
        print(f"| {top_k} | {pct(times, .5) * 1e3:.2f} | {pct(times, .99) * 1e3:.2f} | "
              f"{max(times) * 1e3:.2f} | {statistics.median(sizes):,.0f} | {series:,} | {tu} / {ti} | "
              f"{refresh:.3f} | {idle:.2f} | {down:.2f} ({code}) | {bz} |")
    r = rows[0]
    print(f"\nsignin_radar_legacy_users{{window=\"1h\"}}: {r[8]}; users left out of the top-K "
          f"family: {r[9]:,.0f}; time to caught_up {r[10]:.1f} s; idle CPU measured over {a.idle:.0f} s")


# ---------------------------------------------------------------- 3. memory


def cmd_memory(a):
    size = os.path.getsize(a.input)
    print(f"input: {a.input}, {size / 1e6:,.0f} MB")
    rows = []
    r = run_replay(a.bin, a.input, sample=True)
    rep = r["report"]
    print(f"replay: {rep['input']['records']:,} records, legacy {rep['legacy']['total']:,}, "
          f"{rep['legacy']['users']:,} users, {rep['legacy']['ips']:,} IPs, CPU {r['cpu']:.2f} s, "
          f"wall {r['wall']:.2f} s, evictions {rep.get('evictions')}")
    rows.append(("replay (whole run)", r["maxrss"], r["anon_peak"], r["file_peak"], None, None,
                 r["wall"], "-", "-", "-", "-"))
    for label, extra in (("service", []), (f"service --max-keys {a.max_keys}", ["--max-keys", str(a.max_keys)])):
        state = os.path.join(a.work, "state-" + ("bounded" if extra else "default"))
        subprocess.run(["rm", "-rf", state], check=True)
        s = Service(a.bin, a.input, ["--state-dir", state, "--snapshot-interval", a.snapshot_interval] + extra,
                    sample=True)
        w, c = s.wait_caught_up()
        m = proc_mem(s.pid)
        anon_peak = s.sampler.anon
        # A snapshot taken after catching up.
        snap = None
        end = time.monotonic() + 600
        while time.monotonic() < end:
            st = s.status()
            ls = st.get("last_snapshot") if st else None
            if ls and parse_rfc3339(ls["at"]) >= s.caught_up_unix:
                snap = ls
                break
            time.sleep(0.25)
        m2 = proc_mem(s.pid)
        text = wait_refresh_after(s, s.caught_up_unix)
        keys = metric(text, "signin_radar_window_keys")
        ids = metric(text, "signin_radar_dedup_ids")
        evicted = metric(text, "signin_radar_window_evicted_keys_total")
        evicted_rec = metric(text, "signin_radar_window_evicted_records_total")
        rep = json.loads(s.get("/api/v1/report?top=3")[2])
        down, code = s.stop()
        on_disk = size_of(state)
        # Restart on the snapshot: restore time and memory.
        s2 = Service(a.bin, a.input, ["--state-dir", state, "--snapshot-interval", "1h"] + extra)
        w2, c2 = s2.wait_caught_up()
        m3 = proc_mem(s2.pid)
        st2 = s2.status()
        s2.stop()
        print(f"{label}: caught up in {w:.2f} s (CPU {c:.2f} s); at caught_up VmHWM {m['VmHWM']:,.0f} MiB, "
              f"VmRSS {m['VmRSS']:,.0f}, RssAnon {m['RssAnon']:,.0f}, RssFile {m['RssFile']:,.0f}; after the "
              f"snapshot VmHWM {m2['VmHWM']:,.0f}, RssAnon {m2['RssAnon']:,.0f}; window keys {keys:,.0f}, "
              f"dedup ids {ids:,.0f}, evicted keys {evicted:,.0f} ({evicted_rec:,.0f} sign-ins); report legacy "
              f"total {rep['legacy']['total']:,}, users {rep['legacy']['users']:,}, evictions {rep.get('evictions')}; "
              f"snapshot {snap}; shutdown {down:.2f} s (exit {code}), on disk {on_disk / 1e6:,.1f} MB; "
              f"restart on it: caught up in {w2:.2f} s (CPU {c2:.2f} s), VmHWM {m3['VmHWM']:,.0f} MiB, "
              f"RssAnon {m3['RssAnon']:,.0f}, records {st2['records']:,}")
        rows.append((label, m["VmHWM"], max(anon_peak, m["RssAnon"]), max(s.sampler.file, m["RssFile"]),
                     m2["VmHWM"], snap,
                     w, f"{keys:,.0f}", f"{evicted:,.0f}", (w2, m3["VmHWM"], on_disk), f"{down:.2f} ({code})"))
    print("\n### memory, 1 MiB = 2^20 bytes")
    print("| run | peak RSS (VmHWM) MiB | peak anonymous MiB | file-backed MiB (mapped input) | "
          "VmHWM after a snapshot | snapshot MB / s | wall to caught_up s | window keys | evicted keys | "
          "SIGTERM to exit s (exit code) | restart on the snapshot: s to caught_up, VmHWM MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, hwm, anon, filed, hwm2, snap, w, keys, ev, restart, down in rows:
        sn = f"{snap['bytes'] / 1e6:,.1f} / {snap['seconds']:.2f}" if snap else "-"
        rs = f"{restart[0]:.2f}, {restart[1]:,.0f}" if isinstance(restart, tuple) else "-"
        print(f"| {label} | {fmt_mib(hwm)} | {fmt_mib(anon)} | {fmt_mib(filed)} | {fmt_mib(hwm2)} | {sn} | "
              f"{w:.2f} | {keys} | {ev} | {down} | {rs} |")


def main():
    global PID_FILE
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("overhead", "scrape", "memory"):
        p = sub.add_parser(name)
        p.add_argument("--bin", required=True)
        p.add_argument("--input", required=True)
        p.add_argument("--pid-file")
        if name == "overhead":
            p.add_argument("--tiny")
            p.add_argument("--runs", type=int, default=5)
        if name == "scrape":
            p.add_argument("--scrapes", type=int, default=50)
            p.add_argument("--gap", type=float, default=0.1)
            p.add_argument("--top-k", type=int, default=1000)
            p.add_argument("--idle", type=float, default=20, help="seconds of idle CPU measured")
        if name == "memory":
            p.add_argument("--work", required=True)
            p.add_argument("--max-keys", type=int, default=200_000)
            p.add_argument("--snapshot-interval", default="10s")
    a = ap.parse_args()
    PID_FILE = a.pid_file
    {"overhead": cmd_overhead, "scrape": cmd_scrape, "memory": cmd_memory}[a.cmd](a)


if __name__ == "__main__":
    main()
