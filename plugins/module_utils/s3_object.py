# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One object in an S3-compatible bucket, read and written with the Python standard library only.

The placement map's authority when the fleet pulls its map (``airflow_placement_source``): the
controller writes the map with a conditional PUT (``If-Match`` the ETag it read, or
``If-None-Match: *`` for a new object: compare-and-swap, so two controllers cannot both win), and
every installation's guard reads it with a conditional GET. Requests are signed with AWS Signature
Version 4, so AWS S3, MinIO, Ceph RGW and other S3-compatible stores accept them. The guard ships
this file into every Airflow installation as ``failback_s3.py``: no boto3, no Ansible imports.

Credentials come from a JSON file (``access_key_id``, ``secret_access_key``, optional
``session_token``), never from the environment or a command line.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import ssl
import stat
import urllib.error
import urllib.parse
import urllib.request

MAX_CREDENTIALS_BYTES = 16384
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z0-9-]{1,40}$")
CREDENTIAL_KEYS = ("access_key_id", "secret_access_key", "session_token")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class S3Error(RuntimeError):
    """A request failed; ``status`` is the HTTP status (None when no answer came)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class PreconditionFailed(S3Error):
    """The object changed since it was read (HTTP 412): somebody else wrote it first."""


def parse_url(url):
    """``s3://bucket/key`` -> (bucket, key); raises ValueError naming what is wrong."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise ValueError("%r is not an s3://BUCKET/KEY URL" % (url,))
    bucket, _sep, key = url[len("s3://"):].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError("%r: bucket %r is not a valid bucket name (3-63 lower-case letters, digits, '.' and '-')"
                         % (url, bucket))
    if not key or key.endswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError("%r: give the object's key after the bucket (no empty, '.' or '..' parts, no trailing '/')"
                         % (url,))
    return bucket, key


def check_region(region):
    if not isinstance(region, str) or not _REGION.match(region):
        raise ValueError("region %r is not an AWS region name such as eu-west-1" % (region,))
    return region


