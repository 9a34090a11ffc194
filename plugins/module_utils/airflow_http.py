# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport for :class:`airflow_api.Client` on top of Ansible's ``open_url``."""

from __future__ import annotations

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.failback.airflow.plugins.module_utils.airflow_api import AirflowApiError


def make_transport(validate_certs=True, ca_path=None):
    """A ``transport(method, url, headers, body, timeout) -> (status, text)`` function."""

    def transport(method, url, headers, body, timeout):
        try:
            response = open_url(url, data=body, headers=headers, method=method, timeout=timeout,
                                validate_certs=validate_certs, ca_path=ca_path, follow_redirects="safe")
            return response.getcode(), response.read().decode("utf-8", "replace")
        except HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except Exception:  # pylint: disable=broad-except
                text = ""
            return exc.code, text
        except (URLError, OSError, ValueError) as exc:
            raise AirflowApiError("%s %s failed: %s" % (method, url, getattr(exc, "reason", exc)))

    return transport
