#!/usr/bin/env bash
# Online backup of the polycopy journal, with the settings and wallets.json it runs with: SQLite
# backup API (safe while the daemon writes), gzip, optional encryption (age or gpg), SHA-256
# checksums, integrity check of the journal written, retention by age (optionally capped by count),
# optional copy to an off-site destination. The secrets file (polycopy.env) is never backed up.
# Backups hold the whole trading history: they are written mode 0600 in a 0700 directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
umask 077

usage() {
  cat <<USAGE
Usage: backup.sh [--instance NAME] [--dir DIR] [--keep-days N] [--keep-count N]
                 [--encrypt-to RECIPIENT]... [--no-encrypt] [--copy-to DEST] [--no-copy] [--alert]
  --instance NAME  back up this instance (polycopy --instance NAME)
  --dir DIR        where backups go (default /var/backups/polycopy, /NAME for an instance)
  --keep-days N    delete backups older than N days (default 30). Age is the retention rule
  --keep-count N   also keep at most the N newest backups of this mode (default: no limit). A cap
                   for a small disk: it can delete backups younger than --keep-days (logged as a
                   warning, since restores then reach back less than N days)
  --encrypt-to R   encrypt the backup to recipient R (repeat for several): an age public key
                   (age1...) uses age, anything else is a gpg key (id, fingerprint or e-mail) of the
                   running user's keyring. The plaintext never reaches DIR; files end in .age/.gpg
  --no-encrypt     do not encrypt, whatever BACKUP_ENCRYPT_TO says
  --copy-to DEST   copy the new backup to DEST as well: a local directory (created 0700) or an
                   rsync destination (host:/path, user@host:/path, rsync://...; ssh in batch mode)
  --no-copy        no off-site copy, whatever BACKUP_COPY_TO says
  --alert          on failure (exit 1, or 75: the off-site copy failed), also hand an alert to the
                   running daemon (Telegram), naming the last error (the cron job passes it)
Writes, per backup (stem polycopy-<mode>-<UTC stamp>), each with a .sha256 beside it:
  <stem>.db.gz[.age|.gpg]       the journal of the configured mode (db_path, or live.db_path)
  <stem>.config.tgz[.age|.gpg]  the settings file(s), wallets.json and backup.conf, with a MANIFEST
NOT backed up: the secrets file polycopy.env (private key, bot token, RPC keys). Keep it elsewhere.
Settings without a command-line option: the environment, else backup.conf beside the settings
file (/etc/polycopy/backup.conf; KEY=VALUE lines, survives reinstalls): BACKUP_ENCRYPT_TO
(recipients, blank-separated), BACKUP_COPY_TO (destination).
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments, e.g. --db F),
BACKUP_CONF (another backup.conf), GNUPGHOME, RSYNC_RSH, BACKUP_RESERVE_MB (free space left to the
daemon beside its journal, default 200: a backup that would eat into it is refused, not taken).
Exit: 0 backup written and verified (its path is printed); 1 failure (nothing older is deleted
then); 64 bad usage; 75 backup written (path printed, retention done) but the off-site copy failed.
USAGE
}

dir="" keep_days=30 keep_count="" copy_to="" no_encrypt=0 no_copy=0 alert=0
recipients=()
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --dir) need_value "$1" $#; dir=$2; shift 2 ;;
    --keep-days) need_value "$1" $#; keep_days=$2; shift 2 ;;
    --keep-count) need_value "$1" $#; keep_count=$2; shift 2 ;;
    --encrypt-to) need_value "$1" $#; [ -n "$2" ] || usage_error "--encrypt-to needs a recipient"; recipients+=("$2"); shift 2 ;;
    --no-encrypt) no_encrypt=1; shift ;;
    --copy-to) need_value "$1" $#; [ -n "$2" ] || usage_error "--copy-to needs a destination"; copy_to=$2; shift 2 ;;
    --no-copy) no_copy=1; shift ;;
    --alert) alert=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
