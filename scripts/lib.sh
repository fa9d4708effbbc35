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

pc_last_error=""   # the last err/crit message of this shell, for alert_on_failure

log() { # log LEVEL MESSAGE...   LEVEL: info | warning | err | crit
  local level=$1; shift
  case $level in err | crit) pc_last_error="$*" ;; esac
  # A terminal gone (the operator's SSH session dropped during update.sh) or a full /var/log makes
  # this write fail: under `set -e` that would end the script at its next message, before the
  # rollback or the alert the message announces. The message still reaches syslog below.
  printf '%s: %s\n' "$POLYCOPY_TAG" "$*" >&2 2>/dev/null || true
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

# POLYCOPY_INSTANCE names the instance for the scripts as it does for the binary (--instance
# wins): the two must never act on different accounts (one stopping a unit, the other checking
# a journal).
if [ -n "${POLYCOPY_INSTANCE:-}" ]; then set_instance "$POLYCOPY_INSTANCE"; fi

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
  run_polycopy_on "" "$@"
}

# run_polycopy_on DB ARGS...: run_polycopy on the journal DB (--db; any --db in POLYCOPY_ARGS is
# left out, so the journal named here is the one acted on). DB empty: as run_polycopy.
run_polycopy_on() {
  local bin on=$1
  shift
  bin=$(polycopy_bin)
  local -a given=() args=()
  if [ -n "${POLYCOPY_ARGS:-}" ]; then
    read -r -a given <<<"$POLYCOPY_ARGS"
  fi
  local i=0
  while [ $i -lt ${#given[@]} ]; do
    if [ -n "$on" ] && [ "${given[$i]}" = --db ]; then
      i=$((i + 2))
      continue
    fi
    args+=("${given[$i]}")
    i=$((i + 1))
  done
  [ -z "$on" ] || args+=(--db "$on")
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

# as_journal_owner WHAT SCRIPT ARGS...: run as root on a journal that belongs to another user (the
# service's), re-runs SCRIPT as that user with ARGS and does not return. Root writing by path inside
# directories that user owns (backups, the journal's archive) could be sent anywhere through links
# it planted there, a way from that user to root; and what is written then belongs to it. WHAT
# names the job in the log ("backing up"). Needs load_config's settings.
as_journal_owner() {
  local what=$1 script=$2 jdb owner
  shift 2
  { [ "$(id -u)" = 0 ] && [ -z "${PC_AS_JOURNAL_OWNER:-}" ]; } || return 0
  [ -n "$pc_config_json" ] || load_config
  jdb=$(db_path)
  [ -n "$jdb" ] || return 0
  # The directory's owner first (the journal itself could be a link that user planted), then the
  # journal's own (stat does not follow a link).
  owner=$(stat -c %U -- "$(dirname "$jdb")" 2>/dev/null || echo root)
  if [ "$owner" = root ]; then owner=$(stat -c %U -- "$jdb" 2>/dev/null || echo root); fi
  { [ "$owner" != root ] && [ "$owner" != UNKNOWN ]; } || return 0
  command -v runuser >/dev/null || die "runuser (util-linux) is needed to run as $owner, the journal's owner"
  log info "$what as $owner, the journal's owner"
  exec runuser -u "$owner" -- env PC_AS_JOURNAL_OWNER=1 bash "$(realpath -- "$script")" "$@"
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

# The alert token of the daemon that trades (see db_path): a daemon still running the mode the file
# no longer says takes alerts only with its own journal's token.
alert_token_path() {
  local running
  running=$(config_field running_alert_token_file)
  if [ -n "$running" ]; then printf '%s\n' "$running"; else config_field alert_token_file; fi
}

# The journal of the daemon that trades: the configured one (db_path or live.db_path, by mode),
# unless a daemon still runs the other mode than the file now says (the file was changed and the
# service not restarted): then that daemon's (check-config's running_db_path).
db_path() {
  local running
  running=$(config_field running_db_path)
  if [ -n "$running" ]; then printf '%s\n' "$running"; else config_field db_path; fi
}

# The mode of the daemon that trades (see db_path).
trading_mode() {
  local running
  running=$(config_field running_mode)
  if [ -n "$running" ]; then printf '%s\n' "$running"; else config_field mode; fi
}

# health_url: the daemon's health server: where the running daemon says it listens (it knows the
# settings it started with, POLYCOPY_* overrides from the root-only polycopy.env included, which
# cron's user cannot read), else [http] listen of the settings. Fails (prints nothing) when the
# server is off ("") or listens on port 0 with no daemon to ask: pass --url then.
health_url() {
  local listen
  listen=$(run_polycopy status --json 2>/dev/null | sed -n 's/.*"http": "\([^"]*\)".*/\1/p' | head -n1 || true)
  [ -n "$listen" ] || listen=$(config_field http_listen)
  case "$listen" in
    "" | *:0) return 1 ;;
    0.0.0.0:*) listen="127.0.0.1:${listen#0.0.0.0:}" ;;
    "[::]:"*) listen="[::1]:${listen#"[::]:"}" ;;
  esac
  printf 'http://%s\n' "$listen"
}

# --- Backups (backup.sh, restore.sh, backup_audit.sh) ---------------------------------------------
# A backup is a set of files sharing one name stem, polycopy-<mode>-<stamp>:
#   <stem>.db.gz        the journal (SQLite backup API copy, gzip)
#   <stem>.config.tgz   the settings file(s), wallets.json and backup.conf, with a MANIFEST
# each possibly encrypted (+ .age or .gpg) and each with its <file>.sha256. The secrets file
# (polycopy.env: private key, bot token) is never part of a backup.

# backup_conf_file: the operator's backup settings (encryption recipients, off-site destination),
# backup.conf beside the settings file in use (the last one check-config names): installed,
# /etc/polycopy/backup.conf (/etc/polycopy/NAME/backup.conf for an instance). BACKUP_CONF names
# another. install.sh never writes it, so it survives a reinstall (the cron file does not).
backup_conf_file() {
  local origin
  if [ -n "${BACKUP_CONF:-}" ]; then printf '%s\n' "$BACKUP_CONF"; return 0; fi
  origin=$(config_field settings_file)
  origin=${origin##*" + "}
  if [ -n "$origin" ] && [ -f "$origin" ]; then
    printf '%s/backup.conf\n' "$(dirname "$origin")"
  else
    printf '%s/backup.conf\n' "$(dirname "$(settings_file)")"
  fi
}

# backup_setting NAME: the environment variable NAME when set and not empty, else the last
# NAME=VALUE line of backup_conf_file (read as data, never sourced; surrounding quotes removed).
backup_setting() {
  local name=$1 file value
  if [ -n "${!name:-}" ]; then printf '%s\n' "${!name}"; return 0; fi
  file=$(backup_conf_file)
  [ -e "$file" ] || return 0
  # A backup.conf that exists but cannot be read must not quietly mean "no encryption, no off-site
  # copy": the caller stops (set -e) with this message.
  if [ ! -r "$file" ]; then
    log err "cannot read $file (owner $(stat -c %U:%G -- "$file" 2>/dev/null), mode $(stat -c %a -- "$file" 2>/dev/null)): it should be root:polycopy 0640"
    return 1
  fi
  value=$(sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?${name}[[:space:]]*=[[:space:]]*//p" "$file" | tail -n1)
  value=${value%"${value##*[![:space:]]}"}
  case "$value" in
    \"*\") value=${value#\"}; value=${value%\"} ;;
    \'*\') value=${value#\'}; value=${value%\'} ;;
  esac
  printf '%s\n' "$value"
}

# is_backup_data NAME: a backup file (journal or settings, plain or encrypted), not a checksum.
is_backup_data() {
  [[ "$(basename "$1")" =~ ^polycopy-.+\.(db\.gz|config\.tgz)(\.age|\.gpg)?$ ]]
}

# backup_stem FILE: the name shared by every file of its backup set (polycopy-<mode>-<stamp>).
backup_stem() {
  local n
  n=$(basename "$1")
  n=${n%%.db.gz*}
  printf '%s\n' "${n%%.config.tgz*}"
}

# encryption_of FILE: age, gpg, or "" (not encrypted), from the name.
encryption_of() {
  case "$1" in
    *.age) echo age ;;
    *.gpg) echo gpg ;;
    *) echo "" ;;
  esac
}

