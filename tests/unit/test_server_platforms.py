"""The airflow_server role's platform lists: every platform it claims can run Podman with DNS."""

from __future__ import annotations

import os

import pytest
import yaml

VARS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "roles", "airflow_server", "vars")
PLATFORMS = sorted(name for name in os.listdir(VARS) if name != "main.yml")


def _load(name):
    with open(os.path.join(VARS, name)) as handle:
        return yaml.safe_load(handle)


def test_the_claimed_platforms_have_lists():
    assert PLATFORMS == ["Debian-12.yml", "Debian.yml", "RedHat-8.yml", "RedHat.yml", "Ubuntu-22.yml", "Ubuntu.yml"]


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_platform_lists_engines_and_a_dns_component_per_network_backend(name):
    data = _load(name)
    assert sorted(data) == ["_airflow_server_os_dns_packages", "_airflow_server_os_packages",
                            "_airflow_server_os_podman_compose_package"]
    assert "podman" in data["_airflow_server_os_packages"]["podman"]
    assert data["_airflow_server_os_packages"]["docker"]
    backends = data["_airflow_server_os_dns_packages"]
    assert set(backends) <= {"cni", "netavark"} and backends, backends
    assert all(packages for packages in backends.values())


@pytest.mark.parametrize(
    "name, backend, package",
    [
        ("Debian-12.yml", "cni", "golang-github-containernetworking-plugin-dnsname"),  # issue: make site on bookworm
        ("Ubuntu-22.yml", "cni", "golang-github-containernetworking-plugin-dnsname"),
        ("RedHat-8.yml", "cni", "podman-plugins"),
        ("Debian.yml", "netavark", "aardvark-dns"),
        ("Ubuntu.yml", "netavark", "aardvark-dns"),
        ("RedHat.yml", "netavark", "aardvark-dns"),
    ],
)
def test_the_default_backend_of_each_platform_gets_its_dns_component(name, backend, package):
    backends = _load(name)["_airflow_server_os_dns_packages"]
    assert list(backends)[0] == backend, "the first backend is the one a fresh host of the platform uses"
    assert package in backends[backend]
