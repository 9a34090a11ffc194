# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Options every module that talks to the Airflow 3 REST API shares."""

    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the API server, for example V(http://127.0.0.1:8080).
      - One of O(url) and O(kubernetes) is required.
    type: str
  kubernetes:
    description:
      - Reach the API server of a cluster installation through the Kubernetes API's Service proxy
        (C(/api/v1/namespaces/NAMESPACE/services/SCHEME:SERVICE:PORT/proxy)) instead of O(url), with the credentials of
        the kubeconfig (a token, a client certificate or an exec plugin; in a pod, its service account).
      - Airflow's token is sent as its session cookie then (the Kubernetes API uses the C(Authorization) header itself).
      - The caller needs C(get), C(create) and C(patch) on C(services/proxy) in the namespace, and C(get) on the Secret of
        O(kubernetes.password_secret) when the password is read from there.
      - Needs the C(kubernetes) Python package on the host that runs the module.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the installation.
        type: str
        required: true
      service:
        description: Name of the API server's Service.
        type: str
        required: true
      port:
        description: Name or number of the Service's port.
        type: str
        default: http
      scheme:
        description: Scheme the proxy uses towards the Service.
        type: str
        choices: [http, https]
        default: http
      kubeconfig:
        description: Path of the kubeconfig; by default C(KUBECONFIG), C(~/.kube/config), or the pod's service account.
        type: path
      context:
        description: Context of the kubeconfig to use; by default its current context.
        type: str
      password_secret:
        description:
          - Modules that log in read the password of their C(username) option from this Secret of the namespace
            when neither C(password) nor C(password_file) is given. It never passes through Ansible.
        type: str
      password_key:
        description:
          - Key of O(kubernetes.password_secret) that holds a JSON object of user name to password (the airflow_auth
            role's C(passwords.json)), or the password itself.
        type: str
        default: passwords.json
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
      - One of O(password), O(password_file) and O(kubernetes.password_secret) is required.
    type: str
  password_file:
    description:
      - Path, on the host that runs the module, of a JSON file that maps user names to passwords (the simple auth
        manager's passwords file); the password of O(username) is read from it, so it never passes through Ansible.
    type: path
"""
