"""The Nanonis TCP client against the fake controller (real framing, no hardware)."""

import socket
import struct

import numpy as np
import pytest

from instrument_bridge.instrument import InstrumentTimeout, SafeInstrument
from instrument_bridge.nanonis import (
    NanonisClient,
    NanonisError,
    NanonisInstrument,
    encode_request,
    encode_response,
    parse_header,
)
from instrument_bridge.nanonis_fake import FakeNanonisServer


def test_request_framing_is_the_vendor_layout():
    raw = encode_request("Bias.Pulse", b"\x01\x02")
    assert len(raw) == 42
    assert raw[:10] == b"Bias.Pulse" and raw[10:32] == b"\0" * 22
    assert struct.unpack(">iHH", raw[32:40]) == (2, 1, 0)
    resp = encode_response("Bias.Pulse", b"", status=3, message="nope")
    assert parse_header(resp[:40]) == ("Bias.Pulse", 12)
    assert resp[40:] == struct.pack(">Ii", 3, 4) + b"nope"


def test_version_scan_and_unknown_command():
    with FakeNanonisServer(seed=0) as fake:
        c = NanonisClient("127.0.0.1", fake.port, timeout=5)
        assert c.version()["host_release"] == 13520
        c.scan_action(0, 0)
        timed_out, path = c.wait_end_of_scan(1000)
        assert not timed_out and path.endswith(".sxm")
        name, z, _ = c.frame_data_grab(14, True)
        assert name == "Z (m)" and z.shape == (128, 128) and z.dtype == np.float32
        with pytest.raises(NanonisError, match="unknown command"):
            c.call("Scan.Teleport").error()
        with pytest.raises(NanonisError, match="channel 3"):
            c.frame_data_grab(3, True)
        assert c.version()["product"].startswith("Nanonis")  # the connection still works
        c.close()


def test_scans_report_the_controllers_frame_width():
    with FakeNanonisServer(seed=0) as fake:
        c = NanonisClient("127.0.0.1", fake.port, timeout=5)
        assert c.frame_get()[2] == pytest.approx(3.7e-9)  # the simulated field until set
        c.frame_set(1e-8, 2e-8, 2e-8, 2e-8, 15.0)
        assert c.frame_get() == pytest.approx((1e-8, 2e-8, 2e-8, 2e-8, 15.0))
        c.close()
        inst = NanonisInstrument("127.0.0.1", fake.port, timeout=5)
        assert inst.scan(timeout=5).size_nm == pytest.approx(20.0)  # as an operator left it
        inst.move_to_fresh_area()  # the adapter's own frames: 3.7 nm
        assert inst.scan(timeout=5).size_nm == pytest.approx(3.7)
        # ... on a raster from the operator's frame, its angle kept: 50 nm steps from (10, 20).
        assert inst.client.frame_get() == pytest.approx((6e-8, 2e-8, 3.7e-9, 3.7e-9, 15.0))
        assert inst.move_to_fresh_area() == pytest.approx((110.0, 20.0))


def test_partial_frame_has_nan_lines():
    with FakeNanonisServer(seed=1, partial_lines=30) as fake:
        c = NanonisClient("127.0.0.1", fake.port, timeout=5)
        c.scan_action(0, 0)
        _, z, _ = c.frame_data_grab(14, True)
        assert np.isnan(z[30:]).all() and np.isfinite(z[:30]).all()
        c.close()


def test_silent_controller_times_out_and_the_client_reconnects():
    with FakeNanonisServer(seed=2, silent=("Scan.WaitEndOfScan",)) as fake:
        c = NanonisClient("127.0.0.1", fake.port, timeout=0.3)
        c.scan_action(0, 0)
        with pytest.raises(InstrumentTimeout):
            c.wait_end_of_scan(100)
        assert c.version()["version"] == "5e"  # a fresh connection, in step again
        c.close()


def test_adapter_drives_the_tip_through_the_safety_gate():
    with FakeNanonisServer(seed=3, start_state="blunt") as fake:
        inst = NanonisInstrument("127.0.0.1", fake.port, timeout=5)
        safe = SafeInstrument(inst)
        s = safe.scan()
        assert s.z.shape == (128, 128) and s.source.endswith(".sxm")
        from instrument_bridge.instrument import Action

        assert safe.execute(Action("pulse", bias_v=4.0, width_ms=200)).sent
        assert fake.pulses == [(4.0, pytest.approx(0.2))]
        refused = safe.execute(Action("dip", depth_nm=1.0, bias_v=0.02))  # too soon after
        assert not refused.sent and "rate" in refused.message
        assert fake.dips == []
        inst.move_to_fresh_area()
        assert "Scan.FrameSet" in fake.commands
        inst.dip(1.5, 0.02)
        assert fake.dips == [pytest.approx(1.5)]
        inst.client.close()


def test_short_reads_are_completed(monkeypatch):
    """The client loops until it has every byte, however the stream is cut."""
    a, b = socket.socketpair()
    resp = encode_response(
        "Util.VersionGet",
        struct.pack(">i", 1) + b"x" + struct.pack(">i", 1) + b"y" + struct.pack(">II", 1, 2),
    )
    c = NanonisClient()
    c._sock = a
    for i in range(0, len(resp), 7):
        b.sendall(resp[i : i + 7])
    a.settimeout(2)
    assert c._recv_exact(40)[:15] == b"Util.VersionGet"
    a.close()
    b.close()


def test_a_refused_connection_names_the_controller_and_what_was_expected():
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        client = NanonisClient("127.0.0.1", port, timeout=2.0)
        with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}: cannot connect"):
            client.call("Bias.Get")
