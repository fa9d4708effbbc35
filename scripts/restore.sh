#!/usr/bin/env bash
# Restores the polycopy journal from a backup made by backup.sh: verifies checksum and integrity
# first (a corrupt backup is refused and nothing is touched), stops the service, keeps the current
# journal aside, restores, starts, and checks health.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
umask 077

usage() {
  cat <<USAGE
Usage: restore.sh BACKUP.db.gz [--instance NAME] [--db PATH] [--service NAME | --no-service]
  --instance NAME  restore this instance's journal; the unit is then polycopy@NAME
  --db PATH        journal to replace (default: the configured one, db_path or live.db_path by mode)
  --service NAME   systemd unit to stop and start (default polycopy, or polycopy@NAME)
  --no-service     do not stop/start anything (the daemon must not be running)
Environment: SYSTEMCTL (default systemctl), HEALTH_ARGS (extra health_check.sh arguments),
POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments).
Exit: 0 restored (and healthy, with the service); 1 refused or failed (see the log line); 64 bad usage.
USAGE
}

backup="" db="" service="" use_service=1
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --db) need_value "$1" $#; db=$2; shift 2 ;;
    --service) need_value "$1" $#; service=$2; use_service=1; shift 2 ;;
    --no-service) use_service=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage_error "unknown option: $1" ;;
    *) [ -z "$backup" ] || usage_error "one backup at a time ($backup, $1)"; backup=$1; shift ;;
  esac
done
[ -n "$backup" ] || usage_error "which backup? (a polycopy-*.db.gz written by backup.sh)"
if [ "$use_service" = 1 ]; then
  [ -n "$service" ] || service=$(default_service)
else
  service=""
fi
[ -f "$backup" ] || die "no such backup: $backup"
[ -n "$db" ] || db=$(db_path)
[ -n "$db" ] || die "cannot tell where the journal is (check-config names none): pass --db"
systemctl_cmd=${SYSTEMCTL:-systemctl}
mapfile -t inst < <(instance_args)

# A backup names its mode (backup.sh): paper history never replaces the live journal, or the reverse.
mode=$(config_field mode)
case "$(basename "$backup")" in
  polycopy-paper-*) from=paper ;;
  polycopy-live-*) from=live ;;
  *) from="" ;;
esac
if [ -n "$from" ] && [ -n "$mode" ] && [ "$from" != "$mode" ] && [ "${ALLOW_OTHER_MODE:-}" != 1 ]; then
  die "refusing: $backup is a $from backup and this installation trades $mode (set ALLOW_OTHER_MODE=1 to restore it anyway)"
fi

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
aside=""
if [ -f "$db" ]; then
  aside="$db.before-restore-$stamp"
  mv "$db" "$aside"
  for ext in -wal -shm; do [ ! -f "$db$ext" ] || mv "$db$ext" "$aside$ext"; done
  log info "current journal kept aside as $aside"
fi
mkdir -p "$(dirname "$db")"
install -m 0600 "$work/restore.db" "$db"
# Run as root, keep the journal owned like the one it replaces (or like its directory, the
# service's state directory): a root-owned journal would stop the daemon from writing.
if [ "$(id -u)" = 0 ]; then
  chown --reference="${aside:-$(dirname "$db")}" "$db" 2>/dev/null || true
fi
run_polycopy db-check --file "$db" >/dev/null || die "the restored journal fails its check: the previous one is at ${aside:-nowhere}"
if [ -n "$service" ]; then
  log info "starting $service"
  "$systemctl_cmd" start "$service"
  # shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
  "$(dirname "$0")/health_check.sh" ${inst[@]+"${inst[@]}"} --wait 60 --no-backup-check ${HEALTH_ARGS:-} >/dev/null \
    || die "restored, but the daemon is not healthy: see health_check.sh"
fi
log info "restored $db from $backup"
