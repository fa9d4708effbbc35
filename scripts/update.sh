#!/usr/bin/env bash
# Updates the polycopy binary safely: back up the journal, swap the binary (keeping the old one),
# restart, check health, and roll back binary and journal automatically if the new version is not
# healthy within the timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: update.sh NEW_BINARY [--bin-path PATH] [--service NAME] [--backup-dir DIR] [--timeout S]
  NEW_BINARY       the new polycopy binary (e.g. target/release/polycopy)
  --bin-path PATH  the installed binary (default /usr/local/bin/polycopy)
  --service NAME   systemd unit (default polycopy)
  --backup-dir DIR where the pre-update backup goes (default /var/backups/polycopy)
  --timeout S      seconds the new version has to become healthy (default 90)
Environment: SYSTEMCTL (default systemctl), HEALTH_ARGS (extra health_check.sh arguments).
Exit: 0 updated and healthy; 1 rolled back (the old version runs again); 2 usage.
USAGE
}

new="" bin_path=/usr/local/bin/polycopy service=polycopy backup_dir=/var/backups/polycopy timeout=90
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-path) bin_path=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --backup-dir) backup_dir=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) new=$1; shift ;;
  esac
done
[ -n "$new" ] || { usage >&2; exit 2; }
[ -x "$new" ] || die "not an executable: $new"
version=$("$new" --version 2>/dev/null) || die "the new binary does not run: $new --version failed"
systemctl_cmd=${SYSTEMCTL:-systemctl}
here=$(dirname "$0")
export POLYCOPY_BIN="$bin_path"

log info "updating to $version: backing up the journal first"
backup=$("$here/backup.sh" --dir "$backup_dir" | tail -n1) || die "backup failed: not updating"
cp -p "$bin_path" "$bin_path.prev"
install -m 0755 "$new" "$bin_path.new"
mv -f "$bin_path.new" "$bin_path"
"$systemctl_cmd" restart "$service" || true
# shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
if "$here/health_check.sh" --wait "$timeout" --no-backup-check ${HEALTH_ARGS:-} >/dev/null; then
  log info "updated to $version and healthy (previous binary kept as $bin_path.prev)"
  exit 0
fi

log crit "$version is not healthy: rolling back binary and journal"
"$systemctl_cmd" stop "$service" || true
mv -f "$bin_path.prev" "$bin_path"
"$here/restore.sh" "$backup" --no-service >/dev/null || log crit "journal restore failed: restore $backup by hand"
"$systemctl_cmd" start "$service" || true
# shellcheck disable=SC2086
if "$here/health_check.sh" --wait "$timeout" --no-backup-check ${HEALTH_ARGS:-} >/dev/null; then
  log warning "rolled back: the previous version runs again"
else
  log crit "rolled back, but the previous version is not healthy either: see the runbook"
fi
exit 1
