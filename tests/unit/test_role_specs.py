"""Every role documents exactly the variables it lets users set (defaults == argument specs)."""

from __future__ import annotations

import os

import pytest
import yaml

ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
ROLE_NAMES = sorted(name for name in os.listdir(ROLES) if not name.startswith("."))


def _load(role, *parts):
    with open(os.path.join(ROLES, role, *parts)) as handle:
        return yaml.safe_load(handle) or {}


def test_there_are_roles():
    assert "airflow_placement" in ROLE_NAMES


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_defaults_and_argument_specs_list_the_same_variables(role):
    defaults = _load(role, "defaults", "main.yml")
    options = _load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options), "defaults/main.yml and meta/argument_specs.yml differ"
    for name, value in defaults.items():
        assert name.startswith(role + "_"), "%s is not prefixed with the role name" % name
        spec = options[name]
        assert spec.get("description"), "%s has no description" % name
        if "default" in spec:
            assert spec["default"] == value, "%s: argument spec default %r != defaults/main.yml %r" % (
                name, spec["default"], value)
        else:
            assert spec.get("required") or value in (None, "", [], {}), "%s needs a documented default" % name


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_internal_variables_are_marked(role):
    path = os.path.join(ROLES, role, "vars", "main.yml")
    if not os.path.exists(path):
        pytest.skip("no vars/main.yml")
    for name in _load(role, "vars", "main.yml"):
        assert name.startswith("_" + role + "_"), "internal variable %s must start with _%s_" % (name, role)


def test_ansible_managed_only_in_templates():
    """ansible-core 2.19 defines ansible_managed for the template module only: a task that uses it
    (copy content, say) fails with 'ansible_managed is undefined' - on the hosts where it runs."""
    found = []
    for top in ("roles", "playbooks"):
        for folder, _dirs, files in os.walk(os.path.join(os.path.dirname(ROLES), top)):
            if os.sep + "templates" in folder:
                continue
            for name in files:
                if name.endswith((".yml", ".yaml")):
                    path = os.path.join(folder, name)
                    with open(path) as handle:
                        if "ansible_managed" in handle.read():
                            found.append(os.path.relpath(path, os.path.dirname(ROLES)))
    assert not found, found
