"""The small interface every instrument adapter implements, and the one safety gate.

An adapter (the simulated microscope, the Nanonis TCP client, a folder watcher) only has to
scan, report where it is, and carry out conditioning actions. Nothing else in the project talks
to hardware, and nothing talks to an adapter's actions except :class:`SafeInstrument`, which
enforces the hard limits (maximum |bias|, pulse width, dip depth, minimum interval, actions per
hour) and the dry-run mode. A policy can ask for anything; the gate decides what reaches the tip.

>>> from instrument_bridge.instrument import Action, SafetyLimits
>>> SafetyLimits().check(Action("pulse", bias_v=4.0, width_ms=200), now=0.0, history=[])
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

import numpy as np

ACTION_KINDS = ("pulse", "dip")


class SafetyViolation(ValueError):
    """An action outside the hard limits; it was not sent to the instrument."""


class InstrumentTimeout(TimeoutError):
    """The instrument did not answer within its timeout."""


class InstrumentError(RuntimeError):
    """The instrument answered a command with an error: it is still connected, but refused or
    failed that command (the live loop logs it and goes on with the next scan)."""


@dataclasses.dataclass(frozen=True)
class Action:
    """A tip-conditioning request.

    ``pulse``: a bias pulse of ``bias_v`` volts for ``width_ms`` milliseconds.
    ``dip``: a controlled dip (tip shaper) of ``depth_nm`` nanometres at ``bias_v`` volts.
    """

    kind: str
    bias_v: float = 0.0
    width_ms: float = 0.0
    depth_nm: float = 0.0

    def __post_init__(self):
        if self.kind not in ACTION_KINDS:
            raise ValueError(f"action kind: expected one of {ACTION_KINDS}, got {self.kind!r}")
        for f in ("bias_v", "width_ms", "depth_nm"):
            v = getattr(self, f)
            if not np.isfinite(v):
                raise ValueError(f"action {f}: expected a finite number, got {v}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Action:
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - known
        if extra:
            raise ValueError(f"action: unexpected fields {sorted(extra)}; expected {sorted(known)}")
        return cls(**d)

    def describe(self) -> str:
        if self.kind == "pulse":
            return f"pulse {self.bias_v:+.2f} V, {self.width_ms:.0f} ms"
        return f"dip {self.depth_nm:.2f} nm at {self.bias_v * 1e3:.0f} mV"


@dataclasses.dataclass(frozen=True)
class SafetyLimits:
    """Hard limits. Defaults follow the actions used in practice (DESIGN §5): pulses up to
    ±8 V / 200 ms, dips up to 5 nm; at most one action per 10 s and 60 per hour."""

    max_abs_bias_v: float = 10.0
    max_pulse_ms: float = 500.0
    max_dip_nm: float = 5.0
    max_dip_bias_v: float = 0.1
    min_interval_s: float = 10.0
    max_actions_per_hour: int = 60

    def check(self, action: Action, *, now: float, history: list[float]) -> None:
        """Raise :class:`SafetyViolation` unless ``action`` may be sent at time ``now``.

        ``history`` holds the times of the actions sent before.
        """
        if action.kind == "pulse":
            if abs(action.bias_v) > self.max_abs_bias_v:
                raise SafetyViolation(
                    f"pulse bias: expected |V| <= {self.max_abs_bias_v}, got {action.bias_v}"
                )
            if not 0 < action.width_ms <= self.max_pulse_ms:
                raise SafetyViolation(
                    f"pulse width: expected 0 < ms <= {self.max_pulse_ms}, got {action.width_ms}"
                )
        else:
            if not 0 < action.depth_nm <= self.max_dip_nm:
                raise SafetyViolation(
                    f"dip depth: expected 0 < nm <= {self.max_dip_nm}, got {action.depth_nm}"
                )
            if abs(action.bias_v) > self.max_dip_bias_v:
                raise SafetyViolation(
                    f"dip bias: expected |V| <= {self.max_dip_bias_v}, got {action.bias_v}"
                )
        if history and now - history[-1] < self.min_interval_s:
            raise SafetyViolation(
                f"rate: expected at least {self.min_interval_s} s between actions, "
                f"got {now - history[-1]:.1f} s"
            )
        recent = sum(1 for t in history if now - t < 3600.0)
        if recent >= self.max_actions_per_hour:
            raise SafetyViolation(
                f"rate: expected at most {self.max_actions_per_hour} actions per hour, "
                f"{recent} already sent in the last hour"
            )


@dataclasses.dataclass
class ScanResult:
    """One scan as an adapter returns it: raw heights (NaN rows = not scanned) and metadata."""

    z: np.ndarray
    size_nm: float
    bias_v: float = 0.0
    setpoint_a: float = 0.0
    direction: str = "down"
    lines_done: int | None = None
    source: str = ""
    position_nm: tuple[float, float] = (0.0, 0.0)
    truth: dict | None = None  # simulated microscope only: the hidden tip state and labels

    def metadata(self) -> dict:
        return {
            "size_nm": float(self.size_nm),
            "pixels": list(self.z.shape),
            "bias_v": float(self.bias_v),
            "setpoint_a": float(self.setpoint_a),
            "direction": self.direction,
            "lines_done": self.lines_done,
            "source": self.source,
            "position_nm": [float(p) for p in self.position_nm],
        }


@dataclasses.dataclass
class ActionResult:
    action: Action
    sent: bool
    dry_run: bool = False
    message: str = ""

    def to_dict(self) -> dict:
        return {
            "action": self.action.to_dict(),
            "sent": self.sent,
            "dry_run": self.dry_run,
            "message": self.message,
        }


@runtime_checkable
class Instrument(Protocol):
    """What an adapter provides. Every call has a timeout (seconds).

    A call raises :class:`InstrumentTimeout` when the instrument does not answer in time,
    :class:`InstrumentError` when it answers with an error, and ``ConnectionError`` when the
    connection is gone; the live loop survives the first two and ends cleanly on the third.
    """

    def scan(self, *, timeout: float = 300.0) -> ScanResult: ...

    def scan_lines(self, *, timeout: float = 300.0) -> Iterator[np.ndarray]: ...

    def pulse(self, bias_v: float, width_ms: float, *, timeout: float = 30.0) -> str: ...

    def dip(self, depth_nm: float, bias_v: float, *, timeout: float = 30.0) -> str: ...

    def move_to_fresh_area(self, *, timeout: float = 30.0) -> tuple[float, float]: ...


class SafeInstrument:
    """The only path from a decision to the tip: limits, rate, dry run, and a record of each.

    ``clock`` returns seconds (the simulated microscope passes its own clock, so rate limits
    are measured in instrument time).

    >>> from instrument_bridge.sim_microscope import SimulatedMicroscope
    >>> safe = SafeInstrument(SimulatedMicroscope(seed=0), dry_run=True)
    >>> safe.execute(Action("pulse", bias_v=4.0, width_ms=200)).sent
    False
    """

    def __init__(
        self,
        instrument: Instrument,
        *,
        limits: SafetyLimits | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] | None = None,
        on_record: Callable[[dict], None] | None = None,
    ):
        self._instrument = instrument
        self.limits = limits or SafetyLimits()
        # An adapter that cannot move the tip (a folder watcher says so with ``can_act =
        # False``) runs as a dry run whatever was asked: no log may call its actions sent.
        self.dry_run = dry_run or not getattr(instrument, "can_act", True)
        self._clock = clock or getattr(instrument, "clock", None) or time.monotonic
        self._history: list[float] = []
        self._on_record = on_record

    @property
    def actions_sent(self) -> int:
        return len(self._history)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Scans the adapter passed over, as (source, reason): a folder watcher's unreadable or
        mostly empty files; empty for adapters that skip nothing."""
        return list(getattr(self._instrument, "skipped", ()))

    def scan(self, **kw) -> ScanResult:
        return self._instrument.scan(**kw)

    def scan_lines(self, **kw) -> Iterator[np.ndarray]:
        return self._instrument.scan_lines(**kw)

    def move_to_fresh_area(self, **kw) -> tuple[float, float]:
        """Move the scan frame to a fresh area; a dry run leaves the frame where it is (NaNs)."""
        # Moving the frame moves the tip, and on a real controller resets the operator's frame:
        # a dry run must leave the instrument as it found it.
        if self.dry_run:
            return (float("nan"), float("nan"))
        return self._instrument.move_to_fresh_area(**kw)

    def execute(self, action: Action) -> ActionResult:
        """Check ``action`` against the limits, then send it (or log it, in dry-run mode).

        A refused action comes back with ``sent=False`` and the reason; it never raises, so a
        misbehaving policy cannot stop the loop, only be refused.
        """
        now = self._clock()
        try:
            self.limits.check(action, now=now, history=self._history)
        except SafetyViolation as e:
            res = ActionResult(action, sent=False, dry_run=self.dry_run, message=f"refused: {e}")
        else:
            if self.dry_run:
                res = ActionResult(action, sent=False, dry_run=True, message="dry run: not sent")
                self._history.append(now)  # rate limits apply to what would have been sent
            else:
                # Counted before it is sent: a request that times out may still have reached
                # the tip, so it must count against the rate limits all the same.
                self._history.append(now)
                if action.kind == "pulse":
                    msg = self._instrument.pulse(action.bias_v, action.width_ms)
                else:
                    msg = self._instrument.dip(action.depth_nm, action.bias_v)
                res = ActionResult(action, sent=True, message=msg)
        if self._on_record is not None:
            self._on_record({"type": "action_result", "t": now, **res.to_dict()})
        return res
