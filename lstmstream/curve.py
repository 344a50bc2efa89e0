"""CURVE security: key pairs, the allow-list server side, the client side, the loopback check.

A CURVE server socket only checks a client's key against a list when a ZAP handler answers on
its context; without one libzmq admits any key. `CurveServer` therefore owns a running ZAP
handler and is the only way to make a server socket here, and it also sets ZAP_ENFORCE_DOMAIN
so that a socket outliving the handler refuses every client instead of admitting all.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import struct
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

DOMAIN = "lstmstream"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
REBIND_SECONDS = 2.0


class CurveError(Exception):
    """A key, key file or key directory that cannot be used safely."""


def create_keypair(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public, 0644) and NAME.key_secret (0600) into directory; never overwrite.

    The pair is made in a private (0700) scratch directory and hard-linked into place, so the
    secret is never readable by others, not even for the moment before its chmod.
    """
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        raise CurveError(f"bad key name {name!r}: use a plain file name such as 'sensor-7'")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / (name + PUBLIC_SUFFIX), directory / (name + SECRET_SUFFIX)
    for path in (public, secret):
        if path.exists():
            raise CurveError(f"{path} already exists; remove it first or pick another name")
    scratch = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))
    try:
        made_public, made_secret = map(Path, zmq.auth.create_certificates(scratch, name))
        made_secret.chmod(0o600)
        made_public.chmod(0o644)
        _link_all([(made_secret, secret), (made_public, public)])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return public, secret


def _link_all(pairs: list[tuple[Path, Path]]) -> None:
    done: list[Path] = []
    try:
        for source, target in pairs:
            os.link(source, target)
            done.append(target)
    except FileExistsError as e:
        for target in done:
            target.unlink()
        raise CurveError(f"{e.filename2 or e.filename} appeared while writing keys; nothing written") from e


def load_public(path: str | os.PathLike) -> bytes:
    """The z85 public key of a certificate file (NAME.key or NAME.key_secret)."""
    public, _ = _read_certificate(path)
    return public


