#!/usr/bin/env bash
# Every GPU check of charrnn in one command, on a machine with an NVIDIA GPU.
#
# Run from the repository root, on a machine that already has numpy, cupy, pluggy, click, pytest,
# matplotlib and torch installed (no network is needed):
#
#     bash benchmarks/gpu_check.sh
#
# Steps, each with its own log and a time limit; a failing step does not stop the others:
#
#   gpu          what CuPy and torch see (nvidia-smi too, when present)
#   install      python3 -m pip install --no-deps --no-build-isolation -e .
#   tests        python3 -m pytest -q, on every core with pytest-xdist when it is installed,
#                leaving out the files whose test-extra tools are missing (SKIP_TESTS=1 skips it)
#   conformance  charrnn conformance --backend cupy
#                (charrnn is run as `python3 -m charrnn`, whatever is on PATH)
#   run-rnn      charrnn run --backend cupy --model rnn --iterations 300 --quiet --no-plot
#   run-lstm     the same with --model lstm --batch-size 8 --dtype float32
#   run-gru      the same with --model gru --batch-size 8 --dtype float32
#   bench-torch  benchmarks/bench_torch.py --backend cupy  (charrnn on CuPy, torch on CUDA,
#                charrnn on NumPy; the course's configuration)
#   bench-batched  benchmarks/bench_batched.py --backend cupy  (LSTM/GRU 2x256, RNN 512, B=32,
#                T=64, float32; charrnn on CuPy against torch on CUDA)
#
# At the end, one line per step: PASS, FAIL or SKIP, its time and its key figure (or, for a
# failure, the last line it printed). The exit status is 1 if any step failed, else 0.
#
# Environment:
#   OUT            logs go here when set (the device tool copies $OUT back), else
#   GPU_CHECK_LOGS ... or here, else ./gpu-check-logs
#   SKIP_TESTS=1   skip the full pytest run (for quick iterations)
#   SKIP_INSTALL=1 skip the editable install (the project is already installed for $PYTHON)
#   QUICK=1        shorter benchmarks (fewer repeats and updates)
#   PYTHON         the interpreter [default: python3]
#   CHECK_BACKEND  charrnn backend the run/conformance/benchmark steps use [default: cupy];
#                  numpy makes a dry run of this script on a machine without a GPU
#   STEP_TIMEOUT   seconds per step [default: 300]; TESTS_TIMEOUT for the tests [default: 900]
#
# Under a tool that stops a command after 10 minutes, start with SKIP_TESTS=1 (every step but the
# tests usually takes a few minutes on a GPU), then run the tests on their own if needed.
set -u

PY=${PYTHON:-python3}
BACKEND=${CHECK_BACKEND:-cupy}
LOG_DIR=${OUT:-${GPU_CHECK_LOGS:-gpu-check-logs}}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
TESTS_TIMEOUT=${TESTS_TIMEOUT:-900}

if [ ! -f pyproject.toml ] || [ ! -d benchmarks ]; then
    echo "gpu_check.sh: run it from the repository root (no pyproject.toml or benchmarks/ here)" >&2
    exit 2
