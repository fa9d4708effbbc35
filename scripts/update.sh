#!/usr/bin/env bash
# Updates the polycopy binary safely: back up the journal, swap the binary (keeping the old one),
# restart, check health, and roll back binary and journal automatically if the new version is not
# healthy within the timeout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  cat <<USAGE
Usage: update.sh NEW_BINARY [--instance NAME] [--bin-path PATH] [--service NAME] [--backup-dir DIR]
                 [--timeout S]
  NEW_BINARY       the new polycopy binary (e.g. target/release/polycopy)
  --instance NAME  back up, restart and check this instance (unit polycopy@NAME). The binary is
                   shared: every other instance's settings are checked against it first (refused:
                   not updating); restart the other instances afterwards (see the runbook)
  --bin-path PATH  the installed binary (default /usr/local/bin/polycopy)
  --service NAME   systemd unit (default polycopy, or polycopy@NAME)
  --backup-dir DIR where the pre-update backup goes (default /var/backups/polycopy, /NAME for an instance)
  --timeout S      seconds the new version has to become healthy (default 90)
A daemon halted before the update may stay halted: the health checks then accept the halt. A
service that is not running (stopped by the operator) is left stopped: only the binary is swapped. A
rollback puts back the journal from before the update, which lacks what the new version did:
trading is then left HALTED (the journal is halted before the old version starts) until you have
run reconcile and resume; the newer journal is kept aside as <journal>.before-restore-<stamp>.
The pre-update backup is the rollback's: backup.sh --no-encrypt --no-copy, whatever backup.conf
says. It stays local (mode 0600 in the 0700 backup directory, like every backup) and unencrypted,
so that the rollback never needs a decryption key on the server and an off-site copy that fails
never stops an update. Retention deletes it like any other backup; with encryption on, delete it
yourself once the update has proved itself if no plaintext backup should stay.
Environment: SYSTEMCTL (default systemctl), HEALTH_ARGS (extra health_check.sh arguments),
UPDATE_HOLD_S (default 100: once healthy, the new version must stay so that long, the same process,
not restarted, or it is rolled back: one good probe does not prove a binary that falls over next.
It outlasts the unit's WatchdogSec (90 s: a watchdog no longer fed restarts the process) and
health.feed_stall_s (60 s: a chain feed that never syncs turns /health unhealthy), which a shorter
hold passed as healthy).
A hangup (a dropped SSH session) does not stop an update half-way; run it in tmux or with
systemd-run all the same.
A check failing before the swap (a chain or CLOB outage, low disk) is not blamed on the new version:
only a check that passed before and fails after it rolls the update back.
Exit: 0 updated and healthy, or failing only as before the update (said); 1 not updated: refused
before the swap (backup failed, binary does not run or refuses the configuration: check-config
--offline) or rolled back (the old binary and journal are
back); 64 bad usage.
USAGE
}

new="" bin_path="" service="" backup_dir="" timeout=90
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --bin-path) need_value "$1" $#; bin_path=$2; shift 2 ;;
    --service) need_value "$1" $#; service=$2; shift 2 ;;
    --backup-dir) need_value "$1" $#; backup_dir=$2; shift 2 ;;
    --timeout) need_value "$1" $#; timeout=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage_error "unknown option: $1" ;;
    *) [ -z "$new" ] || usage_error "one new binary at a time ($new, $1)"; new=$1; shift ;;
  esac
