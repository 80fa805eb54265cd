"""Scan-file readers and the folder watcher."""

import re
import shutil
import threading
import time
import zlib

import numpy as np
import pytest
from conftest import SHARED

from instrument_bridge.instrument import InstrumentTimeout
from instrument_bridge.prepare import prepare_frame
from instrument_bridge.readers import ScanFileError, read_scan
from instrument_bridge.watcher import FolderWatcher

FILES = SHARED / "data" / "instrument_files"
needs_files = pytest.mark.skipif(
    not FILES.exists(), reason=f"real instrument files not found at {FILES} (../shared checkout)"
)


def write_sxm(path, z, *, size_m=3.7e-9, direction="down"):
    """A minimal Nanonis .sxm (header, :SCANIT_END:, 0x1A 0x04, big-endian float32 Z fwd/bwd)."""
    rows, cols = z.shape
    head = (
        ":NANONIS_VERSION:\n2\n:SCAN_PIXELS:\n"
        f"       {cols}       {rows}\n:SCAN_RANGE:\n           {size_m:E}           {size_m:E}\n"
        f":SCAN_DIR:\n{direction}\n:BIAS:\n            -2.000E+0\n"
        ":DATA_INFO:\n\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n"
        "\t14\tZ\tm\tboth\t1.000E+0\t0.000E+0\n\n:SCANIT_END:\n\n\n"
    )
    data = np.concatenate([z.ravel(), z[:, ::-1].ravel()]).astype(">f4").tobytes()
    path.write_bytes(head.encode("latin-1") + b"\x1a\x04" + data)


def test_sxm_round_trip_and_partial_frames(tmp_path, rng):
    z = rng.normal(size=(64, 64))
    z[40:] = np.nan
    write_sxm(tmp_path / "a.sxm", z)
    s = read_scan(tmp_path / "a.sxm")
    np.testing.assert_allclose(s.z[:40], z[:40], rtol=1e-6)
    assert s.lines_done == 40 and s.size_nm == pytest.approx(3.7) and s.bias_v == -2.0
    write_sxm(tmp_path / "up.sxm", z[:40], direction="up")  # only the scanned lines saved
    u = read_scan(tmp_path / "up.sxm")
    assert u.z.shape == (64, 64) and u.lines_done == 40
    np.testing.assert_allclose(u.z[24:], z[:40][::-1], rtol=1e-6)


def test_bad_files_say_what_was_expected(tmp_path):
    (tmp_path / "x.sxm").write_bytes(b"garbage")
    with pytest.raises(ScanFileError, match="SCANIT_END"):
        read_scan(tmp_path / "x.sxm")
    write_sxm(tmp_path / "cut.sxm", np.zeros((64, 64)))
    whole = (tmp_path / "cut.sxm").read_bytes()
    (tmp_path / "cut.sxm").write_bytes(whole[: len(whole) - 20_000])  # Z forward ends short
    with pytest.raises(ScanFileError, match=r"64x64 float32 values of 'Z'.* bytes short"):
        read_scan(tmp_path / "cut.sxm")
    (tmp_path / "noz.sxm").write_bytes(whole.replace(b"\tZ\tm", b"\tI\tA"))
    with pytest.raises(ScanFileError, match="expected a channel 'Z', file has \\['I'\\]"):
        read_scan(tmp_path / "noz.sxm")
    (tmp_path / "x.dat").write_bytes(b"[Parameter]\nNum.X / Num.X=4\nDATA" + b"notzlib")
    with pytest.raises(ScanFileError, match=r"Num\.Y"):
        read_scan(tmp_path / "x.dat")
    head = b"Num.X / Num.X=9\nNum.Y / Num.Y=16\nLength x[A]=37\n"
    (tmp_path / "y.dat").write_bytes(head + b"DATA" + b"notzlib")
    with pytest.raises(ScanFileError, match="not zlib data"):
        read_scan(tmp_path / "y.dat")
    (tmp_path / "z.dat").write_bytes(head + b"DATA" + zlib.compress(np.zeros(72, "<f4").tobytes()))
    with pytest.raises(ScanFileError, match="expected >= 144 values, got 72"):
        read_scan(tmp_path / "z.dat")
    (tmp_path / "x.gwy").write_bytes(b"GWYPjunk")
    with pytest.raises(ScanFileError, match="at least one data field"):
        read_scan(tmp_path / "x.gwy")
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(ScanFileError, match="expected one of"):
        read_scan(tmp_path / "x.tif")
    with pytest.raises(FileNotFoundError):
        read_scan(tmp_path / "missing.sxm")


