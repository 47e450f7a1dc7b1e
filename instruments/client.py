"""The agent's side of the instrument: the `Instrument` protocol over bus RPC.

Every call carries a deadline (`acquire` gets its exposure added), and every failure comes
back as an `InstrumentError`: the server's structured errors keep their code and
`retryable` flag; a deadline that passes is `timeout` (retryable, since the instrument may
just be slow), an unreachable bus is `unavailable`. Retries reuse an idempotency key, so
a resent `acquire` runs once on the server.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from dkl.bus import BusError, BusTimeout, RemoteError, RpcClient
from dkl.instruments.protocols import Description, InstrumentError, Measurement, Status, Survey

_TUPLE_KEYS = ("shape", "detector_shape", "center", "signal_range", "exposure_range", "position")


class InstrumentClient:
    """An `Instrument` whose calls go to an instrument server at `address`.

    Args:
        address: the server's RPC endpoint, e.g. the one in its `READY tcp://...` line.
        timeout_s: deadline of every call; `acquire` adds its exposure time to it.
        rpc_options: passed to the bus `RpcClient` (e.g. `heartbeat_s`, `peer_timeout`,
            `retry_interval`, `security`).

    Example:
        >>> with InstrumentClient("tcp://127.0.0.1:5570", timeout_s=5) as scope:
        ...     m = scope.acquire(10, 12, 0.01)
    """

    def __init__(self, address: str, timeout_s: float = 10.0, **rpc_options: Any) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.address = address
        self.timeout_s = timeout_s
        self._rpc = RpcClient(address, timeout=timeout_s, **rpc_options)
        self._lock = threading.Lock()  # one socket: one call at a time

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        with self._lock:
            try:
                return self._rpc.call(method, *args, timeout=timeout or self.timeout_s)
            except RemoteError as err:
                raise InstrumentError(err.code, err.message, err.retryable) from err
            except BusTimeout as err:
                raise InstrumentError("timeout", f"{method}: {err}", retryable=True) from err
            except BusError as err:
                raise InstrumentError("unavailable", f"{method}: {err}", retryable=True) from err

    def describe(self) -> Description:
        """What the instrument is and can do."""
        return _tuples(self._call("describe"))  # type: ignore[return-value]

    def survey(self) -> Survey:
        """The structural image on the measurement grid."""
        return self._call("survey")  # type: ignore[no-any-return]

    def acquire(self, x: int, y: int, exposure_s: float) -> Measurement:
        """Measure at (x, y); the deadline is `timeout_s` plus the exposure."""
        exposure = float(exposure_s)
        budget = self.timeout_s + (exposure if np.isfinite(exposure) and exposure > 0 else 0.0)
        result = self._call("acquire", _plain(x), _plain(y), exposure, timeout=budget)
        return result  # type: ignore[no-any-return]

    def blank(self) -> None:
        """Blank the beam."""
        self._call("blank")

    def unblank(self) -> None:
        """Unblank the beam."""
        self._call("unblank")

    def status(self) -> Status:
        """The instrument's state."""
        return _tuples(self._call("status"))  # type: ignore[return-value]

    def heartbeat(self) -> dict[str, Any]:
        """Tell the instrument the agent is alive (resets its dead-man's switch)."""
        return dict(self._call("heartbeat"))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._rpc.close()

    def __enter__(self) -> InstrumentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; anything else as is, for the server to judge."""
    return value.item() if isinstance(value, np.generic) else value


def _tuples(reply: dict[str, Any]) -> dict[str, Any]:
    """msgpack turns tuples into lists; give the protocol's tuples back."""
    return {
        k: (tuple(v) if k in _TUPLE_KEYS and isinstance(v, list) else v) for k, v in reply.items()
    }
