"""The watcher's event source (extensions/eda/plugins/event_source/fleet_watch.py): what it reads."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import threading
import time

import pytest

SOURCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "extensions", "eda", "plugins", "event_source",
                      "fleet_watch.py")


@pytest.fixture(scope="module")
def watch():
    spec = importlib.util.spec_from_file_location("fleet_watch", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_once(payload, delay=0.0):
    """A server on 127.0.0.1 that answers each connection with *payload* (bytes) after *delay* seconds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)

    def answer():
        for _attempt in range(4):
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                time.sleep(delay)
                conn.sendall(payload)
    threading.Thread(target=answer, daemon=True).start()
    return "http://127.0.0.1:%d/api/v2/monitor/health" % listener.getsockname()[1], listener


def test_a_garbage_or_slow_answer_is_a_failed_reading_not_a_crash(watch):
    url, listener = serve_once(b"SSH-2.0-not-http\r\n\r\n")
    health, error = watch._read_health(url, 3)
    assert health is None and error
    slow, listener2 = serve_once(b"HTTP/1.0 200 OK\r\n\r\n{}", delay=3)
    started = time.monotonic()
    health, error = watch._read_health(slow, 1)
    assert health is None and "timed out" in error and time.monotonic() - started < 2.5
    listener.close()
    listener2.close()


def test_a_fifo_a_directory_or_damage_where_the_state_is_expected_start_afresh(watch, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(str(fifo))
    started = time.monotonic()
    assert watch._read_state(str(fifo)) is None and time.monotonic() - started < 1, "a FIFO is never waited on"
    assert watch._read_state(str(tmp_path)) is None
    (tmp_path / "bad.json").write_text("{not json")
    assert watch._read_state(str(tmp_path / "bad.json")) is None
    assert watch._read_state(str(tmp_path / "absent.json")) is None


def test_one_round_reads_every_installation_at_once_and_writes_its_state(watch, tmp_path):
    healthy = json.dumps({"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}).encode()
    good, listener = serve_once(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + healthy)
    hung, listener2 = serve_once(b"HTTP/1.0 200 OK\r\n\r\n{}", delay=4)
    (tmp_path / "placement.yml").write_text("dag_a: server-1\n")
    config = tmp_path / "watch.json"
    config.write_text(json.dumps({
        "map": str(tmp_path / "placement.yml"), "state": str(tmp_path / "fleet-watch.json"),
        "pairs": {"server-1": "server-2"}, "interval": 1, "probes": 1, "window": 0, "timeout": 2,
        "installations": {"server-1": {"health_url": hung}, "server-2": {"health_url": good}}}))
    events = []

    class Queue(object):
        async def put(self, event):
            events.append(event)

    started = time.monotonic()
    asyncio.run(watch.main(Queue(), {"config": str(config), "rounds": 1}))
    assert time.monotonic() - started < 3.5, "the two readings ran at once"
    state = json.loads((tmp_path / "fleet-watch.json").read_text())
    assert state["last_readings"] == {"server-1": "timed out", "server-2": "healthy"}, state["last_readings"]
    assert oct(os.stat(str(tmp_path / "fleet-watch.json")).st_mode & 0o777) == "0o644"
    [event] = events
    assert event["failback_watch"]["action"] == "failover" and event["failback_watch"]["since"] == "", event
    listener.close()
    listener2.close()
