#!/usr/bin/env bash
# Restores the polycopy journal (and, on request, the settings and wallets.json saved with it) from a
# backup made by backup.sh: verifies checksums, decrypts (age or gpg) and checks integrity first (a
# corrupt backup, or one the key given cannot open, is refused and nothing is touched), stops the
# service, keeps the current files aside, restores, halts the restored journal (it is older than
# the exchange: reconcile, then resume), starts, and checks health.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
umask 077

usage() {
  cat <<USAGE
Usage: restore.sh BACKUP [--instance NAME] [--db PATH] [--service NAME | --no-service]
                  [--identity FILE] [--with-config | --config-to DIR]
  BACKUP           a journal backup written by backup.sh: polycopy-<mode>-<stamp>.db.gz, or
                   .db.gz.age / .db.gz.gpg when encrypted
  --instance NAME  restore this instance's journal; the unit is then polycopy@NAME
  --db PATH        journal to replace (default: the configured one, db_path or live.db_path by mode)
  --service NAME   systemd unit to stop and start (default polycopy, or polycopy@NAME)
  --no-service     do not stop/start anything (the daemon must not be running)
  --identity FILE  the age identity (secret key file) that opens an .age backup (default
                   BACKUP_IDENTITY, from the environment or backup.conf beside the settings).
                   A .gpg backup is opened with a secret key of gpg's keyring
  --with-config    also put back the settings file(s), wallets.json and backup.conf saved with this
                   backup (<stem>.config.tgz beside it) where this installation reads them; the
                   current ones are kept aside as <file>.before-restore-<stamp>
  --config-to DIR  only extract the saved settings, wallets.json, backup.conf and their MANIFEST
                   (where each was) into DIR, to read or copy by hand: nothing else is touched
The daemon's own journal is left HALTED once restored ("journal restored from <backup>"): it knows
nothing after the backup was taken. Run reconcile, then resume. A restore elsewhere (--db) is not.
The secrets file (polycopy.env: private key, bot token) is never in a backup: it is not restored.
Environment: SYSTEMCTL (default systemctl), HEALTH_ARGS (extra health_check.sh arguments),
POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments), BACKUP_IDENTITY, GNUPGHOME,
ALLOW_OTHER_MODE=1 (restore a backup of the other mode elsewhere, with --db: never over the
daemon's own journal, which the daemon would refuse).
Exit: 0 restored (and healthy, with the service); 1 refused (bad checksum, cannot decrypt, not a
sound journal: nothing was touched) or failed (see the log line); 64 bad usage.
USAGE
}

backup="" db="" service="" use_service=1 identity="" with_config=0 config_to=""
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --db) need_value "$1" $#; db=$2; shift 2 ;;
    --service) need_value "$1" $#; service=$2; use_service=1; shift 2 ;;
    --no-service) use_service=0; shift ;;
    --identity) need_value "$1" $#; identity=$2; shift 2 ;;
    --with-config) with_config=1; shift ;;
    --config-to) need_value "$1" $#; config_to=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage_error "unknown option: $1" ;;
    *) [ -z "$backup" ] || usage_error "one backup at a time ($backup, $1)"; backup=$1; shift ;;
  esac
done
[ -n "$backup" ] || usage_error "which backup? (a polycopy-*.db.gz written by backup.sh)"
[ "$with_config" = 0 ] || [ -z "$config_to" ] || usage_error "--with-config restores in place, --config-to DIR only extracts: choose one"
case "$(basename "$backup")" in
  *.config.tgz | *.config.tgz.age | *.config.tgz.gpg)
    usage_error "$backup is the settings archive: pass the journal backup of the same name (…db.gz…) with --config-to DIR or --with-config" ;;
esac
if [ "$use_service" = 1 ] && [ -z "$config_to" ]; then
  [ -n "$service" ] || service=$(default_service)
else
  service=""
