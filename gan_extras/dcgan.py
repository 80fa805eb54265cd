"""A DCGAN conditioned on the six labels: new small frames that come with their labels.

After Radford et al. (2016) with dropout in the discriminator, as Shelkovnikova et al.
(Computer Optics 47(2), 2023) used on STM frames (best at 96 px, then an SRGAN to full size).
Both players see the label vector: the generator as extra inputs beside the noise, the
discriminator as six constant channels beside the frame, so a frame drawn for "Rows" has to
look like the Rows frames to pass. Non-saturating cross-entropy loss, Adam 2e-4 (β₁ 0.5),
real targets smoothed to 0.9.

>>> from gan_extras.dcgan import DCGANConfig, train_dcgan, sample
>>> train_dcgan(frames.images, frames.labels(), out_dir="runs/dcgan")    # doctest: +SKIP
>>> images, labels = sample("runs/dcgan", n=500, seed=0)                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from gan_extras import core


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
    """One DCGAN run (saved as ``config.json`` beside the checkpoints)."""

    size: int = 64
    latent: int = 100
    filters: int = 32  # the last generator level; each level up the stack doubles it
    steps: int = 3000
    batch_size: int = 32
    lr: float = 2e-4
    beta_1: float = 0.5
    dropout: float = 0.3
    real_target: float = 0.9
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        core.check_size(self)
        core.check_positive(self, ("latent", "filters", "steps", "batch_size", "checkpoint_every"))


N_LABELS = 6


def generator(*, size: int = 64, latent: int = 100, filters: int = 32):
    """(noise, labels) -> a frame (size, size, 1) in [-1, 1]; four transposed-conv levels.

    >>> generator(size=32, latent=8, filters=4).output_shape
    (None, 32, 32, 1)
    """
    import keras
    from keras import layers

    z, y = keras.Input((latent,), name="noise"), keras.Input((N_LABELS,), name="labels")
    start = size // 16
    x = layers.Concatenate()([z, y])
    x = layers.Dense(start * start * filters * 8, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(layers.Reshape((start, start, filters * 8))(x))
    for k in (4, 2, 1):
        x = layers.Conv2DTranspose(filters * k, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    out = layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(x)
    return keras.Model([z, y], out, name="dcgan_generator")


def discriminator(*, size: int = 64, filters: int = 32, dropout: float = 0.3):
    """(frame, labels) -> one logit (real > 0); the labels enter as six constant channels.

    >>> discriminator(size=32, filters=4).output_shape
    (None, 1)
    """
    import keras
    from keras import layers

    img, y = keras.Input((size, size, 1), name="frame"), keras.Input((N_LABELS,), name="labels")
    maps = layers.UpSampling2D(size)(layers.Reshape((1, 1, N_LABELS))(y))
    x = layers.Concatenate()([img, maps])
    for k in (1, 2, 4, 8):
        x = layers.Conv2D(filters * k, 4, strides=2, padding="same")(x)
        x = layers.Dropout(dropout)(layers.LeakyReLU(0.2)(x))
    out = layers.Dense(1)(layers.Flatten()(x))
    return keras.Model([img, y], out, name="dcgan_discriminator")


def label_rows(labels: np.ndarray) -> list[list]:
    """The distinct 0/1 label rows of a training set with their counts (kept in the manifest).

    >>> label_rows(np.array([[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]))
    [[[1, 0, 0, 0, 0, 0], 2]]
    """
    rows, counts = np.unique(np.asarray(labels, np.int64), axis=0, return_counts=True)
    return [[r.tolist(), int(c)] for r, c in zip(rows, counts, strict=True)]


def _check_labels(frames: np.ndarray, labels, size: int) -> tuple[np.ndarray, np.ndarray]:
    from training.data import check_images

    x = check_images(frames)
    if x.shape[1:] != (size, size):
        raise ValueError(
            f"frames: expected {size}x{size} frames (resize with gan_extras.extras.resize), "
            f"got {x.shape[1:]}"
        )
    y = np.asarray(labels, np.float32)
    if y.shape != (len(x), N_LABELS) or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"labels: expected 0/1 labels of shape ({len(x)}, {N_LABELS}), got shape {y.shape}"
        )
    if len(x) < 2:
        raise ValueError(f"frames: expected at least 2 labelled frames, got {len(x)}")
    return x, y


def train_dcgan(
    frames,
    labels,
    *,
    out_dir: str | Path,
    config: DCGANConfig = DCGANConfig(),
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Train (or resume) the conditional DCGAN on labelled frames of ``config.size`` px.

    ``out_dir`` receives ``generator.keras``, ``manifest.json`` (with the training label rows,
    from which :func:`sample` draws), ``config.json`` and ``checkpoint.npz``.
    """
    tf = core.require_tensorflow()
    if stop_at is not None:
        core.check_stop_at(stop_at)
    import keras

    cfg = config
    x, y = _check_labels(frames, labels, cfg.size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core.check_config(out_dir, cfg)
    keras.utils.set_random_seed(cfg.seed)
    gen = generator(size=cfg.size, latent=cfg.latent, filters=cfg.filters)
    disc = discriminator(size=cfg.size, filters=cfg.filters, dropout=cfg.dropout)
    opts = {
        "g": (keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1), gen),
        "d": (keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1), disc),
    }

    @tf.function(reduce_retracing=True)
    def step(real, lab, z):
        with tf.GradientTape() as gt, tf.GradientTape() as dt:
            fake = gen([z, lab], training=True)
            d_real = disc([real, lab], training=True)
            d_fake = disc([fake, lab], training=True)
            g_loss = core.bce(1.0, d_fake)
            d_loss = core.bce(cfg.real_target, d_real) + core.bce(0.0, d_fake)
        core.descend(opts["g"][0], gt, g_loss, gen.trainable_variables)
        core.descend(opts["d"][0], dt, d_loss, disc.trainable_variables)
        return {"g": g_loss, "d": d_loss}

    def step_fn(rng: np.random.Generator, _step: int) -> dict:
        i = rng.integers(len(x), size=cfg.batch_size)
        z = rng.standard_normal((cfg.batch_size, cfg.latent)).astype(np.float32)
        return {k: float(v) for k, v in step(core.to_signed(x[i]), y[i], z).items()}

    history = core.run_steps(
        out_dir=out_dir,
        nets={"generator": gen, "discriminator": disc},
        opts=opts,
        step_fn=step_fn,
        config=cfg,
        decay_from=1.0,  # DCGAN trains at a constant rate
        progress=progress,
        desc="DCGAN",
        stop_at=stop_at,
    )
    if core.checkpoint_step(out_dir) < cfg.steps:  # stopped early (stop_at)
        return out_dir  # the generator is written when the run completes
    core.save_generator(
        gen,
        out_dir,
        "generator",
        kind="dcgan",
        config=cfg,
        history=history,
        inputs=["noise (latent,) standard normal", "labels (6,) 0/1"],
        label_rows=label_rows(y),
        data={"frames": len(x)},
    )
    return out_dir


