#!/usr/bin/env python3
"""Peer: chdb (the ClickHouse engine in-process), one thread.

SETTINGS max_threads = 1 alone is not one thread: the input format's parallel
parsing still runs parser threads beside the query thread (CPU > wall, measured
here: ~0.74 CPU-s in ~0.50 s wall on 50k records); max_parsing_threads = 1 makes
it one thread (CPU == wall), and also uses less CPU.

Reads the NDJSON file as raw lines (`file(path, 'LineAsString')`) and pulls the
fields out of each line with JSONExtract*, then filters to legacy protocols in
non-workload categories and groups by
(protocol, lower(user), ip, user agent, success) with count().

--variant fields (default): one JSONExtractString/JSONExtract call per field,
    as a hand-written ClickHouse query would do. ClickHouse evaluates the WHERE
    (clientAppUsed, category) on every line and the other fields only on the
    rows that pass.
--variant tuple: one JSONExtract(line, 'Tuple(...)') per line that pulls all
    fields in a single parse.

Prints one JSON line: tool, records (lines read from the file), legacy_total, groups,
digest, query_cpu_s (CPU of the query itself, without Python/chdb start-up).
"""
import argparse
import json
import resource
import sys
import time

from legacy import LEGACY_BY_LOWER, TRIM_CHARS, WORKLOAD_CATEGORIES_LOWER, report, sql_str

TRIM = "' \\t\\r\\n'"  # ClickHouse literal for TRIM_CHARS (space, tab, CR, LF)
LOWER_NAMES = "[" + ", ".join(sql_str(k) for k in LEGACY_BY_LOWER) + "]"
CANON_NAMES = "[" + ", ".join(sql_str(v) for v in LEGACY_BY_LOWER.values()) + "]"
# One thread: max_threads = 1 alone still leaves parser threads (see above).
# max_block_size: the default (65409 rows) makes one ~450 MB block of 7 KB lines, and
# page-faulting it in made the CPU (mostly sys) swing between 1.3 and 3.8 s from run
# to run on 50k records; 1024 rows with pread reads gives ~0.6 s, steadily.
SETTINGS = "max_threads = 1, max_parsing_threads = 1, max_block_size = 1024, storage_file_read_method = 'pread'"
WORKLOAD = "(" + ", ".join(sql_str(c) for c in sorted(WORKLOAD_CATEGORIES_LOWER)) + ")"


def query_fields(path):
    src = f"file({sql_str(path)}, 'LineAsString')"
    return f"""
SELECT
    transform(lowerUTF8(trim(BOTH {TRIM} FROM JSONExtractString(line, 'properties', 'clientAppUsed'))),
              {LOWER_NAMES}, {CANON_NAMES}, '') AS protocol,
    lowerUTF8(if(trim(BOTH {TRIM} FROM JSONExtractString(line, 'properties', 'userPrincipalName')) AS upn != '',
                 upn, JSONExtractString(line, 'properties', 'userId'))) AS user,
    if(trim(BOTH {TRIM} FROM JSONExtractString(line, 'properties', 'ipAddress')) AS ip0 != '',
       ip0, trim(BOTH {TRIM} FROM JSONExtractString(line, 'callerIpAddress'))) AS ip,
    JSONExtractString(line, 'properties', 'userAgent') AS user_agent,
    ifNull(coalesce(JSONExtract(line, 'properties', 'status', 'errorCode', 'Nullable(Int64)'),
                    toInt64OrNull(trim(BOTH {TRIM} FROM JSONExtractString(line, 'resultType')))) = 0,
           0) AS success,
    count() AS n
FROM {src}
WHERE protocol != ''
  AND lowerUTF8(JSONExtractString(line, 'category')) NOT IN {WORKLOAD}
GROUP BY protocol, user, ip, user_agent, success
SETTINGS {SETTINGS}
"""


def query_tuple(path):
    src = f"file({sql_str(path)}, 'LineAsString')"
    t = ("Tuple(category String, resultType String, callerIpAddress String, "
         "properties Tuple(clientAppUsed String, userPrincipalName String, userId String, "
         "ipAddress String, userAgent String, status Tuple(errorCode Nullable(Int64))))")
    return f"""
SELECT
    transform(lowerUTF8(trim(BOTH {TRIM} FROM r.properties.clientAppUsed)),
              {LOWER_NAMES}, {CANON_NAMES}, '') AS protocol,
    lowerUTF8(if(trim(BOTH {TRIM} FROM r.properties.userPrincipalName) AS upn != '',
                 upn, r.properties.userId)) AS user,
    if(trim(BOTH {TRIM} FROM r.properties.ipAddress) AS ip0 != '',
       ip0, trim(BOTH {TRIM} FROM r.callerIpAddress)) AS ip,
    r.properties.userAgent AS user_agent,
    ifNull(coalesce(r.properties.status.errorCode,
                    toInt64OrNull(trim(BOTH {TRIM} FROM r.resultType))) = 0, 0) AS success,
    count() AS n
FROM (SELECT JSONExtract(line, '{t}') AS r FROM {src})
WHERE protocol != ''
  AND lowerUTF8(r.category) NOT IN {WORKLOAD}
GROUP BY protocol, user, ip, user_agent, success
SETTINGS {SETTINGS}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--variant", choices=["fields", "tuple"], default="fields")
    ap.add_argument("--print-sql", action="store_true")
    a = ap.parse_args()
    sql = (query_fields if a.variant == "fields" else query_tuple)(a.path)
    if a.print_sql:
        print(sql)
        return

    import chdb  # imported here so that --print-sql works without it

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    res = chdb.query(sql, "JSONCompactEachRow")
    w1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    if res.has_error():
        sys.exit("chdb error: " + res.error_message())
    rows = [json.loads(line) for line in res.bytes().splitlines() if line]
    tool = "chdb" if a.variant == "fields" else "chdb-tuple"
    # records: lines read from the file.
    report(tool, res.storage_rows_read(), rows, r0, r1, w0, w1)


if __name__ == "__main__":
    main()
