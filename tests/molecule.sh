#!/usr/bin/env bash
# Run the collection's Molecule scenarios (extensions/molecule/<name>), as `make molecule` does,
# and, in a lane, a make target (`make:integration-tests`), as `make test` does.
#
#   tests/molecule.sh podman,docker+drills kubernetes
#   tests/molecule.sh make:checks,make:integration-tests,podman,docker+drills kubernetes
#
# Each argument is one step, run after the previous one ended. A step written `a+b` runs the
# lanes a and b at the same time: every line they print carries the scenario's name, and the
# step fails when either fails (both are always waited for, so none is left running). A lane
# written `a,c` runs a, then c (not c when a failed). Scenarios
# that can share the machine must not share ports, directories, compose projects or units: the
# drills (ports 8095-8096, /opt/failback-drills, projects drills-*) spend most of their time
# waiting for scheduled intervals, so they run beside the Podman scenario (ports 8091-8092,
# /opt/failback-molecule, projects molecule-server-N) and the Docker one (port 8093,
# /opt/failback-molecule-docker, project molecule-server-docker, Docker's engine). All build the
# local images first; build.sh serialises that with a lock. The integration tests share nothing
# with them either (their installations live in temporary directories, on ports they choose free,
# in projects of their own), so `make test` runs the checks, the integration tests and the Podman
# and Docker scenarios in one lane while the drills run in the other from the start.
#
# The kubernetes scenario needs a real cluster: without KUBECONFIG it is reported as skipped,
# never as passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MOLECULE="${MOLECULE:-$PWD/.venv/bin/molecule}"

run_one() {
    local scenario="$1"
    if [[ "$scenario" == make:* ]]; then
        local began=$SECONDS rc=0
        echo "=== make ${scenario#make:}"
        make --no-print-directory "${scenario#make:}" || rc=$?
        echo "=== make ${scenario#make:}: rc=$rc after $(( (SECONDS - began) / 60 )) min $(( (SECONDS - began) % 60 )) s"
        return "$rc"
    fi
    if [ "$scenario" = kubernetes ] && [ -z "${KUBECONFIG:-}" ]; then
        echo "SKIPPED molecule scenario 'kubernetes': KUBECONFIG is not set (see docs/kubernetes.md)"
        return 0
    fi
    if [ ! -f "extensions/molecule/$scenario/molecule.yml" ]; then
        echo "no Molecule scenario '$scenario' (extensions/molecule/$scenario/molecule.yml)" >&2
        return 2
    fi
    local began=$SECONDS rc=0
    echo "=== molecule test -s $scenario"
    "$MOLECULE" test -s "$scenario" || rc=$?
    echo "=== molecule test -s $scenario: rc=$rc after $(( (SECONDS - began) / 60 )) min $(( (SECONDS - began) % 60 )) s"
    return "$rc"
}

failed=()
for step in "$@"; do
    IFS=+ read -r -a together <<< "$step"
    if [ "${#together[@]}" -eq 1 ] && [[ "$step" != *,* ]]; then
        run_one "$step" || failed+=("$step")
    else
        pids=()
        for lane in "${together[@]}"; do
            # Each line is prefixed as it comes (sed -u), so a stop half-way still shows it all.
            (
                set -o pipefail
                IFS=, read -r -a sequence <<< "$lane"
                for scenario in "${sequence[@]}"; do
                    run_one "$scenario" 2>&1 | sed -u "s/^/[${scenario#make:}] /" || exit 1
                done
            ) &
            pids+=("$!")
        done
        for i in "${!pids[@]}"; do
            wait "${pids[$i]}" || failed+=("${together[$i]}")
        done
    fi
    if [ "${#failed[@]}" -gt 0 ]; then
        echo "FAILED molecule scenario(s): ${failed[*]}" >&2
        exit 1
    fi
done
echo "molecule: every scenario of '$*' passed (or was reported as skipped)"
