#!/usr/bin/env bash
# Install everything the build and the tests need, on a fresh Debian/Ubuntu
# machine with a Rust toolchain (rustup), Python 3 and Node.js. Idempotent:
# what is already there is not installed again. Only the normal package
# registries are used (Debian apt, crates.io, PyPI, npm).
#
#   scripts/setup.sh            # everything
#   SETUP_SKIP_APT=1 scripts/setup.sh   # when system packages are managed elsewhere
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

# 1. System packages: real DICOM peers (dcmtk, gdcm, Orthanc), the dicom3tools IOD
#    validator (dciodvfy) and a headless browser.
APT_PKGS=(dcmtk dicom3tools libgdcm-tools orthanc orthanc-dicomweb nginx-light chromium chromium-driver curl jq)
if [ -z "${SETUP_SKIP_APT:-}" ]; then
    missing=()
    for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ "${#missing[@]}" -gt 0 ]; then
        SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
        say "apt-get install ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # The package may start its own nginx on port 80; the tests start theirs.
        $SUDO service nginx stop >/dev/null 2>&1 || true
    fi
fi

# 2. Rust: the wasm target and the wasm-bindgen CLI at the exact Cargo.lock version.
rustup target list --installed | grep -q wasm32-unknown-unknown || {
    say "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
}
WBV="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
if [ -n "$WBV" ] && ! wasm-bindgen --version 2>/dev/null | grep -q " $WBV"; then
    say "cargo install wasm-bindgen-cli $WBV"
    # --locked first (the versions wasm-bindgen-cli was released with); when the
    # registry no longer offers one of them (webpki-roots 1.0.11 vanished from the
    # index in 2026-12), resolve its dependencies afresh at the same CLI version.
    cargo install -q wasm-bindgen-cli --version "$WBV" --locked \
        || cargo install -q wasm-bindgen-cli --version "$WBV"
fi

# Supply chain: licences and sources (cargo-deny) and the SBOM (cargo-cyclonedx).
DENY_V=0.20.2
CDX_V=0.5.9
if ! cargo deny --version 2>/dev/null | grep -q " $DENY_V"; then
    say "cargo install cargo-deny $DENY_V"
    cargo install -q --locked cargo-deny --version "$DENY_V" \
        || cargo install -q cargo-deny --version "$DENY_V"
fi
if ! cargo cyclonedx --version 2>/dev/null | grep -q " $CDX_V"; then
    say "cargo install cargo-cyclonedx $CDX_V"
    cargo install -q --locked cargo-cyclonedx --version "$CDX_V" \
        || cargo install -q cargo-cyclonedx --version "$CDX_V"
fi

# 3. Python venv for the reference tools the tests compare against
#    (pydicom, highdicom, SimpleITK, scipy, onnxruntime's libonnxruntime.so).
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    say "python venv $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pydicom, highdicom, onnxruntime, SimpleITK, scipy" 2>/dev/null; then
    say "pip install -r tests/requirements.txt"
    NOCACHE=(); [ -n "${CI:-}" ] && NOCACHE=(--no-cache-dir)   # no second copy of the wheels on CI
    "$VENV/bin/pip" install -q --disable-pip-version-check "${NOCACHE[@]}" -r tests/requirements.txt
fi

# 4. Node packages for the browser tests and wasm-opt (npm binaryen, not Debian's).
if [ -f tests/e2e/package.json ] && [ ! -d tests/e2e/node_modules ]; then
    say "npm ci (tests/e2e)"
    (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi
say "ready"
