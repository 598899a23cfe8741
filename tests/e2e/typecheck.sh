#!/usr/bin/env bash
# TypeScript check of the npm module (tsc --noEmit, typescript from package.json):
# wasm/js/index.js under // @ts-check against its own JSDoc, index.d.ts and the
# report types generated from the Rust types (wasm/js/report.d.ts; see
# crates/analysis/tests/schema.rs). No build needed. Exits non-zero on a type error.
#
#   tests/e2e/typecheck.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund
fi
node_modules/.bin/tsc -p tsconfig.json
echo "typecheck: tsc --noEmit clean (tests/e2e/tsconfig.json)"
