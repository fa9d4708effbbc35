#!/usr/bin/env bash
# Installs polycopy as a systemd service: the default instance (unit polycopy) or a named one
# (--instance NAME, unit polycopy@NAME), several of which can share one server. Idempotent: running
# it again updates the binary, units, scripts, cron file and docs, and never overwrites the
# operator's settings, wallets or secrets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<USAGE
Usage: install.sh [--root DIR] [--bin PATH] [--instance NAME] [--http-port N] [--default-instance]
  --root DIR       stage into DIR instead of / (no user is created, nothing is chowned, systemd is
                   not touched). Every absolute path written into the generated files (settings,
                   units, cron, logrotate) starts with DIR, so the staged tree works on its own
  --bin PATH       the polycopy binary to install (default: target/release/polycopy of this
                   checkout; build it first with cargo build --release, as your user)
  --instance NAME  install a named instance (letters, digits, '_', '-'): its own settings,
                   journal, backups, cron file and unit polycopy@NAME
  --http-port N    port of its /health and /metrics on 127.0.0.1 (default 9187 for the default
                   instance; required with --instance, and different for every instance)
  --default-instance  create the default instance on a server that has only named ones. Without
                   it, install.sh there (no --instance) updates the shared files only: binary,
                   scripts, units, docs, logrotate
Installs (DIR first with --root):
  /usr/local/bin/polycopy, /usr/local/lib/polycopy/*.sh, /usr/local/share/doc/polycopy/
  (README.md, RUNBOOK.md, BACKUPS.md, default.toml: every setting), /etc/systemd/system/polycopy.service,
  polycopy@.service, polycopy-stopped{,@}.service (Telegram told when the unit fails),
  /etc/logrotate.d/polycopy, /var/log/polycopy
  default instance: /etc/polycopy/{polycopy.toml, wallets.json, polycopy.env (0600)},
  /var/lib/polycopy, /var/backups/polycopy, /etc/cron.d/polycopy
  --instance NAME:  /etc/polycopy/NAME/{polycopy.toml, wallets.json, polycopy.env (0600)},
  /var/lib/polycopy/NAME, /var/backups/polycopy/NAME, /etc/cron.d/polycopy-NAME
Exit: 0 installed; 1 failure; 64 bad usage.
USAGE
}

root="" bin="" instance="" port="" default_instance=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) need_value "$1" $#; root=${2%/}; shift 2 ;;
    --bin) need_value "$1" $#; bin=$2; shift 2 ;;
    --instance) need_value "$1" $#; instance=$2; shift 2 ;;
    --http-port) need_value "$1" $#; port=$2; shift 2 ;;
    --default-instance) default_instance=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
if [ -n "$instance" ]; then
  valid_instance "$instance" || usage_error "invalid instance name '$instance' (1-64 letters, digits, '_' or '-')"
  [ -n "$port" ] || usage_error "--instance $instance needs --http-port N (a port no other instance uses)"
fi
port_given=0
if [ -n "$port" ]; then port_given=1; else port=9187; fi
if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
  usage_error "--http-port must be a port number (1-65535)"
fi
if [ -n "$root" ]; then
  case "$root" in
    /*) ;;
    *) root="$(pwd)/$root" ;;
  esac
  # The root ends up inside TOML strings, unit files (where % starts a specifier) and sed scripts.
  [[ "$root" =~ ^[A-Za-z0-9_./+:@-]+$ ]] || usage_error "--root: use a path of letters, digits and ._/+:@- only"
fi
[ -n "$bin" ] || bin="$repo/target/release/polycopy"
[ -x "$bin" ] || die "no binary at $bin: build it first (cargo build --release, as your user) or pass --bin"
[ -n "$root" ] || [ "$(id -u)" = 0 ] || die "run as root (or use --root DIR for a staging install)"

sfx=""
[ -z "$instance" ] || sfx="/$instance"
etc_base="$root/etc/polycopy"
etc="$etc_base$sfx"
state="$root/var/lib/polycopy$sfx"
backups="$root/var/backups/polycopy$sfx"
logs="$root/var/log/polycopy"
lib="$root/usr/local/lib/polycopy"
doc="$root/usr/local/share/doc/polycopy"
cron_file="$root/etc/cron.d/polycopy${instance:+-$instance}"

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

# port_taken PORT: prints the settings file of another instance that serves on PORT. A settings file
# without an [http] listen line uses the built-in default, 127.0.0.1:9187.
port_taken() {
  local f
  for f in "$etc_base/polycopy.toml" "$etc_base"/*/polycopy.toml; do
    [ -f "$f" ] || continue
    if grep -Eq '^[[:space:]]*listen[[:space:]]*=' "$f"; then
      grep -Eq '^[[:space:]]*listen[[:space:]]*=[[:space:]]*"[^"]*:'"$1"'"' "$f" && { echo "$f"; return 0; }
    elif [ "$1" = 9187 ]; then
      echo "$f"; return 0
    fi
  done
  return 1
}

