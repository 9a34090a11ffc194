# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the placement rules (plugins/module_utils/placement.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.module_utils import placement, placement_plan, placement_source


def _as_map(value, installations=None, source="placement map"):
    return value if isinstance(value, placement.PlacementMap) else placement.as_map(value, installations, source)


def _wrap(func):
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except placement.PlacementError as exc:
            raise AnsibleFilterError(str(exc))

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@_wrap
def placement_parse(value, installations=None, source="placement map"):
    """Validate a map (YAML text or data) and return it as data: ``{"@failback": {...}, dag: owner}``."""
    return _as_map(value, installations, source).to_data()


@_wrap
def placement_dump(value, installations=None):
    """Validate a map and return its canonical text (sorted, stable)."""
    return placement.dump_map(_as_map(value, installations))


@_wrap
def placement_owner(value, dag_id):
    """Owner of *dag_id* in a map (None when nobody owns it)."""
    return _as_map(value).owner(placement.check_dag_id(dag_id))


@_wrap
def placement_generation(value):
    """Generation number of a map."""
    return _as_map(value).generation


@_wrap
def placement_publish_needed(new, current=None, installations=None):
    """True when *new* must be written over *current* (None/empty = no map yet).

    Fails when *current* is newer, or of the same generation with a different placement,
    so an older map never replaces a newer one.
    """
    new_map = _as_map(new, installations, "new placement map")
    current_map = None
    if current is not None and not (isinstance(current, (str, bytes)) and not current.strip()):
        current_map = _as_map(current, source="placement map on the installation")
    return placement.check_publish(current_map, new_map)


@_wrap
def placement_publish_plan(new, hostvars, installations, force=False, known=None, held_var="airflow_placement_held", last=None):
    """Revoke-first publishing order of map *new* over the fleet (placement_plan.plan_publish).

    What each installation holds comes from ``hostvars[name][held_var]`` (set by the
    airflow_placement role's ``read`` entry point): ``{"reachable": true, "map": ..., "fenced": ...}``;
    an installation without it, or not reachable, counts as unreachable.  *known* is a list of
    other maps in force before (evidence of what an unreachable installation may run); *last* are
    installations granted only in the second group (a failover's new owner).  A map to
    publish with a handover in the future (placement.check_times) is refused.
    """
    new_map = placement.check_times(_as_map(new, installations, "placement map to publish"),
                                    source="placement map to publish")
    held = {}
    for name in installations:
        facts = hostvars.get(name) if hasattr(hostvars, "get") else None
        entry = facts.get(held_var) if facts is not None and hasattr(facts, "get") else None
        if not entry or not entry.get("reachable"):
            continue
        held_map = entry.get("map")
        held[name] = (_as_map(held_map, source="map held by %s" % name) if held_map else None, bool(entry.get("fenced")))
    plan = placement_plan.plan_publish(new_map, held, installations, force=bool(force),
                                       known=[_as_map(m, source="known map") for m in (known or []) if m], last=last or ())
    plan["summary"] = placement_plan.describe_plan(plan)
    plan["generation"] = new_map.generation
    return plan


@_wrap
def placement_changes(before, after, installation, dag_ids=None):
    """What *installation* loses and gains between two maps (placement.installation_changes)."""
    return placement.installation_changes(_as_map(before, source="map before"), _as_map(after, source="map after"),
                                          installation, dag_ids or [])


@_wrap
def placement_owns_any(value, installation):
    """Whether *installation* owns at least one DAG of the map (listed, or as its default owner)."""
    return placement.owns_any(_as_map(value), installation)


@_wrap
def placement_revoke_map(after, before=None, installations=None):
    """The revoke stage between *before* (the authority's map; None: nothing yet) and *after*, as data, or None."""
    if before is None:
        return None
    revoke = placement_plan.revoke_map(_as_map(before, installations, "the authority's map"),
                                       _as_map(after, installations))
    return revoke.to_data() if revoke is not None else None


def placement_source_problems(source, check_files=True):
    """What is wrong with airflow_placement_source (placement_source.problems)."""
    return placement_source.problems(source, check_files)


def placement_source_settled(source):
    """airflow_placement_source with its defaults filled in (placement_source.settled)."""
    return placement_source.settled(source)


def placement_source_env(source, credentials_path, fence_path):
    """The guard's environment for airflow_placement_source (placement_source.guard_env)."""
    return placement_source.guard_env(source, credentials_path, fence_path)


def placement_grant_wait(source, revoked_at, now, confirmed_at=None):
    """Seconds a grant waits after the revoke stage (placement_source.grant_wait)."""
    return placement_source.grant_wait(source, float(revoked_at), float(now),
                                       None if confirmed_at in (None, "") else float(confirmed_at))


class FilterModule(object):
    def filters(self):
        return {
            "placement_revoke_map": placement_revoke_map,
            "placement_source_problems": placement_source_problems,
            "placement_source_env": placement_source_env,
            "placement_grant_wait": placement_grant_wait,
            "placement_parse": placement_parse,
            "placement_dump": placement_dump,
            "placement_owner": placement_owner,
            "placement_generation": placement_generation,
            "placement_source_settled": placement_source_settled,
            "placement_publish_needed": placement_publish_needed,
            "placement_publish_plan": placement_publish_plan,
            "placement_changes": placement_changes,
            "placement_owns_any": placement_owns_any,
        }
