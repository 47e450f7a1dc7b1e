"""CURVE settings from command-line flags, shared by every command that binds or connects.

Layout written by `dkl keys init`: `DIR/NAME.key` (public), `DIR/NAME.key_secret`, and
`DIR/authorized_keys/` holding the public keys (with their roles) a server accepts.
"""

from __future__ import annotations

from pathlib import Path

from dkl.bus import ClientSecurity, ServerSecurity, load_keypair, load_public_key


def server_security(keys_dir: str | None, name: str) -> ServerSecurity | None:
    """CURVE for a binding socket, or None (loopback only) when no key directory is given."""
    if not keys_dir:
        return None
    d = Path(keys_dir)
    return ServerSecurity(load_keypair(d / f"{name}.key_secret"), d / "authorized_keys")


def client_security(keys_dir: str | None, name: str, server_key: str | None
                    ) -> ClientSecurity | None:
    """CURVE for a connecting socket, or None when no key directory is given."""
    if not keys_dir:
        return None
    if not server_key:
        raise SystemExit("--server-key is required with --keys (the server's public key file)")
    d = Path(keys_dir)
    return ClientSecurity(load_keypair(d / f"{name}.key_secret"), load_public_key(server_key))
