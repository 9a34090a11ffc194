"""The airflow_auth rules that span several values (plugins/module_utils/auth_settings.py)."""

from __future__ import annotations

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import auth_settings

ADMIN = {"username": "admin"}


@pytest.mark.parametrize("manager, auth_type, users, extra, expected", [
    ("fab", "db", [{"username": "ops", "role": "Op"}], {}, []),
    ("fab", "db", [{"username": "viewer", "role": "Auditor"}], {},
     ['user viewer has role "Auditor" (allowed with the fab auth manager: Admin, Op, User, Viewer, Public)']),
    ("simple", "db", [{"username": "guest", "role": "Public"}], {},
     ['user guest has role "Public" (allowed with the simple auth manager: Admin, Op, User, Viewer)']),
    ("fab", "db", [{"username": "ADMIN", "role": "Op"}], {}, ["user ADMIN is listed twice (FAB compares names without case",
                                                              "users admin and ADMIN have the same email admin@failback.invalid"]),
    ("fab", "db", [{"username": "a", "role": "Op", "email": "x@e.com"}, {"username": "b", "role": "Op", "email": "X@e.com"}], {},
     ["users a and b have the same email x@e.com (FAB needs one per user)"]),
    ("fab", "db", [{"username": "bad name", "role": "Op"}], {}, ['airflow_auth_users[0]: user name "bad name" (allowed']),
    ("simple", "oauth", [], {"oauth_providers": [{"name": "google", "client_id": "i", "client_secret": "s"}]},
     ["airflow_auth_type oauth needs airflow_auth_manager fab (it is simple)"]),
    ("fab", "oauth", [], {}, ["airflow_auth_type oauth needs airflow_auth_oauth_providers, a non-empty list"]),
    ("fab", "oauth", [], {"oauth_providers": [{"name": "azure", "client_id": "i", "client_secret": "s"}]},
     ["OAuth provider azure needs tenant_id"]),
    ("fab", "oauth", [], {"oauth_providers": [{"name": "okta", "client_id": "i", "client_secret": ""}]},
     ["OAuth provider okta has no client_secret", "OAuth provider okta needs server_metadata_url"]),
    ("fab", "ldap", [], {"ldap": {"server": "ldaps://ldap.example.com", "search": "ou=people", "bind_user": "cn=x"}},
     ["airflow_auth_ldap.bind_user is set without bind_password"]),
    ("fab", "ldap", [], {"ldap": {"server": "http://x"}}, ["needs airflow_auth_ldap.server, an ldap:// or ldaps:// URL",
                                                           "needs airflow_auth_ldap.search"]),
    ("fab", "db", [], {"roles_mapping": {"cn=ops": "Op"}}, ['airflow_auth_roles_mapping["cn=ops"] must be a list of roles']),
])
def test_problems(manager, auth_type, users, extra, expected):
    found = auth_settings.problems(manager, auth_type, users, ADMIN, **extra)
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), found