# encrypt_file KIND IN OUT RECIPIENT...: encrypts IN to OUT for every RECIPIENT (KIND age or gpg).
# gpg uses the caller's keyring (GNUPGHOME); the recipients' public keys must be imported there.
encrypt_file() {
  local kind=$1 in=$2 out=$3; shift 3
  local -a r=()
  local x
  case "$kind" in
    age)
      for x in "$@"; do r+=(-r "$x"); done
      age "${r[@]}" -o "$out" "$in" ;;
    gpg)
      for x in "$@"; do r+=(--recipient "$x"); done
      gpg --batch --yes --quiet --no-tty --trust-model always "${r[@]}" --output "$out" --encrypt "$in" ;;
    *) return 1 ;;
  esac
}

# decrypt_file IN OUT IDENTITY: decrypts IN (by its suffix: .age with the age identity file
# IDENTITY, .gpg with a secret key of gpg's keyring) to OUT. On failure OUT is removed, the reason
# is printed (one line, on stdout) and the status is 1.
decrypt_file() {
  local in=$1 out=$2 identity=$3 err rc=0
  err=$(mktemp)
  case "$(encryption_of "$in")" in
    age)
      if [ -z "$identity" ]; then
        echo "encrypted with age: pass --identity FILE (the age identity matching the recipient it was encrypted to)"
        rm -f "$err"; return 1
      fi
      if [ ! -r "$identity" ]; then
        echo "cannot read the age identity $identity"
        rm -f "$err"; return 1
      fi
      age -d -i "$identity" -o "$out" "$in" 2>"$err" || rc=$?
      if [ "$rc" != 0 ]; then
        if grep -qi 'no identity matched' "$err"; then
          echo "cannot decrypt with $identity: it is not the key this backup was encrypted to"
        else
          echo "cannot decrypt with $identity: $(grep -v '^[[:space:]]*$' "$err" | head -n1)"
        fi
      fi ;;
    gpg)
      # At a terminal, gpg may ask for the key's passphrase; from cron it must not wait for one.
      local -a batch=(--batch --no-tty)
      [ ! -t 0 ] || batch=()
      gpg ${batch[@]+"${batch[@]}"} --yes --quiet --output "$out" --decrypt "$in" 2>"$err" || rc=$?
      if [ "$rc" != 0 ]; then
        if grep -qi 'no secret key' "$err"; then
          echo "cannot decrypt: no secret key for it in gpg's keyring${GNUPGHOME:+ ($GNUPGHOME)}"
        else
          echo "cannot decrypt with gpg: $(grep -v '^[[:space:]]*$' "$err" | head -n1)"
        fi
      fi ;;
    *) cp -- "$in" "$out" || rc=$? ;;
  esac
  rm -f "$err"
  if [ "$rc" != 0 ]; then rm -f -- "$out"; return 1; fi
}

