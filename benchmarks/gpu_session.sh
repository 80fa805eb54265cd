#!/usr/bin/env bash
# What ran on the lent GPU machine (H100, `device` tool): Keras 3 on JAX, because that image
# ships CUDA 13 with JAX and PyTorch but no TensorFlow, and no network to fetch one. The
# families it trains are ordinary .keras files that load and vote under TensorFlow.
#
#   bash benchmarks/gpu_session.sh STEP [SECONDS]
#
# STEP: speed (benchmarks/speed.py's GPU column) | cv (full-width session-grouped CV, resumed
# from .gpu/oof_w1.npz) | both. SECONDS bounds the CV so the call ends inside its limit; the
# finished folds' votes are in $OUT/oof_w1.npz either way, and the next call carries them back.
#
# Needs, in the ignored folder .gpu/ (made on the developer machine, carried with the call):
#   whl/    keras, namex, optree wheels for Python 3.12 (the image lacks them)
#   images.xz, meta.npz   the labelled rows of hsi128_dev.h5 (python benchmarks/gpu_data.py pack)
set -uo pipefail
step=${1:-both}
budget=${2:-420}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
# XLA compiles the full-width stack in minutes; every fold has the same graph, so a persistent
# cache turns the later folds' compiles into reads. The cache travels between calls as a tar.
export JAX_COMPILATION_CACHE_DIR=/tmp/jaxcache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
mkdir -p /tmp/jaxcache
[ -f .gpu/jaxcache.tar ] && tar -xf .gpu/jaxcache.tar -C /tmp/jaxcache
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
[ -f /tmp/hsi.h5 ] || python3 benchmarks/gpu_data.py unpack /tmp/hsi.h5 || exit 4

if [ "$step" = speed ] || [ "$step" = both ]; then
    cp benchmarks/results/speed.json "$OUT/speed.json"
    timeout "${SPEED_BUDGET:-200}" python3 benchmarks/speed.py --repeats 15 ${SPEED_ARGS:-} --out "$OUT/speed.json" 2>&1 \
        | grep -v -e "^WARNING" -e "^I0000" | tee "$OUT/speed.log"
fi
if [ "$step" = cv ] || [ "$step" = both ]; then
    # The votes file lives in $OUT from the start: each finished fold lands there at once, so a
    # call cut off at the device's limit still brings back every fold it finished.
    [ -f .gpu/oof_w1.npz ] && cp .gpu/oof_w1.npz "$OUT/"
    timeout "$budget" python3 benchmarks/accuracy.py --data /tmp/hsi.h5 --width 1.0 \
        --epochs "${EPOCHS:-30}" --no-precise-bn --engine fused --skip-2018 --runs /tmp/acc_w1 \
        --oof "$OUT/oof_w1.npz" --verbose --out "$OUT/accuracy_w1.json" 2>&1 \
        | grep -v -e "^WARNING" -e "^I0000" | tee "$OUT/accuracy_w1.log"
fi
tar -cf "$OUT/jaxcache.tar" -C /tmp/jaxcache . && du -sh /tmp/jaxcache
ls -la "$OUT"
