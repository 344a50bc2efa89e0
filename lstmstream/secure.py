"""How the daemon and its clients use `curve.py`: the server from the configuration, its
sockets, the allow-list reload on SIGHUP, the warning for plaintext network endpoints, and the
clients' `--curve-server`/`--curve-secret` pair.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import click
import zmq

from .config import Config, ConfigError
from .curve import CurveError, CurveServer, apply_client, exposed, load_public, load_secret

log = logging.getLogger("lstmstream.secure")


def server(ctx: zmq.Context, config: Config) -> CurveServer | None:
    """The CURVE server of `config` (None when CURVE is off); the secret and the allow-list go together."""
    secret, clients = config.curve_secret, config.curve_clients
    if secret is None and clients is None:
        return None
    if secret is None or clients is None:
        raise ConfigError(
            "curve_secret and curve_clients go together: a CURVE server without the client "
            "allow-list would admit any key"
        )
    try:
        curve = CurveServer(ctx, secret, clients)
    except CurveError as e:
        raise ConfigError(f"CURVE: {e}") from None
    log.info("CURVE on: %d client keys admitted from %s", curve.allowed, clients)
    return curve


def bind(curve: CurveServer, sock: zmq.Socket, how: str, addr: str) -> str:
    """Bind sock as a CURVE server; returns the bound endpoint. Connecting is refused: revoking a
    key drops clients by rebinding, which a connected socket cannot do."""
    if how != "bind":
        raise ConfigError(
            f"with CURVE the daemon's sockets must bind (@{addr}), not connect to {addr}: "
            "a revoked client could not be dropped from an outgoing connection"
        )
    try:
        return curve.bind(sock, addr)
    except CurveError as e:
        raise ConfigError(f"CURVE: {e}") from None


def warn_exposed(config: Config) -> None:
    """Loud warnings for the endpoints others can reach over a network while CURVE is off."""
    roles = [(spec, "anyone who reaches it can inject points") for spec in config.sub]
    roles.append((config.pub, "anyone who reaches it can read every forecast"))
    for spec, risk in roles:
        if exposed([spec]):
            log.warning(
                "SECURITY: %s is reachable over the network without CURVE: %s, in plaintext. "
                "Use --curve-secret and --curve-clients, or a loopback or ipc:// endpoint.",
                spec, risk,
            )  # fmt: skip


def reload_keys(curve: CurveServer) -> None:
    """SIGHUP: re-read the client key directory; log what changed and what could not be used."""
    try:
        change = curve.reload()
    except CurveError as e:
        log.error("reload of client keys: %s", e)
        return
    for problem in change.problems:
        log.warning("reload of client keys: %s", problem)
    log.info(
        "client keys reloaded: %d admitted (%d added, %d revoked%s)",
        change.allowed, change.added, change.removed,
        "; connections dropped, admitted clients reconnect" if change.removed else "",
    )  # fmt: skip


def counters(curve: CurveServer) -> dict[str, int]:
    """The handshakes the allow-list admitted and denied so far, for $stats."""
    return {"admitted": curve.admitted, "denied": curve.denied}


@dataclass(frozen=True)
class ClientKeys:
    """A client's CURVE keys: the server's public key and the client's own secret key."""

    server_public: str
    client_secret: str

    def apply(self, sock: zmq.Socket) -> None:
        """Make sock a CURVE client; call before it connects or binds."""
        apply_client(sock, self.server_public, self.client_secret)


def client_keys(server_public: str | None, client_secret: str | None) -> ClientKeys | None:
    """The `--curve-server`/`--curve-secret` pair of a client command, checked; None without both."""
    if server_public is None and client_secret is None:
        return None
    if server_public is None or client_secret is None:
        raise click.UsageError("--curve-server and --curve-secret go together")
    try:
        load_public(server_public)
        load_secret(client_secret)
    except CurveError as e:
        raise click.ClickException(f"CURVE: {e}") from None
    return ClientKeys(server_public, client_secret)


def client_options(command: Callable) -> Callable:
    """--curve-server and --curve-secret for a client command, which receives `curve: ClientKeys | None`."""

    @functools.wraps(command)
    def wrapper(*args, curve_server: str | None, curve_secret: str | None, **kwargs):
        return command(*args, curve=client_keys(curve_server, curve_secret), **kwargs)

    wrapper = click.option(
        "--curve-secret",
        type=click.Path(exists=True, dir_okay=False),
        help="This client's CURVE secret key (NAME.key_secret, mode 0600); needs --curve-server.",
    )(wrapper)
    return click.option(
        "--curve-server",
        type=click.Path(exists=True, dir_okay=False),
        help="The daemon's public CURVE key (SERVER.key): encrypt, and authenticate both ends.",
    )(wrapper)
