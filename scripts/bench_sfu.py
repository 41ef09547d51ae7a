#!/usr/bin/env python3
"""SFU benchmark: how many 6-person rooms (audio + 1 Mbps video each) one edge core
carries, against a plain UDP forwarder on the same core at the same packet rate.

    loadgen sfu (P participants × R rooms) --wss--> edge --cores 1   (CPU 0)
    ^ CPU 1                               <--SRTP-->

`edge --cores 1` (production shape: dev = false, front certificate, `[sfu]` with a 0600
room-token key, ephemeral media port, public_ip 127.0.0.1) is alone on CPU 0; `loadgen
sfu` (str0m clients, SRTP + SFrame, one tokio thread) is on CPU 1. The number of rooms
is stepped (--steps) until a step fails (loss >= 1 %, p99 >= 10 ms, a participant not
joined, or less than 99 % of the expected copies delivered) or loadgen's own CPU reaches
--gen-limit % of its core (then the generator, not the edge, was the limit, and the
output says so). Every step runs --runs times, each against a freshly started edge
(so RSS per participant is RSS at the step minus the idle RSS of that same process),
and each figure is the median over the runs.

Then the ceiling: `loadgen udp-fanout --listen` (one socket, recvmmsg/sendmmsg, no
crypto) pinned to CPU 0 and `loadgen udp-fanout --drive` on CPU 1 sending the same
packet rate and sizes as the best passing step (and the step above it). The figure
compared is packets out per CPU-second of the forwarding core: pps_out / (CPU % / 100).

Usage: scripts/bench_sfu.py [--runs 3] [--duration 5] [--warmup 3] [--steps 1,2,4,...]
                            [--video-kbps 1000] [--threads 1] [--no-build] [--out FILE.md]
Needs: taskset, openssl, python3; builds release `edge` and `loadgen`.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_https import ROOT, free_port, make_cert, Procs, wait_port

LOADGEN = ROOT / "target/release/loadgen"
EDGE = ROOT / "target/release/edge"
EDGE_CPU, GEN_CPU = "0", "1"
PARTICIPANTS = 6
DEFAULT_STEPS = "1,2,4,6,8,10,12,14,16,18,20,24,28,32,40"
# Pass criteria of the issue.
MAX_LOSS_PCT, MAX_P99_MS = 1.0, 10.0
# Copies delivered / copies expected (pps_out / (pps_in × (P − 1))) below this fails too:
# `loss_pct` counts sequence gaps among frames a receiver did get, not a sender it never heard.
MIN_DELIVERED = 0.99


def loadavg():
    return Path("/proc/loadavg").read_text().split()[0]


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")



def write_edge_config(d, port):
    crt, key = make_cert(d)
    for name in ("session.key", "sfu.key"):
        (d / name).write_bytes(os.urandom(48))
        os.chmod(d / name, 0o600)
    (d / "edge.toml").write_text(f"""
