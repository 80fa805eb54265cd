"""The bridge server: a family behind a ZeroMQ ROUTER socket, a policy per instrument, a log.

Every message gets exactly one reply whose ``parent`` is the message's id: a scan gets a
verdict (or an error), a heartbeat a heartbeat, an override or an action result an
acknowledgement (heartbeat). A malformed message gets an ``error`` reply and the server keeps
serving. Scans that arrive together are voted in one batch (one forward pass of the fused
family). If more than ``max_queue`` scans are waiting, the newest are voted and the older ones
are answered with an ``overloaded`` error and logged: none is dropped silently. A scan whose id
was already voted (a client retrying after a lost reply) gets the same verdict again, not a
second vote.

The server itself imports no TensorFlow: it takes a ``voter`` callable
``frames uint8 (N, 128, 128) -> (soft, hard, agreement)``; :func:`family_voter` makes one from
a trained family.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zmq

from instrument_bridge.policy import PolicyConfig, TipPolicy
from instrument_bridge.prepare import FrameError, prepare_frame, tile_scan
from instrument_bridge.protocol import (
    Message,
    ProtocolError,
    check_scan,
    deserialize,
    error_message,
    serialize,
)
from instrument_bridge.session_log import SessionLog
from stm_sim.params import CATEGORIES

log = logging.getLogger("instrument_bridge.server")

Voter = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def family_voter(
    family, *, tta: bool = False, undo_class_weights: bool = False, companion=None
) -> Voter:
    """A voter from a :class:`cnn_family.Family` (or the path of one): one fused call per batch.

    ``tta``, ``undo_class_weights`` and ``companion`` (a spectral companion or its path; None:
    the family's own; False: the members alone) as in :meth:`cnn_family.Family.vote`.
    """
    if isinstance(family, str | Path):
        from cnn_family import Family

        family = Family.load(family)
    if isinstance(companion, str | Path):
        from cnn_family.spectral import SpectralCompanion

        companion = SpectralCompanion.load(companion)
    if undo_class_weights:
        family.undo_class_weights(
            np.full((1, len(family.categories), family.k), 0.5)
        )  # fail at start, not at the first scan

    def vote(frames: np.ndarray):
        v = family.vote(frames, tta=tta, undo_class_weights=undo_class_weights, companion=companion)
        return v.soft, v.hard, v.agreement

    return vote


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """CURVE keys: the server's key pair and a folder of the clients' public keys it accepts."""

    public: bytes
    secret: bytes
    clients_dir: str | None = None  # server side: authorised client public keys (*.key)


# Names the log record sets itself; a client's body field of that name is kept as "body_<name>".
_RESERVED = frozenset({"seq", "t", "type", "type_", "parent", "id"})


def _log_fields(body: dict) -> dict:
    return {f"body_{k}" if k in _RESERVED else k: v for k, v in body.items()}


def _internal_error(parts: list, text: str) -> Message:
    """An internal_error reply to one raw request, addressed to its id where it has one (the
    client waits for a reply to that id and would time out on any other)."""
    try:
        parent = deserialize(parts[1:]).id
    except Exception:
        parent = None
    return error_message("internal_error", text, parent=parent)


class BridgeServer:
    """Serve votes on ``endpoint`` until :meth:`stop`. Use :meth:`start` for a thread.

    >>> srv = BridgeServer(voter, endpoint="tcp://127.0.0.1:5555")  # doctest: +SKIP
    >>> srv.start(); ...; srv.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        voter: Voter,
        *,
        endpoint: str = "tcp://127.0.0.1:5555",
        policy: PolicyConfig | None = None,
        log_dir: str | Path | None = None,
        max_queue: int = 16,
        max_batch: int = 64,
        curve: CurveKeys | None = None,
        poll_ms: int = 50,
        dedup: int = 20000,
        tile_nm: float | None = 3.7,
    ):
        self.voter = voter
        # A scan wider than 1.5 tiles is voted tile by tile (the family learned 3.7 nm frames);
        # its verdict is the tiles' mean soft vote and their majority. None: whole scans only.
        self.tile_nm = tile_nm
        self.endpoint = endpoint
        self.policy_config = policy or PolicyConfig()
        self.policies: dict[str, TipPolicy] = {}
        self.log = SessionLog(log_dir) if log_dir else None
        self.max_queue, self.max_batch, self.poll_ms = max_queue, max_batch, poll_ms
        self.curve = curve
        self._replies: OrderedDict[str, list] = OrderedDict()
        self._dedup = dedup
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.bound_endpoint: str | None = None
        self.stats = {"scans": 0, "verdicts": 0, "errors": 0, "overloaded": 0, "repeats": 0}
        self.inference_seconds = 0.0

    # -- life cycle --------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> BridgeServer:
        self._thread = threading.Thread(target=self.serve, name="bridge-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"bridge server did not bind {self.endpoint} in {timeout} s")
        if getattr(self, "_error", None):
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.log is not None:
            self.log.close()

    def serve(self) -> None:
        ctx = zmq.Context()
        auth = None
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            if self.curve is not None:
                from zmq.auth.thread import ThreadAuthenticator

                auth = ThreadAuthenticator(ctx)
                auth.start()
                auth.configure_curve(domain="*", location=self.curve.clients_dir)
                sock.curve_secretkey = self.curve.secret
                sock.curve_publickey = self.curve.public
                sock.curve_server = True
            sock.bind(self.endpoint)
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception as e:  # surfaced by start()
            self._error = e
            self._ready.set()
            sock.close(0)
            ctx.term()
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not poller.poll(self.poll_ms):
                    continue
                batch = []
                while len(batch) < 4 * self.max_batch:
                    try:
                        batch.append(sock.recv_multipart(zmq.NOBLOCK, copy=False))
                    except zmq.Again:
                        break
                try:
                    out = self.handle(batch)
                except Exception as e:  # last resort (a full disk under the log, say)
                    text = f"the server failed on this batch: {type(e).__name__}: {e}"
                    log.exception("bridge server: %s", text)  # the session log may be what failed
                    self.stats["errors"] += len(batch)
                    out = [(bytes(memoryview(p[0])), _internal_error(p, text)) for p in batch]
                for ident, reply in out:
                    sock.send_multipart([ident, *serialize(reply)], copy=False)
        finally:
            sock.close(0)
            if auth is not None:
                auth.stop()
            ctx.term()

    # -- message handling (no sockets: testable directly) ------------------------------------
    def _record(self, type_: str, **fields) -> None:
        if self.log is not None:
            self.log.record(type_, **fields)

    def _policy(self, instrument: str) -> TipPolicy:
        if instrument not in self.policies:
            self.policies[instrument] = TipPolicy(self.policy_config)
        return self.policies[instrument]

    def _remember(self, msg_id: str, reply: Message) -> None:
        self._replies[msg_id] = reply
        while len(self._replies) > self._dedup:
            self._replies.popitem(last=False)

    def handle(self, batch: list[list]) -> list[tuple[bytes, Message]]:
        """Multipart messages (routing id first) -> replies, in the order of the input."""
        replies: list[tuple[bytes, Message] | None] = []
        scans: list[tuple[int, bytes, Message, np.ndarray, np.ndarray]] = []
        for parts in batch:
            ident = bytes(memoryview(parts[0]))
            try:
                msg = deserialize(parts[1:])
            except ProtocolError as e:
                self.stats["errors"] += 1
                self._record("error", code=e.code, message=str(e), where="server")
                replies.append((ident, error_message(e.code, str(e))))
                continue
            try:
                reply = self._dispatch(msg)
            except Exception as e:  # one odd message must not end the server for every client
                text = f"the server could not handle this {msg.type}: {type(e).__name__}: {e}"
                self.stats["errors"] += 1
                self._record("error", code="internal_error", message=text, parent=msg.id)
                reply = error_message("internal_error", text, parent=msg.id)
            if isinstance(reply, Message):
                replies.append((ident, reply))
            else:  # a scan's frame and tiles, voted below with the batch's other scans
                scans.append((len(replies), ident, msg, *reply))
                replies.append(None)
        if scans:
            for pos, ident, reply in self._vote(scans):
                replies[pos] = (ident, reply)
        return [r for r in replies if r is not None]

    def _dispatch(self, msg: Message) -> Message | tuple[np.ndarray, np.ndarray | None]:
        """The reply to one deserialized message, or a scan's (frame, tiles) to be voted."""
        if msg.id in self._replies:
            self.stats["repeats"] += 1
            return self._replies[msg.id]
        if msg.type == "scan":
            try:
                z = check_scan(msg)
                return prepare_frame(z), self._tiles(z, msg.body["size_nm"])
            except (ProtocolError, FrameError) as e:
                code = getattr(e, "code", "bad_frame")
                self.stats["errors"] += 1
                self._record("error", code=code, message=str(e), parent=msg.id)
                return error_message(code, str(e), parent=msg.id)
        if msg.type == "override":
            instrument = str(msg.body.get("instrument", "default"))
            self._policy(instrument).set_manual(bool(msg.body["manual"]))
            self._record("override", instrument=instrument, manual=bool(msg.body["manual"]))
            return msg.reply("heartbeat", {"ack": "override"})
        if msg.type in ("action_result", "error", "action_request"):
            self._record(msg.type, parent=msg.parent, id=msg.id, **_log_fields(msg.body))
            reply = msg.reply("heartbeat", {"ack": msg.type})
            self._remember(msg.id, reply)
            return reply
        if msg.type == "heartbeat":
            return msg.reply("heartbeat", {"server_time": time.time()})
        return error_message("unexpected", f"the server does not take {msg.type!r}", msg.id)

    def _tiles(self, z: np.ndarray, size_nm) -> np.ndarray | None:
        """The scan's tiles as frames, or None where it is voted whole."""
        if not self.tile_nm or not isinstance(size_nm, int | float) or size_nm <= 0:
            return None
        if size_nm < 1.5 * self.tile_nm:
            return None
        try:
            tiles = tile_scan(z, float(size_nm), tile_nm=self.tile_nm)
        except FrameError:  # too coarse to tile: the whole scan, as before tiling existed
            return None
        return np.stack([prepare_frame(t) for _, t in tiles])

    def _vote(self, scans):
        out = []
        # Newest first: the operator wants the current tip state, so under overload the
        # oldest waiting scans are answered "overloaded" (and logged) instead of voted late.
        if len(scans) > self.max_queue:
            drop, scans = scans[: -self.max_queue], scans[-self.max_queue :]
            for pos, ident, msg, _, _ in drop:
                self.stats["overloaded"] += 1
                text = f"{len(drop) + len(scans)} scans waiting, queue holds {self.max_queue}"
                self._record("error", code="overloaded", message=text, parent=msg.id)
                out.append((pos, ident, error_message("overloaded", text, parent=msg.id)))
        for start in range(0, len(scans), self.max_batch):
            chunk = scans[start : start + self.max_batch]
            # A scan's own frame, or its tiles: one voter call for all of them.
            views = [s[4] if s[4] is not None else s[3][None] for s in chunk]
            t0 = time.perf_counter()
            try:
                soft, hard, agree = _per_scan(self.voter(np.concatenate(views)), views)
                if not (np.isfinite(soft).all() and np.isfinite(agree).all()):
                    raise ValueError("its votes hold NaN or inf")
            except Exception as e:  # any failure of the family must not end the server
                text = f"the family could not vote: {type(e).__name__}: {e}"
                for pos, ident, msg, _, _ in chunk:
                    self.stats["errors"] += 1
                    self._record("error", code="voter_failed", message=text, parent=msg.id)
                    out.append((pos, ident, error_message("voter_failed", text, parent=msg.id)))
                continue
            dt = time.perf_counter() - t0
            self.inference_seconds += dt
            for j, (pos, ident, msg, frame, _) in enumerate(chunk):
                instrument = str(msg.body.get("instrument", "default"))
                v = {
                    "soft": [round(float(p), 5) for p in soft[j]],
                    "hard": [int(h) for h in hard[j]],
                    "agreement": [round(float(a), 4) for a in agree[j]],
                }
                decision = self._policy(instrument).decide(v)
                body = {
                    "categories": list(CATEGORIES),
                    **v,
                    "decision": decision.to_dict(),
                    "instrument": instrument,
                    "inference_ms": round(1e3 * dt / len(chunk), 3),
                }
                if len(views[j]) > 1:
                    body["tiles"] = len(views[j])
                reply = msg.reply("verdict", body)
                self.stats["scans"] += 1
                self.stats["verdicts"] += 1
                if self.log is not None:
                    row = self.log.add_frame(frame)
                    # The tiles voted too, so that a replay votes what this verdict saw.
                    tile_rows = (
                        {"tile_frames": [self.log.add_frame(t) for t in views[j]]}
                        if len(views[j]) > 1
                        else {}
                    )
                    self.log.record(
                        "verdict",
                        id=reply.id,
                        parent=msg.id,
                        scan={k: v for k, v in msg.body.items() if k != "truth"},
                        frame=row,
                        **tile_rows,
                        truth=msg.body.get("truth"),
                        **{
                            k: body[k]
                            for k in ("categories", "soft", "hard", "agreement", "tiles")
                            if k in body
                        },
                        decision=body["decision"],
                    )
                self._remember(msg.id, reply)
                out.append((pos, ident, reply))
        return out


def _per_scan(votes, views: list[np.ndarray]):
    """Per-frame (soft, hard, agreement) -> one per scan: the mean soft vote of its frames,
    a strict majority of their hard votes (a tie is negative: no action on a split) and the
    mean agreement."""
    soft, hard, agree = (np.asarray(a) for a in votes)
    if all(len(v) == 1 for v in views):
        return soft, hard, agree
    ends = np.cumsum([len(v) for v in views])
    starts = ends - np.array([len(v) for v in views])
    return (
        np.stack([soft[a:b].mean(0) for a, b in zip(starts, ends, strict=True)]),
        np.stack(
            [(hard[a:b].mean(0) > 0.5).astype(int) for a, b in zip(starts, ends, strict=True)]
        ),
        np.stack([agree[a:b].mean(0) for a, b in zip(starts, ends, strict=True)]),
    )
