#!/usr/bin/env bash
# Build the browser bundle and the page into wasm/dist/, and the npm package
# into wasm/pkg/ (generated: wasm-bindgen output + the sources in wasm/js/).
# Idempotent; installs what it needs from the registries on a fresh machine
# (rustup target, wasm-bindgen-cli at the Cargo.lock version, npm binaryen + fflate).
#
#   wasm/build.sh                 # SIMD on (default), wasm-opt -O3
#   SIMD=0 wasm/build.sh          # without wasm SIMD (separate target dir)
#   WASM_OPT=0 wasm/build.sh      # skip wasm-opt
#   MODEL_DIR=path wasm/build.sh  # model manifest + weights to ship (default: models/)
#   DIST=dir wasm/build.sh        # write the page elsewhere (e.g. to compare builds)
set -euo pipefail

WASM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$WASM_DIR/.." && pwd)"
PKG="$WASM_DIR/pkg"
DIST="${DIST:-$WASM_DIR/dist}"
SIMD="${SIMD:-1}"
WASM_OPT="${WASM_OPT:-1}"
PROFILE=wasm-release
TARGET=wasm32-unknown-unknown
MODEL_NAME="${MODEL_NAME:-ctt-nodule-v1}"

say() { printf '\033[1m[build.sh]\033[0m %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$TARGET"; then
  say "installing the $TARGET target"
  rustup target add "$TARGET"
fi

WB_VERSION="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")"
[ -n "$WB_VERSION" ] || { echo "wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WB_VERSION\$"; then
  say "installing wasm-bindgen-cli $WB_VERSION (the version in Cargo.lock)"
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --locked \
    || cargo install wasm-bindgen-cli --version "$WB_VERSION"
fi

if [ ! -x "$WASM_DIR/node_modules/.bin/wasm-opt" ] || [ ! -f "$WASM_DIR/node_modules/fflate/esm/browser.js" ]; then
  say "installing npm build tools (binaryen, fflate)"
  if [ -f "$WASM_DIR/package-lock.json" ]; then
    (cd "$WASM_DIR" && npm ci --no-audit --no-fund)
  else
    (cd "$WASM_DIR" && npm install --no-audit --no-fund)
  fi
fi

# ---------------------------------------------------------------- cargo
# Own target dirs: different RUSTFLAGS would rebuild everything on each switch,
# and the bundle build never waits on (or invalidates) the workspace target dir.
if [ "$SIMD" = 1 ]; then
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"
  TARGET_DIR="$ROOT/target/wasm-simd"
else
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS=""
  TARGET_DIR="$ROOT/target/wasm-nosimd"
fi
say "cargo build -p ct-triage-wasm --target $TARGET --profile $PROFILE (SIMD=$SIMD)"
t0=$(date +%s)
(cd "$ROOT" && cargo build -p ct-triage-wasm --target "$TARGET" --profile "$PROFILE" --target-dir "$TARGET_DIR")
say "cargo: $(( $(date +%s) - t0 )) s"
RAW="$TARGET_DIR/$TARGET/$PROFILE/ct_triage_wasm.wasm"

# ---------------------------------------------------------------- wasm-bindgen + wasm-opt
rm -rf "$PKG"
mkdir -p "$PKG/vendor"
# The hand-written package files (client, worker, types, package.json, README).
cp "$WASM_DIR"/js/{index.js,errors.js,dicomweb.js,index.d.ts,report.d.ts,worker.js,package.json,README.md} "$PKG/"
wasm-bindgen --target web --out-dir "$PKG" --out-name ct_triage_wasm "$RAW"
if [ "$WASM_OPT" = 1 ]; then
  # --enable-simd even with SIMD=0: burn's flex kernels (pulp/macerator) carry
  # simd128 code behind #[target_feature] whatever RUSTFLAGS say.
  FEATURES=(--enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int
            --enable-reference-types --enable-multivalue --enable-mutable-globals --enable-simd)
  OPT="$WASM_DIR/node_modules/.bin/wasm-opt"
  # wasm-opt takes minutes: cache its output by the hash of its input and flags.
  KEY="$( (sha256sum "$PKG/ct_triage_wasm_bg.wasm" | cut -c1-64; echo "${FEATURES[*]} -O3 $("$OPT" --version)") | sha256sum | cut -c1-32)"
  CACHE="$TARGET_DIR/wasm-opt-cache/$KEY.wasm"
  if [ -f "$CACHE" ]; then
    say "wasm-opt: cached ($KEY)"
  else
    say "wasm-opt -O3 (npm binaryen $("$OPT" --version | awk '{print $3}'))"
    mkdir -p "$(dirname "$CACHE")"
    "$OPT" -O3 "${FEATURES[@]}" "$PKG/ct_triage_wasm_bg.wasm" -o "$CACHE.tmp"
    mv "$CACHE.tmp" "$CACHE"
  fi
  cp "$CACHE" "$PKG/ct_triage_wasm_bg.wasm"
fi
cp "$WASM_DIR/node_modules/fflate/esm/browser.js" "$PKG/vendor/fflate.js"

# ---------------------------------------------------------------- model
if [ -z "${MODEL_DIR:-}" ]; then
  if [ -f "$ROOT/models/$MODEL_NAME.json" ]; then
    MODEL_DIR="$ROOT/models"
  else
    # Until the trained model lands in models/, use the newest one the trainer left.
    CAND="$(ls -t "$ROOT"/training/work/*/models/"$MODEL_NAME".json "$ROOT"/training/work/*/*/models/"$MODEL_NAME".json 2>/dev/null | head -n1 || true)"
    [ -n "$CAND" ] || { echo "no model: models/$MODEL_NAME.json is missing" >&2; exit 1; }
    MODEL_DIR="$(dirname "$CAND")"
    say "WARNING: models/$MODEL_NAME.json is missing; shipping the trainer's $CAND"
  fi
fi
MANIFEST="$MODEL_DIR/$MODEL_NAME.json"
WEIGHTS="$MODEL_DIR/$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).weights)' "$MANIFEST")"
[ -f "$WEIGHTS" ] || { echo "model weights $WEIGHTS missing" >&2; exit 1; }

# ---------------------------------------------------------------- dist
rm -rf "$DIST"
mkdir -p "$DIST/pkg/vendor" "$DIST/models"
for f in index.html app.js viewer.js i18n.js style.css icon.svg; do cp "$WASM_DIR/www/$f" "$DIST/"; done
for f in index.js errors.js dicomweb.js index.d.ts report.d.ts worker.js ct_triage_wasm.js ct_triage_wasm_bg.wasm package.json README.md; do
  cp "$PKG/$f" "$DIST/pkg/"
done
cp "$PKG/vendor/fflate.js" "$DIST/pkg/vendor/"
cp "$MANIFEST" "$DIST/models/$MODEL_NAME.json"
cp "$WEIGHTS" "$DIST/models/"

# Service worker: precache every file of the page (app, engine, model).
(cd "$DIST" && node - "$WASM_DIR/www/sw.js" <<'NODE'
const fs = require('fs'), path = require('path'), crypto = require('crypto');
const files = [];
const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
  const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else files.push(p.split(path.sep).join('/')); } };
