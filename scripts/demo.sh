#!/usr/bin/env bash
# A local demo of polycopy copying a trader, offline, in about a minute: a local EVM node (anvil)
# stands in for Polygon, a made-up target wallet trades three times on a stand-in exchange, and a
# paper-mode polycopy watching that wallet copies each trade. Everything runs in a temporary
# directory and is stopped and removed on exit (also on Ctrl-C). No keys, no money, no internet.
# Kept apart from anything real on this machine: polycopy runs with an empty environment (no
# PRIVATE_KEY, no Telegram token), no installation's settings (/etc/polycopy) and no .env, in
# paper mode with its own journal, even on a server where the live service is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<USAGE
Usage: scripts/demo.sh [--keep]
  --keep   leave the demo directory (settings, journal, log) for you to look at
Environment: POLYCOPY_BIN (default: target/release/polycopy, built if missing),
             ANVIL_BIN (default: .tools/…/anvil as scripts/test.sh installs it, else anvil on PATH).
Exit: 0 the copies were made and shown; 1 something failed (the daemon's log is printed); 64 bad usage.
USAGE
}

keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 64 ;;
  esac
done

say() { printf '%s\n' "$*"; }
die() { say "demo: $*" >&2; exit 1; }

bin=${POLYCOPY_BIN:-target/release/polycopy}
if [ ! -x "$bin" ]; then
  say "building polycopy (release) ..."
  cargo build --release --quiet || die "cargo build failed"
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
anvil=${ANVIL_BIN:-.tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}
[ -x "$anvil" ] || anvil=$(command -v anvil || true)
[ -n "$anvil" ] || die "anvil is needed: run scripts/test.sh once (it installs it into .tools/), or npm install @foundry-rs/anvil"
command -v curl >/dev/null || die "curl is needed"

dir=$(mktemp -d "${TMPDIR:-/tmp}/polycopy-demo.XXXXXX")
anvil_pid="" daemon_pid=""
cleanup() {
  [ -z "$daemon_pid" ] || { kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; }
  [ -z "$anvil_pid" ] || { kill "$anvil_pid" 2>/dev/null || true; wait "$anvil_pid" 2>/dev/null || true; }
  if [ "$keep" = 1 ]; then say "demo directory kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. A local chain. anvil picks a free port and says which.
"$anvil" --port 0 --chain-id 137 >"$dir/anvil.log" 2>&1 &
anvil_pid=$!
rpc=""
for _ in $(seq 1 100); do
  rpc=$(sed -n 's/^Listening on \(.*\)$/http:\/\/\1/p' "$dir/anvil.log" | head -n1)
  [ -n "$rpc" ] && break
  sleep 0.1
done
[ -n "$rpc" ] || die "anvil did not start: $(cat "$dir/anvil.log")"

call() { curl -sS -X POST -H 'Content-Type: application/json' --data "$1" "$rpc"; }
# The CLOB V2 exchange's address gets a stand-in that logs what it is sent as an OrderFilled event
# (topics = the first 128 bytes of the call, data = the rest): the same log the real exchange emits.
exchange=0xE111180000d2663C0091e4f400237545B87B996B
call "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"anvil_setCode\",\"params\":[\"$exchange\",\"0x366000600037606035604035602035600035608036036080a400\"]}" >/dev/null

# 2. polycopy in paper mode, watching one made-up target.
target=0x7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a
cat >"$dir/polycopy.toml" <<TOML
mode = "paper"
db_path = "$dir/journal.db"
wallets_path = "$dir/wallets.json"
emergency_stop_file = "$dir/EMERGENCY_STOP"
[chain]
poll_interval_ms = 250
[http]
listen = "127.0.0.1:0"
[telegram]
daily_report_at = "off"
[alerts]
disk_min_free_mb = 0
clock_max_offset_ms = 0
TOML
cat >"$dir/wallets.json" <<JSON
{"defaults": {"sizing": {"mode": "multiplier", "multiplier": 0.1}},
 "wallets": [{"address": "$target", "label": "demo-trader", "enabled": true}]}
JSON
# Only what the demo gives it: no secrets from this shell, no installation, no .env (run from $dir).
isolated() { cd "$dir" && exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" POLYCOPY_SYSTEM_CONFIG= POLYGON_RPC_URL="$rpc" \
  "$bin" --config "$dir/polycopy.toml" "$@"; }
pc() { (isolated "$@"); }
# Started in a subshell that becomes the daemon (exec): $! is the daemon itself, so the cleanup stops it.
(isolated run) >"$dir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 200); do
  grep -q "chain feed live" "$dir/daemon.log" 2>/dev/null && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "polycopy stopped"; }
  sleep 0.1
done
grep -q "chain feed live" "$dir/daemon.log" || { cat "$dir/daemon.log" >&2; die "polycopy did not start watching"; }
say "polycopy is watching $target (paper mode, journal $dir/journal.db)"

# 3. The target trades: buys 100 shares of token 7 at 0.50, 50 of token 8 at 0.40, then sells 40 of token 7 at 0.60.
word() { printf '%064x' "$1"; }
pad() { printf '%064s' "${1#0x}" | tr ' ' 0; }
trade() { # order side(0 buy, 1 sell) token maker_amount taker_amount
  local data
  data="0xd543adfd945773f1a62f74f0ee55a5e3b9b1a28262980ba90b1a89f2ea84d8ee$(word "$1")$(pad "$target")$(pad 0xc1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1)"
  data="$data$(word "$2")$(word "$3")$(word "$4")$(word "$5")$(word 0)$(word 0)$(word 0)"
  call "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_sendTransaction\",\"params\":[{\"from\":\"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\",\"to\":\"$exchange\",\"data\":\"$data\",\"gas\":\"0x100000\"}]}" >/dev/null
}
trade 1 0 7 50000000 100000000
trade 2 0 8 20000000 50000000
trade 3 1 7 40000000 24000000
say "the target made 3 trades on the local chain; waiting for the copies ..."

# 4. The copies, as the journal has them.
for _ in $(seq 1 600); do
  done_n=$(pc trades --json 2>/dev/null | grep -c '"status": "executed"' || true)
  [ "${done_n:-0}" -ge 3 ] && break
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "polycopy stopped"; }
  sleep 0.1
done
[ "${done_n:-0}" -ge 3 ] || { cat "$dir/daemon.log" >&2; die "the copies did not appear within a minute"; }
say ""
say "polycopy copied all 3 trades (paper, 0.1x):"
pc trades
say ""
pc status | sed -n '/^positions/,$p'
say ""
say "demo done: 3 copies. Next: README's quick start, then list real targets in config/wallets.json."
