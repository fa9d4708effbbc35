#!/usr/bin/env bash
# Health check for cron: the daemon's /health (which carries every check the daemon makes, the
# live-trading ones included), the breaker (from the journal, so it works with the daemon down),
# free disk, journal integrity, and the age of the newest backup. Exits non-zero and raises an alert
# naming every failing check: through the daemon (POST /alert, relayed to its notifier's sinks) when
# it is up, and always as a critical syslog line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: health_check.sh [--instance NAME] [--url URL] [--backup-dir DIR] [--max-backup-age-h N]
                       [--no-backup-check] [--min-disk-mb N] [--wait SECONDS] [--allow-halted]
  --instance NAME      check this instance (polycopy --instance NAME), not the default one
  --url URL            the daemon's health server (default: http:// + [http] listen of the settings)
  --backup-dir DIR     where backup.sh writes (default /var/backups/polycopy, /NAME for an instance)
  --max-backup-age-h N alert when the newest journal backup of the configured mode (.db.gz, or
                       .db.gz.age / .db.gz.gpg when encrypted) is older (default 26)
  --no-backup-check    skip the backup age check
  --min-disk-mb N      alert below this much free space next to the journal (default 500)
  --wait SECONDS       retry until healthy or this much time has passed (after a start)
  --allow-halted       a halted breaker is not a failure (update.sh: the daemon was halted before,
                       or a rollback halted it on purpose); every other check still counts
The journal checked is the one of the configured mode (check-config's db_path).
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments).
Exit: 0 healthy; 1 unhealthy (every failing check is named); 2 the daemon is down; 64 bad usage.
USAGE
}

url="" backup_dir="" max_age_h=26 check_backup=1 min_disk_mb=500 wait_s=0 allow_halted=0
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --url) need_value "$1" $#; url=${2%/}; shift 2 ;;
    --backup-dir) need_value "$1" $#; backup_dir=$2; shift 2 ;;
    --max-backup-age-h) need_value "$1" $#; max_age_h=$2; shift 2 ;;
    --no-backup-check) check_backup=0; shift ;;
    --min-disk-mb) need_value "$1" $#; min_disk_mb=$2; shift 2 ;;
    --wait) need_value "$1" $#; wait_s=$2; shift 2 ;;
    --allow-halted) allow_halted=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
for n in "$max_age_h" "$min_disk_mb" "$wait_s"; do
  [[ "$n" =~ ^[0-9]+$ ]] || usage_error "not a whole number: $n"
done
[ -n "$backup_dir" ] || backup_dir=$(default_backup_dir)

url_given=$url db="" cfg_problem=""
# settings: reads `check-config --json` (again each round until it answers: right after an update
# the binary may be the problem) and sets db and, without --url, url.
settings() {
  [ -n "$pc_config_json" ] || load_config
  if [ -z "$pc_config_json" ]; then
    cfg_problem="$(polycopy_bin) check-config --json gave no answer (the binary or its settings are broken)"
    return 1
  fi
  db=$(db_path)
  if [ -z "$url_given" ] && ! url=$(health_url); then
    cfg_problem="cannot tell where /health is served: [http] listen is off or port 0 in $(config_field settings_file) (pass --url)"
    return 1
  fi
}

# Every scratch file from mktemp: a name derived from another one can be planted in /tmp first
# (and the alert token written into someone else's file).
tmp=$(mktemp) tmp_err=$(mktemp) hdr=$(mktemp)
trap 'rm -f "$tmp" "$tmp_err" "$hdr"' EXIT

# unescape: the JSON escapes a detail may hold, made readable.
unescape() { sed -e 's/\\"/"/g' -e 's#\\/#/#g' -e 's/\\\\/\\/g'; }