@pytest.mark.parametrize(
    "field, value, match",
    [
        # Found by fuzzing the header: each once escaped as a bare ValueError, an IndexError or
        # (a range 10^12 times taller than wide) a MemoryError for a PiB of NaN padding.
        ("SCAN_PIXELS", "-5 -5", "two positive counts"),
        ("SCAN_PIXELS", "100000 100000", "two positive counts"),
        ("SCAN_RANGE", "3.7E-9", "garbles"),
        ("SCAN_RANGE", "inf 3.7E-9", "two finite lengths"),
        ("SCAN_RANGE", "1E-9 1E+3", "more than a scan holds"),
        ("BIAS", "x", "garbles"),
        ("DATA_INFO", "\tChannel\tName\n\t14\tZ", "channel, name, unit, direction"),
    ],
)
def test_garbled_sxm_headers_give_scan_file_errors(tmp_path, field, value, match):
    write_sxm(tmp_path / "a.sxm", np.zeros((8, 8)))
    raw = (tmp_path / "a.sxm").read_bytes().decode("latin-1")
    raw = re.sub(rf"(:{field}:\n)(.*?)(?=\n:)", lambda m: m.group(1) + value, raw, flags=re.S)
    (tmp_path / "a.sxm").write_bytes(raw.encode("latin-1"))
    with pytest.raises(ScanFileError, match=match):
        read_scan(tmp_path / "a.sxm")


def test_a_gwyddion_field_without_its_data_is_a_scan_file_error(tmp_path):
    """Found by flipping bytes of a real .gwy: gwyfile parses fields lazily, and a KeyError
    escaped from the field's data."""
    from gwyfile.objects import GwyContainer, GwyDataField

    df = GwyDataField(np.zeros((8, 8)), xreal=3.7e-9, yreal=3.7e-9)
    c = GwyContainer()
    c["/0/data"] = df
    c["/0/data/title"] = "Z"
    del df["data"]
    c.tofile(str(tmp_path / "a.gwy"))
    with pytest.raises(ScanFileError, match=r"is not readable \(KeyError: 'data'\)"):
        read_scan(tmp_path / "a.gwy")


@pytest.mark.parametrize("nx, ny", [(-5, 16), (1, 16), (9, 0), (10**5, 10**5)])
def test_createc_pixel_counts_are_checked(tmp_path, nx, ny):
    head = f"Num.X / Num.X={nx}\nNum.Y / Num.Y={ny}\nLength x[A]=37\n".encode()
    (tmp_path / "a.dat").write_bytes(head + b"DATA" + zlib.compress(np.zeros(64, "<f4").tobytes()))
    with pytest.raises(ScanFileError, match=r"Num\.X, Num\.Y"):
        read_scan(tmp_path / "a.dat")


@needs_files
@pytest.mark.parametrize(
    "name, shape, lines_done",
    [
        ("pyspm_test.sxm", (256, 256), None),
        ("spmqt_sxm_moire_10nm.sxm", (160, 160), None),
        ("spmqt_A250320.191933.sxm", (512, 512), 60),
        ("spmqt_A250407.141806.sxm", (256, 256), 9),
        ("spmqt_A250407.141806.dat", (256, 255), 9),
        ("spmqt_createc_scan_atomic_11nm.dat", (512, 511), None),
        ("spmqt_createc_scan_step_20nm.dat", (512, 511), 330),
        ("spym_dI-dV_9K_ABC6_2020_07_02_08_50_47_967.sm4", (256, 256), None),
        ("gwyfile_test.gwy", (128, 128), None),
    ],
)
def test_real_instrument_files(name, shape, lines_done):
    s = read_scan(FILES / name)
    assert s.z.shape == shape and s.lines_done == lines_done
    assert np.isfinite(s.z[: lines_done or None]).all()
    frame = prepare_frame(s.z)
    assert frame.shape == (128, 128) and frame.dtype == np.uint8 and frame.std() > 5