# root_safe_dir DIR: DIR itself, or for root the nearest directory above it that root owns (same
# disk as a rule: /var/lib for /var/lib/polycopy), so that no other user can swap it.
root_safe_dir() {
  local d=$1
  if [ "$(id -u)" = 0 ]; then
    while [ "$d" != / ] && [ "$(stat -c %u -- "$d")" != 0 ]; do d=$(dirname "$d"); done
  fi
  printf '%s\n' "$d"
}

# private_workdir: a new private (0700) directory for plaintext copies of the journal, beside the
# configured journal (as private as the journal itself, and on a disk sized for it), else in TMPDIR.
# Never in the backup directory: with encryption on, plaintext must not reach it. Never, for root,
# in a directory another user owns: that user could swap root's directory for one of its own, with
# links in it, and root's writes by path would land where the links point.
private_workdir() {
  local db base
  db=$(db_path)
  base=$(dirname "${db:-/nonexistent/x}")
  if [ -n "$db" ] && [ -d "$base" ] && [ -w "$base" ]; then
    mktemp -d "$(root_safe_dir "$base")/.polycopy-tmp.XXXXXX"
  else
    mktemp -d
  fi
}

# relay_alert URL MESSAGE: hands MESSAGE to the daemon at URL (POST /alert with its token), whose
# notifier sends it to every sink (log, journal events, Telegram). The token file (<journal>.alert-token)
# is readable by the service user and root; the header goes through a private file so the token never
# shows in the process list. Status 1 (and a critical log line) when it could not be relayed.
relay_alert() {
  local url=$1 msg=$2 token_file hdr rc=0
  token_file=$(alert_token_path)
  if [ -z "$token_file" ] || [ ! -r "$token_file" ]; then
    log crit "cannot read the alert token ${token_file:-(unknown)}: run as the service user (or root)"
    return 1
  fi
  hdr=$(mktemp)
  printf 'Authorization: Bearer %s\n' "$(tr -d '\n' <"$token_file")" >"$hdr"
  curl -sS --fail --max-time 5 -o /dev/null -H "@$hdr" -X POST --data-binary "$msg" "$url/alert" 2>/dev/null || rc=$?
  rm -f "$hdr"
  if [ "$rc" != 0 ]; then
    log crit "could not relay the alert through the daemon at $url"
    return 1
  fi
}

# alert_on_failure RC WHAT: for a cron job run with --alert, from its EXIT trap. A run that failed
# (any exit but 0; 64 too: from cron it is a bad backup.conf, not a typo) is handed to the daemon as
# an alert naming WHAT and the last error logged: a log file nobody reads is not where a failing
# backup should be found out, months later.
alert_on_failure() {
  local rc=$1 what=$2 url
  if [ "$rc" = 0 ]; then return 0; fi
  if ! url=$(health_url); then
    log crit "cannot tell where the daemon listens ([http] listen is off or port 0): no alert for this failure"
    return 0
  fi
  relay_alert "$url" "$what${pc_instance:+ [$pc_instance]} FAILED (exit $rc): ${pc_last_error:-see the log}" || true
}
