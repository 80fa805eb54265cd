"""Physical parameters of a simulated frame, how they are sampled, and the label rules.

Label rules (applied by :func:`labels_from_params`, documented here once):

* **Individual atoms**: the apex resolves single lobes: ``tip.sigma <= 0.7`` Å (single apex).
* **Dimers**: ``0.7 < tip.sigma <= 1.3`` Å, and also an atom-resolving apex wider than 0.61 Å,
  which still shows the pairing (real P(Dimers | Individual atoms) = 0.22).
* **Rows**: ``1.3 < tip.sigma <= 2.4`` Å, or a tip elongated along the rows (>= 1.8x) whose
  width along them (``sigma x elongation``) exceeds 1.3 Å, so that the dimer pitch washes out.
* **Asymmetries**: buckled dimers (``buckling >= 0.25``) or a lopsided tip (a second apex
  weighing 0.15-0.3), seen by a tip that resolves dimers (``sigma <= 1.3``). Such frames are
  not also labelled Individual atoms or Dimers (the volunteers named the asymmetry).
* **Tip change**: the tip changed at a scan line inside the frame (for good, or for a band of
  lines after which the old tip is back).
* **Bad/blurry**: ``tip.sigma > 2.4`` Å, a second apex weighing >= 0.3 in a frame with defects
  or a step (ghosts; on a bare lattice a ghost copy is only another lattice), heavy noise,
  feedback ringing or a crash. A frame bad because of its tip is not also labelled Asymmetries,
  Individual atoms or Dimers (Rows may stay); one bad because of the scan (noise, ringing, a
  crash) keeps what its tip resolves, which the volunteers still named through the noise.

Atoms/Dimers/Rows describe what the tip resolves, so for a tip change they are those of the
tip that scanned the larger part of the frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "Asymmetries",
    "Individual atoms",
    "Dimers",
    "Rows",
    "Tip change",
    "Bad/blurry",
)

# The label thresholds on the apex width (Å): atoms up to SIGMA_ATOMS, dimers up to SIGMA_DIMERS,
# rows up to SIGMA_ROWS, blurry beyond. Calibrated on the real frames' spectra: the median power
# at the dimer pitch relative to the row period is 1.40 / 0.31 / 0.04 in real frames labelled
# Individual atoms / Dimers / Rows; these thresholds give the simulated classes the same ladder.
SIGMA_ATOMS, SIGMA_DIMERS, SIGMA_ROWS = 0.7, 1.3, 2.4
# An atom-resolving apex wider than this still shows the dimer pairing, so its frames are labelled
# Dimers too: 22 % of the simulated atom tips (uniform 0.3-0.7 Å), as P(Dimers | Individual
# atoms) = 0.22 in the real labels.
SIGMA_ATOMS_PAIRED = 0.61
# Tip states of the simulated microscope and their apex-width ranges (Å), inside the thresholds.
TIP_STATES = {"atoms": (0.3, 0.7), "dimers": (0.75, 1.25), "rows": (1.4, 2.3), "blunt": (2.6, 4.5)}


@dataclasses.dataclass
class TipParams:
    sigma: float = 1.2  # Å, apex width
    elongation: float = 1.0  # >1: stretched along elongation_angle
    elongation_angle: float = 0.0  # degrees
    apex_offsets: tuple = ((0.0, 0.0),)  # Å, one per apex
    apex_weights: tuple = (1.0,)
    # Exponent of the apex's transfer function exp(-(sigma k)^profile / 2): 2 is a Gaussian;
    # smaller values let more of the short periods through (a sharper tip end on a wide apex).
    profile: float = 2.0

    @property
    def second_apex(self) -> float:
        return float(sorted(self.apex_weights)[-2]) if len(self.apex_weights) > 1 else 0.0


@dataclasses.dataclass
class SurfaceParams:
    rotation: float = 0.0  # degrees, row direction vs the fast scan axis
    phase: tuple = (0.0, 0.0)  # Å, lattice origin
    buckling: float = 0.0  # lobe height difference (0 = symmetric dimers)
    buckle_pattern: str = "c4x2"  # or "p2x2"
    step: tuple | None = None  # (angle deg, offset Å) of a single-layer step
    # (x Å, y Å, amplitude, sigma Å): dangling bonds and adsorbates (amplitude > 0) and dimer
    # vacancies (dark pits, amplitude < 0)
    blobs: tuple = ()
    defect_contrast: float = 0.8  # the tallest defect's height / the lattice corrugation
    backbone: float | None = None  # height of the row ridge under the lobes (None: render.BACKBONE)
    lobe_along: float | None = None  # a lobe's length along the row / across (None: render.ALONG)


@dataclasses.dataclass
class ScanParams:
    shear: float = 0.0
    creep: float = 0.0  # Å
    creep_tau: float = 5.0  # Å of slow-axis travel
    white_noise: float = (
        0.03  # x frame span (band-limited measurement noise, see render.BAND_CUTOFF)
    )
    pink_noise: float = 0.02
    pink_band: bool = False  # the 1/f noise through the measurement band too (no 1/f up to Nyquist)
    feedback_lag: float = 0.0  # pixels: time constant of the z feedback along the fast axis
    noise_lines: bool = False  # measurement noise correlated along lines only (not isotropic)
    # pixels: the recorded signal's own low-pass along the fast axis (feedback and preamplifier
    # bandwidth), applied after every noise source, so that the noise too is smooth along lines.
    output_lag: float = 0.0
    line_offsets: float = 0.0
    # x frame span: each line's own slow profile along the fast axis (tilt, bow, a partial
    # offset), independent from line to line; the per-line levelling removes only its mean.
    line_wobble: float = 0.0
    # x frame span: noise of each line alone, smooth along it (a first-order low-pass at
    # render.LINE_NOISE_CUTOFF) and independent from line to line, as z noise in scan time is:
    # lines are far apart in time and each is levelled on its own.
    line_noise: float = 0.0
    # The export levels each line's slope too, not only its offset, as the real frames' export
    # did (their lines hold no slope). Off by default: the benchmark family transferred worse
    # with it (session 27, docs/simulator_calibration.md 27b).
    level_slope: bool = False
    hum: float = 0.0
    hum_period: float = 97.0  # pixels of scan time
    hum_phase: float = 0.0
    glitches: tuple = ()  # (row, x0, length, amplitude)
    # (raster start pixel, length in pixels, amplitude): an unstable tip jumps and jumps back,
    # the height offset lasting from mid-line to some pixel lines later (raster order).
    flickers: tuple = ()
    ringing: float = 0.0
    ringing_period: float = 6.0
    ringing_decay: float = 8.0
    crash: tuple | None = None  # (first row, last row) clipped


@dataclasses.dataclass
class TipChange:
    line: int  # first scan line scanned by the new tip
    after: TipParams
    jump: float = 0.0
    streak: float = 0.3
    streak_lines: int = 2
    until: int | None = None  # the old tip is back from this line on: a band (picked-up atom)
    toggles: tuple = ()  # more lines after ``line`` where the tip flips back and forth again

    def segments(self, size: int) -> list[tuple[int, int, bool]]:
        """``(first line, end line, new tip?)`` for the scanned lines, top to bottom.

        >>> TipChange(line=40, after=TipParams(), toggles=(60,)).segments(128)
        [(0, 40, False), (40, 60, True), (60, 128, False)]
        """
        line = int(np.clip(self.line, 0, size))
        cuts = [line]
        for t in sorted(int(t) for t in (*self.toggles, self.until) if t is not None):
            if cuts[-1] < t < size:
                cuts.append(t)
        out = [(0, line, False)] if line > 0 else []
        for k, a in enumerate(cuts):
            b = cuts[k + 1] if k + 1 < len(cuts) else size
            if b > a:
                out.append((a, b, k % 2 == 0))
        return out

    def new_tip_lines(self, size: int) -> int:
        return sum(b - a for a, b, new in self.segments(size) if new)

    def ends_new(self, size: int) -> bool:
        """Whether the new tip is the one scanning at the end of the frame."""
        return self.segments(size)[-1][2]


@dataclasses.dataclass
class FrameParams:
    size: int = 128
    fov: float = 37.0  # Å
    tip: TipParams = dataclasses.field(default_factory=TipParams)
    surface: SurfaceParams = dataclasses.field(default_factory=SurfaceParams)
    scan: ScanParams = dataclasses.field(default_factory=ScanParams)
    tip_change: TipChange | None = None
    lines_done: int | None = None  # partial frame: lines scanned so far

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _lattice_class(t: TipParams, rows_paired: float = 0.0) -> tuple[int, int, int]:
    atoms = t.sigma <= SIGMA_ATOMS and len(t.apex_weights) == 1
    dimers = (
        SIGMA_ATOMS < t.sigma <= SIGMA_DIMERS
        or (t.sigma <= SIGMA_ATOMS and not atoms)
        or (atoms and t.sigma > SIGMA_ATOMS_PAIRED)
    )
    stretched = t.elongation >= 1.8 and t.sigma * t.elongation > SIGMA_DIMERS
    rows = (SIGMA_DIMERS < t.sigma <= SIGMA_ROWS) or (stretched and t.sigma <= SIGMA_ROWS)
    if rows:
        # A row-resolving apex narrower than rows_paired still shows the dimer pitch faintly
        # (off by default; the "rowspaired" preset of stm_sim.dataset).
        dimers = SIGMA_DIMERS < t.sigma < rows_paired
    return int(atoms), int(dimers), int(rows)


def _bad_tip(t: TipParams, ghosts_show: bool = True) -> bool:
    return t.sigma > SIGMA_ROWS or (t.second_apex >= 0.3 and ghosts_show)


def labels_from_params(
    fp: FrameParams,
    *,
    rows_paired: float = 0.0,
    minor_bad_lines: int | None = None,
    asym_dimers: float = 0.0,
    asym_noise: float | None = None,
) -> np.ndarray:
    """The six 0/1 labels of a frame, by the rules in this module's docstring.

    ``rows_paired`` (Å, a rule measured in session 15 and not adopted, 0 = off): a Rows apex narrower than this is labelled
    Dimers too (real P(Dimers | Rows) = 0.09; simulated 0 without the rule).

    ``minor_bad_lines`` (a rule measured in session 16, None = off): in a tip-change frame a bad
    tip that scanned the smaller part of the frame no longer erases what the other tip resolves,
    and makes the frame Bad/blurry only where it scanned at least this many lines (real
    P(Dimers | Tip change) = 0.28 and P(Bad/blurry | Tip change) = 0.56; simulated 0.12 and 0.65
    without the rule, 0.24 and 0.60 with 32 lines). Not adopted: the benchmark family scored
    0.787, inside the default's run-to-run range (the "tcminor" preset of stm_sim.dataset).

    ``asym_dimers`` (a rule measured in session 29, 0 = off): buckled dimers buckling less than
    this, under an apex with no lopsided second apex, keep their Dimers label beside
    Asymmetries (real P(Dimers | Asymmetries) = 0.18; simulated 0 without the rule, 0.15 with
    0.47). Not adopted: the benchmark families tied with the default on both seeds (0.805 / 0.805
    against 0.806 / 0.807; the "asymdimers" preset of stm_sim.dataset).

    ``asym_noise`` (a rule measured in session 30, None = off): buckling shows only through
    measurement noise below this (of the frame span); in noisier frames the lattice labels stay
    as if the dimers were flat (real P(Asymmetries) falls from 0.12 in frames with the fewest
    line streaks to 0.01 in those with the most).

    >>> fp = FrameParams(tip=TipParams(sigma=1.45))
    >>> labels_from_params(fp).tolist(), labels_from_params(fp, rows_paired=1.48).tolist()
    ([0, 0, 0, 1, 0, 0], [0, 0, 1, 1, 0, 0])
    """
    main = fp.tip
    tc = fp.tip_change
    if tc is not None and tc.new_tip_lines(fp.size) > fp.size / 2:
        main = tc.after
    atoms, dimers, rows = _lattice_class(main, rows_paired)
    resolves = main.sigma <= SIGMA_DIMERS
    lopsided = 0.15 <= main.second_apex < 0.3
    asym = int((fp.surface.buckling >= 0.25 or lopsided) and resolves)
    if asym and asym_noise is not None and fp.scan.white_noise >= asym_noise:
        asym = 0
    if asym:
        # Volunteers name the asymmetry, not the lattice under it: in the real labels
        # P(Dimers | Asymmetries) is 0.18 and P(Individual atoms | Asymmetries) 0.05.
        mild = not lopsided and fp.surface.buckling < asym_dimers
        atoms, dimers = 0, dimers if mild else 0
    change = int(fp.tip_change is not None)
    sc = fp.scan
    # A ghost copy of a bare periodic lattice is only another lattice: it shows where there is
    # something to double (a defect, a step).
    shows = bool(fp.surface.blobs) or fp.surface.step is not None
    tip_bad = _bad_tip(fp.tip, shows) or (
        fp.tip_change is not None and _bad_tip(fp.tip_change.after, shows)
    )
    scan_bad = sc.white_noise >= 0.25 or sc.ringing >= 0.5 or sc.crash is not None
    bad = tip_bad or scan_bad
    if minor_bad_lines is not None and tc is not None and not _bad_tip(main, shows):
        n_new = tc.new_tip_lines(fp.size)
        minor, n_minor = (fp.tip, fp.size - n_new) if main is tc.after else (tc.after, n_new)
        if _bad_tip(minor, shows):
            # The volunteers still name what the tip showed over most of the frame, and a
            # short stretch of a bad tip does not make the frame bad to them. They rarely
            # name an asymmetry in a tip-change frame (real P(Asymmetries | Tip change) 0.03).
            bad = scan_bad or n_minor >= minor_bad_lines
            return np.array([0, atoms, dimers, rows, change, int(bad)], dtype=np.uint8)
    if _bad_tip(main) and main.sigma > SIGMA_ROWS:
        atoms = dimers = rows = asym = 0
    if tip_bad:
        # Nor do they name fine detail that a bad tip blurs or doubles. Through a noisy or
        # ringing scan they still do: with this rule P(Individual atoms | Bad/blurry),
        # P(Dimers | Bad/blurry) and P(Bad/blurry | Dimers) come out 0.03 / 0.08 / 0.13 in the
        # simulated labels and 0.02 / 0.11 / 0.12 in the real ones (all 0 without it).
        atoms = dimers = asym = 0
    return np.array([asym, atoms, dimers, rows, change, int(bad)], dtype=np.uint8)


GHOST_P = 0.12  # share of tips with 2-4 strong apices (ghost copies)
# Share of frames with dark pits (dimer vacancies, 1-5 each, about a dimer wide), the commonest
# defect of Si(100). The simulated family's surest false Bad/blurry calls on real frames were
# lattices with dark pits, which the simulator never drew. With pits in 40 % of frames the two
# benchmark families went 0.784 -> 0.794 and 0.742 -> 0.792 (docs/simulator_calibration.md, step 14).
PIT_P = 0.4
# Fields of view, Å: the real frames' row period sits at a median 4.61 cycles per frame (35 Å).
FOV = (35.0, 39.0)
# The smallest frame the sampler draws: partial frames and crashes start at a random line at
# least 10 lines above the bottom, and below 16 pixels a row period spans under 2 pixels.
MIN_SIZE = 16
# 2048² float32 buffers per frame stay well inside a laptop's memory; 10^5 asked for 37 GiB.
MAX_SIZE = 2048


def sample_tip(
    rng: np.random.Generator,
    state: str,
    *,
    ghost_p: float = GHOST_P,
    widths: dict[str, tuple[float, float]] | None = None,
) -> TipParams:
    """A random tip in ``state``; ``widths`` overrides :data:`TIP_STATES`' apex-width ranges."""
    lo, hi = (widths or TIP_STATES)[state]
    t = TipParams(sigma=float(rng.uniform(lo, hi)))
    u = rng.random()
    if u < ghost_p:  # ghosts: 2-4 apices, the extra ones strong
        k = int(rng.integers(2, 5))
        offs = [(0.0, 0.0)] + [tuple(rng.uniform(-9, 9, 2)) for _ in range(k - 1)]
        w = [1.0, *list(rng.uniform(0.3, 0.9, k - 1))]
        t.apex_offsets, t.apex_weights = tuple(offs), tuple(w)
    elif ghost_p <= u < ghost_p + 0.08:  # lopsided apex
        t.apex_offsets = ((0.0, 0.0), tuple(rng.uniform(-4, 4, 2)))
        t.apex_weights = (1.0, float(rng.uniform(0.15, 0.29)))
    if rng.random() < 0.08:
        t.elongation = float(rng.uniform(1.8, 2.6))
    return t


