#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing:
#   - anvil (a real EVM node) from npm, into .tools/ (no global install, no root needed)
# Usage: scripts/test.sh [extra cargo test / nextest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

ANVIL_VERSION=1.7.1
TOOLS="$PWD/.tools"
ANVIL="$TOOLS/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"

if [ -z "${ANVIL_BIN:-}" ] && ! "$ANVIL" --version 2>/dev/null | grep -q "$ANVIL_VERSION"; then
  command -v npm >/dev/null || { echo "error: npm is needed to install anvil (apt-get install npm)" >&2; exit 1; }
  echo "installing anvil $ANVIL_VERSION from npm into .tools/ ..."
  mkdir -p "$TOOLS"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS" \
    "@foundry-rs/anvil@$ANVIL_VERSION" "@foundry-rs/cast@$ANVIL_VERSION" >/dev/null
fi
export ANVIL_BIN="${ANVIL_BIN:-$ANVIL}"
"$ANVIL_BIN" --version | head -1

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --features fault-injection --no-fail-fast "$@"
else
  cargo test --all-targets --features fault-injection --no-fail-fast "$@"
fi
