#!/usr/bin/env bash
# Browser tests of ct-triage (issue 4). Builds the bundle if needed, then:
#   1. wasm-bindgen-test: core's conformance tests and the wasm crate's API
#      tests under wasm32 (Node by default; WASM_TEST_BROWSER=1 for headless Chromium)
#   2. Playwright (playwright-core + Debian chromium): lung1 through the page,
#      top finding = the lung1 nodule, no request off the origin, zip, cancel,
#      offline; screenshots in tests/e2e/out/
#   3. parity: the browser's report equals the native CLI's (timings aside),
#      and the browser/native time ratio; DICOMweb (dicomweb.mjs): lung1 in a
#      real Orthanc, fetched by the page over WADO-RS, results back by STOW-RS,
#      and the client's error cases; OHIF (ohif.sh): the released OHIF
#      viewer shows ct-triage's SR measurements and SEG segments from Orthanc
#   4. PERF=1: the synthetic 512×512×300 series end to end in the browser
# Exits non-zero on any failure.
#
#   tests/e2e/browser.sh [--skip-build] [--skip-wasm-tests] [--quick]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$HERE/out"
SKIP_BUILD=0; SKIP_WASM_TESTS=0; QUICK=()
for a in "$@"; do
  case "$a" in
    --skip-build) SKIP_BUILD=1 ;;
    --skip-wasm-tests) SKIP_WASM_TESTS=1 ;;
    --quick) QUICK=(--quick) ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
say() { printf '\033[1m[browser.sh]\033[0m %s\n' "$*" >&2; }
secs() { echo $(( $(date +%s) - $1 )); }
FAILED=()
# Run one test step; a failure is recorded and the other steps still run.
step() {
  local name="$1"; shift
  local t; t=$(date +%s)
  say "$name"
  if "$@"; then say "$name: ok ($(secs "$t") s)"; else say "$name: FAILED ($(secs "$t") s)"; FAILED+=("$name"); fi
}

# ---------------------------------------------------------------- prerequisites
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  say "installing chromium and chromium-driver (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi
if ! fc-list 2>/dev/null | grep -qi "cjk\|wqy\|noto sans sc"; then
  say "installing a CJK font for the Chinese screenshot (fonts-wqy-microhei)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei || true
fi
if [ ! -d "$HERE/node_modules/playwright-core" ]; then
  (cd "$HERE" && npm ci --no-audit --no-fund)
fi

# ---------------------------------------------------------------- build
T=$(date +%s)
if [ "$SKIP_BUILD" = 0 ]; then
  STAMP="$ROOT/wasm/dist/build-info.json"
  if [ ! -f "$STAMP" ] || [ -n "$(find "$ROOT/wasm/src" "$ROOT/wasm/js" "$ROOT/wasm/www" "$ROOT/wasm/libc" "$ROOT/wasm/Cargo.toml" "$ROOT/wasm/build.sh" \
       "$ROOT/core/src" "$ROOT/core/Cargo.toml" "$ROOT/crates" "$ROOT/Cargo.lock" "$ROOT/models" -newer "$STAMP" -print -quit 2>/dev/null)" ]; then
    say "building the bundle (wasm/build.sh)"
    "$ROOT/wasm/build.sh"
  fi
fi
say "build step: $(secs "$T") s"

# ---------------------------------------------------------------- 1. wasm-bindgen-test
if [ "$SKIP_WASM_TESTS" = 0 ]; then
  T=$(date +%s)
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
  export WASM_BINDGEN_TEST_TIMEOUT=600
  if [ "${WASM_TEST_BROWSER:-0}" = 1 ]; then
    export CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_USE_BROWSER=1
  fi
  step "wasm-bindgen-test: core conformance under wasm32" \
    bash -c "cd '$ROOT' && cargo test -p ct-triage-core --target wasm32-unknown-unknown --test conformance"
  step "wasm-bindgen-test: ct-triage-wasm API under wasm32" \
    bash -c "cd '$ROOT' && cargo test -p ct-triage-wasm --target wasm32-unknown-unknown --test api"
  unset CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER
fi

# ---------------------------------------------------------------- 2. Playwright
step "Playwright: lung1 in headless chromium" node "$HERE/browser.mjs" "${QUICK[@]}"

