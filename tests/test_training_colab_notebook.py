"""The Colab notebooks name scripts and flags that exist, and their Python parses (they drift)."""

import json
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _code_cells(path):
    nb = json.loads(path.read_text())
    assert nb["nbformat"] == 4
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _commands():
    for path in NOTEBOOKS:
        for cell in _code_cells(path):
            for line in cell.splitlines():
                if line.lstrip().startswith("!python "):
                    yield pytest.param(shlex.split(line.lstrip()[1:]), id=f"{path.stem}: {line}")


def _help(args):
    shown = subprocess.run(
        [sys.executable, *args, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"colab_train.ipynb", "colab_gan_extras.ipynb"}


@pytest.mark.parametrize("argv", list(_commands()))
def test_notebook_command_flags_exist(argv):
    target = argv[1:3] if argv[1] == "-m" else argv[1:2]
    if argv[1] != "-m":
        assert (ROOT / argv[1]).exists(), f"{argv[1]} is not in the repository"
    shown = _help(target)
    # a subcommand (python -m gan_extras translate ...): its own --help lists its flags
    choices = re.search(r"\{([\w,]+)\}", shown)
    if argv[1] == "-m" and len(argv) > 3 and choices and argv[3] in choices[1].split(","):
        shown = _help([*target, argv[3]])
    for flag in [a for a in argv if a.startswith("--")]:
        assert re.search(rf"{re.escape(flag)}\b", shown), f"{flag} not in {target} --help"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_python_parses(path):
    for cell in _code_cells(path):
        # IPython's shell (!) and magic (%) lines become `pass` at their indentation
        py = re.sub(r"^(\s*)[!%].*$", r"\1pass", cell, flags=re.M)
        compile(py, f"{path.name} cell", "exec")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_uses_the_drive_helpers(path):
    from training import drive

    text = "\n".join(_code_cells(path))
    for names in re.findall(r"from training\.drive import ([\w, ]+)", text):
        for name in names.split(","):
            assert hasattr(drive, name.strip()), name
