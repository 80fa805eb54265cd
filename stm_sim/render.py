"""Render labelled H:Si(100) STM frames from physical parameters (numpy only).

Physics, calibrated on the Nottingham frames (DESIGN §1.3):

* the 2x1 reconstruction: dimer rows every 7.68 Å, dimers every 3.84 Å along a row, two lobes
  per dimer (apparent separation ~3.2 Å) across the row; rows at 0/45/90/135° ± 3° to the fast
  scan axis; buckled dimers (c(4x2): neighbouring rows out of phase, p(2x2): in phase);
* bright dangling bonds and adsorbate blobs, single-layer steps (1.36 Å) with rows turned 90°;
* the tip as a kernel applied in Fourier space: a Gaussian apex of width ``tip_sigma`` (Å),
  elongated or lopsided, or several apices (ghost copies);
* scanning: drift shear and creep (in the coordinates), a tip change spliced at a scan line
  with streaks, 1/f and white noise, line offsets, mains hum, glitches, feedback ringing and
  crashed (clipped) regions;
* the export of the real pipeline: per-line mean subtraction, per-frame min-max, 8 bit.

The lattice is a sum of Gaussians on a rectangular grid, which factorises into two 1-D periodic
trains, so a frame costs a handful of vectorised array operations plus two FFTs.
"""

from __future__ import annotations

import numpy as np

from stm_sim.params import FrameParams, TipParams

ROW_PERIOD = 7.68  # Å, between dimer rows
DIMER_PITCH = 3.84  # Å, between dimers along a row
LOBE_SEPARATION = 3.2  # Å, apparent, across the row
LOBE_SIGMA = 0.55  # Å, intrinsic width of one lobe
STEP_HEIGHT = 1.36  # Å, single atomic layer of Si(100)
PAD = 24  # px rendered beyond each edge so the tip kernel does not wrap around


def _train(u: np.ndarray, period: float, sigma: float) -> np.ndarray:
    """Periodic Gaussian train at ``u`` (nearest lattice point only; sigma << period)."""
    d = np.mod(u + period / 2, period) - period / 2
    return np.exp(-0.5 * (d / sigma) ** 2)


def _alternating(u: np.ndarray, period: float, sigma: float) -> np.ndarray:
    """Like _train, but the sign alternates from one lattice point to the next."""
    k = np.floor(u / period + 0.5)
    sign = 1.0 - 2.0 * np.mod(k, 2)
    return sign * _train(u, period, sigma)


def _lattice(
    p: np.ndarray, q: np.ndarray, buckling: float, pattern: str, phase: tuple
) -> np.ndarray:
    """Height of the dimer lattice at row coordinate p (along rows) and q (across), in Å units."""
    p = p + phase[0]
    q = q + phase[1]
    half = LOBE_SEPARATION / 2
    along = _train(p, DIMER_PITCH, LOBE_SIGMA * 1.6)
    lobe_a = _train(q - half, ROW_PERIOD, LOBE_SIGMA)
    lobe_b = _train(q + half, ROW_PERIOD, LOBE_SIGMA)
    h = along * (lobe_a + lobe_b)
    if buckling:
        alt_p = _alternating(p, DIMER_PITCH, LOBE_SIGMA * 1.6)
        if pattern == "c4x2":
            diff = _alternating(q - half, ROW_PERIOD, LOBE_SIGMA) - _alternating(
                q + half, ROW_PERIOD, LOBE_SIGMA
            )
        else:  # p(2x2): every row in phase
            diff = lobe_a - lobe_b
        h = h + buckling * alt_p * diff
    # A broad row backbone: rows read as ridges even where the lobes blur away.
    h = h + 0.6 * _train(q, ROW_PERIOD, 2.0)
    return h


def _tip_kernel_ft(t: TipParams, n: int, px: float) -> np.ndarray:
    """Fourier transform of the tip kernel on an n x n grid of pixel size ``px`` Å."""
    f = np.fft.fftfreq(n, d=px)
    fy, fx = np.meshgrid(f, np.fft.rfftfreq(n, d=px), indexing="ij")
    th = np.deg2rad(t.elongation_angle)
    fa = fx * np.cos(th) + fy * np.sin(th)
    fb = -fx * np.sin(th) + fy * np.cos(th)
    sa, sb = t.sigma * t.elongation, t.sigma
    gauss = np.exp(-2 * np.pi**2 * ((sa * fa) ** 2 + (sb * fb) ** 2))
    kern = np.zeros_like(fx, dtype=np.complex128)
    for (dx, dy), w in zip(t.apex_offsets, t.apex_weights, strict=True):
        kern += w * np.exp(-2j * np.pi * (fx * dx + fy * dy))
    return gauss * kern


def _height(fp: FrameParams, n: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """(lattice height, defect height) on an n x n padded grid, before the tip."""
    s = fp.surface
    idx = (np.arange(n) - PAD) * px
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    # Drift shear and piezo creep act on where the tip really is at each pixel.
    xx = (
        xx
        + fp.scan.shear * yy
        + fp.scan.creep * np.exp(-np.clip(yy, 0, None) / max(fp.scan.creep_tau, 1e-3))
    )
    th = np.deg2rad(s.rotation)
    p = xx * np.cos(th) + yy * np.sin(th)
    q = -xx * np.sin(th) + yy * np.cos(th)
    h = _lattice(p, q, s.buckling, s.buckle_pattern, s.phase)
    if s.step is not None:
        a, c = s.step  # step line: a = its angle (deg), c = offset (Å) from the centre
        ca = np.deg2rad(a)
        side = (xx - fp.fov / 2) * np.cos(ca) + (yy - fp.fov / 2) * np.sin(ca) > c
        h2 = _lattice(-q, p, s.buckling, s.buckle_pattern, s.phase)  # rows turned 90 degrees
        h = np.where(side, h2 + STEP_HEIGHT, h)
    d = np.zeros_like(h)
    for x0, y0, amp, sig in s.blobs:
        d += amp * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sig**2)
    return h, d


