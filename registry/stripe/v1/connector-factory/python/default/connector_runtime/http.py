"""Request / Response values and the urllib transport.

The transport returns a Response for every HTTP status (turning statuses into errors is the
client's job, after the hooks have seen the response) and raises ConnectorError only for
TIMEOUT and NETWORK_ERROR. Its deadline covers the whole response: the socket timeout bounds
each wait, and the body is read in chunks with the remaining time checked between them, so a
server that trickles bytes cannot stretch one request past `timeout`.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode, urlsplit

from . import errors
from .errors import ConnectorError

CHUNK_SIZE = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class Request:
    def __init__(self, method, url, params=None, headers=None, body=None):
        self.method = method.upper()
        self.url = url                    # without the query parameters below
        self.params = list(params or [])  # [(name, value)] appended as the query string
        self.headers = dict(headers or {})
        self.body = body                  # bytes or None

    def full_url(self):
        if not self.params:
            return self.url
        pairs = [(name, _param_text(value)) for name, value in self.params]
        return self.url + ("&" if "?" in self.url else "?") + urlencode(pairs)

    def set_param(self, name, value):
        """Replace (or add) one query parameter."""
        self.params = [(n, v) for n, v in self.params if n != name] + [(name, value)]

    def copy(self):
        return Request(self.method, self.url, self.params, self.headers, self.body)

    def __repr__(self):
        return "Request(%s %s)" % (self.method, self.full_url())


def _param_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Headers:
    """Case-insensitive, multi-valued response headers."""

    def __init__(self, items=()):
        if isinstance(items, dict):
            items = items.items()
        self._items = [(str(k), str(v)) for k, v in items]

    def get(self, name, default=None):
        lower = name.lower()
        for key, value in self._items:
            if key.lower() == lower:
                return value
        return default

    def get_all(self, name):
        lower = name.lower()
        return [value for key, value in self._items if key.lower() == lower]

    def items(self):
        return list(self._items)


class Response:
    def __init__(self, status, headers=None, body=b"", url="", request=None, elapsed=0.0):
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers or {})
        self.body = body
        self.url = url
        self.request = request
        self.elapsed = elapsed

    @property
    def ok(self):
        return 200 <= self.status < 300

    @property
    def request_id(self):
        return self.headers.get("X-Request-Id") or self.headers.get("Request-Id")

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConnectorError(
                errors.PARSING_ERROR,
                "response from %s is not valid JSON (%s): %r" % (self.url, exc, self.body[:120]),
                status=self.status, request_id=self.request_id,
            )


class Transport:
    """Sends one Request with urllib.request."""

    def __init__(self):
        self._opener = urllib.request.build_opener()
        # Environment proxies must not capture loopback traffic (local tests, mocks).
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, request, timeout):
        url = request.full_url()
        host = (urlsplit(url).hostname or "").lower()
        opener = self._direct if host in LOOPBACK_HOSTS else self._opener
        raw = urllib.request.Request(url, data=request.body, headers=request.headers,
                                     method=request.method)
        started = time.monotonic()
        deadline = started + timeout
        try:
            try:
                handle = opener.open(raw, timeout=timeout)
            except urllib.error.HTTPError as exc:
                handle = exc  # an HTTPError is a response too: read its body the same way
            with _closing(handle):
                status = handle.status if hasattr(handle, "status") and handle.status else handle.code
                headers = Headers(handle.headers.items() if handle.headers else [])
                body = _read_body(handle, deadline, timeout)
        except ConnectorError:
            raise
        except (socket.timeout, TimeoutError):
            raise _timeout(url, timeout)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise _timeout(url, timeout)
            raise ConnectorError(errors.NETWORK_ERROR, "cannot reach %s: %s" % (url, exc.reason))
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectorError(errors.NETWORK_ERROR,
                                 "connection to %s failed: %s: %s" % (url, type(exc).__name__, exc))
        except ValueError as exc:
            raise ConnectorError(errors.VALIDATION_ERROR, "bad URL %s: %s" % (url, exc))
        return Response(status, headers, body, url=url, request=request,
                        elapsed=time.monotonic() - started)


def _timeout(url, timeout):
    return ConnectorError(errors.TIMEOUT, "no complete response from %s within %ss" % (url, timeout))


class _closing:
    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self.handle

    def __exit__(self, *exc):
        try:
            self.handle.close()
        except Exception:
            pass
        return False


def _socket_of(handle):
    """The socket under an http.client response, if it can be reached (for per-read timeouts)."""
    fp = getattr(handle, "fp", None)
    for _ in range(3):  # HTTPError -> HTTPResponse -> BufferedReader -> SocketIO
        if fp is None:
            return None
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
        if sock is not None:
            return sock
        fp = getattr(fp, "fp", None)
    return None


def _read_body(handle, deadline, timeout):
    if getattr(handle, "fp", True) is None:
        return b""  # an HTTPError without a body
    sock = _socket_of(handle)
    read = getattr(handle, "read1", None) or handle.read
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(getattr(handle, "url", "") or "", timeout)
        if sock is not None:
            try:
                sock.settimeout(remaining)
            except OSError:
                sock = None  # already closed after the last chunk
        chunk = read(CHUNK_SIZE)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
