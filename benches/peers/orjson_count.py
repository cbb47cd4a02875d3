#!/usr/bin/env python3
"""Peer: plain Python + orjson, one thread, line by line.

Parses every NDJSON line in full with orjson, classifies it with the legacy
table, and aggregates legacy sign-ins in a dict keyed by
(protocol, lower(user), ip, user agent, success) -> count.

Like the other peers it does not dedup by properties.id, unless --dedup is given
(then a record whose id was already seen is left out of the aggregation, as
signin-radar does; this is run once, untimed, to get the dedup-aware reference
count; it also reports legacy_total_nodedup, what the peers should find).

Prints one JSON line: tool, records, invalid, legacy_total, groups, digest,
query_cpu_s (CPU of the scan itself, without interpreter start-up).
"""
import argparse
import resource
import sys
import time

import orjson

from legacy import LEGACY_BY_LOWER, TRIM_CHARS, WORKLOAD_CATEGORIES_LOWER, digest


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def error_code(rec, p):
    st = p.get("status")
    code = st.get("errorCode") if isinstance(st, dict) else None
    if code is None or isinstance(code, bool):
        code = rec.get("resultType")
    if isinstance(code, int):
        return code
    if isinstance(code, str):
        try:
            return int(code.strip())
        except ValueError:
            return None
    return None


def text(v):
    return v if isinstance(v, str) else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--dedup", action="store_true", help="skip records whose properties.id was already seen")
    a = ap.parse_args()

    legacy_map = LEGACY_BY_LOWER
    workload = WORKLOAD_CATEGORIES_LOWER
    loads = orjson.loads
    groups = {}
    seen = set()
    records = invalid = duplicates = legacy_dups = 0

    c0, w0 = cpu_self(), time.perf_counter()
    with open(a.path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = loads(line)
            except orjson.JSONDecodeError:
                invalid += 1
                continue
            p = rec.get("properties") if isinstance(rec, dict) else None
            if not isinstance(p, dict):
                invalid += 1
                continue
            records += 1
            dup = False
            if a.dedup:
                rid = p.get("id")
                if isinstance(rid, str) and rid:
                    if rid in seen:
                        duplicates += 1
                        dup = True
                    else:
                        seen.add(rid)
            app = p.get("clientAppUsed")
            if not isinstance(app, str):
                continue
            proto = legacy_map.get(app.strip(TRIM_CHARS).lower())
            if proto is None:
                continue
            if text(rec.get("category")).lower() in workload:
                continue
            if dup:
                legacy_dups += 1
                continue
            user = text(p.get("userPrincipalName")).strip(TRIM_CHARS) or text(p.get("userId"))
            ip = text(p.get("ipAddress")).strip(TRIM_CHARS) or text(rec.get("callerIpAddress")).strip(TRIM_CHARS)
            key = (proto, user.lower(), ip, text(p.get("userAgent")), error_code(rec, p) == 0)
            groups[key] = groups.get(key, 0) + 1
    c1, w1 = cpu_self(), time.perf_counter()

    out = {
        "tool": "orjson-dedup" if a.dedup else "orjson",
        "records": records,
        "invalid": invalid,
        "legacy_total": sum(groups.values()),
        "groups": len(groups),
        "digest": digest((k + (v,)) for k, v in groups.items()),
        "query_cpu_s": round(c1 - c0, 4),
        "query_wall_s": round(w1 - w0, 4),
    }
    if a.dedup:
        out["duplicates"] = duplicates
        out["legacy_total_nodedup"] = out["legacy_total"] + legacy_dups
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


if __name__ == "__main__":
    main()
