"""A synthetic run and a fake agent on the real bus, for testing viewers without an agent.

The documents and the run directory follow docs/design.md §8 exactly, so a viewer that
renders them renders a real run. `fake_agent` publishes them the way the agent does
(journal first, through the proxy, history served by a snapshot service) and
`fake_control` answers pause / resume / stop. Nothing here is imported by the viewers.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkl.viewer.busio import FollowConfig
from dkl.viewer.state import Document

TIMINGS = ("move", "settle", "exposure", "scalarize", "train", "predict", "acquire")
PLAN_SOURCE = "# synthetic run\nscalarize ratio(peak(1), peak(2)); acquire EI; stop after {n}\n"


def _field(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (np.sin(xx / 4.0) * np.cos(yy / 5.0) + 0.02 * xx).astype(np.float32)


def fake_run_documents(
    n: int = 12,
    shape: tuple[int, int] = (24, 32),
    run_id: str = "run-test",
    seed: int = 0,
    start_time: float = 1_700_000_000.0,
) -> Iterator[Document]:
    """Yield a complete run: start, then per step an event, model and maps, then stop."""
    rng = np.random.default_rng(seed)
    h, w = shape
    truth = _field(h, w)
    survey = (truth + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    source = PLAN_SOURCE.format(n=n)
    seq = 0

    def doc(topic: str, body: dict) -> Document:
        nonlocal seq
        seq += 1
        return Document(topic, {"run_id": run_id, **body}, seq, start_time + 0.25 * seq)

    yield doc(
        "run.start",
        {
            "plan_source": source,
            "sha256": hashlib.sha256(source.encode()).hexdigest(),
            "plan": {},
            "instrument": {"name": "fake", "modality": "eels"},
            "survey": survey,
            "seed": seed,
            "max_measurements": n,
            "time": start_time,
        },
    )
    points = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(n + 1)]
    best = -np.inf
    for i in range(n):
        x, y = points[i]
        failed = i == n // 2
        scalar = None if failed else float(truth[y, x])
        best = best if scalar is None else max(best, scalar)
        timings = {k: float(0.01 + 0.005 * j + 0.001 * rng.random()) for j, k in enumerate(TIMINGS)}
        timings["step"] = sum(timings.values()) + 0.005
        yield doc(
            "run.event",
            {
                "index": i,
                "x": x,
                "y": y,
                "scalar": scalar,
                "failure": {"code": "timeout", "message": "detector timed out"} if failed else None,
                "timings": timings,
                "model_version": i,
                "acquisition_value": float(rng.random()),
                "best": None if not np.isfinite(best) else float(best),
                "dose": 1.0 + i,
                "next": list(points[i + 1]),
            },
        )
        yield doc(
            "run.model",
            {
                "version": i + 1,
                "n_train": i + 1,
                "loss": float(2.0 / (i + 1)),
                "train_time": 0.02,
                "steps": 50,
                "hyperparameters": {"lengthscale": 1.0},
                "device": "CPU:0",
            },
        )
        blend = (i + 1) / n
        acquisition = (np.abs(truth - truth.mean()) * (1 - blend) + rng.random(shape) * 0.1).astype(
            np.float32
        )
        acquisition[0, :] = np.nan  # off-candidate border
        yield doc(
            "run.maps",
            {
                "version": i + 1,
                "prediction": (truth * blend).astype(np.float32),
                "uncertainty": np.full(shape, 1.0 - 0.9 * blend, np.float32)
                + 0.1 * rng.random(shape).astype(np.float32),
                "acquisition": acquisition,
                "next": list(points[i + 1]),
            },
        )
    yield doc(
        "run.stop",
        {
            "exit_status": "success",
            "reason": f"stop after {n}",
            "num_events": n,
            "last_seq": seq + 1,
            "idle_fraction": 0.4,
            "elapsed": 3.5,
        },
    )


def write_fake_run_dir(run_dir: Path, n: int = 12, shape: tuple[int, int] = (24, 32)) -> Path:
    """Write `plan.dkl` and `results.npz` of the synthetic run into `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    docs = list(fake_run_documents(n=n, shape=shape))
    start = docs[0].body
    events = [d.body for d in docs if d.topic == "run.event"]
    maps = [d.body for d in docs if d.topic == "run.maps"][-1]
    dose = np.zeros(shape, np.float32)
    for e in events:
        dose[e["y"], e["x"]] += e["dose"]
    arrays = {
        "positions": np.array([[e["x"], e["y"]] for e in events], dtype=np.int64).reshape(-1, 2),
        "scalars": np.array([np.nan if e["scalar"] is None else e["scalar"] for e in events]),
        "failed": np.array([e["failure"] is not None for e in events], dtype=bool),
        "best_so_far": np.array([np.nan if e["best"] is None else e["best"] for e in events]),
        "prediction": maps["prediction"],
        "uncertainty": maps["uncertainty"],
        "acquisition": maps["acquisition"],
        "survey": start["survey"],
        "dose_map": dose,
    }
    for name in (*TIMINGS, "step"):
        arrays[f"timing_{name}"] = np.array([e["timings"][name] for e in events])
    np.savez(run_dir / "results.npz", **arrays)
    (run_dir / "plan.dkl").write_text(start["plan_source"], encoding="utf-8")
    return run_dir


def write_journal(path: Path, docs: Iterable[Document]) -> Path:
    """Write documents as a run journal, the way the agent does (through `dkl.bus`)."""
    from dkl.bus import Message, MessageLog

    with MessageLog(path, fsync=False) as log:
        for doc in docs:
            log.append(
                Message(doc.topic, doc.body, src="agent", seq=doc.seq or 0, time=doc.time or 0.0)
            )
    return path


@dataclass
class FakeAgent:
    """A journaled publisher behind a proxy; `follow` is how a viewer joins it."""

    publisher: Any
    follow: FollowConfig
    journal: Path
    commands: list[str] = field(default_factory=list)

    def publish(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self.publisher.publish(doc.topic, doc.body)


@contextlib.contextmanager
def fake_agent(journal: Path, src: str = "agent") -> Iterator[FakeAgent]:
    """Start a proxy and a journaled publisher `src` serving snapshots; all on loopback."""
    from dkl.bus import MessageLog, Proxy, Publisher

    proxy = Proxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0").start()
    try:
        with MessageLog(journal, fsync=False) as log:
            publisher = Publisher(proxy.endpoints.frontend, src, journal=log)
            try:
                snapshot = publisher.serve_snapshots()
                config = FollowConfig(bus=proxy.endpoints.backend, snapshot=snapshot, source=src)
                yield FakeAgent(publisher, config, journal)
            finally:
                publisher.close()
    finally:
        proxy.stop()


class _Control:
    """The agent's control methods, recording what they were asked (or refusing it)."""

    def __init__(self, commands: list[str], refuse: bool) -> None:
        self.commands, self.refuse = commands, refuse

    def _do(self, action: str, state: str) -> dict[str, str]:
        if self.refuse:
            from dkl.bus import FORBIDDEN, RemoteError

            raise RemoteError(FORBIDDEN, f"only an operator may {action}")
        self.commands.append(action)
        return {"state": state}

    def pause(self, reason: str = "") -> dict[str, str]:
        return self._do("pause", "paused")

    def resume(self, reason: str = "") -> dict[str, str]:
        return self._do("resume", "running")

    def stop(self, reason: str = "") -> dict[str, str]:
        return self._do("stop", "stopping")


@contextlib.contextmanager
def fake_control(commands: list[str], refuse: bool = False) -> Iterator[str]:
    """Serve pause / resume / stop over bus RPC, appending to `commands`; yields the address.

    With `refuse`, every call is answered as the agent answers a caller without the
    operator role (`forbidden`): over unsecured loopback every peer is `local`, so the
    refusal is made by the fake agent itself.
    """
    from dkl.bus import RpcServer

    server = RpcServer(_Control(commands, refuse), ["pause", "resume", "stop"]).start()
    try:
        yield server.endpoint
    finally:
        server.stop()
