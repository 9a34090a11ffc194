# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules about an installation's settings that the server and the cluster roles both apply.

One function per rule, exposed as a filter (plugins/filter/settings.py), so the airflow_server and
airflow_kubernetes roles cannot drift apart:

* :func:`remote_logging_problems` - the fleet's S3 task-log settings;
* :func:`secret_env_problems` - no secret in a plain environment (compose ``environment``, a
  ConfigMap), only pointers to files (``_CMD``, ``_SECRET``, ``_FILE``) and secrets backends.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import re

#: An S3 folder: s3://BUCKET[/PREFIX], with a bucket name S3 accepts (3-63 of a-z 0-9 . -).
_S3_FOLDER = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,62}(/|$)")
#: Names that say they hold a secret.
_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|fernet|private_key|sql_alchemy_conn|credential)")
#: ...unless they point at one (a command, a file, a secret's name) or name the secrets backend.
_POINTER_NAME = re.compile(r"(?i)(_CMD|_SECRET|_FILE)$|BACKEND")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: What the guard reads: set by the roles themselves, never by the environment settings.
RESERVED_ENV = ("FAILBACK_INSTALLATION", "FAILBACK_PLACEMENT_MAP", "HOST_HOSTNAME")


def remote_logging_problems(enabled, folder, conn_id, connections=None, secrets_backend="local", prefix="airflow"):
    """What is wrong with the remote-logging settings (an empty list when nothing, or when it is off).

    *folder* must be ``s3://BUCKET[/PREFIX]``; *conn_id* must name a connection, and with the
    collection's own secrets (``secrets_backend`` ``local``) one of *connections* (the
    airflow_credentials connections); a secrets backend elsewhere holds its own. *prefix* names
    the role's variables in the messages.
    """
    if not enabled:
        return []
    problems = []
    if not isinstance(folder, str) or not _S3_FOLDER.match(folder):
        problems.append("%s_remote_log_folder is %s: give s3://BUCKET/PREFIX (a bucket name of 3 to 63 lowercase "
                        "letters, digits, '.' and '-')" % (prefix, repr(folder) if folder else "empty"))
    if not isinstance(conn_id, str) or not conn_id:
        problems.append("%s_remote_log_conn_id is empty: name the connection with the bucket's keys" % prefix)
    elif (secrets_backend or "local") == "local" and conn_id not in (connections or {}):
        problems.append("%s_remote_log_conn_id %r is not one of airflow_credentials_connections (%s)"
                        % (prefix, conn_id, ", ".join(sorted(connections or {})) or "none"))
    return problems


def secret_env_problems(env, name="the environment", reserved=RESERVED_ENV):
    """What is wrong with a plain environment mapping: a value that looks like a secret, a bad name, a reserved name.

    Secrets belong in files (airflow_credentials) that Airflow reads through ``AIRFLOW__SECTION__KEY_CMD``
    or ``..._SECRET``; a plain environment ends up in compose files, ConfigMaps and ``docker inspect``.
    """
    if not isinstance(env, dict):
        return ["%s must be a mapping of variable names to values, got %s" % (name, type(env).__name__)]
    problems = []
    keys = sorted(str(key) for key in env)
    secret = [key for key in keys if _SECRET_NAME.search(key) and not _POINTER_NAME.search(key)]
    if secret:
        problems.append("%s holds what looks like a secret (%s): put secrets in files (airflow_credentials) and "
                        "point Airflow at them with AIRFLOW__SECTION__KEY_CMD" % (name, ", ".join(secret)))
    invalid = [key for key in keys if not _ENV_NAME.match(key)]
    if invalid:
        problems.append("%s has names that are not environment variable names: %s" % (name, ", ".join(invalid)))
    taken = [key for key in keys if key in reserved]
    if taken:
        problems.append("%s sets %s, which the roles set for the guard" % (name, ", ".join(taken)))
    return problems
