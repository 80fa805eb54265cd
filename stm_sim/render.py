"""Render labelled H:Si(100) STM frames from physical parameters (numpy only).

Physics, calibrated on the Nottingham frames (DESIGN §1.3):

* the 2x1 reconstruction: dimer rows every 7.68 Å, dimers every 3.84 Å along a row, two lobes
  per dimer (apparent separation ~3.2 Å) across the row; rows at 0/45/90/135° ± 3° to the fast
  scan axis; buckled dimers (c(4x2): neighbouring rows out of phase, p(2x2): in phase);
* bright dangling bonds and adsorbate blobs, dark pits (dimer vacancies), single-layer steps (1.36 Å)
  with rows turned 90°;
* the tip as a kernel applied in Fourier space: a Gaussian apex of width ``tip_sigma`` (Å),
  elongated or lopsided, or several apices (ghost copies);
* scanning: drift shear and creep (in the coordinates), a tip change spliced at a scan line
  with streaks (the new apex a little aside; sometimes the old tip returns lines later, a band),
  a lagging z feedback (a causal low-pass along the fast axis), 1/f noise, measurement noise
  correlated along lines but not between them, line offsets, mains hum, glitches, feedback
  ringing and crashed (clipped) regions;
* the export of the real pipeline: per-line levelling (the mean; optionally the slope too, as
  the real export did), per-frame min-max, 8 bit.

Speed: the lattice is periodic and the tip acts linearly, so the tip-blurred lattice is a
Fourier series: each reciprocal-lattice vector G of the dimer supercell carries the lattice's
coefficient times the tip's transfer function T(G). A plane wave is separable in the pixel
axes, exp(i(kx x + ky y)) = exp(i ky y) exp(i kx x), and so is drift (the shear and creep move
x by an amount that depends on y only), so a whole frame is one small complex matrix product
(rows x G) @ (G x columns), with only the harmonics the tip lets through. Defects are
Gaussians blurred by a Gaussian apex: again Gaussians, again separable (an elongated apex is
taken as round for them). 1/f noise and the measurement noise are cut from fixed banks of
precomputed fields; the feedback lag is one matrix product with a cached kernel.
"""

from __future__ import annotations

import numpy as np

from stm_sim.params import FrameParams, TipParams

ROW_PERIOD = 7.68  # Å, between dimer rows
DIMER_PITCH = 3.84  # Å, between dimers along a row
LOBE_SEPARATION = 3.2  # Å, apparent, across the row
LOBE_SIGMA = 0.55  # Å, intrinsic width of one lobe
ALONG = 1.6  # the lobe is this much longer along the row than across
STEP_HEIGHT = 1.36  # Å, single atomic layer of Si(100)
# Height of the broad row ridge (rows read as ridges where the lobes blur). Halved from 0.6:
# with it a sharp apex now shows as much power at the dimer pitch, relative to the row period,
# as real "Individual atoms" frames do (median ratio 1.2 simulated, 1.4 real; was 0.5).
BACKBONE = 0.3
BACKBONE_SIGMA = 2.0  # Å
# Supercell: two dimers along the row, two rows across (holds c(4x2) and p(2x2) buckling).
CELL_P, CELL_Q = 2 * DIMER_PITCH, 2 * ROW_PERIOD
M_MAX, N_MAX = 6, 18  # harmonics along / across rows before the tip's cut-off
# A blunt tip washes out the lattice, not the 1/f noise or the adsorbates. Frames are
# normalised to the blurred lattice, so before this a blunt tip still drew clean rows: simulated
# blurry frames held 83 % of their power at the row period, real ones 49 % (now 49 %). Defects
# and the slow noise are scaled by g = clip(ABS_GAMMA / att, 1, ABS_MAX), att being the row
# fundamental's attenuation by the frame's sharpest tip relative to a dimer-resolving one
# (sigma 1 Å); g > 1 only for apexes wider than about 2.6 Å. Proxy sim -> real mean ROC-AUC over
# 3 seeds 0.721 -> 0.752, Rows 0.66 -> 0.77, Bad/blurry 0.71 -> 0.77, Tip change 0.73 -> 0.67
# (benchmarks/results/transfer_proxy_steps.json, steps v10-v11).
ABS_SIGMA_REF = 1.0  # Å
ABS_GAMMA = 0.2
ABS_MAX = 30.0
KEEP = 1e-4  # harmonics whose amplitude (relative to the largest) is below this are dropped


