#!/usr/bin/env bash
# Restores the polycopy journal from a backup made by backup.sh: verifies checksum and integrity
# first (a corrupt backup is refused and nothing is touched), stops the service, keeps the current
# journal aside, restores, starts, and checks health.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: restore.sh BACKUP.db.gz [--db PATH] [--service NAME | --no-service]
  --db PATH       journal to replace (default: the configured db_path)
  --service NAME  systemd unit to stop and start (default polycopy)
  --no-service    do not stop/start anything (the daemon must not be running)
Environment: SYSTEMCTL (default systemctl), HEALTH_ARGS (extra health_check.sh arguments).
Exit: 0 restored and healthy; 1 refused or failed (see the log line).
USAGE
}

backup="" db="" service=polycopy
while [ $# -gt 0 ]; do
  case "$1" in
    --db) db=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --no-service) service=""; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) backup=$1; shift ;;
  esac
done
[ -n "$backup" ] || { usage >&2; exit 2; }
[ -f "$backup" ] || die "no such backup: $backup"
[ -n "$db" ] || db=$(db_path)
[ -n "$db" ] || die "cannot tell where the journal is: pass --db"
systemctl_cmd=${SYSTEMCTL:-systemctl}

sum="$backup.sha256"
[ -f "$sum" ] || die "refusing: checksum file $sum is missing"
(cd "$(dirname "$backup")" && sha256sum --status -c "$(basename "$sum")") || die "refusing: $backup does not match its checksum"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gunzip -c "$backup" > "$work/restore.db" || die "refusing: $backup is not a valid gzip file"
run_polycopy db-check --file "$work/restore.db" >/dev/null || die "refusing: $backup fails the integrity check"

if [ -n "$service" ]; then
  log info "stopping $service"
  "$systemctl_cmd" stop "$service"
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ -f "$db" ]; then
  aside="$db.before-restore-$stamp"
  mv "$db" "$aside"
  for ext in -wal -shm; do [ ! -f "$db$ext" ] || mv "$db$ext" "$aside$ext"; done
  log info "current journal kept aside as $aside"
fi
mkdir -p "$(dirname "$db")"
install -m 0600 "$work/restore.db" "$db"
if [ -n "${aside:-}" ]; then chown --reference="$aside" "$db" 2>/dev/null || true; fi
run_polycopy db-check --file "$db" >/dev/null || die "the restored journal fails its check: the previous one is at ${aside:-nowhere}"
if [ -n "$service" ]; then
  log info "starting $service"
  "$systemctl_cmd" start "$service"
  # shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
  "$(dirname "$0")/health_check.sh" --wait 60 --no-backup-check ${HEALTH_ARGS:-} >/dev/null \
    || die "restored, but the daemon is not healthy: see health_check.sh"
fi
log info "restored $db from $backup"
