#!/usr/bin/env bash
# Everything tinynet measures on a GPU, in one call on a machine with a CUDA card (a lent
# one gives a few minutes at a time), from the repository root:
#
#   bash benchmarks/gpu_session.sh                      # probe, tests, examples, bench, time
#   bash benchmarks/gpu_session.sh probe tests          # only those stages, in that order
#
# It needs NumPy, CuPy and pytest (with hypothesis) on the machine; PyTorch and JAX for the
# benchmark's columns; Keras as wheels in .whl/ if it is not installed (installed into
# /tmp/site, not into the machine's Python). The MNIST files are read from
# $TINYNET_DATA_DIR (default: data/mnist, a git-ignored copy). Every stage writes its log
# to $OUT (default: results-local/gpu) and prints one line; the benchmark's tables are
# copied there too. A stage that fails or runs past its limit does not stop the others.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-results-local/gpu}
mkdir -p "$OUT"
export TINYNET_DATA_DIR=${TINYNET_DATA_DIR:-data/mnist}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

stage() {  # stage NAME SECONDS COMMAND...: run it, its output in $OUT/NAME.log, one line here
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    printf '%-10s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(($(date +%s) - start))" "$(tail -n 1 "$OUT/$name.log")"
}

for what in "${@:-probe tests examples bench time}"; do
    for s in $what; do
        case $s in
        probe)
            stage nvidia-smi 30 nvidia-smi
            stage probe 60 python3 -m tinynet
            ;;
        tests) # every GPU test on CuPy (conftest picks it when the probe passes)
            stage tests 420 python3 -m pytest -q -p no:cacheprovider -r fEs
            ;;
        examples)
            stage mnist_mlp 240 python3 examples/mnist_mlp.py --device gpu --plots "$OUT/plots/mnist_mlp" --verbose 2
            stage mnist_cnn 300 python3 examples/mnist_cnn.py --device gpu --plots "$OUT/plots/mnist_cnn" --verbose 2
            ;;
        bench)
            stage bench_mlp 420 python3 benchmarks/bench_mnist_mlp.py --device gpu --epochs 3 --no-compile
            stage bench_cnn 300 python3 benchmarks/bench_mnist_mlp.py --device gpu --epochs 3 --no-compile --model cnn
            cp benchmarks/results/*gpu* "$OUT"/ 2>/dev/null
            ;;
        time)
            stage time 300 python3 benchmarks/time_to_accuracy.py --device gpu
            cp benchmarks/results/time_to_accuracy_gpu.* "$OUT"/ 2>/dev/null
            ;;
        *)
            echo "unknown stage $s: probe, tests, examples, bench or time" >&2
            exit 2
            ;;
        esac
    done
done
