#!/usr/bin/env bash
# Side-by-side comparison of ct-triage with the Python stack a user would pick,
# on the same DICOM series in one run (see benches/compare/README.md):
#
#   1. ingest: pydicom + numpy vs ct_triage_core::ingest::load (files -> HU)
#   2. preprocessing chain: load -> 1 mm resample -> lung mask -> blob filter,
#      pydicom / SimpleITK / scipy.ndimage vs the ct-triage stages
#
#   benches/compare/run.sh [SERIES_DIR]
#
# Without SERIES_DIR, a synthetic 512x512x300 series is written once to
# target/compare/synth300 (ctt-synth) and used. Writes target/compare/results.json
# (raw per-tool results in target/compare/raw/) and prints a markdown table.
#
# Environment: REPS (default 3) timed repetitions after WARMUP (default 1);
# THREADS (default 2) for rayon and SimpleITK; AIR_HU (default -320) lung
# threshold of the Python chain; CTT_PYTHON (default .venv/bin/python, made by
# scripts/setup.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE="$ROOT/benches/compare"
REPS="${REPS:-3}"
WARMUP="${WARMUP:-1}"
THREADS="${THREADS:-2}"
AIR_HU="${AIR_HU:--320}"
PY="${CTT_PYTHON:-$ROOT/.venv/bin/python}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$ROOT/target/compare"
RAW="$OUT/raw"
say() { printf '\033[1;34m[compare]\033[0m %s\n' "$*" >&2; }

"$PY" -c "import pydicom, numpy, scipy, SimpleITK" 2>/dev/null || {
    echo "error: $PY lacks pydicom/numpy/scipy/SimpleITK; run scripts/setup.sh" >&2
    exit 1
}

# Same thread budget for both sides. scipy.ndimage and pydicom are
# single-threaded; the BLAS/OpenMP variables only keep numpy from using more.
export RAYON_NUM_THREADS="$THREADS" CTT_THREADS="$THREADS"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"

say "cargo build --release (ctt-compare, ctt-synth)"
cargo build --release -p ct-triage-benches --bin ctt-compare --bin ctt-synth
BIN="$TARGET/release"

mkdir -p "$RAW"
if [ $# -ge 1 ]; then
    SERIES="$(cd "$1" && pwd)"
else
    SERIES="$OUT/synth300"
    STAMP="$OUT/synth300.done"
    if [ ! -f "$STAMP" ] || [ "$(find "$SERIES" -maxdepth 1 -name '*.dcm' | wc -l)" -ne 300 ]; then
        say "writing the synthetic 512x512x300 series to $SERIES"
        rm -rf "$SERIES" "$STAMP"
        "$BIN/ctt-synth" "$SERIES" 300
        touch "$STAMP"
    fi
fi
say "series: $SERIES ($(find "$SERIES" -maxdepth 1 -type f | wc -l) files); reps $REPS after $WARMUP warm-up; $THREADS threads"

run() { # name, command...
    local name="$1"
    shift
    say "$name (load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'))"
    "$@" >"$RAW/$name.json"
}
R=(--reps "$REPS" --warmup "$WARMUP")
run ingest_python "$PY" "$HERE/ingest_pydicom.py" "$SERIES" "${R[@]}"
run ingest_rust "$BIN/ctt-compare" ingest "$SERIES" "${R[@]}"
run chain_python "$PY" "$HERE/chain_python.py" "$SERIES" "${R[@]}" --threads "$THREADS" --air-hu "$AIR_HU"
run chain_rust "$BIN/ctt-compare" chain "$SERIES" "${R[@]}"

"$PY" "$HERE/report.py" "$RAW" "$OUT/results.json"
