/**
 * Circuit breaker: after `failureThreshold` consecutive failures, fail fast for `resetSeconds`,
 * then let one trial request through (half-open). A success closes it; a failed trial reopens it.
 *
 * Only failures that suggest the service is unwell count (5xx, timeouts, network errors).
 * Other answers (2xx, 4xx, 429) prove it is up and reset the count.
 */
import type { Clock } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";

export const CLOSED = "closed";
export const OPEN = "open";
export const HALF_OPEN = "half_open";
export type BreakerState = typeof CLOSED | typeof OPEN | typeof HALF_OPEN;

const COUNTED: ReadonlySet<string> = new Set([errors.SERVER_ERROR, errors.TIMEOUT, errors.NETWORK_ERROR]);

export class CircuitBreaker {
  readonly failureThreshold: number;
  state: BreakerState = CLOSED;
  failures = 0;
  openedAt = 0.0;
  lastError: ConnectorError | null = null;

  constructor(failureThreshold = 5, readonly resetSeconds = 30.0, readonly clock: Clock) {
    this.failureThreshold = Math.max(1, Math.trunc(failureThreshold));
  }

  /** Call before each request; throws instead of letting a request through while open. */
  check(): void {
    if (this.state !== OPEN) return;
    if (this.clock.monotonic() - this.openedAt >= this.resetSeconds) {
      this.state = HALF_OPEN;
      return;
    }
    const last = this.lastError;
    const error = new ConnectorError(
      last ? last.code : errors.SERVER_ERROR,
      `circuit breaker open after ${this.failures} consecutive failures; last: ${last ? last.message : "unknown"}`,
      { status: last ? last.status : null, requestId: last ? last.requestId : null },
    );
    error.failFast = true;
    throw error;
  }

  /** Record the outcome of one request: null for success, else its error. */
  record(error: ConnectorError | null): void {
    if (error === null || !COUNTED.has(error.code)) {
      this.state = CLOSED;
      this.failures = 0;
      return;
    }
    this.lastError = error;
    this.failures += 1;
    if (this.state === HALF_OPEN || this.failures >= this.failureThreshold) {
      this.state = OPEN;
      this.openedAt = this.clock.monotonic();
    }
  }
}
