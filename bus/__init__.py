"""The event bus and request/reply layer: ZeroMQ + msgpack, nothing lost unnoticed.

Publishers stamp every message with ``(src, epoch, seq)``; subscribers deliver each
stream in order, report gaps and duplicates and fill holes from the publisher's
snapshot endpoint. RPC servers put whitelisted methods of any object on the bus, with
deadlines, idempotent retries, heartbeats, structured errors and role checks.
See ``docs/bus.md``.
"""

from ._aio import AsyncRpcClient, AsyncSubscriber
from ._codec import (
    DEFAULT_LIMITS,
    SCHEMA_VERSION,
    Limits,
    Message,
    decode,
    decode_many,
    encode,
    encode_batch,
    message_from_dict,
    message_to_dict,
    messages,
    pack_body,
    unpack_body,
)
from ._errors import BusError, BusTimeout, MessageDecodeError, RemoteError, SecurityError
from ._log import MessageLog, iter_log, read_log
from ._proxy import DEFAULT_BACKEND, DEFAULT_FRONTEND, Proxy, ProxyEndpoints, run_proxy
from ._pubsub import Publisher, Subscriber
from ._roles import AGENT_CONTROL_ROLES, INSTRUMENT_ROLES
from ._rpc import (
    BAD_ARGUMENTS,
    BAD_REQUEST,
    DEADLINE_EXCEEDED,
    FORBIDDEN,
    INTERNAL,
    UNAVAILABLE,
    UNKNOWN_METHOD,
)
from ._rpc_client import RpcClient
from ._rpc_server import RpcServer, run_server, serve
from ._security import (
    AGENT,
    INSTRUMENT,
    LOCAL,
    OPERATOR,
    ROLES,
    VIEWER,
    ClientSecurity,
    KeyPair,
    ServerSecurity,
    create_keys,
    init_keys,
    is_loopback,
    load_keypair,
    load_public_key,
)
from ._sequence import Gap, Sequencer, SequenceTracker, SubscriberStats
from ._snapshot import MessageRing, SnapshotServer, SnapshotSource, fetch_snapshot, snapshot_page

__all__ = [
    "AGENT",
    "AGENT_CONTROL_ROLES",
    "BAD_ARGUMENTS",
    "BAD_REQUEST",
    "DEADLINE_EXCEEDED",
    "DEFAULT_BACKEND",
    "DEFAULT_FRONTEND",
    "DEFAULT_LIMITS",
    "FORBIDDEN",
    "INSTRUMENT",
    "INSTRUMENT_ROLES",
    "INTERNAL",
    "LOCAL",
    "OPERATOR",
    "ROLES",
    "SCHEMA_VERSION",
    "UNAVAILABLE",
    "UNKNOWN_METHOD",
    "VIEWER",
    "AsyncRpcClient",
    "AsyncSubscriber",
    "BusError",
    "BusTimeout",
    "ClientSecurity",
    "Gap",
    "KeyPair",
    "Limits",
    "Message",
    "MessageDecodeError",
    "MessageLog",
    "MessageRing",
    "Proxy",
    "ProxyEndpoints",
    "Publisher",
    "RemoteError",
    "RpcClient",
    "RpcServer",
    "SecurityError",
    "SequenceTracker",
    "Sequencer",
    "ServerSecurity",
    "SnapshotServer",
    "SnapshotSource",
    "Subscriber",
    "SubscriberStats",
    "create_keys",
    "decode",
    "decode_many",
    "encode",
    "encode_batch",
    "fetch_snapshot",
    "init_keys",
    "is_loopback",
    "iter_log",
    "load_keypair",
    "load_public_key",
    "message_from_dict",
    "message_to_dict",
    "messages",
    "pack_body",
    "read_log",
    "run_proxy",
    "run_server",
    "serve",
    "snapshot_page",
    "unpack_body",
]
