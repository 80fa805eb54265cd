"""Train a family of binary members (3 per category), resumably.

Layout of a family folder::

    models/<name>/
      manifest.json            what the family is (architecture, classes, input, versions, data)
      config.json              the TrainConfig it was trained with
      members/<member>.keras   one binary classifier per member, saved atomically when done
      history/<member>.json    per-epoch training (and validation) metrics
      checkpoints/             in-progress member state (removed when the member is done)

Interrupt a run at any point and start it again with the same arguments: finished members are
kept, the member in progress resumes from its last finished epoch (optimizer state included).

Example:
    >>> fam_dir = train_family(frames, TrainConfig(epochs=2), "models/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.data import CATEGORIES, FrameSet, check_images
from training.io import save_model_atomic, write_json_atomic
from training.splits import session_split

MANIFEST_VERSION = 1


class ResumeMismatchError(ValueError):
    """A family folder holds a run with another configuration or other data."""


def member_name(category: str, k: int) -> str:
    """``("Bad/blurry", 2) -> "bad_blurry_2"``."""
    return f"{re.sub(r'[^a-z0-9]+', '_', category.lower()).strip('_')}_{k}"


def member_seed(seed: int, category_index: int, k: int) -> int:
    return int(seed) * 1000 + category_index * 10 + k


def package_versions() -> dict[str, str]:
    import h5py
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "scikit-learn": sklearn.__version__,
    }


def class_balance_weights(y_hard: np.ndarray) -> np.ndarray:
    """Per-sample weights so positives and negatives weigh the same in total (sklearn's rule)."""
    y = np.asarray(y_hard).astype(bool)
    n, pos = len(y), int(y.sum())
    if pos == 0 or pos == n:
        return np.ones(n, np.float32)
    w_pos, w_neg = n / (2.0 * pos), n / (2.0 * (n - pos))
    return np.where(y, w_pos, w_neg).astype(np.float32)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
    *,
    batch_size: int,
    shuffle: bool,
    augment: bool,
    seed: int,
):
    """A tf.data pipeline: in-memory frames, seeded shuffle, on-the-fly flips, prefetch.

    Only flips: they keep the scan geometry (fast axis horizontal, slow axis vertical), so every
    label survives. 90-degree turns and transposes would turn a tip change between scan lines
    into a vertical seam, which no real scan shows.
    """
    import tensorflow as tf

    x = check_images(x)[..., None]
    y = np.asarray(y, np.float32).reshape(len(x), -1)
    arrays = (x, y) if w is None else (x, y, np.asarray(w, np.float32))
    ds = tf.data.Dataset.from_tensor_slices(arrays)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        rng = tf.random.Generator.from_seed(seed)

        def flip(xb, *rest):
            n = tf.shape(xb)[0]
            lr = rng.uniform([n, 1, 1, 1]) < 0.5
            ud = rng.uniform([n, 1, 1, 1]) < 0.5
            xb = tf.where(lr, tf.reverse(xb, axis=[2]), xb)
            xb = tf.where(ud, tf.reverse(xb, axis=[1]), xb)
            return (xb, *rest)

        ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _targets(frames: FrameSet, cfg: TrainConfig, c: int) -> tuple[np.ndarray, np.ndarray]:
    hard = frames.labels(cfg.label_rule)[:, c]
    target = frames.mean_scores[:, c] if cfg.targets == "soft" else hard.astype(np.float32)
    return np.nan_to_num(target, nan=0.0).astype(np.float32), hard


