"""Frames and labels: the project's HDF5 format, the 2018 layouts, label rules.

The project's format is the one of ``../shared/data/hsi/hsi128_dev.h5``:

======================  ==================  =============================================
dataset                 dtype, shape        meaning
======================  ==================  =============================================
``images``              uint8 (N, H, W)     frames, grey levels 0..255
``mean_scores``         float32 (N, 6)      crowd mean per category in [0, 1]; NaN = unlabelled
``agreement``           float32 (N, 6)      crowd agreement per category; NaN = unlabelled
``n_responses``         int16 (N,)          volunteers who labelled the frame
``sessions``            utf-8 str (N,)      scan session (the unit of every split)
``names``               utf-8 str (N,)      frame name (source file)
``orig_hw``             int32 (N, 2)        height and width before resizing
``complete``            bool (N,)           False for partial frames (stretched to H x W)
======================  ==================  =============================================

with the attribute ``categories`` (the six names, in :data:`CATEGORIES` order).

Example:
    >>> fs = load_frames("../shared/data/hsi/hsi128_dev.h5")  # doctest: +SKIP
    >>> y = fs.labels(rule="gt0.5")[fs.labelled]                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

# One list of the six names for the data format and the simulator (numpy-only, so it holds them).
from stm_sim.params import CATEGORIES

N_CATEGORIES = len(CATEGORIES)
LABEL_RULES = ("gt0.5", "eq1")

_STR = h5py.string_dtype(encoding="utf-8")


class DataFormatError(ValueError):
    """A data file or array is not in the expected layout; the message says what came."""


@dataclasses.dataclass
class FrameSet:
    """A set of frames with crowd labels and provenance (one row per frame).

    ``mean_scores`` holds NaN rows for unlabelled frames; :attr:`labelled` masks them out.
    """

    images: np.ndarray
    mean_scores: np.ndarray
    sessions: np.ndarray
    names: np.ndarray
    agreement: np.ndarray | None = None
    n_responses: np.ndarray | None = None
    orig_hw: np.ndarray | None = None
    complete: np.ndarray | None = None
    categories: tuple[str, ...] = CATEGORIES

    def __post_init__(self) -> None:
        self.images = check_images(self.images)
        n = len(self.images)
        self.mean_scores = np.asarray(self.mean_scores, dtype=np.float32)
        if self.mean_scores.shape != (n, len(self.categories)):
            raise DataFormatError(
                f"mean_scores: expected shape ({n}, {len(self.categories)}), "
                f"got {self.mean_scores.shape}"
            )
        self.sessions = np.asarray(self.sessions).astype(str)
        self.names = np.asarray(self.names).astype(str)
        if self.agreement is None:
            self.agreement = np.where(np.isnan(self.mean_scores), np.nan, 1.0).astype(np.float32)
        if self.n_responses is None:
            self.n_responses = np.where(np.isnan(self.mean_scores).all(1), 0, 1).astype(np.int16)
        if self.orig_hw is None:
            self.orig_hw = np.tile(np.array(self.images.shape[1:], np.int32), (n, 1))
        if self.complete is None:
            self.complete = np.ones(n, dtype=bool)
        self.agreement = np.asarray(self.agreement, dtype=np.float32)
        self.n_responses = np.asarray(self.n_responses, dtype=np.int16)
        self.orig_hw = np.asarray(self.orig_hw, dtype=np.int32)
        self.complete = np.asarray(self.complete, dtype=bool)
        k = len(self.categories)
        for name, shape in (
            ("sessions", (n,)),
            ("names", (n,)),
            ("agreement", (n, k)),
            ("n_responses", (n,)),
            ("orig_hw", (n, 2)),
            ("complete", (n,)),
        ):
            got = getattr(self, name).shape
            if got != shape:
                raise DataFormatError(
                    f"{name}: expected shape {shape} (one row per image), got {got}"
                )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of frames with crowd labels (no NaN in ``mean_scores``)."""
        return ~np.isnan(self.mean_scores).any(axis=1)

    def labels(self, rule: str = "gt0.5") -> np.ndarray:
        """Hard 0/1 labels (N, 6) by ``rule``; unlabelled rows come back as 0 (mask them)."""
        return binarize(self.mean_scores, rule=rule)

    def subset(self, index: np.ndarray | Sequence[int]) -> FrameSet:
        """Rows ``index`` (an integer index or a boolean mask) as a new FrameSet."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return FrameSet(
            images=self.images[idx],
            mean_scores=self.mean_scores[idx],
            sessions=self.sessions[idx],
            names=self.names[idx],
            agreement=self.agreement[idx],
            n_responses=self.n_responses[idx],
            orig_hw=self.orig_hw[idx],
            complete=self.complete[idx],
            categories=self.categories,
        )

    def fingerprint(self) -> str:
        """SHA-256 over images, scores and names: identifies the data a family was trained on."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(np.nan_to_num(self.mean_scores, nan=-1.0).tobytes())
        h.update("\n".join(self.names.tolist()).encode())
        return h.hexdigest()


