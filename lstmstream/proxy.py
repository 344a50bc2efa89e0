"""`lstmstream proxy`: ZeroMQ's own XSUB/XPUB forwarder, the meeting point of sensors and daemons.

Sensors' PUB sockets connect to the frontend (XSUB), daemons' SUB sockets to the backend (XPUB);
subscriptions travel upstream, points downstream. zmq.proxy_steerable runs in a thread; the main
thread waits for SIGTERM/SIGINT and stops it through its control socket, then closes everything
with linger 0, so systemd sees a clean, prompt exit. Under systemd (Type=notify) it says READY=1
once both sockets are attached, pings the watchdog while the forwarder lives, and exits 1 if the
forwarder dies, so that Restart=on-failure brings it back.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import zmq

from . import notify
from .config import endpoint


def attach(sock: zmq.Socket, spec: str) -> str:
    """Bind (@ or bare) or connect (>) a CZMQ-style endpoint; returns the resolved address."""
    how, addr = endpoint(spec, "bind")
    if how == "bind":
        sock.bind(addr)
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.connect(addr)
    return addr


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def serve(frontend: str, backend: str, forward: Callable = zmq.proxy_steerable) -> int:
    """Forward until SIGTERM or SIGINT (exit status 0), or until the forwarder fails (1).

    forward(frontend, backend, capture, control) is the forwarder run in the thread.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ctx = zmq.Context()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    control, steer = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        for s in (xsub, xpub, control, steer):
            s.setsockopt(zmq.LINGER, 0)
        front, back = attach(xsub, frontend), attach(xpub, backend)
        control.bind("inproc://proxy-control")
        steer.connect("inproc://proxy-control")
        worker = threading.Thread(target=forward, args=(xsub, xpub, None, control), daemon=True)
        worker.start()
        log(f"proxy: sensors -> {front} (XSUB), daemons <- {back} (XPUB); ready")
        notify.ready(f"forwarding {front} -> {back}")
        dog = notify.Watchdog()
        while not stop.wait(0.2) and worker.is_alive():
            if dog.due():
                notify.watchdog()
        if not worker.is_alive():
            log("proxy: the forwarder stopped unexpectedly; exiting with status 1")
            return 1
        notify.stopping()
        steer.send(b"TERMINATE")
        worker.join(5.0)
        log("proxy: stopped")
        return 0
    finally:
        for s in (xsub, xpub, control, steer):
            s.close(linger=0)
        ctx.term()
