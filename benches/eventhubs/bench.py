"""Event Hubs benchmark driver (stdlib only): see run.sh."""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

BIN = os.path.abspath("target/release")
RECORDS = int(os.environ.get("RECORDS", 200_000))
RATE = int(os.environ.get("RATE", 5_000))
SECONDS = int(os.environ.get("SECONDS", 30))
PARTITIONS = int(os.environ.get("PARTITIONS", 4))
PER_MESSAGE = 50
CONN = "Endpoint=sb://devhub.local/;SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0;EntityPath=signins"
procs = []


def start(args, prefix):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    line = p.stdout.readline().strip()
    if not line.startswith(prefix):
        sys.exit(f"{args[0]} said {line!r}")
    return p, line[len(prefix):]


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
    procs.clear()


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.read().decode()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def devhub(path, extra):
    return start([f"{BIN}/devhub", "--listen", "127.0.0.1:0", "--partitions", str(PARTITIONS),
                  "--hub", "signins", *extra, path], "devhub listening on ")


def service(url, state):
    p, addr = start([f"{BIN}/signin-radar", "run", "--source", "eventhubs",
                     "--eventhubs-connection-string", CONN, "--eventhubs-endpoint", url,
                     "--start-position", "earliest", "--listen", "127.0.0.1:0",
                     "--retention", "3650d", "--state-dir", state], "listening on http://")
    return p, int(addr.rsplit(":", 1)[1])


def wait_records(port, want, deadline):
    while time.time() < deadline:
        try:
            st = json.loads(get(port, "/api/v1/status"))
            if st["records"] >= want:
                return st
        except Exception:
            pass
        time.sleep(0.005)
    sys.exit(f"not all records counted in time: {st}")


def histogram(scrape, name):
    buckets = []
    for m in re.finditer(name + r'_bucket\{le="([^"]+)"\} (\S+)', scrape):
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
    return buckets


def quantile(buckets, q):
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (q * total - prev_n) / max(n - prev_n, 1)
        prev_le, prev_n = le, n
    return prev_le


def main():
    work = tempfile.mkdtemp(prefix="srb-eh-")
    try:
        data = os.path.join(work, "hub.ndjson")
        with open(data, "wb") as f:
            subprocess.run([f"{BIN}/signin-radar", "synth", "--format", "envelope", "--batch",
                            str(PER_MESSAGE), "--records", str(RECORDS), "--users", "200000",
                            "--seed", "3"], stdout=f, check=True)
        size = os.path.getsize(data)
        print(f"input: {RECORDS} records in {RECORDS // PER_MESSAGE} messages, {size / 1e6:.0f} MB, "
              f"{PARTITIONS} partitions, machine: {os.cpu_count()} cores")

        # 1. Throughput from a full hub.
        _, url = devhub(data, [])
        p, port = service(url, os.path.join(work, "s1"))
        t0, c0 = time.time(), cpu_seconds(p.pid)
        wait_records(port, RECORDS, time.time() + 600)
        t1, c1 = time.time(), cpu_seconds(p.pid)
        rate = RECORDS / (t1 - t0)
        print(f"throughput: {RECORDS} records in {t1 - t0:.2f} s = {rate:,.0f} records/s "
              f"({size / 1e6 / (t1 - t0):.0f} MB/s); service CPU {c1 - c0:.2f} s "
              f"({RECORDS / max(c1 - c0, 1e-9):,.0f} records per CPU-second)")
        stop_all()

        # 2. Delivery latency at a steady rate.
        msgs_per_s = RATE / PER_MESSAGE
        n = int(RATE * SECONDS)
        _, url = devhub(data, ["--publish-rate", str(msgs_per_s)])
        p, port = service(url, os.path.join(work, "s2"))
        # Warm-up (connections, the backlog published before the service was up): 3 s.
        wait_records(port, 3 * RATE, time.time() + 120)
        b0 = histogram(get(port, "/metrics"), "signin_radar_eventhubs_delivery_seconds")
        wait_records(port, min(n, RECORDS), time.time() + SECONDS * 3 + 60)
        b1 = histogram(get(port, "/metrics"), "signin_radar_eventhubs_delivery_seconds")
        b = [(le, x1 - x0) for (le, x1), (_, x0) in zip(b1, b0)]
        count = b[-1][1]
        le_100 = next(x for le, x in b if le == 0.1) / count
        le_250 = next(x for le, x in b if le == 0.25) / count
        print(f"latency at {RATE} records/s ({msgs_per_s:.0f} messages/s, {count:.0f} messages): "
              f"p50 ~{quantile(b, 0.5) * 1000:.1f} ms, p99 ~{quantile(b, 0.99) * 1000:.1f} ms "
              f"(interpolated in histogram buckets); {le_100:.1%} within 100 ms, "
              f"{le_250:.1%} within 250 ms")
        stop_all()
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
