"""A folder watcher: an instrument adapter that classifies each scan file a controller writes.

It cannot move the tip, so its actions are never sent (they are logged for the operator); it
is the way in for a controller without a programming interface. A file counts as new once its
size has stopped changing between two polls (the controller has finished writing it).

>>> w = FolderWatcher("D:/scans", include_existing=False)  # doctest: +SKIP
>>> scan = w.scan(timeout=120)  # the next new .sxm/.dat/.sm4/.gwy file  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from instrument_bridge.instrument import InstrumentTimeout, ScanResult
from instrument_bridge.readers import SUFFIXES, ScanFileError, read_scan


class FolderWatcher:
    """Implements :class:`~instrument_bridge.instrument.Instrument` over a folder of scan files.

    ``min_lines_fraction``: a partial scan with fewer scanned lines than this share of its
    frame is skipped (returned scans are never mostly empty); the skip is reported through
    ``skipped``.
    """

    can_act = False  # SafeInstrument then runs as a dry run: actions are logged, never "sent"

    def __init__(
        self,
        folder: str | Path,
        *,
        suffixes: tuple[str, ...] = SUFFIXES,
        include_existing: bool = False,
        poll_s: float = 0.5,
        min_lines_fraction: float = 0.25,
    ):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"watch folder not found: {self.folder}")
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.poll_s = poll_s
        self.min_lines_fraction = min_lines_fraction
        self._sizes: dict[Path, int] = {}
        self._done: set[Path] = set() if include_existing else set(self._files())
        self.skipped: list[tuple[str, str]] = []

    def _files(self) -> list[Path]:
        return sorted(
            p for p in self.folder.iterdir() if p.is_file() and p.suffix.lower() in self.suffixes
        )

    def poll(self) -> list[Path]:
        """New files whose size did not change since the previous poll, oldest first."""
        ready = []
        for p in self._files():
            if p in self._done:
                continue
            size = p.stat().st_size
            if self._sizes.get(p) == size and size > 0:
                ready.append(p)
            self._sizes[p] = size
        return sorted(ready, key=lambda p: p.stat().st_mtime)

    def scan(self, *, timeout: float = 300.0) -> ScanResult:
        """Wait for the next new, readable, sufficiently complete scan file."""
        deadline = time.monotonic() + timeout
        while True:
            for p in self.poll():
                self._done.add(p)
                try:
                    res = read_scan(p)
                except (ScanFileError, OSError) as e:
                    self.skipped.append((str(p), f"unreadable: {e}"))
                    continue
                done = res.lines_done if res.lines_done is not None else len(res.z)
                if done < self.min_lines_fraction * len(res.z):
                    self.skipped.append((str(p), f"partial: {done} of {len(res.z)} lines"))
                    continue
                return res
            if time.monotonic() >= deadline:
                raise InstrumentTimeout(f"no new scan file in {self.folder} within {timeout} s")
            time.sleep(self.poll_s)

    def scan_lines(self, *, timeout: float = 300.0) -> Iterator[np.ndarray]:
        yield from self.scan(timeout=timeout).z

    def pulse(self, bias_v: float, width_ms: float, *, timeout: float = 30.0) -> str:
        return "not sent: a folder watcher cannot act on the tip (logged for the operator)"

    def dip(self, depth_nm: float, bias_v: float, *, timeout: float = 30.0) -> str:
        return "not sent: a folder watcher cannot act on the tip (logged for the operator)"

    def move_to_fresh_area(self, *, timeout: float = 30.0) -> tuple[float, float]:
        return (0.0, 0.0)