check_once() {
  failures=() down=0
  if ! settings; then
    failures+=("config: $cfg_problem")
    [ -n "$url" ] || return 1
  elif [ -n "$(config_field running_warning)" ]; then
    # The next restart (a crash, a reboot) changes the mode: the operator must decide it now.
    failures+=("config: $(config_field running_warning)")
  elif [ "$(config_field settings_valid)" = false ]; then
    # The daemon trades on the settings it started with; its next start would refuse these.
    failures+=("config: the settings file $(config_field settings_file) has problems its next start would refuse: run $(polycopy_bin) check-config")
  fi
  local code
  if ! code=$(curl -sS --max-time 5 -o "$tmp" -w '%{http_code}' "$url/health" 2>/dev/null); then
    down=1
    failures+=("process: daemon down ($url/health unreachable)")
  elif [ "$code" != 200 ]; then
    # /health is {"status":…,"checks":[{"name":…,"status":…,"detail":…},…]}; HTTP 503 when unhealthy.
    local unhealthy=0
    while IFS= read -r c; do
      unhealthy=1
      # A halt, not a risk supervisor that did not answer (that one is wedged, not halted).
      [ "$allow_halted" = 1 ] && [[ "$c" == '"name":"breaker"'* ]] \
        && [[ "$c" != *'"detail":"tripped (unknown) by : risk supervisor did not answer"'* ]] && continue
      failures+=("$(printf '%s' "$c" | sed -E 's/^"name":"([^"]*)","status":"([^"]*)","detail":"(.*)"$/\1: \2: \3/' | unescape)")
    done < <(grep -oE '"name":"[A-Za-z0-9_]+","status":"unhealthy","detail":"([^"\\]|\\.)*"' "$tmp" || true)
    [ "$unhealthy" = 1 ] || failures+=("health: HTTP $code from $url/health")
  fi
  # Degraded checks (orders being resolved, feed lag, Telegram) are warnings: logged, not alerts.
  warnings=()
  if [ "$down" = 0 ] && [ -s "$tmp" ]; then
    while IFS= read -r c; do
      warnings+=("$(printf '%s' "$c" | sed -E 's/^"name":"([^"]*)","status":"([^"]*)","detail":"(.*)"$/\1: \2: \3/' | unescape)")
    done < <(grep -oE '"name":"[A-Za-z0-9_]+","status":"degraded","detail":"([^"\\]|\\.)*"' "$tmp" || true)
  fi
  local status err
  if status=$(run_polycopy status --json 2>"$tmp_err"); then
    # /health may have been answered by another instance on the same port (the daemon's own
    # address is not known while it is down): the journal's holder is what says it runs.
    if grep -q '"running": false' <<<"$status"; then
      down=1
      failures+=("process: no daemon runs on the journal $db")
    elif grep -q '"answers": false' <<<"$status"; then
      failures+=("process: the daemon holds $db but does not answer on its control socket (commands cannot reach it)")
    fi
    if [ "$allow_halted" = 0 ] && grep -q '"tripped": true' <<<"$status" \
       && ! grep -q '^breaker' < <(printf '%s\n' "${failures[@]:-}"); then
      failures+=("breaker: tripped ($(sed -n 's/.*"reason": "\([^"]*\)".*/\1/p' <<<"$status" | head -n1))")
    fi
  else
    err=$(head -n1 "$tmp_err" 2>/dev/null || true)
    failures+=("status: polycopy status failed${err:+: $err}")
  fi
  : >"$tmp_err"
  if [ -n "$db" ]; then
    local avail_kb
    avail_kb=$(df -Pk "$(dirname "$db")" 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((min_disk_mb * 1024)) ]; then
      failures+=("disk: only $((avail_kb / 1024)) MB free next to $db")
    fi
    if [ -f "$db" ] && ! run_polycopy db-check --quick >/dev/null 2>&1; then
      failures+=("database: integrity check failed for $db")
    fi
  elif [ -n "$pc_config_json" ]; then
    failures+=("config: check-config names no journal (run: polycopy$(instance_suffix ' --instance ') check-config)")
  fi
  if [ "$check_backup" = 1 ]; then
    local newest mode
    mode=$(trading_mode)
    # The newest journal backup of this mode, plain or encrypted (backup.sh --encrypt-to: .age, .gpg).
    # shellcheck disable=SC2012 # backup names are ours: no newlines
    newest=$(ls -1td "$backup_dir"/polycopy-"${mode:-*}"-*.db.gz "$backup_dir"/polycopy-"${mode:-*}"-*.db.gz.age \
               "$backup_dir"/polycopy-"${mode:-*}"-*.db.gz.gpg 2>/dev/null | head -n1 || true)
    if [ -z "$newest" ]; then
      # A fresh install (or a fresh switch to live) has had no time for its first backup yet.
      if [ ! -d "$backup_dir" ] || [ -n "$(find "$backup_dir" -maxdepth 0 -mmin +$((max_age_h * 60)) -print)" ]; then
        failures+=("backup: no backup${mode:+ of the $mode journal} in $backup_dir")
      fi
    elif [ -n "$(find "$newest" -mmin +$((max_age_h * 60)) -print)" ]; then
      failures+=("backup: newest backup is older than ${max_age_h} h ($newest)")
    fi
  fi
  [ ${#failures[@]} -eq 0 ]
}

deadline=$(( $(date +%s) + wait_s ))
until check_once; do
  [ "$(date +%s)" -lt "$deadline" ] || break
  sleep 2
done

for w in "${warnings[@]}"; do
  log warning "degraded$([ -z "$pc_instance" ] || echo " [$pc_instance]"): $w"
done
if [ ${#failures[@]} -eq 0 ]; then
  echo "healthy"
  exit 0
fi
tag=""
[ -z "$pc_instance" ] || tag=" [$pc_instance]"
joined=$(printf '%s; ' "${failures[@]}")
msg="UNHEALTHY$tag: ${joined%; }"
log crit "$msg"
# With the daemon up, the alert goes through its notifier (and so to every sink it reports to);
# with it down, the critical syslog line above is the alert.
# The daemon only takes alerts with its token (<journal>.alert-token, readable by the service's
# group); the header goes through a private file so the token never shows in the process list.
if [ "$down" = 0 ] && [ -n "$url" ]; then
  token_file=$(alert_token_path)
  if [ -n "$token_file" ] && [ -r "$token_file" ] && (umask 077 && printf 'Authorization: Bearer %s\n' "$(tr -d '\n' <"$token_file")" >"$hdr"); then
    curl -sS --fail --max-time 5 -o /dev/null -H "@$hdr" -X POST --data-binary "health check: $msg" "$url/alert" 2>/dev/null \
      || log crit "could not relay the alert through the daemon"
    : >"$hdr"
  else
    log crit "cannot read the alert token ${token_file:-(unknown)}: run as the service user (or root)"
  fi
fi
echo "$msg"
[ "$down" = 1 ] && exit 2
exit 1
