"""The instrument-side client: a DEALER socket, timeouts, retries on a fresh socket.

Imports numpy and pyzmq only (the instrument PC needs no TensorFlow; a test checks it).
A request is resent with the *same* message id after a timeout, on a new socket (a socket
that timed out may hold a half-finished exchange), so a server that vanished and came back
gets the scan again and, if it had already voted on it, answers with the same verdict.
Replies to older requests that arrive late are recognised by their ``parent`` and dropped.

>>> c = BridgeClient("tcp://127.0.0.1:5555", timeout_s=2.0)  # doctest: +SKIP
>>> verdict = c.submit_scan(z, size_nm=3.7)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time

import numpy as np
import zmq

from instrument_bridge.protocol import Message, deserialize, scan_body, serialize

log = logging.getLogger("instrument_bridge.client")


class BridgeTimeout(TimeoutError):
    """The server did not answer after every retry."""


class RemoteError(ValueError):
    """The server answered with an error message (``code`` says which rule was broken)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"server error {code}: {message}")
        self.code = code


class BridgeClient:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        instrument: str = "instrument",
        curve: dict | None = None,
        context: zmq.Context | None = None,
    ):
        """``curve``: ``{"server_public": b, "public": b, "secret": b}`` to use CURVE."""
        self.endpoint = endpoint
        self.timeout_s, self.retries = timeout_s, retries
        self.instrument = instrument
        self.curve = curve
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self.reconnects = 0

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            if self.curve:
                s.curve_serverkey = self.curve["server_public"]
                s.curve_publickey = self.curve["public"]
                s.curve_secretkey = self.curve["secret"]
            s.connect(self.endpoint)
            self._sock = s
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
            self.reconnects += 1

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg: Message, *, timeout_s: float | None = None) -> Message:
        """Send ``msg`` and return the reply whose parent is ``msg.id``.

        Raises :class:`BridgeTimeout` after ``retries`` resends, :class:`RemoteError` when the
        server answers with an error.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        frames = serialize(msg)
        for attempt in range(self.retries + 1):
            sock = self._socket()
            sock.send_multipart(frames, copy=False)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                    break
                reply = deserialize(sock.recv_multipart(copy=False))
                if reply.parent != msg.id:
                    continue  # a late answer to an earlier request
                if reply.type == "error":
                    raise RemoteError(reply.body.get("code", "?"), reply.body.get("message", ""))
                return reply
            log.warning(
                "no reply to %s %s in %.1f s (attempt %d of %d); new socket",
                msg.type,
                msg.id[:8],
                timeout,
                attempt + 1,
                self.retries + 1,
            )
            self._reset()
        raise BridgeTimeout(
            f"{self.endpoint}: no reply to {msg.type} after {self.retries + 1} tries of {timeout} s"
        )

    def submit_scan(self, z: np.ndarray, *, msg_id: str | None = None, **meta) -> Message:
        """Send a scan (raw heights, NaN rows = unscanned) and return the verdict message."""
        z = np.asarray(z)
        meta = {**meta, "pixels": z.shape}
        meta.setdefault("size_nm", 0.0)
        body = scan_body(**meta)
        body.setdefault("instrument", self.instrument)
        msg = Message("scan", body=body, arrays={"z": z})
        if msg_id:
            msg.id = msg_id
        return self.request(msg)

    def heartbeat(self) -> float:
        """Round-trip time to the server in seconds."""
        t = time.perf_counter()
        self.request(Message("heartbeat"))
        return time.perf_counter() - t

    def report(self, type_: str, body: dict, *, parent: str | None = None) -> Message:
        """Send an ``action_result`` / ``error`` record for the server's log (acknowledged)."""
        return self.request(
            Message(type_, body={"instrument": self.instrument, **body}, parent=parent)
        )

    def override(self, manual: bool) -> Message:
        """Hand control to a person (``True``) or back to the policy (``False``)."""
        return self.request(
            Message("override", body={"manual": bool(manual), "instrument": self.instrument})
        )