@needs_files
def test_a_gwyddion_field_without_a_length_unit_has_no_size():
    # gwyfile's test file stores xreal 128 with no unit; read as metres it spanned 1.3e11 nm.
    assert read_scan(FILES / "gwyfile_test.gwy").size_nm == 0.0
    assert read_scan(FILES / "spmqt_sxm_moire_10nm.sxm").size_nm == pytest.approx(10.0)


@needs_files
def test_same_scan_as_sxm_and_dat_agree():
    a = read_scan(FILES / "spmqt_A250407.141806.sxm")
    b = read_scan(FILES / "spmqt_A250407.141806.dat")
    assert a.lines_done == b.lines_done == 9
    assert a.size_nm == pytest.approx(b.size_nm, rel=1e-3)


def test_watcher_returns_new_complete_files_and_skips_partial_ones(tmp_path, rng):
    write_sxm(tmp_path / "old.sxm", rng.normal(size=(32, 32)))
    w = FolderWatcher(tmp_path, poll_s=0.05)
    with pytest.raises(InstrumentTimeout):
        w.scan(timeout=0.2)  # the file that was there before is not new
    z = rng.normal(size=(32, 32))
    z[4:] = np.nan
    write_sxm(tmp_path / "b_partial.sxm", z)

    def later():
        time.sleep(0.3)
        write_sxm(tmp_path / "c_new.sxm", rng.normal(size=(32, 32)))

    th = threading.Thread(target=later)
    th.start()
    s = w.scan(timeout=10)
    th.join()
    assert s.source.endswith("c_new.sxm")
    assert [n.split("/")[-1] for n, _ in w.skipped] == ["b_partial.sxm"]
    assert "partial: 4 of 32" in w.skipped[0][1]
    assert w.pulse(4, 200).startswith("not sent")


@needs_files
def test_watcher_over_real_files(tmp_path):
    w = FolderWatcher(tmp_path, poll_s=0.05)
    for f in ("pyspm_test.sxm", "spmqt_createc_scan_atomic_11nm.dat"):
        shutil.copy(FILES / f, tmp_path / f)
    got = {w.scan(timeout=5).source.split("/")[-1] for _ in range(2)}
    assert got == {"pyspm_test.sxm", "spmqt_createc_scan_atomic_11nm.dat"}


def test_a_watcher_cannot_act_so_its_actions_are_never_recorded_as_sent(tmp_path):
    from instrument_bridge.instrument import Action, SafeInstrument

    safe = SafeInstrument(FolderWatcher(tmp_path), dry_run=False)  # armed, yet it cannot act
    res = safe.execute(Action("pulse", bias_v=4.0, width_ms=200))
    assert safe.dry_run and not res.sent and res.dry_run


def test_sxm_headers_with_flipped_bytes_give_only_scan_file_errors(tmp_path):
    """200 seeded corruptions of a header (a few bytes each, sometimes cut short): the reader
    returns a scan or raises ScanFileError, never a bare ValueError or IndexError."""
    rng = np.random.default_rng(7)
    write_sxm(tmp_path / "a.sxm", rng.normal(size=(16, 16)))
    raw = (tmp_path / "a.sxm").read_bytes()
    end = raw.find(b":SCANIT_END:")
    for k in range(200):
        b = bytearray(raw)
        for i in rng.integers(0, end, size=int(rng.integers(1, 4))):
            b[int(i)] = int(rng.integers(32, 127))
        if k % 20 == 0:
            b = b[: int(rng.integers(0, len(b)))]
        (tmp_path / "x.sxm").write_bytes(bytes(b))
        try:
            read_scan(tmp_path / "x.sxm")
        except ScanFileError:
            pass
