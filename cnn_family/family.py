"""A trained family: load it, vote with it in one forward pass.

``majority_polling`` keeps the 2018 semantics (each member rounded at 0.5, 2 of 3 per category,
exact-match accuracy when labels are given) and adds the soft vote and the agreement.

Example:
    >>> fam = Family.load("models/hsi_family")   # doctest: +SKIP
    >>> vote = fam.vote(frames)                  # doctest: +SKIP
    >>> vote.hard.shape                          # doctest: +SKIP
    (N, 6)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from training.data import check_images


class FamilyFormatError(ValueError):
    """A family folder or manifest is missing pieces or inconsistent."""


def _check_manifest(manifest, where, *, members: bool) -> None:
    """The fields loading relies on, with their types: a hand-edited or foreign manifest gets
    a FamilyFormatError naming the field, not a KeyError or TypeError from deep inside."""
    if not isinstance(manifest, dict):
        raise FamilyFormatError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    cats = manifest.get("categories")
    if not (isinstance(cats, list) and cats and all(isinstance(c, str) for c in cats)):
        raise FamilyFormatError(f"{where}: categories: expected a list of names, got {cats!r}")
    if members:
        ms = manifest.get("members")
        ok = (
            isinstance(ms, list)
            and ms
            and all(
                isinstance(m, dict) and isinstance(m.get("file"), str) and m.get("category") in cats
                for m in ms
            )
        )
        if not ok:
            raise FamilyFormatError(
                f"{where}: members: expected a list of {{file, category}} objects, one of "
                f"{cats} each, got {str(ms)[:120]}"
            )
    else:
        k = manifest.get("members_per_category")
        if not (type(k) is int and k > 0):
            raise FamilyFormatError(
                f"{where}: members_per_category: expected a positive integer, got {k!r}"
            )


def read_manifest(path: str | Path) -> tuple[dict, str]:
    """The checked manifest of a family folder or of an exported ``.keras`` file, and which
    form it is (``"folder"`` or ``"exported"``). Reads JSON only: no model is loaded."""
    import zipfile

    path = Path(path)
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as z:
                manifest = json.loads(z.read(EXPORT_ENTRY))
        except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
            raise FamilyFormatError(
                f"{path}: expected a family exported by Family.export (a .keras zip holding "
                f"{EXPORT_ENTRY}), got {type(e).__name__}: {e}"
            ) from None
        _check_manifest(manifest, f"{path}:{EXPORT_ENTRY}", members=False)
        return manifest, "exported"
    mf = path / "manifest.json"
    if not mf.exists():
        raise FileNotFoundError(
            f"no family at {path}: expected a folder with {mf.name} or an exported .keras file"
        )
    try:
        manifest = json.loads(mf.read_text())
    except json.JSONDecodeError as e:
        raise FamilyFormatError(f"{mf}: not valid JSON ({e})") from e
    _check_manifest(manifest, mf, members=True)
    return manifest, "folder"


@dataclasses.dataclass
class Vote:
    """The family's decision on N frames, categories in ``categories`` order.

    ``member_probs`` (N, C, K): each member's probability; ``hard`` (N, C) uint8: the majority
    of rounded member votes; ``soft`` (N, C): the mean probability; ``agreement`` (N, C): the
    fraction of a category's members that agree with its majority (1.0 = unanimous);
    ``exact_match``: share of frames with all C labels right (only when labels were given).
    """

    categories: tuple[str, ...]
    member_probs: np.ndarray
    hard: np.ndarray
    soft: np.ndarray
    agreement: np.ndarray
    exact_match: float | None = None

    @classmethod
    def from_member_probs(
        cls, probs: np.ndarray, categories: Sequence[str], y_true: np.ndarray | None = None
    ) -> Vote:
        probs = np.asarray(probs, np.float32)
        if probs.ndim != 3 or probs.shape[1] != len(categories):
            raise ValueError(
                f"member probabilities: expected (N, {len(categories)}, K), got {probs.shape}"
            )
        votes = (probs >= 0.5).astype(np.int32)
        k = probs.shape[2]
        n_yes = votes.sum(axis=2)
        hard = (2 * n_yes > k).astype(np.uint8)
        agree = np.where(hard == 1, n_yes, k - n_yes) / k
        exact = None
        if y_true is not None:
            y = np.asarray(y_true)
            if y.shape != hard.shape:
                raise ValueError(f"y_test: expected shape {hard.shape}, got {y.shape}")
            exact = float(np.mean(np.all(hard == y.astype(np.uint8), axis=1)))
        return cls(
            tuple(categories), probs, hard, probs.mean(axis=2), agree.astype(np.float32), exact
        )


def _as_batch(x) -> np.ndarray:
    return check_images(x)[..., None]


def vote_rule(k: int, *, companion: bool) -> str:
    """The family's vote in words, as its manifest states it (``k`` members per category).

    A positive needs more than half of a category's voters: the ``k`` members, and the spectral
    companion as one more when the family has one.

    >>> vote_rule(3, companion=False)
    "each member's probability rounded at 0.5; more than 1 of 3 per category"
    """
    members = f"more than {k // 2} of {k} per category"
    if not companion:
        return f"each member's probability rounded at 0.5; {members}"
    return (
        "each member's probability rounded at 0.5; the spectral companion votes as one more "
        f"member: more than {(k + 1) // 2} of {k + 1} per category (the members alone: "
        f"more than {k // 2} of {k})"
    )


EXPORT_ENTRY = "stm_family.json"  # the family manifest, stored inside an exported .keras zip


def _on_gpu() -> bool:
    from cnn_family.backend import on_gpu

    return on_gpu()


class Family:
    """The members of a family and one fused graph that runs all of them in one call.

    ``members`` maps each category to its K binary members (keras models, 1 sigmoid output).
    A family loaded from an exported file (:meth:`export`) holds only the fused graph:
    ``members`` is then empty and ``categories``/``k`` come from the file. ``companion``: the
    family's spectral companion (:mod:`cnn_family.spectral`) when it has one; it votes beside
    the members by default (see :meth:`vote`).
    """

    def __init__(
        self,
        members: Mapping[str, Sequence] | None = None,
        *,
        manifest: dict | None = None,
        path: Path | None = None,
        fused=None,
        categories: Sequence[str] | None = None,
        k: int | None = None,
        companion=None,
    ):
        if members:
            ks = {len(v) for v in members.values()}
            if len(ks) != 1:
                raise FamilyFormatError(f"every category needs as many members; got {ks}")
            self.members = {c: list(v) for c, v in members.items()}
            self.categories = tuple(self.members)
            self.k = ks.pop()
        elif fused is not None and categories and k:
            self.members = {}
            self.categories, self.k = tuple(categories), int(k)
            if fused.output_shape[-1] != len(self.categories) * self.k:
                raise FamilyFormatError(
                    f"fused graph: expected {len(self.categories) * self.k} outputs "
                    f"({len(self.categories)} categories x {self.k}), got {fused.output_shape}"
                )
        else:
            raise FamilyFormatError("a family needs at least one category with members")
        self.manifest = manifest or {}
        self.path = path
        self.companion = companion
        if companion is not None:
            _check_companion(companion, self.categories)
        self._fused = fused
        self._fused_kind = "exported" if fused is not None else None
        self._fn = None
        self._features = None

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Family:
        """Load a family folder (``manifest.json`` + ``members/*.keras``) or an exported file."""
        import keras

        path = Path(path)
        if path.is_file():
            return cls.load_exported(path)
        manifest, _ = read_manifest(path)
        if manifest.get("status") == "partial":
            raise FamilyFormatError(
                f"{path}: a shard with {len(manifest.get('members_done', []))} of "
                f"{len(manifest['members'])} members; merge the shards first "
                "(python -m training.shards merge OUT SHARD_DIR...)"
            )
        if manifest.get("status") != "complete":
            raise FamilyFormatError(
                f"{path}: training is not finished (status {manifest.get('status')!r}); "
                "rerun the same training command to resume it"
            )
        members: dict[str, list] = {c: [] for c in manifest["categories"]}
        for m in manifest["members"]:
            f = path / m["file"]
            if not f.exists():
                raise FamilyFormatError(f"{path}: member file missing: {m['file']}")
            members[m["category"]].append(keras.models.load_model(f, compile=False))
        return cls(members, manifest=manifest, path=path, companion=_companion_in(path))

    @classmethod
    def load_exported(cls, path: str | Path) -> Family:
        """Load the one-file form written by :meth:`export` (the fused graph and the manifest)."""
        import zipfile

        import keras

        from cnn_family import stacked  # noqa: F401  (registers GroupedPointwise)
        from cnn_family.spectral import FILE_NAME, SpectralCompanion

        path = Path(path)
        manifest, _ = read_manifest(path)
        companion = None
        with zipfile.ZipFile(path) as z:
            if FILE_NAME in z.namelist():
                companion = SpectralCompanion.from_json(
                    json.loads(z.read(FILE_NAME)), where=f"{path}:{FILE_NAME}"
                )
        model = keras.models.load_model(path, compile=False)
        return cls(
            fused=model,
            categories=manifest["categories"],
            k=manifest["members_per_category"],
            manifest=manifest,
            path=path,
            companion=companion or _companion_beside(path, manifest),
        )

    # -- the fused graph ----------------------------------------------------------------------
    @property
    def fused(self):
        """One keras model: frame (H, W, 1) -> (C*K,) probabilities, members category-major.

        DeepDog members become one stack of wide layers with BatchNorm folded in
        (:mod:`cnn_family.stacked`); other architectures are joined side by side in one graph.
        """
        if self._fused is None:
            from cnn_family.stacked import StackError, fold_batchnorm, stack_members

            ordered = [m for c in self.categories for m in self.members[c]]
            try:
                self._fused = fold_batchnorm(stack_members(ordered, name="family"))
                self._fused_kind = "stacked"
            except StackError:
                self._fused = self._side_by_side(ordered)
                self._fused_kind = "side_by_side"
        return self._fused

    @property
    def fused_kind(self) -> str:
        """``"stacked"``, ``"side_by_side"`` or ``"exported"``."""
        self.fused  # noqa: B018  (builds it)
        return self._fused_kind

    def _side_by_side(self, ordered):
        import keras

        inp = keras.Input(ordered[0].input_shape[1:], name="frame")
        outs = []
        for i, m in enumerate(ordered):
            # Fresh copies with unique names, so one graph can hold every member.
            clone = keras.models.clone_model(m)
            clone.name = f"member_{i:02d}"
            clone.set_weights(m.get_weights())
            outs.append(clone(inp))
        out = keras.layers.Concatenate(name="member_probs")(outs) if len(outs) > 1 else outs[0]
        return keras.Model(inp, out, name="family")

    def _compiled(self):
        if self._fn is None:
            from cnn_family.backend import backend_name

            model = self.fused
            if backend_name() != "tensorflow":
                # Keras' own compiled predict step (jit under JAX); uint8 in, float inside.
                self._fn = lambda x: model.predict_on_batch(np.asarray(x, np.float32))
                return self._fn
            import tensorflow as tf

            h, w = model.input_shape[1:3]

            # One signature for every batch size: traced once, never again.
            @tf.function(input_signature=[tf.TensorSpec([None, h, w, 1], tf.uint8)])
            def fn(x):
                return model(tf.cast(x, tf.float32), training=False)

            self._fn = fn
        return self._fn

    def predict_members(
        self, x, *, batch_size: int | None = None, tta: bool = False, progress: bool = False
    ) -> np.ndarray:
        """Member probabilities (N, C, K) for frames x (uint8 (N, H, W) or (N, H, W, 1)).

        ``batch_size`` None: 16 frames per call on a CPU (the activations of 16 frames stay in
        cache; larger chunks are slower per frame, see benchmarks/speed.py), 256 on a GPU.
        ``tta``: average each member over the frame and its horizontal, vertical and double flip
        (the label-preserving views the training pipeline augments with; 4x the compute).
        ``progress``: a bar over the frames (from 1,000 frames on).

        >>> fam.predict_members(frames, tta=True).shape  # doctest: +SKIP
        (N, 6, 3)
        """
        if tta:
            xb = _as_batch(x)
            views = (xb, xb[:, :, ::-1], xb[:, ::-1, :], xb[:, ::-1, ::-1])
            # One call over the stacked views keeps the batching; split and average after.
            probs = self.predict_members(
                np.concatenate(views), batch_size=batch_size, progress=progress
            )
            return probs.reshape(len(views), len(xb), *probs.shape[1:]).mean(axis=0)
        xb = self._frames(x)
        if batch_size is None:
            batch_size = 256 if _on_gpu() else 16
        fn = self._compiled()
        parts = self._chunked(fn, xb, batch_size, progress=progress)
        flat = np.concatenate(parts) if parts else np.zeros((0, len(self.categories) * self.k))
        return flat.reshape(len(xb), len(self.categories), self.k)

    def _frames(self, x) -> np.ndarray:
        """``x`` as a uint8 (N, H, W, 1) batch of the size the members take."""
        xb = _as_batch(x)
        want = tuple(self.fused.input_shape[1:3])
        if xb.shape[1:3] != want:
            raise ValueError(
                f"frames: expected {want[0]}x{want[1]}, got {xb.shape[1]}x{xb.shape[2]}"
            )
        return xb

    def features(self, x, *, batch_size: int = 64) -> np.ndarray:
        """Every member's pooled features (what its output layer sees), concatenated
        member by member, categories in order: (N, D), D = the members' widths summed.

        The family's own embedding of a frame, for distances between sets of frames
        (:mod:`evaluation.distance`: FID and KID).

        >>> fam.features(frames).shape  # doctest: +SKIP
        (N, 4608)
        """
        import keras

        xb = self._frames(x)
        if self._features is None:
            if any(layer.name == "gap" for layer in self.fused.layers):
                # the stacked graph: one pooled layer holds every member's
                model = keras.Model(self.fused.input, self.fused.get_layer("gap").output)
            else:  # members side by side: each member's input to its output layer
                inp = keras.Input(xb.shape[1:], name="frame")
                outs = []
                for i, m in enumerate(m for c in self.categories for m in self.members[c]):
                    sub = keras.Model(m.inputs, m.layers[-1].input, name=f"features_{i:02d}")
                    outs.append(keras.layers.Flatten()(sub(inp)))
                model = keras.Model(
                    inp, keras.layers.Concatenate()(outs) if len(outs) > 1 else outs[0]
                )
            self._features = model
        model = self._features
        parts = self._chunked(
            lambda c: model.predict_on_batch(np.asarray(c, np.float32)), xb, batch_size
        )
        return np.concatenate(parts).reshape(len(xb), -1)

    @staticmethod
    def _chunked(fn, xb: np.ndarray, batch_size: int, progress: bool = False) -> list[np.ndarray]:
        """``fn`` over ``xb`` in chunks of ``batch_size`` rows.

        Under JAX (or torch) a short last chunk is padded and its padding cut off after: every
        call then has one shape, and JAX compiles once instead of once per shape (minutes for a
        full-width family on a GPU). TensorFlow's traced function takes any batch size.
        """
        from tqdm import tqdm

        from cnn_family.backend import backend_name

        pad = backend_name() != "tensorflow" and len(xb) > batch_size
        parts = []
        with tqdm(
            total=len(xb), desc="voting", unit="frame", disable=not progress or len(xb) < 1000
        ) as bar:
            for i in range(0, len(xb), batch_size):
                c = xb[i : i + batch_size]
                n = len(c)
                if pad and n < batch_size:
                    c = np.concatenate([c, np.zeros((batch_size - n, *c.shape[1:]), c.dtype)])
                parts.append(np.asarray(fn(c))[:n])
                bar.update(n)
        return parts

    def vote(
        self,
        x,
        y_true: np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        tta: bool = False,
        undo_class_weights: bool = False,
        companion=None,
        progress: bool = False,
    ) -> Vote:
        """The majority vote (and soft vote, agreement) on frames x.

        ``tta`` as in :meth:`predict_members` (each member votes its flip-averaged
        probability). ``undo_class_weights``: see :meth:`undo_class_weights`; fewer, surer
        positives (precision up, recall down). ``companion``: a
        :class:`cnn_family.spectral.SpectralCompanion` that votes as one more member in each
        category (its probability is the last of ``member_probs``; the hard vote is then a
        strict majority of K + 1, i.e. 3 of 4). ``None`` (the default) uses the family's own
        companion when it has one (:attr:`companion`, fitted on its training frames: measured
        better on every fold, ``benchmarks/companion_folds.py``); ``False``: the members alone.
        ``progress``: a bar over the frames (from 1,000 frames on).

        >>> fam.vote(frames, tta=True, undo_class_weights=True).hard  # doctest: +SKIP
        >>> fam.vote(frames, companion=False).member_probs.shape      # doctest: +SKIP
        (N, 6, 3)
        """
        if companion is None:
            companion = self.companion
        elif companion is True:
            raise ValueError(
                "companion: expected None (the family's own), False or a SpectralCompanion, "
                "got True"
            )
        probs = self.predict_members(x, batch_size=batch_size, tta=tta, progress=progress)
        if undo_class_weights:
            probs = self.undo_class_weights(probs)
        if companion is not None and companion is not False:
            _check_companion(companion, self.categories)
            extra = companion.predict(x).astype(np.float32)[:, :, None]
            probs = np.concatenate([probs, extra], axis=2)
        return Vote.from_member_probs(probs, self.categories, y_true)

    def undo_class_weights(self, probs: np.ndarray) -> np.ndarray:
        """Member probabilities (N, C, K) as if trained without class-balance weights.

        Balanced weights make each member act as if positives were half of the data, which
        multiplies its odds by (1 - pi) / pi for a category with training prior pi. Dividing that
        back out (Saerens et al. 2002) gives the posterior under the training prior; rounding
        it at 0.5 is then a vote for "more likely than not". A family trained with
        ``class_weight="none"`` is returned unchanged.
        """
        if self.manifest.get("training", {}).get("class_weight") == "none":
            return probs
        rates = self.manifest.get("train_positive_rate")
        if not rates or any(c not in rates for c in self.categories):
            raise FamilyFormatError(
                "undo_class_weights: expected the manifest to give train_positive_rate for "
                f"{list(self.categories)}, got {rates!r} (families trained before it was recorded: "
                "add it with training.trainer.positive_rates on the training frames)"
            )
        pi = np.clip([rates[c] for c in self.categories], 1e-6, 1 - 1e-6)[None, :, None]
        p = np.asarray(probs, np.float64)
        return (p * pi / (p * pi + (1 - p) * (1 - pi))).astype(np.float32)

    def save_fused(self, path: str | Path) -> Path:
        """The fused graph alone as one ``.keras`` file (see :meth:`export` for a loadable family)."""
        from training.io import save_model_atomic

        return save_model_atomic(self.fused, path)

    def export(self, path: str | Path) -> Path:
        """The whole family in one ``.keras`` file: the fused graph plus the manifest.

        ``Family.load(path)`` reads it back (one model to deserialise instead of K x C).

        >>> Family.load("models/hsi_family").export("hsi_family.keras")  # doctest: +SKIP
        """
        import os
        import zipfile

        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"export: expected a path ending in .keras, got {path.name!r}")
        from cnn_family.spectral import FILE_NAME

        manifest = dict(self.manifest)
        manifest.update(
            categories=list(self.categories), members_per_category=self.k, fused=self.fused_kind
        )
        tmp = path.with_name(f".{path.stem}.partial.keras")
        try:
            self.fused.save(tmp)
            # Keras reads only its own entries from the zip; the manifest rides along.
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(EXPORT_ENTRY, json.dumps(manifest, indent=2, default=str))
                if self.companion is not None:
                    z.writestr(FILE_NAME, json.dumps(self.companion.to_json()))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        extra = " + spectral companion" if self.companion is not None else ""
        return f"Family({len(self.categories)} categories x {self.k} members{extra}{where})"


def _check_companion(companion, categories) -> None:
    if tuple(getattr(companion, "categories", ())) != tuple(categories):
        raise FamilyFormatError(
            f"companion: expected a SpectralCompanion for the family's categories "
            f"{list(categories)}, got {getattr(companion, 'categories', type(companion).__name__)}"
        )


def _companion_beside(path: Path, manifest: dict):
    """The companion of the family folder an exported file sits in (files exported before
    companions rode inside them), when that folder's family was trained on the same data."""
    mf = path.parent / "manifest.json"
    if not mf.exists():
        return None
    try:
        folder_data = json.loads(mf.read_text()).get("data", {})
    except json.JSONDecodeError:
        return None
    fingerprint = manifest.get("data", {}).get("fingerprint")
    if fingerprint is None or folder_data.get("fingerprint") != fingerprint:
        return None
    return _companion_in(path.parent)


def _companion_in(folder: Path):
    """The spectral companion saved in ``folder``, or None when there is none."""
    from cnn_family.spectral import FILE_NAME, SpectralCompanion

    f = Path(folder) / FILE_NAME
    return SpectralCompanion.load(f) if f.exists() else None


def majority_polling(family_dict, x_test, y_test=None) -> Vote:
    """The 2018 vote: round each member at 0.5, 2 of 3 per category make a positive.

    The members alone: a family's spectral companion does not vote here (use
    :meth:`Family.vote` for the vote with it).

    ``family_dict`` is a :class:`Family` (one fused forward pass) or a mapping
    ``{category: [model, model, model]}`` of keras models (one ``predict`` per member, the 2018
    way). With ``y_test`` (N, C) the returned :class:`Vote` carries the exact-match accuracy.

    >>> vote = majority_polling(family, frames, labels)  # doctest: +SKIP
    >>> vote.exact_match                                 # doctest: +SKIP
    0.61
    """
    if isinstance(family_dict, Family):
        return family_dict.vote(x_test, y_test, companion=False)
    if not isinstance(family_dict, Mapping) or not family_dict:
        raise TypeError(
            f"family_dict: expected a Family or {{category: [models]}}, got {type(family_dict).__name__}"
        )
    xb = _as_batch(x_test).astype(np.float32)
    cats = list(family_dict)
    ks = {len(v) for v in family_dict.values()}
    if len(ks) != 1:
        raise ValueError(f"family_dict: every category needs as many members; got {ks}")
    k = ks.pop()
    probs = np.zeros((len(xb), len(cats), k), np.float32)
    for ci, c in enumerate(cats):
        for j, m in enumerate(family_dict[c]):
            probs[:, ci, j] = np.asarray(m.predict(xb, verbose=0)).reshape(len(xb))
    return Vote.from_member_probs(probs, cats, y_test)