walk('.');
files.sort();
const h = crypto.createHash('sha256');
for (const f of files) h.update(f).update(fs.readFileSync(f));
const assets = ['./', ...files.filter((f) => !f.endsWith('.d.ts') && f !== 'pkg/package.json' && f !== 'pkg/README.md').map((f) => `./${f}`)];
const sw = fs.readFileSync(process.argv[2], 'utf8')
  .replace('__VERSION__', h.digest('hex').slice(0, 16))
  .replace('__ASSETS__', JSON.stringify(assets, null, 2));
fs.writeFileSync('sw.js', sw);
NODE
)

# ---------------------------------------------------------------- sizes
node - "$DIST" "$SIMD" > "$DIST/build-info.json" <<'NODE'
const fs = require('fs'), path = require('path'), zlib = require('zlib');
const [dist, simd] = process.argv.slice(2);
const size = (f) => { const b = fs.readFileSync(path.join(dist, f)); return { raw: b.length, gzip: zlib.gzipSync(b, { level: 9 }).length }; };
const files = [];
const walk = (d) => { for (const e of fs.readdirSync(path.join(dist, d), { withFileTypes: true })) {
  const p = d ? `${d}/${e.name}` : e.name; if (e.isDirectory()) walk(p); else files.push(p); } };
walk('');
const per = Object.fromEntries(files.filter((f) => f !== 'build-info.json').map((f) => [f, size(f)]));
const sum = (pred) => Object.entries(per).filter(([f]) => pred(f)).reduce((a, [, s]) => ({ raw: a.raw + s.raw, gzip: a.gzip + s.gzip }), { raw: 0, gzip: 0 });
const info = {
  simd: simd === '1',
  wasm: per['pkg/ct_triage_wasm_bg.wasm'],
  bundle_without_model: sum((f) => !f.startsWith('models/') && !f.endsWith('.d.ts') && !f.endsWith('.md') && !f.endsWith('package.json')),
  model: sum((f) => f.startsWith('models/')),
  total_with_model: sum((f) => !f.endsWith('.d.ts') && !f.endsWith('.md') && !f.endsWith('package.json')),
  files: per,
};
process.stdout.write(JSON.stringify(info, null, 2) + '\n');
const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
console.error(`wasm ${kb(info.wasm.raw)} (${kb(info.wasm.gzip)} gz); page+engine ${kb(info.bundle_without_model.gzip)} gz; model ${kb(info.model.gzip)} gz; total ${kb(info.total_with_model.gzip)} gz`);
NODE
# Public web content: readable by the web server's user whatever the source
# files' modes (a model written owner-only by the trainer gave nginx a 403).
chmod -R a+rX "$DIST"
say "wrote $DIST (serve it over HTTP, e.g. node tests/e2e/serve.mjs $DIST, or nginx: docs/nginx-ct-triage.conf)"
