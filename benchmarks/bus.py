"""Bus benchmark: `dkl.bus` beside raw pyzmq, measured in the same run, printed as ratios.

    /work/venv/bin/python benchmarks/bus.py            # full run (about a minute)
    /work/venv/bin/python benchmarks/bus.py --quick    # a few seconds

Throughput: a publisher in a child process sends N messages through an XSUB/XPUB proxy
to a subscriber in this process (time from telling the connected, ready publisher to go
until the last message is received and decoded).
`dkl.bus` = Publisher -> Proxy -> Subscriber (envelope, seq tracking, strict decoding,
arrays as zero-copy buffers). Two raw pyzmq baselines, PUB -> zmq.proxy -> SUB:
  * raw bytes: one frame of the payload's bytes, received and never looked at (the
    transport's ceiling);
  * raw + msgpack: what an application must write to carry the same message with plain
    pyzmq: a topic frame and the msgpack-packed body (arrays as a zero-copy frame beside
    it), unpacked on receipt.
Batched rows: the publisher hands 100 events at a time to `Publisher.publish_many` (one
wire message, each event keeps its own seq and is checked, ordered and delivered as its
own `Message`) and the subscriber drains them with `recv_many`; "raw + msgpack" packs the
same 100 bodies into one frame. "raw bytes" stays one frame per event: the ceiling for
sending events one at a time.
Latency: RpcClient.call -> RpcServer (worker thread, idempotency cache) against a raw
REQ/REP echo. Targets: >= 50 % of raw throughput; p99 round trip < 2 ms.
"""

from __future__ import annotations

import argparse
import platform
import select
import subprocess
import sys
import threading
import time

import msgpack
import numpy as np
import zmq

from dkl.bus import Proxy, Publisher, RpcClient, Subscriber, serve


def _payloads() -> dict[str, tuple[dict, bytes]]:
    event = {"run_id": "r1", "index": 7, "x": 12, "y": 40, "scalar": 0.125, "pad": "e" * 50}
    spectrum = np.random.default_rng(0).random(16_384, dtype=np.float32)  # 64 KiB
    frame = np.random.default_rng(1).random((256, 512), dtype=np.float32)  # 512 KiB
    return {
        "100 B event": (event, b"e" * 100),
        "64 KB spectrum": ({"index": 7, "spectrum": spectrum}, spectrum.tobytes()),
        "512 KB frame": ({"index": 7, "frame": frame}, frame.tobytes()),
    }


BATCH = 100  # events per publish_many call in the batched rows


def _spawn(mode: str, payload: str, n: int, endpoint: str, batch: int) -> subprocess.Popen:
    args = ["--child", mode, payload, str(n), endpoint, str(batch)]
    pipe = subprocess.PIPE
    return subprocess.Popen([sys.executable, __file__, *args], stdin=pipe, stdout=pipe)


def _go(child: subprocess.Popen, timeout: float = 60.0) -> float:
    """Wait for the child's "ready" (connected and subscribed-to), start it; the start time."""
    assert child.stdout is not None and child.stdin is not None
    readable, _, _ = select.select([child.stdout], [], [], timeout)
    if not readable or child.stdout.readline() != b"ready\n":
        child.kill()
        raise RuntimeError("benchmark publisher did not become ready")
    start = time.perf_counter()
    child.stdin.write(b"go\n")
    child.stdin.flush()
    return start


