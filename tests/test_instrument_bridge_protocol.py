"""The wire protocol: round trips, and every malformed input gives a typed error."""

import json

import numpy as np
import pytest

from instrument_bridge.protocol import (
    MAX_ARRAY_BYTES,
    PROTOCOL_VERSION,
    Message,
    ProtocolError,
    check_scan,
    deserialize,
    scan_body,
    serialize,
)


def _scan(z):
    return Message("scan", body=scan_body(size_nm=3.7, pixels=z.shape), arrays={"z": z})


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f8", "|u1", "<i2", ">i4"])
def test_scan_round_trip_keeps_values_dtype_and_ids(dtype, rng):
    z = (rng.normal(size=(16, 12)) * 50).astype(dtype)
    m = _scan(z)
    m.parent = "abc"
    back = deserialize(serialize(m))
    assert back.type == "scan" and back.id == m.id and back.parent == "abc"
    assert back.arrays["z"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.arrays["z"], z)
    assert back.body["pixels"] == [16, 12]


def test_header_is_plain_json_and_never_pickled(rng):
    frames = serialize(_scan(rng.normal(size=(4, 4))))
    h = json.loads(bytes(frames[0]))
    assert h["v"] == PROTOCOL_VERSION
    assert {"type", "id", "parent", "ts", "body", "arrays"} <= set(h)
    assert h["arrays"] == [{"name": "z", "dtype": "<f8", "shape": [4, 4]}]


def test_nan_lines_survive_and_inf_is_refused():
    z = np.zeros((8, 8), np.float32)
    z[5:] = np.nan
    assert np.isnan(check_scan(deserialize(serialize(_scan(z)))).astype(float)[5:]).all()
    z[0, 0] = np.inf
    with pytest.raises(ProtocolError, match="inf") as e:
        check_scan(deserialize(serialize(_scan(z))))
    assert e.value.code == "bad_array"


def _frames(header: dict, *buffers):
    return [json.dumps(header).encode(), *buffers]


GOOD = {"type": "heartbeat", "v": PROTOCOL_VERSION, "id": "x", "body": {}, "arrays": []}


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"\xff\xfe not json"], "bad_json"),
        ([b"[1, 2]"], "bad_header"),
        (_frames({**GOOD, "v": 99}), "version"),
        (_frames({**GOOD, "type": "launch_missiles"}), "unknown_type"),
        (_frames({**GOOD, "id": 5}), "bad_header"),
        (_frames({**GOOD, "type": "scan", "body": {"pixels": [2, 2]}}), "missing_field"),
        ([b" " * (64 * 1024 + 1)], "too_large"),
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "|O", "shape": [1]}]}, b"12345678"),
            "bad_array",
        ),
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "<f4", "shape": [2, 2]}]}, b"123"),
            "bad_array",
        ),
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "<f4", "shape": [2]}]}),
            "bad_array",
        ),
        (
            _frames(
                {**GOOD, "arrays": [{"name": "z", "dtype": "<f8", "shape": [MAX_ARRAY_BYTES, 8]}]},
                b"",
            ),
            "too_large",
        ),
        ([], "bad_header"),
        # numpy raises ValueError, not TypeError, for some dtype strings
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "1e+308", "shape": [1]}]}, b"1"),
            "bad_array",
        ),
        # dimensions past int64 once overflowed computing the byte count
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "<f4", "shape": [2**70, 2]}]}, b""),
            "too_large",
        ),
        (
            _frames({**GOOD, "arrays": [{"name": "z", "dtype": "<f4", "shape": [True]}]}, b"1234"),
            "bad_array",
        ),
    ],
)
def test_malformed_messages_raise_protocol_errors(frames, code):
    with pytest.raises(ProtocolError) as e:
        deserialize(frames)
    assert e.value.code == code
    assert isinstance(e.value, ValueError)


def test_scan_shape_must_match_pixels(rng):
    m = _scan(rng.normal(size=(4, 4)))
    m.body["pixels"] = [8, 8]
    with pytest.raises(ProtocolError, match="disagrees"):
        check_scan(deserialize(serialize(m)))
    with pytest.raises(ProtocolError, match="2-D"):
        check_scan(deserialize(serialize(_scan(rng.normal(size=(2, 4, 4))))))


@pytest.mark.parametrize(
    "field, value", [("pixels", None), ("pixels", 4), ("pixels", ["4", "4"]), ("size_nm", "3.7")]
)
def test_scan_pixels_and_size_must_have_their_types(field, value, rng):
    m = _scan(rng.normal(size=(4, 4)))
    m.body[field] = value
    with pytest.raises(ProtocolError, match=field) as e:
        check_scan(deserialize(serialize(m)))
    assert e.value.code == "bad_header"


def test_serialize_refuses_nan_in_header_and_unknown_types():
    with pytest.raises(ProtocolError, match="bad_json"):
        serialize(Message("heartbeat", body={"x": float("nan")}))
    with pytest.raises(ProtocolError, match="unknown_type"):
        serialize(Message("nope"))
    with pytest.raises(ProtocolError, match="bad_array"):
        serialize(Message("heartbeat", arrays={"a": np.zeros(2, complex)}))


def _paths(node, prefix=()):
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        yield (*prefix, k)
        if isinstance(v, dict | list):
            yield from _paths(v, (*prefix, k))


def test_every_header_field_set_to_any_json_value_gives_only_protocol_errors(rng):
    """Each field of a scan header (body and array spec included) replaced by odd JSON values,
    or removed: deserializing and checking the scan either succeeds or raises ProtocolError,
    never another exception (those once killed the server's thread)."""
    frames = serialize(_scan(rng.normal(size=(8, 8)).astype(np.float32)))
    header = json.loads(bytes(frames[0]))
    odd = [None, -1, 0, 1e308, "x", "1e+308", [], {}, [1], [8, 8, 8], True, 2**70, [2**70, 2]]
    for path in _paths(header):
        for value in [*odd, "remove"]:
            h = json.loads(json.dumps(header))
            parent = h
            for k in path[:-1]:
                parent = parent[k]
            if value == "remove":
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
            try:
                check_scan(deserialize([json.dumps(h).encode(), *frames[1:]]))
            except ProtocolError:
                pass
