#!/usr/bin/env bash
# Online backup of the polycopy journal: SQLite backup API (safe while the daemon writes), gzip,
# SHA-256 checksum, integrity check of what was written, retention by age and by count.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: backup.sh [--dir DIR] [--keep-days N] [--keep-count N]
  --dir DIR        where backups go (default /var/backups/polycopy)
  --keep-days N    delete backups older than N days (default 14)
  --keep-count N   keep at most the N newest backups (default 30)
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (global polycopy arguments, e.g. --config F --db F).
Exit: 0 backup written and verified; 1 failure (nothing older is deleted then).
USAGE
}

dir=/var/backups/polycopy keep_days=14 keep_count=30
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --keep-days) keep_days=$2; shift 2 ;;
    --keep-count) keep_count=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
[[ "$keep_days" =~ ^[0-9]+$ && "$keep_count" =~ ^[1-9][0-9]*$ ]] || die "--keep-days and --keep-count must be whole numbers (count at least 1)"

mkdir -p "$dir"
chmod 0700 "$dir"
stamp=$(date -u +%Y%m%dT%H%M%S%3NZ)
name="polycopy-$stamp.db.gz"
work=$(mktemp -d "$dir/.backup.XXXXXX")
trap 'rm -rf "$work"' EXIT

run_polycopy backup --out "$work/journal.db" >/dev/null || die "backup failed"
gzip -9 -c "$work/journal.db" > "$work/$name"
# Verify what is on disk, not what we meant to write.
gunzip -c "$work/$name" > "$work/check.db"
run_polycopy db-check --file "$work/check.db" >/dev/null || die "the written backup failed its integrity check"
(cd "$work" && sha256sum "$name" > "$name.sha256")
mv "$work/$name" "$work/$name.sha256" "$dir/"
log info "backup written: $dir/$name ($(du -h "$dir/$name" | cut -f1))"

# Retention: by age, then by count (newest kept).
deleted=0
while IFS= read -r old; do
  rm -f -- "$old" "$old.sha256"; deleted=$((deleted + 1))
done < <(find "$dir" -maxdepth 1 -name 'polycopy-*.db.gz' -mmin +$((keep_days * 1440)) -print)
while IFS= read -r old; do
  rm -f -- "$old" "$old.sha256"; deleted=$((deleted + 1))
done < <(ls -1t "$dir"/polycopy-*.db.gz 2>/dev/null | tail -n +$((keep_count + 1)))
[ "$deleted" -eq 0 ] || log info "retention: deleted $deleted old backup(s)"
echo "$dir/$name"
