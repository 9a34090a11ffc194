#!/usr/bin/env bash
# Figures of the server installations on this machine (the local inventory, Podman):
#   1. bare host (images present) -> every service healthy: site.yml on server-1 alone, from no
#      installation at all (its directory, containers and database removed first)
#   2. idempotent re-run of site.yml on server-1 (and its number of changes, which must be 0)
#   3. memory of the running installation: `podman stats` summed over its containers
#   4. failover.yml wall time with two servers (server-2 installed too; server-1 -> server-2
#      and back), on a copy of the placement map so the repository's map is left alone
# Usage: benchmarks/server_figures.sh   (after `make setup host-setup`; takes ~10 minutes)
# It removes the local installations server-1 and server-2 (their data is deleted) before and
# after: they end with a map newer than the repository's, so run `make site` again afterwards.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PATH="$REPO/.venv/bin:$PATH" ANSIBLE_CONFIG="$REPO/ansible.cfg" CONTAINERS_CONF="$REPO/tests/containers.conf"
INVENTORY=inventories/local/hosts.yml
WORK="$(mktemp -d)"
cleanup() {
    echo "== removing the local installations"
    ansible-playbook -i "$INVENTORY" "$WORK/absent.yml" > /dev/null || true
    rm -rf /opt/failback-airflow/server-1 /opt/failback-airflow/server-2 "$WORK"
}
cp inventories/local/placement.yml "$WORK/placement.yml"
MAP=(-e "airflow_placement_map_src=$WORK/placement.yml")

cat > "$WORK/absent.yml" <<'PLAY'
- name: Remove the local installations and their data
  hosts: airflow_servers
  gather_facts: false
  tasks:
    - name: Remove the installation
      ansible.builtin.include_role:
        name: failback.airflow.airflow_server
      vars:
        airflow_server_state: absent
        airflow_server_remove_data: true
        airflow_server_install_prerequisites: false
PLAY

seconds() { python3 -c 'import time; print("%.1f" % time.monotonic())'; }
timed() {  # timed LABEL CMD... : runs CMD, prints its wall time, keeps its output in $WORK/LABEL.log
    local label="$1"; shift
    local start end
    start="$(seconds)"
    "$@" > "$WORK/$label.log" 2>&1 || { tail -n 40 "$WORK/$label.log"; exit 1; }
    end="$(seconds)"
    python3 -c "print('%-46s %6.1f s' % ('$label', $end - $start))"
}

echo "== removing the local installations"
ansible-playbook -i "$INVENTORY" "$WORK/absent.yml" > /dev/null
rm -rf /opt/failback-airflow/server-1 /opt/failback-airflow/server-2
trap cleanup EXIT

echo "== figures"
timed "bare host -> healthy (site.yml, server-1)" ansible-playbook -i "$INVENTORY" playbooks/site.yml --limit server-1 "${MAP[@]}"
timed "idempotent re-run (site.yml, server-1)" ansible-playbook -i "$INVENTORY" playbooks/site.yml --limit server-1 "${MAP[@]}"
grep -E '^server-1 +:' "$WORK/idempotent re-run (site.yml, server-1).log" | sed 's/^/    /'
sleep 30  # let the installation settle before measuring its memory
podman stats --no-stream --format '{{.Name}} {{.MemUsage}}' | grep '^failback-server-1_' | python3 -c '
import sys
units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
total = 0
for line in sys.stdin:
    name, used = line.split()[0], line.split()[1]
    number = used.rstrip("".join(sorted(set("".join(units)))))
    unit = used[len(number):]
    total += float(number) * units[unit]
    print("    %-44s %s" % (name, used))
print("%-46s %6.2f GB" % ("memory of server-1 (podman stats, sum)", total / 1e9))
'
timed "install server-2 (site.yml, server-2)" ansible-playbook -i "$INVENTORY" playbooks/site.yml --limit server-2 "${MAP[@]}"
timed "failover.yml server-1 -> server-2" ansible-playbook -i "$INVENTORY" playbooks/failover.yml "${MAP[@]}" \
    -e failover_from=server-1 -e failover_to=server-2
timed "failover.yml server-2 -> server-1" ansible-playbook -i "$INVENTORY" playbooks/failover.yml "${MAP[@]}" \
    -e failover_from=server-2 -e failover_to=server-1
