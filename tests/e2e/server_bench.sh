#!/usr/bin/env bash
# Whole-run throughput of `ct-triage batch` on N copies of sample-dicom/lung1:
# series per hour on 1 core (taskset -c 0, --jobs 1) and on 2 cores
# (taskset -c 0,1, --jobs 2), and peak memory (GNU time's maximum resident set
# size). Prints a Markdown table. Run it on an otherwise idle machine.
#
#   tests/e2e/server_bench.sh [N=8]      (CTT_BIN=... to use another binary)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
N="${1:-8}"
BIN="${CTT_BIN:-$ROOT/target/release/ct-triage}"
[ -x /usr/bin/time ] || { echo "FAIL: /usr/bin/time (GNU time) is not installed" >&2; exit 1; }
WORK="$(mktemp -d /tmp/ctt-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"
for i in $(seq "$N"); do cp -al "$ROOT/sample-dicom/lung1" "$WORK/root/copy$i"; done

measure() { # $1 = label, rest = command; prints "wall_s cpu_s maxrss_kb"
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "${@:2}" >/dev/null 2>&1
    read -r wall user sys rss <"$WORK/time"
    echo "$wall $(python3 -c "print(round($user+$sys,2))") $rss"
}
command -v taskset >/dev/null || { echo "FAIL: taskset (util-linux) is not installed" >&2; exit 1; }
read -r w1 c1 r1 <<<"$(RAYON_NUM_THREADS=1 measure core1 taskset -c 0 "$BIN" batch "$WORK/root" --out "$WORK/out1" --jobs 1 --quiet)"
read -r w2 c2 r2 <<<"$(RAYON_NUM_THREADS=2 measure core2 taskset -c 0,1 "$BIN" batch "$WORK/root" --out "$WORK/out2" --jobs 2 --quiet)"
read -r wa ca ra <<<"$(measure one taskset -c 0,1 "$BIN" analyze "$ROOT/sample-dicom/lung1" --out "$WORK/one" --quiet)"
python3 - "$N" "$w1" "$c1" "$r1" "$w2" "$c2" "$r2" "$wa" "$ca" "$ra" <<'PY'
import sys
n = int(sys.argv[1]); w1, c1, r1, w2, c2, r2, wa, ca, ra = map(float, sys.argv[2:])
print(f"| run | wall s | CPU s | series/hour | peak RSS MB |")
print(f"|---|---|---|---|---|")
print(f"| batch, 1 core (--jobs 1), {n} series | {w1:.1f} | {c1:.1f} | {3600*n/w1:.0f} | {r1/1024:.0f} |")
print(f"| batch, 2 cores (--jobs 2), {n} series | {w2:.1f} | {c2:.1f} | {3600*n/w2:.0f} | {r2/1024:.0f} |")
print(f"| analyze, 1 series, 2 cores | {wa:.1f} | {ca:.1f} | | {ra/1024:.0f} |")
print(f"\nscaling 1 → 2 cores: {w1/w2:.2f}x; load average now: {open('/proc/loadavg').read().split()[0]}")
PY