def _lattice_coefficients(
    buckling: float, pattern: str, backbone: float = BACKBONE, along: float = ALONG
):
    """Fourier coefficients of the supercell: harmonic indices (m along rows, n across) and
    complex coefficients, one of each +-G pair (the image is real), doubled."""
    m = np.arange(-M_MAX, M_MAX + 1)
    n = np.arange(-N_MAX, N_MAX + 1)
    gp = 2 * np.pi * m[:, None] / CELL_P * np.ones((1, len(n)))
    gq = 2 * np.pi * n[None, :] / CELL_Q * np.ones((len(m), 1))
    half = LOBE_SEPARATION / 2
    sp, sq = LOBE_SIGMA * along, LOBE_SIGMA
    area = CELL_P * CELL_Q
    lobe_shape = 2 * np.pi * sp * sq / area * np.exp(-0.5 * ((gp * sp) ** 2 + (gq * sq) ** 2))
    c = np.zeros(gp.shape, np.complex128)
    for a in (0, 1):  # dimer along the row
        for b in (0, 1):  # row
            for side in (-1, 1):  # lobe
                if pattern == "c4x2":
                    w = 1 + buckling * side * (-1) ** (a + b)
                else:  # p(2x2): every row in phase
                    w = 1 + buckling * side * (-1) ** a
                pj, qj = a * DIMER_PITCH, b * ROW_PERIOD + side * half
                c += w * lobe_shape * np.exp(-1j * (gp * pj + gq * qj))
    ridge = np.sqrt(2 * np.pi) * BACKBONE_SIGMA / CELL_Q * np.exp(-0.5 * (gq * BACKBONE_SIGMA) ** 2)
    c += np.where(gp == 0, backbone * ridge * (1 + np.exp(-1j * gq * ROW_PERIOD)), 0.0)
    mm, nn = np.meshgrid(m, n, indexing="ij")
    half_plane = (mm > 0) | ((mm == 0) & (nn >= 0))
    weight = np.where((mm == 0) & (nn == 0), 1.0, 2.0)
    keep = half_plane & (np.abs(c) > 1e-12)
    return mm[keep], nn[keep], (c * weight)[keep]


_COEFF_CACHE: dict = {}


def _coefficients(
    buckling: float, pattern: str, backbone: float | None = None, along: float | None = None
):
    key = (
        round(buckling, 3),
        pattern if buckling else "c4x2",
        BACKBONE if backbone is None else round(backbone, 2),
        ALONG if along is None else round(along, 2),
    )
    if key not in _COEFF_CACHE:
        if len(_COEFF_CACHE) > 4096:
            _COEFF_CACHE.clear()
        _COEFF_CACHE[key] = _lattice_coefficients(*key)
    return _COEFF_CACHE[key]


