"""A client for the Nanonis TCP programming interface, and an adapter on top of it.

Framing (Nanonis "TCP Programming Interface" document; DESIGN §5): the controller is the TCP
server (ports 6501-6504), everything is big-endian. A request is a 40-byte header (command
name, 32 bytes NUL-padded; body size int32; send-response flag uint16 = 1; 2 unused bytes)
and a body of arguments. A response is a 40-byte header (name; body size int32; 4 unused
bytes) and a body: the return values, then an error block (status uint32, message size
int32, message). No maintained Python package covers this with exact-length reads and
per-command timeouts (``nanonisTCP`` reads with a single ``recv``), so the few commands the
loop needs are written here, table-driven.

>>> encode_request("Util.VersionGet", b"")[:15]
b'Util.VersionGet'
"""

from __future__ import annotations

import socket
import struct

import numpy as np

from instrument_bridge.instrument import InstrumentError, InstrumentTimeout, ScanResult

HEADER = 40
NAME = 32


class NanonisError(InstrumentError):
    """The controller answered with a non-zero error status (message included)."""


class NanonisProtocolError(InstrumentError, ValueError):
    """A response that does not follow the framing (wrong name, short body...)."""


def encode_request(name: str, body: bytes, *, send_response: bool = True) -> bytes:
    raw = name.encode("ascii")
    if len(raw) > NAME:
        raise ValueError(f"command name: expected <= {NAME} ASCII bytes, got {len(raw)}")
    return raw.ljust(NAME, b"\0") + struct.pack(">iHH", len(body), int(send_response), 0) + body


def encode_response(name: str, values: bytes, *, status: int = 0, message: str = "") -> bytes:
    """What the controller sends (the fake server in the tests uses this)."""
    msg = message.encode()
    body = values + struct.pack(">Ii", status, len(msg)) + msg
    return name.encode("ascii").ljust(NAME, b"\0") + struct.pack(">i", len(body)) + b"\0" * 4 + body


def parse_header(h: bytes) -> tuple[str, int]:
    if len(h) != HEADER:
        raise NanonisProtocolError(f"header: expected {HEADER} bytes, got {len(h)}")
    name = h[:NAME].rstrip(b"\0").decode("ascii", "replace")
    (size,) = struct.unpack(">i", h[NAME : NAME + 4])
    if size < 0 or size > 512 * 1024 * 1024:
        raise NanonisProtocolError(f"body size: expected 0..512 MiB, got {size}")
    return name, size


class Reader:
    """Reads big-endian values off a response body, in order."""

    def __init__(self, body: bytes):
        self.b, self.i = body, 0

    def take(self, fmt: str):
        n = struct.calcsize(">" + fmt)
        if self.i + n > len(self.b):
            raise NanonisProtocolError(
                f"body: expected {n} more bytes at {self.i}, body has {len(self.b)}"
            )
        v = struct.unpack_from(">" + fmt, self.b, self.i)
        self.i += n
        return v if len(v) > 1 else v[0]

    def string(self) -> str:
        n = self.take("i")
        s = self.b[self.i : self.i + n]
        self.i += n
        return s.decode("utf-8", "replace")

    def floats(self, n: int) -> np.ndarray:
        buf = self.b[self.i : self.i + 4 * n]
        if len(buf) != 4 * n:
            raise NanonisProtocolError(f"body: expected {n} float32, got {len(buf) // 4}")
        self.i += 4 * n
        return np.frombuffer(buf, ">f4").astype(np.float32)

    def error(self) -> None:
        status, size = self.take("Ii")
        msg = self.b[self.i : self.i + size].decode("utf-8", "replace")
        self.i += size
        if status:
            raise NanonisError(f"controller error {status}: {msg}")


