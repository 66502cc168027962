"""connector.json (contract section 2) read into plain objects, with the checks the runtime relies on."""
from __future__ import annotations

import json
import os

from . import errors
from .errors import ConnectorError

MANIFEST_FILE = "connector.json"


def invalid(message):
    return ConnectorError(errors.VALIDATION_ERROR, "connector.json: " + message)


class StreamSpec:
    def __init__(self, data, impl_dir):
        if not isinstance(data, dict):
            raise invalid("each stream must be an object")
        self.data = data
        self.name = data.get("name")
        if not isinstance(self.name, str) or not self.name:
            raise invalid("a stream has no name")
        self.path = data.get("path")
        if not isinstance(self.path, str):
            raise invalid("stream %s has no path" % self.name)
        self.method = str(data.get("method") or "GET").upper()
        self.params = data.get("params") or {}
        self.record_selector = data.get("record_selector") or ""
        self.primary_key = list(data.get("primary_key") or [])
        self.pagination = data.get("pagination") or {"type": "none"}
        self.incremental = data.get("incremental") or None
        if self.incremental is not None:
            if not self.incremental.get("cursor_field"):
                raise invalid("stream %s: incremental needs a cursor_field" % self.name)
            if self.incremental.get("format", "iso8601") not in ("iso8601", "unix"):
                raise invalid("stream %s: incremental.format must be iso8601 or unix" % self.name)
        self.schema_path = data.get("schema") or os.path.join("schemas", self.name + ".json")
        self.fixtures_path = data.get("fixtures")
        self._impl_dir = impl_dir
        self._schema = None

    @property
    def cursor_field(self):
        return self.incremental["cursor_field"] if self.incremental else None

    @property
    def schema(self):
        if self._schema is None:
            path = os.path.join(self._impl_dir, self.schema_path)
            try:
                with open(path, "r", encoding="utf-8") as handle:
                    self._schema = json.load(handle)
            except (OSError, ValueError) as exc:
                raise invalid("stream %s: cannot load schema %s: %s" % (self.name, self.schema_path, exc))
        return self._schema


class Manifest:
    def __init__(self, data, impl_dir):
        if not isinstance(data, dict):
            raise invalid("must be a JSON object")
        self.data = data
        self.dir = impl_dir
        self.name = data.get("name")
        self.version = data.get("version")
        self.author = data.get("author")
        self.language = data.get("language", "python")
        self.implementation = data.get("implementation")
        self.description = data.get("description", "")
        self.base_url = data.get("base_url")
        self.auth = data.get("auth") or {"type": "none"}
        self.headers = data.get("headers") or {}
        self.defaults = data.get("defaults") or {}
        self.hooks = data.get("hooks")
        raw_streams = data.get("streams")
        if not isinstance(raw_streams, list):
            raise invalid("streams must be a list")
        self.streams = [StreamSpec(s, impl_dir) for s in raw_streams]
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise invalid("stream names must be unique")

    def stream(self, name):
        for spec in self.streams:
            if spec.name == name:
                return spec
        return None


def load_manifest(impl_dir):
    path = os.path.join(impl_dir, MANIFEST_FILE)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise invalid("cannot load %s: %s" % (path, exc))
    return Manifest(data, impl_dir)
