# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options every module that talks to the Airflow 3 REST API shares."""

    DOCUMENTATION = r"""
options:
  url:
    description: Base URL of the API server, for example V(http://127.0.0.1:8080).
    type: str
    required: true
  request_timeout:
    description: Timeout of one HTTP request in seconds.
    type: int
    default: 10
  validate_certs:
    description: Verify the TLS certificate when O(url) is an C(https) URL.
    type: bool
    default: true
"""

    # Logging in with the simple auth manager's users (used together with the standard fragment).
    LOGIN = r"""
options:
  username:
    description: User to log in with (at C(/auth/token)).
    type: str
    required: true
  password:
    description:
      - Password of O(username).
      - One of O(password) and O(password_file) is required.
    type: str
  password_file:
    description:
      - Path, on the host that runs the module, of a JSON file that maps user names to passwords (the simple auth
        manager's passwords file); the password of O(username) is read from it, so it never passes through Ansible.
    type: path
"""
