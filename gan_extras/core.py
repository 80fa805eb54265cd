"""What the three GANs share: frame scaling, the log power spectrum, and a resumable loop.

Every GAN here trains with its own step function (two or more networks, each with its own
optimizer, which ``Model.fit`` does not express), so the loop is written once:
:func:`run_steps` draws each batch from a generator seeded by (seed, step), so a run resumed
after an interruption draws the same batches as one that never stopped; it saves every
network's weights and every optimizer's state in one ``checkpoint.npz`` written atomically,
keeps the loss history, and decays the learning rate linearly over the last part of the run
(the CycleGAN recipe).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.data import atomic_path
from training.io import save_model_atomic, write_json_atomic


class BackendError(ValueError):
    """The GANs train with TensorFlow's gradient tape; another Keras backend was active."""


class GanResumeError(ValueError):
    """``out_dir`` holds a run with another configuration."""


def require_tensorflow():
    """Return the ``tensorflow`` module, or raise :class:`BackendError` naming the backend.

    The families train on any Keras backend; the GAN steps use ``tf.GradientTape`` directly
    (two players, six optimizers), so they need the default TensorFlow backend.
    """
    import keras

    name = keras.backend.backend()
    if name != "tensorflow":
        raise BackendError(
            f"GAN training: expected the TensorFlow Keras backend, got {name!r}; "
            "unset KERAS_BACKEND (or set it to tensorflow)"
        )
    import tensorflow as tf

    return tf


def to_signed(frames: np.ndarray) -> np.ndarray:
    """uint8 frames (N, H, W) -> float32 (N, H, W, 1) in [-1, 1].

    >>> to_signed(np.array([[[0, 255]]], np.uint8))[..., 0].tolist()
    [[[-1.0, 1.0]]]
    """
    x = np.asarray(frames)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3:
        raise ValueError(f"frames: expected (N, H, W) grey frames, got shape {x.shape}")
    return (x.astype(np.float32) / 127.5 - 1.0)[..., None]


def to_frames(x: np.ndarray) -> np.ndarray:
    """Network output (N, H, W[, 1]) -> uint8 frames, each stretched min-max to 0-255.

    The last step of the real export pipeline (per-frame min-max, 8-bit), so generated frames
    follow the convention of every real and simulated one.

    >>> to_frames(np.array([[[0.1, 0.3]]])).tolist()
    [[[0, 255]]]
    """
    x = np.asarray(x, np.float64)
    if x.ndim == 4:
        x = x[..., 0]
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    return np.round(255.0 * (x - lo) / np.where(span > 0, span, 1.0)).astype(np.uint8)


def log_power_spectrum(x):
    """(N, H, W, 1) tensor -> its centred log power spectrum, standardised per frame.

    What the Fourier-space discriminators see (Khan et al. 2022): a lattice's peaks, a noise
    floor and a blur's fall-off are plain there, where an image discriminator has to find them.
    """
    import tensorflow as tf

    # tf.complex, not tf.cast: its gradient back to the real input is defined without a warning.
    z = tf.complex(x[..., 0], tf.zeros_like(x[..., 0]))
    p = tf.math.log(tf.abs(tf.signal.fft2d(z)) ** 2 + 1e-6)
    p = tf.signal.fftshift(p, axes=(1, 2))
    mean, var = tf.nn.moments(p, axes=(1, 2), keepdims=True)
    return ((p - mean) / tf.sqrt(var + 1e-6))[..., None]


def check_size(config, *, multiple: int = 16, least: int = 32) -> None:
    """Raise ``ValueError`` unless ``config.size`` is a multiple of ``multiple``, >= ``least``."""
    if config.size % multiple or config.size < least:
        raise ValueError(
            f"{type(config).__name__}: expected size a multiple of {multiple} and at least "
            f"{least}, got {config.size}"
        )


def check_positive(config, names) -> None:
    """Raise ``ValueError`` naming the first of ``names`` on ``config`` that is below 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(
                f"{type(config).__name__}: expected {name} >= 1, got {getattr(config, name)}"
            )


def bce(target: float, logits):
    """Sigmoid cross-entropy of ``logits`` against a constant ``target`` (a tensor's mean)."""
    import tensorflow as tf

    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits)
    )


def descend(optimizer, tape, loss, variables) -> None:
    """One optimizer step on ``loss`` for ``variables`` (inside a ``tf.function``)."""
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))


def linear_decay(step: int, *, steps: int, lr: float, decay_from: float) -> float:
    """``lr`` until ``decay_from`` of the run, then linearly down to 0 at its end.

    >>> [round(linear_decay(s, steps=10, lr=1.0, decay_from=0.5), 2) for s in (0, 5, 8)]
    [1.0, 1.0, 0.4]
    """
    start = int(steps * decay_from)
    if step < start or steps <= start:
        return lr
    return lr * max(0.0, (steps - step) / (steps - start))


def _load_checkpoint(path: Path, nets: dict, opts: dict) -> tuple[int, dict]:
    with np.load(path, allow_pickle=False) as z:
        for name, net in nets.items():
            n = int(z[f"{name}/n"])
            net.set_weights([z[f"{name}/{i}"] for i in range(n)])
        for name, (opt, net) in opts.items():
            opt.build(net.trainable_variables)
            n = int(z[f"opt:{name}/n"])
            if n != len(opt.variables):
                raise GanResumeError(
                    f"{path}: optimizer {name!r} expected {len(opt.variables)} variables, "
                    f"got {n}; delete the folder to start again"
                )
            for i, v in enumerate(opt.variables):
                v.assign(z[f"opt:{name}/{i}"])
        step = int(z["step"])
        history = json.loads(str(z["history"]))
    return step, history


