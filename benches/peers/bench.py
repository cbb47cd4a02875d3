#!/usr/bin/env python3
"""Driver of the peer benchmark (run.sh calls it after setting things up).

Runs each selected tool over the same NDJSON file, `--runs` times, each as a
child process; measures the child's CPU (user+sys, from wait4's rusage, so it
includes every thread and any process the child waited for) and wall time;
keeps the best (minimum) of each; prints one table and the legacy-count checks.

Tools (--peers, comma-separated):
  lines       baseline: Python reads 1 MiB chunks and counts b"\\n"
  wc          baseline: wc -l
  chdb        chdb_query.py (ClickHouse engine, max_threads=1, one JSONExtract per field)
  chdb-tuple  chdb_query.py --variant tuple (one JSONExtract(line, 'Tuple(...)') per line)
  duckdb      duckdb_query.py (read_ndjson with explicit columns, threads=1)
  orjson      orjson_count.py (Python + orjson, line by line)
  radar1      signin-radar replay --format json --threads 1 FILE
  radar       signin-radar replay --format json FILE (all cores)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
DEFAULT_PEERS = "lines,wc,chdb,duckdb,orjson,radar1,radar"


def command(tool, path, radar):
    script = lambda name: os.path.join(HERE, name)  # noqa: E731
    return {
        "lines": [PY, script("lines_count.py"), path],
        "wc": ["wc", "-l", path],
        "chdb": [PY, script("chdb_query.py"), path],
        "chdb-tuple": [PY, script("chdb_query.py"), "--variant", "tuple", path],
        "duckdb": [PY, script("duckdb_query.py"), path],
        "orjson": [PY, script("orjson_count.py"), path],
        "radar1": [radar, "replay", "--format", "json", "--threads", "1", path],
        "radar": [radar, "replay", "--format", "json", path],
    }[tool]


def run_once(cmd):
    """Run cmd; return (stdout, stderr, returncode, cpu_s, wall_s) of that child."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        w0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - w0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), p.returncode, ru.ru_utime + ru.ru_stime, wall


