#!/usr/bin/env bash
# Prepare this machine for the server tests and for `make site` (idempotent: what is there is
# left alone). Needs root (CI machines and this project's build machines run as root) and the
# project's virtualenv (`make setup`).
#
#  1. The container engines through the airflow_server role's own package lists
#     (tests/setup-host.yml): Podman with the DNS component of its network backend and
#     podman-compose; Docker (docker.io) unless --engine podman.
#  2. What only the tests need: debootstrap (local images), systemd-analyze, git (the local DAG
#     repositories of `make site` and the tests, tests/dag-repo.sh) and, unless --site,
#     Debian's chromium (the fleet status page is rendered headless and its screenshot checked).
#  3. Docker Compose v2 for the docker Molecule scenario: Debian 12 has only docker-compose 1.29,
#     so the docker-compose 2.x package of Debian 13 (trixie) is downloaded through a
#     repository-local apt configuration (/etc/apt is not touched) and only its CLI plugin binary
#     is placed in /usr/local/lib/docker/cli-plugins/ (nothing is registered with dpkg).
#  4. The local container images (tests/images/build.sh): no registry is reachable here.
#
# Usage: tests/setup-host.sh [--engine podman] [--no-images] [--site]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache/setup-host"
TEST_PACKAGES=(debootstrap systemd git)
BROWSER_PACKAGES=(chromium)
COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
COMPOSE_SUITE=trixie

engines='["podman", "docker"]'
images=true
while [ "$#" -gt 0 ]; do
    case "$1" in
        --engine) [ "${2:-}" = podman ] || { echo "setup-host.sh: --engine takes podman" >&2; exit 2; }; engines='["podman"]'; shift ;;
        --no-images) images=false ;;
        --site) BROWSER_PACKAGES=() ;;
        *) echo "setup-host.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[setup-host] %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "setup-host.sh: run it as root (it installs Debian packages)" >&2
    exit 1
fi
[ -x "$REPO/.venv/bin/ansible-playbook" ] || { echo "setup-host.sh: run 'make setup' first" >&2; exit 1; }

mkdir -p "$REPO/.cache"
start=$SECONDS
log "container engines $engines through the airflow_server role (tests/setup-host.yml)"
ANSIBLE_CONFIG="$REPO/ansible.cfg" "$REPO/.venv/bin/ansible-playbook" -i localhost, "$REPO/tests/setup-host.yml" \
    -e "{\"setup_host_engines\": $engines}" > "$REPO/.cache/setup-host.log" 2>&1 \
    || { tail -n 40 "$REPO/.cache/setup-host.log" >&2; exit 1; }

missing=()
for package in "${TEST_PACKAGES[@]}" "${BROWSER_PACKAGES[@]}"; do
    if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # one apt-get at a time: make test runs this beside its other checks, which may install a package too
    flock /tmp/failback-apt.lock sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' \
        apt-install "${missing[@]}"
fi

if [[ "$engines" == *docker* ]]; then
    mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    if [ -x "$COMPOSE_PLUGIN" ] && "$COMPOSE_PLUGIN" version >/dev/null 2>&1; then
        log "Docker Compose v2 present ($("$COMPOSE_PLUGIN" version --short))"
    else
        log "fetching docker-compose from Debian $COMPOSE_SUITE (repository-local apt configuration)"
        apt_dir="$CACHE/apt-$COMPOSE_SUITE"
        rm -rf "$apt_dir"
        mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/deb"
        echo "deb $mirror $COMPOSE_SUITE main" > "$apt_dir/sources.list"
        apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
                  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
                  -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
        apt-get "${apt_opts[@]}" update -qq
        (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" download -qq docker-compose)
        dpkg-deb -x "$apt_dir"/deb/docker-compose_*.deb "$apt_dir/root"
        install -D -m 0755 "$apt_dir/root/usr/libexec/docker/cli-plugins/docker-compose" "$COMPOSE_PLUGIN"
        rm -rf "$apt_dir"
        log "installed $COMPOSE_PLUGIN ($("$COMPOSE_PLUGIN" version --short))"
    fi
fi
log "host packages ready in $((SECONDS - start)) s"

if $images; then
    bash "$REPO/tests/images/build.sh"
fi
