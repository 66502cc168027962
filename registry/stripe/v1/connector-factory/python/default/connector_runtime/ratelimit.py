"""Client-side rate limiting: a token bucket that also obeys the server's rate-limit headers."""
from __future__ import annotations

# Epoch values are far above this; smaller X-RateLimit-Reset values are read as
# "seconds from now", which some APIs send despite the usual convention.
_EPOCH_THRESHOLD = 1_000_000_000
# Never wait longer than this for a reset header (a bogus value must not hang the run).
MAX_HEADER_WAIT_SECONDS = 3600.0


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`. rate None means unlimited."""

    def __init__(self, rate=None, burst=1, clock=None):
        self.rate = float(rate) if rate else None
        self.burst = max(1.0, float(burst or 1))
        self.clock = clock
        self.tokens = self.burst
        self._last = clock.monotonic()
        self.blocked_until = 0.0  # monotonic time before which nothing may be sent

    def _refill(self):
        now = self.clock.monotonic()
        if self.rate:
            self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self):
        """Wait until one request may be sent; return the seconds waited."""
        waited = 0.0
        hold = self.blocked_until - self.clock.monotonic()
        if hold > 0:
            self.clock.sleep(hold)
            waited += hold
        if self.rate:
            self._refill()
            if self.tokens < 1.0:
                need = (1.0 - self.tokens) / self.rate
                self.clock.sleep(need)
                waited += need
                self._refill()
                self.tokens = max(self.tokens, 1.0)  # we waited exactly long enough
            self.tokens -= 1.0
        return waited

    def adapt(self, headers):
        """When the server says nothing is left, hold every request until its reset."""
        remaining = headers.get("X-RateLimit-Remaining")
        if remaining is None:
            remaining = headers.get("RateLimit-Remaining")
        try:
            if remaining is None or float(remaining) > 0:
                return
        except ValueError:
            return
        wait = 1.0  # no reset given: a short pause rather than none
        x_reset = headers.get("X-RateLimit-Reset")
        reset = headers.get("RateLimit-Reset")
        try:
            if x_reset is not None:
                value = float(x_reset)
                wait = value - self.clock.time() if value > _EPOCH_THRESHOLD else value
            elif reset is not None:
                wait = float(reset)
        except ValueError:
            pass
        wait = min(max(wait, 0.0), MAX_HEADER_WAIT_SECONDS)
        self.blocked_until = max(self.blocked_until, self.clock.monotonic() + wait)


class RateLimitHook:
    """Pipeline hook: take a token before each attempt (retries included), adapt after each response."""

    def __init__(self, bucket, logger=None):
        self.bucket = bucket
        self.logger = logger

    def before_request(self, ctx, request):
        waited = self.bucket.acquire()
        if waited > 0 and self.logger is not None:
            self.logger.info("waited for the rate limit", event="rate_limit_wait",
                             stream=ctx.stream, delay_seconds=round(waited, 3))

    def after_response(self, ctx, response):
        self.bucket.adapt(response.headers)
