#!/usr/bin/env bash
# TypeScript check (tsc --noEmit, typescript from package.json), no build needed:
#   tsconfig.json       wasm/js/index.js (// @ts-check, its own JSDoc), index.d.ts and
#                       the report types generated from the Rust types (wasm/js/report.d.ts,
#                       see crates/analysis/tests/schema.rs)
#   tsconfig.page.json  the page scripts wasm/www/{app,viewer,i18n}.js (// @ts-check)
#                       against those declarations (./pkg/index.js mapped by rootDirs)
# Exits non-zero on a type error.
#
#   tests/e2e/typecheck.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
if [ ! -x node_modules/.bin/tsc ]; then
  npm ci --no-audit --no-fund
fi
for config in tsconfig.json tsconfig.page.json; do
  node_modules/.bin/tsc -p "$config"
  echo "typecheck: tsc --noEmit clean ($config)"
done
