# Shared helpers for polycopy's operator scripts (sourced, not run).
# Every message goes to stderr and, through logger, to syslog/journald with the script's name as tag.
#
# Where things are:
# - The install prefix P comes from where this file lives: installed as <P>/usr/local/lib/polycopy/lib.sh
#   (P is "" on a real install, or the staging root of `install.sh --root R`). Run from a checkout, P is "".
# - The binary: $POLYCOPY_BIN, else <P>/usr/local/bin/polycopy when installed, else polycopy on PATH.
# - `--instance NAME` (set_instance) selects <P>/etc/polycopy/NAME/polycopy.toml, the backups in
#   <P>/var/backups/polycopy/NAME and the unit polycopy@NAME; it is passed on to the binary.
# - The journal and the health server's address come from `polycopy check-config --json`, so they
#   follow the settings file (mode, db_path / live.db_path, [http] listen).
# shellcheck shell=bash

POLYCOPY_TAG="polycopy-$(basename "${0%.sh}")"
# Exit code for a bad command line (sysexits EX_USAGE), the same in every script.
EX_USAGE=64

pc_libdir=$(CDPATH="" cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
case "$pc_libdir" in
  */usr/local/lib/polycopy) pc_prefix=${pc_libdir%/usr/local/lib/polycopy} pc_installed=1 ;;
  *) pc_prefix="" pc_installed=0 ;;
esac
pc_instance=""
pc_config_json=""

log() { # log LEVEL MESSAGE...   LEVEL: info | warning | err | crit
  local level=$1; shift
  printf '%s: %s\n' "$POLYCOPY_TAG" "$*" >&2
  if command -v logger >/dev/null 2>&1; then logger -t "$POLYCOPY_TAG" -p "user.$level" -- "$*" 2>/dev/null || true; fi
}

die() { log err "$*"; exit 1; }

# usage_error MESSAGE: a bad command line. Needs the calling script's usage function.
usage_error() {
  printf '%s: %s\n' "$POLYCOPY_TAG" "$*" >&2
  usage >&2
  exit "$EX_USAGE"
}

# need_value OPTION ARGC: an option that takes a value got one ("$#" of the caller's loop).
need_value() {
  [ "$2" -ge 2 ] || usage_error "$1 needs a value"
}

# valid_instance NAME: instance names are what systemd, cron.d and paths all accept.
valid_instance() {
  [[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]]
}

# set_instance NAME: every later call to the binary, and every default path, is for this instance.
set_instance() {
  valid_instance "$1" || usage_error "invalid instance name '$1' (1-64 letters, digits, '_' or '-')"
  pc_instance=$1
  pc_config_json=""
}

# instance_args: the arguments that pass the selected instance on to another script, one per line
# (use: mapfile -t a < <(instance_args)).
instance_args() {
  if [ -n "$pc_instance" ]; then printf '%s\n' --instance "$pc_instance"; fi
}

# instance_suffix SEPARATOR: "" for the default instance, else SEPARATOR + NAME.
instance_suffix() {
  if [ -n "$pc_instance" ]; then printf '%s%s' "$1" "$pc_instance"; fi
}

# Default paths and names, for the selected instance.
default_service() { printf 'polycopy%s\n' "$(instance_suffix @)"; }
default_backup_dir() { printf '%s/var/backups/polycopy%s\n' "$pc_prefix" "$(instance_suffix /)"; }
settings_file() { printf '%s/etc/polycopy%s/polycopy.toml\n' "$pc_prefix" "$(instance_suffix /)"; }
installed_bin() { printf '%s/usr/local/bin/polycopy\n' "$pc_prefix"; }

# The polycopy binary.
polycopy_bin() {
  if [ -n "${POLYCOPY_BIN:-}" ]; then echo "$POLYCOPY_BIN"
  elif [ "$pc_installed" = 1 ] && [ -x "$(installed_bin)" ]; then installed_bin
  elif command -v polycopy >/dev/null 2>&1; then command -v polycopy
  else installed_bin; fi
}

# run_polycopy SUBCOMMAND [ARGS...]: the binary with the global arguments. POLYCOPY_ARGS adds global
# arguments (split on blanks, e.g. "--config my.toml --db my.db"). A binary installed under the prefix
# finds its settings by itself (<P>/etc/polycopy/...); one from elsewhere, used on a staged tree, is
# told the staged settings file with --config instead.
run_polycopy() {
  local bin
  bin=$(polycopy_bin)
  local -a args=()
  if [ -n "${POLYCOPY_ARGS:-}" ]; then
    read -r -a args <<<"$POLYCOPY_ARGS"
  fi
  if [ -z "${POLYCOPY_ARGS:-}" ] && [ -n "$pc_prefix" ] && [ "$bin" != "$(installed_bin)" ]; then
    args+=(--config "$(settings_file)")
  elif [ -n "$pc_instance" ]; then
    args+=(--instance "$pc_instance")
  fi
  "$bin" ${args[@]+"${args[@]}"} "$@"
}

# load_config: runs `check-config --json` once and keeps its output for config_field. Call it in
# the script's own shell (not inside $(...)) for the cache to stick. check-config exits non-zero
# when it finds problems but still prints the object, so its exit code is not looked at here.
load_config() {
  pc_config_json=$(run_polycopy check-config --json --offline 2>/dev/null || true)
}

# config_field KEY: a top-level string (or number / boolean) field of `check-config --json`;
# prints nothing for null or a missing field. The object is printed one field per line with a
# two-space indent, so only top-level keys match (never a key inside `problems`). Without python3
# on servers, this is sed: JSON escapes \" \\ \/ are undone, which is all a path or address needs.
config_field() {
  [ -n "$pc_config_json" ] || load_config
  printf '%s\n' "$pc_config_json" \
    | sed -n -E 's/^  "'"$1"'":[[:space:]]*("(([^"\\]|\\.)*)"|(-?[0-9][0-9.eE+-]*|true|false)),?[[:space:]]*$/\2\4/p' \
    | head -n1 \
    | sed -e 's/\\"/"/g' -e 's#\\/#/#g' -e 's/\\\\/\\/g'
}

# The configured journal path, as the daemon sees it (follows the mode: db_path or live.db_path).
db_path() {
  config_field db_path
}

# health_url: the daemon's health server, from [http] listen. Fails (prints nothing) when the
# server is off ("") or listens on port 0 (an address only the daemon knows): pass --url then.
health_url() {
  local listen
  listen=$(config_field http_listen)
  case "$listen" in
    "" | *:0) return 1 ;;
    0.0.0.0:*) listen="127.0.0.1:${listen#0.0.0.0:}" ;;
    "[::]:"*) listen="[::1]:${listen#"[::]:"}" ;;
  esac
  printf 'http://%s\n' "$listen"
}