# Run again to update a server that has only named instances (as the runbook says after an
# update), a default instance would appear beside them: its cron jobs alerting every five minutes
# about a daemon that was never meant to run, and the CLI no longer asking which instance is meant.
# Only the shared files are updated then, unless the default instance is asked for.
shared_only=0
if [ -z "$instance" ] && [ ! -e "$etc/polycopy.toml" ] && [ "$default_instance" = 0 ] \
  && compgen -G "$etc_base/*/polycopy.toml" >/dev/null; then
  shared_only=1
fi

# A new instance gets a port no other instance on this server uses: checked before anything is touched.
if [ "$shared_only" = 0 ] && [ ! -e "$etc/polycopy.toml" ] && other=$(port_taken "$port"); then
  usage_error "port $port is already used by $other: choose another --http-port"
fi

# Real install: the service user exists before anything is given to it.
if [ -z "$root" ] && ! id polycopy >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/polycopy --shell /usr/sbin/nologin polycopy
  log info "created system user polycopy"
fi

install -d -m 0755 "$root/usr/local/bin" "$lib" "$doc" "$root/etc/systemd/system" "$root/etc/cron.d" \
  "$root/etc/logrotate.d"
install -d -m 0750 "$etc_base" "$etc" "$logs"
install -d -m 0700 "$root/var/lib/polycopy" "$root/var/backups/polycopy" "$state" "$backups"

# A service running on the installed binary keeps it until its next start (a crash, the watchdog, a
# reboot), which would then run this one unverified, with no backup and no .prev to go back to
# (after an update rolled back, it would be the very binary that failed). update.sh changes the
# binary of a running service: backup, restart, health check, rollback. Checked where systemd is
# (a real install, or SYSTEMCTL set), never for a staged tree alone.
if [ -e "$root/usr/local/bin/polycopy" ] && ! cmp -s "$bin" "$root/usr/local/bin/polycopy" \
  && { [ -z "$root" ] || [ -n "${SYSTEMCTL:-}" ]; }; then
  running=$("${SYSTEMCTL:-systemctl}" list-units --type=service --state=active --no-legend --plain \
    'polycopy.service' 'polycopy@*.service' 2>/dev/null | awk '{print $1}' | tr '\n' ' ' || true)
  [ -z "${running// /}" ] \
    || die "refusing to replace the binary under running ${running% }: change it with update.sh (backup, restart, health check, rollback), e.g. sudo $lib/update.sh $bin, then run this installer again for the scripts and units"
fi

# Written beside and renamed into place: a restart or a cron job at that moment runs the old
# binary or the new one, never half of one ("Text file busy" where it runs). An identical one is
# left alone.
if ! cmp -s "$bin" "$root/usr/local/bin/polycopy"; then
  install -m 0755 "$bin" "$root/usr/local/bin/polycopy.new"
  mv -f "$root/usr/local/bin/polycopy.new" "$root/usr/local/bin/polycopy"
fi
for s in lib.sh backup.sh backup_audit.sh restore.sh health_check.sh maintenance.sh update.sh uninstall.sh; do
  install -m 0755 "$repo/scripts/$s" "$lib/$s"
done
install -m 0644 "$repo/docs/RUNBOOK.md" "$repo/docs/BACKUPS.md" "$repo/README.md" "$doc/"
install -m 0644 "$repo/config/default.toml" "$doc/default.toml"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# rooted: prefixes the absolute paths of the shipped units and cron file with the staging root.
r_sed=$(printf '%s' "$root" | sed 's/[#&\\]/\\&/g')
rooted() {
  sed -e "s#/usr/local/#$r_sed/usr/local/#g" -e "s#/etc/polycopy#$r_sed/etc/polycopy#g" \
    -e "s#/var/lib/polycopy#$r_sed/var/lib/polycopy#g" -e "s#/var/log/polycopy#$r_sed/var/log/polycopy#g" \
    -e "s#/var/backups/polycopy#$r_sed/var/backups/polycopy#g" "$@"
}
rooted "$repo/systemd/polycopy.service" > "$tmp/polycopy.service"
rooted "$repo/systemd/polycopy@.service" > "$tmp/polycopy@.service"
rooted "$repo/systemd/polycopy-stopped.service" > "$tmp/polycopy-stopped.service"
rooted "$repo/systemd/polycopy-stopped@.service" > "$tmp/polycopy-stopped@.service"
install -m 0644 "$tmp/polycopy.service" "$tmp/polycopy@.service" "$tmp/polycopy-stopped.service" \
  "$tmp/polycopy-stopped@.service" "$root/etc/systemd/system/"