def _ready_then_wait_for_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def _child(mode: str, payload: str, n: int, endpoint: str, batch: int) -> None:
    """Publisher side, in its own process (its own GIL), as in real deployments."""
    body, raw = _payloads()[payload]
    if mode == "bus":
        pub = Publisher(endpoint, "bench", hwm=0, history=1)
        _ready_then_wait_for_go()
        if batch > 1:
            bodies = [body] * batch
            for _ in range(n // batch):
                pub.publish_many("bench.x", bodies)
        else:
            for _ in range(n):
                pub.publish("bench.x", body)
        pub.close(linger=120)  # deliver the whole backlog before exiting
        return
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)  # a PUB that can see the proxy's subscription arrive
    sock.sndhwm = 0
    sock.connect(endpoint)
    sock.recv()
    _ready_then_wait_for_go()
    if mode == "raw":
        for _ in range(n):
            sock.send(raw, copy=len(raw) < 65536)
    elif batch > 1:  # raw + msgpack, the same batches: a list of bodies in one frame
        bodies = [body] * batch
        for _ in range(n // batch):
            sock.send(b"bench.x", zmq.SNDMORE)
            sock.send(msgpack.packb(bodies))
    else:  # raw + msgpack: topic, packed metadata, arrays as their own zero-copy frames
        meta = {k: v for k, v in body.items() if not isinstance(v, np.ndarray)}
        arrays = [v for v in body.values() if isinstance(v, np.ndarray)]
        for _ in range(n):
            sock.send(b"bench.x", zmq.SNDMORE)
            sock.send(msgpack.packb(meta), zmq.SNDMORE if arrays else 0)
            for i, arr in enumerate(arrays):
                sock.send(arr, zmq.SNDMORE if i < len(arrays) - 1 else 0, copy=False)
    sock.close(linger=-1)
    ctx.term()


def bus_throughput(payload: str, n: int, batch: int = 1) -> float:
    ctx = zmq.Context()
    with Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0", hwm=0) as proxy:
        sub = Subscriber(proxy.endpoints.backend, ["bench."], ctx=ctx, hwm=0, maxlen=n + 1)
        child = _spawn("bus", payload, n, proxy.endpoints.frontend, batch)
        start, got = _go(child), 0
        while got < n:  # batched: drained in bulk, as a high-rate consumer would
            msgs = sub.recv_many(timeout=30) if batch > 1 else [sub.recv(timeout=30)]
            assert msgs and msgs[0] is not None
            got += len(msgs)
        elapsed = time.perf_counter() - start
        assert child.wait(30) == 0
        assert sub.stats.lost == 0 and not sub.stats.gaps
        sub.close()
    ctx.term()
    return n / elapsed


def raw_throughput(payload: str, n: int, mode: str = "raw", batch: int = 1) -> float:
    ctx = zmq.Context()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    for s in (xsub, xpub):
        s.sndhwm = s.rcvhwm = 0
    front = f"tcp://127.0.0.1:{xsub.bind_to_random_port('tcp://127.0.0.1')}"
    back = f"tcp://127.0.0.1:{xpub.bind_to_random_port('tcp://127.0.0.1')}"
    xsub.send(b"\x01")  # forward everything, as the dkl.bus proxy does
    proxy = threading.Thread(target=_run_proxy, args=(xsub, xpub), daemon=True)
    proxy.start()
    sub = ctx.socket(zmq.SUB)
    sub.rcvhwm = 0
    sub.subscribe(b"")
    sub.connect(back)
    probe = ctx.socket(zmq.PUB)
    probe.connect(front)
    while True:  # until the SUB's subscription has crossed the proxy
        probe.send(b"probe")
        if sub.poll(20):
            break
    probe.close(linger=0)
    while sub.poll(50):
        sub.recv()
    child = _spawn(mode, payload, n, front, batch)
    receive = _receive_raw if mode == "raw" else _receive_msgpack
    start, got = _go(child), 0
    while got < n:
        got += receive(sub)  # events in the message
    elapsed = time.perf_counter() - start
    assert child.wait(30) == 0
    sub.close(linger=0)
    ctx.term()  # ends zmq.proxy with ContextTerminated
    proxy.join(2)
    return n / elapsed


def _receive_raw(sub: zmq.Socket) -> int:
    sub.recv(copy=False)
    return 1


def _receive_msgpack(sub: zmq.Socket) -> int:
    _topic, meta, *arrays = sub.recv_multipart(copy=False)
    value = msgpack.unpackb(meta.bytes)
    for frame in arrays:
        np.frombuffer(frame.buffer, np.float32)
    return len(value) if isinstance(value, list) else 1


def _run_proxy(xsub: zmq.Socket, xpub: zmq.Socket) -> None:
    try:
        zmq.proxy(xsub, xpub)
    except zmq.ContextTerminated:
        pass
    finally:
        xsub.close(linger=0)
        xpub.close(linger=0)


class _Echo:
    def echo(self, value: object) -> object:
        return value


def bus_latency(n: int, threaded: bool = True) -> np.ndarray:
    server = serve(_Echo(), ["echo"], threaded=threaded)
    client = RpcClient(server.endpoint)
    out = []
    for i in range(n + 200):
        start = time.perf_counter()
        client.call("echo", {"x": i, "y": 3})
        out.append(time.perf_counter() - start)
    client.close()
    server.stop()
    return np.array(out[200:])


def raw_latency(n: int) -> np.ndarray:
    ctx = zmq.Context()
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    req.connect(f"tcp://127.0.0.1:{port}")

    def serve_echo() -> None:
        for _ in range(n + 200):
            rep.send(rep.recv())

    thread = threading.Thread(target=serve_echo)
    thread.start()
    out = []
    for i in range(n + 200):
        start = time.perf_counter()
        req.send(b"%d" % i)
        req.recv()
        out.append(time.perf_counter() - start)
    thread.join()
    rep.close(linger=0)
    req.close(linger=0)
    ctx.term()
    return np.array(out[200:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (smoke run)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, payload, n, endpoint, batch = args.child
        _child(mode, payload, int(n), endpoint, int(batch))
        return
    scale = 0.1 if args.quick else 1.0
    counts = {"100 B event": 100_000, "64 KB spectrum": 10_000, "512 KB frame": 2_000}
    print(
        f"# dkl.bus benchmark  python {platform.python_version()}  pyzmq {zmq.__version__}  "
        f"libzmq {zmq.zmq_version()}  {platform.machine()}"
    )
    print("\nThroughput through the proxy (messages/s; ratios = dkl.bus / raw pyzmq)")
    print(f"{'payload':<16}{'n':>8}{'dkl.bus':>12}{'raw bytes':>12}{'ratio':>7}"
          f"{'raw+msgpack':>13}{'ratio':>7}{'dkl MB/s':>10}")
    rows = [(name, 1) for name in counts] + [("100 B event", BATCH)]
    for name, batch in rows:
        raw = _payloads()[name][1]
        n = max(200, int(counts[name] * scale)) // batch * batch
        ours = bus_throughput(name, n, batch)
        bare = raw_throughput(name, n, "raw")
        packed = raw_throughput(name, n, "msgpack", batch)
        mbs = ours * len(raw) / 1e6
        label = name if batch == 1 else f"{name[:5]} x{batch} batch"
        print(f"{label:<16}{n:>8}{ours:>12,.0f}{bare:>12,.0f}{ours / bare:>7.2f}"
              f"{packed:>13,.0f}{ours / packed:>7.2f}{mbs:>10.0f}")
    n = max(500, int(10_000 * scale))
    worker, inline = bus_latency(n) * 1e3, bus_latency(n, threaded=False) * 1e3
    theirs = raw_latency(n) * 1e3
    print(f"\nRound trip (ms, n={n}; ratio = dkl.bus / raw REQ-REP)")
    print(f"{'':<22}{'p50':>8}{'p99':>8}{'p50 ratio':>11}{'p99 ratio':>11}")
    raw50, raw99 = np.percentile(theirs, 50), np.percentile(theirs, 99)
    for label, t in (
        ("dkl.bus (worker)", worker),
        ("dkl.bus (inline)", inline),
        ("raw REQ/REP", theirs),
    ):
        p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
        print(f"{label:<22}{p50:>8.3f}{p99:>8.3f}{p50 / raw50:>11.2f}{p99 / raw99:>11.2f}")


if __name__ == "__main__":
    main()
