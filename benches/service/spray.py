#!/usr/bin/env python3
"""Writes a deterministic password spray over legacy protocols as NDJSON diagnostic records.

Every one of --users users is tried --attempts times (user order is shuffled per pass with a
seeded permutation), from --ips source IPs, over IMAP4 and Authenticated SMTP with the
`BAV2ROPC` user agent, all failing with 50126 (wrong password), evenly over --span seconds of
event time. Records are minimal but valid Event Hubs / storage-archive records
(`properties` holds the signIn fields signin-radar reads). The same arguments give the same
bytes.

    python3 spray.py --users 500000 --attempts 2 > spray.ndjson

Stdlib only.
"""

import argparse
import datetime as dt
import hashlib
import random
import sys
import uuid

PROTOCOLS = ("IMAP4", "Authenticated SMTP")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--attempts", type=int, default=2, help="attempts per user")
    ap.add_argument("--ips", type=int, default=50, help="distinct source IPs")
    ap.add_argument("--start", default="2026-11-01T00:00:00Z", help="first event time (UTC)")
    ap.add_argument("--span", type=int, default=3600, help="event-time span, seconds")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--domain", default="contoso.onmicrosoft.com")
    a = ap.parse_args()
    if a.users <= 0 or a.attempts <= 0 or a.ips <= 0 or a.span <= 0:
        ap.error("--users, --attempts, --ips and --span must be positive")

    rng = random.Random(a.seed)
    start = dt.datetime.fromisoformat(a.start.replace("Z", "+00:00"))
    start_ns = int(start.timestamp()) * 1_000_000_000
    # Spray sources: TEST-NET addresses, stable for a seed.
    nets = ("203.0.113.", "198.51.100.", "192.0.2.")
    ips = [nets[i % 3] + str(1 + rng.randrange(254)) for i in range(a.ips)]
    ips = list(dict.fromkeys(ips))
    while len(ips) < a.ips:  # collisions: fill up deterministically
        ips.append(f"{nets[len(ips) % 3]}{1 + len(ips) % 254}")
        ips = list(dict.fromkeys(ips))

    total = a.users * a.attempts
    step_ns = a.span * 1_000_000_000 // total
    id_salt = hashlib.sha256(f"spray-{a.seed}".encode()).digest()[:8]
    out = sys.stdout
    buf = []
    n = 0
    for attempt in range(a.attempts):
        order = list(range(a.users))
        rng.shuffle(order)
        for u in order:
            t_ns = start_ns + n * step_ns
            secs, frac = divmod(t_ns, 1_000_000_000)
            stamp = (
                dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                + f".{frac // 100:07d}Z"
            )
            rid = uuid.UUID(bytes=hashlib.md5(id_salt + n.to_bytes(8, "little")).digest(), version=4)
            ip = ips[rng.randrange(len(ips))]
            proto = PROTOCOLS[(u + attempt) & 1]
            upn = f"user{u:06d}@{a.domain}"
            buf.append(
                '{"time":"%s","category":"SignInLogs","operationName":"Sign-in activity",'
                '"resultType":"50126","callerIpAddress":"%s","properties":{"id":"%s",'
                '"createdDateTime":"%s","userPrincipalName":"%s","ipAddress":"%s",'
                '"clientAppUsed":"%s","userAgent":"BAV2ROPC","status":{"errorCode":50126,'
                '"failureReason":"Invalid username or password or Invalid on-premise username or password."},'
                '"isInteractive":false,"authenticationProtocol":"ropc"}}\n'
                % (stamp, ip, rid, stamp, upn, ip, proto)
            )
            n += 1
            if len(buf) >= 10_000:
                out.write("".join(buf))
                buf.clear()
    out.write("".join(buf))
    out.flush()
    print(f"spray: {total} records, {a.users} users, {len(ips)} IPs, {a.span} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
