"""Drives benches/alerts/run.sh: see there. Prints the delivery-latency quantiles per sink."""
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = sys.argv[1]
RECORDS = int(os.environ.get("RECORDS", "200000"))
USERS = os.environ.get("USERS", "20000")
SPRAYS = os.environ.get("SPRAYS", "40")
SPAN = os.environ.get("SPAN", "2d")
RATE = os.environ.get("RATE", "10000")
SEED = os.environ.get("SEED", "3")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def wait(what, fn, deadline=300):
    end = time.time() + deadline
    while time.time() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


class Hook(http.server.BaseHTTPRequestHandler):
    count = 0

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        Hook.count += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def quantile(buckets, q):
    """Upper bound of the bucket holding quantile q (buckets: sorted (le, cumulative))."""
    total = buckets[-1][1]
    if total == 0:
        return None
    for le, c in buckets:
        if c >= q * total:
            return le
    return float("inf")


def main():
    work = tempfile.mkdtemp(prefix="srab-")
    procs = []
    try:
        data = os.path.join(work, "in.ndjson")
        with open(data, "wb") as f:
            subprocess.run(
                [BIN, "synth", "--records", str(RECORDS), "--users", USERS, "--sprays", SPRAYS,
                 "--span", SPAN, "--seed", SEED], stdout=f, check=True)
        am_port = free_port()
        cfg = os.path.join(work, "am.yml")
        open(cfg, "w").write('route: {receiver: "null"}\nreceivers: [{name: "null"}]\n')
        procs.append(subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={cfg}",
             f"--storage.path={work}/am", f"--web.listen-address=127.0.0.1:{am_port}",
             "--cluster.listen-address="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait("alertmanager", lambda: get(f"http://127.0.0.1:{am_port}/-/ready"))
        hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=hook.serve_forever, daemon=True).start()
        port = free_port()
        svc = subprocess.Popen(
            [BIN, "run", "--source", f"file:{data}", "--listen", f"127.0.0.1:{port}",
             "--state-dir", f"{work}/state", "--retention", "3650d", "--rate", RATE,
             "--learning", "1d",
             "--alertmanager-url", f"http://127.0.0.1:{am_port}",
             "--webhook-url", f"http://127.0.0.1:{hook.server_address[1]}/hook"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(svc)
        base = f"http://127.0.0.1:{port}"
        start = time.time()
        wait("caught up", lambda: json.loads(get(base + "/api/v1/status"))["caught_up"], 900)
        took = time.time() - start
        time.sleep(2)  # let the last evaluation's alerts go out before reading the histogram
        metrics = get(base + "/metrics")
        findings = {m.group(1): int(float(m.group(2))) for m in re.finditer(
            r'^signin_radar_findings_total\{kind="([a-z_]+)"\} (\S+)$', metrics, re.M)}
        print(f"input: {RECORDS} records, {SPRAYS} sprays over {SPAN}, read at {RATE}/s "
              f"in {took:.1f} s")
        print(f"findings: {findings}; webhook notices received: {Hook.count}")
        for sink in ("alertmanager", "webhook"):
            b = []
            for m in re.finditer(r'^signin_radar_alert_delivery_seconds_bucket\{([^}]*)\} (\S+)$',
                                 metrics, re.M):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                if labels.get("sink") == sink:
                    b.append((float(labels["le"]), int(float(m.group(2)))))
            b.sort()
            n = b[-1][1] if b else 0
            within1 = next((c for le, c in b if le == 1.0), None)
            print(f"{sink}: {n} transitions delivered; p50 <= {quantile(b, 0.5)} s, "
                  f"p99 <= {quantile(b, 0.99)} s, max <= {quantile(b, 1.0)} s; "
                  f"within 1 s: {within1}/{n}")
        svc.terminate()
        svc.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


main()
