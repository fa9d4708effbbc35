#!/usr/bin/env bash
# Installs polycopy as a systemd service. Idempotent: running it again updates the binary, unit,
# scripts and docs, and never overwrites the operator's settings, wallets or secrets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<USAGE
Usage: install.sh [--root DIR] [--bin PATH]
  --root DIR  install into a staging root (no user is created, systemd is not touched)
  --bin PATH  the polycopy binary to install (default: target/release/polycopy, built if missing)
Installs: /usr/local/bin/polycopy, /etc/systemd/system/polycopy.service, /etc/polycopy/{polycopy.env
(0600), polycopy.toml, wallets.json}, /usr/local/lib/polycopy/*.sh, /etc/cron.d/polycopy,
/etc/logrotate.d/polycopy, /usr/local/share/doc/polycopy/, /var/lib/polycopy, /var/backups/polycopy.
USAGE
}

root="" bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root=${2%/}; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  bin="$repo/target/release/polycopy"
  [ -x "$bin" ] || (cd "$repo" && cargo build --release --quiet)
fi
[ -x "$bin" ] || die "no binary at $bin"
[ -n "$root" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR for a staging install)"

# install_new SRC DEST MODE: copy only when DEST does not exist (operator-owned files).
install_new() {
  if [ -e "$2" ]; then
    chmod "$3" "$2"
    log info "kept existing $2"
  else
    install -m "$3" "$1" "$2"
    log info "installed $2"
  fi
}

install -d -m 0755 "$root/usr/local/bin" "$root/usr/local/lib/polycopy" "$root/usr/local/share/doc/polycopy" \
  "$root/etc/systemd/system" "$root/etc/cron.d" "$root/etc/logrotate.d"
install -d -m 0750 "$root/etc/polycopy"
install -d -m 0700 "$root/var/lib/polycopy" "$root/var/backups/polycopy"
install -d -m 0750 "$root/var/log/polycopy"

install -m 0755 "$bin" "$root/usr/local/bin/polycopy"
install -m 0644 "$repo/systemd/polycopy.service" "$root/etc/systemd/system/polycopy.service"
for s in lib.sh backup.sh restore.sh health_check.sh maintenance.sh update.sh uninstall.sh; do
  install -m 0755 "$repo/scripts/$s" "$root/usr/local/lib/polycopy/$s"
done
install -m 0644 "$repo/docs/RUNBOOK.md" "$repo/README.md" "$root/usr/local/share/doc/polycopy/"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/polycopy.toml" <<TOML
# polycopy settings for this server. Every setting and its default: /usr/local/share/doc/polycopy and
# \`polycopy check-config\`. Only what differs from the defaults belongs here.
db_path = "/var/lib/polycopy/polycopy-paper.db"
wallets_path = "/etc/polycopy/wallets.json"
emergency_stop_file = "/var/lib/polycopy/EMERGENCY_STOP"
TOML
install_new "$tmp/polycopy.toml" "$root/etc/polycopy/polycopy.toml" 0640
install_new "$repo/config/wallets.json" "$root/etc/polycopy/wallets.json" 0640
install_new "$repo/.env.template" "$root/etc/polycopy/polycopy.env" 0600
sed 's#@LIB@#/usr/local/lib/polycopy#g; s#@LOG@#/var/log/polycopy#g' "$repo/scripts/crontab.example" > "$tmp/cron"
install -m 0644 "$tmp/cron" "$root/etc/cron.d/polycopy"
cat > "$tmp/logrotate" <<'ROT'
/var/log/polycopy/*.log {
    weekly
    rotate 8
    compress
    delaycompress
    missingok
    notifempty
    create 0640 root adm
}
ROT
install -m 0644 "$tmp/logrotate" "$root/etc/logrotate.d/polycopy"

if [ -z "$root" ]; then
  if ! id polycopy >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/polycopy --shell /usr/sbin/nologin polycopy
    log info "created system user polycopy"
  fi
  chown -R polycopy:polycopy /var/lib/polycopy
  chgrp polycopy /etc/polycopy /etc/polycopy/polycopy.toml /etc/polycopy/wallets.json /etc/polycopy/polycopy.env
  chmod 0640 /etc/polycopy/polycopy.env
  systemctl daemon-reload
  log info "installed. Next: edit /etc/polycopy/wallets.json and polycopy.env, then: polycopy --config /etc/polycopy/polycopy.toml check-config && systemctl enable --now polycopy"
else
  log info "staged into $root (no user created, systemd untouched)"
fi
