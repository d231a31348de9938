#!/usr/bin/env bash
# What `make test` needs beyond Python and its packages. Installs what it can (Debian's
# Chromium, when run as root or with password-less sudo) and prints one line per
# prerequisite still missing, then fails; prints nothing more when all is there.
set -u

missing=0
lack() {
    printf 'make: missing prerequisite: %s\n' "$1" >&2
    missing=$((missing + 1))
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# Node.js 20.19+ and npm run the local FHIR server of the integration tests (tests/fhir_sandbox).
if ! command -v node >/dev/null 2>&1; then
    lack "Node.js 20.19 or newer (node), for the local FHIR server: install Node.js 20 (e.g. apt-get install nodejs npm)"
elif ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    lack "Node.js 20.19 or newer, for the local FHIR server; found $(node --version)"
fi
command -v npm >/dev/null 2>&1 || lack "npm, to install the local FHIR server's packages (tests/fhir_sandbox)"

# PostgreSQL and Redis on their usual ports: the store and replay-cache tests use them.
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
answers 5432 || lack "PostgreSQL on 127.0.0.1:5432 (trust authentication for user postgres), for the store tests: start it (e.g. pg_ctlcluster 15 main start)"
answers 6379 || lack "Redis on 127.0.0.1:6379, for the replay-cache tests: start it (e.g. redis-server --daemonize yes)"

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null 2>&1; then
    echo "make: installing Debian's chromium for the browser tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq chromium >/dev/null 2>&1 ||
        { as_root apt-get update -qq >/dev/null 2>&1 && as_root apt-get install -y -qq chromium >/dev/null 2>&1; }
fi
[ -x "$CHROMIUM" ] || lack "Chromium at $CHROMIUM, for the browser tests: install Debian's package (apt-get install chromium)"

# Debian's valgrind for the benchmarks' instruction counts (callgrind, benchmarks/instructions.py).
if ! command -v valgrind >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "make: installing Debian's valgrind for the benchmarks' instruction counts" >&2
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq valgrind >/dev/null 2>&1 ||
        { as_root apt-get update -qq >/dev/null 2>&1 && as_root apt-get install -y -qq valgrind >/dev/null 2>&1; }
fi
command -v valgrind >/dev/null 2>&1 || lack "valgrind, for the benchmarks' instruction counts: install Debian's package (apt-get install valgrind)"
command -v cc >/dev/null 2>&1 || lack "a C compiler (cc), for the benchmarks' callgrind helper: install Debian's gcc (apt-get install gcc)"

if [ "$missing" -gt 0 ]; then
    printf 'make: %d prerequisite(s) missing; see "Prerequisites" in README.md\n' "$missing" >&2
    exit 1
fi