# ---------------------------------------------------------------- 3. parity with the native CLI
parity() {
  local native; native="$(mktemp -d)"
  (cd "$ROOT" && cargo build --release -q -p ct-triage) || return 1
  local t0; t0=$(date +%s%N)
  # The same model as the page (the CLI embeds models/ at build time; be explicit).
  (cd "$ROOT" && target/release/ct-triage analyze sample-dicom/lung1 --out "$native/out" --json --quiet \
     --model wasm/dist/models/ctt-nodule-v1.json > "$native/stdout.json") || return 1
  local native_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  node - "$native" "$OUT/browser-report.json" "$OUT/browser-metrics.json" "$native_ms" <<'NODE'
const fs = require('fs'), path = require('path');
const [dir, browserPath, metricsPath, nativeMs] = process.argv.slice(2);
const file = path.join(dir, 'out', 'report.json');
const native = JSON.parse(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : fs.readFileSync(path.join(dir, 'stdout.json'), 'utf8'));
const browser = JSON.parse(fs.readFileSync(browserPath, 'utf8'));
const strip = (r) => { const c = structuredClone(r); delete c.timings_ms; return c; };
const a = JSON.stringify(strip(native), null, 1), b = JSON.stringify(strip(browser), null, 1);
const metrics = JSON.parse(fs.readFileSync(metricsPath, 'utf8'));
metrics.native = { wall_ms: Number(nativeMs), timings_ms: native.timings_ms };
metrics.ratio_engine = +(browser.timings_ms.total / native.timings_ms.total).toFixed(2);
metrics.ratio_end_to_end = +(metrics.first_result_ms / Number(nativeMs)).toFixed(2);
fs.writeFileSync(metricsPath, JSON.stringify(metrics, null, 2) + '\n');
console.log(`browser/native: engine ${browser.timings_ms.total} / ${native.timings_ms.total} ms = ${metrics.ratio_engine}; end to end ${metrics.first_result_ms} / ${nativeMs} ms = ${metrics.ratio_end_to_end}`);
if (a !== b) {
  const la = a.split('\n'), lb = b.split('\n');
  const i = la.findIndex((l, k) => l !== lb[k]);
  console.error(`FAIL parity: reports differ from line ${i}:\n native : ${la.slice(i, i + 3).join(' ')}\n browser: ${lb.slice(i, i + 3).join(' ')}`);
  process.exit(1);
}
// Issue 16: the parity covers the diffuse-opacity section (lung1 has one).
if (!native.opacities || !browser.opacities || !native.opacities.most_affected_slice) {
  console.error('FAIL parity: no opacities section to compare'); process.exit(1);
}
console.log(`ok   parity: the browser report equals the native CLI report (timings_ms aside), opacities included (CT severity score ${native.opacities.ct_severity_score}, ground glass ${(native.opacities.right.ground_glass_ml + native.opacities.left.ground_glass_ml).toFixed(1)} mL)`);
NODE
  local rc=$?
  rm -rf "$native"
  return $rc
}
step "parity with the native CLI (ct-triage analyze sample-dicom/lung1)" parity

# ---------------------------------------------------------------- 3b. DICOMweb: Orthanc → page → Orthanc
step "DICOMweb: a real Orthanc (QIDO/WADO/STOW), the page opened with ?dicomweb=…&study=…" node "$HERE/dicomweb.mjs"

# ---------------------------------------------------------------- 3c. the released OHIF viewer: ct-triage's SR and SEG in it
step "OHIF 3.13.2 (npm @ohif/app dist) on the same Orthanc setup: SR measurements and SEG segments shown" "$HERE/ohif.sh"

# ---------------------------------------------------------------- 4. 512×512×300 in the browser
perf() {
  node "$HERE/synth-series.mjs" --out "$OUT/synth300" --slices 300 || return 1
  node "$HERE/browser.mjs" --series "$OUT/synth300" --tag synth300 --quick --timeout-s 600
  local rc=$?
  rm -rf "$OUT/synth300"
  return $rc
}
[ "${PERF:-0}" = 1 ] && step "synthetic 512x512x300 series in the browser" perf

if [ "${#FAILED[@]}" -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  exit 1
fi
say "all browser tests passed"
