"""Retries: which failures, how long to wait, when to give up (contract section 5)."""
from __future__ import annotations

import email.utils

from . import errors
from .errors import ConnectorError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
JITTER = 0.25


class RetryPolicy:
    def __init__(self, max_attempts=5, initial_delay_seconds=0.5, max_delay_seconds=30.0,
                 budget_seconds=120.0, max_retry_after_seconds=60.0):
        self.max_attempts = max_attempts
        self.initial_delay_seconds = initial_delay_seconds
        self.max_delay_seconds = max_delay_seconds
        self.budget_seconds = budget_seconds
        self.max_retry_after_seconds = max_retry_after_seconds

    def backoff(self, retry_number, rng):
        """Delay before retry n (1-based): min(max, initial * 2^(n-1)) * (1 + U[0, 0.25))."""
        base = min(self.max_delay_seconds, self.initial_delay_seconds * (2 ** (retry_number - 1)))
        return base * (1.0 + rng.random() * JITTER)

    def delay_for(self, retry_number, error, rng):
        # The server's Retry-After replaces our own schedule, within a cap.
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after_seconds)
        return self.backoff(retry_number, rng)


def should_retry(error):
    if error.fail_fast:
        return False
    if error.status is not None:
        return error.status in RETRY_STATUSES
    return error.code in (errors.TIMEOUT, errors.NETWORK_ERROR)


def parse_retry_after(value, now_epoch):
    """Retry-After as delta-seconds or an HTTP-date -> seconds to wait (>= 0), or None if unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now_epoch
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def call_with_retry(attempt_fn, policy, clock, rng, on_retry=None):
    """Call attempt_fn(attempt_number) until it returns, or raise its last error.

    Gives up when the error is not retryable, when max_attempts calls were made, or when the
    next wait would end past budget_seconds after the first attempt started.
    """
    started = clock.monotonic()
    attempt = 1
    while True:
        try:
            return attempt_fn(attempt)
        except ConnectorError as error:
            if not should_retry(error) or attempt >= policy.max_attempts:
                raise
            delay = policy.delay_for(attempt, error, rng)
            if clock.monotonic() - started + delay > policy.budget_seconds:
                raise
            if on_retry is not None:
                on_retry(attempt, delay, error)
            clock.sleep(delay)
            attempt += 1
