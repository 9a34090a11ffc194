"""status.yml against three directory installations on this machine (local connection).

Directory installations have no Airflow: their placement maps and fences are read for real and the
Airflow columns say "not read". The Airflow findings (paused on the owner, DAG sets, leaks) are
proven against real installations in the Molecule podman scenario.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest
import yaml

import failback_testlib as lab
from failback_ansible import run_playbook

NAMES = ("server-1", "server-2", "server-3")
START_MAP = "---\n\"@failback\":\n  generation: 1\ndag_a: server-1\ndag_b: server-2\ndag_c: server-3\n"


def write_inventory(root, filename, overrides=None):
    hosts = {}
    for name in NAMES:
        hosts[name] = {"airflow_placement_dir": os.path.join(root, name, "placement"),
                       "airflow_placement_guard_dir": os.path.join(root, name, "config")}
        hosts[name].update((overrides or {}).get(name, {}))
    inventory = {"all": {"children": {"airflow_installations": {
        "hosts": hosts,
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "airflow_placement_map_src": os.path.join(root, "placement.yml")},
    }}}}
    path = os.path.join(root, filename)
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle)
    return path


def snapshot(root):
    """Every file's digest but the reports and the fleet lock (whose record the holder of the fixture's publish.yml
    clears a moment after that run ended: status.yml takes no lock)."""
    digest = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            if not name.startswith("fleet-status.") and name != "placement.lock":
                with open(os.path.join(base, name), "rb") as handle:
                    digest[os.path.join(base, name)] = hashlib.sha256(handle.read()).hexdigest()
    return digest


def _set_up(root):
    with open(os.path.join(root, "placement.yml"), "w") as handle:
        handle.write(START_MAP)
    inventory = write_inventory(root, "hosts.yml")
    first = run_playbook("site.yml", inventory)
    assert first.rc == 0, first
    return root, inventory


@pytest.fixture(scope="module")
def set_up_fleet(tmp_path_factory):
    return lab.SetUpOnce(tmp_path_factory, "fleet", _set_up)


@pytest.fixture
def fleet(set_up_fleet):
    """The fleet right after its first site.yml (run once per module, copied back for each test)."""
    return set_up_fleet.fresh()


def report(root):
    with open(os.path.join(root, "fleet-status.json")) as handle:
        return json.load(handle)


def codes(data):
    return sorted((f["code"], f["subject"]) for f in data["findings"])


def test_a_clean_fleet_reports_no_finding_and_changes_nothing(fleet):
    root, inventory = fleet
    before = snapshot(root)
    run = run_playbook("status.yml", inventory)
    assert run.rc == 0, run
    assert snapshot(root) == before
    data = report(root)
    assert data["healthy"] and data["findings"] == [] and data["generation"] == 1
    assert [(r["installation"], r["generation"], r["fenced"], r["owns"], r["api"]) for r in data["installations"]] == [
        ("server-1", 1, False, 1, "not read"), ("server-2", 1, False, 1, "not read"), ("server-3", 1, False, 1, "not read")]
    page = open(os.path.join(root, "fleet-status.html")).read()
    assert "<h1>Fleet status</h1>" in page and not re.search(r"<script|src=|href=", page)
    # the text table is printed
    assert "fleet healthy: generation 1, 3 installation(s), 3 DAG(s), no finding" in run.stdout


def test_drift_is_found_named_and_fails_the_run(fleet):
    root, inventory = fleet
    # the controller's map moves on without a publish: every installation is behind
    path = os.path.join(root, "placement.yml")
    text = open(path).read()
    with open(path, "w") as handle:
        handle.write(re.sub(r"generation: 1\b", "generation: 2", text))
    # server-2 restarted outside Ansible: fenced
    with open(os.path.join(root, "server-2", "placement", "fence"), "w") as handle:
        handle.write("restarted outside Ansible\n")
    run = run_playbook("status.yml", inventory)
    assert run.rc == 2, run
    data = report(root)
    assert codes(data) == [("behind", "server-1"), ("behind", "server-2"), ("behind", "server-3"), ("fenced", "server-2")]
    fenced = [f for f in data["findings"] if f["code"] == "fenced"][0]
    assert fenced["severity"] == "error" and fenced["detail"] == "restarted outside Ansible"
    assert "fleet drifted: 4 error" in run.stdout
    # the same findings pass a run that fails only on critical ones
    assert run_playbook("status.yml", inventory, {"status_fail_on": "critical"}).rc == 0


def test_guard_files_that_differ_from_what_site_yml_writes_are_found_in_check_mode(fleet):
    root, inventory = fleet
    assert run_playbook("status.yml", inventory, {"status_check_files": True}).rc == 0
    assert report(root)["findings"] == []
    edited = os.path.join(root, "server-2", "config", "failback_guard.py")
    with open(edited, "a") as handle:
        handle.write("# edited by hand\n")
    before = snapshot(root)
    run = run_playbook("status.yml", inventory, {"status_check_files": True})
    assert run.rc == 2, run
    assert codes(report(root)) == [("files_differ", "server-2")]
    assert report(root)["findings"][0]["detail"] == edited
    assert snapshot(root) == before  # the check-mode comparison wrote nothing
    # without status_check_files the files are not compared
    assert run_playbook("status.yml", inventory).rc == 0


def test_an_unreachable_installation_is_critical(fleet):
    root, _inventory = fleet
    unreachable = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
    down = write_inventory(root, "down.yml", {"server-3": unreachable})
    run = run_playbook("status.yml", down)
    assert run.rc != 0, run
    data = report(root)
    assert codes(data) == [("unreachable", "server-3")]
    assert data["findings"][0]["severity"] == "critical"


def test_check_mode_writes_no_report(fleet):
    root, inventory = fleet
    before = snapshot(root)
    run = run_playbook("status.yml", inventory, check=True)
    assert run.rc == 0, run
    assert snapshot(root) == before and not os.path.exists(os.path.join(root, "fleet-status.json"))


def png_pixels(path):
    """``(width, height, rows)`` of an 8-bit RGB or RGBA PNG, rows as bytes without the filter byte."""
    with open(path, "rb") as handle:
        data = handle.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color = header[:4]
    assert depth == 8 and color in (2, 6), header
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prior = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prior[x], prior[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prior = line
    return width, height, [[tuple(row[i:i + 3]) for i in range(0, stride, bpp)] for row in rows]


def test_the_html_report_shows_the_table_in_a_real_browser(fleet, tmp_path):
    root, inventory = fleet
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: tests/setup-host.sh installs it (make host-setup)"
    with open(os.path.join(root, "server-1", "placement", "fence"), "w") as handle:
        handle.write("restarted outside Ansible\n")
    unreachable = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
    down = write_inventory(root, "down.yml", {"server-3": unreachable})
    assert run_playbook("status.yml", down).rc == 2
    shot = str(tmp_path / "status.png")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1000,700", "--screenshot=" + shot,
                           "file://" + os.path.join(root, "fleet-status.html")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and os.path.exists(shot), proc.stderr[-2000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1000, 700)
    colours = {}
    for row in pixels:
        for pixel in row:
            colours[pixel] = colours.get(pixel, 0) + 1
    # the findings table: a critical row (unreachable server-3) and an error row (fenced server-1),
    # each a band of its background colour, and the grey header cells of the three tables
    assert colours.get((0xF8, 0xC9, 0xC9), 0) > 2000, "no critical row on the page"
    assert colours.get((0xFD, 0xE2, 0xC4), 0) > 2000, "no error row on the page"
    assert colours.get((0xEE, 0xEE, 0xEE), 0) > 2000, "no table header on the page"