done
[ -n "$new" ] || usage_error "which binary? (e.g. target/release/polycopy)"
[[ "$timeout" =~ ^[0-9]+$ ]] || usage_error "--timeout must be a whole number of seconds"
hold_s=${UPDATE_HOLD_S:-100}
[[ "$hold_s" =~ ^[0-9]+$ ]] || usage_error "UPDATE_HOLD_S must be a whole number of seconds"
[ -n "$bin_path" ] || bin_path=$(installed_bin)
[ -n "$service" ] || service=$(default_service)
[ -n "$backup_dir" ] || backup_dir=$(default_backup_dir)
[ -x "$new" ] || die "not an executable: $new"
[ -x "$bin_path" ] || die "no installed binary at $bin_path (install with install.sh first)"
version=$("$new" --version 2>/dev/null) || die "the new binary does not run: $new --version failed"
systemctl_cmd=${SYSTEMCTL:-systemctl}
here=$(dirname "$0")
# A service the operator stopped (one way to halt, see the runbook) stays stopped: the binary is
# swapped and nothing is started.
# Only a unit that is down or being stopped (inactive, failed, deactivating) counts: one starting,
# or waiting to restart after a crash, is running as far as the operator is concerned.
was_active=1
case "$("$systemctl_cmd" is-active "$service" 2>/dev/null || true)" in
  inactive | failed | deactivating) was_active=0 ;;
esac
mapfile -t inst < <(instance_args)
# The new binary must take the settings, the environment and wallets.json as they are: restarted on
# something it refuses, it would exit 78, and systemd does not start it again.
cfg_err=""
if ! cfg_err=$(POLYCOPY_BIN="$new" run_polycopy check-config --offline 2>&1 >/dev/null); then
  die "$version refuses this configuration (check-config --offline): $(tail -n3 <<<"$cfg_err" | tr '\n' ' ')- fix it first: not updating"
fi
# The binary is shared: every other instance of this server runs it at its next restart (a crash,
# a reboot), with no check of its own. Each must take it too, or it would exit 78 there and stay down.
mine=$pc_instance
# The default instance is the one named by no instance at all: POLYCOPY_INSTANCE exported in this
# shell would make the binary check the named one again in its place (lib.sh has read it already).
saved_instance=${POLYCOPY_INSTANCE-}
unset POLYCOPY_INSTANCE
others=()
if [ -n "$mine" ] && [ -f "$pc_prefix/etc/polycopy/polycopy.toml" ]; then others+=(""); fi
for conf in "$pc_prefix"/etc/polycopy/*/polycopy.toml; do
  [ -f "$conf" ] || continue
  name=$(basename "$(dirname "$conf")")
  if valid_instance "$name" && [ "$name" != "$mine" ]; then others+=("$name"); fi
done
for other in ${others[@]+"${others[@]}"}; do
  # An instance taken out of service (uninstall.sh --instance keeps its settings) runs nothing.
  unit="polycopy${other:+@$other}"
  case "$("$systemctl_cmd" is-enabled "$unit" 2>/dev/null || true)" in
    disabled | masked) continue ;;
  esac
  pc_instance=$other
  if ! cfg_err=$(POLYCOPY_BIN="$new" run_polycopy check-config --offline 2>&1 >/dev/null); then
    die "$version refuses the configuration of instance ${other:-(the default one)}, which shares the binary: $(tail -n3 <<<"$cfg_err" | tr '\n' ' ')- fix it first: not updating"
  fi
done
pc_instance=$mine pc_config_json=""
[ -z "$saved_instance" ] || export POLYCOPY_INSTANCE=$saved_instance
export POLYCOPY_BIN="$bin_path"
# The settings were switched to the other mode and the service not restarted: the restart below
# would apply the switch (paper to live, or live positions left unattended) behind the operator's
# back, and the pre-update backup would be of the mode that is left. The operator decides first.
load_config
running_warning=$(config_field running_warning)
[ -z "$running_warning" ] || die "refusing: $running_warning. Restart the service (or put the mode back) first, then update: not updating"
# A halt in force before the update is the operator's: the new version may keep it.
health_extra=()
# Captured first: `grep -q` leaving early would fail the writer (and the pipeline) on a long status.
status_json=$(run_polycopy status --json 2>/dev/null || true)
if grep -q '"tripped": true' <<<"$status_json"; then
  log info "trading is halted before the update: the health checks accept the halt"
  health_extra=(--allow-halted)
fi

# failing_checks LINE: the names of the checks a health_check.sh result line says fail, sorted
# ("" when healthy).
failing_checks() {
  case "$1" in UNHEALTHY*) ;; *) return 0 ;; esac
  printf '%s\n' "${1#*: }" | sed 's/; /\n/g' | sed -n 's/^\([a-z_]*\): .*/\1/p' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
