"""An SRGAN-style ×2 upscaler: DCGAN frames (64 px) to the family's 128×128.

After Ledig et al. (2017): residual blocks with PReLU, sub-pixel convolution
(:class:`PixelShuffle`) for the upscaling, a small adversary. VGG perceptual weights cannot be
downloaded here (DESIGN §4), so the content loss is pixel L1, L1 on the log power spectrum (a
lattice's peaks must come out at the right frequencies) and L1 on the adversary's own features
(feature matching), with a 1e-3 adversarial term. Trained on pairs made from full-size frames:
each 128 px frame against itself averaged down to 64 px.

>>> from gan_extras.srgan import SRGANConfig, train_srgan, upscale
>>> train_srgan(frames.images, out_dir="runs/srgan")                    # doctest: +SKIP
>>> big = upscale("runs/srgan", small)                                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from gan_extras import core


@dataclasses.dataclass(frozen=True)
class SRGANConfig:
    """One SRGAN run (saved as ``config.json`` beside the checkpoints)."""

    size: int = 128  # the output (high-resolution) size; the input is half of it
    filters: int = 32
    blocks: int = 4
    disc_filters: int = 16
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-4
    beta_1: float = 0.9
    fourier_weight: float = 0.1
    feature_weight: float = 0.1
    adversarial_weight: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        core.check_size(self)
        core.check_positive(self, ("filters", "blocks", "disc_filters", "steps", "batch_size"))


@keras.saving.register_keras_serializable(package="gan_extras")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel convolution's rearrangement: (H, W, C·r²) -> (H·r, W·r, C), any backend.

    >>> tuple(PixelShuffle(2)(np.zeros((1, 3, 3, 8), "float32")).shape)
    (1, 6, 6, 2)
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        from keras import ops

        r = self.factor
        _, h, w, c = x.shape
        c //= r * r
        x = ops.reshape(x, (-1, h, w, r, r, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, h * r, w * r, c))

    def compute_output_shape(self, shape):
        r = self.factor
        return (shape[0], shape[1] * r, shape[2] * r, shape[3] // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def generator(*, size: int = 128, filters: int = 32, blocks: int = 4):
    """(size/2, size/2, 1) in [-1, 1] -> (size, size, 1) in [-1, 1].

    >>> generator(size=32, filters=4, blocks=1).output_shape
    (None, 32, 32, 1)
    """
    from keras import layers

    def prelu(x):
        return layers.PReLU(shared_axes=[1, 2])(x)

    inp = keras.Input((size // 2, size // 2, 1))
    head = prelu(layers.Conv2D(filters, 9, padding="same")(inp))
    x = head
    for _ in range(blocks):
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(x))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(prelu(y)))
        x = layers.Add()([x, y])
    x = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(x))
    x = layers.Add()([head, x])
    x = prelu(PixelShuffle(2)(layers.Conv2D(filters * 4, 3, padding="same")(x)))
    out = layers.Conv2D(1, 9, padding="same", activation="tanh")(x)
    return keras.Model(inp, out, name="srgan_generator")


def discriminator(*, size: int = 128, filters: int = 16):
    """A frame -> (logit, features): the features feed the content loss.

    >>> [tuple(s) for s in discriminator(size=32, filters=4).output_shape]
    [(None, 1), (None, 4, 4, 16)]
    """
    from keras import layers

    inp = keras.Input((size, size, 1))
    x = layers.LeakyReLU(0.2)(layers.Conv2D(filters, 3, strides=2, padding="same")(inp))
    for k in (2, 4):
        x = layers.Conv2D(filters * k, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.LeakyReLU(0.2)(layers.BatchNormalization()(x))
    feats = x
    logit = layers.Dense(1)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, [logit, feats], name="srgan_discriminator")


def downscale(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 1) -> (N, H/2, W/2, 1) by 2×2 averages: the training inputs."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def train_srgan(
    frames,
    *,
    out_dir: str | Path,
    config: SRGANConfig = SRGANConfig(),
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Train (or resume) the ×2 upscaler on full-size frames; return ``out_dir``.

    ``out_dir`` receives ``generator.keras``, ``manifest.json``, ``config.json`` and
    ``checkpoint.npz``.
    """
    tf = core.require_tensorflow()
    if stop_at is not None:
        core.check_stop_at(stop_at)
    from training.data import check_images

    cfg = config
    x = check_images(frames)
    if x.shape[1:] != (cfg.size, cfg.size) or len(x) < 2:
        raise ValueError(
            f"frames: expected at least 2 frames of {cfg.size}x{cfg.size}, "
            f"got {len(x)} of {x.shape[1:]}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core.check_config(out_dir, cfg)
    keras.utils.set_random_seed(cfg.seed)
    gen = generator(size=cfg.size, filters=cfg.filters, blocks=cfg.blocks)
    disc = discriminator(size=cfg.size, filters=cfg.disc_filters)
    opts = {
        "g": (keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1), gen),
        "d": (keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1), disc),
    }

    @tf.function(reduce_retracing=True)
    def step(hr, lr_in):
        with tf.GradientTape() as gt, tf.GradientTape() as dt:
            sr = gen(lr_in, training=True)
            d_real, f_real = disc(hr, training=True)
            d_fake, f_fake = disc(sr, training=True)
            pixel = tf.reduce_mean(tf.abs(sr - hr))
            fourier = tf.reduce_mean(
                tf.abs(core.log_power_spectrum(sr) - core.log_power_spectrum(hr))
            )
            feature = tf.reduce_mean(tf.abs(f_fake - tf.stop_gradient(f_real)))
            adv = core.bce(1.0, d_fake)
            g_loss = (
                pixel
                + cfg.fourier_weight * fourier
                + cfg.feature_weight * feature
                + cfg.adversarial_weight * adv
            )
            d_loss = core.bce(1.0, d_real) + core.bce(0.0, d_fake)
        core.descend(opts["g"][0], gt, g_loss, gen.trainable_variables)
        core.descend(opts["d"][0], dt, d_loss, disc.trainable_variables)
        return {"pixel": pixel, "fourier": fourier, "feature": feature, "adv": adv, "d": d_loss}

    def step_fn(rng: np.random.Generator, _step: int) -> dict:
        hr = core.to_signed(x[rng.integers(len(x), size=cfg.batch_size)])
        flip = rng.integers(2, size=2)  # flips keep the scan geometry (as in the families)
        hr = hr[:, :: 1 - 2 * flip[0], :: 1 - 2 * flip[1]]
        hr = np.ascontiguousarray(hr)
        return {k: float(v) for k, v in step(hr, downscale(hr)).items()}

    history = core.run_steps(
        out_dir=out_dir,
        nets={"generator": gen, "discriminator": disc},
        opts=opts,
        step_fn=step_fn,
        config=cfg,
        decay_from=0.5,
        progress=progress,
        desc="SRGAN",
        stop_at=stop_at,
    )
    if core.checkpoint_step(out_dir) < cfg.steps:  # stopped early (stop_at)
        return out_dir  # the generator is written when the run completes
    core.save_generator(
        gen,
        out_dir,
        "generator",
        kind="srgan",
        config=cfg,
        history=history,
        input=f"({cfg.size // 2}, {cfg.size // 2}, 1) in [-1, 1]",
        data={"frames": len(x)},
    )
    return out_dir


def upscale(run_dir, frames: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Frames in [-1, 1] (N, h, w) or uint8 -> uint8 frames (N, 2h, 2w), min-max stretched."""
    path = Path(run_dir) / "generator.keras"
    if not path.exists():
        raise FileNotFoundError(
            f"SRGAN: expected a trained run in {run_dir} (generator.keras; train one with "
            "`python -m gan_extras srgan`), found none"
        )
    gen = keras.models.load_model(path, compile=False)
    x = np.asarray(frames)
    x = core.to_signed(x) if x.dtype == np.uint8 else x.astype(np.float32).reshape(*x.shape[:3], 1)
    h = gen.input_shape[1]
    if x.shape[1:3] != (h, h):
        raise ValueError(f"frames: expected {h}x{h} frames to upscale, got {x.shape[1:3]}")
    if not len(x):
        return np.zeros((0, 2 * h, 2 * h), np.uint8)
    return core.to_frames(gen.predict(x, batch_size=batch_size, verbose=0))
