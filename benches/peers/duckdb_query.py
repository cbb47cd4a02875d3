#!/usr/bin/env python3
"""Peer: DuckDB, threads=1, read_ndjson with explicit columns.

read_ndjson parses only the declared columns (category, resultType,
callerIpAddress and a STRUCT for the needed `properties` fields), then the
query classifies each row with the legacy table and groups legacy sign-ins in
non-workload categories by (protocol, lower(user), ip, user agent, success)
with count(*).

Rows that are not legacy fall into one extra all-NULL group, so that the same
single scan also yields the record count (sum of all groups); it is dropped
from the result.

Prints one JSON line: tool, records, legacy_total, groups, digest,
query_cpu_s (CPU of the query itself, without Python/DuckDB start-up).
"""
import argparse
import resource
import sys
import time

from legacy import LEGACY_BY_LOWER, TRIM_CHARS, WORKLOAD_CATEGORIES_LOWER, report, sql_str

TRIM = "' \t\r\n'"  # DuckDB literal for TRIM_CHARS: DuckDB strings take no backslash escapes
assert TRIM[1:-1] == TRIM_CHARS

COLUMNS = """{
    category: 'VARCHAR',
    resultType: 'VARCHAR',
    callerIpAddress: 'VARCHAR',
    properties: 'STRUCT(clientAppUsed VARCHAR, userPrincipalName VARCHAR, userId VARCHAR,
                        ipAddress VARCHAR, userAgent VARCHAR, status STRUCT(errorCode VARCHAR))'
}"""


def query(path):
    protocol_case = "CASE lower(trim(properties.clientAppUsed, {t}))\n".format(t=TRIM) + "".join(
        f"            WHEN {sql_str(k)} THEN {sql_str(v)}\n" for k, v in LEGACY_BY_LOWER.items()
    ) + "        END"
    workload = "(" + ", ".join(sql_str(c) for c in sorted(WORKLOAD_CATEGORIES_LOWER)) + ")"
    return f"""
WITH rows AS (
    SELECT
        CASE WHEN lower(coalesce(category, '')) NOT IN {workload} THEN
        {protocol_case}
        END AS protocol,
        properties, resultType, callerIpAddress
    FROM read_ndjson({sql_str(path)}, columns = {COLUMNS},
                     format = 'newline_delimited', ignore_errors = true)
)
SELECT
    protocol,
    CASE WHEN protocol IS NOT NULL THEN
        lower(coalesce(nullif(trim(properties.userPrincipalName, {TRIM}), ''), properties.userId, ''))
    END AS user,
    CASE WHEN protocol IS NOT NULL THEN
        coalesce(nullif(trim(properties.ipAddress, {TRIM}), ''), trim(callerIpAddress, {TRIM}), '')
    END AS ip,
    CASE WHEN protocol IS NOT NULL THEN coalesce(properties.userAgent, '') END AS user_agent,
    CASE WHEN protocol IS NOT NULL THEN
        coalesce(TRY_CAST(trim(coalesce(properties.status.errorCode, resultType), {TRIM}) AS BIGINT) = 0, false)
    END AS success,
    count(*) AS n
FROM rows
GROUP BY ALL
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--print-sql", action="store_true")
    a = ap.parse_args()
    sql = query(a.path)
    if a.print_sql:
        print(sql)
        return

    import duckdb

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.perf_counter()
    con = duckdb.connect(config={"threads": 1})
    rows = con.execute(sql).fetchall()
    w1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    legacy = [r for r in rows if r[0] is not None]
    report("duckdb", sum(r[5] for r in rows), legacy, r0, r1, w0, w1)


if __name__ == "__main__":
    main()
