"""The bridge protocol, version 1: pure functions, no sockets (``docs/protocol.md``).

A message is a ZeroMQ multipart message: frame 0 is a UTF-8 JSON header, frames 1..k are the
raw bytes of the arrays the header lists (name, dtype, shape), in that order. Nothing is ever
pickled: a receiver only runs ``json.loads`` and ``np.frombuffer`` on data it has checked.

>>> import numpy as np
>>> m = Message("scan", body=scan_body(size_nm=3.7, pixels=(4, 4)), arrays={"z": np.zeros((4, 4))})
>>> deserialize(serialize(m)).arrays["z"].shape
(4, 4)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Sequence

import numpy as np

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAY_BYTES = 64 * 1024 * 1024
MAX_ARRAYS = 4
# Dtypes a scan can arrive in (kind + item size); anything else (object, complex, strings) is
# refused before it is interpreted.
ALLOWED_DTYPES = {"u1", "u2", "i2", "i4", "f4", "f8"}

# type -> body fields that must be present
MESSAGE_TYPES: dict[str, tuple[str, ...]] = {
    "scan": ("size_nm", "pixels"),
    "verdict": ("categories", "soft", "hard", "agreement", "decision"),
    "action_request": ("action",),
    "action_result": ("action", "sent"),
    "heartbeat": (),
    "override": ("manual",),
    "error": ("code", "message"),
}


class ProtocolError(ValueError):
    """A message that does not follow the protocol. ``code`` names the rule it broke."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def new_id() -> str:
    return uuid.uuid4().hex


@dataclasses.dataclass
class Message:
    """One protocol message. ``id`` is unique per message; a reply's ``parent`` is the id of
    the message it answers."""

    type: str
    body: dict = dataclasses.field(default_factory=dict)
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    id: str = dataclasses.field(default_factory=new_id)
    parent: str | None = None
    ts: float = dataclasses.field(default_factory=time.time)
    v: int = PROTOCOL_VERSION

    def reply(self, type: str, body: dict | None = None, **arrays: np.ndarray) -> Message:
        return Message(type, body=body or {}, arrays=dict(arrays), parent=self.id)


def scan_body(
    *,
    size_nm: float,
    pixels: Sequence[int],
    bias_v: float = 0.0,
    setpoint_a: float = 0.0,
    direction: str = "down",
    lines_done: int | None = None,
    source: str = "",
    **extra,
) -> dict:
    """The metadata of a scan message (extra keys, e.g. ``position_nm``, are carried along)."""
    return {
        "size_nm": float(size_nm),
        "pixels": [int(p) for p in pixels],
        "bias_v": float(bias_v),
        "setpoint_a": float(setpoint_a),
        "direction": direction,
        "lines_done": lines_done,
        "source": source,
        **extra,
    }


def error_message(code: str, text: str, parent: str | None = None) -> Message:
    return Message("error", body={"code": code, "message": text}, parent=parent)


def serialize(msg: Message) -> list[bytes | memoryview]:
    """Message -> multipart frames (header JSON, then one buffer per array, no copies)."""
    _check_type(msg.type, msg.body)
    specs, buffers = [], []
    for name, arr in msg.arrays.items():
        a = np.ascontiguousarray(arr)
        _check_dtype(a.dtype, name)
        specs.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape)})
        buffers.append(memoryview(a).cast("B") if a.size else b"")
    header = {
        "type": msg.type,
        "v": msg.v,
        "id": msg.id,
        "parent": msg.parent,
        "ts": msg.ts,
        "body": msg.body,
        "arrays": specs,
    }
    try:
        raw = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    except ValueError as e:
        raise ProtocolError("bad_json", f"header not JSON-serialisable ({e})") from None
    return [raw, *buffers]


def _check_type(type_: str, body: dict) -> None:
    if type_ not in MESSAGE_TYPES:
        raise ProtocolError(
            "unknown_type", f"expected one of {sorted(MESSAGE_TYPES)}, got {type_!r}"
        )
    if not isinstance(body, dict):
        raise ProtocolError("bad_header", f"body: expected an object, got {type(body).__name__}")
    missing = [f for f in MESSAGE_TYPES[type_] if f not in body]
    if missing:
        raise ProtocolError("missing_field", f"{type_} body: missing {missing}")


def _check_dtype(dt: np.dtype, name: str) -> None:
    if f"{dt.kind}{dt.itemsize}" not in ALLOWED_DTYPES:
        raise ProtocolError(
            "bad_array",
            f"array {name!r}: expected a dtype in {sorted(ALLOWED_DTYPES)}, got {dt.str!r}",
        )


