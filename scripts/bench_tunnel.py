#!/usr/bin/env python3
"""Tunnel benchmark: bulk download through REALITY + VLESS (no flow), raw and over XHTTP
stream-up, the edge's tunnel client against Xray's, both talking to the same Xray
24.11.21 server (one inbound per transport).

    loadgen bulk -> client (forward / dokodemo-door) -> Xray server -> bulk source
                    ^ CPU 0                             ^ CPU 1 with the source and loadgen

Client A is `edge --cores 1` with a `[[tunnel.forward]]`; client B is Xray with a
dokodemo-door inbound and a VLESS + REALITY outbound (fingerprint chrome). Only the
client differs. The client under test is alone on CPU 0; the Xray server, the bulk
source and loadgen share CPU 1, which bounds the absolute MB/s, so "MB per client
CPU-second" (bytes loadgen counted / the client's user + system CPU over the loadgen
run, from /proc/<pid>/stat, all threads) is the comparable figure. loadgen reads for 1 s
before it counts (connections stay open), so tunnel set-up is outside both the bytes and
the CPU window; its time to first byte is reported on its own. A "direct" row
(loadgen straight to the source on CPU 1) shows what that core gives without a tunnel.

Every client is measured twice: with CPU 0 to itself (then the server core is usually
the limit and the client idles between bursts of data), and with a busy loop sharing
CPU 0 (the client gets about half of it and becomes the limit, so its CPU-seconds are
spent on full batches: closer to its own cost per byte).

Usage: scripts/bench_tunnel.py [--runs 3] [--duration 5] [--transports raw,xhttp] [--out FILE.md]
Needs: taskset, openssl, python3, and Xray 24.11.21 at target/peers/xray (this script
runs scripts/install-peers.sh if it is missing, and builds release `edge` and `loadgen`).
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
import threading
import time
from pathlib import Path

# Same helpers as the HTTPS benchmark (port probing, /proc CPU accounting, certificate).
from bench_https import ROOT, cpu_seconds, free_port, make_cert, Procs, wait_port

XRAY = ROOT / "target/peers/xray"
LOADGEN = ROOT / "target/release/loadgen"
EDGE = ROOT / "target/release/edge"
USER = "5f0b2c1e-7d3a-4e58-9b61-0c2d4e6f8a10"
SHORT_ID = "0123456789abcdef"
# The edge picks one of these per node and UTC day; the server accepts them all.
POOL = ["a.example.com", "b.example.com", "c.example.com"]
CONNECTIONS = [1, 4]
XHTTP_PATH = "/xh"
CLIENT_CPU, SERVER_CPU = "0", "1"


def serve_bulk(port):
    """Bulk source: every connection gets an endless deterministic pattern until the
    peer closes. sendall of a prebuilt 1 MiB buffer is one kernel copy per call with
    the GIL released, so Python is not the limit (the "direct" row shows it)."""
    chunk = memoryview(bytes((i * 7 + 3) & 0xFF for i in range(1 << 20)))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)

    def pump(conn):
        with conn:
            try:
                while True:
                    conn.sendall(chunk)
            except OSError:
                pass  # the reader went away: this connection is done

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=pump, args=(conn,), daemon=True).start()



def reality_keys():
    out = subprocess.run([XRAY, "x25519"], check=True, capture_output=True, text=True).stdout
    field = {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in out.splitlines())}
    return field["Private key"], field["Public key"]


def start_dest(d, procs):
    """The REALITY cover site (only probes that fail authentication would see it)."""
    key, crt = d / "dest.key", d / "dest.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-subj", "/CN=example.com",
                    "-addext", "subjectAltName=DNS:example.com", "-days", "2"],
                   check=True, capture_output=True)
    port = free_port()
    procs.start("dest", SERVER_CPU, ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", crt,
                                     "-key", key, "-tls1_3", "-www", "-quiet"], port)
    return port


def stream_settings(transport, reality):
    """Xray streamSettings for `transport` ("raw" or "xhttp" stream-up) with REALITY."""
    st = {"network": transport, "security": "reality", "realitySettings": reality}
    if transport == "xhttp":
        st["xhttpSettings"] = {"path": XHTTP_PATH, "mode": "stream-up"}
    return st


def start_xray_server(d, procs, private_key, dest_port):
    """One Xray server process, one inbound per transport; returns (proc, {transport: port})."""
    ports = {t: free_port() for t in ("raw", "xhttp")}
    reality = {"dest": f"127.0.0.1:{dest_port}", "xver": 0, "serverNames": POOL,
               "privateKey": private_key, "shortIds": [SHORT_ID]}
    cfg = {
        "log": {"loglevel": "warning"},
        "inbounds": [{
            "listen": "127.0.0.1", "port": port, "protocol": "vless",
            "settings": {"clients": [{"id": USER}], "decryption": "none"},
            "streamSettings": stream_settings(t, reality),
        } for t, port in ports.items()],
        "outbounds": [{"protocol": "freedom"}],
    }
    (d / "xray-server.json").write_text(json.dumps(cfg, indent=1))
    proc = procs.start("xray-server", SERVER_CPU, [XRAY, "run", "-c", d / "xray-server.json"],
                       ports["raw"])
    wait_port(ports["xhttp"])
    return proc, ports


def start_edge_client(d, procs, public_key, server_port, source_port, transport):
    crt, key = make_cert(d)
    for name, data in (("session.key", os.urandom(48)), ("tunnel.uuid", USER.encode())):
        (d / name).write_bytes(data)
        os.chmod(d / name, 0o600)
    port = free_port()
    pool = ", ".join(f'"{n}"' for n in POOL)
    (d / "edge.toml").write_text(f"""
