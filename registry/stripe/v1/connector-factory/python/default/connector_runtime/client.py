"""One logical API request: hooks, circuit breaker and retries around the transport.

    attempt n:  breaker.check -> before_request hooks (auth, custom, rate limit)
                -> transport.send -> after_response hooks (rate limit adapts, custom, logging)
                -> status check -> on success return; on failure on_error hooks, then maybe retry
"""
from __future__ import annotations

import random

from . import errors
from .errors import ConnectorError
from .retry import call_with_retry, parse_retry_after


def error_for_response(response, now_epoch):
    """None for a 2xx response, else the ConnectorError it stands for."""
    if response.ok:
        return None
    status = response.status
    snippet = response.text()[:300].strip()
    error = ConnectorError(
        errors.code_for_status(status),
        "HTTP %d from %s%s" % (status, response.url, (": " + snippet) if snippet else ""),
        status=status, request_id=response.request_id,
    )
    error.retry_after = parse_retry_after(response.header("Retry-After"), now_epoch)
    return error


class ApiClient:
    def __init__(self, transport, pipeline, retry_policy, breaker, clock, timeout_seconds,
                 auth=None, rng=None):
        self.transport = transport
        self.pipeline = pipeline
        self.retry_policy = retry_policy
        self.breaker = breaker
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self.auth = auth
        self.rng = rng or random.Random()

    def send(self, ctx, request):
        """Send `request` (retrying per policy) and return the successful Response."""
        try:
            return self._send_with_retry(ctx, request)
        except ConnectorError as error:
            # An expired or revoked OAuth token: fetch a new one and try once more.
            if error.status == 401 and self.auth is not None and self.auth.invalidate():
                return self._send_with_retry(ctx, request)
            raise

    def _send_with_retry(self, ctx, request):
        def attempt(number):
            ctx.attempt = number
            self.breaker.check()
            prepared = self.pipeline.before_request(ctx, request.copy())
            try:
                response = self.transport.send(prepared, self.timeout_seconds)
            except ConnectorError as failure:
                error = failure
            else:
                response = self.pipeline.after_response(ctx, response)
                error = error_for_response(response, self.clock.time())
            self.breaker.record(error)
            if error is None:
                return response
            ctx.error = error
            self.pipeline.on_error(ctx, error)
            raise error

        def on_retry(number, delay, error):
            self.pipeline.on_retry(ctx, number, delay)

        return call_with_retry(attempt, self.retry_policy, self.clock, self.rng, on_retry)

    def send_plain(self, request):
        """Retries and the breaker, but no hooks: for the OAuth token endpoint."""
        def attempt(number):
            self.breaker.check()
            try:
                response = self.transport.send(request, self.timeout_seconds)
            except ConnectorError as failure:
                self.breaker.record(failure)
                raise
            if response.status >= 500 or response.status in (408, 429):
                error = error_for_response(response, self.clock.time())
                self.breaker.record(error)
                raise error
            self.breaker.record(None)
            return response  # 4xx is reported by the caller, which knows it is the token endpoint

        return call_with_retry(attempt, self.retry_policy, self.clock, self.rng)