def read_credentials(path):
    """The credentials in the JSON file *path*: a dict with access_key_id, secret_access_key and
    maybe session_token. The file must be a regular file (no FIFO is opened for a read that hangs)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise S3Error("the S3 credentials file %s cannot be read: %s" % (path, exc.strerror)) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise S3Error("the S3 credentials file %s is not a regular file" % path)
        data = handle.read(MAX_CREDENTIALS_BYTES + 1)
    try:
        found = json.loads(data.decode("utf-8")) if len(data) <= MAX_CREDENTIALS_BYTES else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        found = None
    if not isinstance(found, dict):
        raise S3Error("the S3 credentials file %s is not a JSON object (keys: %s)" % (path, ", ".join(CREDENTIAL_KEYS)))
    unknown = sorted(set(found) - set(CREDENTIAL_KEYS))
    missing = [key for key in CREDENTIAL_KEYS[:2] if not isinstance(found.get(key), str) or not found[key]]
    if unknown or missing or not isinstance(found.get("session_token", ""), str):
        raise S3Error("the S3 credentials file %s: %s (allowed keys: %s)" % (
            path, "; ".join(filter(None, ["unknown keys " + ", ".join(unknown) if unknown else "",
                                          "missing or empty " + ", ".join(missing) if missing else "",
                                          "session_token is not a string" if not isinstance(
                                              found.get("session_token", ""), str) else ""])),
            ", ".join(CREDENTIAL_KEYS)))
    if any(_CONTROL.search(found.get(key) or "") for key in CREDENTIAL_KEYS):
        # http.client would refuse the header and echo the value in its error.
        raise S3Error("the S3 credentials file %s: a value holds a control character (a line break?)" % path)
    return dict((key, found[key]) for key in CREDENTIAL_KEYS if found.get(key))


def _hmac(key, text):
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _quote(path):
    return urllib.parse.quote(path, safe="/-_.~")


class Bucket(object):
    """Where and how to reach one bucket.

    *endpoint*: the service URL for S3-compatible stores (``https://minio.example.com:9000``); the bucket
    is addressed by path then. Without it, AWS S3 of *region* with the bucket in the host name
    (``https://BUCKET.s3.REGION.amazonaws.com``).
    """

    def __init__(self, bucket, region="us-east-1", endpoint=None, credentials=None, ca_file=None, timeout=10.0,
                 opener=None):
        self.bucket = bucket
        self._opener = opener or self._stdlib_open
        self.region = check_region(region)
        self.credentials = credentials or {}
        self.timeout = timeout
        if endpoint:
            parsed = urllib.parse.urlsplit(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
                raise ValueError("endpoint %r is not an http(s)://HOST[:PORT][/PATH] URL" % (endpoint,))
            self._base = "%s://%s%s/%s/" % (parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), bucket)
        else:
            self._base = "https://%s.s3.%s.amazonaws.com/" % (bucket, self.region)
        self._ca_file = ca_file

    def url(self, key):
        return self._base + _quote(key)

    def signed_headers(self, method, key, payload=b"", headers=None, now=None):
        """The request headers for *method* on *key*, with AWS Signature Version 4 (service s3)."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        scope_date = amz_date[:8]
        parsed = urllib.parse.urlsplit(self.url(key))
        payload_hash = hashlib.sha256(payload).hexdigest()
        out = dict(headers or {})
        out.update({"Host": parsed.netloc, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash})
        if self.credentials.get("session_token"):
            out["x-amz-security-token"] = self.credentials["session_token"]
        if not self.credentials:
            return out
        signed = sorted((name.lower(), " ".join(str(value).strip().split())) for name, value in out.items()
                        if name.lower() == "host" or name.lower().startswith("x-amz-"))
        canonical = "\n".join([
            method, parsed.path or "/", "",
            "".join("%s:%s\n" % pair for pair in signed),
            ";".join(name for name, _value in signed),
            payload_hash,
        ])
        scope = "%s/%s/s3/aws4_request" % (scope_date, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
        secret = ("AWS4" + self.credentials["secret_access_key"]).encode("utf-8")
        signing_key = _hmac(_hmac(_hmac(_hmac(secret, scope_date), self.region), "s3"), "aws4_request")
        out["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.credentials["access_key_id"], scope, ";".join(name for name, _value in signed),
            hmac.new(signing_key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest())
        return out

    def _call(self, method, key, payload=b"", headers=None, limit=1 << 20):
        where = "s3://%s/%s" % (self.bucket, key)
        try:
            with self._opener(self.url(key), method, self.signed_headers(method, key, payload, headers),
                              payload if method == "PUT" else None, self.timeout) as response:
                body = response.read(limit + 1)
                if len(body) > limit:
                    raise S3Error("%s is larger than %d bytes" % (where, limit), response.getcode())
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.strip().isdigit() and int(declared) != len(body):
                    raise S3Error("%s %s: the answer ended after %d of %s bytes" % (method, where, len(body), declared))
                return response.getcode(), body, response.headers
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return 304, b"", exc.headers
            code = _error_code(exc)
            if exc.code == 412:
                raise PreconditionFailed("%s changed since it was read (HTTP 412%s)" % (where, code), 412) from None
            raise S3Error("%s %s answered HTTP %d%s" % (method, where, exc.code, code), exc.code) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            # The reason only: an exception's text may quote a header, and headers carry the keys.
            raise S3Error("%s %s failed: %s" % (method, where, getattr(exc, "reason", None) or type(exc).__name__)) from None

    def _stdlib_open(self, url, method, headers, data, timeout):
        """The default opener, for the guard (no Ansible there); modules pass one built on Ansible's open_url."""
        handlers = [_NoRedirect()]
        if url.startswith("https://"):
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=self._ca_file or None)))
        opener = urllib.request.build_opener(*handlers)
        return opener.open(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=timeout)

    def get(self, key, etag=None, limit=1 << 20):
        """(status, body, etag): 200 with the body, 304 when *etag* is still current, 404 when absent."""
        try:
            status, body, headers = self._call("GET", key, headers={"If-None-Match": etag} if etag else None,
                                               limit=limit)
        except S3Error as exc:
            if exc.status == 404:
                return 404, None, None
            raise
        return status, body, headers.get("ETag") or etag

    def put(self, key, payload, if_match=None, content_type="application/yaml"):
        """Write *payload* only if the object's ETag is still *if_match* (None: only if it does not exist).
        Returns the new ETag; raises PreconditionFailed when somebody else wrote first."""
        condition = {"If-Match": if_match} if if_match else {"If-None-Match": "*"}
        condition["Content-Type"] = content_type
        _status, _body, headers = self._call("PUT", key, payload, condition)
        return headers.get("ETag")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: the signed headers (keys, session token) must never reach another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 (urllib API)
        raise urllib.error.HTTPError(req.full_url, code, "redirect to another URL refused (%s)" % msg, headers, fp)


def _error_code(exc):
    try:
        text = exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    found = re.search(r"<Code>([A-Za-z]+)</Code>", text)
    return ", %s" % found.group(1) if found else ""
