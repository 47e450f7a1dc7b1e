"""Run documents as the dashboard's browsers receive them: JSON with compact arrays.

A browser folds the same documents as `RunState` does, so the server only has to send
(a) the documents that rebuild the current state to a newly connected browser and
(b) every new document afterwards. Arrays travel as base64 little-endian float32
(`{"__array__": "<base64>", "shape": [H, W]}`), NaN included, and are drawn to canvas
with a colormap in the page.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import numpy as np

from dkl.viewer.state import Document, RunState


def encode_value(value: Any) -> Any:
    """A JSON-ready copy of a document body; numeric arrays become base64 float32."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.ndim >= 1:
            data = np.ascontiguousarray(value, dtype="<f4").tobytes()
            return {"__array__": base64.b64encode(data).decode("ascii"), "shape": list(value.shape)}
        return encode_value(value.tolist())
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, np.generic):
        return encode_value(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


def doc_message(doc: Document) -> str:
    """One document as the text of one WebSocket message."""
    payload = {"type": "doc", "topic": doc.topic, "seq": doc.seq, "time": doc.time}
    payload["body"] = encode_value(doc.body)
    return json.dumps(payload, allow_nan=False, separators=(",", ":"))


def state_documents(run: RunState) -> list[Document]:
    """The documents that rebuild `run` in a browser: start, events, models, the latest
    maps, interruptions and stop (older maps are conflated away: only the latest counts)."""
    docs: list[Document] = []
    if run.start is not None:
        docs.append(Document("run.start", run.start))
    docs += [Document("run.event", e) for e in run.ordered_events()]
    docs += [Document("run.model", m) for m in run.models]
    if run.maps is not None:
        docs.append(Document("run.maps", run.maps))
    docs += [Document("run.interruption", i) for i in run.interruptions]
    if run.stop is not None:
        docs.append(Document("run.stop", run.stop))
    return docs


def reset_message(run: RunState | None) -> str:
    """Tells a browser to drop what it shows: a (re)sync of `run` follows."""
    return json.dumps({"type": "reset", "run_id": None if run is None else run.run_id})
