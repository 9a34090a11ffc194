#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dag_placement
short_description: Read, validate and change a DAG placement map
version_added: "0.1.0"
description:
  - Reads a DAG placement map (a YAML mapping of DAG id to installation name), validates it and optionally changes it.
    It assigns DAGs to installations (O(assign), O(remove)), moves DAGs from one installation to another (O(move)),
    sets the default owner (O(default_owner)), or publishes a complete map received from elsewhere (O(content)).
  - Every change of the placement increments the map's generation and records who made it and when.
  - A map whose handovers or kept runs lie in the future of the clock of the host that runs the module (by more than
    60 seconds), lack a time zone or lie outside the years 1970 to 9999 is refused, naming the file and the DAG - the
    collection never writes such a handover, and it would give runs to an installation that does not own them.
author:
  - Failback Airflow Maintainers (@failback)
requirements:
  - PyYAML on the host that runs the module.
extends_documentation_fragment:
  - ansible.builtin.files
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Computes the new map, RV(changed_dags) and the diff without writing.
  diff_mode:
    support: full
    details:
      - Shows the map text before and after, with its generation (maps hold no secrets).
      - Changes of the file's owner, group or mode are not part of the diff.
  idempotent:
    support: full
    details:
      - Assigning or moving DAGs to their current owner, or publishing the map the file holds, changes nothing, not
        even the generation.
  platform:
    support: full
    platforms: posix
    details:
      - Runs on any POSIX host with Python and PyYAML (it locks the map's directory with C(flock)).
options:
  path:
    description:
      - Path of the placement map file. Its directory must exist.
    type: path
    required: true
  installations:
    description:
      - The known installation names. When given, every owner in the map and every target must be one of them.
    type: list
    elements: str
  assign:
    description:
      - DAGs to (re)assign, as a mapping of DAG id to installation name.
    type: dict
  remove:
    description:
      - DAG ids whose entries are removed from the map (their owner falls back to the default owner, if any).
    type: list
    elements: str
  default_owner:
    description:
      - Set the default owner, used for DAGs not listed in the map.
      - Mutually exclusive with O(clear_default_owner=true).
    type: str
  clear_default_owner:
    description:
      - Remove the default owner, so DAGs not listed are skipped everywhere.
    type: bool
    default: false
  move:
    description:
      - Move DAGs to another installation (failover). The map must exist.
    type: dict
    suboptions:
      from:
        description:
          - Move every DAG owned by this installation (including the default owner role).
          - With O(move.dags), each listed DAG must be owned by it.
        type: str
      to:
        description:
          - The installation that becomes the owner.
        type: str
        required: true
      dags:
        description:
          - DAG ids to move. Without it, O(move.from) is required and all its DAGs move.
        type: list
        elements: str
  content:
    description:
      - Publish this complete map (YAML text) to O(path), for example the controller's map to an installation.
      - Fails if the file already holds a newer generation, or the same generation with a different placement, so a
        stale map can never overwrite a newer one.
      - Mutually exclusive with O(assign), O(remove), O(move) and O(default_owner).
    type: str
  query:
    description:
      - DAG ids whose owner to report in RV(owners).
    type: list
    elements: str
  create:
    description:
      - Create the file when it does not exist and a change is asked for. When V(false), a missing file is an error.
      - Without a change (for example with O(query) only), a missing file is always an error.
    type: bool
    default: true
  updated_by:
    description:
      - Who makes the change, recorded in the map. Defaults to C(user@host) of the process running the module.
    type: str
notes:
  - 'The plain flat form C(dag_1: "server-1.tld") is always accepted. Metadata is kept under the
    reserved key C(@failback) (generation, updated_at, updated_by, default), which no DAG id can use.'
  - The map's C(updated_at) is UTC in ISO 8601 with a C(Z) suffix.
  - Invalid input fails before anything is written, with a message naming the bad entry.
  - The file is written under a lock on its directory, after checking again that it did not change since it was read
    (with O(content), that it holds no newer map), and replaced atomically (temporary file, fsync, rename). A symbolic
    link as map file is followed. A replaced file keeps its mode and a new one gets C(0644), unless O(mode) is given
    (the umask is not used).
  - The placement rules live in the collection's C(placement) module_utils, shared with the guard that runs inside Airflow.
seealso:
  - module: failback.airflow.placement_publish
  - module: failback.airflow.placement_failover
  - name: Placement map format
    description: docs/placement-map.md in the collection.
    link: https://github.com/failback/airflow#the-placement-map
"""

EXAMPLES = r"""
- name: Assign two DAGs
  failback.airflow.dag_placement:
    path: /etc/failback/placement.yml
    installations: [server-1, server-2, k8s-prod]
    assign:
      sales_daily: server-1
      ml_training: k8s-prod

- name: Fail over every DAG of server-1 to server-2
  failback.airflow.dag_placement:
    path: /etc/failback/placement.yml
    installations: [server-1, server-2, k8s-prod]
    move:
      from: server-1
      to: server-2
  register: failover

- name: Move two DAGs only
  failback.airflow.dag_placement:
    path: /etc/failback/placement.yml
    move:
      dags: [sales_daily, sales_hourly]
      to: k8s-prod

- name: Publish the controller's map to an installation (never goes back in generation)
  failback.airflow.dag_placement:
    path: /opt/failback-airflow/server-1/placement/placement.yml
    content: "{{ lookup('ansible.builtin.file', 'placement.yml') }}"
    mode: "0644"

- name: Ask who owns a DAG
  failback.airflow.dag_placement:
    path: /etc/failback/placement.yml
    query: [sales_daily]
  register: who

- name: Show it
  ansible.builtin.debug:
    msg: "{{ who.owners.sales_daily }}"
"""

RETURN = r"""
path:
  description: The map file.
  returned: always
  type: str
  sample: /etc/failback/placement.yml
generation:
  description: Generation of the map after the task.
  returned: always
  type: int
  sample: 7
before:
  description: The map before the task as data (C(@failback) metadata plus one DAG id to installation entry per DAG); V(null) if the file did not exist.
  returned: always
  type: dict
  sample: {"@failback": {"generation": 6}, "sales_daily": "server-1"}
after:
  description: The map after the task, same form as RV(before).
  returned: always
  type: dict
  sample: {"@failback": {"generation": 7, "updated_at": "2026-11-21T10:00:00Z", "updated_by": "alice@ctl"}, "sales_daily": "server-2"}
changed_dags:
  description: DAGs whose owner changed, with the old and new owner (V(null) means no owner); C(@default) is the default owner.
  returned: always
  type: dict
  sample: {"sales_daily": {"from": "server-1", "to": "server-2"}}
owners:
  description: Owner of each DAG in O(query), after the task (V(null) when no installation owns it).
  returned: when O(query) is given
  type: dict
  sample: {"sales_daily": "server-2"}
installations:
  description: Every installation named by the map after the task.
  returned: always
  type: list
  elements: str
  sample: [server-1, server-2]
"""

import getpass
import os
import re
import socket

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.failback.airflow.plugins.module_utils import placement


def _default_actor():
    try:
        user = getpass.getuser()
    except Exception:  # pylint: disable=broad-exception-caught
        user = "uid%d" % os.getuid()
    return "%s@%s" % (user, socket.gethostname())


_CHANGE_OPTIONS = ("assign", "remove", "default_owner", "move", "content")


def _compute(params, current):
    """Return ``(new_map, write)`` for the requested change; raise PlacementError on bad input."""
    installations = params["installations"]
    wants_change = params["clear_default_owner"] or any(params[name] is not None for name in _CHANGE_OPTIONS)
    if current is None and not (wants_change and params["create"]):
        raise placement.PlacementError("placement map %s does not exist" % params["path"] + (
            " (create=false)" if wants_change else ": give a change such as assign or content to create it"))
    if params["content"] is not None:
        new = placement.parse_map(params["content"], installations, source="content")
        return new, placement.check_publish(current, new)
    if params["move"] is not None and current is None:
        raise placement.PlacementError("placement map %s does not exist: nothing to move" % params["path"])

    base = current if current is not None else placement.PlacementMap()
    after = placement.assign(
        base,
        params["assign"],
        installations,
        remove=params["remove"],
        default=params["default_owner"],
        clear_default=params["clear_default_owner"],
    )
    if params["move"] is not None:
        move = params["move"]
        after, _moved = placement.move(after, move["to"], move["from"], move["dags"], installations)
    new = placement.stamp(base, after, params["updated_by"] or _default_actor())
    return new, current is None or new is not base


_SYMBOLIC_MODE = re.compile(r"^[ugoa]*[-+=](?:[rwxXst]*|[ugo])$")


def _check_mode_option(mode):
    """Refuse a file mode Ansible could not apply, naming it, before anything is read or written."""
    if mode is None or isinstance(mode, int):
        return
    text = str(mode).strip()
    if re.match(r"^0?[0-7]{3,4}$", text) or (text and all(_SYMBOLIC_MODE.match(part) for part in text.split(","))):
        return
    raise placement.PlacementError(
        "mode %s is not a file mode: give it in octal as a quoted string (\"0644\") or in symbolic form "
        "(u=rw,g=r,o=r)" % placement.show(mode))


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            installations=dict(type="list", elements="str"),
            assign=dict(type="dict"),
            remove=dict(type="list", elements="str"),
            default_owner=dict(type="str"),
            clear_default_owner=dict(type="bool", default=False),
            move=dict(
                type="dict",
                options={
                    "from": dict(type="str"),
                    "to": dict(type="str", required=True),
                    "dags": dict(type="list", elements="str"),
                },
            ),
            content=dict(type="str"),
            query=dict(type="list", elements="str"),
            create=dict(type="bool", default=True),
            updated_by=dict(type="str"),
        ),
        mutually_exclusive=[
            ("content", "assign"),
            ("content", "remove"),
            ("content", "move"),
            ("content", "default_owner"),
            ("default_owner", "clear_default_owner"),
        ],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    if not placement.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(placement.YAML_IMPORT_ERROR))

    path = module.params["path"]
    result = dict(changed=False, path=path)
    try:
        before_text = placement.read_text(path)
        current = None
        if before_text is not None:
            current = placement.parse_map(before_text, module.params["installations"],
                                          source="placement map %s" % path)
    except placement.PlacementError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, **result)

    try:
        _check_mode_option(module.params["mode"])
        new, write = _compute(module.params, current)
        placement.check_times(new, source="placement map %s" % path)
        for dag_id in module.params["query"] or []:
            placement.check_dag_id(dag_id, where="queried DAG")
        after_text = placement.dump_map(new)  # validates what would be written (size, text) first
    except placement.PlacementError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, **result)

    before_text = before_text or ""
    result.update(
        generation=new.generation,
        before=current.to_data() if current is not None else None,
        after=new.to_data(),
        changed_dags={
            dag: {"from": old, "to": owner}
            for dag, (old, owner) in placement.changes(current or placement.PlacementMap(), new).items()
        },
        installations=sorted(new.installations()),
    )
    if module.params["query"]:
        result["owners"] = dict((dag, new.owner(dag)) for dag in module.params["query"])

    file_args = module.load_file_common_arguments(module.params)
    if write:
        result["changed"] = True
        if not module.check_mode:
            # One compare-and-swap step under a lock on the directory; the file attributes go onto
            # the temporary file before the rename, so a bad mode or owner leaves the map untouched.
            try:
                placement.publish_file(
                    path, new, module.params["installations"],
                    expect_generation=False if module.params["content"] is not None
                    else (current.generation if current is not None else None),
                    prepare=lambda tmp: module.set_fs_attributes_if_different(dict(file_args, path=tmp), False))
            except placement.PlacementError as exc:
                module.fail_json(msg="%s; nothing was changed" % exc, **result)
            except (IOError, OSError) as exc:
                module.fail_json(msg="cannot write placement map %s: %s" % (path, exc), **result)
    elif os.path.exists(path):
        result["changed"] = module.set_fs_attributes_if_different(dict(file_args, path=os.path.realpath(path)), False)
    if module._diff:
        result["diff"] = dict(
            before=before_text,
            after=after_text if write else before_text,
            before_header="%s (generation %s)" % (path, current.generation if current is not None else "none"),
            after_header="%s (generation %d)" % (path, new.generation),
        )
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