[node]
id = "bench"
dev = false
[front]
listen = "127.0.0.1:{free_port()}"
domains = ["localhost"]
[[front.certs]]
cert = "{crt}"
key = "{key}"
[front.session]
secret_file = "{d / 'session.key'}"
[admin]
listen = "127.0.0.1:{free_port()}"
[shutdown]
drain_timeout_secs = 2
[log]
level = "warn"
[tunnel]
sni_pool = [{pool}]
[tunnel.client]
server = "127.0.0.1:{server_port}"
public_key = "{public_key}"
short_id = "{SHORT_ID}"
uuid_file = "{d / 'tunnel.uuid'}"
transport = "{transport}"
[tunnel.client.xhttp]
path = "{XHTTP_PATH}"
mode = "stream-up"
[[tunnel.forward]]
listen = "127.0.0.1:{port}"
target = "127.0.0.1:{source_port}"
""")
    return procs.start("edge", CLIENT_CPU, [EDGE, "--cores", "1", "--config", d / "edge.toml"], port), port


def start_xray_client(d, procs, public_key, server_port, source_port, transport):
    port = free_port()
    cfg = {
        "log": {"loglevel": "warning"},
        "inbounds": [{"listen": "127.0.0.1", "port": port, "protocol": "dokodemo-door",
                      "settings": {"address": "127.0.0.1", "port": source_port, "network": "tcp"}}],
        "outbounds": [{
            "protocol": "vless",
            "settings": {"vnext": [{"address": "127.0.0.1", "port": server_port,
                                    "users": [{"id": USER, "encryption": "none"}]}]},
            "streamSettings": stream_settings(transport, {
                "fingerprint": "chrome", "serverName": POOL[0], "publicKey": public_key,
                "shortId": SHORT_ID}),
        }],
    }
    (d / "xray-client.json").write_text(json.dumps(cfg, indent=1))
    return procs.start("xray-client", CLIENT_CPU, [XRAY, "run", "-c", d / "xray-client.json"], port), port


WARMUP = 1.0  # seconds of reading before loadgen counts: keeps tunnel set-up out


def measure(port, conns, duration, d, pids):
    """One loadgen run; `pids` names the processes whose CPU is read over its measured
    window ("client", "server", "source"; loadgen's own is added). loadgen keeps its connections open from the
    warm-up into the window; the CPU window is timed here from the moment loadgen was
    started, so it lags loadgen's own by its start-up (milliseconds)."""
    out = d / "bulk.json"
    cmd = ["taskset", "-c", SERVER_CPU, LOADGEN, "bulk", "--addr", f"127.0.0.1:{port}",
           "-c", conns, "--warmup", WARMUP, "-d", duration, "--json", out]
    p = subprocess.Popen([str(a) for a in cmd], stdout=subprocess.DEVNULL)
    pids = {**pids, "loadgen": p.pid}  # taskset execs, so this is loadgen itself
    try:
        time.sleep(WARMUP)
        before = {k: cpu_seconds([pid]) for k, pid in pids.items()}
        t0 = time.monotonic()
        time.sleep(duration)
        used = {k: cpu_seconds([pid]) - before[k] for k, pid in pids.items()}
        wall = time.monotonic() - t0
        if p.wait(timeout=60) != 0:
            sys.exit(f"bench_tunnel: loadgen failed on port {port} (exit {p.returncode})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    rep = json.loads(out.read_text())
    if rep["errors"]:
        print(f"warning: {rep['errors']} errors, first: {rep['first_error']}", file=sys.stderr)
    client = used.get("client", 0.0)
    pct = {f"{k}_pct": 100 * v / wall for k, v in used.items()}
    return {
        "mb_s": rep["mb_per_sec"],
        "mb_per_cpu_s": rep["bytes"] / 1e6 / client if client > 0 else float("nan"),
        "first_byte_ms": rep["first_byte_p50_ms"],
        "first_byte_max_ms": rep["first_byte_max_ms"],
        # 1.0 = every connection got the same share of the bytes.
        "fair": rep["slot_bytes_min"] / rep["slot_bytes_max"] if rep["slot_bytes_max"] else 0.0,
        # Everything pinned to the server core: is that core the limit?
        "cpu1_pct": pct.get("server_pct", 0.0) + pct["source_pct"] + pct["loadgen_pct"],
        **pct,
    }


def versions():
    xray = subprocess.run([XRAY, "version"], capture_output=True, text=True).stdout.splitlines()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in
                subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if l.startswith("Model name")), "?")
    return f"{xray}; {cpu}, {os.cpu_count()} CPUs; Linux {os.uname().release}"