[[ "$keep_days" =~ ^[1-9][0-9]*$ ]] || usage_error "--keep-days must be a whole number of days (at least 1)"
[ -z "$keep_count" ] || [[ "$keep_count" =~ ^[1-9][0-9]*$ ]] || usage_error "--keep-count must be a whole number (at least 1)"
[ "$no_encrypt" = 0 ] || [ ${#recipients[@]} -eq 0 ] || usage_error "--encrypt-to and --no-encrypt contradict each other"
[ "$no_copy" = 0 ] || [ -z "$copy_to" ] || usage_error "--copy-to and --no-copy contradict each other"
# Run as root (update.sh, or by hand), the backup is taken as the journal's owner, the service's
# user, as the nightly one is: root writing by path into directories that user owns could be sent
# elsewhere through links it planted there (a way from that user to root), and what is written
# belongs to it without a chown.
as_journal_owner "backing up" "$0" ${args[@]+"${args[@]}"}

stage="" plain=""
on_exit() {
  local rc=$?
  rm -rf "$stage" "$plain"
  [ "$alert" = 0 ] || alert_on_failure "$rc" backup
}
trap on_exit EXIT
load_config   # once, in this shell: every config_field below reads it
[ -n "$dir" ] || dir=$(default_backup_dir)
# An unreadable backup.conf stops the backup: it may say to encrypt, and a plaintext backup where
# an encrypted one was asked for is worse than none (docs/BACKUPS.md).
if [ "$no_encrypt" = 0 ] && [ ${#recipients[@]} -eq 0 ]; then
  to=$(backup_setting BACKUP_ENCRYPT_TO) || die "not backing up: backup.conf cannot be read"
  read -r -a recipients <<<"$to"
fi
if [ "$no_copy" = 0 ] && [ -z "$copy_to" ]; then
  copy_to=$(backup_setting BACKUP_COPY_TO) || die "not backing up: backup.conf cannot be read"
fi

# Encryption: every recipient of one kind.
enc="" sfx=""
for r in ${recipients[@]+"${recipients[@]}"}; do
  case "$r" in age1*) k=age ;; *) k=gpg ;; esac
  [ -z "$enc" ] || [ "$enc" = "$k" ] || usage_error "encryption recipients mix age and gpg keys (${recipients[*]}): use one kind"
  enc=$k
done
if [ -n "$enc" ]; then
  sfx=".$enc"
  command -v "$enc" >/dev/null 2>&1 || die "$enc is not installed: cannot encrypt to ${recipients[*]} (not writing an unencrypted backup instead)"
  if [ "$enc" = gpg ]; then
    for r in "${recipients[@]}"; do
      gpg --batch --no-tty --list-keys -- "$r" >/dev/null 2>&1 \
        || die "no gpg public key for $r in the keyring of $(id -un)${GNUPGHOME:+ ($GNUPGHOME)}: import it first (gpg --import)"
    done
  fi
fi

mkdir -p "$dir"
chmod 0700 "$dir"
stamp=$(date -u +%Y%m%dT%H%M%S%3NZ)
# The mode is in the name: paper and live backups never stand in for each other (retention by count,
# the health check's backup age, restore.sh's refusal to cross modes).
mode=$(trading_mode)
case "$mode" in paper|live) ;; *) die "cannot tell the mode from the settings (check-config): not backing up" ;; esac
stem="polycopy-$mode-$stamp"
jname="$stem.db.gz$sfx"
cname="$stem.config.tgz$sfx"

# Leftovers of runs killed before their cleanup (here, and plaintext copies beside the journal).
find "$dir" -maxdepth 1 -type d -name '.backup.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
db=$(db_path)
if [ -n "$db" ]; then
  find "$(dirname "$db")" -maxdepth 1 -type d -name '.polycopy-tmp.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
fi
# The copies beside the journal (the copy, and its check or its gzip) take about twice its size:
# on a disk too full for that, a backup would fill it and the daemon's next journal write would
# fail (the breaker trips). Refused instead, with nothing written.
if [ -n "$db" ] && [ -f "$db" ]; then
  reserve_mb=${BACKUP_RESERVE_MB:-200}
  [[ "$reserve_mb" =~ ^[0-9]+$ ]] || usage_error "BACKUP_RESERVE_MB must be a whole number of MB, got '$reserve_mb'"
  size_kb=$(( ( $(stat -c %s -- "$db") + $(stat -c %s -- "$db-wal" 2>/dev/null || echo 0) ) / 1024 ))
  free_kb=$(df -Pk "$(dirname "$db")" 2>/dev/null | awk 'NR == 2 { print $4 }' || true)
  need_kb=$(( 2 * size_kb + reserve_mb * 1024 ))
  if [ -n "$free_kb" ] && [ "$free_kb" -lt "$need_kb" ]; then
    die "not enough free space beside $db: $((free_kb / 1024)) MB free, and a backup needs about $((2 * size_kb / 1024)) MB there while leaving ${reserve_mb} MB to the daemon. Nothing was written: free space first (docs/RUNBOOK.md, disk_low)"
  fi