def load_secret(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of NAME.key_secret; refuses a file group or others can access."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as e:
        raise CurveError(f"cannot read secret key {path}: {e.strerror}") from e
    if not stat.S_ISREG(info.st_mode):
        raise CurveError(f"secret key {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o007 or (mode & 0o070 and not _acl_private(path)):
        raise CurveError(
            f"secret key {path} has mode {mode:04o}: group or others can access it; "
            f"run 'chmod 600 {path}' (and consider issuing a new key)"
        )
    public, secret = _read_certificate(path)
    if secret is None:
        raise CurveError(f"{path} holds no secret key (a public {PUBLIC_SUFFIX} file?)")
    if zmq.curve_public(secret) != public:
        raise CurveError(f"{path}: the public key does not belong to the secret key")
    return public, secret


ACL_XATTR = "system.posix_acl_access"
ACL_USER_OBJ, ACL_USER, ACL_MASK = 0x01, 0x02, 0x10  # entry tags (sys/acl.h)


def _acl_private(path: Path) -> bool:
    """True when the file's group bits are only the mask of a POSIX ACL that grants nothing to any
    group or other user, only to this process's own user: what systemd's LoadCredential= writes on
    a tmpfs (0400 root-owned plus `user:SERVICE:r`, shown as 0440). On ramfs it chowns instead."""
    try:
        raw = os.getxattr(path, ACL_XATTR)
    except OSError:
        return False
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return False
    for tag, perm, uid in struct.iter_unpack("<HHI", raw[4:]):
        if not perm or tag in (ACL_USER_OBJ, ACL_MASK):
            continue
        if tag != ACL_USER or uid != os.geteuid():
            return False
    return True


def _read_certificate(path: str | os.PathLike) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot load CURVE certificate {path}: {e}") from e
    for key in (public, secret):
        if key is not None and not _valid_key(key):
            raise CurveError(f"{path} holds a malformed key (want 40 z85 characters)")
    return public, secret


def _valid_key(key: bytes) -> bool:
    try:
        return len(key) == 40 and len(z85.decode(key)) == 32
    except (KeyError, IndexError, ValueError, TypeError):
        return False


def load_allowed(directory: str | os.PathLike) -> tuple[frozenset[bytes], tuple[str, ...]]:
    """Public keys of every readable DIR/*.key, and one message per file that could not be used."""
    directory = Path(directory)
    if not directory.is_dir():
        return frozenset(), (f"client key directory {directory} does not exist",)
    keys, problems = set(), []
    for path in sorted(directory.glob("*" + PUBLIC_SUFFIX)):
        try:
            keys.add(load_public(path))
        except CurveError as e:
            problems.append(str(e))
    return frozenset(keys), tuple(problems)


@dataclass(frozen=True)
class Reload:
    """What a reload of the client key directory changed."""

    allowed: int
    added: int
    removed: int
    problems: tuple[str, ...]


class _AllowList:
    """ZAP credentials provider: admits exactly the keys in `keys`; counts the answers."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys
        self.admitted = 0
        self.denied = 0

    def callback(self, domain: str, key: bytes) -> bool:
        ok = domain == DOMAIN and key in self.keys
        if ok:
            self.admitted += 1
        else:
            self.denied += 1
        return ok


class CurveServer:
    """A running ZAP handler admitting the client keys in clients_dir, and the server key pair.

    Make server sockets with `bind(socket, endpoint)` (or `apply(socket)` and bind yourself).
    Call `reload()` after keys are added to or removed from clients_dir; call it from the
    thread that owns the sockets, because revoking a key rebinds them (see `reload`).
    """

    def __init__(self, context: zmq.Context, secret_path: str | os.PathLike, clients_dir: str | os.PathLike):
        self.public, self._secret = load_secret(secret_path)
        self.clients_dir = Path(clients_dir)
        keys, problems = load_allowed(self.clients_dir)
        if problems:
            raise CurveError("; ".join(problems))
        self.context = context
        self._allow = _AllowList(keys)
        self._bound: list[tuple[zmq.Socket, str]] = []
        self._auth = ThreadAuthenticator(context)
        try:
            self._auth.start()
        except zmq.ZMQError as e:
            raise CurveError(f"cannot start the ZAP handler (one CurveServer per zmq context): {e}") from e
        self._auth.configure_curve_callback(DOMAIN, credentials_provider=self._allow)

    @property
    def allowed(self) -> int:
        return len(self._allow.keys)

    @property
    def admitted(self) -> int:
        """Handshakes the allow-list accepted so far."""
        return self._allow.admitted

    @property
    def denied(self) -> int:
        """Handshakes the allow-list refused so far (unlisted or revoked keys)."""
        return self._allow.denied

    def apply(self, socket: zmq.Socket) -> None:
        """Make socket a CURVE server answering to this allow-list; call before it binds."""
        if not self._auth.is_alive():
            raise CurveError("the ZAP handler is not running: a CURVE server now would admit any key")
        if socket.context is not self.context:
            raise CurveError("the socket belongs to another zmq context than the ZAP handler")
        try:
            socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        except (AttributeError, zmq.ZMQError) as e:
            raise CurveError(f"libzmq {zmq.zmq_version()} cannot enforce ZAP; need libzmq >= 4.3") from e
        socket.curve_server = True
        socket.curve_publickey = self.public
        socket.curve_secretkey = self._secret
        socket.zap_domain = DOMAIN.encode()

    def bind(self, socket: zmq.Socket, endpoint: str) -> str:
        """apply(socket), bind it, remember the endpoint for revocation; returns the bound endpoint."""
        self.apply(socket)
        socket.bind(endpoint)
        bound = socket.last_endpoint.decode()
        self._bound.append((socket, bound))
        return bound

    def reload(self) -> Reload:
        """Re-read clients_dir: the allow-list becomes exactly the valid keys found there.

        ZAP is asked only during a handshake, so a revoked client's open connection would
        survive a new list. When keys are removed, every endpoint bound with `bind` is
        therefore unbound and bound again: all connections drop, allowed clients reconnect
        on their own (losing what was in flight), revoked ones are refused. A missing
        directory empties the list (fails closed); unreadable key files are skipped.
        """
        keys, problems = load_allowed(self.clients_dir)
        old = self._allow.keys
        self._allow.keys = keys
        change = Reload(len(keys), len(keys - old), len(old - keys), problems)
        if change.removed:
            self._rebind()
        return change

    def _rebind(self) -> None:
        self._bound = [(s, e) for s, e in self._bound if not s.closed]
        for socket, endpoint in self._bound:
            socket.unbind(endpoint)
            _bind_again(socket, endpoint)

    def stop(self) -> None:
        """Stop the ZAP handler. Sockets still open then refuse every client (ZAP_ENFORCE_DOMAIN)."""
        self._auth.stop()
        self._bound.clear()

    def __enter__(self) -> CurveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind_again(socket: zmq.Socket, endpoint: str) -> None:
    """Bind endpoint again; unbind releases the port asynchronously, so retry briefly."""
    deadline = time.monotonic() + REBIND_SECONDS
    while True:
        try:
            socket.bind(endpoint)
            return
        except zmq.ZMQError as e:
            if e.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise CurveError(f"could not bind {endpoint} again after revoking keys: {e}") from e
            time.sleep(0.01)


def apply_client(
    socket: zmq.Socket, server_public_path: str | os.PathLike, client_secret_path: str | os.PathLike
) -> None:
    """Make socket a CURVE client of the server whose public key is given; call before connect."""
    socket.curve_serverkey = load_public(server_public_path)
    socket.curve_publickey, socket.curve_secretkey = load_secret(client_secret_path)


LOOPBACK_NAMES = {"localhost", "localhost.", "lo"}
LOCAL_TRANSPORTS = {"ipc", "inproc"}
HOST_TRANSPORTS = {"tcp", "ws", "wss", "udp"}


def is_local(endpoint: str) -> bool:
    """True when endpoint can only be reached from this machine (loopback, ipc://, inproc://).

    A leading `@` (bind) or `>` (connect), the daemon's endpoint prefixes, is ignored.
    """
    transport, sep, rest = endpoint.lstrip("@>").partition("://")
    if not sep:
        return False
    if transport in LOCAL_TRANSPORTS:
        return True
    if transport not in HOST_TRANSPORTS:
        return False
    return _is_loopback_host(_host(rest))


def _host(address: str) -> str:
    """HOST out of [source;]HOST:PORT[/path], without IPv6 brackets or zone."""
    address = address.rpartition(";")[2].partition("/")[0]
    host = address.rpartition(":")[0] if ":" in address else address
    return host.strip("[]").partition("%")[0].lower()


def _is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def exposed(endpoints: Iterable[str]) -> list[str]:
    """The endpoints others can reach over a network: binding these without CURVE deserves a warning."""
    return [endpoint for endpoint in endpoints if not is_local(endpoint)]


def issue(target: str | os.PathLike) -> str:
    """Create the key pair PATH/NAME.key and PATH/NAME.key_secret; returns what `keys` prints."""
    target = Path(target)
    public, secret = create_keypair(target.parent, target.name)
    return (
        f"public  {public}  (copy to the peer: a daemon's --curve-clients DIR, or clients' --curve-server)\n"
        f"secret  {secret}  (mode 0600; stays on this machine)\n"
        f"key     {load_public(public).decode()}"
    )
