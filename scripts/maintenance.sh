#!/usr/bin/env bash
# Journal maintenance for cron: integrity check, prune finished rows older than N days, ANALYZE and
# VACUUM. VACUUM is skipped (exit 75) rather than blocking the daemon when the database is busy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: maintenance.sh [--prune-days N] [--no-vacuum]
  --prune-days N  delete finished fills and events older than N days (default 90)
  --no-vacuum     skip VACUUM
Exit: 0 done; 1 integrity failure (nothing touched); 75 VACUUM skipped because the database was busy.
USAGE
}

args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --prune-days) args+=(--prune-days "$2"); shift 2 ;;
    --no-vacuum) args+=(--no-vacuum); shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

set +e
out=$(run_polycopy maintenance "${args[@]}" 2>&1)
rc=$?
set -e
case $rc in
  0) log info "$(echo "$out" | tr '\n' ' ')" ;;
  75) log warning "$(echo "$out" | tr '\n' ' ')" ;;
  *) log crit "maintenance failed: $(echo "$out" | tr '\n' ' ')" ;;
esac
echo "$out"
exit $rc
