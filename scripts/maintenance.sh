#!/usr/bin/env bash
# Journal maintenance for cron: integrity check, prune finished rows older than N days (archived
# first to <journal>.archive/YYYY-MM.db.gz), ANALYZE and VACUUM. VACUUM is skipped (exit 75) rather than
# blocking the daemon when the database is busy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: maintenance.sh [--instance NAME] [--prune-days N] [--no-vacuum] [--alert]
  --instance NAME  maintain this instance's journal (polycopy --instance NAME)
  --prune-days N   move fills older than N days that were never copied (refused, stale, withdrawn,
                   with their intents and orders) and events older than N days into
                   <journal>.archive/YYYY-MM.db.gz (one gzip-compressed SQLite database per
                   month, owner-only), then delete them from the journal; copies, their orders and
                   executions stay (positions, P&L and reports need them). Default 90
  --no-vacuum      skip VACUUM
  --alert          on failure (exit 1 or 78; not 75), also hand an alert to the running daemon
                   (Telegram), naming the error (the cron job passes it)
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments).
Exit: 0 done; 1 integrity failure (nothing touched) or other failure; 64 bad usage;
75 VACUUM skipped because the database was busy (cron tries again next time); 78 configuration error.
USAGE
}

args=() alert=0
given=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --prune-days)
      need_value "$1" $#
      [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage_error "--prune-days must be a whole number of days (at least 1)"
      args+=(--prune-days "$2"); shift 2 ;;
    --no-vacuum) args+=(--no-vacuum); shift ;;
    --alert) alert=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

# The archive is written beside the journal, in a directory its owner (the service's user) owns.
as_journal_owner "maintaining the journal" "$0" ${given[@]+"${given[@]}"}

set +e
out=$(run_polycopy maintenance ${args[@]+"${args[@]}"} 2>&1)
rc=$?
set -e
# The binary's own usage errors (clap: 2) are usage errors here too.
[ "$rc" -ne 2 ] || rc=$EX_USAGE
case $rc in
  0) log info "$(echo "$out" | tr '\n' ' ')" ;;
  75) log warning "$(echo "$out" | tr '\n' ' ')" ;;
  *) log crit "maintenance failed (exit $rc): $(echo "$out" | tr '\n' ' ')" ;;
esac
echo "$out"
# A busy database only postpones VACUUM to the next run: not worth waking anyone.
[ "$alert" = 0 ] || [ "$rc" = 75 ] || alert_on_failure "$rc" maintenance
exit $rc
