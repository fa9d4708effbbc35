# Shared helpers for polycopy's operator scripts (sourced, not run).
# Every message goes to stderr and, through logger, to syslog/journald with the script's name as tag.

POLYCOPY_TAG="polycopy-$(basename "${0%.sh}")"

log() { # log LEVEL MESSAGE...   LEVEL: info | warning | err | crit
  local level=$1; shift
  printf '%s: %s\n' "$POLYCOPY_TAG" "$*" >&2
  if command -v logger >/dev/null 2>&1; then logger -t "$POLYCOPY_TAG" -p "user.$level" -- "$*" 2>/dev/null || true; fi
}

die() { log err "$*"; exit 1; }

# The polycopy binary: $POLYCOPY_BIN, else on PATH, else the installed one.
polycopy_bin() {
  if [ -n "${POLYCOPY_BIN:-}" ]; then echo "$POLYCOPY_BIN"
  elif command -v polycopy >/dev/null 2>&1; then command -v polycopy
  else echo /usr/local/bin/polycopy; fi
}

# Global arguments for polycopy: the installed settings file when present, unless the caller set
# POLYCOPY_ARGS (e.g. "--config my.toml --db my.db").
polycopy_args() {
  if [ -n "${POLYCOPY_ARGS:-}" ]; then echo "$POLYCOPY_ARGS"
  elif [ -f /etc/polycopy/polycopy.toml ]; then echo "--config /etc/polycopy/polycopy.toml"
  fi
}

# run_polycopy SUBCOMMAND [ARGS...]
run_polycopy() {
  # shellcheck disable=SC2046 # word splitting of the global arguments is intended
  "$(polycopy_bin)" $(polycopy_args) "$@"
}

# The configured journal path, as the daemon sees it.
db_path() {
  run_polycopy check-config --json 2>/dev/null | sed -n 's/.*"db_path": *"\([^"]*\)".*/\1/p' | head -n1
}