# CPU 0 either belongs to the client alone, or is shared with a busy loop so the client
# gets about half of it and becomes the limit (its figures then show its own cost per
# byte rather than how it copes with waiting on the server core).
MODES = {"alone": "alone", "busy": "shared with a busy loop"}
LABELS = {"edge": "edge", "xray": "Xray 24.11.21", "direct": "none (direct)"}


def run_all(runs, duration, d, procs, transports):
    """Every measurement; returns {(transport, mode, client, conns): [measure() dicts]}
    (transport "-" for the direct rows)."""
    results = {}

    def record(run, transport, mode, name, conns, m):
        results.setdefault((transport, mode, name, conns), []).append(m)
        tunnel = (f"{m['mb_per_cpu_s']:.0f} MB per client CPU-s, client {m['client_pct']:.0f} %, "
                  f"server {m['server_pct']:.0f} %, " if name != "direct" else "")
        print(f"run {run + 1} {transport:5} {mode:5} {name:6} c={conns}: {m['mb_s']:.1f} MB/s, {tunnel}"
              f"source {m['source_pct']:.0f} %, loadgen {m['loadgen_pct']:.0f} %, "
              f"first byte {m['first_byte_ms']:.1f} / {m['first_byte_max_ms']:.1f} ms, "
              f"slowest/fastest connection {m['fair']:.2f}", file=sys.stderr)

    source_port = free_port()
    source = procs.start("source", SERVER_CPU, [sys.executable, Path(__file__).resolve(),
                                                "--serve-bulk", source_port], source_port)
    private_key, public_key = reality_keys()
    dest_port = start_dest(d, procs)
    server, server_ports = start_xray_server(d, procs, private_key, dest_port)
    starters = {"edge": start_edge_client, "xray": start_xray_client}
    for run in range(runs):
        for conns in CONNECTIONS:
            record(run, "-", "alone", "direct", conns,
                   measure(source_port, conns, duration, d, {"source": source.pid}))
        for mode in MODES:
            spinner = (procs.start("busy", CLIENT_CPU, [sys.executable, "-c", "while True: pass"])
                       if mode == "busy" else None)
            for transport in transports:
                for name, starter in starters.items():
                    client, port = starter(d, procs, public_key, server_ports[transport],
                                           source_port, transport)
                    try:
                        pids = {"client": client.pid, "server": server.pid, "source": source.pid}
                        for conns in CONNECTIONS:
                            record(run, transport, mode, name, conns,
                                   measure(port, conns, duration, d, pids))
                    finally:
                        procs.stop(client)
            if spinner:
                procs.stop(spinner)
    return results


