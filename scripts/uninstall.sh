#!/usr/bin/env bash
# Removes the polycopy service, binary, scripts, cron and logrotate entries. Keeps the data: the
# journal (/var/lib/polycopy), backups (/var/backups/polycopy), and settings and secrets (/etc/polycopy).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  echo "Usage: uninstall.sh [--root DIR]   (keeps /etc/polycopy, /var/lib/polycopy, /var/backups/polycopy)"
}
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2%/}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [ -z "$root" ]; then
  systemctl disable --now polycopy 2>/dev/null || true
fi
rm -f "$root/usr/local/bin/polycopy" "$root/etc/systemd/system/polycopy.service" "$root/etc/cron.d/polycopy" \
  "$root/etc/logrotate.d/polycopy"
rm -rf "$root/usr/local/lib/polycopy" "$root/usr/local/share/doc/polycopy"
[ -n "$root" ] || systemctl daemon-reload
log info "removed polycopy; kept $root/etc/polycopy, $root/var/lib/polycopy and $root/var/backups/polycopy"
