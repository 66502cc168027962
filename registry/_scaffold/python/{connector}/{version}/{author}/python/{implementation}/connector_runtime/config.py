"""The --config file (contract section 3) merged with the manifest's defaults into Settings.

Precedence for each value: config, then the manifest's `defaults`, then the runtime default.
"""
from __future__ import annotations

import json

from . import errors
from .clock import parse_iso8601
from .errors import ConnectorError
from .retry import RetryPolicy

DEFAULT_TIMEOUT_SECONDS = 30.0


def invalid(message):
    return ConnectorError(errors.VALIDATION_ERROR, message)


def load_json_file(path, what):
    """Read a JSON file given on the command line; any problem is a VALIDATION_ERROR."""
    try:
        with open(path, "r", encoding="utf-8-sig") as handle:
            return json.load(handle)
    except OSError as exc:
        raise invalid("cannot read %s file %s: %s" % (what, path, exc.strerror or exc))
    except ValueError as exc:
        raise invalid("%s file %s is not valid JSON: %s" % (what, path, exc))


def _number(section, key, where, default, minimum=0.0, integer=False):
    if key not in section or section[key] is None:
        return default
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid("%s.%s must be a number" % (where, key))
    if value < minimum:
        raise invalid("%s.%s must be at least %s" % (where, key, minimum))
    if integer:
        if int(value) != value:
            raise invalid("%s.%s must be a whole number" % (where, key))
        return int(value)
    return float(value)


def _object(config, key):
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("config.%s must be an object" % key)
    return value


class Settings:
    """Everything the runtime needs from config + manifest, already validated."""

    def __init__(self, config, manifest):
        if not isinstance(config, dict):
            raise invalid("the config must be a JSON object")
        defaults = manifest.defaults
        self.raw = config

        if "credentials" in config and not isinstance(config["credentials"], dict):
            raise invalid("config.credentials must be an object")
        self.credentials = config.get("credentials") or {}

        self.base_url = config.get("base_url") or manifest.base_url
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise invalid("base_url must be an http(s) URL, got %r" % (self.base_url,))
        self.base_url = self.base_url.rstrip("/")

        self.params = _object(config, "params")

        # Overrides the manifest's oauth2 token_url (a test harness points it at its mock).
        self.token_url = config.get("token_url")
        if self.token_url is not None and not (isinstance(self.token_url, str)
                                               and self.token_url.startswith(("http://", "https://"))):
            raise invalid("token_url must be an http(s) URL, got %r" % (self.token_url,))

        self.start_date = config.get("start_date")
        if self.start_date is not None and parse_iso8601(self.start_date) is None:
            raise invalid("start_date must be an ISO 8601 timestamp, got %r" % (self.start_date,))

        self.page_size = _number(config, "page_size", "config", None, 1, integer=True)
        if self.page_size is None:
            self.page_size = _number(defaults, "page_size", "defaults", None, 1, integer=True)

        self.timeout_seconds = _number(config, "timeout_seconds", "config", None, 0.001)
        if self.timeout_seconds is None:
            self.timeout_seconds = _number(defaults, "timeout_seconds", "defaults",
                                           DEFAULT_TIMEOUT_SECONDS, 0.001)

        retry = _object(config, "retry")
        self.retry = RetryPolicy(
            max_attempts=_number(retry, "max_attempts", "retry", 5, 1, integer=True),
            initial_delay_seconds=_number(retry, "initial_delay_seconds", "retry", 0.5),
            max_delay_seconds=_number(retry, "max_delay_seconds", "retry", 30.0),
            budget_seconds=_number(retry, "budget_seconds", "retry", 120.0),
            max_retry_after_seconds=_number(retry, "max_retry_after_seconds", "retry", 60.0),
        )

        rate = _object(config, "rate_limit")
        self.requests_per_second = _number(rate, "requests_per_second", "rate_limit", None)
        if self.requests_per_second is None:
            self.requests_per_second = _number(defaults, "requests_per_second", "defaults", None)
        self.burst = _number(rate, "burst", "rate_limit", 1, 1, integer=True)

        breaker = _object(config, "circuit_breaker")
        self.failure_threshold = _number(breaker, "failure_threshold", "circuit_breaker", 5, 1, integer=True)
        self.reset_seconds = _number(breaker, "reset_seconds", "circuit_breaker", 30.0)

        streams = config.get("streams")
        if streams is not None and (not isinstance(streams, list)
                                    or not all(isinstance(s, str) for s in streams)):
            raise invalid("config.streams must be a list of stream names")
        self.streams = streams