def sample_rotation(rng: np.random.Generator) -> float:
    """The dimer-row direction (degrees from the fast scan axis) of a new scan area.

    Measured on the real frames (the angle of each frame's row-period peak): rows never run along
    the fast axis (the operators scanned across them; such rows would vanish in the line
    levelling), about 45 % run near 90° and lean mostly 6-15° one way, the rest run near
    45° or 135°.

    >>> 30 < sample_rotation(np.random.default_rng(0)) < 150
    True
    """
    u = rng.random()
    if u < 0.45:
        lean = rng.normal(11.0, 2.5) if rng.random() < 0.75 else rng.uniform(-3.0, 3.0)
        return float(90.0 + lean)
    if u < 0.73:
        return float(45.0 + rng.uniform(-3.0, 3.0))
    return float(135.0 + rng.uniform(-3.0, 9.0))


def sample_frame_params(
    rng: np.random.Generator,
    *,
    state: str | None = None,
    size: int = 128,
    rotation: float | None = None,
    ghost_p: float = GHOST_P,
    widths: dict[str, tuple[float, float]] | None = None,
    pit_p: float = PIT_P,
    fov: tuple[float, float] = FOV,
) -> FrameParams:
    """Random physical parameters for one frame; ``state`` is a key of :data:`TIP_STATES`.

    ``pit_p``: the share of frames with dark pits (dimer vacancies). ``fov``: the range of
    fields of view, Å (uniform).

    >>> fp = sample_frame_params(np.random.default_rng(0), state="dimers", pit_p=1.0)
    >>> any(amp < 0 for _, _, amp, _ in fp.surface.blobs)
    True
    """
    if size < MIN_SIZE:
        raise ValueError(f"size: expected frames of at least {MIN_SIZE} pixels, got {size}")
    if state is None:
        state = str(rng.choice(list(TIP_STATES), p=[0.12, 0.42, 0.22, 0.24]))
    tip = sample_tip(rng, state, ghost_p=ghost_p, widths=widths)
    rot = sample_rotation(rng) if rotation is None else rotation
    lo, hi = fov
    fov = float(rng.uniform(lo, hi))
    n_blobs = int(rng.poisson(2.0)) if rng.random() < 0.65 else 0
    blobs = tuple(
        (
            float(rng.uniform(0, fov)),
            float(rng.uniform(0, fov)),
            float(rng.uniform(1.0, 2.0) if rng.random() < 0.7 else rng.uniform(1.5, 3.0)),
            float(rng.uniform(1.5, 2.5) if rng.random() < 0.7 else rng.uniform(3.0, 5.0)),
        )
        for _ in range(n_blobs)
    )
    # Guarded so that pit_p = 0 draws no random number: frames without pits stay as they were.
    if pit_p > 0 and rng.random() < pit_p:
        blobs = blobs + tuple(
            (
                float(rng.uniform(0, fov)),
                float(rng.uniform(0, fov)),
                float(-rng.uniform(0.4, 1.0)),  # against bright defects' 1-3
                float(rng.uniform(1.2, 2.0)),
            )
            for _ in range(int(rng.integers(1, 6)))
        )
    tip.elongation_angle = rot
    surface = SurfaceParams(
        rotation=rot,
        phase=(float(rng.uniform(0, 7.68)), float(rng.uniform(0, 7.68))),
        buckling=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.14 else 0.0,
        buckle_pattern=str(rng.choice(["c4x2", "p2x2"])),
        step=(float(rng.uniform(0, 180)), float(rng.uniform(-12, 12)))
        if rng.random() < 0.1
        else None,
        blobs=blobs,
        # Real frames have heavy grey-level tails: adsorbates and dangling bonds stand well
        # above the lattice and take most of the 8-bit range (real p5-p95 spread 87 of 255).
        defect_contrast=float(rng.uniform(1.5, 4.0)),
    )
    heavy = rng.random() < 0.06
    scan = ScanParams(
        shear=float(rng.normal(0, 0.04)),
        creep=float(rng.uniform(0, 3.0)) if rng.random() < 0.3 else 0.0,
        creep_tau=float(rng.uniform(3, 12)),
        # Halved in session 4 (was 0.004-0.025): mean RAPSD distance to the real frames
        # 0.34 -> 0.27 together with the defect contrast below (benchmarks/realism.py).
        white_noise=float(rng.uniform(0.25, 0.5) if heavy else rng.uniform(0.002, 0.0125)),
        pink_noise=float(rng.uniform(0.0, 0.05)),
        line_offsets=float(rng.uniform(0, 0.05)),
        hum=float(rng.uniform(0, 0.03)) if rng.random() < 0.3 else 0.0,
        hum_period=float(rng.uniform(60, 140)),
        hum_phase=float(rng.uniform(0, 2 * np.pi)),
        glitches=tuple(
            (
                int(rng.integers(0, size)),
                int(rng.integers(0, size - 8)),
                int(rng.integers(3, 30)),
                float(rng.normal(0, 0.6)),
            )
            for _ in range(int(rng.poisson(0.4)))
        ),
        ringing=float(rng.uniform(0.5, 1.2)) if rng.random() < 0.04 else 0.0,
        ringing_period=float(rng.uniform(4, 10)),
        ringing_decay=float(rng.uniform(5, 15)),
    )
    if rng.random() < 0.03:
        r0 = int(rng.integers(0, size - 10))
        scan.crash = (r0, int(min(size, r0 + rng.integers(4, 40))))
    return FrameParams(size=size, fov=fov, tip=tip, surface=surface, scan=scan)