def render(results, transports):
    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    lines = ["| transport | CPU 0 | connections | client | MB/s | MB per client CPU-second "
             "| client CPU % | Xray server CPU % | source CPU % | loadgen CPU % | CPU 1 total % "
             "| first byte ms, p50 / max | slowest / fastest connection |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows_order = [("-", "alone", c, "direct") for c in CONNECTIONS]
    for transport in transports:
        for mode in MODES:
            for conns in CONNECTIONS:
                for name in ("edge", "xray"):
                    rows_order.append((transport, mode, conns, name))
    for transport, mode, conns, name in rows_order:
        mode_label = MODES[mode]
        rows = results.get((transport, mode, name, conns))
        if not rows:
            continue
        tunnel = name != "direct"
        cells = [f"{med(rows, 'mb_s'):,.1f}",
                 f"{med(rows, 'mb_per_cpu_s'):,.0f}" if tunnel else "—",
                 f"{med(rows, 'client_pct'):.0f}" if tunnel else "—",
                 f"{med(rows, 'server_pct'):.0f}" if tunnel else "—",
                 f"{med(rows, 'source_pct'):.0f}",
                 f"{med(rows, 'loadgen_pct'):.0f}",
                 f"{med(rows, 'cpu1_pct'):.0f}",
                 f"{med(rows, 'first_byte_ms'):.1f} / {med(rows, 'first_byte_max_ms'):.1f}",
                 f"{med(rows, 'fair'):.2f}" if conns > 1 else "—"]
        label = {"raw": "raw", "xhttp": "XHTTP stream-up", "-": "—"}[transport]
        lines.append(f"| {label} | {mode_label} | {conns} | {LABELS[name]} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--transports", default="raw,xhttp",
                    help="comma-separated: raw, xhttp (stream-up)")
    ap.add_argument("--serve-bulk", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_bulk:
        return serve_bulk(a.serve_bulk)
    if not XRAY.exists():
        # Only when missing: its version check (`xray version | head -1` under
        # pipefail) can fail spuriously when head closes the pipe early.
        subprocess.run(["bash", "scripts/install-peers.sh"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "oxpulse-edge", "-p", "loadgen"],
                   cwd=ROOT, check=True)
    print(versions(), file=sys.stderr)
    d = Path(tempfile.mkdtemp(prefix="bench-tunnel-"))
    procs = Procs(d, "bench_tunnel")
    try:
        transports = [t for t in a.transports.split(",") if t]
        if not transports or any(t not in ("raw", "xhttp") for t in transports):
            sys.exit("bench_tunnel: --transports takes raw and/or xhttp")
        results = run_all(a.runs, a.duration, d, procs, transports)
    finally:
        procs.stop_all()
    # Kept (with every child's log) only when something above failed.
    shutil.rmtree(d)
    table = render(results, transports)
    print(table)
    if a.out:
        a.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