def _tip_transfer(t: TipParams, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """The tip's transfer function at image-frame wave vectors (rad/Å)."""
    th = np.deg2rad(t.elongation_angle)
    ka = kx * np.cos(th) + ky * np.sin(th)
    kb = -kx * np.sin(th) + ky * np.cos(th)
    sa, sb = t.sigma * t.elongation, t.sigma
    q = (sa * ka) ** 2 + (sb * kb) ** 2
    gauss = np.exp(-0.5 * q) if t.profile == 2.0 else np.exp(-0.5 * q ** (t.profile / 2))
    apex = np.zeros(kx.shape, np.complex128)
    for (dx, dy), w in zip(t.apex_offsets, t.apex_weights, strict=True):
        apex += w * np.exp(-1j * (kx * dx + ky * dy))
    return gauss * apex


def _harmonics(phase_m: np.ndarray, phase_n: np.ndarray):
    """``exp(1j * k * phase)`` for k = -M_MAX..M_MAX of ``phase_m`` and k = -N_MAX..N_MAX of
    ``phase_n``: two arrays (L, 2 M_MAX + 1) and (L, 2 N_MAX + 1).

    Powers of one complex exponential per point by a cumulative product, both phases in one
    call: the exponentials were most of a frame's time (the products drift from the direct
    values by ~1e-15 over 18 steps).
    """
    base = np.exp(1j * np.concatenate([phase_m, phase_n]))
    pos = np.cumprod(np.broadcast_to(base[:, None], (len(base), N_MAX)), axis=1)
    full = np.concatenate([np.conj(pos[:, ::-1]), np.ones((len(base), 1)), pos], axis=1)
    n = len(phase_m)
    return full[:n, N_MAX - M_MAX : N_MAX + M_MAX + 1], full[n:]


def _lattice_image(fp: FrameParams, tips, rows_of_tip, rotation: float, x, y, dx_of_y):
    """The tip-blurred lattice, rows ``rows_of_tip[i]`` seen through ``tips[i]``."""
    s = fp.surface
    m, n, c = _coefficients(s.buckling, s.buckle_pattern, s.backbone, s.lobe_along)
    th = np.deg2rad(rotation)
    cos, sin = np.cos(th), np.sin(th)
    gp, gq = 2 * np.pi * m / CELL_P, 2 * np.pi * n / CELL_Q
    kx = gp * cos - gq * sin
    ky = gp * sin + gq * cos
    c = c * np.exp(1j * (gp * s.phase[0] + gq * s.phase[1]))
    amps = [c * _tip_transfer(t, kx, ky) for t in tips]
    ac = (m != 0) | (n != 0)  # the relative cut ignores the mean height (DC)
    peak = max(float(np.abs(a[ac]).max()) for a in amps) or 1.0
    keep = np.zeros(len(c), bool)
    for a in amps:
        keep |= np.abs(a) > KEEP * peak
    m, n, kx, ky = m[keep], n[keep], kx[keep], ky[keep]
    # exp(i kx x) = exp(i m ax x) exp(i n bx x): 1-D bases per harmonic index, then products
    # (a complex multiply per entry instead of a complex exponential).
    ax, bx = 2 * np.pi * cos / CELL_P, -2 * np.pi * sin / CELL_Q
    ay, by = 2 * np.pi * sin / CELL_P, 2 * np.pi * cos / CELL_Q
    mi, ni = m + M_MAX, n + N_MAX
    hm, hn = _harmonics(ax * x, bx * x)
    ex = (hm[:, mi] * hn[:, ni]).T
    # Only the real part is wanted: Re(A B) = [Re A, -Im A] @ [Re B; Im B], one real float32
    # matrix product with half the arithmetic of the complex one.
    exri = np.concatenate([ex.real, ex.imag]).astype(np.float32)
    # float32 from here to the export: 8-bit output needs far less, and half-width arrays
    # make the per-frame passes (noise, hum, levelling) about twice as fast.
    out = np.empty((len(y), len(x)), np.float32)
    for a, rows in zip(amps, rows_of_tip, strict=True):
        if len(rows) == 0:
            continue
        yr, dr = y[rows], dx_of_y[rows]
        hm, hn = _harmonics(ay * yr + ax * dr, by * yr + bx * dr)
        ey = hm[:, mi] * hn[:, ni] * a[keep]
        out[rows] = np.concatenate([ey.real, -ey.imag], axis=1).astype(np.float32) @ exri
    return out


def _defects(fp: FrameParams, tip: TipParams, x, y) -> np.ndarray:
    """Dangling bonds, adsorbates and dark pits (Gaussians) blurred by the tip, one copy per apex.

    Separable outer products; drift is ignored for defects (it moves them by < 2 Å).
    """
    d = np.zeros((len(y), len(x)))
    sig_t2 = (tip.sigma * np.sqrt(tip.elongation)) ** 2
    for x0, y0, amp, sig in fp.surface.blobs:
        s2 = sig**2 + sig_t2
        scale = amp * sig**2 / s2  # the blurred blob keeps its volume
        for (ax, ay), w in zip(tip.apex_offsets, tip.apex_weights, strict=True):
            gy = np.exp(-0.5 * (y - y0 - ay) ** 2 / s2)
            gx = np.exp(-0.5 * (x - x0 - ax) ** 2 / s2)
            d += np.outer(w * scale * gy, gx)
    return d


def _blunt_gain(tips) -> float:
    """g >= 1: how much larger noise and defects read against a lattice blurred by ``tips``."""
    sigma = min(t.sigma * np.sqrt(t.elongation) for t in tips)
    k = 2 * np.pi / ROW_PERIOD
    att = np.exp(-0.5 * (sigma**2 - ABS_SIGMA_REF**2) * k**2)
    return float(np.clip(ABS_GAMMA / max(att, 1e-12), 1.0, ABS_MAX))


def _frame_surface(fp: FrameParams, tips, rows_of_tip, gain: float = 1.0):
    """The surface seen through ``tips`` and the blurred lattice's own peak-to-peak."""
    size = fp.size
    px = fp.fov / size
    x = np.arange(size) * px
    y = np.arange(size) * px
    sc = fp.scan
    # Drift shear and piezo creep act on where the tip really is along each line.
    dx_of_y = sc.shear * y + sc.creep * np.exp(-y / max(sc.creep_tau, 1e-3))
    img = _lattice_image(fp, tips, rows_of_tip, fp.surface.rotation, x, y, dx_of_y)
    s = fp.surface
    if s.step is not None:
        a, c = s.step  # step line: a = its angle (deg), c = offset (Å) from the centre
        ca = np.deg2rad(a)
        xx = x[None, :] + dx_of_y[:, None]
        side = (xx - fp.fov / 2) * np.cos(ca) + (y[:, None] - fp.fov / 2) * np.sin(ca) > c
        other = _lattice_image(fp, tips, rows_of_tip, s.rotation + 90.0, x, y, dx_of_y)
        img = np.where(side, other + STEP_HEIGHT, img)
    corr = float(np.ptp(img)) or 1.0
    if s.blobs:
        # The tallest defect reads defect_contrast x the lattice's apparent corrugation
        # (x the blunt-tip gain).
        for tip, rows in zip(tips, rows_of_tip, strict=True):
            if len(rows) == 0:
                continue
            d = _defects(fp, tip, x, y[rows])
            k = gain * s.defect_contrast * corr / max(float(np.abs(d).max()), 1e-9)
            img[rows] += d * (k if np.abs(d).max() > 0 else 0.0)
    return img, corr


# The measurement noise is band-limited, not white: the feedback loop and preamplifier pass only
# a finite bandwidth, and the real frames were downsampled from larger scans (a box filter).
# A first-order low-pass at 0.1 cycles/pixel brought the simulated spectra closest to the real
# ones (mean RAPSD distance over the six categories 0.46 -> about 0.3; benchmarks/realism.py).
BAND_CUTOFF = 0.1  # cycles per pixel
# Real frames' power between lines (above 16 cycles per frame across them) falls along the lines
# as a first-order low-pass at about 6 cycles per frame would (benchmarks/label_signatures.py).
LINE_NOISE_CUTOFF = 0.047  # cycles per pixel

_BANKS: dict[str, np.ndarray] = {}


def _noise_bank(kind: str) -> np.ndarray:
    """16 fixed 256x256 noise fields (unit variance) of spectrum ``kind``, made once per process.

    ``"pink"``: 1/f amplitude; ``"band"``: white through a first-order low-pass;
    ``"pinkband"``: 1/f through the same low-pass; ``"line"``: the low-pass along lines only;
    ``"linenoise"``: the same at ``LINE_NOISE_CUTOFF``.
    """
    if kind not in _BANKS:
        seeds = {
            "pink": 20260101,
            "band": 20260102,
            "line": 20260103,
            "pinkband": 20260104,
            "linenoise": 20260105,
        }
        r = np.random.default_rng(seeds[kind])
        n = 256
        _BANKS[kind] = np.stack([_noise_field(r, (n, n), kind) for _ in range(16)])
    return _BANKS[kind]


def _noise_field(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    if kind in ("pink", "pinkband"):
        f[0, 0] = 1.0
        gain = 1.0 / f
        if kind == "pinkband":
            gain = gain / np.sqrt(1.0 + (f / BAND_CUTOFF) ** 2)
    elif kind == "linenoise":
        gain = np.broadcast_to(1.0 / np.sqrt(1.0 + (fx / LINE_NOISE_CUTOFF) ** 2), f.shape)
    elif kind == "line":
        # Correlated along the fast axis only: the feedback loop low-passes the signal in scan
        # time, and consecutive lines are far apart in time (real frames have more high-
        # frequency power between lines than along them).
        gain = np.broadcast_to(1.0 / np.sqrt(1.0 + (fx / BAND_CUTOFF) ** 2), f.shape)
    else:
        gain = 1.0 / np.sqrt(1.0 + (f / BAND_CUTOFF) ** 2)
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * gain
    field = np.fft.irfft2(spec, s=(h, w))
    return (field / field.std()).astype(np.float32)


def _noise(rng: np.random.Generator, shape, kind: str) -> np.ndarray:
    """A random window of a fixed bank field (random flips and sign).

    Making a fresh field costs more than the rest of a frame; a random window into 16 large
    fields is indistinguishable for this purpose.
    """
    bank = _noise_bank(kind)
    h, w = shape
    if h > bank.shape[1] or w > bank.shape[2]:
        return _noise_field(rng, shape, kind)  # larger frames than the bank: slow path, rare
    u = rng.random(5)  # one call: bank, offsets, flip, sign
    k = int(u[0] * len(bank))
    i, j = int(u[1] * (bank.shape[1] - h + 1)), int(u[2] * (bank.shape[2] - w + 1))
    field = bank[k, i : i + h, j : j + w]
    if u[3] < 0.5:
        field = field[:, ::-1]
    return field * (1.0 if u[4] < 0.5 else -1.0)


def _pink(rng: np.random.Generator, shape, band: bool = False) -> np.ndarray:
    return _noise(rng, shape, "pinkband" if band else "pink")


def _band(rng: np.random.Generator, shape, lines: bool = False) -> np.ndarray:
    return _noise(rng, shape, "line" if lines else "band")


_LAG: dict = {}


def _feedback_lag(img: np.ndarray, lag: float) -> np.ndarray:
    """A first-order low-pass along the fast axis (``lag`` pixels): the z feedback follows the
    surface with a delay, so real frames are smoother along lines than across them.

    One matrix product with a cached causal exponential kernel (``lag`` rounded to 0.05 px).
    """
    n = img.shape[1]
    key = (n, round(lag * 20))
    if key not in _LAG:
        a = np.exp(-1.0 / (key[1] / 20))
        k = np.arange(n)
        d = k[None, :] - k[:, None]  # column j takes pixel i <= j with weight a^(j-i)
        w = np.where(d >= 0, a ** np.maximum(d, 0), 0.0)
        w /= w.sum(axis=0, keepdims=True)  # unit DC gain, also at the line start
        _LAG[key] = w.astype(np.float32)
    return img @ _LAG[key]


WOBBLE_HARMONICS = 8  # cycles per line


def _wobble(rng: np.random.Generator, n_rows: int, n: int) -> np.ndarray:
    """Unit-variance line profiles: per line, harmonics 1..8 along the line with 1/k amplitudes
    and random phases, independent between lines (real frames hold 4x the simulated power at
    1-8 cycles along the lines and above 30 cycles across them)."""
    k = np.arange(1, WOBBLE_HARMONICS + 1)
    amp = (1.0 / k) / np.sqrt(np.sum(1.0 / k**2))
    basis = np.concatenate(
        [
            np.cos(2 * np.pi * np.outer(k, np.arange(n)) / n),
            np.sin(2 * np.pi * np.outer(k, np.arange(n)) / n),
        ]
    )  # (2K, n)
    coef = rng.standard_normal((n_rows, 2 * len(k))) * np.concatenate([amp, amp])[None]
    return (coef @ basis).astype(np.float32)


def _scan_artefacts(
    img: np.ndarray, fp: FrameParams, rng: np.random.Generator, floor: float = 0.0
) -> np.ndarray:
    n_rows, n = img.shape
    sc = fp.scan
    if sc.feedback_lag >= 0.05:
        img = _feedback_lag(img, sc.feedback_lag)
    span0 = float(np.ptp(img)) or 1.0
    # Under a blunt tip the slow noise (1/f, hum, line offsets), glitches and ringing keep their
    # size (floor = gain x the lattice a sharp tip would show). The fast, band-limited
    # measurement noise stays relative to what the tip shows: simulated blurry frames already
    # carry more of their power above 14 cycles per frame than real ones (0.15 against 0.055).
    span = max(span0, floor)
    if sc.ringing:
        # Feedback ringing: a damped oscillation after every edge along the fast axis.
        k = np.arange(n)
        kernel = np.exp(-k / sc.ringing_decay) * np.cos(2 * np.pi * k / sc.ringing_period)
        kernel[0] = 1.0
        img += sc.ringing * np.fft.irfft(
            np.fft.rfft(np.diff(img, axis=1, prepend=img[:, :1]), axis=1)
            * np.fft.rfft(kernel)[None],
            n=n,
            axis=1,
        ).astype(np.float32)
    if sc.pink_noise:
        img += np.float32(sc.pink_noise * span) * _pink(rng, img.shape, sc.pink_band)
    if sc.hum:
        # sin(2 pi t / P + phase) over the raster time t = row * n + col, separably.
        a = 2 * np.pi * np.arange(n_rows) * n / sc.hum_period + sc.hum_phase
        b = 2 * np.pi * np.arange(n) / sc.hum_period
        amp = sc.hum * span
        sa, ca = (amp * np.sin(a)).astype(np.float32), (amp * np.cos(a)).astype(np.float32)
        img += np.outer(sa, np.cos(b).astype(np.float32))
        img += np.outer(ca, np.sin(b).astype(np.float32))
    if sc.line_offsets:
        img += np.float32(sc.line_offsets * span) * rng.standard_normal((n_rows, 1), np.float32)
    if sc.line_noise:
        img += np.float32(sc.line_noise * span) * _noise(rng, img.shape, "linenoise")
    if sc.line_wobble:
        img += np.float32(sc.line_wobble * span0) * _wobble(rng, n_rows, n)
    for row, x0, length, amp in sc.glitches:
        if 0 <= row < n_rows:
            img[row, x0 : x0 + length] += amp * span
    if sc.flickers:
        flat = img.reshape(-1)  # raster order: the offset runs on into the next lines
        for start, length, amp in sc.flickers:
            flat[max(int(start), 0) : max(int(start + length), 0)] += amp * span
    if sc.crash is not None:
        r0, r1 = sc.crash
        img[r0:r1] = img.max() + span * 0.5 + 0.1 * span * rng.standard_normal((len(img[r0:r1]), n))
    img += np.float32(sc.white_noise * span0) * _band(rng, img.shape, sc.noise_lines)
    if sc.output_lag >= 0.05:
        img = _feedback_lag(img, sc.output_lag)
    return img


def level_lines(img: np.ndarray) -> np.ndarray:
    """Each line (row) minus its least-squares straight line: offset and slope, as the real
    export levels lines (the real frames' lines hold no slope at all: 0.003 of the frame's spread
    per line against 0.34 with the mean taken out alone, session 27).

    >>> ramp = np.tile(np.arange(8.0), (3, 1)) + np.arange(3.0)[:, None]  # tilted and offset
    >>> float(np.abs(level_lines(ramp)).max()) < 1e-12
    True
    """
    x = np.asarray(img)
    n = x.shape[-1]
    if n < 2:
        raise ValueError(f"level_lines: expected lines of at least 2 pixels, got {x.shape}")
    t = np.linspace(-1.0, 1.0, n, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    return x - (x @ t / (t @ t))[..., None] * t


def export(img: np.ndarray, *, slope: bool = False) -> np.ndarray:
    """The real export: per-line levelling, per-frame min-max, 8-bit quantisation.

    The levelling takes out each line's mean, and with ``slope`` its slope too
    (:func:`level_lines`), as the real frames' export did.
    """
    img = level_lines(img) if slope else img - img.mean(axis=1, keepdims=True)
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
    img = _height(fp, rng)
    if fp.lines_done is not None and fp.lines_done < fp.size:
        img[fp.lines_done :] = img[: fp.lines_done].mean()
    return export(img, slope=fp.scan.level_slope)


def render_height(fp: FrameParams, rng: np.random.Generator | None = None) -> np.ndarray:
    """The raw height map (float64, arbitrary units ~ Å) a controller would record.

    No export: lines are not levelled and unscanned lines of a partial frame
    (``fp.lines_done``) are NaN, as in a Nanonis ``Scan.FrameDataGrab`` mid-scan.
    """
    return _height(fp, rng).astype(np.float64)


def _height(fp: FrameParams, rng: np.random.Generator | None = None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng(0)
    size = fp.size
    rows = np.arange(size)
    tc = fp.tip_change
    tips = [fp.tip] if tc is None else [fp.tip, tc.after]
    gain = _blunt_gain(tips)
    if tc is None:
        img, corr = _frame_surface(fp, [fp.tip], [rows], gain)
    else:
        # From the change line on another tip scans (and the old one may come back, and go
        # again): splice its rows in.
        segs = tc.segments(size)
        # One group per stretch of lines, as scanned: each stretch's defects are scaled to it.
        seg_tips = [tc.after if new else fp.tip for _, _, new in segs]
        img, corr = _frame_surface(fp, seg_tips, [rows[a:b] for a, b, _ in segs], gain)
        new = [rows[a:b] for a, b, new in segs if new]
        new_rows = np.concatenate(new) if new else rows[:0]
        span = float(np.ptp(img))
        img[new_rows] += tc.jump * span
        for a, _, _ in segs[1:]:
            w = min(tc.streak_lines, size - a)
            if w > 0:
                img[a : a + w] += tc.streak * span * rng.standard_normal((w, 1))
    img = _scan_artefacts(img, fp, rng, floor=gain * corr if gain > 1.0 else 0.0)
    if fp.lines_done is not None and fp.lines_done < size:
        img[fp.lines_done :] = np.nan
    return img
