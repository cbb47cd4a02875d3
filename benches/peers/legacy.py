"""The legacy (basic) authentication table shared by the peer queries.

Same contract as the engine (see the legacy clientAppUsed table in the project's
sign-in schema notes): clientAppUsed is trimmed and compared case-insensitively;
the variants map to their canonical names. `Browser` and `Mobile Apps and
Desktop clients` are modern; `Unknown`, empty, missing and anything else are
unclassified, never legacy.

A sign-in is legacy when its protocol is in this table and its category is not a
service-principal or managed-identity (workload) one.
"""

# canonical name -> variants seen (besides case / surrounding whitespace)
LEGACY = {
    "Authenticated SMTP": [],
    "Autodiscover": ["AutoDiscover"],
    "Exchange ActiveSync": [],
    "Exchange Online PowerShell": [],
    "Exchange Web Services": [],
    "IMAP4": [],
    "MAPI Over HTTP": ["MAPI over HTTP"],
    "Offline Address Book": [],
    "Outlook Anywhere (RPC over HTTP)": [],
    "POP3": [],
    "Reporting Web Services": [],
    "Universal Outlook": ["Outlook Service"],
    "Other clients": [],
}

# lower-cased clientAppUsed -> canonical protocol name
LEGACY_BY_LOWER = {}
for _canon, _variants in LEGACY.items():
    for _name in [_canon] + _variants:
        LEGACY_BY_LOWER[_name.lower()] = _canon

# categories whose records are workload identities: never legacy (compared lower-cased)
WORKLOAD_CATEGORIES_LOWER = {
    "serviceprincipalsigninlogs",
    "managedidentitysigninlogs",
    "microsoftserviceprincipalsigninlogs",
}

# what is stripped from both ends of clientAppUsed / userPrincipalName / ipAddress
# (ASCII whitespace: the SQL engines' trim() takes an explicit character set)
TRIM_CHARS = " \t\r\n"


def sql_str(s):
    """A single-quoted SQL string literal, for names without quotes or backslashes
    (ClickHouse and DuckDB escape those differently)."""
    assert "'" not in s and "\\" not in s, s
    return "'" + s + "'"


def digest(rows):
    """Order-independent digest of the aggregation result, to compare peers.

    rows: iterable of (protocol, user, ip, user_agent, success(bool/int), count).
    """
    import hashlib
    lines = sorted("\x1f".join([str(p), str(u), str(i), str(a), str(int(bool(s))), str(int(c))])
                   for p, u, i, a, s, c in rows)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def report(tool, records, rows, r0, r1, w0, w1):
    """Prints one tool's result line: counts, a digest of its legacy grouping, and the CPU and
    wall time of the query itself (rusage r0/r1 and perf_counter w0/w1 around it)."""
    import json
    import sys

    out = {
        "tool": tool,
        "records": records,
        "legacy_total": sum(r[5] for r in rows),
        "groups": len(rows),
        "digest": digest(rows),
        "query_cpu_s": round((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), 4),
        "query_wall_s": round(w1 - w0, 4),
    }
    sys.stdout.write(json.dumps(out) + "\n")