fi
load_config   # once, in this shell: every config_field below reads it
# An unreadable backup.conf is said (by backup_setting); a plain backup needs no identity.
[ -n "$identity" ] || identity=$(backup_setting BACKUP_IDENTITY) || identity=""
[ -f "$backup" ] || die "no such backup: $backup"
systemctl_cmd=${SYSTEMCTL:-systemctl}
mapfile -t inst < <(instance_args)
bdir=$(dirname "$backup")
enc=$(encryption_of "$backup")
cfg=""
if [ "$with_config" = 1 ] || [ -n "$config_to" ]; then
  cfg="$bdir/$(backup_stem "$backup").config.tgz${enc:+.$enc}"
  [ -f "$cfg" ] || die "refusing: no settings archive $cfg beside $backup (backups made before settings were backed up have none)"
fi

# verify_sum FILE: the checksum file exists and matches.
verify_sum() {
  [ -f "$1.sha256" ] || die "refusing: checksum file $1.sha256 is missing"
  (cd "$(dirname "$1")" && sha256sum --status -c "$(basename "$1").sha256") || die "refusing: $1 does not match its checksum"
}

if [ -z "$config_to" ]; then
  # A daemon still trading the mode the file no longer says: which journal the service runs after
  # the restart below is the file's, not the one trading now. The operator decides first (a
  # journal named with --db is restored where it is told, behind the lock check below).
  running_warning=$(config_field running_warning)
  [ -n "$db" ] || [ -z "$running_warning" ] \
    || die "refusing: $running_warning. Restart the service (or put the mode back) first, or name the journal with --db"
  daemons_journal=$(db_path)
  [ -n "$db" ] || db=$daemons_journal
  [ -n "$db" ] || die "cannot tell where the journal is (check-config names none): pass --db"
  # A backup names its mode (backup.sh): paper history never replaces the live journal, or the reverse.
  mode=$(config_field mode)
  case "$(basename "$backup")" in
    polycopy-paper-*) from=paper ;;
    polycopy-live-*) from=live ;;
    *) from="" ;;
  esac
  # With --with-config the journal's path is read from the settings in place now, before the saved
  # ones are put back: a backup of the other mode would land where this mode's journal is read,
  # and the restored settings would then point the daemon at another file. The settings go first.
  if [ -n "$from" ] && [ -n "$mode" ] && [ "$from" != "$mode" ] && [ "$with_config" = 1 ]; then
    die "refusing: $backup is a $from backup and this installation trades $mode, so --with-config would put the $from journal where the $mode one is read (nothing was touched). Put the saved settings back first: $0 $backup --config-to DIR, copy each file where DIR/MANIFEST says, check-config must say mode $from; then run $0 $backup without --with-config"
  fi
  # Over the daemon's own journal, never: the daemon refuses a journal holding the other mode's
  # copies, so the service would not start, and the right journal would be left aside.
  if [ -n "$from" ] && [ -n "$mode" ] && [ "$from" != "$mode" ] && [ -n "$daemons_journal" ] \
    && [ "$(realpath -m -- "$db")" = "$(realpath -m -- "$daemons_journal")" ]; then
    die "refusing: $backup is a $from backup and this installation trades $mode: its daemon would refuse the $from journal (nothing was touched). To read it, restore it elsewhere: --db PATH with ALLOW_OTHER_MODE=1; to trade $from here, put the backup's settings back first (--config-to DIR, docs/BACKUPS.md)"
  fi
  if [ -n "$from" ] && [ -n "$mode" ] && [ "$from" != "$mode" ] && [ "${ALLOW_OTHER_MODE:-}" != 1 ]; then
    die "refusing: $backup is a $from backup and this installation trades $mode (set ALLOW_OTHER_MODE=1 to restore it elsewhere with --db)"
  fi
  verify_sum "$backup"
fi
[ -z "$cfg" ] || verify_sum "$cfg"

# Plaintext goes beside the journal it replaces (as private, same disk), else in TMPDIR. Never, for
# root, in a directory another user owns: that user could swap root's directory for one of its own,
# with links in it, and root's writes by path would land where the links point.
work=""
trap 'rm -rf "$work"' EXIT
if [ -n "$db" ] && [ -d "$(dirname "$db")" ] && [ -w "$(dirname "$db")" ]; then
  work=$(mktemp -d "$(root_safe_dir "$(dirname "$db")")/.polycopy-tmp.XXXXXX")
