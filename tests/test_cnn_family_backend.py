"""The Keras-on-JAX path (what ran on the lent H100, whose image has no TensorFlow), on CPU.

A tiny family is trained and voted on under ``KERAS_BACKEND=jax`` in a child process (the
backend is fixed per process), then loaded here under TensorFlow: the files and the votes must
be the same.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="JAX is not installed (requirements-dev.txt installs it; the JAX path is optional)",
)

CHILD = r"""
import json, sys
import numpy as np
from cnn_family import Family
from cnn_family.backend import backend_name, versions
from stm_sim.dataset import make_frameset
from training.config import TrainConfig
from training.trainer import train_family

out, layout = sys.argv[1], sys.argv[2]
fs = make_frameset(40, seed=5)
cfg = TrainConfig(width=0.125, max_filters=32, epochs=2, batch_size=16,
                  categories=("Dimers", "Rows"), members_per_category=3)
d = train_family(fs, cfg, out, verbose=0, layout=layout)
probs = Family.load(d).predict_members(fs.images[:21], batch_size=8)  # a padded last chunk
np.save(out + "/jax_probs.npy", probs)
print(json.dumps({"backend": backend_name(), "versions": versions()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["stacked", "branches"])
def test_family_trained_under_jax_votes_the_same_under_tensorflow(tmp_path, layout):
    from cnn_family import Family
    from stm_sim.dataset import make_frameset

    out = tmp_path / "jaxfam"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), layout],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["backend"] == "jax" and "jax" in info["versions"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["versions"]["backend"] == "jax"

    fam = Family.load(out)  # this process: TensorFlow
    frames = make_frameset(40, seed=5).images[:21]
    np.testing.assert_allclose(
        fam.predict_members(frames), np.load(out / "jax_probs.npy"), atol=2e-5
    )
