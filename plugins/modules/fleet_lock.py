#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_lock
short_description: Lock the controller's placement map for the rest of this playbook run
version_added: "0.2.0"
description:
  - Takes the fleet lock, an exclusive lock next to the controller's placement map, so that only one C(site.yml),
    C(publish.yml) or C(failover.yml) changes or publishes a map at a time.
  - The lock lasts as long as the C(ansible-playbook) run that took it. Another run is refused with a message that
    names the holder.
author:
  - Failback Airflow Maintainers (@failback)
options:
  path:
    description:
      - The controller's placement map. The lock file is created next to its real path (C(placement.yml) gets
        C(placement.lock)), so every inventory that links to one map shares one lock.
      - The directory of the map must exist.
    type: path
    required: true
  playbook:
    description:
      - Name of the playbook recorded in the lock.
      - When empty, the last C(.yml) or C(.yaml) argument of the C(ansible-playbook) command line is used.
    type: str
    default: ""
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.flow
  - failback.airflow.attributes.platform
attributes:
  action:
    support: full
    details:
      - The module is an action plugin only. It runs on the controller, whatever the host of the task; nothing is sent
        to the managed hosts.
  async:
    support: none
  check_mode:
    support: full
    details:
      - In check mode the lock is not taken, so a check run does not keep other runs out; RV(holder) is the record in the
        lock file.
  diff_mode:
    support: none
    details:
      - No diff is returned.
  idempotent:
    support: full
    details:
      - The module never reports a change, also when it takes the lock. Taking the lock again in the same run returns
        the current holder.
  platform:
    support: full
    platforms: posix
    details:
      - Needs C(flock) and C(/proc) on the controller (Linux); keep the controller's map on a local filesystem.
notes:
  - A small holder process keeps the lock and exits with the run, however the run ends (success, failure, Ctrl-C or
    C(kill -9)), and at the latest after 12 hours.
  - The refusal names the holder - user, host, process, playbook, the extra vars it was given (by name only) and since
    when. When the holder is a run on this machine that has just ended, the module waits a few seconds for its lock
    to be released.
  - C(flock) is not reliable on every network filesystem; keep the controller's map on a local disk.
seealso:
  - module: failback.airflow.placement_failover
"""

EXAMPLES = r"""
- name: Lock the controller's map for this run
  failback.airflow.fleet_lock:
    path: "{{ inventory_dir }}/placement.yml"
    playbook: failover.yml
  run_once: true
"""

RETURN = r"""
path:
  description: The lock file.
  returned: always
  type: str
  sample: /srv/inventory/placement.lock
holder:
  description:
    - The record of the run that holds the lock (this run when it was taken).
    - In check mode, the record in the lock file (the last run that took the lock, which may have ended), or V(null)
      when there is none.
  returned: always
  type: dict
  sample: {holder: "alice@ctl", host: ctl, pid: 4711, playbook: failover.yml,
           command: "ansible-playbook playbooks/failover.yml -e failover_to=...", since: "2026-12-01T10:00:00Z"}
"""
