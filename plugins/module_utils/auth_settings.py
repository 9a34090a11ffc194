# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules of the airflow_auth role's settings that span several values (filter ``auth_settings_problems``).

The shape of each value (types, choices, unknown keys of a user, a provider or the LDAP settings) is
checked by the role's argument spec with nested options; what is left is what no single option can
say: user names unique without case and the admin among them, one e-mail per user, roles the chosen
auth manager knows, what each sign-in type needs.  Every problem names the value and what is
allowed.  Pure Python, no Ansible import.
"""

from __future__ import annotations

import re

FAB_ROLES = ("Admin", "Op", "User", "Viewer", "Public")
SIMPLE_ROLES = ("Admin", "Op", "User", "Viewer")
OAUTH_KINDS = ("google", "github", "azure")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _users_problems(users, manager, admin):
    problems = []
    roles = FAB_ROLES if manager == "fab" else SIMPLE_ROLES
    seen, emails = {}, {}
    for index, user in enumerate([dict(admin, role="Admin")] + list(users or [])):
        name = str(user.get("username") or "")
        where = "the admin (airflow_auth_admin_username)" if index == 0 else "airflow_auth_users[%d]" % (index - 1)
        if not _USERNAME.match(name):
            problems.append('%s: user name "%s" (allowed: 1-64 letters, digits, _ . @ -)' % (where, name))
            continue
        if name.lower() in seen:
            problems.append("user %s is listed twice (FAB compares names without case; the admin is "
                            "airflow_auth_admin_username)" % name)
        seen[name.lower()] = True
        email = str(user.get("email") or name + "@failback.invalid").lower()
        if email in emails:
            problems.append("users %s and %s have the same email %s (FAB needs one per user)" % (emails[email], name, email))
        emails[email] = name
        if user.get("role") not in roles:
            problems.append('user %s has role "%s" (allowed with the %s auth manager: %s)'
                            % (name, user.get("role") or "", manager, ", ".join(roles)))
    return problems


def _oauth_problems(providers):
    if not providers:
        return ["airflow_auth_type oauth needs airflow_auth_oauth_providers, a non-empty list"]
    problems = []
    for index, provider in enumerate(providers):
        name = str(provider.get("name") or "")
        if not _PROVIDER.match(name):
            problems.append("airflow_auth_oauth_providers[%d] needs a name (lowercase letters, digits, _ -), got %r"
                            % (index, name))
            continue
        for key in ("client_id", "client_secret"):
            if not provider.get(key):
                problems.append("OAuth provider %s has no %s" % (name, key))
        if name == "azure" and not provider.get("tenant_id"):
            problems.append("OAuth provider azure needs tenant_id")
        elif name not in OAUTH_KINDS and not re.match(r"^https?://", str(provider.get("server_metadata_url") or "")):
            problems.append("OAuth provider %s needs server_metadata_url (its OpenID Connect discovery URL), or a name "
                            "among %s" % (name, ", ".join(OAUTH_KINDS)))
    return problems


def _ldap_problems(ldap):
    problems = []
    if not re.match(r"^ldaps?://", str(ldap.get("server") or "")):
        problems.append("airflow_auth_type ldap needs airflow_auth_ldap.server, an ldap:// or ldaps:// URL")
    if ldap.get("bind_user") and not ldap.get("bind_password"):
        problems.append("airflow_auth_ldap.bind_user is set without bind_password")
    if not ldap.get("search"):
        problems.append("airflow_auth_type ldap needs airflow_auth_ldap.search (the base DN of the users)")
    return problems


def problems(manager, auth_type, users, admin, oauth_providers=(), ldap=None, roles_mapping=None):
    """Every problem of the sign-in settings, one sentence each (an empty list when there is none).

    *admin* is ``{"username", "email"?}`` of airflow_auth_admin_*; *users* the airflow_auth_users.
    """
    found = []
    if auth_type != "db" and manager != "fab":
        found.append("airflow_auth_type %s needs airflow_auth_manager fab (it is %s)" % (auth_type, manager))
    found.extend(_users_problems(users, manager, admin))
    if auth_type == "oauth":
        found.extend(_oauth_problems(list(oauth_providers or [])))
    if auth_type == "ldap":
        found.extend(_ldap_problems(dict(ldap or {})))
    for group, roles in sorted((roles_mapping or {}).items()):
        if isinstance(roles, str) or not isinstance(roles, (list, tuple)) or set(roles) - set(FAB_ROLES):
            found.append('airflow_auth_roles_mapping["%s"] must be a list of roles among %s' % (group, ", ".join(FAB_ROLES)))
    return found
