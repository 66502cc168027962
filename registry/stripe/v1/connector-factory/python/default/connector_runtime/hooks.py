"""The request pipeline: hooks at four points, run in priority order.

  before_request(ctx, request)   may change the request (or return a new one)
  after_response(ctx, response)  sees every response, error statuses included (or returns a new one)
  on_error(ctx, error)           sees every failed attempt
  on_retry(ctx, attempt, delay)  called before sleeping `delay` seconds; `attempt` is the one that failed

Lower priority runs first; equal priorities keep registration order. Auth, rate limiting
and logging are registered here like any custom hook.
"""
from __future__ import annotations

POINTS = ("before_request", "after_response", "on_error", "on_retry")

PRIORITY_AUTH = 10
PRIORITY_DEFAULT = 50
PRIORITY_RATE_LIMIT = 90
PRIORITY_LOGGING = 100


class Context:
    """What a hook knows about the request being made."""

    def __init__(self, stream=None, page=0):
        self.stream = stream
        self.page = page
        self.attempt = 0
        self.error = None  # the last error of this request, if any
        self.data = {}     # free space for custom hooks

    def __repr__(self):
        return "Context(stream=%r, page=%r, attempt=%r)" % (self.stream, self.page, self.attempt)


class Pipeline:
    def __init__(self):
        self._hooks = {point: [] for point in POINTS}
        self._counter = 0

    def register(self, point, fn, priority=PRIORITY_DEFAULT):
        if point not in self._hooks:
            raise ValueError("unknown hook point %r (expected one of %s)" % (point, ", ".join(POINTS)))
        self._counter += 1
        self._hooks[point].append((priority, self._counter, fn))
        # Sorting on (priority, registration number) keeps ties in registration order.
        self._hooks[point].sort(key=lambda entry: (entry[0], entry[1]))

    def add(self, obj, priority=PRIORITY_DEFAULT):
        """Register every method of `obj` named after a hook point."""
        for point in POINTS:
            fn = getattr(obj, point, None)
            if callable(fn):
                self.register(point, fn, priority)

    def hooks(self, point):
        return [fn for _, _, fn in self._hooks[point]]

    def before_request(self, ctx, request):
        for fn in self.hooks("before_request"):
            result = fn(ctx, request)
            if result is not None:
                request = result
        return request

    def after_response(self, ctx, response):
        for fn in self.hooks("after_response"):
            result = fn(ctx, response)
            if result is not None:
                response = result
        return response

    def on_error(self, ctx, error):
        for fn in self.hooks("on_error"):
            fn(ctx, error)

    def on_retry(self, ctx, attempt, delay):
        for fn in self.hooks("on_retry"):
            fn(ctx, attempt, delay)