else
  work=$(mktemp -d)
fi

if [ -z "$config_to" ]; then
  why=$(decrypt_file "$backup" "$work/restore.db.gz" "$identity") || die "refusing: $backup: $why"
  gunzip -c "$work/restore.db.gz" > "$work/restore.db" || die "refusing: $backup is not a valid gzip file"
  rm -f "$work/restore.db.gz"
  run_polycopy db-check --file "$work/restore.db" >/dev/null || die "refusing: $backup fails the integrity check"
fi

# The settings archive: only our own entry names, extracted into the private work directory.
entry_re='^(MANIFEST|settings-[0-9]+\.toml|wallets\.json|backup\.conf)$'
if [ -n "$cfg" ]; then
  why=$(decrypt_file "$cfg" "$work/config.tgz" "$identity") || die "refusing: $cfg: $why"
  names=$(tar -tzf "$work/config.tgz" 2>/dev/null) || die "refusing: $cfg is not a valid archive"
  while IFS= read -r e; do
    [[ "$e" =~ $entry_re ]] || die "refusing: $cfg holds an unexpected entry '$e'"
  done <<<"$names"
  grep -qx MANIFEST <<<"$names" || die "refusing: $cfg has no MANIFEST"
  mkdir "$work/config"
  tar -xzf "$work/config.tgz" -C "$work/config" --no-same-owner --no-same-permissions
  # Only plain files: the backup directory is the service user's, and a link saved as wallets.json
  # (to the secrets file) would have root copy what it points to where that user reads it.
  odd=$(find "$work/config" -mindepth 1 \( ! -type f -o -links +1 \) -printf '%P\n' | head -n 1)
  [ -z "$odd" ] || die "refusing: $cfg holds '$odd', which is not a plain file (a link?)"
fi

if [ -n "$config_to" ]; then
  mkdir -p "$config_to"
  while IFS= read -r e; do
    [ ! -e "$config_to/$e" ] || die "refusing to overwrite $config_to/$e: choose an empty directory"
  done <<<"$names"
  while IFS= read -r e; do
    install -m 0600 "$work/config/$e" "$config_to/$e"
  done <<<"$names"
  log info "extracted the settings saved with $backup into $config_to (MANIFEST: where each file was)"
  sed 's/^/  /' "$config_to/MANIFEST" >&2
  echo "$config_to"
  exit 0
fi