class NanonisClient:
    """One TCP connection to the controller; each command has its own timeout (seconds).

    After a timeout the connection is dropped (a late reply would desynchronise the stream)
    and the next command reconnects.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6501, *, timeout: float = 10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock: socket.socket | None = None

    def _connect(self, timeout: float) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=timeout)
            except TimeoutError as e:
                raise InstrumentTimeout(
                    f"Nanonis {self.host}:{self.port}: connect timed out"
                ) from e
            except OSError as e:  # refused, unreachable, unknown host
                raise ConnectionError(
                    f"Nanonis {self.host}:{self.port}: cannot connect ({e.strerror or e}); "
                    "expected the controller's TCP interface listening on this host and port"
                ) from e
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _recv_exact(self, n: int) -> bytes:
        chunks, left = [], n
        while left:
            c = self._sock.recv(min(left, 1 << 20))
            if not c:
                raise ConnectionError(f"Nanonis closed the connection ({n - left} of {n} bytes)")
            chunks.append(c)
            left -= len(c)
        return b"".join(chunks)

    def call(self, name: str, body: bytes = b"", *, timeout: float | None = None) -> Reader:
        """Send one command and return a :class:`Reader` over its return values."""
        t = self.timeout if timeout is None else timeout
        sock = self._connect(t)
        sock.settimeout(t)
        try:
            sock.sendall(encode_request(name, body))
            got, size = parse_header(self._recv_exact(HEADER))
            body_in = self._recv_exact(size)
        except TimeoutError as e:
            self.close()
            raise InstrumentTimeout(f"Nanonis {name}: no answer in {t} s") from e
        except (ConnectionError, OSError, NanonisProtocolError):
            self.close()  # the stream's framing is lost: the next command starts a fresh one
            raise
        if got != name:
            self.close()
            raise NanonisProtocolError(f"response: expected {name!r}, got {got!r}")
        return Reader(body_in)

    # -- the commands the loop uses ----------------------------------------------------------
    def version(self) -> dict:
        r = self.call("Util.VersionGet")
        out = {
            "product": r.string(),
            "version": r.string(),
            "host_release": r.take("I"),
            "server_release": r.take("I"),
        }
        r.error()
        return out

    def scan_action(self, action: int, direction: int = 0) -> None:
        """``action`` 0 start, 1 stop, 2 pause, 3 resume; ``direction`` 0 down, 1 up."""
        self.call("Scan.Action", struct.pack(">HI", action, direction)).error()

    def wait_end_of_scan(self, timeout_ms: int) -> tuple[bool, str]:
        r = self.call(
            "Scan.WaitEndOfScan",
            struct.pack(">i", timeout_ms),
            timeout=timeout_ms / 1000 + self.timeout,
        )
        timed_out = bool(r.take("I"))
        path = r.string()
        r.error()
        return timed_out, path

    def frame_data_grab(
        self, channel: int = 14, forward: bool = True
    ) -> tuple[str, np.ndarray, bool]:
        r = self.call("Scan.FrameDataGrab", struct.pack(">II", channel, int(forward)))
        name = r.string()
        rows, cols = r.take("ii")
        data = r.floats(rows * cols).reshape(rows, cols)
        up = bool(r.take("I"))
        r.error()
        return name, data, up

    def frame_get(self) -> tuple[float, float, float, float, float]:
        """The scan frame: centre x, centre y, width, height (m) and angle (degrees)."""
        r = self.call("Scan.FrameGet")
        vals = r.take("fffff")
        r.error()
        return tuple(float(v) for v in vals)

    def frame_set(
        self, x_m: float, y_m: float, w_m: float, h_m: float, angle_deg: float = 0.0
    ) -> None:
        self.call("Scan.FrameSet", struct.pack(">fffff", x_m, y_m, w_m, h_m, angle_deg)).error()

    def bias_pulse(self, bias_v: float, width_s: float, *, wait: bool = True) -> None:
        # z-hold 1 = hold the Z controller during the pulse; 2 = absolute bias
        self.call("Bias.Pulse", struct.pack(">IffHH", int(wait), width_s, bias_v, 1, 2)).error()

    def tip_shaper_props_set(
        self, *, lift_m: float, bias_v: float, lift_time_s: float = 0.1
    ) -> None:
        """A controlled dip: lower the tip by ``-lift_m`` (negative = into the surface)."""
        body = struct.pack(
            ">fIffffffffI",
            0.05,  # switch-off delay (s)
            1,  # change bias: yes
            bias_v,
            lift_m,  # tip lift (m), negative dips in
            lift_time_s,  # lift time 1 (s)
            bias_v,  # bias during lift (V)
            0.05,  # bias settling time (s)
            abs(lift_m) + 1e-9,  # lift height back up (m)
            lift_time_s,  # lift time 2 (s)
            0.1,  # end wait (s)
            1,  # restore feedback: yes
        )
        self.call("TipShaper.PropsSet", body).error()

    def tip_shaper_start(self, timeout_ms: int = 20000) -> None:
        self.call(
            "TipShaper.Start",
            struct.pack(">Ii", 1, timeout_ms),
            timeout=timeout_ms / 1000 + self.timeout,
        ).error()


class NanonisInstrument:
    """The :class:`~instrument_bridge.instrument.Instrument` interface over a Nanonis controller.

    Frames are read from channel ``channel`` (14 = Z on a default set-up), each with the
    controller's frame width (``Scan.FrameGet``); a fresh area is a ``size_nm`` frame moved by
    ``step_nm`` along a raster that starts where the operator's frame was (its centre and angle
    when the first move is asked for).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6501,
        *,
        channel: int = 14,
        size_nm: float = 3.7,
        step_nm: float = 50.0,
        timeout: float = 10.0,
    ):
        self.client = NanonisClient(host, port, timeout=timeout)
        self.channel, self.size_nm, self.step_nm = channel, size_nm, step_nm
        self._area = 0
        self._origin: tuple[float, float, float] | None = None  # x, y (m), angle (deg)

    def scan(self, *, timeout: float = 300.0) -> ScanResult:
        self.client.scan_action(0, 0)
        timed_out, path = self.client.wait_end_of_scan(int(timeout * 1000))
        if timed_out:
            raise InstrumentTimeout(f"Nanonis: scan not finished in {timeout} s")
        _name, z, _ = self.client.frame_data_grab(self.channel, True)
        done = int((~np.isnan(z).all(axis=1)).sum())
        # The frame as the controller has it (an operator may have changed it), so that the
        # bridge knows the field: wider scans are voted in tiles of the family's 3.7 nm.
        width_nm = self.client.frame_get()[2] * 1e9
        return ScanResult(
            z=z.astype(np.float64),
            size_nm=width_nm if width_nm > 0 else self.size_nm,
            direction="down",
            lines_done=None if done == len(z) else done,
            source=path,
        )

    def scan_lines(self, *, timeout: float = 300.0):
        yield from self.scan(timeout=timeout).z

    def pulse(self, bias_v: float, width_ms: float, *, timeout: float = 30.0) -> str:
        self.client.bias_pulse(bias_v, width_ms / 1000.0)
        return f"Bias.Pulse {bias_v:+.2f} V {width_ms:.0f} ms"

    def dip(self, depth_nm: float, bias_v: float, *, timeout: float = 30.0) -> str:
        self.client.tip_shaper_props_set(lift_m=-depth_nm * 1e-9, bias_v=bias_v)
        self.client.tip_shaper_start(int(timeout * 1000))
        return f"TipShaper dip {depth_nm:.2f} nm"

    def move_to_fresh_area(self, *, timeout: float = 30.0) -> tuple[float, float]:
        if self._origin is None:
            # Around the area the operator chose, not the piezo's origin: the first move goes
            # step_nm from their frame, which may sit hundreds of nm from (0, 0).
            x0, y0, _w, _h, angle = self.client.frame_get()
            self._origin = (x0, y0, angle)
        self._area += 1
        k = self._area
        x0, y0, angle = self._origin
        x = x0 * 1e9 + (k % 10) * self.step_nm
        y = y0 * 1e9 + (k // 10) * self.step_nm
        s = self.size_nm * 1e-9
        self.client.frame_set(x * 1e-9, y * 1e-9, s, s, angle)
        return (x, y)
