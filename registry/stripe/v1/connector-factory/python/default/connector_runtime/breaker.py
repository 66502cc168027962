"""Circuit breaker: after `failure_threshold` consecutive failures, fail fast for `reset_seconds`,
then let one trial request through (half-open). A success closes it; a failed trial reopens it.

Only failures that suggest the service is unwell count (5xx, timeouts, network errors).
Other answers (2xx, 4xx, 429) prove it is up and reset the count.
"""
from __future__ import annotations

from . import errors
from .errors import ConnectorError

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_COUNTED = frozenset({errors.SERVER_ERROR, errors.TIMEOUT, errors.NETWORK_ERROR})


class CircuitBreaker:
    def __init__(self, failure_threshold=5, reset_seconds=30.0, clock=None):
        self.failure_threshold = max(1, int(failure_threshold))
        self.reset_seconds = reset_seconds
        self.clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.last_error = None

    def check(self):
        """Call before each request; raises instead of letting a request through while open."""
        if self.state != OPEN:
            return
        if self.clock.monotonic() - self.opened_at >= self.reset_seconds:
            self.state = HALF_OPEN
            return
        last = self.last_error
        error = ConnectorError(
            last.code if last else errors.SERVER_ERROR,
            "circuit breaker open after %d consecutive failures; last: %s"
            % (self.failures, last.message if last else "unknown"),
            status=last.status if last else None,
            request_id=last.request_id if last else None,
        )
        error.fail_fast = True
        raise error

    def record(self, error):
        """Record the outcome of one request: None for success, else its error."""
        if error is None or error.code not in _COUNTED:
            self.state = CLOSED
            self.failures = 0
            return
        self.last_error = error
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.failure_threshold:
            self.state = OPEN
            self.opened_at = self.clock.monotonic()