def parse(tool, stdout):
    """-> dict with records, legacy_total and maybe digest, query_cpu_s, duplicates."""
    text = stdout.decode("utf-8", "replace")
    if tool == "wc":
        return {"records": int(text.split()[0])}
    if tool.startswith("radar"):
        rep = json.loads(text)
        inp = rep.get("input", {})
        return {
            "records": inp.get("records"),
            "legacy_total": rep.get("legacy", {}).get("total"),
            "duplicates": inp.get("duplicates"),
            "invalid": inp.get("invalid"),
        }
    return json.loads(text.strip().splitlines()[-1])


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--peers", default=DEFAULT_PEERS)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--radar", default=None, help="path to the signin-radar binary")
    ap.add_argument("--no-check", action="store_true", help="skip the untimed dedup-aware reference pass")
    a = ap.parse_args()

    tools = [t.strip() for t in a.peers.split(",") if t.strip()]
    for t in tools:
        try:
            command(t, a.path, a.radar)
        except KeyError:
            sys.exit(f"bench.py: unknown tool {t!r} (known: lines, wc, chdb, chdb-tuple, duckdb, orjson, radar1, radar)")
        if t.startswith("radar") and not a.radar:
            sys.exit(f"bench.py: {t} needs --radar")

    size = os.path.getsize(a.path)
    with open(a.path, "rb") as f:  # warm the page cache so the first timed run is not the odd one out
        while f.read(1 << 24):
            pass
    print(f"input: {a.path} ({size / 1e6:.1f} MB)", flush=True)
    load0 = loadavg()
    if load0 > 0.5:
        print(f"WARNING: load average {load0:.2f} before starting: something else is using the CPU; "
              "the figures will be noisy (CPU less so than wall)", flush=True)

    ref = None
    if not a.no_check:
        out, err, rc, cpu, wall = run_once([PY, os.path.join(HERE, "orjson_count.py"), "--dedup", a.path])
        if rc == 0:
            ref = json.loads(out)
            print(f"reference (orjson_count.py --dedup, untimed, {wall:.1f}s): records={ref['records']} "
                  f"duplicate ids={ref['duplicates']} legacy without dedup={ref['legacy_total_nodedup']} "
                  f"legacy with dedup={ref['legacy_total']}", flush=True)
        else:
            print("WARNING: reference pass failed:\n" + err.decode(errors="replace")[-2000:], flush=True)

    results = {}
    for t in tools:
        cmd = command(t, a.path, a.radar)
        best_cpu = best_wall = None
        info = None
        for i in range(a.runs):
            out, err, rc, cpu, wall = run_once(cmd)
            if rc != 0:
                info = {"error": f"exit {rc}: " + err.decode(errors="replace").strip()[-600:]}
                break
            try:
                parsed = parse(t, out)
            except (ValueError, KeyError, IndexError) as e:
                info = {"error": f"cannot read its output ({e}): {out[:300]!r}"}
                break
            if best_cpu is None or cpu < best_cpu:
                info = parsed  # the details (query CPU, ...) of the run with the least CPU
            best_cpu = cpu if best_cpu is None else min(best_cpu, cpu)
            best_wall = wall if best_wall is None else min(best_wall, wall)
            print(f"  {t:<10} run {i + 1}: cpu {cpu:7.3f}s  wall {wall:7.3f}s", flush=True)
        if "error" in info:
            print(f"  {t:<10} FAILED: {info['error']}", flush=True)
        results[t] = dict(info, cpu=best_cpu, wall=best_wall)

    def rate(r):
        n = r.get("records")
        return n / r["cpu"] if r.get("cpu") and isinstance(n, int) else None

    base = rate(results["chdb"]) if "chdb" in results else None
    radar_total = next((results[t]["legacy_total"] for t in ("radar1", "radar")
                        if t in results and results[t].get("legacy_total") is not None), None)
    peer_digests = {results[t].get("digest") for t in tools if results[t].get("digest")}
    n_digests = sum(1 for t in tools if results[t].get("digest"))

    print()
    print(f"best of {a.runs} (minimum CPU and minimum wall, each over the runs); CPU = user+sys of the child")
    hdr = f"{'tool':<11}{'records':>9}{'CPU s':>9}{'wall s':>9}{'rec/CPU-s':>12}{'vs chdb':>9}{'query CPU s':>13}{'legacy':>8}  check"
    print(hdr)
    print("-" * len(hdr))
    warnings = []
    for t in tools:
        r = results[t]
        if "error" in r:
            print(f"{t:<11}  FAILED (see above)")
            continue
        rr = rate(r)
        check = ""
        lt = r.get("legacy_total")
        if lt is not None:
            if t.startswith("radar"):
                if ref is not None:
                    check = "ok" if lt == ref["legacy_total"] else f"MISMATCH (dedup ref {ref['legacy_total']})"
            else:
                # peers do not dedup: with the reference pass, check them against its no-dedup
                # count (and signin-radar against its dedup count, above); without it, against
                # signin-radar's legacy.total directly, which differs by the duplicated legacy ids
                parts = []
                if ref is not None:
                    if lt != ref["legacy_total_nodedup"]:
                        parts.append(f"MISMATCH (no-dedup ref {ref['legacy_total_nodedup']})")
                elif radar_total is not None and lt != radar_total:
                    parts.append(f"MISMATCH (radar {radar_total}; peers do not dedup)")
                if len(peer_digests) > 1:
                    parts.append(f"groups digest {r.get('digest')}")
                check = " ".join(parts) or ("ok" if ref is not None or radar_total is not None else "")
            if "MISMATCH" in check:
                warnings.append(f"{t}: legacy {lt}: {check}")
        print(f"{t:<11}{fmt(r.get('records'), 'd'):>9}{fmt(r['cpu'], '.3f'):>9}{fmt(r['wall'], '.3f'):>9}"
              f"{fmt(rr, ',.0f'):>12}{fmt(rr / base if rr and base else None, '.2f'):>9}"
              f"{fmt(r.get('query_cpu_s'), '.3f'):>13}{fmt(lt, 'd'):>8}  {check}")
    print()
    if radar_total is not None:
        peers_lt = sorted({results[t]["legacy_total"] for t in tools
                           if not t.startswith("radar") and results[t].get("legacy_total") is not None})
        dups = next((results[t].get("duplicates") for t in ("radar1", "radar") if t in results), None)
        print(f"legacy totals: signin-radar legacy.total={radar_total} (dedup by properties.id, "
              f"input.duplicates={dups}); peers (no dedup)={peers_lt or '-'}"
              + (f"; reference dedup={ref['legacy_total']} no-dedup={ref['legacy_total_nodedup']}" if ref else ""))
    if len(peer_digests) > 1:
        warnings.append(f"peers disagree on the grouped result: digests {sorted(peer_digests)}")
    elif n_digests > 1:
        print(f"the {n_digests} peers' grouped results agree (digest {peer_digests.pop()})")
    print(f"load average (1 min): {load0:.2f} at the start, {loadavg():.2f} at the end "
          f"(one busy thread adds ~1; more than that means other work shared the machine)")
    for w in warnings:
        print("WARNING: " + w)
    print("records/CPU-s uses each tool's own record count; 'vs chdb' = (records/CPU-s) / chdb's; "
          "'query CPU s' = CPU inside the peer's query, without interpreter/library start-up")
    failed = [t for t in tools if "error" in results[t]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
