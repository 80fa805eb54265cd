"""The frozen run configuration saved beside every trained family."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from training.data import CATEGORIES, LABEL_RULES

TARGETS = ("hard", "soft", "posterior")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How a family is trained. Saved as ``config.json`` beside the members.

    >>> TrainConfig(epochs=2, width=0.25).members  # doctest: +SKIP
    18
    """

    architecture: str = "deepdog"
    width: float = 0.25
    max_filters: int | None = None
    epochs: int = 8
    batch_size: int = 64
    members_per_category: int = 3
    categories: tuple[str, ...] = CATEGORIES
    label_rule: str = "gt0.5"
    # "hard": 0/1 by label_rule; "soft": crowd means; "posterior": P(true label | the answers)
    # under a two-coin crowd model fitted to the training frames (training.crowd)
    targets: str = "hard"
    class_weight: str = "balanced"  # "balanced" | "none"
    bootstrap: bool = False  # each member trains on its own bootstrap sample of the frames
    augment: bool = True  # random horizontal and vertical flips (label-preserving)
    val_fraction: float = 0.0  # > 0 holds out whole sessions for the training curves
    learning_rate: float | None = None  # None: the builder's default
    precise_bn: bool = True  # BatchNorm statistics recomputed under the final weights
    # A trained family (folder) whose members start this one's (matched by name): e.g. members
    # trained on simulated frames, fine-tuned here on real ones. None: fresh weights.
    init_from: str | None = None
    # Fit a spectral companion (cnn_family.spectral) on the training frames once the members
    # are done; it votes beside them by default (measured better on every fold of the real
    # frames, benchmarks/companion_folds.py). False: the members alone.
    companion: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule: expected one of {LABEL_RULES}, got {self.label_rule!r}")
        if self.targets not in TARGETS:
            raise ValueError(f"targets: expected one of {TARGETS}, got {self.targets!r}")
        if self.class_weight not in ("balanced", "none"):
            raise ValueError(
                f"class_weight: expected 'balanced' or 'none', got {self.class_weight!r}"
            )
        unknown = [c for c in self.categories if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"categories: {unknown} not among {CATEGORIES}")
        for name in ("epochs", "batch_size", "members_per_category"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a number in [0, 1), got {self.val_fraction}")
        # Written to refuse NaN too: a negative or NaN rate once trained 18 members to noise.
        # 0 is allowed: the members keep their starting weights (tests use it with init_from).
        if self.learning_rate is not None and not 0 <= self.learning_rate < float("inf"):
            raise ValueError(
                f"learning_rate: expected a non-negative number (or None for the builder's), "
                f"got {self.learning_rate}"
            )
        if self.max_filters is not None and int(self.max_filters) < 1:
            raise ValueError(
                f"max_filters: expected a positive filter count (or None), got {self.max_filters}"
            )

    @property
    def members(self) -> int:
        return self.members_per_category * len(self.categories)

    def builder_options(self) -> dict:
        opts: dict = {"width": self.width}
        if self.architecture == "deepdog":
            opts["max_filters"] = self.max_filters
        if self.learning_rate is not None:
            opts["learning_rate"] = self.learning_rate
        return opts

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["categories"] = list(self.categories)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "categories" in d:
            d["categories"] = tuple(d["categories"])
        return cls(**d)

    def save(self, path: str | Path) -> None:
        from training.io import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
