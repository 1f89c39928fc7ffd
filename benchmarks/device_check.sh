#!/usr/bin/env bash
# The GPU check of stoichgen's training, in one go (stops itself after 460 s of steps, within 8 minutes).
#
#   benchmarks/device_check.sh          on a machine with one CUDA GPU, from the repository root
#   benchmarks/device_check.sh --cpu    a short dry run of the same steps on the CPU (no GPU needed)
#
# No network: packages the machine lacks (pymatgen, SMACT and their needs) come as wheels in .whl/
# (README: performance), installed into /tmp/site. It runs the CUDA tests, benchmarks/bench_train.py
# and benchmarks/bench_surrogate.py on CUDA and on the CPU, a short `stoichgen train` of each model
# kind on CUDA, and `stoichgen generate` from those runs; each step's log goes to $OUT (default
# /tmp/stoichgen-device-check) and one summary line per measurement to $OUT/summary.txt and stdout.
#
# The wheels (Python 3.12, x86-64; the machine's image has the rest), fetched once on a machine with
# network, from the repository root (.whl/ is ignored: `echo /.whl/ >> .git/info/exclude`):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux_2_17_x86_64 -d .whl pymatgen==2026.10.24 pymatgen-core==2026.10.16 \
#     smact==4.0.2 monty==2026.10.21 ruamel.yaml==0.19.1 spglib==2.8.0 uncertainties==3.2.3 ase==3.29.0 \
#     pathos==0.3.5 dill==0.4.1 multiprocess==0.70.19 pox==0.3.7 ppft==1.7.8 orjson==3.13.0 \
#     palettable==3.3.3 plotly==7.1.0
#   python3 -m pip wheel --no-deps -w .whl bibtexparser==1.4.4 pandarallel==1.6.5   # no wheels published
set -u
DEVICE=cuda
SCALE=1 # a dry run takes fewer steps
if [ "${1:-}" = "--cpu" ]; then DEVICE=cpu; SCALE=20; fi
OUT=${OUT:-/tmp/stoichgen-device-check}
RUNS=$OUT/runs
mkdir -p "$OUT" "$RUNS"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
BEGIN=$(date +%s)
DEADLINE=${DEADLINE:-460} # seconds: every step is cut short so that the whole stays under 8 minutes

if ! python3 -c 'import pymatgen.core, smact' 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl >"$OUT/pip.log" 2>&1 || { echo "wheels did not install: $OUT/pip.log"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
SG=$OUT/stoichgen_cli.py # the command line, runnable under `timeout` (a shell function is not)
printf 'import sys\nfrom stoichgen.cli import main\nsys.exit(main())\n' >"$SG"

line() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S COMMAND...: run it with a time limit (never past the deadline), log to $OUT/NAME.log
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - ($(date +%s) - BEGIN)))
    if [ "$left" -lt 15 ]; then
        line "$name: skipped (deadline)"
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    local start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    WALL=$(($(date +%s) - start))
    [ $rc -ne 0 ] && line "$name: FAILED rc=$rc after ${WALL}s: $(tail -n 2 "$OUT/$name.log" | tr '\n' ' ')"
    return $rc
}

if [ "$DEVICE" = cuda ]; then
    GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
else
    GPU="none (--cpu dry run)"
fi
line "machine: GPU $GPU; CPU $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores;" \
    "$(python3 -c 'import torch; print("torch", torch.__version__)')"

# 1. the CUDA branches' tests (skipped, not failed, on a CPU)
if step tests 150 python3 -m pytest -q -p no:cacheprovider tests/models/test_fast.py \
    tests/models/test_fast_surrogate.py tests/test_train.py -k "cuda or graph or several or chunk"; then
    line "tests (CUDA branches): $(tail -n 1 "$OUT/tests.log")"
fi

# 2. the GAN step: eager loop against stoichgen's, on the device and on this machine's CPU
for preset in default paper; do
    steps=1000
    [ "$preset" = paper ] && steps=300 # the eager loop's paper step runs at about 40/s on a GPU
    if step "bench_train_${DEVICE}_$preset" 120 python3 benchmarks/bench_train.py --device "$DEVICE" \
        --preset "$preset" --steps $((steps / SCALE)) --repeats 2; then
        line "bench_train $DEVICE $preset: $(grep -E '^(eager|stoichgen|ratio)' "$OUT/bench_train_${DEVICE}_$preset.log" |
            tr -s ' ' | tr '\n' ' ')"
    fi
done

# 3. the surrogate ensemble: members one by one against all at once
bench_surrogate() { # DEVICE STEPS
    if step "bench_surrogate_$1" 120 python3 benchmarks/bench_surrogate.py --device "$1" --steps "$2"; then
        line "bench_surrogate $1: $(grep -E '^(reference|stoichgen|ratio)' "$OUT/bench_surrogate_$1.log" |
            tr -s ' ' | tr '\n' ' ')"
    fi
}
bench_surrogate "$DEVICE" $((3000 / SCALE))

# 4. a short run of each model kind on the device, then generation from them
train_kind() { # KIND STEPS [options]
    local kind=$1 steps=$2
    shift 2
    if step "train_$kind" 100 python3 "$SG" train --model "$kind" --repr bp --out "$RUNS/$kind" --steps "$steps" \
        --device "$DEVICE" --force "$@"; then
        line "train $kind on $DEVICE, $steps steps: $(grep -E '^trained' "$OUT/train_$kind.log" | tail -n 1)"
    fi
}
train_kind surrogate $((30000 / SCALE))
train_kind cgan $((20000 / SCALE))
train_kind cvae $((5000 / SCALE))
train_kind dnn $((5000 / SCALE))
for kind in cgan cvae; do
    [ -f "$RUNS/$kind/checkpoint.pt" ] || continue
    args=(generate --model "$RUNS/$kind" --target -2.0 -n 64 -o "$OUT/generated_$kind.csv" --force)
    [ -f "$RUNS/surrogate/checkpoint.pt" ] && args+=(--surrogate "$RUNS/surrogate")
    if step "generate_$kind" 60 python3 "$SG" "${args[@]}"; then
        line "generate from the $kind run: $(($(wc -l <"$OUT/generated_$kind.csv") - 1)) rows in ${WALL}s"
    fi
done
# 5. the same benches on this machine's CPU, in the time left
if [ "$DEVICE" = cuda ]; then
    if step bench_train_cpu_paper 150 python3 benchmarks/bench_train.py --device cpu --preset paper \
        --steps 100 --repeats 2; then
        line "bench_train cpu paper: $(grep -E '^(eager|stoichgen|ratio)' "$OUT/bench_train_cpu_paper.log" |
            tr -s ' ' | tr '\n' ' ')"
    fi
    bench_surrogate cpu 1000
fi
line "done in $(($(date +%s) - BEGIN))s"