def sample(run_dir: str | Path, *, n: int, labels=None, seed: int = 0, batch_size: int = 64):
    """Draw ``n`` frames from a trained DCGAN: (frames in [-1, 1] (n, size, size), labels).

    The frames stay signed floats, as :func:`gan_extras.srgan.upscale` takes them;
    :func:`gan_extras.core.to_frames` makes uint8 frames of them.

    Without ``labels`` the label rows are drawn as often as they came in training, so the
    label co-occurrences of the drawn frames follow the training set's.
    """
    import keras

    run_dir = Path(run_dir)
    man_path, gen_path = run_dir / "manifest.json", run_dir / "generator.keras"
    if not gen_path.exists():
        raise FileNotFoundError(
            f"DCGAN: expected a trained run in {run_dir} (generator.keras; train one with "
            "`python -m gan_extras dcgan`), found none"
        )
    manifest = json.loads(man_path.read_text())
    rng = np.random.default_rng(seed)
    if labels is None:
        rows = np.array([r for r, _ in manifest["label_rows"]], np.float32)
        p = np.array([c for _, c in manifest["label_rows"]], np.float64)
        labels = rows[rng.choice(len(rows), size=n, p=p / p.sum())]
    labels = np.asarray(labels, np.float32)
    if labels.shape != (n, N_LABELS):
        raise ValueError(f"labels: expected shape ({n}, {N_LABELS}), got {labels.shape}")
    gen = keras.models.load_model(gen_path, compile=False)
    latent = manifest["config"]["latent"]
    z = rng.standard_normal((n, latent)).astype(np.float32)
    size = manifest["config"]["size"]
    if n == 0:
        return np.zeros((0, size, size), np.float32), labels
    return gen.predict([z, labels], batch_size=batch_size, verbose=0)[..., 0], labels
