#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: placement_publish
short_description: Publish a placement map to an installation, or read what it holds
version_added: "0.2.0"
description:
  - Publishes a placement map to an installation's map file in one step, reads what the installation holds, or fences
    the installation so that it runs no task (O(state)).
  - The collection's playbooks publish revoke first across the fleet (see P(failback.airflow.placement_publish_plan#filter));
    this module is the step on one installation.
author:
  - Failback Airflow Maintainers (@failback)
requirements:
  - PyYAML on the host that runs the module.
extends_documentation_fragment:
  - ansible.builtin.files
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
options:
  path:
    description:
      - The installation's map file (its directory is mounted into the Airflow containers).
      - A missing directory is created (mode C(0755)) with O(state=present) and O(state=fenced).
    type: path
    required: true
  state:
    description:
      - V(present) publishes O(content) under a lock on the map's directory - validate the map, compare it with the
        generation the installation holds (an older map never replaces a newer one, nor a different map of the same
        generation), replace the file atomically, lift the fence marker next to it (O(lift_fence)) - and returns what
        the installation holds afterwards. A file that holds no valid map is replaced, with a warning.
      - V(read) returns what the installation holds (map, generation, fence) and changes nothing.
      - V(fenced) writes the fence marker (every task of every DAG fails there until the current map is published
        again), for example on an old owner whose map could not be replaced. An existing marker is kept.
    type: str
    choices: [present, read, fenced]
    default: present
  content:
    description: O(state=present) - the map to publish, as YAML text or data. Required with O(state=present).
    type: raw
  installations:
    description: The known installation names; every owner in O(content) must be one of them.
    type: list
    elements: str
  lift_fence:
    description: O(state=present) - remove the fence marker once the installation holds the map.
    type: bool
    default: true
  reason:
    description: O(state=fenced) - why, recorded in the marker.
    type: str
    default: fenced by the controller
