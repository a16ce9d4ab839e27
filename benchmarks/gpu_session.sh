#!/usr/bin/env bash
# What tinynet measures on a GPU, stage by stage, on a machine with a CUDA card, from the
# repository root:
#
#   bash benchmarks/gpu_session.sh probe tests examples      # one call
#   bash benchmarks/gpu_session.sh bench time                # another
#
# Stages: probe (nvidia-smi, python -m tinynet), tests (the whole suite on CuPy), examples
# (mnist_mlp and mnist_cnn with --device gpu), bench (bench_mnist_mlp.py, MLP and convnet),
# time (time_to_accuracy.py). A lent machine gives each call a few minutes, so the stages
# share a budget of $BUDGET seconds (default 540): each runs under its own limit cut to what
# is left, and a stage that no longer fits is skipped and says so, to run in a next call.
#
# It needs NumPy, CuPy and pytest (with hypothesis); PyTorch and JAX for the benchmark's
# columns; Keras as wheels in .whl/ if it is not installed (installed into /tmp/site, not
# into the machine's Python). MNIST is read from $TINYNET_DATA_DIR (default: data/mnist, a
# git-ignored copy). Each stage prints one line and writes its log to $OUT (default:
# results-local/gpu); the benchmark's new tables are copied there only when it succeeded.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-results-local/gpu}
BUDGET=${BUDGET:-540}
STAGES="probe tests examples bench time"
for s in "$@"; do
    case " $STAGES " in
    *" $s "*) ;;
    *)
        echo "unknown stage $s: the stages are $STAGES" >&2
        exit 2
        ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "name the stages to run (within about ${BUDGET} s): the stages are $STAGES" >&2
    exit 2
fi
mkdir -p "$OUT"
export TINYNET_DATA_DIR=${TINYNET_DATA_DIR:-data/mnist}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
END=$(($(date +%s) + BUDGET))

stage() { # stage NAME SECONDS COMMAND...: its output in $OUT/NAME.log, one line here; its status
    local name=$1 limit=$2 left start rc
    shift 2
    left=$((END - $(date +%s)))
    if [ "$left" -lt 20 ]; then
        printf '%-10s skipped: %ss of the budget left; run it in another call\n' "$name" "$left"
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    printf '%-10s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(($(date +%s) - start))" "$(tail -n 1 "$OUT/$name.log")"
    return "$rc"
}

for s in "$@"; do
    case $s in
    probe)
        stage nvidia-smi 30 nvidia-smi
        stage probe 60 python3 -m tinynet
        ;;
    tests) # every GPU test on CuPy (conftest picks it when the probe passes)
        stage tests 420 python3 -m pytest -q -p no:cacheprovider -r fEs
        ;;
    examples)
        stage mnist_mlp 120 python3 examples/mnist_mlp.py --device gpu --plots "$OUT/plots/mnist_mlp" --verbose 2
        stage mnist_cnn 180 python3 examples/mnist_cnn.py --device gpu --plots "$OUT/plots/mnist_cnn" --verbose 2
        ;;
    bench)
        stage bench_mlp 400 python3 benchmarks/bench_mnist_mlp.py --device gpu --epochs 3 --no-compile \
            && cp benchmarks/results/bench_mnist_mlp_gpu.* "$OUT"/
        stage bench_cnn 300 python3 benchmarks/bench_mnist_mlp.py --device gpu --epochs 3 --no-compile --model cnn \
            && cp benchmarks/results/bench_mnist_cnn_gpu.* "$OUT"/
        ;;
    time)
        stage time 300 python3 benchmarks/time_to_accuracy.py --device gpu \
            && cp benchmarks/results/time_to_accuracy_gpu.* "$OUT"/
        ;;
    esac
done
exit 0