def deserialize(frames: Sequence) -> Message:
    """Multipart frames -> :class:`Message`, checking every rule; raises :class:`ProtocolError`.

    Frames may be ``bytes``, ``memoryview`` or ``zmq.Frame`` (anything with the buffer protocol).
    """
    if not frames:
        raise ProtocolError("bad_header", "expected at least one frame (the JSON header), got 0")
    raw = memoryview(frames[0])
    if raw.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError(
            "too_large", f"header: expected <= {MAX_HEADER_BYTES} bytes, got {raw.nbytes}"
        )
    try:
        h = json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError("bad_json", f"header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(h, dict):
        raise ProtocolError("bad_header", f"header: expected a JSON object, got {type(h).__name__}")
    if h.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            "version", f"expected protocol version {PROTOCOL_VERSION}, got {h.get('v')!r}"
        )
    for key, typ in (("type", str), ("id", str)):
        if not isinstance(h.get(key), typ):
            raise ProtocolError("bad_header", f"{key}: expected a string, got {h.get(key)!r}")
    body = h.get("body", {})
    _check_type(h["type"], body)
    specs = h.get("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise ProtocolError("bad_array", f"arrays: expected a list of <= {MAX_ARRAYS} specs")
    if len(specs) != len(frames) - 1:
        raise ProtocolError(
            "bad_array", f"header lists {len(specs)} arrays, message has {len(frames) - 1} buffers"
        )
    arrays = {}
    for spec, frame in zip(specs, frames[1:], strict=True):
        arrays[str(spec.get("name"))] = _array(spec, memoryview(frame))
    ts = h.get("ts", 0.0)
    return Message(
        type=h["type"],
        body=body,
        arrays=arrays,
        id=h["id"],
        parent=h.get("parent"),
        ts=float(ts) if isinstance(ts, int | float) else 0.0,
        v=h["v"],
    )


def _array(spec, buf: memoryview) -> np.ndarray:
    if not isinstance(spec, dict):
        raise ProtocolError("bad_array", f"array spec: expected an object, got {spec!r}")
    name = spec.get("name")
    try:
        dt = np.dtype(str(spec.get("dtype")))
    except (TypeError, ValueError):  # numpy raises either, depending on the string
        raise ProtocolError(
            "bad_array", f"array {name!r}: unknown dtype {spec.get('dtype')!r}"
        ) from None
    _check_dtype(dt, name)
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > 4
        or not all(type(s) is int and s >= 0 for s in shape)
    ):
        raise ProtocolError(
            "bad_array", f"array {name!r}: expected a shape of <= 4 non-negative ints, got {shape}"
        )
    # Python ints: a sender's huge dimensions must give "too_large", not an int64 overflow.
    expected = math.prod(shape) * dt.itemsize
    if expected > MAX_ARRAY_BYTES:
        raise ProtocolError(
            "too_large", f"array {name!r}: expected <= {MAX_ARRAY_BYTES} bytes, got {expected}"
        )
    if buf.nbytes != expected:
        raise ProtocolError(
            "bad_array",
            f"array {name!r}: shape {shape} of {dt.str} needs {expected} bytes, got {buf.nbytes}",
        )
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def check_scan(msg: Message) -> np.ndarray:
    """The height map of a scan message, checked: 2-D, shape = ``pixels``, no inf.

    NaN is allowed (it marks unscanned lines of a partial frame).
    """
    if msg.type != "scan":
        raise ProtocolError("unknown_type", f"expected a scan message, got {msg.type!r}")
    z = msg.arrays.get("z")
    if z is None:
        raise ProtocolError(
            "bad_array", f"scan: expected an array named 'z', got {list(msg.arrays)}"
        )
    if z.ndim != 2:
        raise ProtocolError("bad_array", f"scan z: expected 2-D, got shape {list(z.shape)}")
    pixels, size = msg.body.get("pixels"), msg.body.get("size_nm")
    if not (isinstance(pixels, list) and len(pixels) == 2 and all(type(p) is int for p in pixels)):
        raise ProtocolError("bad_header", f"scan pixels: expected [rows, cols], got {pixels!r}")
    if type(size) not in (int, float):
        raise ProtocolError(
            "bad_header", f"scan size_nm: expected a number (0 when unknown), got {size!r}"
        )
    if list(z.shape) != pixels:
        raise ProtocolError(
            "bad_array", f"scan z: shape {list(z.shape)} disagrees with pixels {msg.body['pixels']}"
        )
    if z.dtype.kind == "f" and np.isinf(z).any():
        raise ProtocolError("bad_array", "scan z: expected finite heights or NaN, found inf")
    return z