fi
mkdir -p "$LOG_DIR" || { echo "gpu_check.sh: cannot create $LOG_DIR" >&2; exit 2; }
LOG_DIR=$(cd "$LOG_DIR" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/charrnn-gpu-check.XXXXXX") || exit 2
SUMMARY="$LOG_DIR/summary.txt"
: > "$SUMMARY"
RESULTS=()
FAILED=0

CURRENT_PID=

cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
# Interrupted (or stopped by a time limit around the whole script): stop the running step and
# still say what was done.
on_signal() {
    if [ -n "$CURRENT_PID" ]; then
        kill -TERM "$CURRENT_PID" 2> /dev/null
        wait "$CURRENT_PID" 2> /dev/null
    fi
    echo
    echo "interrupted; summary so far:"
    print_summary
    exit 130
}
trap on_signal INT TERM

# The command line of a step: COMMAND (a program, or one of this script's functions, which run in
# a child bash) under GNU timeout when there is one. timeout makes itself a process group leader
# and passes a TERM it receives on to that whole group, so on_signal stops the whole step.
HAVE_TIMEOUT=0
command -v timeout > /dev/null 2>&1 && HAVE_TIMEOUT=1

record() {  # record NAME STATUS SECONDS FIGURE
    local line
    line=$(printf '%-14s %-4s %5ss  %s' "$1" "$2" "$3" "$4")
    RESULTS+=("$line")
    echo "$line" >> "$SUMMARY"
    echo "    $line"
}

print_summary() {
    echo "summary (logs in $LOG_DIR):"
    local line
    for line in ${RESULTS[@]+"${RESULTS[@]}"}; do
        echo "  $line"
    done
}

# step NAME TIMEOUT FIGURE FAIL_FIGURE -- COMMAND...: run COMMAND with its output in NAME.log.
# FIGURE LOG prints the step's key figure after a success; FAIL_FIGURE LOG what to say after a
# failure (- : the last line the step printed, which is what charrnn's one-line errors are).
step() {
    local name=$1 seconds=$2 figure=$3 fail_figure=$4
    shift 5
    local log="$LOG_DIR/$name.log" start rc elapsed
    echo "==> $name: $*"
    {
        echo "\$ $*"
        echo
    } > "$log"
    local cmd=("$@")
    if declare -F "$1" > /dev/null; then
        cmd=(bash -c '"$@"' "$1" "$@")
    fi
    if [ "$HAVE_TIMEOUT" = 1 ]; then
        cmd=(timeout --kill-after=30 "$seconds" "${cmd[@]}")
    fi
    start=$(date +%s)
    # In the background so that a signal reaches on_signal at once, not after the step.
    "${cmd[@]}" < /dev/null >> "$log" 2>&1 &
    CURRENT_PID=$!
    wait "$CURRENT_PID"
    rc=$?
    CURRENT_PID=
    elapsed=$(( $(date +%s) - start ))
    printf '\n[exit status %s after %ss]\n' "$rc" "$elapsed" >> "$log"
    if [ "$rc" -eq 0 ]; then
        record "$name" PASS "$elapsed" "$("$figure" "$log")"
    else
        FAILED=1
        local why
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            why="timed out after ${seconds}s (raise STEP_TIMEOUT or TESTS_TIMEOUT); last line:"
            why="$why $(last_line_before_status "$log")"
        else
            local detail=
            if [ "$fail_figure" != - ]; then
                detail=$("$fail_figure" "$log")
            fi
            why="exit $rc: ${detail:-$(last_line_before_status "$log")}"
        fi
        record "$name" FAIL "$elapsed" "$why"
    fi
}

# The last line a step printed, squeezed onto one line of at most 160 characters.
last_line_before_status() {
    grep -v '^\[exit status ' "$1" | grep -v '^[[:space:]]*$' | tail -n 1 \
        | tr -s '[:space:]' ' ' | sed 's/ $//' | cut -c 1-160
}

skip() {  # skip NAME WHY
    echo "==> $1: skipped ($2)"
    record "$1" SKIP 0 "$2"
}

# -- key figures --------------------------------------------------------------------------------

fig_gpu() { grep -E '^(cupy|torch|nvidia-smi):' "$1" | tr '\n' ';' | sed 's/;$//; s/;/; /g' | cut -c 1-200; }
fig_install() { grep -E '^charrnn ' "$1" | tail -n 1; }
fig_pytest() { grep -E '[0-9]+ (passed|failed|skipped|error)' "$1" | tail -n 1 | tr -s ' =' ' ' | cut -c 1-160; }
fig_conformance() { grep -E '^charrnn conformance:' "$1" | tail -n 1 | cut -c 1-200; }
fig_run() {
    # "done: 300 updates in 2.1 s (143 updates/s, 3,575 chars/s), smooth loss 114.9; run ..."
    grep -E '^(done|stopped)' "$1" | tail -n 1 | sed 's/; run directory.*//' | cut -c 1-160
}
fig_bench_torch() {
    local ratios sanity
    sanity=$(grep -E '^sanity check' "$1" | sed 's/.*: //' | head -n 1)
    ratios=$(grep -E '^ratio charrnn' "$1" | sed 's/ (median of per-repeat ratios.*//; s/^ratio //' \
             | tr '\n' ';' | sed 's/;$//; s/;/; /g')
    if [ -z "$ratios" ]; then  # charrnn alone: its rate
        ratios="charrnn alone, median $(awk '$1 == "charrnn" && $2 == "charrnn," {print $(NF-2)}' "$1") upd/s"
    fi
    echo "sanity ${sanity:-?}; $ratios"
}
fig_bench_batched() {
    local sanity summary
    sanity=$(grep -E '^sanity check' "$1" | sed 's/.*: //' | head -n 1)
    summary=$(grep -E '^summary \(median chars/s' "$1" | tail -n 1 | sed 's/^summary //')
    echo "sanity ${sanity:-not run}; ${summary:-no summary line}" | cut -c 1-240
}

# -- the steps ----------------------------------------------------------------------------------

gpu_info() {
    local ok=0
    if command -v nvidia-smi > /dev/null 2>&1; then
        echo "nvidia-smi: $(nvidia-smi -L 2>&1 | head -n 1)"
        nvidia-smi 2>&1 | sed 's/^/  /'
    else
        echo "nvidia-smi: not found"
    fi
    "$PY" - <<'EOF' || ok=1
import sys
try:
    import torch
    if torch.cuda.is_available():
        print(f"torch: {torch.__version__} sees {torch.cuda.get_device_name(0)} "
              f"(CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})")
    else:
        print(f"torch: {torch.__version__} sees no CUDA device")
except Exception as exc:
    print(f"torch: not importable ({type(exc).__name__}: {exc})"[:200])
# CuPy last: when this step fails, its last line says why.
try:
    from charrnn.backends.cupy_backend import CupyBackend
    from charrnn.errors import BackendUnavailable
except Exception:  # the project is not installed yet: ask CuPy directly
    try:
        import cupy
        n = cupy.cuda.runtime.getDeviceCount()
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"] if n else b"none"
        name = name.decode() if isinstance(name, bytes) else name
        print(f"cupy: {cupy.__version__}, {n} device(s), the first {name}")
        cupy_ok = n > 0
    except Exception as exc:
        print(f"cupy: unavailable ({type(exc).__name__}: {exc})"[:200])
        cupy_ok = False
else:
    try:
        CupyBackend.check_available()
        print("cupy:", CupyBackend.describe())
        cupy_ok = True
    except BackendUnavailable as exc:
        print("cupy: unavailable:", str(exc).split(";")[0])
        cupy_ok = False
sys.exit(0 if cupy_ok else 1)
EOF
    return $ok
}

install_project() {
    "$PY" -m pip install --no-deps --no-build-isolation -e . || return 1
    "$PY" -c 'import os, charrnn, numpy
print(f"charrnn {charrnn.__version__} installed from {os.path.dirname(charrnn.__file__)}, "
      f"numpy {numpy.__version__}")'
}

# The functions steps run under `timeout` run in a child bash: it needs them and $PY.
export PY
# Python writes its output as it goes, so a step stopped by its time limit leaves a useful log.
export PYTHONUNBUFFERED=1
export -f gpu_info install_project

echo "charrnn GPU check: backend $BACKEND, python $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>&1), logs in $LOG_DIR"

if [ "$BACKEND" = cupy ]; then
    step gpu "$STEP_TIMEOUT" fig_gpu - -- gpu_info
fi
if [ "${SKIP_INSTALL:-0}" = 1 ]; then
    skip install "SKIP_INSTALL=1 (using the charrnn already installed for $PY)"
else
    step install "$STEP_TIMEOUT" fig_install - -- install_project
fi

if [ "${SKIP_TESTS:-0}" = 1 ]; then
    skip tests "SKIP_TESTS=1"
else
    # The test extra's tools may be missing on a GPU machine's image: without pytest-xdist the
    # suite runs in one process (the project's addopts ask for -n), and the files that need
    # hypothesis or the docs tools are left out rather than failing to import.
    test_args=(-q -o "addopts=-ra")
    if "$PY" -c "import xdist" 2>/dev/null; then test_args+=(-n auto --dist loadfile); fi
    if ! "$PY" -c "import hypothesis" 2>/dev/null; then
        test_args+=(--ignore=tests/test_checkpoint_fuzz.py --ignore=tests/test_large_text.py
                    --ignore=tests/test_unicode_props.py)
    fi
    if ! "$PY" -c "import markdown, yaml, mkdocs_click" 2>/dev/null; then
        test_args+=(--ignore=tests/test_docs.py)
    fi
    step tests "$TESTS_TIMEOUT" fig_pytest fig_pytest -- "$PY" -m pytest "${test_args[@]}"
fi

step conformance "$STEP_TIMEOUT" fig_conformance fig_conformance -- "$PY" -m charrnn conformance --backend "$BACKEND"

RUN_ARGS=(--backend "$BACKEND" --iterations 300 --quiet --no-plot)
step run-rnn "$STEP_TIMEOUT" fig_run - -- "$PY" -m charrnn run "${RUN_ARGS[@]}" --model rnn \
    --out "$WORK/run-rnn"
for model in lstm gru; do
    step "run-$model" "$STEP_TIMEOUT" fig_run - -- "$PY" -m charrnn run "${RUN_ARGS[@]}" \
        --model "$model" --batch-size 8 --dtype float32 --out "$WORK/run-$model"
done

if [ "${QUICK:-0}" = 1 ]; then
    TORCH_ARGS=(--repeats 2 --updates 100 --warmup 10)
    BATCHED_ARGS=(--repeats 3 --updates 3 --warmup 1)
else
    TORCH_ARGS=()
    BATCHED_ARGS=()
fi
step bench-torch "$STEP_TIMEOUT" fig_bench_torch - -- "$PY" benchmarks/bench_torch.py \
    --backend "$BACKEND" ${TORCH_ARGS[@]+"${TORCH_ARGS[@]}"}
step bench-batched "$STEP_TIMEOUT" fig_bench_batched - -- "$PY" benchmarks/bench_batched.py \
    --backend "$BACKEND" ${BATCHED_ARGS[@]+"${BATCHED_ARGS[@]}"}

echo
print_summary
passed=$(grep -c '^[^ ]* *PASS ' "$SUMMARY")
failed=$(grep -c '^[^ ]* *FAIL ' "$SUMMARY")
skipped=$(grep -c '^[^ ]* *SKIP ' "$SUMMARY")
echo "steps: $passed passed, $failed failed, $skipped skipped" | tee -a "$SUMMARY"
if [ "$FAILED" -ne 0 ]; then
    echo "gpu_check.sh: at least one step FAILED"
    exit 1
fi
echo "gpu_check.sh: every step passed"
exit 0
