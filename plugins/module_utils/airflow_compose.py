# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan the ordered start of a compose project under Podman (used by airflow_podman_compose).

podman-compose 1.x on Podman < 4.6 ignores ``depends_on`` conditions and ``--wait``, and
``depends_on`` breaks starting services once a one-shot container has exited. So the project
is started service by service, in order, with ``up -d --no-deps``; a one-shot service (the
Airflow init) is run to completion before the services after it.

Each service carries the label :data:`CONFIG_HASH_LABEL` (a hash of its definition, written by
the role's template); a container whose label differs is recreated, one that is stopped is
started, everything else is left alone - so only what changed is restarted.

Services find each other by name (``postgres``) through the DNS of the project's network. Podman
gives a network DNS only when its DNS component is installed when the network is *created* (the
CNI ``dnsname`` plugin, or ``aardvark-dns`` with netavark); a network created before that keeps
``dns_enabled: false`` for ever. :func:`project_networks` and :func:`network_action` say which
networks to check and what to do with each.

These functions are pure: they take parsed data and return decisions.
"""

from __future__ import annotations

import json

CONFIG_HASH_LABEL = "org.failback.config-hash"
SERVICE_LABELS = ("com.docker.compose.service", "io.podman.compose.service")
PROJECT_LABEL = "io.podman.compose.project"

CREATE = "create"
KEEP = "keep"
RECREATE = "recreate"
START = "start"
RUN = "run"


class ComposeError(ValueError):
    """Bad input or a state the plan cannot handle; the message names it."""


def _labels(value):
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict((str(k), "" if v is None else str(v)) for k, v in value.items())
    if isinstance(value, list):
        labels = {}
        for item in value:
            key, _sep, val = str(item).partition("=")
            labels[key] = val
        return labels
    raise ComposeError("labels must be a mapping or a list of KEY=VALUE, got %s" % type(value).__name__)


def desired_hashes(compose):
    """``{service: config hash}`` from a loaded compose file (services without the label map to None)."""
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        raise ComposeError("the compose file has no 'services' mapping")
    return dict((name, _labels((spec or {}).get("labels")).get(CONFIG_HASH_LABEL))
                for name, spec in compose["services"].items())


class Container(object):
    __slots__ = ("name", "service", "state", "exit_code", "config_hash", "created")

    def __init__(self, name, service, state, exit_code, config_hash, created):
        self.name = name
        self.service = service
        self.state = state
        self.exit_code = exit_code
        self.config_hash = config_hash
        self.created = created

    @property
    def running(self):
        return self.state == "running"

    def as_dict(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


def parse_ps(text):
    """``{service: Container}`` from ``podman ps -a --format json`` (newest container per service)."""
    try:
        entries = json.loads(text or "[]")
    except ValueError as exc:
        raise ComposeError("podman ps did not print JSON: %s" % exc)
    if entries is None:
        entries = []
    found = {}
    for entry in entries:
        labels = _labels(entry.get("Labels"))
        service = next((labels[key] for key in SERVICE_LABELS if labels.get(key)), None)
        if service is None:
            continue
        names = entry.get("Names") or [entry.get("Id", "?")[:12]]
        container = Container(
            name=names[0] if isinstance(names, list) else str(names),
            service=service,
            state=str(entry.get("State", "")).lower(),
            exit_code=entry.get("ExitCode"),
            config_hash=labels.get(CONFIG_HASH_LABEL),
            created=entry.get("Created", 0),
        )
        previous = found.get(service)
        if previous is None or (container.created or 0) >= (previous.created or 0):
            found[service] = container
    return found


def plan(order, desired, containers, one_shot=()):
    """Ordered ``[(service, action)]`` that brings *containers* to *desired*.

    Long-running services: missing -> create, other hash -> recreate, not running -> start.
    One-shot services run when missing, changed or last failed, and whenever a long-running
    service has to be created (first install).
    """
    unknown = [name for name in order if name not in desired]
    if unknown:
        raise ComposeError("service(s) %s are not in the compose file (it has: %s)" % (
            ", ".join(unknown), ", ".join(sorted(desired))))
    bad = [name for name in one_shot if name not in order]
    if bad:
        raise ComposeError("one-shot service(s) %s are not in the start order" % ", ".join(bad))
    first_install = any(containers.get(name) is None for name in order if name not in one_shot)
    actions = []
    for name in order:
        current = containers.get(name)
        if name in one_shot:
            if (first_install or current is None or current.config_hash != desired[name]
                    or current.running or current.exit_code not in (0, None) or current.state not in ("exited", "stopped")):
                actions.append((name, RUN))
        elif current is None:
            actions.append((name, CREATE))
        elif current.config_hash != desired[name]:
            actions.append((name, RECREATE))
        elif not current.running:
            actions.append((name, START))
    return actions


def project_networks(compose, project):
    """Names of the networks the project's services join, as podman-compose names them.

    A service without ``networks`` joins ``default``; a network is called ``<project>_<key>``
    unless the compose file gives it a ``name``; external networks and services with a
    ``network_mode`` (host, none, another container) are not the project's to check, nor are
    networks that ask for no DNS (``x-podman.disable_dns``).
    """
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        raise ComposeError("the compose file has no 'services' mapping")
    declared = compose.get("networks") or {}
    if not isinstance(declared, dict):
        raise ComposeError("the compose file's 'networks' must be a mapping")
    keys = set()
    for spec in compose["services"].values():
        spec = spec or {}
        if spec.get("network_mode"):
            continue
        joined = spec.get("networks")
        keys.update(joined or ["default"])
    names = []
    for key in sorted(keys):
        config = declared.get(key) or {}
        if config.get("external") or config.get("x-podman.disable_dns"):
            continue
        names.append(config.get("name") or "%s_%s" % (project, key))
    return names


def parse_network_inspect(text):
    """``{name: dns_enabled}`` from ``podman network inspect`` JSON (Podman 4 and later)."""
    try:
        entries = json.loads(text or "[]")
    except ValueError as exc:
        raise ComposeError("podman network inspect did not print JSON: %s" % exc)
    found = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or "name" not in entry:
            raise ComposeError("podman network inspect printed an entry without a name")
        found[entry["name"]] = bool(entry.get("dns_enabled"))
    return found


def network_action(exists, dns_enabled, dns_available):
    """What to do with one project network so that its containers resolve each other's names.

    * missing: CREATE (then check the new network's DNS);
    * present with DNS: KEEP;
    * present without DNS and this Podman can now make DNS networks: RECREATE;
    * present without DNS and it cannot: None (stop and name the missing package).
    """
    if not exists:
        return CREATE
    if dns_enabled:
        return KEEP
    return RECREATE if dns_available else None


def no_dns_message(network, packages, host=None):
    """The error for a network without DNS: names the network, the effect and the fix."""
    fix = ("install %s%s and run again: the role then recreates the network"
           % (" and ".join(packages), " on %s" % host if host else "")
           if packages else "install the DNS component of Podman's network backend (the CNI dnsname plugin, "
                            "or aardvark-dns with netavark) and run again")
    return ("Podman network %s has no DNS (dns_enabled: false), so the containers cannot resolve each other's "
            "names (such as 'postgres'); nothing was started. To fix it, %s." % (network, fix))


def up_args(service, action):
    """podman-compose arguments (after the global -p/-f) for one planned action."""
    args = ["up", "-d", "--no-deps"]
    if action in (RECREATE, RUN):
        args.append("--force-recreate")
    return args + [service]