def binarize(mean_scores: np.ndarray, rule: str = "gt0.5") -> np.ndarray:
    """Crowd means -> 0/1 labels.

    ``"gt0.5"`` (default, the 2018 report's rule): positive when the mean is > 0.5.
    ``"eq1"`` (the 2018 code's rule): positive only when every volunteer said so.
    NaN (unlabelled) gives 0.

    >>> binarize(np.array([[0.5, 0.6, 1.0, 0, 0, np.nan]])).tolist()
    [[0, 1, 1, 0, 0, 0]]
    """
    m = np.asarray(mean_scores, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        if rule == "gt0.5":
            out = m > 0.5
        elif rule == "eq1":
            out = m >= 1.0 - 1e-6
        else:
            raise ValueError(f"label rule: expected one of {LABEL_RULES}, got {rule!r}")
    return out.astype(np.uint8)


def check_images(x: np.ndarray, *, size: int | None = None) -> np.ndarray:
    """Validate and normalise a stack of frames to uint8 (N, H, W).

    Accepts (N, H, W), (N, H, W, 1) or a single (H, W) frame; float input must lie in [0, 255]
    (or [0, 1], which is scaled) and be finite.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise DataFormatError(
            f"images: expected (N, H, W) or (N, H, W, 1) grey frames, got shape {x.shape}"
        )
    if size is not None and x.shape[1:] != (size, size):
        raise DataFormatError(f"images: expected {size}x{size} frames, got {x.shape[1:]}")
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise DataFormatError(f"images: expected uint8 or a real dtype, got {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise DataFormatError("images: found NaN or inf; frames must be finite")
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataFormatError(f"images: expected values in [0, 255], got [{lo:g}, {hi:g}]")
    if np.issubdtype(x.dtype, np.floating) and hi <= 1.0:
        x = x * 255.0
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Writing and reading the project's HDF5 format


def atomic_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """(final path, temporary sibling): write the temporary file, then ``os.replace`` it."""
    path = Path(path)
    if path.is_dir():  # else the temporary file lands beside the folder and the rename fails
        raise ValueError(f"{path}: expected a file to write, got an existing folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
    return path, Path(tmp)


def save_frames(fs: FrameSet, path: str | os.PathLike, *, attrs: dict | None = None) -> Path:
    """Write ``fs`` in the project's HDF5 format, atomically (no half-written file is left)."""
    path, tmp = atomic_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            chunk = (min(64, max(1, len(fs))), *fs.images.shape[1:])
            f.create_dataset(
                "images", data=fs.images, chunks=chunk if len(fs) else None, compression="gzip"
            )
            f.create_dataset("mean_scores", data=fs.mean_scores)
            f.create_dataset("agreement", data=fs.agreement)
            f.create_dataset("n_responses", data=fs.n_responses)
            f.create_dataset("sessions", data=fs.sessions.astype(object), dtype=_STR)
            f.create_dataset("names", data=fs.names.astype(object), dtype=_STR)
            f.create_dataset("orig_hw", data=fs.orig_hw)
            f.create_dataset("complete", data=fs.complete)
            f.attrs["categories"] = np.array(fs.categories, dtype=object)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_project_h5(f: h5py.File, path: Path) -> FrameSet:
    missing = [k for k in ("images", "mean_scores") if not isinstance(f.get(k), h5py.Dataset)]
    if missing:
        raise DataFormatError(f"{path}: project HDF5 format needs datasets {missing}")
    raw_cats = f.attrs.get("categories", CATEGORIES)
    cats = tuple(str(c) for c in np.atleast_1d(raw_cats))
    if len(cats) != N_CATEGORIES:
        raise DataFormatError(f"{path}: expected {N_CATEGORIES} categories, got {cats}")
    if f["images"].ndim not in (3, 4):
        raise DataFormatError(
            f"{path}: images: expected (N, H, W) or (N, H, W, 1) frames, got {f['images'].shape}"
        )
    n = f["images"].shape[0]

    def opt(name: str, decode: bool = False):
        if name not in f:
            return None
        a = f[name][:]
        return a.astype(str) if decode else a

    sessions = opt("sessions", True)
    names = opt("names", True)
    return FrameSet(
        images=f["images"][:],
        mean_scores=f["mean_scores"][:],
        sessions=sessions if sessions is not None else np.full(n, path.stem),
        names=names if names is not None else np.array([f"{path.stem}_{i}" for i in range(n)]),
        agreement=opt("agreement"),
        n_responses=opt("n_responses"),
        orig_hw=opt("orig_hw"),
        complete=opt("complete"),
        categories=cats,
    )


def _images_2018(x: np.ndarray, where: str) -> np.ndarray:
    """(N,128,128,1), (N,128,128) or MATLAB's (128,128,N) -> (N,128,128)."""
    x = np.asarray(x)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 3 and x.shape[0] == x.shape[1] and x.shape[2] != x.shape[0]:
        x = np.moveaxis(x, 2, 0)  # MATLAB stores the frame index last
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise DataFormatError(
            f"{where}: expected (N,H,W,1), (N,H,W) or MATLAB (H,W,N) frames, got {x.shape}"
        )
    return check_images(x)


def _labels_2018(y: np.ndarray, n: int, where: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape == (N_CATEGORIES, n) and n != N_CATEGORIES:
        y = y.T
    if y.shape != (n, N_CATEGORIES):
        raise DataFormatError(f"{where}: expected labels of shape ({n}, 6), got {y.shape}")
    return y


def _from_2018(arrays: dict, path: Path) -> FrameSet:
    parts = []
    for split in ("train", "test"):
        xk, yk = f"x_{split}", f"y_{split}"
        if xk not in arrays:
            continue
        x = _images_2018(arrays[xk], f"{path}:{xk}")
        y = (
            _labels_2018(arrays[yk], len(x), f"{path}:{yk}")
            if yk in arrays
            else np.full((len(x), N_CATEGORIES), np.nan, np.float32)
        )
        # The 2018 files carry no session; their given split is kept as two pseudo-sessions.
        parts.append(
            FrameSet(
                images=x,
                mean_scores=y,
                sessions=np.full(len(x), f"2018-{split}"),
                names=np.array([f"{split}_{i:06d}" for i in range(len(x))]),
            )
        )
    if not parts:
        raise DataFormatError(
            f"{path}: expected the 2018 layout (x_train, y_train, x_test, y_test) or the "
            f"project's HDF5 format (images, mean_scores, ...); found keys {sorted(arrays)}"
        )
    return concat(parts)


def concat(parts: Sequence[FrameSet]) -> FrameSet:
    """Stack FrameSets row-wise."""
    if not parts:
        raise ValueError("concat: expected at least one FrameSet, got none")
    return FrameSet(
        images=np.concatenate([p.images for p in parts]),
        mean_scores=np.concatenate([p.mean_scores for p in parts]),
        sessions=np.concatenate([p.sessions for p in parts]),
        names=np.concatenate([p.names for p in parts]),
        agreement=np.concatenate([p.agreement for p in parts]),
        n_responses=np.concatenate([p.n_responses for p in parts]),
        orig_hw=np.concatenate([p.orig_hw for p in parts]),
        complete=np.concatenate([p.complete for p in parts]),
        categories=parts[0].categories,
    )


def _read_mat(path: Path) -> dict:
    import scipy.io

    try:
        raw = scipy.io.loadmat(path)
    except NotImplementedError:
        # MATLAB v7.3 files are HDF5; h5py reads them with the axes reversed.
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k]).T for k in f if isinstance(f[k], h5py.Dataset)}
    except (ValueError, scipy.io.matlab.MatReadError) as e:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({e})") from e
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def load_frames(path: str | os.PathLike) -> FrameSet:
    """Read frames from the project's HDF5 format or a 2018 layout (.mat, .npz, .h5).

    >>> fs = load_frames("frames.h5")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf"):
        try:
            with h5py.File(path, "r") as f:
                if "images" in f:
                    return _read_project_h5(f, path)
                return _from_2018({k: f[k][:] for k in f if isinstance(f[k], h5py.Dataset)}, path)
        except OSError as e:
            raise DataFormatError(f"{path}: not a readable HDF5 file ({e})") from e
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise DataFormatError(f"{path}: not a readable .npz file ({e})") from e
        if "images" in arrays:
            n = len(arrays["images"])
            return FrameSet(
                images=arrays["images"],
                mean_scores=arrays.get("mean_scores", np.full((n, N_CATEGORIES), np.nan)),
                sessions=arrays.get("sessions", np.full(n, path.stem)),
                names=arrays.get("names", np.array([f"{path.stem}_{i}" for i in range(n)])),
            )
        return _from_2018(arrays, path)
    if suffix == ".mat":
        return _from_2018(_read_mat(path), path)
    raise DataFormatError(f"{path}: expected a .h5/.hdf5, .npz or .mat file, got suffix {suffix!r}")
