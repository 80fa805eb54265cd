"""A CycleGAN that makes simulated scans look real, so their labels carry over.

After Khan et al. (NeurIPS 2022 workshop, ``ClarkResearchGroup/stem-learning``) and DESIGN §4:
two U-Net generators (simulated → real and back), PatchGAN discriminators on the image and
two more on the log power spectrum (:func:`gan_extras.core.log_power_spectrum`),
least-squares adversarial loss, cycle L1 ×10, identity L1 ×5, Adam 2e-3 decayed linearly
over the second half, Gaussian noise σ 0.1 on the simulated inputs. The real frames need no
labels: the translated simulated frames keep the simulator's.

>>> from gan_extras.cyclegan import CycleGANConfig, train_cyclegan, translate
>>> cfg = CycleGANConfig(steps=2000)                                     # doctest: +SKIP
>>> train_cyclegan(sim.images, real.images, out_dir="runs/cyclegan", config=cfg)  # doctest: +SKIP
>>> looks_real = translate("runs/cyclegan", sim.images)                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gan_extras import core


@dataclasses.dataclass(frozen=True)
class CycleGANConfig:
    """One CycleGAN run (saved as ``config.json`` beside the checkpoints)."""

    size: int = 128
    filters: int = 16  # the generators' first level; each level down doubles it
    depth: int = 4  # U-Net levels: 128 px -> 8 px at the bottom
    disc_filters: int = 16
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    beta_1: float = 0.5
    decay_from: float = 0.5
    cycle_weight: float = 10.0
    identity_weight: float = 5.0
    sim_noise: float = 0.1
    fourier: bool = True  # the two spectrum discriminators
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        core.check_size(self, multiple=2**self.depth, least=2 ** (self.depth + 1))
        core.check_positive(
            self, ("filters", "disc_filters", "steps", "batch_size", "checkpoint_every")
        )


def unet_generator(*, size: int = 128, filters: int = 16, depth: int = 4, name: str = "gen"):
    """U-Net image-to-image generator, (size, size, 1) in [-1, 1] -> the same shape.

    Instance normalisation (``GroupNormalization(groups=-1)``), as CycleGANs use: each frame is
    normalised on its own, as the export pipeline normalises each scan.

    >>> unet_generator(size=32, filters=4, depth=2).output_shape
    (None, 32, 32, 1)
    """
    import keras
    from keras import layers

    inp = keras.Input((size, size, 1))
    x, skips = inp, []
    for level in range(depth):
        f = filters * 2**level
        x = layers.Conv2D(f, 4, strides=2, padding="same", use_bias=level == 0)(x)
        if level:
            x = layers.GroupNormalization(groups=-1)(x)
        x = layers.LeakyReLU(0.2)(x)
        skips.append(x)
    for level in reversed(range(depth - 1)):
        f = filters * 2**level
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.GroupNormalization(groups=-1)(x)
        x = layers.ReLU()(x)
        x = layers.Concatenate()([x, skips[level]])
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same")(x)
    x = layers.ReLU()(x)
    # The input at full resolution too: translation should change the look, not the lattice.
    x = layers.Concatenate()([x, inp])
    out = layers.Conv2D(1, 3, padding="same", activation="tanh")(x)
    return keras.Model(inp, out, name=name)


def patch_discriminator(*, size: int = 128, filters: int = 16, name: str = "disc"):
    """PatchGAN discriminator: a grid of real/fake scores (least-squares targets 1 / 0).

    >>> patch_discriminator(size=32, filters=4).output_shape
    (None, 4, 4, 1)
    """
    import keras
    from keras import layers

    inp = keras.Input((size, size, 1))
    x = layers.Conv2D(filters, 4, strides=2, padding="same")(inp)
    x = layers.LeakyReLU(0.2)(x)
    for k in (2, 4):
        x = layers.Conv2D(filters * k, 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.GroupNormalization(groups=-1)(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Conv2D(filters * 8, 4, padding="same", use_bias=False)(x)
    x = layers.GroupNormalization(groups=-1)(x)
    x = layers.LeakyReLU(0.2)(x)
    out = layers.Conv2D(1, 4, padding="same")(x)
    return keras.Model(inp, out, name=name)


def _frames_arg(x, size: int, what: str) -> np.ndarray:
    from training.data import check_images

    x = check_images(x)
    if x.shape[1:] != (size, size):
        raise ValueError(f"{what}: expected {size}x{size} frames, got {x.shape[1:]}")
    if len(x) < 2:
        raise ValueError(f"{what}: expected at least 2 frames, got {len(x)}")
    return x


def train_cyclegan(
    sim_frames,
    real_frames,
    *,
    out_dir: str | Path,
    config: CycleGANConfig = CycleGANConfig(),
    progress: bool = True,
    stop_at: int | None = None,
) -> Path:
    """Train (or resume) a CycleGAN from simulated to real frames; return ``out_dir``.

    ``out_dir`` receives ``sim_to_real.keras`` (what :func:`translate` uses), ``manifest.json``
    (config, data sizes, final losses, versions), ``config.json`` and ``checkpoint.npz``
    (weights and optimizer states every ``checkpoint_every`` steps; run the same call again
    after an interruption and it continues from there). ``stop_at`` ends the call at that step,
    checkpointed, with no generator written yet: a run split into pieces (a Colab session at a
    time) ends with the same weights as one that never stopped.
    """
    tf = core.require_tensorflow()
    if stop_at is not None:
        core.check_stop_at(stop_at)
    import keras

    cfg = config
    sim = _frames_arg(sim_frames, cfg.size, "simulated frames")
    real = _frames_arg(real_frames, cfg.size, "real frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    core.check_config(out_dir, cfg)
    keras.utils.set_random_seed(cfg.seed)

    g_kw = {"size": cfg.size, "filters": cfg.filters, "depth": cfg.depth}
    d_kw = {"size": cfg.size, "filters": cfg.disc_filters}
    g_sr, g_rs = (
        unet_generator(**g_kw, name="sim_to_real"),
        unet_generator(**g_kw, name="real_to_sim"),
    )
    discs = {k: patch_discriminator(**d_kw, name=k) for k in ("d_real", "d_sim")}
    if cfg.fourier:
        discs.update({k: patch_discriminator(**d_kw, name=k) for k in ("d_real_fft", "d_sim_fft")})
    nets = {"sim_to_real": g_sr, "real_to_sim": g_rs, **discs}

    def adam():
        return keras.optimizers.Adam(cfg.lr, beta_1=cfg.beta_1)

    opts = {"g": (adam(), _Pair(g_sr, g_rs))} | {k: (adam(), d) for k, d in discs.items()}
    g_vars = g_sr.trainable_variables + g_rs.trainable_variables

    def mse(a, b):
        return tf.reduce_mean(tf.square(a - b))

    def adv_g(d, fake):  # the generator wants its fakes scored 1
        return mse(d(fake, training=False), 1.0)

    def adv_d(d, real, fake):
        return 0.5 * (mse(d(real, training=True), 1.0) + mse(d(fake, training=True), 0.0))

    @tf.function(reduce_retracing=True)
    def step(s, r, noise):
        s = s + noise
        with tf.GradientTape(persistent=True) as tape:
            fake_r, fake_s = g_sr(s, training=True), g_rs(r, training=True)
            cyc = tf.reduce_mean(tf.abs(g_rs(fake_r, training=True) - s)) + tf.reduce_mean(
                tf.abs(g_sr(fake_s, training=True) - r)
            )
            ident = tf.reduce_mean(tf.abs(g_sr(r, training=True) - r)) + tf.reduce_mean(
                tf.abs(g_rs(s, training=True) - s)
            )
            adv = adv_g(discs["d_real"], fake_r) + adv_g(discs["d_sim"], fake_s)
            if cfg.fourier:
                adv = 0.5 * (
                    adv
                    + adv_g(discs["d_real_fft"], core.log_power_spectrum(fake_r))
                    + adv_g(discs["d_sim_fft"], core.log_power_spectrum(fake_s))
                )
            g_loss = adv + cfg.cycle_weight * cyc + cfg.identity_weight * ident
            d_losses = {
                "d_real": adv_d(discs["d_real"], r, tf.stop_gradient(fake_r)),
                "d_sim": adv_d(discs["d_sim"], s, tf.stop_gradient(fake_s)),
            }
            if cfg.fourier:
                d_losses["d_real_fft"] = adv_d(
                    discs["d_real_fft"],
                    core.log_power_spectrum(r),
                    core.log_power_spectrum(tf.stop_gradient(fake_r)),
                )
                d_losses["d_sim_fft"] = adv_d(
                    discs["d_sim_fft"],
                    core.log_power_spectrum(s),
                    core.log_power_spectrum(tf.stop_gradient(fake_s)),
                )
        core.descend(opts["g"][0], tape, g_loss, g_vars)
        for k, loss in d_losses.items():
            core.descend(opts[k][0], tape, loss, discs[k].trainable_variables)
        del tape
        return {"adv": adv, "cycle": cyc, "identity": ident, **d_losses}

    def step_fn(rng: np.random.Generator, _step: int) -> dict:
        s = core.to_signed(sim[rng.integers(len(sim), size=cfg.batch_size)])
        r = core.to_signed(real[rng.integers(len(real), size=cfg.batch_size)])
        noise = (cfg.sim_noise * rng.standard_normal(s.shape)).astype(np.float32)
        return {k: float(v) for k, v in step(s, r, noise).items()}

    history = core.run_steps(
        out_dir=out_dir,
        nets=nets,
        opts=opts,
        step_fn=step_fn,
        config=cfg,
        decay_from=cfg.decay_from,
        progress=progress,
        desc="CycleGAN",
        stop_at=stop_at,
    )
    if core.checkpoint_step(out_dir) < cfg.steps:  # stopped early (stop_at)
        return out_dir  # the generator is written when the run completes
    core.save_generator(
        g_sr,
        out_dir,
        "sim_to_real",
        kind="cyclegan",
        config=cfg,
        history=history,
        input="uint8 frames scaled to [-1, 1]; output min-max stretched to 0-255",
        data={"simulated_frames": len(sim), "real_frames": len(real)},
    )
    return out_dir


class _Pair:
    """Both generators under one optimizer: their losses are one sum (cycle ties them)."""

    def __init__(self, a, b):
        self._a, self._b = a, b

    @property
    def trainable_variables(self):
        return self._a.trainable_variables + self._b.trainable_variables


def translate(generator, frames, *, batch_size: int = 32) -> np.ndarray:
    """Simulated frames -> frames that look real: uint8 (N, H, W), min-max stretched.

    ``generator`` is a trained run's folder, its ``sim_to_real.keras``, or a Keras model.
    """
    import keras

    from training.data import check_images

    if not hasattr(generator, "predict"):
        path = Path(generator)
        if path.is_dir():
            path = path / "sim_to_real.keras"
        if not path.exists():
            raise FileNotFoundError(
                f"CycleGAN generator: expected a run folder holding sim_to_real.keras, or the "
                f"file, at {path}; found nothing (train one with `python -m gan_extras cyclegan`)"
            )
        generator = keras.models.load_model(path, compile=False)
    x = check_images(frames)
    size = generator.input_shape[1]
    if x.shape[1:] != (size, size):
        raise ValueError(f"frames: expected {size}x{size} frames, got {x.shape[1:]}")
    if not len(x):
        return np.zeros((0, size, size), np.uint8)
    return core.to_frames(generator.predict(core.to_signed(x), batch_size=batch_size, verbose=0))
