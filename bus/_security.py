"""CURVE keys, the ZAP authenticator and roles.

Every process has its own key pair (`dkl keys init NAME --role ROLE`); a server trusts
the public keys found in an authorized-keys directory, each tagged with a role in the
certificate's metadata. The role is decided on the server from the authenticated key
(it reaches the application as the ZAP User-Id of every frame) and is never claimed by
the client. Without CURVE a socket may bind loopback only, unless `insecure=True`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from ._errors import SecurityError

VIEWER, OPERATOR, AGENT, INSTRUMENT = "viewer", "operator", "agent", "instrument"
#: Every role a key can carry.
ROLES = (VIEWER, OPERATOR, AGENT, INSTRUMENT)
#: Role given to peers on an unauthenticated loopback socket (trusted local machine).
LOCAL = "local"

#: ZAP domains and the roles each admits (method-level checks happen in the RPC server).
DOMAIN_PUBLISH, DOMAIN_SUBSCRIBE, DOMAIN_RPC = "bus.publish", "bus.subscribe", "rpc"
_DOMAIN_ROLES = {
    DOMAIN_PUBLISH: {AGENT, INSTRUMENT, OPERATOR},
    DOMAIN_SUBSCRIBE: set(ROLES),
    DOMAIN_RPC: set(ROLES),
}


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair (z85 bytes)."""

    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ServerSecurity:
    """What a binding socket needs: its own keys and the authorized-keys directory."""

    keys: KeyPair
    authorized_dir: Path


@dataclass(frozen=True)
class ClientSecurity:
    """What a connecting socket needs: its own keys and the server's public key."""

    keys: KeyPair
    server_public: bytes


def create_keys(directory: str | os.PathLike[str], name: str, role: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public, with the role) and ``NAME.key_secret`` into `directory`.

    Raises:
        ValueError: unknown role or unsafe name.
        FileExistsError: keys of that name exist already (never overwritten).
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name.startswith("."):
        raise ValueError(f"key name {name!r} must be letters, digits, '_', '-', '.'")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if (folder / f"{name}{suffix}").exists():
            raise FileExistsError(f"{folder / (name + suffix)} exists; not overwriting keys")
    public, secret = zmq.auth.create_certificates(folder, name, metadata={"role": role})
    os.chmod(secret, 0o600)
    # pyzmq writes metadata into the secret file only; the public file must carry the role
    text = Path(public).read_text(encoding="utf-8")
    Path(public).write_text(
        text.replace("metadata\n", f'metadata\n    role = "{role}"\n', 1), encoding="utf-8"
    )
    return Path(public), Path(secret)


def init_keys(directory: str | os.PathLike[str], name: str, role: str) -> tuple[Path, Path, Path]:
    """`create_keys`, then trust the new public key in ``DIRECTORY/authorized_keys/``.

    One key directory per machine then serves both sides: servers read
    ``authorized_keys/``; copy ``NAME.key`` there on other machines to trust it.
    Returns (public file, secret file, authorized copy).
    """
    public, secret = create_keys(directory, name, role)
    trusted = Path(directory) / "authorized_keys"
    trusted.mkdir(exist_ok=True)
    copy = trusted / public.name
    copy.write_bytes(public.read_bytes())
    return public, secret, copy


def load_keypair(secret_file: str | os.PathLike[str]) -> KeyPair:
    """Read a ``.key_secret`` file written by `create_keys`."""
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise SecurityError(f"{secret_file} holds no secret key")
    return KeyPair(public, secret)


def load_public_key(public_file: str | os.PathLike[str]) -> bytes:
    """Read the public key of a ``.key`` file."""
    return zmq.auth.load_certificate(public_file)[0]


def read_role(public_file: str | os.PathLike[str]) -> str | None:
    """The ``role`` written in a certificate's metadata, or None."""
    text = Path(public_file).read_text(encoding="utf-8", errors="replace")
    match = re.search(r'^\s*role\s*=\s*"?([A-Za-z_]+)"?', text, re.MULTILINE)
    return match.group(1) if match else None


def authorized_roles(directory: str | os.PathLike[str]) -> dict[bytes, str]:
    """Map z85 public key -> role for every ``*.key`` in an authorized-keys directory."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SecurityError(f"authorized-keys directory {folder} does not exist")
    out: dict[bytes, str] = {}
    for path in sorted(folder.glob("*.key")):
        role = read_role(path)
        if role in ROLES:
            out[load_public_key(path)] = role
    return out


class RoleAuthenticator(ThreadAuthenticator):
    """ZAP handler admitting authorized keys and reporting their role as the User-Id."""

    def __init__(self, context: zmq.Context, authorized_dir: str | os.PathLike[str]) -> None:
        super().__init__(context)
        self.roles = authorized_roles(authorized_dir)
        self.refused = 0

    def start(self) -> None:
        super().start()
        for domain in _DOMAIN_ROLES:
            self.configure_curve_callback(domain, credentials_provider=self)

    def callback(self, domain: str, z85_key: bytes) -> bool:
        role = self.roles.get(z85_key)
        ok = role is not None and role in _DOMAIN_ROLES.get(domain, set())
        if not ok:
            self.refused += 1
        return ok

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self.roles.get(z85.encode(client_public_key), "")


def start_authenticator(
    context: zmq.Context, authorized_dir: str | os.PathLike[str]
) -> RoleAuthenticator:
    """Start the (one per context) ZAP handler for `context`."""
    auth = RoleAuthenticator(context, authorized_dir)
    auth.start()
    return auth


def secure_server(sock: zmq.Socket, security: ServerSecurity | None, domain: str) -> None:
    """Make `sock` a CURVE server in ZAP `domain` (no-op without security)."""
    if security is None:
        return
    sock.curve_secretkey = security.keys.secret
    sock.curve_publickey = security.keys.public
    sock.curve_server = True
    sock.zap_domain = domain.encode()


def secure_client(sock: zmq.Socket, security: ClientSecurity | None) -> None:
    """Make `sock` a CURVE client of the server key in `security` (no-op without)."""
    if security is None:
        return
    sock.curve_secretkey = security.keys.secret
    sock.curve_publickey = security.keys.public
    sock.curve_serverkey = security.server_public


def is_loopback(endpoint: str) -> bool:
    """Whether binding `endpoint` is reachable from this machine only."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("inproc", "ipc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # interface names and '*' may reach the network


def check_bind(endpoint: str, security: object | None, insecure: bool) -> None:
    """Refuse a non-loopback bind without CURVE unless explicitly `insecure`."""
    if security is None and not insecure and not is_loopback(endpoint):
        raise SecurityError(
            f"refusing to bind {endpoint} without CURVE; give keys or pass insecure=True"
        )
