"""module_utils/s3_object.py against servers that misbehave, on 127.0.0.1 (findings of an adversarial review).

moto checks the signatures and conditions (tests/airflow/test_placement_s3.py, tests/integration/
test_placement_authority.py); here a raw socket server answers what no S3 should: a body cut off
before its Content-Length, a redirect to another host, a garbage status line. Keys with a line break
must not reach a header (http.client would quote them in its error).
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import s3_object

KEYS = {"access_key_id": "AKIAFAILBACKUNIT0001", "secret_access_key": "un1t-s3cret"}


class RawServer(object):
    """Answers every connection with *answer* (bytes) and records what it was sent."""

    def __init__(self, answer):
        self.answer, self.seen = answer, []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for _connection in range(4):  # bounded
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            data = b""
            conn.settimeout(10)
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.seen.append(data.decode("latin-1"))
            conn.sendall(self.answer)
            conn.close()

    def bucket(self, credentials=None):
        return s3_object.Bucket("fleet-maps", "eu-west-1", "http://127.0.0.1:%d" % self.port,
                                credentials=credentials or KEYS, timeout=5)

    def close(self):
        self.sock.close()


@pytest.fixture
def raw():
    servers = []

    def start(answer):
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_body_cut_off_before_its_content_length_is_an_error(raw):
    body = b'"@failback": {generation: 1}\ndag_a: server-1\n'
    server = raw(b"HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (len(body) + 30)
                 + body)
    with pytest.raises(s3_object.S3Error, match="the answer ended after %d of %d bytes" % (len(body), len(body) + 30)):
        server.bucket().get("map.yml")


def test_a_redirect_is_refused_and_the_keys_never_reach_the_other_host(raw):
    other = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    server = raw(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/x\r\nContent-Length: 0\r\n"
                 b"Connection: close\r\n\r\n" % other.port)
    with pytest.raises(s3_object.S3Error, match="answered HTTP 307"):
        server.bucket(dict(KEYS, session_token="t0ken-value")).get("map.yml")
    assert other.seen == []


def test_a_garbage_answer_is_an_s3_error_naming_no_header(raw):
    server = raw(b"garbage\r\n\r\n")
    with pytest.raises(s3_object.S3Error, match="failed: BadStatusLine"):
        server.bucket().get("map.yml")


@pytest.mark.parametrize("content, message", [
    ({"access_key_id": "A", "secret_access_key": "s", "session_token": "t0ken\n"}, "holds a control character"),
    ({"access_key_id": "A", "secret_access_key": "s\x00"}, "holds a control character"),
    ("[" * 5000, "is not a JSON object"),
    ({"access_key_id": "A"}, "missing or empty secret_access_key"),
])
def test_credentials_that_would_break_a_header_or_the_parser_are_refused_without_the_value(tmp_path, content, message):
    path = tmp_path / "keys.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(s3_object.S3Error, match=message) as failure:
        s3_object.read_credentials(str(path))
    assert "t0ken" not in str(failure.value)


def test_a_symbolic_link_to_a_fifo_is_not_opened_for_a_read_that_hangs(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    (tmp_path / "keys.json").symlink_to(fifo)
    with pytest.raises(s3_object.S3Error, match="is not a regular file"):
        s3_object.read_credentials(str(tmp_path / "keys.json"))
