#!/usr/bin/env bash
# The project's test command (README): installs what it needs, then runs every
# test suite. Exits non-zero on the first failure.
#
#   tests/run.sh                 # everything
#   tests/run.sh --quick         # Rust tests only (no browser, no server peers)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK=1

step() { printf '\n\033[1;32m==> %s\033[0m\n' "$*"; STEP_T0=$(date +%s); }
done_step() { printf '\033[1;32m    ok (%ss)\033[0m\n' "$(( $(date +%s) - STEP_T0 ))"; }

step "setup"
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ORT_VENV="$ROOT/.venv" scripts/ort-lib.sh)}"
done_step

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
done_step

step "Rust tests (native, release)"
cargo test --workspace --release
done_step

[ -n "$QUICK" ] && exit 0
