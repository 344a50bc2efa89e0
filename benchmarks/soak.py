"""Soak: the real daemon, fed for a long time, its memory sampled; does anything grow?

    python benchmarks/soak.py [--rate 300] [--streams 2000] [--duration 1200] [--every 15]

Starts `lstmstream run` on ipc:// sockets in a temp dir with a state dir (checkpoints every 20 s),
publishes `--rate` points/s round-robin over `--streams` sine sensors for `--duration` seconds,
prints the daemon's resident memory (VmRSS) every `--every` seconds, then stops it with SIGTERM
and prints its exit status, its last `$stats` and the memory after the first quarter vs the end.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=1200.0)
    ap.add_argument("--every", type=float, default=15.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lstmstream-soak-") as tmp:
        soak(a, tmp)


def soak(a: argparse.Namespace, tmp: str) -> None:
    cmd = [sys.executable, "-c", "from lstmstream.cli import main; main()", "run"]
    cmd += ["--sub", f"@ipc://{tmp}/points", "--pub", f"@ipc://{tmp}/forecasts", "--state-dir", tmp]
    cmd += ["--checkpoint-every", "20", "--stats-every", "5", "--log-level", "warning"]
    daemon = subprocess.Popen(cmd)
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    pub.connect(f"ipc://{tmp}/points")
    sub.setsockopt(zmq.SUBSCRIBE, b"$stats")
    sub.connect(f"ipc://{tmp}/forecasts")
    stats: dict = {}
    while not stats:  # the first $stats: the daemon is up and our subscription is in place
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited with status {daemon.returncode}")
        if sub.poll(100):
            stats = msgpack.unpackb(sub.recv_multipart()[1])
    time.sleep(0.5)  # for the daemon's SUB to connect to our PUB
    pack, samples, sent = msgpack.Packer().pack, [], 0
    t0 = time.monotonic()
    next_sample = t0
    while (now := time.monotonic()) - t0 < a.duration:
        for i in range(sent, int((now - t0) * a.rate)):
            step, k = divmod(i, a.streams)
            point = {"t": float(step), "v": math.sin(0.3 * step + k)}
            pub.send_multipart([f"soak-{k}".encode(), pack(point)])
        sent = max(sent, int((now - t0) * a.rate))
        while sub.poll(0):
            stats = msgpack.unpackb(sub.recv_multipart()[1])
        if now >= next_sample:
            samples.append(rss_kib(daemon.pid))
            print(f"{now - t0:7.0f} s  {samples[-1] / 1024:7.1f} MiB  {sent:,} points sent", flush=True)
            next_sample += a.every
        time.sleep(0.005)
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(120)
    pub.close(linger=0)
    sub.close(linger=0)
    ctx.term()
    quarter, end, most = (x / 1024 for x in (samples[len(samples) // 4], samples[-1], max(samples)))
    print(f"exit status {code}; last $stats: {stats}")
    print(f"memory: {quarter:.1f} MiB after a quarter of the run, {end:.1f} MiB at the end, max {most:.1f}")


if __name__ == "__main__":
    main()
