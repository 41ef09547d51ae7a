#!/usr/bin/env python3
"""HTTPS front benchmark: `edge --cores 1` against nginx (worker_processes 1).

Both serve the same cover page with the same ECDSA P-256 certificate; the server
is pinned to CPU 0 and `loadgen` to CPU 1. Each row is the median of --runs runs,
and each figure is also divided by the server's CPU seconds during that run
(with two cores the generator itself can be the limit).

Usage: scripts/bench_https.py [--runs 3] [--duration 5] [--out FILE.md]
Needs: nginx (apt-get install nginx-light or nginx), openssl, a release build
of `edge` and `loadgen` (this script builds them).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pids):
    """User + system CPU seconds of these processes and all their threads."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except FileNotFoundError:
            pass
    return total / CLK


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def make_cert(d):
    key, crt = d / "bench.key", d / "bench.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-days", "2"],
        check=True, capture_output=True)
    os.chmod(key, 0o600)
    return crt, key



class Procs:
    """Children a benchmark started, each pinned with taskset and stopped by its own pid
    (shared by bench_tunnel.py and bench_sfu.py). Logs go to `<logdir>/<name>.log`,
    appended, so a process restarted under the same name keeps its earlier output."""

    def __init__(self, logdir, who):
        self.logdir = logdir
        self.who = who
        self.all = []

    def start(self, name, cpu, argv, port=None):
        log = open(self.logdir / f"{name}.log", "a")
        p = subprocess.Popen(["taskset", "-c", cpu] + [str(a) for a in argv],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.all.append(p)
        if port is not None:
            try:
                wait_port(port)
            except RuntimeError:
                self.stop_all()
                sys.exit(f"{self.who}: {name} did not listen on {port}; see {log.name}")
        return p  # taskset execs, so p.pid is the program's own pid

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.all):
            self.stop(p)

def start_edge(d, crt, key, port, admin):
    secret = d / "session.key"
    secret.write_bytes(os.urandom(48))
    os.chmod(secret, 0o600)
    cfg = d / "edge.toml"
    cfg.write_text(f"""
[node]
id = "bench"
dev = false
[runtime]
cores = 1
[front]
listen = "127.0.0.1:{port}"
domains = ["localhost"]
cover_dir = "{ROOT / 'cover'}"
[[front.certs]]
cert = "{crt}"
key = "{key}"
[front.session]
secret_file = "{secret}"
[admin]
listen = "127.0.0.1:{admin}"
[log]
level = "warn"
""")
    p = subprocess.Popen(["taskset", "-c", "0", str(ROOT / "target/release/edge"), "--config", str(cfg)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, lambda: [p.pid]


def start_nginx(d, crt, key, port):
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    etag on;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name localhost;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {ROOT / 'cover'};
        index index.html;
        error_page 404 /404.html;
    }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", str(conf), "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, lambda: [p.pid] + children(p.pid)


def loadgen(url, args, duration, out):
    cmd = ["taskset", "-c", "1", str(ROOT / "target/release/loadgen"), "https", "--url", url,
           "--insecure", "--duration", str(duration), "--warmup", "1", "--json", str(out)] + args
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


MODES = [
    ("keep-alive HTTP/1.1, 32 conns", ["-c", "32"], "requests_per_sec"),
    ("keep-alive h2, 32 conns", ["-c", "32", "--h2"], "requests_per_sec"),
    ("new TLS connection per request, 16 conns", ["-c", "16", "--new-conn"], "handshakes_per_sec"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if not shutil.which("nginx"):
        sys.exit("bench_https: nginx is missing: apt-get install -y nginx-light (or nginx)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "oxpulse-edge", "-p", "loadgen"],
                   cwd=ROOT, check=True)
    d = Path(tempfile.mkdtemp(prefix="bench-https-"))
    crt, key = make_cert(d)
    results = {}  # (server, mode) -> list of (rate, rate per cpu-s, p99, loadgen cpu)
    for run in range(a.runs):
        for server in ("edge", "nginx"):
            port = free_port()
            if server == "edge":
                proc, pids = start_edge(d, crt, key, port, free_port())
            else:
                proc, pids = start_nginx(d, crt, key, port)
            try:
                for label, args, field in MODES:
                    before = cpu_seconds(pids())
                    rep = loadgen(f"https://localhost:{port}/", args, a.duration, d / "r.json")
                    used = cpu_seconds(pids()) - before
                    if rep["errors"] or rep["status_errors"]:
                        print(f"warning: {server} {label}: errors {rep['errors']} status {rep['status_errors']}", file=sys.stderr)
                    # Server CPU covers the warm-up too: count its requests at the same rate.
                    served = rep[field] * (rep["duration_s"] + rep.get("warmup_s", 0))
                    per_cpu = served / used if used > 0 else float("nan")
                    results.setdefault((server, label), []).append(
                        (rep[field], per_cpu, rep["p99_ms"], rep.get("loadgen_cpu_pct", 0.0), used))
                    print(f"run {run + 1} {server:5} {label}: {rep[field]:.0f}/s, "
                          f"{per_cpu:.0f} per server CPU-s, p99 {rep['p99_ms']:.2f} ms", file=sys.stderr)
            finally:
                proc.send_signal(signal.SIGTERM if server == "edge" else signal.SIGQUIT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
    lines = ["| workload | server | rate (median) | per server CPU-second | p99 ms | loadgen CPU % |",
             "|---|---|---|---|---|---|"]
    for label, _, field in MODES:
        unit = "req/s" if field == "requests_per_sec" else "handshakes/s"
        for server in ("edge", "nginx"):
            rows = results[(server, label)]
            lines.append(
                f"| {label} | {server} | {statistics.median(r[0] for r in rows):,.0f} {unit} | "
                f"{statistics.median(r[1] for r in rows):,.0f} | {statistics.median(r[2] for r in rows):.2f} | "
                f"{statistics.median(r[3] for r in rows):.0f} |")
    table = "\n".join(lines)
    print(table)
    if a.out:
        a.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
