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
