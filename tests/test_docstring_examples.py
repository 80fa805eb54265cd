"""Every docstring example in the packages and benchmark scripts runs and shows what it says.

The examples are the first thing a reader copies; this keeps them true (``# doctest: +SKIP``
marks the ones that need data, a trained family or a controller).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest
from conftest import ROOT

PACKAGES = ("stm_sim", "training", "evaluation", "cnn_family", "instrument_bridge", "gan_extras")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        p = importlib.import_module(pkg)
        names.append(pkg)
        names += [m.name for m in pkgutil.walk_packages(p.__path__, pkg + ".")]
    return names


def _run(module) -> doctest.TestResults:
    return doctest.testmod(module, optionflags=FLAGS, verbose=False, report=True)


@pytest.mark.parametrize("name", _modules())
def test_package_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    res = _run(importlib.import_module(name))
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples in {name} fail"


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_benchmark_docstring_examples(path, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # their shared helper, _real
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    res = _run(module)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring examples in {path} fail"
