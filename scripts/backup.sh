#!/usr/bin/env bash
# Online backup of the polycopy journal: SQLite backup API (safe while the daemon writes), gzip,
# SHA-256 checksum, integrity check of what was written, retention by age and by count.
# Backups hold the whole trading history: they are written mode 0600 in a 0700 directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
umask 077

usage() {
  cat <<USAGE
Usage: backup.sh [--instance NAME] [--dir DIR] [--keep-days N] [--keep-count N]
  --instance NAME  back up this instance's journal (polycopy --instance NAME)
  --dir DIR        where backups go (default /var/backups/polycopy, /NAME for an instance)
  --keep-days N    delete backups older than N days (default 14)
  --keep-count N   keep at most the N newest backups (default 30)
The journal is the one of the configured mode (db_path, or live.db_path in live mode).
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments, e.g. --db F).
Exit: 0 backup written and verified (its path is printed); 1 failure (nothing older is deleted
then); 64 bad usage.
USAGE
}

dir="" keep_days=14 keep_count=30
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --dir) need_value "$1" $#; dir=$2; shift 2 ;;
    --keep-days) need_value "$1" $#; keep_days=$2; shift 2 ;;
    --keep-count) need_value "$1" $#; keep_count=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[[ "$keep_days" =~ ^[0-9]+$ && "$keep_count" =~ ^[1-9][0-9]*$ ]] \
  || usage_error "--keep-days and --keep-count must be whole numbers (count at least 1)"
[ -n "$dir" ] || dir=$(default_backup_dir)

mkdir -p "$dir"
chmod 0700 "$dir"
stamp=$(date -u +%Y%m%dT%H%M%S%3NZ)
# The mode is in the name: paper and live backups never stand in for each other (retention by count,
# the health check's backup age, restore.sh's refusal to cross modes).
mode=$(config_field mode)
case "$mode" in paper|live) ;; *) die "cannot tell the mode from the settings (check-config): not backing up" ;; esac
name="polycopy-$mode-$stamp.db.gz"
work=$(mktemp -d "$dir/.backup.XXXXXX")
trap 'rm -rf "$work"' EXIT

run_polycopy backup --out "$work/journal.db" >/dev/null || die "backup failed"
gzip -9 -c "$work/journal.db" > "$work/$name"
# Verify what is on disk, not what we meant to write.
gunzip -c "$work/$name" > "$work/check.db"
run_polycopy db-check --file "$work/check.db" >/dev/null || die "the written backup failed its integrity check"
(cd "$work" && sha256sum "$name" > "$name.sha256")
chmod 0600 "$work/$name" "$work/$name.sha256"
mv "$work/$name" "$work/$name.sha256" "$dir/"
log info "backup written: $dir/$name ($(du -h "$dir/$name" | cut -f1))"

# Retention: by age, then by count (newest kept).
deleted=0
while IFS= read -r old; do
  rm -f -- "$old" "$old.sha256"; deleted=$((deleted + 1))
done < <(find "$dir" -maxdepth 1 -name 'polycopy-*.db.gz' -mmin +$((keep_days * 1440)) -print)
# shellcheck disable=SC2012 # backup names are ours: no newlines
while IFS= read -r old; do
  rm -f -- "$old" "$old.sha256"; deleted=$((deleted + 1))
done < <(ls -1t "$dir"/polycopy-"$mode"-*.db.gz 2>/dev/null | tail -n +$((keep_count + 1)))
[ "$deleted" -eq 0 ] || log info "retention: deleted $deleted old backup(s)"
echo "$dir/$name"