# --with-config: each saved file goes where this installation reads it now (check-config), never to
# a path taken from the archive itself.
tab=$'\t'
targets=()   # "entry<TAB>path"
if [ "$with_config" = 1 ]; then
  saved=$(grep -c '^settings-[0-9]*\.toml$' <<<"$names" || true)
  current=()
  origins=$(config_field settings_file)
  while [ -n "$origins" ]; do
    part=${origins%%" + "*}
    if [ "$part" = "$origins" ]; then origins=""; else origins=${origins#*" + "}; fi
    [ "$part" = "built-in defaults" ] || current+=("$part")
  done
  # Settings too broken for check-config to name: the installation's own settings file.
  [ ${#current[@]} -gt 0 ] || [ "$saved" != 1 ] || current=("$(settings_file)")
  [ "$saved" = "${#current[@]}" ] \
    || die "refusing: the backup holds $saved settings file(s) and this installation reads ${#current[@]} (${current[*]:-none}): use --config-to DIR and copy them by hand"
  for i in $(seq 1 "$saved"); do targets+=("settings-$i.toml$tab${current[$((i - 1))]}"); done
  if grep -qx wallets.json <<<"$names"; then
    w=$(config_field wallets_path)
    # A relative path is check-config's guess when the settings do not load (it depends on the
    # directory this runs from): the installation's, next to its settings, instead.
    case "$w" in /*) ;; *) w="$(dirname "${current[0]:-$(settings_file)}")/wallets.json" ;; esac
    targets+=("wallets.json$tab$w")
  fi
  if grep -qx backup.conf <<<"$names"; then targets+=("backup.conf$tab$(backup_conf_file)"); fi
fi

# The cron jobs open the journal without the daemon's lock: a backup or maintenance run still
# going would keep the file moved aside open, and SQLite must not have a database renamed under
# an open connection. Their own locks are taken (waited for, as they may be long) for the swap;
# a job started later skips its run (flock -n).
job_wait=${RESTORE_JOB_WAIT_S:-300}
[[ "$job_wait" =~ ^[0-9]+$ ]] || usage_error "RESTORE_JOB_WAIT_S must be a whole number of seconds"
if [ -z "$config_to" ] && [ -d "$pc_prefix/var/log/polycopy" ]; then
  for job in backup maintenance; do
    job_lock="$pc_prefix/var/log/polycopy/.$job$(instance_suffix -).lock"
    [ -f "$job_lock" ] || continue
    # Opened to read: root never creates nor follows into a file in the service user's directory.
    exec {fd}<"$job_lock"
    flock -n "$fd" || log info "the cron $job job runs on the journal: waiting up to $job_wait s for it to finish"
    flock -w "$job_wait" "$fd" \
      || die "refusing: the cron $job job still runs on the journal ($job_lock held), nothing was touched: run again when it is done"
  done
fi
if [ -n "$service" ]; then
  log info "stopping $service"
  "$systemctl_cmd" stop "$service"
fi
# A daemon still running on this journal (--no-service, a wrong --service, or one started by hand)
# would keep writing the file moved aside, and would take the halt below for itself, leaving the
# restored journal un-halted for its next start: nothing is touched while one answers.
# Either journal counts: the one the stopped daemon ran, and the one the settings file names, which
# the service runs from its next start (a mode switched in the file, the service not restarted).
same_journal=0
for configured in "$(db_path)" "$(config_field db_path)"; do
  if [ -n "$configured" ] && [ "$(realpath -m -- "$db")" = "$(realpath -m -- "$configured")" ]; then
    same_journal=1
  fi
done
# Whatever journal --db names (another instance's, say, its --instance forgotten): the daemon holds
# an exclusive flock on <journal>.lock for its life, asked of the lock itself, not of `status`, which
# must read the journal (damaged, or of a newer schema, when a restore is due). A lock file also
# says a daemon ran on it: the restored journal is then halted below, like the configured one.
lock="$db.lock"
daemons_file=$same_journal
if [ -f "$lock" ]; then
  daemons_file=1
  rc=0
  flock -n -s "$lock" true 2>/dev/null || rc=$?
  case $rc in
    0) ;;
    1) die "refusing: a daemon is still running on $db${service:+ after stopping $service}: stop it first (systemctl stop <its unit>), nothing was touched" ;;
    *) die "refusing: cannot tell whether a daemon runs on $db ($lock cannot be locked, exit $rc: run as root or as the service user), nothing was touched" ;;
  esac
fi
stamp=$(date -u +%Y%m%dT%H%M%S%3NZ)
aside=""
if [ -f "$db" ]; then
  aside="$db.before-restore-$stamp"
  mv "$db" "$aside"
  for ext in -wal -shm; do [ ! -f "$db$ext" ] || mv "$db$ext" "$aside$ext"; done
  log info "current journal kept aside as $aside"
fi
mkdir -p "$(dirname "$db")"
# Moved, not copied: the checked copy sits beside the journal (same disk), so the move takes no
# more space, and a full disk cannot leave half a journal where the daemon looks for it.
chmod 0600 "$work/restore.db"
mv -f -- "$work/restore.db" "$db" \
  || die "could not put the restored journal at $db: the previous one is at ${aside:-nowhere} (move it back by hand before starting)"
# Run as root, keep the journal owned like the one it replaces (or like its directory, the
# service's state directory): a root-owned journal would stop the daemon from writing.
# A file someone else planted at that path (in a shared directory such as /tmp) lends nothing: its
# owner would get the restored journal. Only root's, or the directory owner's, is followed.
if [ "$(id -u)" = 0 ]; then
  ref=$(dirname "$db")
  if [ -n "$aside" ]; then
    owner=$(stat -c %u -- "$aside" 2>/dev/null || echo x)
    if [ "$owner" = 0 ] || [ "$owner" = "$(stat -c %u -- "$ref" 2>/dev/null)" ]; then
      ref=$aside
    else
      log warning "$aside was owned by uid $owner, not by root or the owner of $ref: the restored journal is not given to it"
    fi
  fi
  chown -h --reference="$ref" "$db" 2>/dev/null || true
fi
for t in ${targets[@]+"${targets[@]}"}; do
  e=${t%%"$tab"*} path=${t#*"$tab"}
  if [ -f "$path" ] && cmp -s "$work/config/$e" "$path"; then
    log info "$path is the same as in $(basename "$cfg"): left as it is"
    continue
  fi
  ref=""
  if [ -f "$path" ]; then
    ref="$path.before-restore-$stamp"
    cp -p -- "$path" "$ref"
  fi
  # Owner and mode like the file it replaces (or its directory's owner, mode 0640: the service reads it).
  mkdir -p "$(dirname "$path")"
  cp -- "$work/config/$e" "$path.restoring"
  if [ -n "$ref" ]; then chmod --reference="$ref" "$path.restoring"; else chmod 0640 "$path.restoring"; fi
  if [ "$(id -u)" = 0 ]; then
    chown -h --reference="${ref:-$(dirname "$path")}" "$path.restoring" 2>/dev/null || true
  fi
  mv -f -- "$path.restoring" "$path"
  log info "restored $path from $(basename "$cfg")${ref:+ (the previous one kept aside as $ref)}"
done
run_polycopy db-check --file "$db" >/dev/null || die "the restored journal fails its check: the previous one is at ${aside:-nowhere}"
# The daemon's own journal put back is older than what the exchange and the chain hold: it knows
# nothing of the copies made since the backup, and its checkpoint would have the daemon copy again
# the target fills after it. Halted before the daemon starts, so that the operator reconciles
# first (a scratch restore, --db a file no daemon ran on, is left as it is). Halting a stopped daemon's journal
# answers 3 (stored in the journal).
# Only 3 (stored in the journal, no daemon answered) halts the file itself: 0 means a daemon took the
# halt for itself. Either way, a restored journal that is not halted is never started.
if [ "$daemons_file" = 1 ]; then
  rc=0
  # Named, never left to the default: with the file switched to the other mode, the default is
  # not the journal just restored (nor, with --no-service, a stopped daemon's).
  run_polycopy_on "$db" halt --reason "journal restored from $(basename "$backup"): run reconcile, then resume" >/dev/null 2>&1 \
    || rc=$?
  case $rc in
    3) log warning "trading is HALTED in the restored journal: it knows nothing after the backup was taken. Run reconcile, then resume" ;;
    0) die "a daemon answered the halt meant for the restored journal, which is NOT halted: stop every daemon on $db, run $(polycopy_bin) halt, then start${service:+ $service} (not started)" ;;
    *) die "could not halt the restored journal (exit $rc): halt it ($(polycopy_bin) halt) before trading resumes${service:+; $service is left stopped}" ;;
  esac
fi
if [ -n "$service" ]; then
  log info "starting $service"
  # A daemon that failed over and over (the reason to restore) may have used up the unit's start
  # limit: systemd would refuse this start and leave the service down.
  "$systemctl_cmd" reset-failed "$service" >/dev/null 2>&1 || true
  "$systemctl_cmd" start "$service" || die "restored, but systemd refused to start $service: see systemctl status $service"
  # shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
  "$(dirname "$0")/health_check.sh" ${inst[@]+"${inst[@]}"} --allow-halted --wait 60 --no-backup-check ${HEALTH_ARGS:-} \
    >/dev/null || die "restored, but the daemon is not healthy: see health_check.sh"
fi
log info "restored $db from $backup"
