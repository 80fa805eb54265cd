"""The tip-conditioning policy: verdicts in, decisions out. No sockets, no instrument.

What "bad" means, in order:

1. Per scan, a bad score ``max(soft[bad categories]..., 1 - max(soft[good categories]))``:
   high when the family sees a blurry frame or a tip change, or resolves neither atoms nor
   dimers.
2. A temporal filter: an exponential moving average of that score over recent scans
   (``ema_alpha``; 1.0 = no memory), so one odd frame does not trigger anything.
3. The vote agreement: a scan counts as bad only when the filtered score is over
   ``bad_threshold`` and the members agree (mean agreement of the deciding categories
   >= ``min_agreement``); an uncertain scan neither counts nor resets the count.
4. Act after ``consecutive_bad`` bad scans (DeepSPM used 10, Scanbot 3).

Each action climbs an escalation ladder (small pulses, larger pulses, dips of growing depth:
DeepSPM's action set and the Nottingham plan); a voted *Tip change* jumps straight to a
``tip_change_dip_nm`` dip. After every action the decision asks to move to a fresh area. After
``max_attempts`` actions without a good tip the policy stops and calls a person. A manual
override hands control to a person until it is released. The hard safety limits are not here:
they live in :class:`instrument_bridge.instrument.SafeInstrument`, which no policy can bypass.

>>> p = TipPolicy(PolicyConfig(consecutive_bad=1, ema_alpha=1.0))
>>> v = {"soft": [0, 0, 0, 0, 0, 1.0], "hard": [0, 0, 0, 0, 0, 1], "agreement": [1.0] * 6}
>>> p.decide(v).action.kind
'pulse'
"""

from __future__ import annotations

import dataclasses

import numpy as np

from instrument_bridge.instrument import Action
from stm_sim.params import CATEGORIES

DIP_BIAS_V = 0.02  # dips at 20 mV (DeepSPM)

DEFAULT_LADDER: tuple[Action, ...] = (
    Action("pulse", bias_v=2.5, width_ms=200),
    Action("pulse", bias_v=-2.5, width_ms=200),
    Action("pulse", bias_v=4.0, width_ms=200),
    Action("pulse", bias_v=-4.0, width_ms=200),
    Action("pulse", bias_v=8.0, width_ms=200),
    Action("dip", depth_nm=0.8, bias_v=DIP_BIAS_V),
    Action("dip", depth_nm=1.5, bias_v=DIP_BIAS_V),
    Action("dip", depth_nm=2.5, bias_v=DIP_BIAS_V),
    Action("dip", depth_nm=4.0, bias_v=DIP_BIAS_V),
)

OK, WATCHING, ACT, CALL_PERSON, MANUAL = "ok", "watching", "act", "call_person", "manual"


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    consecutive_bad: int = 3
    ema_alpha: float = 0.6
    bad_threshold: float = 0.5
    min_agreement: float = 0.6
    good_categories: tuple[str, ...] = ("Individual atoms", "Dimers")
    bad_categories: tuple[str, ...] = ("Bad/blurry", "Tip change")
    ladder: tuple[Action, ...] = DEFAULT_LADDER
    repeat_top: int = 4  # after the ladder's end, cycle its last rungs
    tip_change_dip_nm: float = 1.5  # Nottingham plan: a 1-2 nm dip after a tip change
    max_attempts: int = 15
    good_to_reset: int = 2  # consecutive good scans that count as a good tip again
    act: bool = True  # False: the "no policy" baseline (watches, never acts)

    def __post_init__(self):
        if self.consecutive_bad < 1:
            raise ValueError(f"consecutive_bad: expected >= 1, got {self.consecutive_bad}")
        if not 0 < self.ema_alpha <= 1:
            raise ValueError(f"ema_alpha: expected in (0, 1], got {self.ema_alpha}")
        if not self.ladder:
            raise ValueError("ladder: expected at least one action")
        for c in (*self.good_categories, *self.bad_categories):
            if c not in CATEGORIES:
                raise ValueError(f"category: expected one of {CATEGORIES}, got {c!r}")

    @classmethod
    def naive(cls) -> PolicyConfig:
        """The naive baseline: act on every bad frame, no filter, no agreement check."""
        return cls(consecutive_bad=1, ema_alpha=1.0, min_agreement=0.0)

    @classmethod
    def none(cls) -> PolicyConfig:
        """The do-nothing baseline."""
        return cls(act=False)

    @classmethod
    def named(cls, name: str, *, consecutive_bad: int | None = None) -> PolicyConfig:
        """The command line's ``--policy`` (``default``, ``naive``, ``none``), with
        ``--consecutive-bad`` where given.

        >>> PolicyConfig.named("default", consecutive_bad=5).consecutive_bad
        5
        """
        makers = {"default": cls, "naive": cls.naive, "none": cls.none}
        if name not in makers:
            raise ValueError(f"policy: expected one of {sorted(makers)}, got {name!r}")
        cfg = makers[name]()
        if consecutive_bad is not None:
            cfg = dataclasses.replace(cfg, consecutive_bad=consecutive_bad)
        return cfg


