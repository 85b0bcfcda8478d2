#!/usr/bin/env bash
# Install the system packages civicpin needs, only those that are missing.
#
#   scripts/system-deps.sh            PostgreSQL + PostGIS, Node/npm, Python venv, Chromium
#   scripts/system-deps.sh --check    only report; exit 1 when something is missing
#
# As root it calls apt-get (update once, then one install); as another user it prints the
# command to run and exits 1. When everything is there it runs no apt command at all, so a
# second `make run` stays fast.
set -euo pipefail

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# The newest PostgreSQL server already installed, if any.
pg_installed_major() {
    local d best=""
    for d in /usr/lib/postgresql/*/bin/postgres; do
        [ -x "$d" ] || continue
        d=${d#/usr/lib/postgresql/}
        d=${d%%/*}
        if [ -z "$best" ] || [ "$d" -gt "$best" ]; then best=$d; fi
    done
    echo "$best"
}

# The major version Debian/Ubuntu's "postgresql" metapackage would install.
pg_candidate_major() {
    apt-cache depends postgresql 2>/dev/null \
        | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n1
}

missing=()
need_pg_lookup=0

if ! have python3; then
    missing+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

pg_major=$(pg_installed_major)
if [ -z "$pg_major" ]; then
    need_pg_lookup=1
    missing+=(postgresql postgresql-contrib)
elif [ ! -f "/usr/share/postgresql/$pg_major/extension/postgis.control" ]; then
    missing+=("postgresql-$pg_major-postgis-3")
fi

# NodeSource's nodejs ships npm itself and conflicts with Debian's npm package, so the
# commands are what we check, not the package names.
have node || missing+=(nodejs)
have npm || missing+=(npm)
have chromium || [ -x /usr/bin/chromium ] || missing+=(chromium)
# A real IMAP server for the mail-poll tests.
[ -x /usr/sbin/dovecot ] || missing+=(dovecot-imapd)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$check_only" = 1 ]; then
    echo "missing system packages: ${missing[*]}" >&2
    exit 1
fi

if [ "$(id -u)" != 0 ]; then
    if [ "$need_pg_lookup" = 1 ]; then
        missing+=("postgresql-<major>-postgis-3 (the major version of the postgresql package)")
    fi
    echo "civicpin needs these system packages: ${missing[*]}" >&2
    echo "install them as root, for example:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]%% (*}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "installing system packages: ${missing[*]}"
apt-get update -q
if [ "$need_pg_lookup" = 1 ]; then
    pg_major=$(pg_candidate_major)
    if [ -z "$pg_major" ]; then
        echo "system-deps: apt has no 'postgresql' package on this machine" >&2
        exit 1
    fi
    missing+=("postgresql-$pg_major-postgis-3")
fi
apt-get install -y -q "${missing[@]}"

if ! have node || ! have npm; then
    echo "system-deps: node/npm still missing after apt-get install" >&2
    exit 1
fi