# What fails already before the swap (a chain or CLOB outage, a full disk) is not the new version's
# doing: only a check that passed before and fails after it rolls the update back. A blip is not a
# failure before: what clears within 10 s does not count.
failing_before=""
if [ "$was_active" = 1 ]; then
  # shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
  failing_before=$(failing_checks "$("$here/health_check.sh" ${inst[@]+"${inst[@]}"} ${health_extra[@]+"${health_extra[@]}"} \
    --wait 10 --no-backup-check ${HEALTH_ARGS:-} 2>/dev/null | tail -n1 || true)")
  [ -z "$failing_before" ] || log warning "failing before the update: $failing_before (not a reason to roll back)"
fi

# From here on a hangup (the operator's SSH session dropped) must not leave the service stopped
# or an unchecked binary in place: the update finishes, or rolls back.
# A pipe as stderr (`ssh host sudo update.sh` without a terminal) breaks with the session: ignored,
# a write to it fails (and `log` goes on) instead of killing the script.
trap '' HUP PIPE
# The rollback's backup: local and unencrypted (see --help), so restoring it needs no key and an
# off-site destination being down does not block the update.
log info "updating $service to $version: backing up the journal first (local, unencrypted: backup.sh --no-encrypt --no-copy)"
rc=0
backup=$("$here/backup.sh" ${inst[@]+"${inst[@]}"} --dir "$backup_dir" --no-encrypt --no-copy | tail -n1) || rc=$?
case $rc in
  0) ;;
  # Only an off-site copy failed (not expected with --no-copy): the local backup is there.
  75) log warning "the off-site copy of the pre-update backup failed; the local backup is enough for the rollback" ;;
  *) die "backup failed: not updating" ;;
esac
# The rollback restores this file: it must be a plain journal backup that exists.
case "$backup" in
  */polycopy-*.db.gz) [ -f "$backup" ] || die "backup.sh names no backup file ($backup): not updating" ;;
  *) die "backup.sh did not name a plain journal backup (${backup:-nothing}): not updating" ;;
esac
cp -p "$bin_path" "$bin_path.prev"
install -m 0755 "$new" "$bin_path.new"
mv -f "$bin_path.new" "$bin_path"
if [ "$was_active" = 0 ]; then
  log warning "$service was not running: $version is installed (previous binary kept as $bin_path.prev) and $service is left stopped. Start it yourself when you mean to trade, then run health_check.sh"
  exit 0
fi
"$systemctl_cmd" restart "$service" || true
after=""
# shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
# unit_state: the service's main process and restart count ("" where systemctl cannot say).
unit_state() { "$systemctl_cmd" show -p MainPID -p NRestarts --value "$service" 2>/dev/null | tr '\n' ' ' || true; }
# shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
if after=$("$here/health_check.sh" ${inst[@]+"${inst[@]}"} ${health_extra[@]+"${health_extra[@]}"} --wait "$timeout" \
     --no-backup-check ${HEALTH_ARGS:-} 2>/dev/null); then
  # Healthy once: it must stay so, the same process, not restarted (a panic a little after the
  # start, a watchdog that stops being fed, pass the first probe).
  held=$(unit_state)
  sleep "$hold_s"
  # shellcheck disable=SC2086 # HEALTH_ARGS is a list of arguments
  if [ "$(unit_state)" = "$held" ] && after=$("$here/health_check.sh" ${inst[@]+"${inst[@]}"} \
       ${health_extra[@]+"${health_extra[@]}"} --wait 10 --no-backup-check ${HEALTH_ARGS:-} 2>/dev/null); then
    log info "updated $service to $version and healthy for ${hold_s} s (previous binary kept as $bin_path.prev, journal before the update: $backup)"
    exit 0
  fi
  log crit "$version was healthy, then within ${hold_s} s restarted or failed its checks"
  last=$(tail -n1 <<<"$after")
  after="UNHEALTHY: process: $version did not stay up and healthy for ${hold_s} s; ${last#UNHEALTHY*: }"
