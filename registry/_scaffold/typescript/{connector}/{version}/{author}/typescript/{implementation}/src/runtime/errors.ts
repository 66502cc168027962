/** Error codes (contract section 5) and the error that carries them to the CLI. */

export const NETWORK_ERROR = "NETWORK_ERROR";
export const TIMEOUT = "TIMEOUT";
export const AUTH_FAILED = "AUTH_FAILED";
export const RATE_LIMIT = "RATE_LIMIT";
export const INVALID_REQUEST = "INVALID_REQUEST";
export const SERVER_ERROR = "SERVER_ERROR";
export const PARSING_ERROR = "PARSING_ERROR";
export const VALIDATION_ERROR = "VALIDATION_ERROR";
export const CANCELLED = "CANCELLED";
export const UNSUPPORTED = "UNSUPPORTED";

export const ALL_CODES = [
  NETWORK_ERROR, TIMEOUT, AUTH_FAILED, RATE_LIMIT, INVALID_REQUEST,
  SERVER_ERROR, PARSING_ERROR, VALIDATION_ERROR, CANCELLED, UNSUPPORTED,
] as const;

export type ErrorCode = (typeof ALL_CODES)[number];

// The `retryable` flag of the error line says whether running again later may help.
// Whether the runtime itself retries is decided per HTTP status in retry.ts.
export const RETRYABLE_CODES: ReadonlySet<string> = new Set([NETWORK_ERROR, TIMEOUT, RATE_LIMIT, SERVER_ERROR]);

/** The ERROR line of contract section 4. */
export interface ErrorLine {
  type: "ERROR";
  code: string;
  message: string;
  retryable: boolean;
  status: number | null;
  request_id: string | null;
  stream: string | null;
}

export interface ErrorDetails {
  status?: number | null;
  requestId?: string | null;
  stream?: string | null;
  retryAfter?: number | null;
  retryable?: boolean;
}

/** A failure with a contract error code. Everything the CLI reports is one of these. */
export class ConnectorError extends Error {
  readonly code: string;
  status: number | null;
  requestId: string | null;
  stream: string | null;
  /** Seconds the server asked us to wait (Retry-After), if it said so. */
  retryAfter: number | null;
  retryable: boolean;
  /** Set by the circuit breaker: an error raised without calling the API is never retried. */
  failFast = false;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message);
    this.name = "ConnectorError";
    this.code = code;
    this.status = details.status ?? null;
    this.requestId = details.requestId ?? null;
    this.stream = details.stream ?? null;
    this.retryAfter = details.retryAfter ?? null;
    this.retryable = details.retryable ?? RETRYABLE_CODES.has(code);
  }

  toDict(): ErrorLine {
    return {
      type: "ERROR",
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      status: this.status,
      request_id: this.requestId,
      stream: this.stream,
    };
  }
}

/**
 * Raised when SIGINT/SIGTERM ends the run. Not a ConnectorError, so no retry loop or
 * per-stream handler mistakes it for an API failure.
 */
export class Cancelled extends Error {
  constructor() {
    super("cancelled by signal");
    this.name = "Cancelled";
  }
}

/** Map a non-2xx HTTP status to an error code. */
export function codeForStatus(status: number): string {
  if (status === 401 || status === 403) return AUTH_FAILED;
  if (status === 429) return RATE_LIMIT;
  // 408 is retried like a timeout, so it is reported as one.
  if (status === 408) return TIMEOUT;
  if (status >= 500 && status <= 599) return SERVER_ERROR;
  return INVALID_REQUEST;
}