attributes:
  check_mode:
    support: partial
    details:
      - Reports what would be written and whether the fence would change, and writes nothing.
      - A change of only the owner, group or mode of the map file is not predicted in check mode.
  diff_mode:
    support: full
    details:
      - The map text before and after, with the fence marker as a comment (maps hold no secrets). O(state=read) returns no diff.
      - Changes of the file's owner, group or mode are not part of the diff.
  idempotent:
    support: full
    details:
      - Publishing the map an installation holds, or fencing a fenced installation, changes nothing.
  platform:
    support: full
    platforms: posix
    details:
      - Runs on any POSIX host with Python and PyYAML (it locks the map's directory with C(flock)).
notes:
  - Readers (the guard) need no lock, the file is replaced by a rename. A symbolic link as map file is followed.
  - A replaced map file keeps its mode and a new one gets C(0644), unless O(mode) is given (the umask is not used).
seealso:
  - module: failback.airflow.dag_placement
"""

EXAMPLES = r"""
- name: Publish the controller's map to a server installation
  failback.airflow.placement_publish:
    path: /opt/failback-airflow/server-1/placement/placement.yml
    content: "{{ lookup('ansible.builtin.file', inventory_dir ~ '/placement.yml') }}"
    installations: "{{ groups['airflow_installations'] }}"
    owner: "0"
    group: "0"
    mode: "0644"
  register: published

- name: Read what it holds
  failback.airflow.placement_publish:
    path: /opt/failback-airflow/server-1/placement/placement.yml
    state: read
  register: held
"""

RETURN = r"""
exists:
  description: Whether the installation holds a map (after the task).
  returned: always
  type: bool
  sample: true
generation:
  description: Generation the installation holds after the task (V(null) without a map).
  returned: always
  type: int
  sample: 7
map:
  description: The map the installation holds after the task, as data (V(null) without a map).
  returned: always
  type: dict
  sample: {"@failback": {"generation": 7}, "sales_daily": "server-2"}
previous_generation:
  description: Generation it held before the task.
  returned: always
  type: int
  sample: 6
written:
  description: Whether the map file was (or in check mode would be) replaced.
  returned: always
  type: bool
  sample: true
fenced:
  description: The fence marker's text after the task, or V(null) when the installation is not fenced.
  returned: always
  type: str
  sample: null
fence_changed:
  description: Whether the fence was (or in check mode would be) lifted or written.
  returned: always
  type: bool
  sample: true
invalid:
  description: Why the file holds no valid map (the guard fails closed there), or V(null).
  returned: always
  type: str
  sample: null
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.failback.airflow.plugins.module_utils import placement


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "read", "fenced"]),
            content=dict(type="raw"),
            installations=dict(type="list", elements="str"),
            lift_fence=dict(type="bool", default=True),
            reason=dict(type="str", default="fenced by the controller"),
        ),
        required_if=[("state", "present", ("content",))],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not placement.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(placement.YAML_IMPORT_ERROR))
    params = module.params
    path = params["path"]
    directory = os.path.dirname(os.path.realpath(path))
    file_args = module.load_file_common_arguments(params)
    result = dict(changed=False, path=path)
    try:
        if params["state"] == "read":
            if not os.path.isdir(directory):
                module.exit_json(exists=False, generation=None, map=None, previous_generation=None, written=False,
                                 fenced=None, fence_changed=False, invalid=None, **result)
            outcome = placement.publish_file(path, None, check_mode=True)
        else:
            new = placement.as_map(params["content"], params["installations"], "content") if params["state"] == "present" else None
            if not os.path.isdir(directory):
                result["changed"] = True
                if module.check_mode:
                    text = placement.dump_map(new) if new is not None else ""
                    module.exit_json(exists=new is not None, generation=new.generation if new else None,
                                     map=new.to_data() if new else None, previous_generation=None, written=new is not None,
                                     fenced=None if new else "(would be fenced)", fence_changed=new is None,
                                     invalid=None, diff=dict(before="", after=text), **result)
                os.makedirs(directory)
                module.set_fs_attributes_if_different(dict(file_args, path=directory, mode="0755"), False)
            # File attributes go onto the temporary file before the rename: a bad mode or owner fails
            # with the installation's map untouched.
            outcome = placement.publish_file(
                path, new, params["installations"], lift_fence=params["lift_fence"] and params["state"] == "present",
                fence_reason=params["reason"] if params["state"] == "fenced" else None,
                prepare=lambda tmp: module.set_fs_attributes_if_different(dict(file_args, path=tmp), False),
                check_mode=module.check_mode)
    except placement.PlacementError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot publish the placement map %s: %s" % (path, exc), **result)
    before, after = outcome["before"], outcome["after"]
    changed = result["changed"] or outcome["written"] or outcome["fence_changed"]
    if params["state"] == "present" and os.path.exists(path) and not module.check_mode:
        changed = module.set_fs_attributes_if_different(dict(file_args, path=path), changed)
    result.update(
        changed=changed, exists=after is not None, generation=after.generation if after else None,
        map=after.to_data() if after else None, previous_generation=before.generation if before else None,
        written=outcome["written"], fenced=outcome["fenced"], fence_changed=outcome["fence_changed"],
        invalid=outcome["invalid"] if not outcome["written"] else None,
    )
    if outcome["invalid"] and outcome["written"]:
        module.warn("%s held no valid map (%s); replaced" % (path, outcome["invalid"]))
    if module._diff and params["state"] != "read":
        result["diff"] = dict(
            before=(placement.dump_map(before) if before else "") + ("# fenced: %s\n" % outcome["fenced_before"]
                                                                     if outcome["fenced_before"] else ""),
            after=(placement.dump_map(after) if after else "") + ("# fenced: %s\n" % outcome["fenced"]
                                                                  if outcome["fenced"] else ""),
            before_header="%s (generation %s)" % (path, before.generation if before else "none"),
            after_header="%s (generation %s)" % (path, after.generation if after else "none"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
