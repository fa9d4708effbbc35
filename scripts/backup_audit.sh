#!/usr/bin/env bash
# Audit of every retained backup, for cron (monthly): each backup file's checksum, then each is
# opened (decrypted when its key is given, gunzipped) and every journal backup gets the journal's
# integrity check (polycopy db-check --file); every settings archive is listed. One line per backup
# file: ok, or FAILED with the reason. Any failure exits 1 and raises an alert: through the daemon
# (POST /alert, relayed to its notifier's sinks) when it is up, and always as a critical syslog line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
umask 077

usage() {
  cat <<USAGE
Usage: backup_audit.sh [--instance NAME] [--dir DIR] [--identity FILE] [--gpg] [--url URL] [--no-alert]
  --instance NAME  audit this instance's backups (polycopy --instance NAME)
  --dir DIR        the backups (default /var/backups/polycopy, /NAME for an instance)
  --identity FILE  age identity (secret key file): open .age backups and check them fully
                   (default BACKUP_IDENTITY, from the environment or backup.conf)
  --gpg            open .gpg backups with gpg's keyring (GNUPGHOME) and check them fully
                   Encrypted backups without their key are checked by checksum only, and say so.
  --url URL        the daemon's health server, for the alert (default: http:// + [http] listen)
  --no-alert       no alert through the daemon (the result is still printed and logged)
Every backup file backup.sh writes is audited, of both modes: <stem>.db.gz and <stem>.config.tgz,
plain or .age/.gpg. Plaintext copies are made beside the journal (never in DIR) and removed.
Environment: POLYCOPY_BIN (binary), POLYCOPY_ARGS (extra global polycopy arguments), BACKUP_IDENTITY,
GNUPGHOME.
Exit: 0 every backup ok; 1 at least one FAILED, or no backup at all (alert raised); 64 bad usage.
USAGE
}

dir="" identity="" use_gpg=0 url="" alert=1
while [ $# -gt 0 ]; do
  case "$1" in
    --instance) need_value "$1" $#; set_instance "$2"; shift 2 ;;
    --dir) need_value "$1" $#; dir=$2; shift 2 ;;
    --identity) need_value "$1" $#; identity=$2; shift 2 ;;
    --gpg) use_gpg=1; shift ;;
    --url) need_value "$1" $#; url=${2%/}; shift 2 ;;
    --no-alert) alert=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done
load_config   # once, in this shell: every config_field below reads it
[ -n "$dir" ] || dir=$(default_backup_dir)
# An unreadable backup.conf is said (by backup_setting); a plain backup needs no identity.
[ -n "$identity" ] || identity=$(backup_setting BACKUP_IDENTITY) || identity=""
[ -z "$identity" ] || [ -r "$identity" ] || usage_error "cannot read the age identity $identity"

work=""
trap 'rm -rf "$work"' EXIT
work=$(private_workdir)
entry_re='^(MANIFEST|settings-[0-9]+\.toml|wallets\.json|backup\.conf)$'

# audit_one FILE: prints the verdict's detail; status 1 when it failed.
audit_one() {
  local f=$1 enc why out names e
  [ -f "$f.sha256" ] || { echo "checksum file $(basename "$f").sha256 is missing"; return 1; }
  (cd "$(dirname "$f")" && sha256sum --status -c "$(basename "$f").sha256" 2>/dev/null) \
    || { echo "does not match its checksum"; return 1; }
  enc=$(encryption_of "$f")
  if { [ "$enc" = age ] && [ -z "$identity" ]; } || { [ "$enc" = gpg ] && [ "$use_gpg" = 0 ]; }; then
    echo "checksum only (encrypted with $enc; no key given: pass $([ "$enc" = age ] && echo "--identity FILE" || echo --gpg) to open it)"
    return 0
  fi
  rm -rf "${work:?}"/*
  why=$(decrypt_file "$f" "$work/data" "$identity") || { echo "cannot open it: $why"; return 1; }
  case "$(basename "$f")" in
    *.db.gz*)
      gunzip -c "$work/data" > "$work/journal.db" 2>/dev/null || { echo "not a valid gzip file"; return 1; }
      rm -f "$work/data"
      if ! out=$(run_polycopy db-check --file "$work/journal.db" 2>&1); then
        echo "integrity check failed: $(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | head -n1 | sed -e "s#$work/journal.db: ##" -e 's#^integrity check failed: ##')"
        return 1
      fi
      echo "journal sound (integrity check passed${enc:+, decrypted with $enc})" ;;
    *)
      names=$(tar -tzf "$work/data" 2>/dev/null) || { echo "not a valid settings archive"; return 1; }
      grep -qx MANIFEST <<<"$names" || { echo "settings archive without its MANIFEST"; return 1; }
      while IFS= read -r e; do
        [[ "$e" =~ $entry_re ]] || { echo "settings archive holds an unexpected entry '$e'"; return 1; }
      done <<<"$names"
      echo "settings archive: $(grep -vx MANIFEST <<<"$names" | paste -sd ' ' -)${enc:+ (decrypted with $enc)}" ;;
  esac
}

total=0 failed=0 partial=0
failures=()
if [ -d "$dir" ]; then
  while IFS= read -r f; do
    is_backup_data "$f" || continue
    total=$((total + 1))
    name=$(basename "$f")
    if detail=$(audit_one "$f"); then
      echo "$name: ok: $detail"
      case "$detail" in "checksum only"*) partial=$((partial + 1)) ;; esac
    else
      failed=$((failed + 1))
      failures+=("$name ($detail)")
      echo "$name: FAILED: $detail"
    fi
  done < <(find "$dir" -maxdepth 1 -type f -name 'polycopy-*' ! -name '*.sha256' -print | sort)
fi
if [ "$total" -eq 0 ]; then
  failed=1
  failures+=("no backup in $dir")
fi

tag=""
[ -z "$pc_instance" ] || tag=" [$pc_instance]"
if [ "$failed" -eq 0 ]; then
  msg="backup audit$tag: all $total backup file(s) in $dir ok"
  [ "$partial" -eq 0 ] || msg="$msg ($partial encrypted one(s) by checksum only: no key given)"
  log info "$msg"
  echo "$msg"
  exit 0
fi
joined=$(printf '%s; ' "${failures[@]}")
if [ "$total" -eq 0 ]; then
  msg="backup audit$tag: FAILED: no backup in $dir"
else
  msg="backup audit$tag: $failed of $total backup file(s) FAILED: ${joined%; }"
fi
log crit "$msg"
if [ "$alert" = 1 ]; then
  if [ -n "$url" ] || url=$(health_url); then
    relay_alert "$url" "$msg" || true
  else
    log crit "cannot tell where the daemon listens ([http] listen is off or port 0): pass --url for the alert"
  fi
fi
echo "$msg"
exit 1
