"""The Colab notebook's commands name scripts and flags that exist (they drift otherwise)."""

import json
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "colab_train.ipynb"


def _commands():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["nbformat"] == 4
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("!python "):
                yield shlex.split(line[1:])


@pytest.mark.parametrize("argv", list(_commands()), ids=lambda a: " ".join(a[1:3]))
def test_notebook_command_flags_exist(argv):
    target = argv[1:3] if argv[1] == "-m" else argv[1:2]
    if argv[1] != "-m":
        assert (ROOT / argv[1]).exists(), f"{argv[1]} is not in the repository"
    shown = subprocess.run(
        [sys.executable, *target, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for flag in [a for a in argv if a.startswith("--")]:
        assert re.search(rf"{re.escape(flag)}\b", shown.stdout), f"{flag} not in {target} --help"


def test_notebook_uses_the_drive_helpers():
    text = NOTEBOOK.read_text()
    from training import drive

    for name in re.findall(r"from training\.drive import ([\w, ]+)", text)[0].split(", "):
        assert hasattr(drive, name.strip()), name