fi
failing_after=$(failing_checks "$(tail -n1 <<<"$after")")
new_failures=$(comm -13 <(tr ' ' '\n' <<<"$failing_before" | sort -u) <(tr ' ' '\n' <<<"$failing_after" | sort -u) | tr '\n' ' ')
# A daemon down after the update is never "failing as before": it is what the update must not do.
case " $failing_after " in *" process "*) new_failures="process ${new_failures}" ;; esac
if [ -n "$failing_after" ] && [ -z "${new_failures// /}" ]; then
  log crit "updated $service to $version; still failing as before the update, not because of it: $failing_after (see health_check.sh; previous binary kept as $bin_path.prev)"
  exit 0
fi
[ -z "$failing_before" ] || log info "failing since the update: ${new_failures% }"

log crit "$version is not healthy: rolling back binary and journal"
"$systemctl_cmd" stop "$service" || true
mv -f "$bin_path.prev" "$bin_path"
journal=$(db_path)
journal_was=$(stat -c '%d:%i' -- "$journal" 2>/dev/null || echo none)
if ! "$here/restore.sh" "$backup" ${inst[@]+"${inst[@]}"} --no-service >/dev/null; then
  if [ "$journal_was" = none ] || [ "$(stat -c '%d:%i' -- "$journal" 2>/dev/null || echo none)" != "$journal_was" ]; then
    # It failed after moving the journal (its halt or its check): what is in place now may be the
    # backup, older than the exchange and not halted. Started, it would copy again.
    log crit "the journal restore failed part-way: $service is left stopped. Restore $backup by hand ($here/restore.sh $backup), which halts it, then start $service"
    exit 1
  fi
  # Refused before touching anything (a cron backup or maintenance run held the journal past
  # restore.sh's wait, say): the journal the new version used is still in place, the newest there
  # is, so nothing copied since the backup is copied again. The previous version is started on
  # it; one that cannot open it (a schema the new version migrated) fails its start below.
  log crit "the journal restore was refused, nothing touched: the journal the new version used stays in place (newest, not halted); starting the previous version on it. If it does not start, restore $backup by hand ($here/restore.sh $backup), then start $service"
elif grep -q '"tripped": true' <<<"$(run_polycopy status --json 2>/dev/null || true)"; then
  # restore.sh halted the journal it put back: it is older than what the exchange and the chain
  # hold now (copies made by the new version, and by the old one after the backup).
  log crit "trading is HALTED: the journal put back is from before the update (the newer one is kept aside as <journal>.before-restore-*). Run reconcile, then resume"
else
  # Started un-halted, the old journal would copy again what the new version already copied.
  log crit "rolled back, but the journal put back is from before the update and is NOT halted: $service is left stopped. Halt it ($(polycopy_bin) halt), start $service, then reconcile and resume"
  exit 1
fi
# The new version's failed starts may have used up the unit's start limit: systemd would refuse
# this start ("start request repeated too quickly") and leave the service down.
"$systemctl_cmd" reset-failed "$service" >/dev/null 2>&1 || true
if ! "$systemctl_cmd" start "$service"; then
  log crit "rolled back, but systemd refused to start $service: see systemctl status $service, then start it (its journal is halted unless the restore was refused, see above)"
  exit 1
fi
# shellcheck disable=SC2086
if "$here/health_check.sh" ${inst[@]+"${inst[@]}"} --allow-halted --wait "$timeout" --no-backup-check ${HEALTH_ARGS:-} \
     >/dev/null; then
  log warning "rolled back: the previous version runs again"
else
  log crit "rolled back, but the previous version is not healthy either: see the runbook"
fi
exit 1
