"""sd_notify with the standard library: state changes and watchdog pings to systemd.

systemd passes `$NOTIFY_SOCKET` to a Type=notify service: a path, or `@name` for the abstract
namespace. A message is one datagram of newline-separated `KEY=value` lines. Without the variable
(not under systemd) every call here does nothing and returns False. A failed send is logged and
never raises: the daemon keeps serving.

    notify.ready("12 streams")         # sockets bound, state loaded
    dog = notify.Watchdog()            # if dog.due(): notify.watchdog()
    notify.stopping()
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("lstmstream.notify")


def _address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(*fields: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `KEY=value` fields as one datagram; True if sent, False when unset or on error."""
    env = os.environ if env is None else env
    addr = _address(env)
    if addr is None:
        return False
    msg = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(msg)
    except OSError as e:
        log.warning("sd_notify to %s failed: %s", env["NOTIFY_SOCKET"], e)
        return False
    return True


def status_line(text: str) -> str:
    """A STATUS= field; systemd shows one line, so newlines become spaces."""
    return "STATUS=" + " ".join(text.splitlines())


def ready(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Startup (or a reload) is done: sockets bound, state loaded."""
    return notify("READY=1", *([status_line(status)] if status else []), env=env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    return notify(status_line(text), env=env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    return notify("STOPPING=1", env=env)


def reloading(env: Mapping[str, str] | None = None) -> bool:
    """A reload began (send `ready()` when done); MONOTONIC_USEC lets newer systemd match it up."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={usec}", env=env)


def extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """Ask for `seconds` more before systemd gives up on a start or stop (loading many streams)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}", env=env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    return notify("WATCHDOG=1", env=env)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings: half of $WATCHDOG_USEC; None if no watchdog is ours.

    The watchdog is ours when $WATCHDOG_PID is unset or is this process's pid.
    """
    env = os.environ if env is None else env
    if _address(env) is None:
        return None
    pid = env.get("WATCHDOG_PID", "")
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


class Watchdog:
    """Says when the next WATCHDOG=1 is due; call `due()` from the loop, ping when it says so."""

    def __init__(self, env: Mapping[str, str] | None = None, clock=time.monotonic):
        self.interval = watchdog_interval(env)
        self.clock = clock
        self.next = clock()

    def due(self) -> bool:
        """True (and schedules the next ping) when a ping is due; always False without a watchdog."""
        if self.interval is None:
            return False
        now = self.clock()
        if now < self.next:
            return False
        self.next = now + self.interval
        return True
