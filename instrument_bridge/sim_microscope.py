"""A simulated STM with a hidden tip that drifts, degrades, changes and responds to conditioning.

It renders every scan with :mod:`stm_sim` from the *current* hidden tip, so a policy can be
measured against it: how many scans and actions until the tip is good again, and how often it
acted while the tip was already good. Everything is drawn from one seeded generator, so a run
is reproducible action for action.

Model (per scan; constants in :class:`TipDynamics`):

* **Drift**: the apex width ``sigma`` takes a log-normal step and grows by ``degrade_per_scan``
  (tips blunt slowly while scanning).
* **Sudden change**: with ``p_sudden_change`` the tip jumps to another state in the middle of a
  frame (a "Tip change" frame); the new state is drawn from ``change_states`` (mostly worse).
* **Spontaneous crash**: with ``p_crash`` the frame shows a crash and the tip becomes blunt
  or multiple with ``crash_bad_p``.
* **Bias pulse** (V, ms) of strength ``s = min(|V|/8, 1) * sqrt(min(ms/200, 1))``: the apex is
  reshaped with probability ``0.15 + 0.6 s``; a reshaped tip draws a new state from
  ``reshape_states`` (bigger pulses shift weight to "blunt"); with ``0.3 s`` a small patch of
  debris is left around the position.
* **Controlled dip** (nm) of strength ``s = min(depth/5, 1)``: reshaped with ``0.3 + 0.6 s``,
  a better draw than a pulse (dips pick up material that often makes a sharp apex), but it
  leaves a damaged area of radius ``20 nm * depth`` and blunts the tip with ``0.1 + 0.2 s``.
* Scanning over a damaged area gives debris-covered, noisy frames (labelled Bad/blurry).

A *good tip* (``truth["good"]``) resolves individual atoms or dimers with a single apex.

>>> m = SimulatedMicroscope(seed=0)
>>> s = m.scan()
>>> s.z.shape, sorted(s.truth)
((128, 128), ['good', 'labels', 'sigma', 'state'])
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import numpy as np

from instrument_bridge.instrument import InstrumentTimeout, ScanResult
from stm_sim import (
    TIP_STATES,
    TipChange,
    labels_from_params,
    sample_frame_params,
    sample_rotation,
    sample_tip,
)
from stm_sim.params import (
    SIGMA_ATOMS,
    SIGMA_DIMERS,
    SIGMA_ROWS,
    TipParams,
    _bad_tip,
    _lattice_class,
)
from stm_sim.render import render_height

STATES = tuple(TIP_STATES)  # atoms, dimers, rows, blunt


@dataclasses.dataclass(frozen=True)
class TipDynamics:
    """The constants of the tip model (see the module docstring)."""

    drift_sigma: float = 0.03
    degrade_per_scan: float = 0.01  # Å of apex width per scan
    p_sudden_change: float = 0.03
    p_crash: float = 0.005
    crash_bad_p: float = 0.7
    change_states: tuple[float, ...] = (0.05, 0.15, 0.35, 0.45)
    reshape_states: tuple[float, ...] = (0.10, 0.30, 0.30, 0.30)
    dip_states: tuple[float, ...] = (0.15, 0.35, 0.25, 0.25)
    pulse_debris_nm: float = 5.0
    dip_damage_nm_per_nm: float = 20.0
    start_state: str | None = None  # None: drawn from reshape_states


def tip_is_good(tip: TipParams) -> bool:
    """Ground truth of the simulator: atoms or dimers resolved, one dominant apex."""
    atoms, dimers, _ = _lattice_class(tip)
    return bool((atoms or dimers) and not _bad_tip(tip) and tip.second_apex < 0.15)


def _state_of(tip: TipParams) -> str:
    # The same apex-width thresholds as the label rules in stm_sim.params.
    for name, top in (("atoms", SIGMA_ATOMS), ("dimers", SIGMA_DIMERS), ("rows", SIGMA_ROWS)):
        if tip.sigma <= top:
            return name
    return "blunt"


class SimulatedMicroscope:
    """The simulated instrument (implements :class:`instrument_bridge.instrument.Instrument`).

    Time is simulated: a scan takes ``scan_seconds``, an action ``action_seconds``, a move
    ``move_seconds``; :meth:`clock` reads it (so rate limits work in instrument time).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        size: int = 128,
        fov_a: float = 37.0,
        sample_nm: float = 2000.0,
        scan_seconds: float = 60.0,
        action_seconds: float = 15.0,
        move_seconds: float = 5.0,
        dynamics: TipDynamics | None = None,
    ):
        self.rng = np.random.default_rng(seed)
        self.size, self.fov_a, self.sample_nm = size, fov_a, sample_nm
        self.scan_seconds, self.action_seconds = scan_seconds, action_seconds
        self.move_seconds = move_seconds
        self.dyn = dynamics or TipDynamics()
        state = self.dyn.start_state or self._draw_state(self.dyn.reshape_states)
        self.tip = self._new_tip(state)
        self.position = (sample_nm / 2, sample_nm / 2)
        self.rotation = self._draw_rotation()
        self.damage: list[tuple[float, float, float]] = []  # (x nm, y nm, radius nm)
        self.time = 0.0
        self.n_scans = self.n_pulses = self.n_dips = 0
        self._stall = 0

    # -- the hidden state ------------------------------------------------------------------
    def clock(self) -> float:
        return self.time

    @property
    def state(self) -> str:
        return _state_of(self.tip)

    @property
    def good(self) -> bool:
        return tip_is_good(self.tip)

    def inject_stall(self, calls: int = 1) -> None:
        """Make the next ``calls`` instrument calls time out (for robustness tests)."""
        self._stall = calls

    def _check_stall(self, what: str, timeout: float) -> None:
        if self._stall > 0:
            self._stall -= 1
            self.time += timeout
            raise InstrumentTimeout(f"simulated microscope: no answer to {what} in {timeout} s")

    def _draw_state(self, p) -> str:
        return str(self.rng.choice(STATES, p=np.asarray(p) / np.sum(p)))

    def _draw_rotation(self) -> float:
        return sample_rotation(self.rng)

    def _new_tip(self, state: str) -> TipParams:
        return sample_tip(self.rng, state)

    def _damaged_here(self) -> bool:
        x, y = self.position
        return any((x - cx) ** 2 + (y - cy) ** 2 < r**2 for cx, cy, r in self.damage)

    # -- scanning ----------------------------------------------------------------------------
    def _frame_params(self, lines_done: int | None):
        rng, d = self.rng, self.dyn
        fp = sample_frame_params(
            rng, state=self.state, size=self.size, rotation=self.rotation + rng.normal(0, 0.5)
        )
        fp.fov = self.fov_a * self.size / 128
        fp.tip = copy.deepcopy(self.tip)
        fp.tip.elongation_angle = fp.surface.rotation
        fp.tip_change = None
        if rng.random() < d.p_sudden_change:
            after = self._new_tip(self._draw_state(d.change_states))
            after.elongation_angle = fp.tip.elongation_angle
            fp.tip_change = TipChange(
                line=int(rng.integers(self.size // 8, self.size - self.size // 8)),
                after=after,
                jump=float(rng.normal(0, 0.3)),
                streak=float(rng.uniform(0.2, 0.8)),
                streak_lines=int(rng.integers(0, 4)),
            )
            self.tip = copy.deepcopy(after)
        if rng.random() < d.p_crash:
            r0 = int(rng.integers(0, self.size - 10))
            fp.scan.crash = (r0, int(min(self.size, r0 + rng.integers(4, 40))))
            if rng.random() < d.crash_bad_p:
                self.tip = self._new_tip(str(rng.choice(["blunt", "rows"])))
                if rng.random() < 0.5:
                    self._add_ghost(self.tip)
        if self._damaged_here():
            extra = tuple(
                (
                    float(rng.uniform(0, fp.fov)),
                    float(rng.uniform(0, fp.fov)),
                    float(rng.uniform(2.0, 3.5)),
                    float(rng.uniform(3.0, 6.0)),
                )
                for _ in range(int(rng.integers(12, 30)))
            )
            fp.surface.blobs = fp.surface.blobs + extra
            fp.scan.white_noise = max(fp.scan.white_noise, float(rng.uniform(0.25, 0.4)))
        fp.lines_done = lines_done
        return fp

    def _add_ghost(self, tip: TipParams) -> None:
        tip.apex_offsets = ((0.0, 0.0), tuple(self.rng.uniform(-9, 9, 2)))
        tip.apex_weights = (1.0, float(self.rng.uniform(0.4, 0.9)))

    def _drift(self) -> None:
        t = self.tip
        t.sigma = float(
            np.clip(
                t.sigma * np.exp(self.rng.normal(0, self.dyn.drift_sigma))
                + self.dyn.degrade_per_scan,
                0.3,
                6.0,
            )
        )

    def scan(self, *, timeout: float = 300.0, lines_done: int | None = None) -> ScanResult:
        """Scan one frame at the current position with the current tip.

        ``lines_done`` < size returns a partial frame (NaN rows below), as when a frame is
        grabbed mid-scan.
        """
        self._check_stall("scan", timeout)
        fp = self._frame_params(lines_done)
        z = render_height(fp, self.rng)
        labels = labels_from_params(fp)
        truth = {
            "state": self.state,
            "sigma": round(float(self.tip.sigma), 3),
            "good": self.good,
            "labels": [int(v) for v in labels],
        }
        self.n_scans += 1
        done = self.size if lines_done is None else lines_done
        self.time += self.scan_seconds * done / self.size
        self._drift()
        return ScanResult(
            z=z,
            size_nm=fp.fov / 10.0,
            bias_v=-2.0,
            setpoint_a=20e-12,
            direction="down",
            lines_done=lines_done,
            source=f"sim:{self.n_scans:06d}",
            position_nm=self.position,
            truth=truth,
        )

    def scan_lines(self, *, timeout: float = 300.0) -> Iterator[np.ndarray]:
        """Yield the scan line by line (top to bottom), like a controller streaming lines."""
        res = self.scan(timeout=timeout)
        yield from res.z

    # -- conditioning ------------------------------------------------------------------------
    def _reshape(self, p_reshape: float, states, p_worse: float) -> bool:
        rng = self.rng
        if rng.random() < p_worse:
            self.tip = self._new_tip("blunt")
            if rng.random() < 0.5:
                self._add_ghost(self.tip)
            return True
        if rng.random() < p_reshape:
            self.tip = self._new_tip(self._draw_state(states))
            return True
        return False

    def pulse(self, bias_v: float, width_ms: float, *, timeout: float = 30.0) -> str:
        """Apply a bias pulse; returns a short description of what the controller did."""
        self._check_stall("pulse", timeout)
        s = min(abs(bias_v) / 8.0, 1.0) * np.sqrt(min(max(width_ms, 0.0) / 200.0, 1.0))
        states = np.asarray(self.dyn.reshape_states) + np.array([0, 0, 0, 0.1 * s])
        changed = self._reshape(0.15 + 0.6 * s, states, p_worse=0.0)
        if self.rng.random() < 0.3 * s:
            self.damage.append((*self.position, self.dyn.pulse_debris_nm))
        self.n_pulses += 1
        self.time += self.action_seconds
        return f"pulse {bias_v:+.2f} V {width_ms:.0f} ms" + (" (tip changed)" if changed else "")

    def dip(self, depth_nm: float, bias_v: float = 0.02, *, timeout: float = 30.0) -> str:
        """A controlled dip of ``depth_nm`` into the surface."""
        self._check_stall("dip", timeout)
        s = min(max(depth_nm, 0.0) / 5.0, 1.0)
        changed = self._reshape(0.3 + 0.6 * s, self.dyn.dip_states, p_worse=0.1 + 0.2 * s)
        self.damage.append((*self.position, self.dyn.dip_damage_nm_per_nm * depth_nm))
        self.n_dips += 1
        self.time += self.action_seconds
        return f"dip {depth_nm:.2f} nm" + (" (tip changed)" if changed else "")

    def move_to_fresh_area(self, *, timeout: float = 30.0) -> tuple[float, float]:
        """Move the scanner to an undamaged spot (a new terrace: rows may turn)."""
        self._check_stall("move", timeout)
        for _ in range(100):
            pos = tuple(float(v) for v in self.rng.uniform(50, self.sample_nm - 50, 2))
            self.position = pos
            if not self._damaged_here():
                break
        self.rotation = self._draw_rotation()
        self.time += self.move_seconds
        return self.position