def _save_checkpoint(path: Path, nets: dict, opts: dict, step: int, history: dict) -> None:
    arrays: dict[str, np.ndarray] = {
        "step": np.array(step),
        "history": np.array(json.dumps(history)),
    }
    for name, net in nets.items():
        w = net.get_weights()
        arrays[f"{name}/n"] = np.array(len(w))
        arrays.update({f"{name}/{i}": a for i, a in enumerate(w)})
    for name, (opt, _) in opts.items():
        arrays[f"opt:{name}/n"] = np.array(len(opt.variables))
        arrays.update({f"opt:{name}/{i}": np.asarray(v) for i, v in enumerate(opt.variables)})
    path, tmp = atomic_path(path)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# A resumed run may go on longer (or save more often); anything else would mix two runs.
RESUMABLE_CHANGES = ("steps", "checkpoint_every")


def check_config(out_dir: Path, config) -> None:
    """Write ``config.json`` for a new run, or refuse a resume under another configuration.

    ``steps`` may grow: the run continues to the new count (its learning-rate decay follows).
    """
    cfg = dataclasses.asdict(config)
    path = out_dir / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {
            k: (old.get(k), v)
            for k, v in cfg.items()
            if old.get(k) != v and k not in RESUMABLE_CHANGES
        }
        if diff:
            text = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise GanResumeError(
                f"{out_dir} holds a run with another configuration ({text}); "
                "give another folder, or the same options to resume"
            )
    write_json_atomic(path, cfg)


def run_steps(
    *,
    out_dir: Path,
    nets: dict,
    opts: dict,
    step_fn: Callable[[np.random.Generator, int], dict],
    config,
    decay_from: float,
    progress: bool = True,
    desc: str = "GAN",
    stop_at: int | None = None,
) -> dict:
    """Run ``step_fn`` from the last checkpoint in ``out_dir`` to ``steps``; return the history.

    ``nets`` maps names to Keras models (all saved); ``opts`` maps names to (optimizer, model
    it updates). ``step_fn(rng, step)`` draws its batch from ``rng`` and returns its losses.
    ``config`` gives ``steps``, ``lr``, ``seed`` and ``checkpoint_every``. ``stop_at`` ends
    this call early, checkpointed, at that step; a later call goes on exactly as if it had
    never stopped (the learning-rate schedule follows ``steps``, not ``stop_at``);
    :func:`checkpoint_step` tells where it stopped.
    """
    steps, lr, seed = config.steps, config.lr, config.seed
    checkpoint_every = config.checkpoint_every
    end = steps if stop_at is None else min(steps, check_stop_at(stop_at))
    from tqdm.auto import tqdm

    ckpt = out_dir / "checkpoint.npz"
    step, history = (0, {})
    for opt, net in opts.values():
        opt.build(net.trainable_variables)
    if ckpt.exists():
        step, history = _load_checkpoint(ckpt, nets, opts)
        if progress and step < end:
            print(f"{desc}: resuming at step {step} of {steps} ({ckpt})", flush=True)
    bar = tqdm(
        total=steps, initial=step, desc=desc, disable=not progress, unit="step", mininterval=2
    )
    t0, done = time.perf_counter(), 0
    while step < end:
        rate = linear_decay(step, steps=steps, lr=lr, decay_from=decay_from)
        for opt, _ in opts.values():
            opt.learning_rate = rate
        losses = step_fn(np.random.default_rng([seed, step]), step)
        for k, v in losses.items():
            history.setdefault(k, []).append(float(v))
        step += 1
        done += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix({k: f"{float(v):.3f}" for k, v in list(losses.items())[:4]})
        if step % checkpoint_every == 0 or step == end:
            _save_checkpoint(ckpt, nets, opts, step, history)
    bar.close()
    history["_seconds_this_run"] = [time.perf_counter() - t0]
    history["_steps_this_run"] = [done]
    return history


def check_stop_at(stop_at: int) -> int:
    """``stop_at`` as an int, or ``ValueError`` unless it is a step count >= 1."""
    if isinstance(stop_at, bool) or not isinstance(stop_at, int | np.integer) or stop_at < 1:
        raise ValueError(f"stop_at: expected a step count >= 1, got {stop_at!r}")
    return int(stop_at)


def checkpoint_step(out_dir: str | Path) -> int:
    """The step a run folder's ``checkpoint.npz`` holds (0 when it has none).

    >>> checkpoint_step("/nonexistent")
    0
    """
    ckpt = Path(out_dir) / "checkpoint.npz"
    if not ckpt.exists():
        return 0
    with np.load(ckpt, allow_pickle=False) as z:
        return int(z["step"])


def save_generator(
    model, out_dir: Path, name: str, *, kind: str, config, history: dict, **about
) -> Path:
    """Save a trained generator as ``<name>.keras`` and its manifest beside it, atomically.

    The manifest holds ``kind``, the file name, ``config``, the last losses, the versions and
    whatever ``about`` adds (inputs, data sizes).
    """
    path = save_model_atomic(model, out_dir / f"{name}.keras")
    manifest = {
        "kind": kind,
        "generator": path.name,
        **about,
        "config": dataclasses.asdict(config),
        "final_losses": {k: v[-1] for k, v in history.items() if not k.startswith("_")},
        "versions": versions(),
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    return path


def versions() -> dict[str, str]:
    from cnn_family.backend import versions as v

    return v()
