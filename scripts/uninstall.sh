#!/usr/bin/env bash
# Removes the polycopy service, binary, scripts, cron and logrotate entries. Keeps the data: the
# journals (/var/lib/polycopy), backups (/var/backups/polycopy), and settings and secrets (/etc/polycopy).
# With --instance NAME, only that instance is taken out of service: its unit is stopped and
# disabled and its cron file removed; the program, the other instances and all data stay.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: uninstall.sh [--root DIR] [--instance NAME]
  --root DIR       uninstall from a staging root (systemd is not touched)
  --instance NAME  only stop and disable polycopy@NAME and remove /etc/cron.d/polycopy-NAME
Without --instance: stops and disables polycopy and every polycopy@NAME, removes the binary, both
units, the scripts, the docs, every polycopy cron file and the logrotate rule.
Always kept: /etc/polycopy (settings, wallets, secrets), /var/lib/polycopy (journals),
/var/backups/polycopy (backups), /var/log/polycopy (logs).
Exit: 0 done; 1 failure; 64 bad usage.
USAGE
}
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) need_value "$1" $#; root=${2%/}; shift 2 ;;
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[ -n "$root" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR for a staging root)"

if [ -n "$pc_instance" ]; then
  if [ -z "$root" ]; then
    systemctl disable --now "polycopy@$pc_instance" 2>/dev/null || true
  fi
  rm -f "$root/etc/cron.d/polycopy-$pc_instance"
  log info "took instance $pc_instance out of service (unit disabled, cron removed); kept" \
    "$root/etc/polycopy/$pc_instance, $root/var/lib/polycopy/$pc_instance and $root/var/backups/polycopy/$pc_instance"
  exit 0
fi

if [ -z "$root" ]; then
  systemctl disable --now polycopy 2>/dev/null || true
  for conf in /etc/polycopy/*/polycopy.toml; do
    [ -f "$conf" ] || continue
    name=$(basename "$(dirname "$conf")")
    valid_instance "$name" || continue
    systemctl disable --now "polycopy@$name" 2>/dev/null || true
  done
  # Instances started by hand without a settings directory of their own.
  systemctl stop 'polycopy@*' 2>/dev/null || true
fi
rm -f "$root/usr/local/bin/polycopy" "$root/usr/local/bin/polycopy.prev" \
  "$root/etc/systemd/system/polycopy.service" "$root/etc/systemd/system/polycopy@.service" \
  "$root/etc/systemd/system/polycopy-stopped.service" "$root/etc/systemd/system/polycopy-stopped@.service" \
  "$root/etc/cron.d/polycopy" "$root/etc/logrotate.d/polycopy"
for cron in "$root"/etc/cron.d/polycopy-*; do
  [ ! -f "$cron" ] || rm -f "$cron"
done
rm -rf "$root/usr/local/lib/polycopy" "$root/usr/local/share/doc/polycopy"
[ -n "$root" ] || systemctl daemon-reload
log info "removed polycopy; kept $root/etc/polycopy, $root/var/lib/polycopy, $root/var/backups/polycopy and $root/var/log/polycopy"
