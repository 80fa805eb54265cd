"""A fake Nanonis controller speaking the real TCP framing, backed by the simulated microscope.

Same 40-byte headers and error blocks as the controller; unknown commands get an error
reply; ``Scan.FrameDataGrab`` during a scan returns a partial frame (NaN rows below the lines
scanned); the tip is the simulated microscope's, so pulses and dips change later frames.
For tests and for trying the loop without hardware:

>>> with FakeNanonisServer(seed=0) as fake:  # doctest: +SKIP
...     NanonisClient("127.0.0.1", fake.port).version()
"""

from __future__ import annotations

import socketserver
import struct
import threading

import numpy as np

from instrument_bridge.nanonis import HEADER, Reader, encode_response, parse_header
from instrument_bridge.sim_microscope import SimulatedMicroscope, TipDynamics


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


class FakeNanonisServer:
    def __init__(
        self,
        seed: int = 0,
        *,
        port: int = 0,
        partial_lines: int | None = None,
        silent: tuple[str, ...] = (),
        start_state: str | None = None,
        errors: dict[str, int] | None = None,
        close_after: int | None = None,
    ):
        self.microscope = SimulatedMicroscope(
            seed=seed, dynamics=TipDynamics(start_state=start_state)
        )
        self.partial_lines = partial_lines
        self.silent = set(silent)  # commands it never answers (to test timeouts)
        # Command -> how many times it is answered with an error status before working again.
        self.errors = dict(errors or {})
        self.close_after = close_after  # drop every connection after this many commands
        self.commands: list[str] = []
        self.pulses: list[tuple[float, float]] = []
        self.dips: list[float] = []
        self._scanning = False
        self._last = None
        self._n = 0
        self._shaper = {}
        # Centre x, y, width, height (m), angle (deg): the simulated frame's field until set.
        fov_m = self.microscope.fov_a * self.microscope.size / 128 * 1e-10
        self._frame = (0.0, 0.0, fov_m, fov_m, 0.0)
        self._lock = threading.Lock()
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                f = self.request.makefile("rb")
                while True:
                    h = f.read(HEADER)
                    if len(h) < HEADER:
                        return
                    name, size = parse_header(h)
                    body = f.read(size)
                    with fake._lock:
                        fake.commands.append(name)
                        if fake.close_after is not None and len(fake.commands) > fake.close_after:
                            return  # the connection drops, as when the controller software quits
                        if name in fake.silent:
                            continue
                        if fake.errors.get(name, 0) > 0:
                            fake.errors[name] -= 1
                            reply = encode_response(name, b"", status=2, message="busy (fake)")
                        else:
                            reply = fake._answer(name, body)
                    self.request.sendall(reply)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, name: str, body: bytes) -> bytes:
        r = Reader(body)
        m = self.microscope
        if name == "Util.VersionGet":
            return encode_response(
                name,
                _string("Nanonis SPM Control (fake)")
                + _string("5e")
                + struct.pack(">II", 13520, 13520),
            )
        if name == "Scan.Action":
            action, _direction = r.take("HI")
            self._scanning = action in (0, 3)
            return encode_response(name, b"")
        if name == "Scan.WaitEndOfScan":
            r.take("i")
            self._last = m.scan()
            self._scanning = False
            self._n += 1
            return encode_response(
                name, struct.pack(">I", 0) + _string(f"C:/data/fake_{self._n:05d}.sxm")
            )
        if name == "Scan.FrameDataGrab":
            channel, _fwd = r.take("II")
            if channel != 14:
                # like the controller: the full (empty) return values, then the error block
                empty = _string("") + struct.pack(">iiI", 0, 0, 0)
                return encode_response(
                    name, empty, status=1, message=f"channel {channel} is not recorded"
                )
            if self._scanning and self.partial_lines:
                z = m.scan(lines_done=self.partial_lines).z
            elif self._last is not None:
                z = self._last.z
            else:
                z = np.full((m.size, m.size), np.nan)
            z = z.astype(">f4")
            return encode_response(
                name,
                _string("Z (m)")
                + struct.pack(">ii", *z.shape)
                + z.tobytes()
                + struct.pack(">I", 0),
            )
        if name == "Scan.FrameSet":
            self._frame = tuple(float(v) for v in r.take("fffff"))
            m.move_to_fresh_area()
            return encode_response(name, b"")
        if name == "Scan.FrameGet":
            return encode_response(name, struct.pack(">fffff", *self._frame))
        if name == "Bias.Pulse":
            _wait, width, bias, _hold, _abs = r.take("IffHH")
            self.pulses.append((float(bias), float(width)))
            m.pulse(float(bias), float(width) * 1000)
            return encode_response(name, b"")
        if name == "TipShaper.PropsSet":
            vals = r.take("fIffffffffI")
            self._shaper = {"lift_m": vals[3], "bias_v": vals[2]}
            return encode_response(name, b"")
        if name == "TipShaper.Start":
            r.take("Ii")
            depth = -self._shaper.get("lift_m", 0.0) * 1e9
            self.dips.append(depth)
            m.dip(depth, self._shaper.get("bias_v", 0.02))
            return encode_response(name, b"")
        return encode_response(name, b"", status=1, message=f"unknown command {name}")
