"""Shared test helpers: runtime import path, a fake clock, a loopback HTTP server, temp connectors."""
from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE_DIR = os.path.join(REPO, "registry", "_scaffold", "python", "{connector}", "{version}",
                            "{author}", "python", "{implementation}")
RUNTIME_DIR = os.path.join(TEMPLATE_DIR, "connector_runtime")
# Importing from the template must not leave __pycache__ folders inside the scaffold tree.
sys.dont_write_bytecode = True
if TEMPLATE_DIR not in sys.path:
    sys.path.insert(0, TEMPLATE_DIR)

from connector_runtime import cli  # noqa: E402


class FakeClock:
    """sleep() advances time instantly and remembers each wait."""

    def __init__(self, wall=1_700_000_000.0):
        self.wall = wall
        self.mono = 1000.0
        self.sleeps = []

    def time(self):
        return self.wall

    def monotonic(self):
        return self.mono

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds):
        self.wall += seconds
        self.mono += seconds


class SeqRandom:
    """A random.Random stand-in returning the given values in turn (then the last one)."""

    def __init__(self, *values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


class Seen:
    """One request as the server saw it."""

    def __init__(self, handler, body):
        split = urlsplit(handler.path)
        self.method = handler.command
        self.path = split.path
        self.query = dict(parse_qsl(split.query, keep_blank_values=True))
        self.raw_query = split.query
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.body = body
        self.handler = handler

    def form(self):
        return dict(parse_qsl(self.body.decode("utf-8")))


def reply(status=200, body=None, headers=None):
    """A canned response; dicts and lists are sent as JSON, bytes as they are."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode("utf-8")
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return status, dict(headers or {}), body or b""


class LocalServer:
    """ThreadingHTTPServer on 127.0.0.1 in a thread. `route(seen)` returns reply(...) or None
    when it wrote the response itself through seen.handler."""

    def __init__(self, route):
        self.route = route
        self.requests = []
        self.errors = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self, body)
                server.requests.append(seen)
                try:
                    result = server.route(seen)
                    if result is None:
                        return
                    status, headers, payload = result
                    self.send_response(status)
                    headers.setdefault("Content-Type", "application/json")
                    for name, value in headers.items():
                        if isinstance(value, list):
                            for item in value:
                                self.send_header(name, item)
                        else:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                except Exception as exc:  # a bug in a test route: make it visible, not a hang-up
                    server.errors.append(exc)
                    self.send_error(599, "test route failed: %r" % exc)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port():
    """A loopback port with nothing listening on it."""
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


SIMPLE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"id": {"type": ["integer", "string"]}, "updated_at": {"type": ["string", "null"]},
                   "created": {"type": ["integer", "null"]}, "name": {"type": ["string", "null"]}},
    "required": ["id"],
}


def stream(name="items", path="/items", **extra):
    spec = {"name": name, "path": path, "method": "GET", "params": {}, "record_selector": "data",
            "primary_key": ["id"], "pagination": {"type": "none"}, "schema": "schemas/%s.json" % name}
    spec.update(extra)
    return spec


def manifest(streams, auth=None, **extra):
    data = {"name": "testapi", "version": "v1", "author": "tester", "language": "python",
            "implementation": "default", "description": "test connector",
            "run": {"command": ["python3", "main.py"]}, "base_url": "https://api.invalid",
            "auth": auth or {"type": "none"}, "headers": {}, "defaults": {}, "streams": streams}
    data.update(extra)
    return data


class TempConnector:
    """A throwaway implementation folder: manifest, schemas and (optionally) the runtime itself."""

    def __init__(self, manifest_data, with_runtime=False, files=None):
        self.dir = tempfile.mkdtemp(prefix="cf-test-")
        os.makedirs(os.path.join(self.dir, "schemas"))
        self.write("connector.json", manifest_data)
        for spec in manifest_data["streams"]:
            self.write(spec.get("schema") or "schemas/%s.json" % spec["name"], SIMPLE_SCHEMA)
        for name, content in (files or {}).items():
            self.write(name, content)
        if with_runtime:
            shutil.copy(os.path.join(TEMPLATE_DIR, "main.py"), self.dir)
            shutil.copytree(RUNTIME_DIR, os.path.join(self.dir, "connector_runtime"),
                            ignore=shutil.ignore_patterns("__pycache__"))

    def write(self, name, content):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            if isinstance(content, str):
                handle.write(content)
            else:
                json.dump(content, handle)
        return path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def base_config(server_url, **extra):
    config = {"base_url": server_url, "credentials": {}, "timeout_seconds": 2.0,
              "retry": {"max_attempts": 3, "initial_delay_seconds": 0.01, "max_delay_seconds": 0.05,
                        "budget_seconds": 5.0}}
    config.update(extra)
    return config


class Run:
    """Outcome of one in-process CLI run, with stdout/stderr parsed as JSON lines."""

    def __init__(self, code, out, err):
        self.code = code
        self.out_text = out
        self.err_text = err
        self.messages = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.logs = [json.loads(line) for line in err.splitlines() if line.strip()]

    def of(self, kind):
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def records(self):
        return [m["record"] for m in self.of("RECORD")]

    @property
    def error(self):
        errors = [line for line in self.logs if line.get("type") == "ERROR"]
        return errors[-1] if errors else None


def run_cli(connector, config=None, args=(), clock=None, rng=None, state=None, catalog=None):
    """Run cli.main in this process against a TempConnector; files for config/state/catalog are
    written into its folder."""
    argv = list(args)
    if config is not None:
        argv += ["--config", connector.write("config.json", config)]
    if state is not None:
        argv += ["--state", connector.write("state.json", state)]
    if catalog is not None:
        argv += ["--catalog", connector.write("catalog.json", catalog)]
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(connector.dir, argv, stdout=out, stderr=err, clock=clock, rng=rng)
    return Run(code, out.getvalue(), err.getvalue())


class ServerCase:
    """Mixin for unittest.TestCase: servers and temp connectors made here are removed in tearDown."""

    def serve(self, route):
        server = LocalServer(route)
        self.__dict__.setdefault("_servers", []).append(server)
        return server

    def connector(self, manifest_data, **kwargs):
        connector = TempConnector(manifest_data, **kwargs)
        self.__dict__.setdefault("_connectors", []).append(connector)
        return connector

    def tearDown(self):
        for server in self.__dict__.pop("_servers", []):
            server.close()
        for connector in self.__dict__.pop("_connectors", []):
            connector.cleanup()
