#!/usr/bin/env bash
# Print the path of libonnxruntime.so from the PyPI `onnxruntime==1.31.1` wheel,
# for ort's runtime loading:  export ORT_DYLIB_PATH="$(scripts/ort-lib.sh)"
#
# Looks in $ORT_VENV (default: .venv from scripts/setup.sh, then training/.venv); when no venv
# there has onnxruntime 1.31.1, installs it into $ORT_VENV (default
# training/.ort-venv) with pip. Nothing else is downloaded.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=1.31.1
find_lib() {
    local py="$1/bin/python"
    [ -x "$py" ] || return 1
    "$py" - "$VERSION" <<'PY' 2>/dev/null
import glob, os, sys
import onnxruntime
if onnxruntime.__version__ != sys.argv[1]:
    sys.exit(1)
d = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
libs = sorted(glob.glob(os.path.join(d, "libonnxruntime.so.*")))
if not libs:
    sys.exit(1)
print(libs[-1])
PY
}
for venv in ${ORT_VENV:-} "$ROOT/.venv" "$ROOT/training/.venv" "$ROOT/training/.ort-venv"; do
    if lib="$(find_lib "$venv")"; then
        echo "$lib"
        exit 0
    fi
done
venv="${ORT_VENV:-$ROOT/.venv}"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet "onnxruntime==$VERSION" >&2
find_lib "$venv"
