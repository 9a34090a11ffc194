#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: placement_guard_cache
short_description: Hand a server's guard the map its authority holds, so a failover need not wait for its lease
version_added: "0.6.0"
description:
  - With O(url) an C(s3://) or http(s) map (C(airflow_placement_source) type V(s3)), every guard of a server keeps
    what it last read from the authority in a cache directory that all of the server's containers share, and decides
    with it for at most the refresh, then asks again. An old owner the controller can reach, but that may be cut off
    from the authority, would go on deciding with the map before a failover's revoke stage until its lease ran out.
  - This module writes the revoke stage (O(content), exactly what the authority holds now) into that cache as
    confirmed now, on the server's own clock. From then on every guard there that is not in the middle of a
    refresh decides with it, and one that is holds the map before for at most one refresh. So C(failover.yml) grants
    one refresh after this write instead of the whole lease plus the clock margin.
  - It never creates the cache directory; the C(airflow_server) role does, owned by the containers' user and mounted
    into every Airflow container. A directory that is missing, is a link, or that others may write is reported with
    RV(confirmed=false) and RV(reason), and nothing is written; the failover then waits for the lease.
author:
  - Failback Airflow Maintainers (@failback)
requirements:
  - PyYAML on the host that runs the module.
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written and RV(confirmed) is V(false).
  diff_mode:
    support: none
    details:
      - The map is the authority's; no diff is returned.
  idempotent:
    support: none
    details:
      - Every run writes a new confirmation time; that is its purpose.
  platform:
    support: full
    platforms: posix
options:
  dir:
    description:
      - The guard's map cache directory on the server (the C(airflow_server) role's C(placement-cache), which its
        containers read as E(FAILBACK_PLACEMENT_CACHE_DIR)).
      - Must be a directory (not a link) that only its owner may write; the file gets the directory's owner and
        group and mode C(0600), as the guard requires.
    type: path
    required: true
  url:
    description: The map's URL exactly as the guard reads it (E(FAILBACK_PLACEMENT_MAP)); it names the cache file.
    type: str
    required: true
  content:
    description:
      - The map the authority holds now (YAML text), normally the revoke stage a failover has just written there.
      - It must be a valid placement map; a bad one fails the task and nothing is written.
    type: str
    required: true
notes:
  - Safe only with a map the authority holds, because the guard treats the entry as confirmed at the authority now, and it
    refreshes from the authority after the refresh anyway.
  - A cache entry from a clock ahead of the guard's is never trusted by the guard; the time written here is the
    server's, so the controller's clock does not matter.
seealso:
  - module: failback.airflow.placement_authority
  - module: failback.airflow.placement_failover
"""

EXAMPLES = r"""
- name: Hand the old owner's guard the revoke stage
  failback.airflow.placement_guard_cache:
    dir: /opt/failback-airflow/placement-cache
    url: s3://fleet-maps/failback/placement.yml
    content: "{{ revoke_stage }}"
  register: confirmed
"""

RETURN = r"""
confirmed:
  description: Whether the entry was written; V(false) in check mode and when the directory is not usable.
  returned: always
  type: bool
  sample: true
confirmed_at:
  description: The server's time of the confirmation (epoch seconds), or V(null).
  returned: always
  type: float
  sample: 1796620000.5
path:
  description: The cache file.
  returned: always
  type: str
  sample: /opt/failback-airflow/placement-cache/0f3c2a9d4e1b7a6c5d8e9f0a1b2c3d4e.json
generation:
  description: The generation of O(content).
  returned: always
  type: int
  sample: 7
reason:
  description: Why nothing was written (V(null) when it was).
  returned: always
  type: str
  sample: the guard's cache directory /opt/failback-airflow/placement-cache does not exist
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.failback.airflow.plugins.module_utils import placement


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            url=dict(type="str", required=True),
            content=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    if not placement.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(placement.YAML_IMPORT_ERROR))
    params = module.params
    path = os.path.join(params["dir"], placement.guard_cache_name(params["url"]))
    try:
        pmap = placement.parse_map(params["content"], source="content")
    except placement.PlacementError as exc:
        module.fail_json(msg="%s; nothing was written" % exc, path=path)
    result = dict(path=path, generation=pmap.generation, confirmed=False, confirmed_at=None, reason=None)
    result["reason"] = placement.guard_cache_dir_problem(params["dir"])
    if result["reason"] is not None:
        module.exit_json(changed=False, **result)
    if module.check_mode:
        result["reason"] = "check mode: nothing was written"
        module.exit_json(changed=True, **result)
    owner = os.lstat(params["dir"])
    now = time.time()
    try:
        placement.atomic_write(path, json.dumps(placement.guard_cache_entry(params["content"], now), sort_keys=True),
                               mode=0o600, uid=owner.st_uid, gid=owner.st_gid)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write the guard's cache %s: %s; the failover must wait for the lease" % (path, exc),
                         **result)
    result.update(confirmed=True, confirmed_at=now)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
