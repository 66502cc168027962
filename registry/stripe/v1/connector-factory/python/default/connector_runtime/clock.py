"""Time in one injectable object, plus the few date helpers the runtime needs.

Everything that waits or reads the time goes through a clock, so tests can pass a fake one
whose sleep() only advances a counter.
"""
from __future__ import annotations

import datetime as _dt
import re
import time


class SystemClock:
    def time(self):
        """Wall-clock epoch seconds (for HTTP dates and epoch reset headers)."""
        return time.time()

    def monotonic(self):
        """Seconds for measuring intervals (budgets, buckets, breaker)."""
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)


_FRACTION = re.compile(r"\.(\d+)")


def parse_iso8601(text):
    """Parse an ISO 8601 / RFC 3339 timestamp into an aware UTC datetime, or return None.

    datetime.fromisoformat on Python 3.9 rejects a trailing 'Z' and fractions that are not
    3 or 6 digits long, so both are normalised first. A value without an offset is UTC.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    value = text.strip()
    if value[-1] in "zZ":
        value = value[:-1] + "+00:00"
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], value, count=1)
    if len(value) >= 5 and value[-5] in "+-" and value[-4:].isdigit() and ":" not in value[-5:]:
        value = value[:-2] + ":" + value[-2:]  # +0000 -> +00:00
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed.astimezone(_dt.timezone.utc)


def format_rfc3339(epoch_seconds):
    """Epoch seconds -> '2024-01-02T03:04:05.678000Z' (UTC)."""
    moment = _dt.datetime.fromtimestamp(epoch_seconds, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_iso_seconds(epoch_seconds):
    """Epoch seconds -> '2024-01-02T03:04:05Z' (UTC, whole seconds), for request parameters."""
    moment = _dt.datetime.fromtimestamp(int(epoch_seconds), tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