class _EpochCheckpoint:
    """Saves the model and the run state after every epoch, atomically."""

    def __init__(self, ckpt: Path, state: Path, history: dict):
        import keras

        outer = self

        class CB(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                for k, v in (logs or {}).items():
                    outer.history.setdefault(k, []).append(float(v))
                save_model_atomic(self.model, outer.ckpt)
                write_json_atomic(outer.state, {"epochs_done": epoch + 1, "history": outer.history})

        self.ckpt, self.state, self.history = ckpt, state, history
        self.callback = CB()


def _data_summary(frames: FrameSet, data_path: str | None) -> dict:
    return {
        "path": str(data_path) if data_path else None,
        "fingerprint": frames.fingerprint(),
        "n_frames": len(frames),
        "n_sessions": len(np.unique(frames.sessions)),
    }


def train_family(
    frames: FrameSet,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_path: str | None = None,
    command: str | None = None,
    verbose: int | str = "auto",
    on_member_done: Callable[[str], None] | None = None,
) -> Path:
    """Train (or resume) the family described by ``config`` on the labelled rows of ``frames``.

    Returns the family folder. Raises :class:`ResumeMismatchError` if ``out_dir`` holds a run
    with a different configuration or different data.
    """
    import keras

    from cnn_family import CNN_global

    out = Path(out_dir)
    builder = CNN_global(config.architecture)  # fail early on an unknown name
    frames = frames.subset(frames.labelled)
    if len(frames) == 0:
        raise ValueError("train_family: expected labelled frames, got none (all NaN scores)")
    data = _data_summary(frames, data_path)

    manifest_path = out / "manifest.json"
    if (out / "config.json").exists():
        old = TrainConfig.load(out / "config.json")
        if old != config:
            raise ResumeMismatchError(
                f"{out} holds a run with another configuration ({old}); expected {config}. "
                "Choose another output name or delete the folder."
            )
        old_data = json.loads(manifest_path.read_text()).get("data", {})
        if old_data.get("fingerprint") not in (None, data["fingerprint"]):
            raise ResumeMismatchError(
                f"{out} was trained on other data (fingerprint {old_data['fingerprint'][:12]}…), "
                f"this call gives {data['fingerprint'][:12]}…"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")

    if config.val_fraction > 0:
        tr_idx, va_idx = session_split(
            frames.sessions, val_fraction=config.val_fraction, seed=config.seed
        )
        train, val = frames.subset(tr_idx), frames.subset(va_idx)
    else:
        train, val = frames, None

    members: list[dict] = []
    for category in config.categories:
        c = CATEGORIES.index(category)
        for k in range(config.members_per_category):
            members.append(
                {
                    "name": member_name(category, k),
                    "category": category,
                    "seed": member_seed(config.seed, c, k),
                    "file": f"members/{member_name(category, k)}.keras",
                    "_c": c,
                }
            )

    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "status": "training",
        "architecture": config.architecture,
        "builder_options": config.builder_options(),
        "width": config.width,
        "categories": list(config.categories),
        "members_per_category": config.members_per_category,
        "label_rule": config.label_rule,
        "input": {
            "shape": [*frames.images.shape[1:], 1],
            "dtype": "uint8",
            "normalisation": "x / 255 inside the model (Rescaling layer); frames are per-line "
            "levelled, per-frame min-max scaled to 0..255 before that",
        },
        "vote": "each member's probability rounded at 0.5; 2 of 3 per category",
        "training": config.to_dict(),
        "data": data,
        "versions": package_versions(),
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "members": [{k: v for k, v in m.items() if not k.startswith("_")} for m in members],
    }
    write_json_atomic(manifest_path, manifest)

    opts = config.builder_options()
    shape = (*frames.images.shape[1:], 1)
    t_start = time.time()
    for i, m in enumerate(members, start=1):
        final = out / m["file"]
        hist_path = out / "history" / f"{m['name']}.json"
        if final.exists() and hist_path.exists():
            print(f"[{i}/{len(members)}] {m['name']}: done already, kept", flush=True)
            continue
        ckpt = out / "checkpoints" / f"{m['name']}.keras"
        state_path = out / "checkpoints" / f"{m['name']}.json"
        seed = m["seed"]
        keras.utils.set_random_seed(seed)
        start, history = 0, {}
        if ckpt.exists() and state_path.exists():
            state = json.loads(state_path.read_text())
            start, history = int(state["epochs_done"]), state["history"]
            model = keras.models.load_model(ckpt)
            print(f"[{i}/{len(members)}] {m['name']}: resuming after epoch {start}", flush=True)
        else:
            model = builder(shape, 1, name=m["name"], **opts)

        y, hard = _targets(train, config, m["_c"])
        idx = np.arange(len(train))
        if config.bootstrap:
            idx = np.random.default_rng(seed).integers(0, len(train), len(train))
        w = class_balance_weights(hard[idx]) if config.class_weight == "balanced" else None
        ds = make_dataset(
            train.images[idx],
            y[idx],
            w,
            batch_size=config.batch_size,
            shuffle=True,
            augment=config.augment,
            seed=seed + start,
        )
        val_ds = None
        if val is not None:
            yv, _ = _targets(val, config, m["_c"])
            val_ds = make_dataset(
                val.images, yv, batch_size=256, shuffle=False, augment=False, seed=0
            )
        cb = _EpochCheckpoint(ckpt, state_path, history)
        print(
            f"[{i}/{len(members)}] {m['name']} ({m['category']}, seed {seed}): "
            f"epochs {start + 1}..{config.epochs}, {len(idx)} frames, "
            f"{int(hard[idx].sum())} positive",
            flush=True,
        )
        if start < config.epochs:
            model.fit(
                ds,
                validation_data=val_ds,
                initial_epoch=start,
                epochs=config.epochs,
                callbacks=[cb.callback],
                verbose=verbose,
                shuffle=False,  # the dataset shuffles
            )
        # The final file carries the trained weights without the optimizer state (half the size).
        clean = builder(shape, 1, name=m["name"], **opts)
        clean.set_weights(model.get_weights())
        save_model_atomic(clean, final)
        write_json_atomic(hist_path, cb.history)
        ckpt.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        keras.backend.clear_session(free_memory=True)
        if on_member_done is not None:
            on_member_done(m["name"])

    manifest["status"] = "complete"
    manifest["train_seconds_this_run"] = round(time.time() - t_start, 1)
    write_json_atomic(manifest_path, manifest)
    ck = out / "checkpoints"
    if ck.exists() and not any(ck.iterdir()):
        ck.rmdir()
    return out
