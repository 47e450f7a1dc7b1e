"""The bus's one family of errors.

BusError
 ├── BusTimeout           a deadline passed (call, handshake, snapshot)
 ├── MessageDecodeError   a frame broke the envelope rules (counted and dropped by loops)
 ├── RemoteError          the peer answered with a structured error {code, message, retryable}
 └── SecurityError        a configuration the security rules refuse (e.g. open bind, no CURVE)
"""

from __future__ import annotations


class BusError(Exception):
    """Root of every error raised by `dkl.bus`."""


class BusTimeout(BusError, TimeoutError):
    """A blocking bus operation passed its deadline."""


class MessageDecodeError(BusError, ValueError):
    """A multipart message broke the envelope, size or type rules."""


class SecurityError(BusError):
    """A socket configuration that the security rules refuse."""


class RemoteError(BusError):
    """A structured error answered by an RPC server.

    Attributes:
        code: stable machine-readable code (see `docs/bus.md`, e.g. ``forbidden``).
        message: human-readable explanation.
        retryable: whether the same call may succeed if tried again.
    """

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    def to_dict(self) -> dict[str, object]:
        """The wire form `{code, message, retryable}`."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}