[node]
id = "bench"
dev = false
[front]
listen = "127.0.0.1:{port}"
domains = ["localhost"]
[[front.certs]]
cert = "{crt}"
key = "{key}"
[front.session]
secret_file = "{d / 'session.key'}"
[admin]
listen = "127.0.0.1:{free_port()}"
[shutdown]
drain_timeout_secs = 1
[log]
level = "warn"
[sfu]
secret_file = "{d / 'sfu.key'}"
media_port_base = 0
public_ip = "127.0.0.1"
max_rooms_per_shard = 10000
max_participants_per_shard = 60000
""")
    return d / "edge.toml", d / "sfu.key"


def sfu_run(d, procs, cfg, secret, port, rooms, a, tag):
    """One `loadgen sfu` run against a fresh `edge --cores 1`; returns the report dict
    plus idle RSS and the load average before the run."""
    edge = procs.start("edge", EDGE_CPU, [EDGE, "--cores", "1", "--config", cfg], port)
    try:
        time.sleep(1.0)  # let the shard and its media socket settle
        idle = rss_mib(edge.pid)
        load = loadavg()
        out = d / "sfu.json"
        out.unlink(missing_ok=True)
        cmd = ["taskset", "-c", GEN_CPU, LOADGEN, "sfu", "--url", f"wss://localhost:{port}",
               "--insecure", "--secret-file", secret, "--rooms", rooms,
               "--participants", PARTICIPANTS, "--duration", a.duration, "--warmup", a.warmup,
               "--video-kbps", a.video_kbps, "--threads", a.threads, "--run-id", tag,
               "--cores-pid", edge.pid, "--json", out]
        with open(d / "loadgen-sfu.log", "a") as log:
            rc = subprocess.run([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT).returncode
        if not out.exists():
            sys.exit(f"bench_sfu: loadgen sfu failed (exit {rc}); see {d}/loadgen-sfu.log")
        rep = json.loads(out.read_text())
    finally:
        procs.stop(edge)
    rep["idle_rss_mib"] = idle
    rep["loadavg"] = load
    rep["exit"] = rc
    return rep


def fanout_run(d, procs, rooms, a):
    """The ceiling: the plain forwarder on CPU 0 driven from CPU 1 at the SFU's rate."""
    port = free_port()
    fwd = procs.start("udp-fanout", EDGE_CPU, [LOADGEN, "udp-fanout", "--listen", f"127.0.0.1:{port}",
                                               "--fanout", PARTICIPANTS - 1, "--duration", 0,
                                               "--report-every", 0])
    try:
        time.sleep(0.5)
        load = loadavg()
        out = d / "fanout.json"
        out.unlink(missing_ok=True)
        cmd = ["taskset", "-c", GEN_CPU, LOADGEN, "udp-fanout", "--drive", f"127.0.0.1:{port}",
               "--rooms", rooms, "--participants", PARTICIPANTS, "--duration", a.duration,
               "--warmup", a.warmup, "--video-kbps", a.video_kbps, "--cores-pid", fwd.pid,
               "--json", out]
        with open(d / "loadgen-drive.log", "a") as log:
            rc = subprocess.run([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT).returncode
        if not out.exists():
            sys.exit(f"bench_sfu: udp-fanout --drive failed (exit {rc}); see {d}/loadgen-drive.log")
        rep = json.loads(out.read_text())
    finally:
        procs.stop(fwd, signal.SIGINT)
    rep["loadavg"] = load
    return rep


def derive(rep):
    """Per-run figures the table needs."""
    p = rep["participants"]
    expected = rep["pps_in"] * (rep["participants_per_room"] - 1)
    rep["delivered"] = rep["pps_out"] / expected if expected > 0 else 0.0
    cpu = rep.get("edge_cpu_pct") or 0.0
    rep["pps_out_per_cpu_s"] = rep["pps_out"] / (cpu / 100) if cpu > 0 else float("nan")
    if "idle_rss_mib" in rep and rep.get("edge_rss_mib") is not None:
        rep["rss_per_participant_kib"] = (rep["edge_rss_mib"] - rep["idle_rss_mib"]) * 1024 / p
    return rep


def verdict(rep, gen_limit):
    """(passed, why) for one SFU run."""
    why = []
    if rep["joined"] < rep["participants"]:
        why.append(f"joined {rep['joined']}/{rep['participants']}")
    if rep["loss_pct"] >= MAX_LOSS_PCT:
        why.append(f"loss {rep['loss_pct']:.2f} %")
    if rep["p99_ms"] >= MAX_P99_MS:
        why.append(f"p99 {rep['p99_ms']:.1f} ms")
    if rep["delivered"] < MIN_DELIVERED:
        why.append(f"delivered {100 * rep['delivered']:.1f} %")
    if rep["decrypt_failures"]:
        why.append(f"{rep['decrypt_failures']} decrypt failures")
    return not why, ", ".join(why)


def median_run(runs):
    """Every numeric figure's median over the runs (as the other benchmarks report);
    counts that must hold in every run (joined, decrypt failures) take the worst run."""
    m = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            m[k] = med(runs, k)
    m["joined"] = min(r["joined"] for r in runs)
    m["decrypt_failures"] = max(r["decrypt_failures"] for r in runs)
    return m


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")


def log_run(kind, rooms, i, r):
    extra = ""
    if kind == "sfu":
        extra = (f", idle RSS {r['idle_rss_mib']:.1f} MiB, {r.get('rss_per_participant_kib', 0):.0f} KiB/participant"
                 f", joined {r['joined']}/{r['participants']}, decrypt failures {r['decrypt_failures']}"
                 f", without key {r['frames_without_key']}, broken {r['frames_broken']}"
                 f", close codes {r['close_codes'] or '-'}, join failures {r['join_failures'] or '-'}")
    print(f"{kind:6} rooms={rooms:<3} run {i + 1}: load {r['loadavg']}, in {r['pps_in']:.0f} pps, "
          f"out {r['pps_out']:.0f} pps, delivered {100 * r['delivered']:.1f} %, loss {r['loss_pct']:.3f} %, "
          f"p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} / max {r['max_ms']:.1f} ms, "
          f"core-0 CPU {r.get('edge_cpu_pct') or 0:.1f} %, RSS {r.get('edge_rss_mib') or 0:.1f} MiB, "
          f"loadgen CPU {r['loadgen_cpu_pct']:.1f} %{extra}", file=sys.stderr, flush=True)


def versions():
    cpu = next((l.split(":", 1)[1].strip() for l in
                subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if l.startswith("Model name")), "?")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} CPUs; Linux {os.uname().release}; {rustc}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--steps", default=DEFAULT_STEPS, help="comma-separated room counts")
    ap.add_argument("--video-kbps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="loadgen sfu --threads (all on CPU 1)")
    ap.add_argument("--gen-limit", type=float, default=90.0,
                    help="loadgen CPU %% of its core at which the generator counts as the limit")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-build", action="store_true",
                    help="use the release binaries already in target/ (a worktree rebuilds the edge "
                         "every time: build.rs watches .git/HEAD, which a worktree does not have)")
    a = ap.parse_args()
    steps = [int(s) for s in a.steps.split(",") if s]
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "oxpulse-edge", "-p", "loadgen"],
                       cwd=ROOT, check=True)
    header = f"{versions()}; 1-minute load average at start {loadavg()}"
    print(header, file=sys.stderr)
    d = Path(tempfile.mkdtemp(prefix="bench-sfu-"))
    procs = Procs(d, "bench_sfu")
    port = free_port()
    cfg, secret = write_edge_config(d, port)
    sfu, ceiling = {}, {}
    best, above, stop_reason = None, None, f"every step up to {steps[-1]} rooms passed"
    try:
        for rooms in steps:
            runs = []
            for i in range(a.runs):
                r = derive(sfu_run(d, procs, cfg, secret, port, rooms, a, f"{rooms}x{i}"))
                log_run("sfu", rooms, i, r)
                runs.append(r)
            sfu[rooms] = runs
            m = median_run(runs)
            ok, why = verdict(m, a.gen_limit)
            gen = med(runs, "loadgen_cpu_pct")
            if not ok:
                above = rooms
                edge_cpu = med(runs, "edge_cpu_pct")
                limit = {(True, False): "the edge was the limit",
                         (False, True): "the generator was the limit",
                         (True, True): "both cores were saturated",
                         (False, False): "neither core was saturated, so the limit is not "
                                         "attributable to one side"}[
                    (edge_cpu >= a.gen_limit, gen >= a.gen_limit)]
                stop_reason = (f"{rooms} rooms failed ({why}) with the edge at {edge_cpu:.0f} % "
                               f"CPU and loadgen at {gen:.0f} % of its core: {limit}")
                break
            best = rooms
            if gen >= a.gen_limit:
                stop_reason = (f"the generator saturated first: at {rooms} rooms loadgen used "
                               f"{gen:.0f} % of its core while the edge was at "
                               f"{med(runs, 'edge_cpu_pct'):.0f} % CPU; the edge was not the limit")
                break
        print(f"stop: {stop_reason}", file=sys.stderr)
        for rooms in [x for x in (best, above) if x is not None]:
            runs = []
            for i in range(a.runs):
                r = derive(fanout_run(d, procs, rooms, a))
                log_run("fanout", rooms, i, r)
                runs.append(r)
            ceiling[rooms] = runs
    finally:
        procs.stop_all()
    shutil.rmtree(d)  # kept, with every log, only when something above failed

    lines = [
        "| forwarder (CPU 0) | rooms × 6 | participants | pps in | pps out | delivered % | loss % "
        "| p50 ms | p99 ms | CPU 0 % | pps out per CPU-second | RSS MiB (idle) | RSS KiB per participant "
        "| loadgen CPU % | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rooms, runs in sfu.items():
        m = median_run(runs)
        ok, why = verdict(m, a.gen_limit)
        lines.append(
            f"| edge | {rooms} | {m['participants']} | {m['pps_in']:,.0f} | {m['pps_out']:,.0f} | "
            f"{100 * m['delivered']:.1f} | {m['loss_pct']:.2f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['edge_cpu_pct']:.1f} | {m['pps_out_per_cpu_s']:,.0f} | "
            f"{m['edge_rss_mib']:.1f} ({m['idle_rss_mib']:.1f}) | {m['rss_per_participant_kib']:.0f} | "
            f"{m['loadgen_cpu_pct']:.0f} | {'yes' if ok else 'no: ' + why} |")
    for rooms, runs in ceiling.items():
        m = median_run(runs)
        lines.append(
            f"| plain UDP forwarder | {rooms} | {m['participants']} | {m['pps_in']:,.0f} | "
            f"{m['pps_out']:,.0f} | {100 * m['delivered']:.1f} | {m['loss_pct']:.2f} | {m['p50_ms']:.2f} | "
            f"{m['p99_ms']:.2f} | {m['edge_cpu_pct']:.1f} | {m['pps_out_per_cpu_s']:,.0f} | "
            f"{m['edge_rss_mib']:.1f} | — | {m['loadgen_cpu_pct']:.0f} | — |")
    summary = [f"Machine: {header}.", f"Stop: {stop_reason}."]
    if best is not None:
        e = median_run(sfu[best])
        summary.append(f"Most 6-person rooms passing (loss < {MAX_LOSS_PCT:g} %, p99 < {MAX_P99_MS:g} ms): "
                       f"{best} ({e['participants']} participants), {e['pps_out']:,.0f} packets out/s "
                       f"at {e['edge_cpu_pct']:.1f} % of the edge core.")
        summary.append(f"Edge: {e['pps_out_per_cpu_s']:,.0f} packets out per edge CPU-second; "
                       f"{e['rss_per_participant_kib']:.0f} KiB RSS per participant.")
        if best in ceiling:
            f = median_run(ceiling[best])
            summary.append(f"Plain UDP forwarder at the same rate: {f['pps_out_per_cpu_s']:,.0f} packets out "
                           f"per CPU-second ({f['edge_cpu_pct']:.1f} % CPU); edge / forwarder = "
                           f"{e['pps_out_per_cpu_s'] / f['pps_out_per_cpu_s']:.2f}.")
    else:
        summary.append("No step passed.")
    text = "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
