"""JSON log lines on stderr, with every known secret replaced by '***'.

Redaction works on the finished text of a line, so it covers every field (URLs, messages,
error bodies) without each caller having to remember it. Each secret is also registered in
the forms it takes when written somewhere: URL-encoded, JSON-escaped and base64.
"""
from __future__ import annotations

import base64
import json
import sys
from urllib.parse import quote, quote_plus

REDACTED = "***"
# Shorter values cannot be hidden without mangling every line (a password "ab" would
# turn every "ab" into "***"), so they are not treated as redactable.
MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self):
        self._needles = []

    def add(self, value):
        """Register one secret value (strings and numbers)."""
        if value is None or isinstance(value, (bool, dict, list)):
            return
        text = str(value)
        if len(text) < MIN_SECRET_LENGTH:
            return
        forms = {
            text,
            quote(text, safe=""),
            quote(text),
            quote_plus(text),
            json.dumps(text)[1:-1],
            json.dumps(text, ensure_ascii=False)[1:-1],
            base64.b64encode(text.encode("utf-8")).decode("ascii"),
        }
        for form in forms:
            if len(form) >= MIN_SECRET_LENGTH and form not in self._needles:
                self._needles.append(form)
        # Longest first, so a secret that contains another is replaced whole.
        self._needles.sort(key=len, reverse=True)

    def add_all(self, obj):
        """Register every leaf value of a (nested) dict or list, e.g. the config's credentials."""
        if isinstance(obj, dict):
            for value in obj.values():
                self.add_all(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                self.add_all(value)
        else:
            self.add(obj)

    def redact(self, text):
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, REDACTED)
        return text


class Logger:
    """Writes {"type":"LOG","level":...,"message":...,<fields>} lines."""

    def __init__(self, stream=None, redactor=None):
        self.stream = stream
        self.redactor = redactor or Redactor()

    def log(self, level, message, **fields):
        line = {"type": "LOG", "level": level, "message": message}
        for key, value in fields.items():
            if value is not None:
                line[key] = value
        self._write(line)

    def info(self, message, **fields):
        self.log("INFO", message, **fields)

    def warn(self, message, **fields):
        self.log("WARN", message, **fields)

    def error(self, message, **fields):
        self.log("ERROR", message, **fields)

    def error_line(self, error):
        """The single ERROR line written when a run fails."""
        self._write(error.to_dict())

    def _write(self, obj):
        text = self.redactor.redact(json.dumps(obj, default=str))
        stream = self.stream or sys.stderr
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not turn a log line into a crash


class LoggingHook:
    """Pipeline hook that logs each response and each retry."""

    def __init__(self, logger):
        self.logger = logger

    def after_response(self, ctx, response):
        request = response.request
        self.logger.info(
            "%s %s -> %s" % (request.method if request else "?", response.url, response.status),
            event="request", stream=ctx.stream, page=ctx.page, attempt=ctx.attempt,
            status=response.status, request_id=response.request_id,
            elapsed_ms=int(response.elapsed * 1000),
        )

    def on_retry(self, ctx, attempt, delay):
        error = ctx.error
        self.logger.warn(
            "retrying after %s: %s" % (error.code if error else "error", error.message if error else ""),
            event="retry", stream=ctx.stream, page=ctx.page, attempt=attempt,
            delay_seconds=round(delay, 3), status=error.status if error else None,
            code=error.code if error else None,
        )