fi
stage=$(mktemp -d "$dir/.backup.XXXXXX")   # what goes into DIR (atomic rename from here)
plain=$(private_workdir)                     # plaintext: beside the journal, never in DIR

# The journal.
run_polycopy backup --out "$plain/journal.db" >/dev/null || die "backup failed"
if [ -n "$enc" ]; then
  run_polycopy db-check --file "$plain/journal.db" >/dev/null || die "the backup copy failed its integrity check"
  gzip -9 -c "$plain/journal.db" > "$plain/journal.db.gz"
  gzip -t "$plain/journal.db.gz" || die "gzip failed"
  encrypt_file "$enc" "$plain/journal.db.gz" "$stage/$jname" "${recipients[@]}" \
    || die "encryption to ${recipients[*]} failed: not backing up"
  [ -s "$stage/$jname" ] || die "encryption to ${recipients[*]} wrote nothing: not backing up"
else
  gzip -9 -c "$plain/journal.db" > "$stage/$jname"
  # Verify what is on disk, not what we meant to write.
  gunzip -c "$stage/$jname" > "$plain/check.db"
  run_polycopy db-check --file "$plain/check.db" >/dev/null || die "the written backup failed its integrity check"
fi

# The settings and wallets the daemon runs with (check-config names them). Never a secrets file.
mkdir -m 0700 "$plain/config"
: > "$plain/config/MANIFEST"
entries=(MANIFEST)
add_config() { # add_config ENTRY PATH
  local f
  f=$(readlink -f -- "$2" 2>/dev/null || true)
  [ -n "$f" ] && [ -f "$f" ] || return 0
  case "$(basename "$f")" in
    *.env | .env*) log warning "not backing up $f: secrets files are never backed up"; return 0 ;;
  esac
  [ -r "$f" ] || { log warning "cannot read $f: not in the backup"; return 0; }
  cp -- "$f" "$plain/config/$1"
  printf '%s\t%s\n' "$1" "$f" >> "$plain/config/MANIFEST"
  entries+=("$1")
}
origins=$(config_field settings_file) n=0
while [ -n "$origins" ]; do
  part=${origins%%" + "*}
  if [ "$part" = "$origins" ]; then origins=""; else origins=${origins#*" + "}; fi
  [ "$part" != "built-in defaults" ] || continue
  n=$((n + 1))
  add_config "settings-$n.toml" "$part"
done
add_config wallets.json "$(config_field wallets_path)"
add_config backup.conf "$(backup_conf_file)"
if [ ${#entries[@]} -gt 1 ]; then
  tar -C "$plain/config" -czf "$plain/config.tgz" "${entries[@]}"
  tar -tzf "$plain/config.tgz" >/dev/null || die "the settings archive is unreadable"
  if [ -n "$enc" ]; then
    encrypt_file "$enc" "$plain/config.tgz" "$stage/$cname" "${recipients[@]}" \
      || die "encryption of the settings archive to ${recipients[*]} failed: not backing up"
  else
    mv "$plain/config.tgz" "$stage/$cname"
  fi
else
  log warning "no settings file or wallets file found to back up (check-config names none that exists)"
  cname=""
fi

written=("$jname")
[ -z "$cname" ] || written+=("$cname")
for f in "${written[@]}"; do
  (cd "$stage" && sha256sum "$f" > "$f.sha256")
  chmod 0600 "$stage/$f" "$stage/$f.sha256"
  # Run as root (update.sh, by hand), the backup belongs to the backup directory's owner like the
  # nightly ones: the monthly audit runs as that user and must read it.
  if [ "$(id -u)" = 0 ]; then chown -h --reference="$dir" "$stage/$f" "$stage/$f.sha256" 2>/dev/null || true; fi
done
# The settings first, the journal (what the health check looks for) last.
for f in ${cname:+"$cname"} "$jname"; do
  mv "$stage/$f" "$stage/$f.sha256" "$dir/"
done
log info "backup written: $dir/$jname ($(du -h "$dir/$jname" | cut -f1))${cname:+, settings: $dir/$cname}${enc:+, encrypted with $enc to ${recipients[*]}}"

# Off-site copy: the whole set, checksums included. A failure keeps the local backup.
copy_failed=0
copy_out() { # copy_out DEST FILE... (files in $dir)
  local dest=$1; shift
  local -a paths=()
  local f
  for f in "$@"; do paths+=("$dir/$f" "$dir/$f.sha256"); done
  if [[ "$dest" =~ ^[^/]*: ]]; then
    command -v rsync >/dev/null 2>&1 || { echo "rsync is not installed (needed for $dest)"; return 1; }
    RSYNC_RSH=${RSYNC_RSH:-ssh -o BatchMode=yes} rsync -t --timeout=600 --chmod=F600 -- "${paths[@]}" "${dest%/}/" 2>&1 | tail -n3
    return "${PIPESTATUS[0]}"
  fi
  [ -d "$dest" ] || (umask 077 && mkdir -p -- "$dest") 2>&1 || return 1
  if command -v rsync >/dev/null 2>&1; then
    rsync -t --chmod=F600 -- "${paths[@]}" "${dest%/}/" 2>&1 || return 1
  else
    for f in "${paths[@]}"; do
      cp -p -- "$f" "$dest/.$(basename "$f").partial" 2>&1 && mv -f -- "$dest/.$(basename "$f").partial" "$dest/$(basename "$f")" 2>&1 || return 1
    done
  fi
  # A local destination is checked as well.
  for f in "$@"; do
    (cd "$dest" && sha256sum --status -c "$f.sha256") 2>&1 || { echo "the copy of $f in $dest does not match its checksum"; return 1; }
  done
}
if [ -n "$copy_to" ]; then
  if why=$(copy_out "$copy_to" "${written[@]}"); then
    log info "copied off-site to $copy_to: ${written[*]}"
  else
    copy_failed=1
    log err "off-site copy to $copy_to FAILED$([ -z "$why" ] || echo ": $(echo "$why" | paste -sd ' ' -)"); the local backup is kept: $dir/$jname"
  fi
fi

# Retention by age: every backup file (journal or settings, any mode, encrypted or not) older than
# --keep-days, with its checksum; then checksums left without their backup. The newest backup of the
# other mode's journal is kept whatever its age: while this mode runs nothing backs that journal up
# again, and a live one may still hold real positions (RUNBOOK: Going back to paper).
days_min=$((keep_days * 1440))
other_mode=$([ "$mode" = live ] && echo paper || echo live)
# shellcheck disable=SC2012 # backup names are ours: no newlines
last_other=$(ls -1t "$dir"/polycopy-"$other_mode"-*.db.gz "$dir"/polycopy-"$other_mode"-*.db.gz.age \
               "$dir"/polycopy-"$other_mode"-*.db.gz.gpg 2>/dev/null | head -n 1 || true)
keep_stem=$([ -z "$last_other" ] || backup_stem "$last_other")
deleted=0
while IFS= read -r old; do
  is_backup_data "$old" || continue
  [ -n "$keep_stem" ] && [ "$(backup_stem "$old")" = "$keep_stem" ] && continue
  rm -f -- "$old" "$old.sha256"; deleted=$((deleted + 1))
done < <(find "$dir" -maxdepth 1 -type f -name 'polycopy-*' ! -name '*.sha256' -mmin +"$days_min" -print)
[ "$deleted" -eq 0 ] || log info "retention: deleted $deleted backup file(s) older than $keep_days days"
while IFS= read -r old; do
  [ -e "${old%.sha256}" ] || rm -f -- "$old"
done < <(find "$dir" -maxdepth 1 -type f -name 'polycopy-*.sha256' -mmin +"$days_min" -print)
# Optional cap by count: the newest N journal backups of this mode are kept, with their settings.
if [ -n "$keep_count" ]; then
  young=0 capped=0
  # shellcheck disable=SC2012 # backup names are ours: no newlines
  while IFS= read -r old; do
    s=$(backup_stem "$old")
    [ -n "$(find "$old" -mmin +"$days_min" -print)" ] || young=$((young + 1))
    rm -f -- "$dir/$s".db.gz* "$dir/$s".config.tgz*; capped=$((capped + 1))
  done < <(ls -1t "$dir"/polycopy-"$mode"-*.db.gz "$dir"/polycopy-"$mode"-*.db.gz.age "$dir"/polycopy-"$mode"-*.db.gz.gpg 2>/dev/null \
             | tail -n +$((keep_count + 1)))
  [ "$capped" -eq 0 ] || log info "retention: --keep-count $keep_count deleted $capped older backup(s) of the $mode journal"
  [ "$young" -eq 0 ] || log warning "retention: --keep-count $keep_count deleted $young backup(s) younger than --keep-days $keep_days: restores reach back less than $keep_days days"
fi
echo "$dir/$jname"
[ "$copy_failed" = 0 ] || exit 75
