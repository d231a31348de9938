#!/usr/bin/env bash
# `make image-check`: build the Dockerfile's image and run it as production would, with no
# image registry: podman builds it on a local Debian base made with debootstrap.
#
#  1. Debian's podman, buildah, debootstrap, runc and slirp4netns (installed when missing).
#  2. A `debootstrap --variant=minbase bookworm` root with python3, python3-venv and a venv
#     first on PATH, imported with `podman import` as the local base (BASE_IMAGE).
#  3. `podman build --format docker` (the OCI format drops HEALTHCHECK), pip trusting the
#     host's CA bundle (mounted read-only).
#  4. The container as the README's production example runs it: JWT checking on (a
#     trusted-clients file mounted read-only, keys from `rls-cds dev-keys`), a named volume
#     for the data directory, a read-only root with a tmpfs /tmp, published on 127.0.0.1.
#     Checked: /healthz, discovery, 401 without a token, a patient-view card with one,
#     `podman healthcheck run`, uid 10001, the store written to the volume, and a clean exit
#     (status 0) on `podman stop`.
#
# podman's storage, configuration and every file live in one temporary directory, removed
# at the end with the container, volume and images: nothing is left running or changed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cli="$repo/.venv/bin/rls-cds"
started=$(date +%s)
say() { printf 'image-check: %s\n' "$*"; }
fail() { printf 'image-check: FAILED: %s\n' "$*" >&2; exit 1; }

# --- 1. the tools ---------------------------------------------------------------------------
tools=(podman buildah debootstrap runc slirp4netns)
missing=()
for tool in "${tools[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || fail "needs Debian's ${missing[*]} (apt-get install podman buildah debootstrap runc slirp4netns uidmap), or root to install them"
    say "installing Debian's podman, buildah, debootstrap, runc, slirp4netns"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq podman buildah debootstrap runc slirp4netns uidmap >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get install -y -qq podman buildah debootstrap runc slirp4netns uidmap >/dev/null; }
fi
[ "$(id -u)" = 0 ] || fail "debootstrap and rootful podman need root"

work=$(mktemp -d "${TMPDIR:-/tmp}/rls-cds-image.XXXXXX")
container=rls-cds-check-$$
volume=rls-cds-data-$$
# A private containers.conf: runc (crun refuses this machine's hybrid cgroups), fixed
# ulimits (the defaults copy rlimits the runtime refuses), no systemd (healthchecks are run
# by hand below), podman's storage in $work.
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[network]
network_config_dir = "$work/networks"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$work/containers.conf"
pod() { podman --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
    pod rm --force --time 5 "$container" >/dev/null 2>&1 || true
    pod volume rm --force "$volume" >/dev/null 2>&1 || true
    pod rmi --all --force >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- 2. the local base ----------------------------------------------------------------------
say "debootstrap bookworm (minbase, python3, python3-venv)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
chroot "$work/rootfs" python3 -m venv /opt/venv
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -cf "$work/base.tar" .
rm -rf "$work/rootfs"
pod import --quiet \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/base.tar" localhost/rls-cds-base:bookworm >/dev/null
rm -f "$work/base.tar"

# --- 3. the image ---------------------------------------------------------------------------
version=$("$repo/.venv/bin/python" -c 'import cds_service; print(cds_service.__version__)')
say "podman build (rls-cds $version)"
build_started=$(date +%s)
pod build --quiet --format docker --network host \
    --build-arg BASE_IMAGE=localhost/rls-cds-base:bookworm --build-arg VERSION="$version" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -t localhost/rls-cds:check "$repo" >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log" >&2; fail "podman build"; }
build_s=$(( $(date +%s) - build_started ))
label=$(pod image inspect localhost/rls-cds:check --format '{{index .Labels "org.opencontainers.image.version"}}')
[ "$label" = "$version" ] || fail "image label version is '$label', not $version"
size=$(pod image inspect localhost/rls-cds:check --format '{{.Size}}')

# --- 4. run it as production does -------------------------------------------------------------
port=$("$repo/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
iss="https://ehr.example.org/image-check"
"$cli" dev-keys --out "$work/keys" --iss "$iss" >/dev/null
chmod 0644 "$work/keys/trusted-clients.json"
pod volume create "$volume" >/dev/null
run_started=$(date +%s.%N)
pod run --detach --name "$container" --read-only --tmpfs /tmp --health-interval disable \
    --network slirp4netns:port_handler=slirp4netns -p "127.0.0.1:$port:8080" \
    -v "$work/keys/trusted-clients.json:/etc/rls-cds/trusted-clients.json:ro" \
    -v "$volume:/home/cds/var" \
    -e RLS_CDS_TRUSTED_CLIENTS=/etc/rls-cds/trusted-clients.json \
    -e RLS_CDS_PUBLIC_BASE_URL="$base" \
    -e RLS_CDS_WORKERS=2 \
    localhost/rls-cds:check >/dev/null 2>"$work/run.err" ||
    { cat "$work/run.err" >&2; fail "podman run"; }

for _ in $(seq 100); do
    curl -fsS -m 2 "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS -m 5 "$base/readyz" >/dev/null || { pod logs "$container" >&2; fail "/readyz never answered 200"; }
ready_s=$(awk -v a="$run_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

[ "$(curl -fsS -m 5 "$base/healthz")" = '{"status":"ok"}' ] || fail "/healthz"
discovery=$(curl -fsS -m 5 "$base/cds-services")
for id in rls-secondary-causes rls-order-select rls-order-sign; do
    grep -q "\"$id\"" <<<"$discovery" || fail "discovery lacks $id"
done
grep -q "DEMO MODE" <<<"$discovery" && fail "the production run is in demo mode"
hook="$base/cds-services/rls-secondary-causes"
request="$repo/fhir_fixtures/requests/patient-view-rls-low-ferritin.json"
status=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H 'Content-Type: application/json' --data @"$request" "$hook")
[ "$status" = 401 ] || fail "a hook call without a token answered $status, not 401"
token=$("$cli" dev-token --key "$work/keys/private-key.pem" --iss "$iss" --aud "$hook")
answer=$(curl -fsS -m 10 -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    --data @"$request" "$hook") || fail "the hook with a valid token failed"
grep -q '"code":"iron-below-target"' <<<"$answer" || fail "no iron-below-target card: $answer"
pod healthcheck run "$container" >/dev/null || fail "podman healthcheck run"
uid=$(pod exec "$container" id -u)
[ "$uid" = 10001 ] || fail "the service runs as uid $uid, not 10001"
pod exec "$container" test -s /home/cds/var/rls-cds.sqlite3 || fail "the store is not on the data volume"

# (podman without systemd reports, harmlessly, that it has no healthcheck timer to remove)
pod stop --time 25 "$container" >/dev/null 2>"$work/stop.err" || { cat "$work/stop.err" >&2; fail "podman stop"; }
exit_code=$(pod inspect "$container" --format '{{.State.ExitCode}}')
[ "$exit_code" = 0 ] || { pod logs "$container" | tail -20 >&2; fail "exit status $exit_code on stop"; }
pod logs "$container" 2>&1 | grep -q "Shutting down: Master" || fail "gunicorn did not shut down cleanly"

say "ok: image $(( size / 1000000 )) MB, build ${build_s} s, run to /readyz ${ready_s} s;" \
    "healthz, discovery, 401 without token, card with token, healthcheck, uid 10001," \
    "store on the volume, exit 0 on stop; $(( $(date +%s) - started )) s in all"