cat > "$tmp/logrotate" <<ROT
# polycopy's cron output (written by the polycopy user). Installed by install.sh.
$logs/*.log {
    su polycopy polycopy
    weekly
    rotate 8
    compress
    delaycompress
    missingok
    notifempty
    create 0640 polycopy polycopy
}
ROT
install -m 0644 "$tmp/logrotate" "$root/etc/logrotate.d/polycopy"

if [ "$shared_only" = 1 ]; then
  [ -n "$root" ] || systemctl daemon-reload
  names=$(for f in "$etc_base"/*/polycopy.toml; do basename "$(dirname "$f")"; done | tr '\n' ' ')
  log info "updated the shared files (binary, scripts, units, docs). This server has only named instances (${names% }): no default instance was created (--default-instance creates one). Run this again with --instance NAME --http-port N for each (its cron file), then restart each to run the new binary"
  exit 0
fi

if [ -e "$etc/polycopy.toml" ]; then
  chmod 0640 "$etc/polycopy.toml"
  log info "kept existing $etc/polycopy.toml"
  # Settings written by an older install.sh lack the mode and an absolute live journal.
  if ! grep -Eq '^[[:space:]]*mode[[:space:]]*=' "$etc/polycopy.toml"; then
    log warning "$etc/polycopy.toml has no mode line (paper is assumed): add mode = \"paper\" at its top"
  fi
  if ! awk '/^[[:space:]]*\[/ { live = ($0 ~ /^[[:space:]]*\[live\][[:space:]]*$/) }
            live && /^[[:space:]]*db_path[[:space:]]*=/ { found = 1 } END { exit !found }' "$etc/polycopy.toml"; then
    log warning "$etc/polycopy.toml sets no [live] db_path: add [live] db_path = \"$state/polycopy-live.db\" so live mode uses an absolute journal"
  fi
  if [ "$port_given" = 1 ] && ! grep -Eq '^[[:space:]]*listen[[:space:]]*=[[:space:]]*"[^"]*:'"$port"'"' "$etc/polycopy.toml"; then
    log warning "kept $etc/polycopy.toml as it is: --http-port $port is not applied there; edit its [http] listen"
  fi
else
  pc="polycopy${instance:+ --instance $instance}"
  cat > "$tmp/polycopy.toml" <<TOML
# polycopy settings for this server${instance:+ (instance $instance)}.
# Every setting, its default and what it does: $doc/default.toml
# Only what differs from the defaults belongs here; \`$pc check-config\` checks the result.

# "paper" (simulated fills, no key needed) or "live" (real orders). Live also needs PRIVATE_KEY in
# $etc/polycopy.env and \`$pc doctor\` passing: see RUNBOOK.md, "Go live".
# This file decides the mode; a PAPER_TRADING variable in the environment may only agree with it.
mode = "paper"
# The journal in paper mode (live mode uses [live] db_path). Absolute paths, so the daemon, the CLI
# and the scripts use the same files whatever their working directory.
db_path = "$state/polycopy-paper.db"
wallets_path = "$etc/wallets.json"
emergency_stop_file = "$state/EMERGENCY_STOP"

[live]
db_path = "$state/polycopy-live.db"

[http]
# /health and /metrics. Every instance on a server needs a port of its own.
listen = "127.0.0.1:$port"
TOML
  install_new "$tmp/polycopy.toml" "$etc/polycopy.toml" 0640
fi
install_new "$repo/config/wallets.json" "$etc/wallets.json" 0640
install_new "$repo/.env.template" "$etc/polycopy.env" 0600

inst_arg="" log_sfx=""
[ -z "$instance" ] || { inst_arg=" --instance $instance" log_sfx="-$instance"; }
sed -e "s#@LIB@#$r_sed/usr/local/lib/polycopy#g" -e "s#@LOG@#$r_sed/var/log/polycopy#g" \
  -e "s#@BIN@#$r_sed/usr/local/bin#g" -e "s#@ARGS@#$inst_arg#g" -e "s#@SUFFIX@#$log_sfx#g" \
  "$repo/scripts/crontab.example" > "$tmp/cron"
install -m 0644 "$tmp/cron" "$cron_file"

if [ -z "$root" ]; then
  # Settings are readable by the service; secrets only by root (systemd reads EnvironmentFile= as
  # root before dropping to the polycopy user). Journals, backups and logs belong to polycopy: the
  # daemon and the cron jobs run as that user. Nothing here opens a journal as root.
  chown root:polycopy "$etc_base" "$etc" "$etc/polycopy.toml" "$etc/wallets.json"
  chown root:root "$etc/polycopy.env"
  chown -R polycopy:polycopy /var/lib/polycopy /var/backups/polycopy "$logs"
  systemctl daemon-reload
  if [ -n "$instance" ]; then
    log info "installed instance $instance. Next: edit $etc/wallets.json and $etc/polycopy.env, then:" \
      "polycopy --instance $instance check-config && systemctl enable --now polycopy@$instance"
  else
    log info "installed. Next: edit $etc/wallets.json and $etc/polycopy.env, then:" \
      "polycopy check-config && systemctl enable --now polycopy"
  fi
else
  log info "staged into $root (no user created, nothing chowned, systemd untouched)"
fi
