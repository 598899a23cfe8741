#!/usr/bin/env bash
# TypeScript check (tsc --noEmit, typescript from package.json):
#   tsconfig.json       wasm/js/index.js (// @ts-check, its own JSDoc), index.d.ts and
#                       the report types generated from the Rust types (wasm/js/report.d.ts,
#                       see crates/analysis/tests/schema.rs)
#   tsconfig.page.json  the page scripts wasm/www/{app,viewer,i18n}.js (// @ts-check)
#                       against those declarations (./pkg/index.js mapped by rootDirs)
#   tsconfig.worker.json  the service worker wasm/www/sw.js
#   tsconfig.wasm-worker.json  wasm/js/worker.js against the wasm-bindgen declarations
#                       in wasm/pkg (written by wasm/build.sh; skipped, and said so,
#                       when wasm/pkg is absent)
# Exits non-zero on a type error.
#
#   tests/e2e/typecheck.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund
fi
CONFIGS=(tsconfig.json tsconfig.page.json tsconfig.worker.json)
if [ -f ../../wasm/pkg/ct_triage_wasm.d.ts ]; then
  CONFIGS+=(tsconfig.wasm-worker.json)
else
  echo "typecheck: wasm/js/worker.js skipped (no wasm/pkg: run wasm/build.sh first)"
fi
for config in "${CONFIGS[@]}"; do
  node_modules/.bin/tsc -p "$config"
  echo "typecheck: tsc --noEmit clean ($config)"
done
