#!/usr/bin/env bash
# Supply-chain checks and the SBOM (CycloneDX 1.5 JSON), as CI runs them.
#
#   scripts/supply-chain.sh           # check, write the SBOM to target/sbom/
#   scripts/supply-chain.sh --commit  # also refresh the committed copy in sbom/
#
# 1. cargo deny: licences (permissive only, reviewed exceptions), bans,
#    sources (crates.io only), offline. Advisories need the RustSec database
#    (github.com): run with ADVISORY_DB=<checkout of rustsec/advisory-db>;
#    without it they are skipped with a note (this machine reaches package
#    registries only).
# 2. cargo cyclonedx: the SBOM of what ships — the `ct-triage` binary
#    (x86_64 Linux) and the browser engine (wasm32) — with every dependency
#    (name, version, licence, purl, checksum). Model, data and npm packages
#    are listed by hand in sbom/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '\033[1;34m[supply-chain]\033[0m %s\n' "$*" >&2; }

# cargo-cyclonedx writes `<crate>/sbom.json` for every workspace crate; keep one.
clean() { find "$ROOT" -name sbom.json -not -path "$ROOT/target/*" -not -path "*/node_modules/*" -delete; }
trap clean EXIT

# cargo deny reads `cargo metadata` for every platform: fetch what Cargo.lock
# names first, the Windows and Android crates too, which no Linux build
# downloads (on a fresh machine --offline found windows-sys missing).
say "cargo fetch --locked (every platform's crates, for cargo deny --offline)"
cargo fetch --locked --quiet
say "cargo deny --offline check licenses bans sources"
cargo deny --offline check licenses bans sources
if [ -n "${ADVISORY_DB:-}" ]; then
    DB="$(mktemp -d)"
    trap 'rm -rf "$DB"; clean' EXIT
    # cargo-deny looks for the database under <db-path>/advisory-db-<hash of the URL>.
    git clone -q "$ADVISORY_DB" "$DB/advisory-db-3157b0e258782691"
    sed "s|^db-path = .*|db-path = \"$DB\"|" deny.toml >"$DB/deny.toml"
    say "cargo deny check advisories ($(git -C "$DB/advisory-db-3157b0e258782691" log -1 --format='%h %cs'))"
    cargo deny --offline --config "$DB/deny.toml" check advisories
else
    say "advisories skipped: no RustSec database offline (set ADVISORY_DB; see sbom/README.md for the last result)"
fi

# What ships: the native binary (host target) and the browser bundle (wasm32).
OUT="$ROOT/target/sbom"
rm -rf "$OUT" && mkdir -p "$OUT"
say "cargo cyclonedx → $OUT"
cdx() { # crate folder, target, output name
    cargo cyclonedx --manifest-path "$1/Cargo.toml" --format json --spec-version 1.5 --all \
        --target "$2" --override-filename sbom >/dev/null
    # bom-refs of workspace crates hold the checkout's path: make them relative.
    sed "s|file://$ROOT/|file:///ct-triage/|g" "$1/sbom.json" >"$OUT/$3.cdx.json"
    clean
}
cdx native-server x86_64-unknown-linux-gnu ct-triage
cdx wasm wasm32-unknown-unknown ct-triage-wasm
python3 - "$OUT" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.cdx.json")):
    bom = json.loads(f.read_text())
    comps = bom.get("components", [])
    assert bom["bomFormat"] == "CycloneDX" and comps, f"{f}: no components"
    unlicensed = sorted(c["name"] for c in comps if not c.get("licenses"))
    print(f"{f.name}: {len(comps)} components; without a licence: {unlicensed or 'none'}")
PY
if [ "${1:-}" = "--commit" ]; then
    cp "$OUT"/*.cdx.json "$ROOT/sbom/"
    say "sbom/ refreshed"
fi
