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
  - Takes the fleet lock, an exclusive lock next to the controller's placement map (C(placement.yml) gets
    C(placement.lock) beside its real path), so that only one C(site.yml), C(publish.yml) or C(failover.yml)
    changes or publishes a map at a time.
  - The lock lives as long as the C(ansible-playbook) run that took it and ends with it, however the run ends
    (success, failure, Ctrl-C or C(kill -9)); a small holder process keeps it and exits with the run.
  - A second run is refused with a message that names the holder (user, host, process, playbook, the extra vars
    it was given by name only, and since when). Taking the lock again in the same run changes nothing.
  - Runs on the controller only; nothing is sent to the managed hosts.
author:
  - Failback Airflow Maintainers (@failback)
options:
  path:
    description: The controller's placement map; the lock file is created next to its real path.
    type: path
    required: true
  playbook:
    description: Name of the playbook recorded in the lock (default the first C(.yml) of the command line).
    type: str
    default: ""
attributes:
  action:
    support: full
    description: Implemented as an action plugin; it runs on the controller.
  check_mode:
    support: full
    description: In check mode the lock is not taken (a check run changes nothing); the current holder is returned.
  diff_mode:
    support: none
    description: No diff is returned.
  idempotent:
    support: full
    description: Taking the lock twice in one run is a no-op; the lock is never reported as a change.
  platform:
    support: full
    platforms: posix
    description: POSIX hosts.
    details: Needs C(flock) and C(/proc) on the controller (Linux); keep the controller's map on a local filesystem.
notes:
  - C(flock) is not reliable on every network filesystem; keep the controller's map on a local disk.
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
  description: The record of the run that holds the lock (this run when it was taken).
  returned: always
  type: dict
  sample: {holder: "alice@ctl", host: ctl, pid: 4711, playbook: failover.yml,
           command: "ansible-playbook playbooks/failover.yml -e failover_to=...", since: "2026-12-01T10:00:00Z"}
"""
