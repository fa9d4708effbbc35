#!/usr/bin/env bash
# Health check for cron: the daemon's /health, the breaker (from the journal, so it works with the
# daemon down), free disk, journal integrity, and the age of the newest backup. Exits non-zero and
# raises an alert naming every failing check: through the daemon (POST /alert, relayed to its
# notifier's sinks) when it is up, and always as a critical syslog line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: health_check.sh [--url URL] [--backup-dir DIR] [--max-backup-age-h N] [--no-backup-check]
                       [--min-disk-mb N] [--wait SECONDS]
  --url URL            the daemon's health server (default http://127.0.0.1:9187)
  --backup-dir DIR     where backup.sh writes (default /var/backups/polycopy)
  --max-backup-age-h N alert when the newest backup is older (default 26)
  --no-backup-check    skip the backup age check
  --min-disk-mb N      alert below this much free space next to the journal (default 500)
  --wait SECONDS       retry until healthy or this much time has passed (after a start)
Exit: 0 healthy; 1 unhealthy (the failing checks are named); 2 the daemon is down.
USAGE
}

url=http://127.0.0.1:9187 backup_dir=/var/backups/polycopy max_age_h=26 check_backup=1 min_disk_mb=500 wait_s=0
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2%/}; shift 2 ;;
    --backup-dir) backup_dir=$2; shift 2 ;;
    --max-backup-age-h) max_age_h=$2; shift 2 ;;
    --no-backup-check) check_backup=0; shift ;;
    --min-disk-mb) min_disk_mb=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

check_once() {
  failures=() down=0
  local code
  if ! code=$(curl -sS --max-time 5 -o "$tmp" -w '%{http_code}' "$url/health" 2>/dev/null); then
    down=1
    failures+=("process: daemon down ($url/health unreachable)")
  else
    if [ "$code" != 200 ]; then
      while IFS= read -r c; do
        failures+=("$(printf '%s' "$c" | sed 's/^"name":"\([^"]*\)","status":"\([^"]*\)","detail":"\(.*\)"$/\1: \2: \3/')")
      done < <(grep -o '"name":"[a-z]*","status":"unhealthy","detail":"[^"]*"' "$tmp" || true)
      [ ${#failures[@]} -gt 0 ] || failures+=("health: HTTP $code")
    fi
  fi
  local status
  if status=$(run_polycopy status --json 2>/dev/null); then
    if printf '%s' "$status" | grep -q '"tripped": true' && ! printf '%s\n' "${failures[@]:-}" | grep -q '^breaker'; then
      failures+=("breaker: tripped ($(printf '%s' "$status" | sed -n 's/.*"reason": "\([^"]*\)".*/\1/p' | head -n1))")
    fi
  else
    failures+=("status: polycopy status failed")
  fi
  local db
  db=$(db_path)
  if [ -n "$db" ]; then
    local avail_kb
    avail_kb=$(df -Pk "$(dirname "$db")" 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((min_disk_mb * 1024)) ]; then
      failures+=("disk: only $((avail_kb / 1024)) MB free next to $db")
    fi
    if [ -f "$db" ] && ! run_polycopy db-check --quick >/dev/null 2>&1; then
      failures+=("database: integrity check failed for $db")
    fi
  fi
  if [ "$check_backup" = 1 ]; then
    local newest
    newest=$(ls -1t "$backup_dir"/polycopy-*.db.gz 2>/dev/null | head -n1 || true)
    if [ -z "$newest" ]; then
      failures+=("backup: no backup in $backup_dir")
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

if [ ${#failures[@]} -eq 0 ]; then
  echo "healthy"
  exit 0
fi
msg="UNHEALTHY: $(IFS='; '; echo "${failures[*]}")"
log crit "$msg"
# With the daemon up, the alert goes through its notifier (and so to every sink it reports to);
# with it down, the critical syslog line above is the alert.
if [ "$down" = 0 ]; then
  curl -sS --max-time 5 -o /dev/null -X POST --data-binary "health check: $msg" "$url/alert" 2>/dev/null \
    || log crit "could not relay the alert through the daemon"
fi
echo "$msg"
[ "$down" = 1 ] && exit 2
exit 1
