#!/usr/bin/env bash
# Build the container images that the tests and the local inventory use, with no registry:
#
#   localhost/failback/debian:bookworm   Debian rootfs from debootstrap, `podman import`ed
#   localhost/failback/postgres:15       PostgreSQL 15 from Debian's postgresql-15
#   localhost/failback/airflow:3.3.2     Airflow 3.3.2 via pip, pinned by tests/airflow/constraints.txt
#
# Usage: tests/images/build.sh [--force] [--archive DIR]
#   --force        rebuild even when the images are up to date
#   --archive DIR  also write DIR/airflow.tar, DIR/postgres.tar and DIR/debian.tar (docker-archive
#                  format, for `docker load` or the airflow_server role's airflow_server_image_archives)
#
# Each image carries the label failback.inputs, a hash of what it was built from; an image whose
# label differs from the current inputs is rebuilt, anything else is left alone (idempotent).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/tests/images"
CACHE="$REPO/.cache/images"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO/tests/containers.conf}"

BASE_IMAGE="${FAILBACK_BASE_IMAGE:-localhost/failback/debian:bookworm}"
POSTGRES_IMAGE="${FAILBACK_POSTGRES_IMAGE:-localhost/failback/postgres:15}"
AIRFLOW_IMAGE="${FAILBACK_AIRFLOW_IMAGE:-localhost/failback/airflow:3.3.2}"
SUITE=bookworm
# Bump to rebuild the base image (and everything on top of it) after changing build_base().
BASE_REVISION=1

force=false
archive_dir=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --force) force=true ;;
        --archive) archive_dir="${2:?--archive needs a directory}"; shift ;;
        -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[images] %s\n' "$*"; }

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing; run tests/setup-host.sh" >&2; exit 1; }
done

mkdir -p "$CACHE/pip"
exec 9>"$CACHE/build.lock"
flock -w 1800 9 || { echo "build.sh: another build holds $CACHE/build.lock" >&2; exit 1; }

# The host's apt mirror (first URI of the bookworm sources), else deb.debian.org.
mirror() {
    local uri
    uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    if [ -z "$uri" ]; then
        uri="$(awk '$1 == "deb" && $0 ~ /bookworm/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

label_of() {
    podman image inspect --format '{{ index .Labels "failback.inputs" }}' "$1" 2>/dev/null || true
}

id_of() {
    podman image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true
}

hash_of() {
    # Content hash of files plus extra strings (e.g. the id of the parent image).
    { for f in "$@"; do if [ -f "$f" ]; then cat "$f"; else printf '%s\n' "$f"; fi; done; } | sha256sum | cut -c1-16
}

build_base() {
    local inputs
    inputs="$(hash_of "$SUITE" minbase "$BASE_REVISION")"
    if ! $force && [ "$(label_of "$BASE_IMAGE")" = "$inputs" ]; then
        log "$BASE_IMAGE is up to date"
        return
    fi
    local root="$CACHE/rootfs-$SUITE"
    rm -rf "$root"
    log "debootstrap $SUITE from $(mirror) (about 30 s)"
    debootstrap --variant=minbase "$SUITE" "$root" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
    log "podman import -> $BASE_IMAGE"
    tar -C "$root" --numeric-owner -c . | podman import \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "LABEL failback.inputs=$inputs" \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$root"
}

build_image() {
    local image="$1" dir="$2"; shift 2
    local inputs
    inputs="$(hash_of "$(id_of "$BASE_IMAGE")" "$dir"/* "$@")"
    if ! $force && [ "$(label_of "$image")" = "$inputs" ]; then
        log "$image is up to date"
        return
    fi
    local context
    context="$(mktemp -d)"
    cp "$dir"/* "$context"/
    for extra in "$@"; do cp "$extra" "$context"/; done
    log "podman build -> $image"
    if ! podman build --quiet --pull=never --layers \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label "failback.inputs=$inputs" \
        --volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro \
        --volume "$CACHE/pip:/root/.cache/pip" \
        --tag "$image" -f "$context/Containerfile" "$context" >"$CACHE/build-$(basename "$dir").log" 2>&1; then
        tail -n 40 "$CACHE/build-$(basename "$dir").log" >&2
        rm -rf "$context"
        exit 1
    fi
    rm -rf "$context"
}

save_archive() {
    local image="$1" file="$2"
    local id
    id="$(id_of "$image")"
    if [ -f "$file" ] && [ "$(cat "$file.id" 2>/dev/null)" = "$id" ]; then
        log "$file is up to date"
        return
    fi
    log "podman save $image -> $file"
    rm -f "$file" "$file.id"
    podman save --format docker-archive -o "$file.tmp" "$image" >/dev/null
    mv "$file.tmp" "$file"
    echo "$id" > "$file.id"
}

start=$SECONDS
build_base
build_image "$POSTGRES_IMAGE" "$HERE/postgres"
build_image "$AIRFLOW_IMAGE" "$HERE/airflow" "$REPO/tests/airflow/constraints.txt"
# Untagged leftovers of earlier builds of these images (and only those) are dropped.
podman image prune --force --filter label=failback.inputs >/dev/null
if [ -n "$archive_dir" ]; then
    mkdir -p "$archive_dir"
    save_archive "$POSTGRES_IMAGE" "$archive_dir/postgres.tar"
    save_archive "$AIRFLOW_IMAGE" "$archive_dir/airflow.tar"
    save_archive "$BASE_IMAGE" "$archive_dir/debian.tar"
fi
log "images ready in $((SECONDS - start)) s"
