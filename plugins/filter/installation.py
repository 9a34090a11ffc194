# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters of the installation contract (roles/airflow_installation)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def installation_facts(hostvars, names, fact, default=None):
    """``{name: hostvars[name][fact]}`` for each of *names*; *default* where that installation has no such fact
    (it was unreachable, or skipped the entry point that sets it)."""
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise AnsibleFilterError("installation_facts: names must be a list of installation names, got %r" % (names,))
    found = {}
    for name in names:
        try:
            facts = hostvars[name]
        except KeyError:
            raise AnsibleFilterError("installation_facts: %r is not a host of the inventory" % (name,))
        try:
            found[name] = facts[fact] if fact in facts else default
        # An undefined value in the host's variables.
        except Exception:  # pylint: disable=broad-exception-caught
            found[name] = default
    return found


class FilterModule(object):
    def filters(self):
        return {"installation_facts": installation_facts}