@dataclasses.dataclass
class Decision:
    state: str
    action: Action | None
    reason: str
    bad_score: float
    filtered: float
    consecutive_bad: int
    attempt: int
    move_after: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["action"] = self.action.to_dict() if self.action else None
        return d


def _vec(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (len(CATEGORIES),) or not np.isfinite(a).all():
        raise ValueError(
            f"verdict {name}: expected {len(CATEGORIES)} finite numbers, got {np.asarray(v)!r}"
        )
    return a


class TipPolicy:
    """Stateful policy for one instrument. Call :meth:`decide` once per verdict."""

    def __init__(self, config: PolicyConfig | None = None):
        self.config = config or PolicyConfig()
        c = self.config
        self._good = [CATEGORIES.index(x) for x in c.good_categories]
        self._bad = [CATEGORIES.index(x) for x in c.bad_categories]
        self._tip_change = CATEGORIES.index("Tip change")
        self.manual = False
        self.reset()

    def reset(self) -> None:
        self.filtered: float | None = None
        self.consecutive_bad = 0
        self.consecutive_good = 0
        self.attempt = 0
        self.rung = 0
        self.gave_up = False

    def set_manual(self, manual: bool) -> None:
        """Manual override: while on, the policy only watches. Releasing it starts afresh."""
        self.manual = bool(manual)
        if not manual:
            self.reset()

    def _next_action(self, tip_change: bool) -> Action:
        c = self.config
        if tip_change and self.rung == 0 and c.tip_change_dip_nm > 0:
            return Action("dip", depth_nm=c.tip_change_dip_nm, bias_v=DIP_BIAS_V)
        if self.rung < len(c.ladder):
            return c.ladder[self.rung]
        top = c.ladder[-max(1, min(c.repeat_top, len(c.ladder))) :]
        return top[(self.rung - len(c.ladder)) % len(top)]

    def decide(self, verdict: dict) -> Decision:
        """One verdict (``soft``, ``hard``, ``agreement``: six numbers each) -> a decision."""
        c = self.config
        soft = _vec(verdict["soft"], "soft")
        hard = _vec(verdict["hard"], "hard")
        agree = _vec(verdict["agreement"], "agreement")
        bad_part = float(soft[self._bad].max())
        good_part = 1.0 - float(soft[self._good].max())
        score = max(bad_part, good_part)
        deciding = self._bad if bad_part >= good_part else self._good
        agreement = float(agree[deciding].mean())
        self.filtered = (
            score
            if self.filtered is None
            else c.ema_alpha * score + (1 - c.ema_alpha) * self.filtered
        )
        f = self.filtered

        def decision(state, reason, action=None):
            return Decision(
                state,
                action,
                reason,
                round(score, 4),
                round(f, 4),
                self.consecutive_bad,
                self.attempt,
                move_after=action is not None,
            )

        if f >= c.bad_threshold:
            if agreement >= c.min_agreement:
                self.consecutive_bad += 1
                self.consecutive_good = 0
            uncertain = agreement < c.min_agreement
        else:
            uncertain = False
            self.consecutive_bad = 0
            self.consecutive_good += 1
            if self.consecutive_good >= c.good_to_reset and self.attempt:
                self.attempt, self.rung, self.gave_up = 0, 0, False
                return decision(OK, "tip good again: ladder reset")
        if self.manual:
            return decision(MANUAL, "manual override: a person has control")
        if f < c.bad_threshold:
            return decision(OK, "tip good")
        if uncertain:
            return decision(WATCHING, f"bad score {f:.2f} but agreement {agreement:.2f} is low")
        if self.consecutive_bad < c.consecutive_bad:
            return decision(WATCHING, f"bad {self.consecutive_bad}/{c.consecutive_bad}")
        if not c.act:
            return decision(WATCHING, "bad; the policy does not act (baseline)")
        if self.gave_up or self.attempt >= c.max_attempts:
            self.gave_up = True
            return decision(
                CALL_PERSON, f"{self.attempt} attempts without a good tip: call a person"
            )
        tip_change = bool(hard[self._tip_change]) and agree[self._tip_change] >= c.min_agreement
        action = self._next_action(tip_change)
        self.attempt += 1
        self.rung += 1
        self.consecutive_bad = 0
        self.filtered = None  # a fresh area after the action: start the filter afresh
        why = "tip change voted" if tip_change and action.kind == "dip" else "bad tip"
        return decision(ACT, f"{why}: attempt {self.attempt}, {action.describe()}", action)
