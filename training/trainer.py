"""Train a family of binary members (3 per category), resumably.

Layout of a family folder::

    models/<name>/
      manifest.json            what the family is (architecture, classes, input, versions, data)
      config.json              the TrainConfig it was trained with
      members/<member>.keras   one binary classifier per member, saved atomically when done
      history/<member>.json    per-epoch training (and validation) metrics
      checkpoints/             in-progress member state (removed when the member is done)

Interrupt a run at any point and start it again with the same arguments: finished members are
kept, the members in progress resume from their last finished epoch (optimizer state included).

Two engines give the same members (same seeds, same initial weights, same losses):

* ``"sequential"``: the members one after another, each with its own seeded input pipeline;
* ``"fused"`` (the default): every pending member in one model trained in one pass over the
  data, each member a branch with its own loss, seed and (with ``bootstrap``) its own sample
  weights. On a CPU the branches are the members side by side; on a GPU they are one stack of
  wide layers (:mod:`cnn_family.stacked`), with mixed precision and XLA, and on several GPUs
  under ``tf.distribute.MirroredStrategy``. The members share the order of the batches (one
  shuffle), which is the only difference from the sequential engine.

``members="0-5"`` trains a shard of the family (for a scheduler's array job); merge the shard
folders with :func:`training.shards.merge_shards`.

Example:
    >>> fam_dir = train_family(frames, TrainConfig(epochs=2), "models/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.data import CATEGORIES, FrameSet, check_images
from training.io import save_model_atomic, write_json_atomic
from training.splits import session_split

MANIFEST_VERSION = 1
ENGINES = ("fused", "sequential")


class ResumeMismatchError(ValueError):
    """A family folder holds a run with another configuration or other data."""


class InitFromError(ValueError):
    """``TrainConfig.init_from`` names a family that cannot start this one."""


def init_family_summary(config: TrainConfig) -> dict | None:
    """Check that ``config.init_from`` can start a family of ``config``; its provenance.

    The family must be complete, of the same architecture and builder options, and hold a
    member file for every member name of ``config``. Raises :class:`InitFromError` otherwise.
    """
    if config.init_from is None:
        return None
    src = Path(config.init_from)
    manifest_path = src / "manifest.json"
    if not manifest_path.exists():
        raise InitFromError(
            f"init_from: expected a trained family folder with manifest.json, got {src}"
        )
    man = json.loads(manifest_path.read_text())
    if man.get("status") != "complete":
        raise InitFromError(
            f"init_from: expected a complete family, {src} is {man.get('status')!r}"
        )
    # The shape-setting options must agree; the learning rate may differ (fine-tuning).
    theirs = {k: v for k, v in man.get("builder_options", {}).items() if k != "learning_rate"}
    ours = {k: v for k, v in config.builder_options().items() if k != "learning_rate"}
    if man.get("architecture") != config.architecture or theirs != ours:
        raise InitFromError(
            f"init_from: {src} is {man.get('architecture')} {theirs}, "
            f"this run builds {config.architecture} {ours}"
        )
    files = {m["name"]: m["file"] for m in man.get("members", [])}
    wanted = [
        member_name(c, k) for c in config.categories for k in range(config.members_per_category)
    ]
    missing = [n for n in wanted if n not in files or not (src / files[n]).exists()]
    if missing:
        raise InitFromError(
            f"init_from: {src} has no member {missing[0]!r} ({len(missing)} of "
            f"{len(wanted)} missing); it holds {sorted(files)[:4]}..."
        )
    return {
        "path": str(src),
        "data": man.get("data"),
        "epochs": man.get("training", {}).get("epochs"),
        "command": man.get("command"),
    }


def member_name(category: str, k: int) -> str:
    """``("Bad/blurry", 2) -> "bad_blurry_2"``."""
    return f"{re.sub(r'[^a-z0-9]+', '_', category.lower()).strip('_')}_{k}"


def member_seed(seed: int, category_index: int, k: int) -> int:
    return int(seed) * 1000 + category_index * 10 + k


def package_versions() -> dict[str, str]:
    from cnn_family.backend import versions

    return versions()


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
    """The input pipeline: in-memory frames, seeded shuffle, on-the-fly flips, prefetch.

    Under TensorFlow a ``tf.data`` pipeline; under another Keras backend (JAX on a GPU machine
    whose CUDA the TensorFlow wheels do not match) the same in NumPy, :class:`NumpyBatches`.

    Only flips: they keep the scan geometry (fast axis horizontal, slow axis vertical), so every
    label survives. 90-degree turns and transposes would turn a tip change between scan lines
    into a vertical seam, which no real scan shows.
    """
    from cnn_family.backend import backend_name

    x = check_images(x)[..., None]
    y = np.asarray(y, np.float32).reshape(len(x), -1)
    w = None if w is None else np.asarray(w, np.float32)
    if backend_name() != "tensorflow":
        return NumpyBatches(
            x, y, w, batch_size=batch_size, shuffle=shuffle, augment=augment, seed=seed
        )
    import tensorflow as tf

    arrays = (x, y) if w is None else (x, y, w)
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


@functools.cache
def _numpy_batches_cls():
    import keras

    class _NumpyBatches(keras.utils.PyDataset):
        """Batches of in-memory frames for any Keras backend: a seeded shuffle per epoch and
        random horizontal/vertical flips per frame, as the ``tf.data`` pipeline does.

        >>> b = NumpyBatches(x, y, batch_size=64, shuffle=True, augment=True, seed=0)  # doctest: +SKIP
        >>> xb, yb = b[0]                                                                # doctest: +SKIP
        """

        def __init__(self, x, y, w=None, *, batch_size, shuffle, augment, seed):
            # Worker threads would only copy: the slicing and flips are memory moves, and the
            # accelerator waits on the step, not on them.
            super().__init__(workers=1, use_multiprocessing=False)
            self.x, self.y, self.w = x, y, w
            self.batch_size, self.shuffle, self.augment = int(batch_size), shuffle, augment
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(x))
            self.on_epoch_end()

        def __len__(self) -> int:
            if self.shuffle and len(self.x) >= self.batch_size:
                # Training drops the last partial batch (other frames each epoch): one batch
                # shape means one compiled step under JAX, where a second shape recompiles
                # the whole network (minutes for a full-width stack on a GPU).
                return len(self.x) // self.batch_size
            return -(-len(self.x) // self.batch_size)

        def on_epoch_end(self) -> None:
            if self.shuffle:
                self.order = self.rng.permutation(len(self.x))

        def __getitem__(self, i: int):
            rows = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            xb = self.x[rows]
            if self.augment:
                lr = self.rng.random(len(rows)) < 0.5
                ud = self.rng.random(len(rows)) < 0.5
                xb = np.where(lr[:, None, None, None], xb[:, :, ::-1], xb)
                xb = np.where(ud[:, None, None, None], xb[:, ::-1, :], xb)
            if self.w is None:
                return xb, self.y[rows]
            return xb, self.y[rows], self.w[rows]

    return _NumpyBatches


def NumpyBatches(x, y, w=None, *, batch_size: int, shuffle: bool, augment: bool, seed: int):
    """The NumPy input pipeline (a :class:`keras.utils.PyDataset`); see :func:`make_dataset`."""
    return _numpy_batches_cls()(
        x, y, w, batch_size=batch_size, shuffle=shuffle, augment=augment, seed=seed
    )


def _targets(frames: FrameSet, cfg: TrainConfig, c: int) -> tuple[np.ndarray, np.ndarray]:
    hard = frames.labels(cfg.label_rule)[:, c]
    if cfg.targets == "soft":
        target = frames.mean_scores[:, c]
    elif cfg.targets == "posterior":
        target = _crowd_posterior(frames, c)
    else:
        target = hard.astype(np.float32)
    return np.nan_to_num(target, nan=0.0).astype(np.float32), hard


def _crowd_posterior(frames: FrameSet, c: int) -> np.ndarray:
    """P(true label | the volunteers' answers) for category ``c``, from a two-coin crowd model
    fitted to these frames alone (the training side of a split never sees the held-out ones)."""
    from training.crowd import fit_two_coin, posterior, yes_counts

    n = np.maximum(frames.n_responses.astype(int), 1)  # frames without a count: one volunteer
    if not np.any(n >= 2):
        # With one answer per frame, volunteers' error rates and the prevalence cannot be told
        # apart: any posterior would be a guess.
        raise ValueError(
            "targets='posterior': expected crowd labels with two or more answers on some frames "
            f"(n_responses), got at most {int(n.max())} answer per frame"
        )
    k = yes_counts(frames.mean_scores[:, [c]], n)[:, 0]
    return posterior(k, n, fit_two_coin(k, n))


class _EpochCheckpoint:
    """Saves the model and the run state after every epoch, atomically."""

    def __init__(self, ckpt: Path, state: Path, history: dict, *, extra=None, probe=None):
        import keras

        outer = self
        if probe is not None and "members_history" in history:
            probe.restore(history["members_history"])

        class CB(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                for k, v in (logs or {}).items():
                    outer.history.setdefault(k, []).append(float(v))
                if outer.probe is not None:
                    outer.probe(self.model)
                    outer.history["members_history"] = outer.probe.state()
                save_model_atomic(self.model, outer.ckpt)
                write_json_atomic(
                    outer.state,
                    {"epochs_done": epoch + 1, "history": outer.history, **(outer.extra or {})},
                )

        self.ckpt, self.state, self.history = ckpt, state, history
        self.extra, self.probe = extra, probe
        self.callback = CB()


class _Job:
    """What every member of one training run shares."""

    def __init__(self, config, builder, out, train, val, *, shape):
        self.config, self.builder, self.out = config, builder, out
        self.train, self.val, self.shape = train, val, shape
        self.opts = config.builder_options()

    def new_member(self, m: dict):
        """Member ``m`` freshly built with its own seed (the same weights in either engine)."""
        import keras

        keras.utils.set_random_seed(m["seed"])
        model = self.builder(self.shape, 1, name=m["name"], **self.opts)
        if self.config.init_from is not None:
            src = Path(self.config.init_from) / "members" / f"{m['name']}.keras"
            model.set_weights(keras.models.load_model(src, compile=False).get_weights())
        return model

    def rows_and_weights(self, m: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Row index (a bootstrap sample or all rows), targets, and class-balance weights."""
        y, hard = _targets(self.train, self.config, m["_c"])
        idx = np.arange(len(self.train))
        if self.config.bootstrap:
            idx = np.random.default_rng(m["seed"]).integers(0, len(self.train), len(self.train))
        w = class_balance_weights(hard[idx]) if self.config.class_weight == "balanced" else None
        return idx, y, w

    def finish(self, m: dict, weights, history: dict) -> None:
        """Save member ``m`` without optimizer state (half the size), atomically, and its history."""
        clean = self.builder(self.shape, 1, name=m["name"], **self.opts)
        clean.set_weights(weights)
        if self.config.precise_bn:
            from training.precise_bn import precise_batchnorm

            precise_batchnorm(
                clean,
                self.train.images,
                batch_size=min(self.config.batch_size, len(self.train)),
                seed=m["seed"],
            )
        save_model_atomic(clean, self.out / m["file"])
        write_json_atomic(self.out / "history" / f"{m['name']}.json", history)


def _train_one(job: _Job, m: dict, n_members: int, verbose) -> int:
    """Train (or resume) member ``m``; returns the epoch it resumed after (0: from scratch)."""
    import keras

    out, config = job.out, job.config
    i = int(m["_i"]) + 1
    ckpt = out / "checkpoints" / f"{m['name']}.keras"
    state_path = out / "checkpoints" / f"{m['name']}.json"
    seed = m["seed"]
    start, history = 0, {}
    if ckpt.exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        start, history = int(state["epochs_done"]), state["history"]
        keras.utils.set_random_seed(seed)
        model = keras.models.load_model(ckpt)
        print(f"[{i}/{n_members}] {m['name']}: resuming after epoch {start}", flush=True)
    else:
        model = job.new_member(m)
    idx, y, w = job.rows_and_weights(m)
    ds = make_dataset(
        job.train.images[idx],
        y[idx],
        w,
        batch_size=config.batch_size,
        shuffle=True,
        augment=config.augment,
        seed=seed + start,
    )
    val_ds = None
    if job.val is not None:
        yv, _ = _targets(job.val, config, m["_c"])
        val_ds = make_dataset(
            job.val.images, yv, batch_size=256, shuffle=False, augment=False, seed=0
        )
    cb = _EpochCheckpoint(ckpt, state_path, history)
    hard = job.train.labels(config.label_rule)[:, m["_c"]]
    print(
        f"[{i}/{n_members}] {m['name']} ({m['category']}, seed {seed}): "
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
    job.finish(m, model.get_weights(), cb.history)
    ckpt.unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    keras.backend.clear_session(free_memory=True)
    return start


def member_loss_fn(n_members: int):
    """The fused loss: the sum over members of each member's weighted binary cross-entropy.

    ``y_true`` packs (N, 2G): the members' targets, then their per-frame weights. Members share
    no weights, so each member's gradient is exactly that of its own loss; per frame this is
    what Keras computes for one member with ``sample_weight`` (mean over the batch).
    """
    return _member_bce_cls()(n_members)


@functools.cache
def _member_bce_cls():
    import keras

    @keras.saving.register_keras_serializable(package="training")
    class MemberBCE(keras.losses.Loss):
        def __init__(self, n_members: int, name: str = "member_bce", **kw):
            super().__init__(name=name, **kw)
            self.n_members = int(n_members)

        def call(self, y_true, y_pred):
            from keras import ops

            g = self.n_members
            t, w = y_true[:, :g], y_true[:, g:]
            p = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
            bce = -(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
            return ops.sum(w * bce, axis=-1)

        def get_config(self):
            return {**super().get_config(), "n_members": self.n_members}

    return MemberBCE


class _OneDevice:
    """The part of a ``tf.distribute`` strategy the trainer uses, for the other backends."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def auto_layout(layout: str, *, architecture: str, gpus) -> str:
    """The fused engine's layout for ``layout="auto"``; other layouts pass through.

    >>> auto_layout("auto", architecture="wolkow", gpus=["GPU:0"])
    'branches'
    """
    if layout != "auto":
        return layout
    # CPU: 18 side-by-side branches (each member's activations stay cache-sized; 1.3x the
    # sequential speed on 2 cores, where one wide stack is slower). GPU: one wide stack, which
    # only DeepDog members have (cnn_family.stacked).
    return "stacked" if gpus and architecture == "deepdog" else "branches"


def _resolve_layout(layout: str, distribute: str, *, architecture: str = "deepdog"):
    from cnn_family.backend import backend_name, gpu_names

    gpus = gpu_names()
    layout = auto_layout(layout, architecture=architecture, gpus=gpus)
    if backend_name() != "tensorflow":
        if distribute == "mirrored":
            raise ValueError(
                f"distribute='mirrored' needs the TensorFlow backend, got {backend_name()!r}"
            )

        return layout, _OneDevice(), bool(gpus)
    import tensorflow as tf

    if distribute == "mirrored" or (distribute == "auto" and len(gpus) > 1):
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    return layout, strategy, bool(gpus)


def _train_fused(job: _Job, pending: list[dict], *, layout, distribute, verbose) -> int:
    """Train (or resume) the pending members in one model; returns the epoch it resumed after."""
    import keras

    from cnn_family.stacked import unstack_weights

    out, config = job.out, job.config
    names = [m["name"] for m in pending]
    g = len(pending)
    layout, strategy, on_gpu = _resolve_layout(layout, distribute, architecture=config.architecture)
    if layout == "stacked" and config.architecture != "deepdog":
        raise ValueError(
            f"layout 'stacked' needs DeepDog members, got architecture {config.architecture!r}; "
            "use layout='branches'"
        )
    ckpt = out / "checkpoints" / "fused.keras"
    state_path = out / "checkpoints" / "fused.json"
    start, history = 0, {}
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    prev_policy = keras.config.dtype_policy()
    mixed = on_gpu and layout == "stacked"
    try:
        if mixed:
            keras.config.set_dtype_policy("mixed_float16")
        with strategy.scope():
            if state and ckpt.exists() and state.get("members") == names:
                start, history = int(state["epochs_done"]), state["history"]
                _member_bce_cls()  # registered before the checkpoint names it
                model = keras.models.load_model(ckpt)
                print(f"fused: {g} members, resuming after epoch {start}", flush=True)
            else:
                inits = [job.new_member(m) for m in pending]
                model = _fused_model(inits, layout, job)
                opt = inits[0].optimizer
                model.compile(
                    optimizer=type(opt).from_config(opt.get_config()),
                    loss=member_loss_fn(g),
                    jit_compile=bool(on_gpu),
                )
    finally:
        keras.config.set_dtype_policy(prev_policy)

    n = len(job.train)
    targets = np.zeros((n, g), np.float32)
    weights = np.zeros((n, g), np.float32)
    for j, m in enumerate(pending):
        idx, y, w = job.rows_and_weights(m)
        # A bootstrap sample as per-frame counts: a frame drawn twice weighs twice.
        counts = np.bincount(idx, minlength=n).astype(np.float32)
        wj = np.ones(n, np.float32) if w is None else np.zeros(n, np.float32)
        if w is not None:
            wj[idx] = w  # class-balance weight of each drawn frame (equal for repeats)
        targets[:, j], weights[:, j] = y, counts * wj
    ds = make_dataset(
        job.train.images,
        np.concatenate([targets, weights], axis=1),
        batch_size=config.batch_size,
        shuffle=True,
        augment=config.augment,
        seed=config.seed + start,
    )
    probe = _Probe(job, pending)
    cb = _EpochCheckpoint(ckpt, state_path, history, extra={"members": names}, probe=probe)
    print(
        f"fused: {g} members ({', '.join(names[:3])}{', ...' if g > 3 else ''}) as {layout}"
        f"{' on ' + str(strategy.num_replicas_in_sync) + ' replicas' if strategy.num_replicas_in_sync > 1 else ''}"
        f", epochs {start + 1}..{config.epochs}, {n} frames",
        flush=True,
    )
    if start < config.epochs:
        model.fit(
            ds,
            initial_epoch=start,
            epochs=config.epochs,
            callbacks=[cb.callback],
            verbose=verbose,
            shuffle=False,
        )
    member_models = [job.builder(job.shape, 1, name=m["name"], **job.opts) for m in pending]
    if layout == "stacked":
        unstack_weights(model.get_layer("stack"), member_models)
    else:
        for mm in member_models:
            mm.set_weights(model.get_layer(mm.name).get_weights())
    for j, (m, mm) in enumerate(zip(pending, member_models, strict=True)):
        job.finish(m, mm.get_weights(), probe.member_history(j))
    ckpt.unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    keras.backend.clear_session(free_memory=True)
    return start


def _fused_model(inits: list, layout: str, job: _Job):
    import keras

    from cnn_family.stacked import DeepDogSpec, build_stack, stack_weights

    inp = keras.Input(job.shape, name="frame")
    if layout == "stacked":
        stack = stack_weights(
            build_stack(DeepDogSpec.of(inits[0]), len(inits), name="stack"), inits
        )
        out = stack(inp)
    else:
        # Uncompiled views of the members: a nested compiled model would carry its own
        # optimizer into the checkpoint and shadow the fused model's on resume.
        outs = [keras.Model(m.input, m.output, name=m.name)(inp) for m in inits]
        out = keras.layers.Concatenate(name="member_probs")(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inp, out, name="fused_family")


class _Probe:
    """Per-member loss and ROC-AUC after each epoch, on a fixed sample of training frames (and
    on the held-out sessions when there are any), in inference mode."""

    def __init__(self, job: _Job, pending: list[dict], n_probe: int = 512):
        rng = np.random.default_rng(job.config.seed)
        n = len(job.train)
        self.rows = np.sort(rng.choice(n, size=min(n, n_probe), replace=False))
        self.job, self.pending = job, pending
        self.sets = {"": (job.train, self.rows)}
        if job.val is not None:
            self.sets["val_"] = (job.val, np.arange(len(job.val)))
        self.history: list[dict] = [{} for _ in pending]

    def __call__(self, model) -> dict:
        from sklearn.metrics import roc_auc_score

        logs = {}
        for prefix, (fs, rows) in self.sets.items():
            p = np.asarray(model.predict(fs.images[rows][..., None], batch_size=64, verbose=0))
            for j, m in enumerate(self.pending):
                y, hard = _targets(fs, self.job.config, m["_c"])
                y, hard = y[rows], hard[rows]
                pj = np.clip(p[:, j], 1e-7, 1 - 1e-7)
                w = (
                    class_balance_weights(hard)
                    if self.job.config.class_weight == "balanced"
                    else np.ones(len(rows), np.float32)
                )
                loss = float(np.mean(w * -(y * np.log(pj) + (1 - y) * np.log(1 - pj))))
                auc = float(roc_auc_score(hard, pj)) if 0 < hard.sum() < len(hard) else float("nan")
                self.history[j].setdefault(prefix + "loss", []).append(loss)
                self.history[j].setdefault(prefix + "auc", []).append(auc)
                logs[f"{prefix}{m['name']}_auc"] = auc
        return logs

    def member_history(self, j: int) -> dict:
        return self.history[j]

    def state(self) -> list[dict]:
        return self.history

    def restore(self, hist: list[dict]) -> None:
        if len(hist) == len(self.pending):
            self.history = hist


def positive_rates(frames: FrameSet, rule: str, categories) -> dict[str, float]:
    """Share of positive frames per category under ``rule`` (the prior of each member)."""
    y = frames.labels(rule)
    return {c: round(float(y[:, CATEGORIES.index(c)].mean()), 6) for c in categories}


def _data_summary(frames: FrameSet, data_path: str | None) -> dict:
    return {
        "path": str(data_path) if data_path else None,
        "fingerprint": frames.fingerprint(),
        "n_frames": len(frames),
        "n_sessions": len(np.unique(frames.sessions)),
    }


def _precise_bn_for_kept(job: _Job, all_members, pending, old_manifest: dict, manifest: dict):
    """Precise BN for members kept from an earlier run that did not have it; then mark the
    manifest only if every member held is precise.

    Members trained in this run got it in :meth:`_Job.finish`. Kept members count as precise
    only on the word of a finished earlier run (its marker, or its list of members done): a
    family resumed from before precise BN existed must not be marked precise unprocessed.
    """
    import keras

    from training.precise_bn import MARKER, precise_batchnorm

    out = job.out
    held = [m for m in all_members if (out / m["file"]).exists()]
    finished_before = old_manifest.get("status") in ("complete", "partial")
    if finished_before and old_manifest.get("batchnorm", "").startswith("precise"):
        precise = {m["name"] for m in held}
    else:
        precise = set(old_manifest.get("precise_bn_members", []))
    precise |= {m["name"] for m in pending if (out / m["file"]).exists()}
    for m in held:
        if m["name"] in precise:
            continue
        path = out / m["file"]
        model = keras.models.load_model(path, compile=False)
        precise_batchnorm(
            model,
            job.train.images,
            batch_size=min(job.config.batch_size, len(job.train)),
            seed=m["seed"],
        )
        save_model_atomic(model, path)
        precise.add(m["name"])
        print(f"   {m['name']}: kept from an earlier run, BatchNorm statistics recomputed")
    manifest["precise_bn_members"] = sorted(precise)
    if held and all(m["name"] in precise for m in held):
        manifest.pop("precise_bn_members")
        manifest["batchnorm"] = MARKER.format(n=min(2048, len(job.train)))


def _fit_companion(train: FrameSet, config: TrainConfig, out: Path, *, refit: bool) -> dict:
    """Fit and save the family's spectral companion on its training frames; say what was done.

    A resumed run whose members were all done already keeps the companion it has. Frames with
    no positive (or no negative) in some category cannot teach it: the family then votes alone.
    """
    from cnn_family.spectral import FILE_NAME, SIZE, fit_companion

    if (out / FILE_NAME).exists() and not refit:
        return {"file": FILE_NAME, "frames": len(train)}
    y = train.labels(config.label_rule)[:, [CATEGORIES.index(c) for c in config.categories]]
    one_sided = [c for j, c in enumerate(config.categories) if len(np.unique(y[:, j])) < 2]
    why = None
    if train.images.shape[1:] != (SIZE, SIZE):
        why = f"its features are defined on {SIZE}x{SIZE} frames, not {train.images.shape[1:]}"
    elif one_sided:
        why = f"no positive or no negative frames in {one_sided}"
    if why:
        (out / FILE_NAME).unlink(missing_ok=True)
        print(f"no spectral companion: {why}")
        return {"file": None, "why": why}
    t = time.time()
    comp = fit_companion(
        train.images, y, categories=config.categories, about={"frames": len(train)}
    )
    comp.save(out)
    print(f"spectral companion fitted on {len(train)} frames ({time.time() - t:.0f} s)")
    return {"file": FILE_NAME, "frames": len(train)}


def train_family(
    frames: FrameSet,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    data_path: str | None = None,
    command: str | None = None,
    verbose: int | str = "auto",
    on_member_done: Callable[[str], None] | None = None,
    engine: str = "fused",
    members: str | Sequence[int] | None = None,
    layout: str = "auto",
    distribute: str = "auto",
) -> Path:
    """Train (or resume) the family described by ``config`` on the labelled rows of ``frames``.

    ``engine``: ``"fused"`` or ``"sequential"`` (see the module docstring). ``members``: only
    these member indices (``"0-5"``, ``"6-11,17"`` or a list), for sharded training.
    ``layout`` (fused engine): ``"branches"``, ``"stacked"`` or ``"auto"`` (stacked on a GPU
    for DeepDog members, branches otherwise).
    ``distribute``: ``"mirrored"``, ``"none"`` or ``"auto"`` (mirrored with 2+ GPUs).

    Returns the family folder. Raises :class:`ResumeMismatchError` if ``out_dir`` holds a run
    with a different configuration or different data.
    """

    from cnn_family import CNN_global

    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
    if layout not in ("auto", "branches", "stacked"):
        raise ValueError(f"layout: expected 'auto', 'branches' or 'stacked', got {layout!r}")
    if distribute not in ("auto", "mirrored", "none"):
        raise ValueError(f"distribute: expected 'auto', 'mirrored' or 'none', got {distribute!r}")

    out = Path(out_dir)
    builder = CNN_global(config.architecture)  # fail early on an unknown name
    frames = frames.subset(frames.labelled)
    if len(frames) == 0:
        raise ValueError("train_family: expected labelled frames, got none (all NaN scores)")
    data = _data_summary(frames, data_path)
    init = init_family_summary(config)  # fail before any training if it cannot start this run

    if config.val_fraction > 0:
        tr_idx, va_idx = session_split(
            frames.sessions, val_fraction=config.val_fraction, seed=config.seed
        )
        train, val = frames.subset(tr_idx), frames.subset(va_idx)
    else:
        train, val = frames, None

    all_members: list[dict] = []
    for category in config.categories:
        c = CATEGORIES.index(category)
        for k in range(config.members_per_category):
            all_members.append(
                {
                    "name": member_name(category, k),
                    "category": category,
                    "seed": member_seed(config.seed, c, k),
                    "file": f"members/{member_name(category, k)}.keras",
                    "_c": c,
                    "_i": len(all_members),
                }
            )

    if members is None:
        selected = list(range(len(all_members)))
    elif isinstance(members, str):
        from cnn_family.stacked import member_index_range

        selected = member_index_range(members, len(all_members))
    else:
        selected = sorted({int(i) for i in members})
        if not selected or selected[0] < 0 or selected[-1] >= len(all_members):
            raise ValueError(
                f"members: expected indices in 0-{len(all_members) - 1}, got {list(members)}"
            )

    # Every option is checked before anything is written: a run that cannot start must not
    # leave a config.json behind that a corrected command would then be refused by.
    builder((*frames.images.shape[1:], 1), 1, **config.builder_options())
    manifest_path = out / "manifest.json"
    old_manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if (out / "config.json").exists():
        old = TrainConfig.load(out / "config.json")
        if old != config:
            diff = "; ".join(
                f"{k}: {v!r} there, {getattr(config, k)!r} here"
                for k, v in old.to_dict().items()
                if v != config.to_dict()[k]
            )
            raise ResumeMismatchError(
                f"{out} holds a run with another configuration ({diff}). "
                "Run the same command as before to resume it, or choose another output name "
                "(or delete the folder) to start a new one."
            )
        old_data = old_manifest.get("data", {})
        if old_data.get("fingerprint") not in (None, data["fingerprint"]):
            raise ResumeMismatchError(
                f"{out} was trained on other data (fingerprint {old_data['fingerprint'][:12]}…), "
                f"this call gives {data['fingerprint'][:12]}…"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.json")

    from cnn_family.family import vote_rule

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
        "vote": vote_rule(config.members_per_category, companion=False),
        "training": config.to_dict(),
        "data": data,
        **({"init_from": init} if init else {}),
        # What the class-balance weights hid: Family.vote(undo_class_weights=True) needs it.
        "train_positive_rate": positive_rates(train, config.label_rule, config.categories),
        "versions": package_versions(),
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "members": [{k: v for k, v in m.items() if not k.startswith("_")} for m in all_members],
    }
    if len(selected) < len(all_members):
        manifest["shard"] = {"members": selected, "of": len(all_members)}
    write_json_atomic(manifest_path, manifest)

    t_start = time.time()
    job = _Job(config, builder, out, train, val, shape=(*frames.images.shape[1:], 1))
    pending = []
    for i in selected:
        m = all_members[i]
        if (out / m["file"]).exists() and (out / "history" / f"{m['name']}.json").exists():
            print(f"[{i + 1}/{len(all_members)}] {m['name']}: done already, kept", flush=True)
        else:
            pending.append(m)
    manifest["engine"] = engine
    # Which members went on from a checkpoint, and after which epoch: a resumed member draws its
    # later batches in another order than an uninterrupted run, so it is not bit-identical.
    resumed = {k: list(v) for k, v in old_manifest.get("resumed_after_epoch", {}).items()}
    if pending and engine == "sequential":
        for m in pending:
            start = _train_one(job, m, len(all_members), verbose)
            if start:
                resumed.setdefault(m["name"], []).append(start)
            if on_member_done is not None:
                on_member_done(m["name"])
    elif pending:
        start = _train_fused(job, pending, layout=layout, distribute=distribute, verbose=verbose)
        for m in pending:
            if start:
                resumed.setdefault(m["name"], []).append(start)
            if on_member_done is not None:
                on_member_done(m["name"])
    if resumed:
        manifest["resumed_after_epoch"] = resumed

    if config.precise_bn:
        _precise_bn_for_kept(job, all_members, pending, old_manifest, manifest)
    # Every shard fits the same companion (same frames, deterministic fit): a merge keeps one.
    if config.companion:
        manifest["companion"] = _fit_companion(train, config, out, refit=bool(pending))
        if manifest["companion"]["file"]:
            manifest["vote"] = vote_rule(config.members_per_category, companion=True)
    done = [(out / m["file"]).exists() for m in all_members]
    if not all(done):
        manifest["status"] = "partial"
        manifest["members_done"] = [m["name"] for m, d in zip(all_members, done, strict=True) if d]
        manifest["train_seconds_this_run"] = round(time.time() - t_start, 1)
        write_json_atomic(manifest_path, manifest)
        print(
            f"shard done: {sum(done)} of {len(all_members)} members in {out}; merge the shard "
            "folders with `python -m training.shards merge OUT SHARD_DIR...`",
            flush=True,
        )
        return out
    manifest["status"] = "complete"
    manifest.pop("shard", None)

    manifest["train_seconds_this_run"] = round(time.time() - t_start, 1)
    write_json_atomic(manifest_path, manifest)
    ck = out / "checkpoints"
    if ck.exists() and not any(ck.iterdir()):
        ck.rmdir()
    return out
