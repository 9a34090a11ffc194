# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the placement rules (plugins/module_utils/placement.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.module_utils import placement


def _as_map(value, installations=None, source="placement map"):
    if isinstance(value, placement.PlacementMap):
        return value
    if isinstance(value, dict):
        return placement.from_data(dict(value), installations, source)
    if isinstance(value, (str, bytes)):
        return placement.parse_map(value, installations, source)
    raise AnsibleFilterError("%s must be YAML text or a mapping, got %s" % (source, type(value).__name__))


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


class FilterModule(object):
    def filters(self):
        return {
            "placement_parse": placement_parse,
            "placement_dump": placement_dump,
            "placement_owner": placement_owner,
            "placement_generation": placement_generation,
            "placement_publish_needed": placement_publish_needed,
        }
