"""Bookmarks and incremental filtering (contract section 7).

The bookmark of a stream is the greatest cursor value emitted. A run that starts from a
bookmark (or from the config's start_date) sends it as the stream's request_param and drops
records whose cursor value is <= it, so resuming from a final STATE emits nothing twice.
"""
from __future__ import annotations

import copy

from . import errors
from .clock import format_iso_seconds, parse_iso8601
from .errors import ConnectorError


def parse_state(obj):
    """Accept the `value` of a STATE message or a whole STATE message; return the value."""
    if obj is None:
        return {"bookmarks": {}}
    if isinstance(obj, dict) and obj.get("type") == "STATE":
        obj = obj.get("value")
    if not isinstance(obj, dict):
        raise ConnectorError(errors.VALIDATION_ERROR, "state must be a JSON object")
    bookmarks = obj.get("bookmarks", {})
    if not isinstance(bookmarks, dict) or not all(isinstance(v, dict) for v in bookmarks.values()):
        raise ConnectorError(errors.VALIDATION_ERROR,
                             "state.bookmarks must map stream names to objects")
    value = copy.deepcopy(obj)
    value["bookmarks"] = value.get("bookmarks", {})
    return value


class State:
    def __init__(self, value=None):
        self.value = parse_state(value)

    def bookmark(self, stream, field):
        return self.value["bookmarks"].get(stream, {}).get(field)

    def set_bookmark(self, stream, field, value):
        self.value["bookmarks"].setdefault(stream, {})[field] = value

    def to_value(self):
        return copy.deepcopy(self.value)


def sort_key(value):
    """A comparable key for cursor values: epoch seconds when the value is a number, a numeric
    string or an ISO 8601 timestamp; otherwise the text itself (sorted after all times)."""
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value))
    text = str(value)
    try:
        return (0, float(text))
    except ValueError:
        pass
    parsed = parse_iso8601(text)
    if parsed is not None:
        return (0, parsed.timestamp())
    return (1, text)


class Incremental:
    """Filter and bookmark keeper for one incremental stream during one run."""

    def __init__(self, spec, bookmark=None, start_date=None):
        self.cursor_field = spec["cursor_field"]
        self.request_param = spec.get("request_param")
        self.format = spec.get("format", "iso8601")
        self.bookmark = bookmark  # stays the old value until something greater is emitted
        start = bookmark
        if start is None and start_date is not None:
            start = start_date
            if self.format == "unix":
                start = int(parse_iso8601(start_date).timestamp())
        self.threshold = start
        self._threshold_key = sort_key(start) if start is not None else None
        self._best_key = sort_key(bookmark) if bookmark is not None else None

    def request_value(self):
        """The threshold formatted for the request parameter, or None."""
        value = self.threshold
        if value is None:
            return None
        key = sort_key(value)
        if self.format == "unix":
            if key[0] == 0:
                seconds = key[1]
                return int(seconds) if seconds == int(seconds) else seconds
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return format_iso_seconds(value)
        return value

    def accept(self, record):
        """Should this record be emitted? Records without a cursor value always are."""
        value = record.get(self.cursor_field) if isinstance(record, dict) else None
        if value is None or self._threshold_key is None:
            return True
        return sort_key(value) > self._threshold_key

    def observe(self, record):
        """Note an emitted record; the bookmark becomes the greatest cursor value seen."""
        value = record.get(self.cursor_field)
        if value is None:
            return
        key = sort_key(value)
        if self._best_key is None or key > self._best_key:
            self._best_key = key
            self.bookmark = value
