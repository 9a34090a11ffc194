#!/usr/bin/env bash
# A bare Git repository of DAGs on this machine, for DAG bundles with a file:// URL (`make site`
# and the Molecule podman scenario use one).
#
#   tests/dag-repo.sh create REPO FILE...   create REPO with FILEs in its dags/ folder, one commit
#                                           on main (an existing REPO is left as it is)
#   tests/dag-repo.sh commit REPO FILE...   copy FILEs into dags/ and push one commit to main
#
# Both print the commit main points to afterwards, last. A team's own repository lives on its Git
# server instead; the installations then follow its URL (docs/dag-bundles-and-logs.md).
set -euo pipefail

usage() { echo "usage: $0 create|commit REPO FILE..." >&2; exit 2; }
[ $# -ge 3 ] || usage
action="$1" repo="$2"; shift 2
case "$action" in create|commit) ;; *) usage ;; esac
case "$repo" in /*) ;; *) echo "REPO must be an absolute path, got $repo" >&2; exit 2 ;; esac
for file in "$@"; do
    [ -f "$file" ] || { echo "no such file: $file" >&2; exit 2; }
done
if ! command -v git >/dev/null; then
    echo "[dag-repo] installing git"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
author=(-c user.name="failback.airflow" -c user.email="failback-airflow@localhost")

if [ "$action" = create ]; then
    if [ -e "$repo" ]; then
        echo "$repo exists: left as it is"
        git --git-dir="$repo" rev-parse main
        exit 0
    fi
    git init -q -b main "$work/tree"
    mkdir "$work/tree/dags"
    cp "$@" "$work/tree/dags/"
    git -C "$work/tree" add -A
    git -C "$work/tree" "${author[@]}" commit -q -m "DAGs of the local fleet"
    mkdir -p "$(dirname "$repo")"
    # Built beside, then renamed: a half-written repository is never at REPO.
    git clone -q --bare "$work/tree" "$repo.new.$$"
    git --git-dir="$repo.new.$$" remote remove origin
    mv -T "$repo.new.$$" "$repo"
    echo "created $repo"
else
    [ -d "$repo" ] || { echo "no repository at $repo (run: $0 create $repo FILE...)" >&2; exit 2; }
    git clone -q --branch main "$repo" "$work/tree"
    mkdir -p "$work/tree/dags"
    cp "$@" "$work/tree/dags/"
    git -C "$work/tree" add -A
    if git -C "$work/tree" diff --cached --quiet; then
        echo "nothing to commit: $repo has these files already"
    else
        git -C "$work/tree" "${author[@]}" commit -q -m "Update $(for f in "$@"; do basename "$f"; done | paste -sd' ')"
        git -C "$work/tree" push -q origin main
        echo "committed to $repo"
    fi
fi
git --git-dir="$repo" rev-parse main
