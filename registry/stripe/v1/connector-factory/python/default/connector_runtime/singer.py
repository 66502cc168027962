"""Singer messages on stdout, one JSON object per line (contract section 4)."""
from __future__ import annotations

import json
import sys

from .clock import format_rfc3339


class SingerWriter:
    def __init__(self, out=None, redactor=None, clock=None):
        self.out = out
        self.redactor = redactor
        self.clock = clock
        self.counts = {}

    def schema(self, stream, schema, key_properties, bookmark_properties):
        self._write({"type": "SCHEMA", "stream": stream, "schema": schema,
                     "key_properties": list(key_properties),
                     "bookmark_properties": list(bookmark_properties)})

    def record(self, stream, record, time_extracted=None):
        if time_extracted is None:
            time_extracted = format_rfc3339(self.clock.time())
        self._write({"type": "RECORD", "stream": stream, "record": record,
                     "time_extracted": time_extracted})
        self.counts[stream] = self.counts.get(stream, 0) + 1

    def state(self, value):
        self._write({"type": "STATE", "value": value})

    def _write(self, message):
        # ASCII-only JSON: valid whatever the encoding of stdout.
        text = json.dumps(message, separators=(",", ":"), default=str)
        if self.redactor is not None:
            # The contract forbids credentials on stdout too; records never legitimately hold ours.
            text = self.redactor.redact(text)
        out = self.out or sys.stdout
        out.write(text + "\n")
        out.flush()
