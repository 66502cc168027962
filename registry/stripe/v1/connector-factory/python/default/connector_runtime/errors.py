"""Error codes (contract section 5) and the exception that carries them to the CLI."""
from __future__ import annotations

NETWORK_ERROR = "NETWORK_ERROR"
TIMEOUT = "TIMEOUT"
AUTH_FAILED = "AUTH_FAILED"
RATE_LIMIT = "RATE_LIMIT"
INVALID_REQUEST = "INVALID_REQUEST"
SERVER_ERROR = "SERVER_ERROR"
PARSING_ERROR = "PARSING_ERROR"
VALIDATION_ERROR = "VALIDATION_ERROR"
CANCELLED = "CANCELLED"
UNSUPPORTED = "UNSUPPORTED"

ALL_CODES = (
    NETWORK_ERROR, TIMEOUT, AUTH_FAILED, RATE_LIMIT, INVALID_REQUEST,
    SERVER_ERROR, PARSING_ERROR, VALIDATION_ERROR, CANCELLED, UNSUPPORTED,
)

# The `retryable` flag of the error line says whether running again later may help.
# Whether the runtime itself retries is decided per HTTP status in retry.py.
RETRYABLE_CODES = frozenset({NETWORK_ERROR, TIMEOUT, RATE_LIMIT, SERVER_ERROR})


class ConnectorError(Exception):
    """A failure with a contract error code. Everything the CLI reports is one of these."""

    def __init__(self, code, message, status=None, request_id=None, stream=None,
                 retry_after=None, retryable=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.stream = stream
        # Seconds the server asked us to wait (Retry-After), if it said so.
        self.retry_after = retry_after
        self.retryable = (code in RETRYABLE_CODES) if retryable is None else retryable
        # Set by the circuit breaker: an error raised without calling the API is never retried.
        self.fail_fast = False

    def to_dict(self):
        """The ERROR line of contract section 4."""
        return {
            "type": "ERROR",
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "status": self.status,
            "request_id": self.request_id,
            "stream": self.stream,
        }

    def __repr__(self):
        return "ConnectorError(%s, %r, status=%r)" % (self.code, self.message, self.status)


class Cancelled(BaseException):
    """Raised from the SIGTERM handler. A BaseException so that no `except Exception` swallows it."""


def code_for_status(status):
    """Map a non-2xx HTTP status to an error code."""
    if status in (401, 403):
        return AUTH_FAILED
    if status == 429:
        return RATE_LIMIT
    if status == 408:
        # 408 is retried like a timeout, so it is reported as one.
        return TIMEOUT
    if 500 <= status <= 599:
        return SERVER_ERROR
    return INVALID_REQUEST