def _scan_artefacts(img: np.ndarray, fp: FrameParams, rng: np.random.Generator) -> np.ndarray:
    n = img.shape[0]
    sc = fp.scan
    span = float(np.ptp(img)) or 1.0
    if sc.ringing:
        # Feedback ringing: a damped oscillation after every edge along the fast axis.
        k = np.arange(n)
        kernel = np.exp(-k / sc.ringing_decay) * np.cos(2 * np.pi * k / sc.ringing_period)
        kernel[0] = 1.0
        img = img + sc.ringing * np.fft.irfft(
            np.fft.rfft(np.diff(img, axis=1, prepend=img[:, :1]), axis=1)
            * np.fft.rfft(kernel)[None],
            n=n,
            axis=1,
        )
    if sc.pink_noise:
        fy = np.fft.fftfreq(n)[:, None]
        fx = np.fft.rfftfreq(n)[None, :]
        f = np.sqrt(fx**2 + fy**2)
        f[0, 0] = 1.0
        spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f
        pink = np.fft.irfft2(spec, s=(n, n))
        img = img + sc.pink_noise * span * pink / (pink.std() + 1e-12)
    if sc.hum:
        t = np.arange(n * n, dtype=np.float64).reshape(n, n)
        img = img + sc.hum * span * np.sin(2 * np.pi * t / sc.hum_period + sc.hum_phase)
    if sc.line_offsets:
        img = img + sc.line_offsets * span * rng.standard_normal((n, 1))
    for row, x0, length, amp in sc.glitches:
        img[row, x0 : x0 + length] += amp * span
    if sc.crash is not None:
        r0, r1 = sc.crash
        img[r0:r1] = img.max() + span * 0.5 + 0.1 * span * rng.standard_normal((r1 - r0, n))
    img = img + sc.white_noise * span * rng.standard_normal(img.shape)
    return img


def export(img: np.ndarray) -> np.ndarray:
    """The real export: per-line mean subtraction, per-frame min-max, 8-bit quantisation."""
    img = img - img.mean(axis=1, keepdims=True)
    lo, hi = img.min(), img.max()
    if hi - lo < 1e-12:
        return np.zeros(img.shape, np.uint8)
    return np.round((img - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def render(fp: FrameParams, rng: np.random.Generator | None = None) -> np.ndarray:
    """One frame (uint8, size x size) for the parameters ``fp``.

    >>> from stm_sim import sample_frame_params, render
    >>> rng = np.random.default_rng(0)
    >>> render(sample_frame_params(rng), rng).shape
    (128, 128)
    """
    img = render_height(fp, rng)
    if fp.lines_done is not None and fp.lines_done < fp.size:
        img[fp.lines_done :] = img[: fp.lines_done].mean()
    return export(img)


def render_height(fp: FrameParams, rng: np.random.Generator | None = None) -> np.ndarray:
    """The raw height map (float64, arbitrary units ~ Å) a controller would record.

    No export: lines are not levelled and unscanned lines of a partial frame
    (``fp.lines_done``) are NaN, as in a Nanonis ``Scan.FrameDataGrab`` mid-scan.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    size = fp.size
    px = fp.fov / size
    n = size + 2 * PAD
    lat, defects = _height(fp, n, px)
    ft_lat = np.fft.rfft2(lat)
    ft_def = np.fft.rfft2(defects) if fp.surface.blobs else None

    def through(tip) -> np.ndarray:
        kern = _tip_kernel_ft(tip, n, px)
        img = np.fft.irfft2(ft_lat * kern, s=(n, n))
        if ft_def is not None:
            # Defects read 1.5-3x the lattice's apparent corrugation, whatever the tip.
            core = img[PAD:-PAD, PAD:-PAD]
            corr = float(np.percentile(core, 99) - np.percentile(core, 1)) or 1.0
            dimg = np.fft.irfft2(ft_def * kern, s=(n, n))
            img = img + dimg * (corr / max(float(dimg.max()), 1e-9))
        return img

    img = through(fp.tip)
    if fp.tip_change is not None:
        # Below the change line the tip is another one: render again with it and splice.
        other = through(fp.tip_change.after)
        line = PAD + fp.tip_change.line
        img[line:] = other[line:] + fp.tip_change.jump * float(np.ptp(img))
        w = fp.tip_change.streak_lines
        if w:
            img[line : line + w] += (
                fp.tip_change.streak * float(np.ptp(img)) * rng.standard_normal((w, 1))
            )
    img = img[PAD : PAD + size, PAD : PAD + size]
    img = _scan_artefacts(img, fp, rng)
    if fp.lines_done is not None and fp.lines_done < size:
        img = img.copy()
        img[fp.lines_done :] = np.nan
    return img
