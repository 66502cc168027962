/** Retries: which failures, how long to wait, when to give up (contract section 5). */
import type { Clock } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { pyFloat } from "./format.js";

export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
export const JITTER = 0.25;

/** A source of uniform numbers in [0, 1): `{ random: Math.random }` unless a test injects one. */
export interface Rng {
  random(): number;
}

export const defaultRng: Rng = { random: () => Math.random() };

export interface RetryOptions {
  maxAttempts?: number;
  initialDelaySeconds?: number;
  maxDelaySeconds?: number;
  budgetSeconds?: number;
  maxRetryAfterSeconds?: number;
}

export class RetryPolicy {
  maxAttempts: number;
  initialDelaySeconds: number;
  maxDelaySeconds: number;
  budgetSeconds: number;
  maxRetryAfterSeconds: number;

  constructor(options: RetryOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.initialDelaySeconds = options.initialDelaySeconds ?? 0.5;
    this.maxDelaySeconds = options.maxDelaySeconds ?? 30.0;
    this.budgetSeconds = options.budgetSeconds ?? 120.0;
    this.maxRetryAfterSeconds = options.maxRetryAfterSeconds ?? 60.0;
  }

  /** Delay before retry n (1-based): min(max, initial * 2^(n-1)) * (1 + U[0, 0.25)). */
  backoff(retryNumber: number, rng: Rng): number {
    const base = Math.min(this.maxDelaySeconds, this.initialDelaySeconds * 2 ** (retryNumber - 1));
    return base * (1.0 + rng.random() * JITTER);
  }

  delayFor(retryNumber: number, error: ConnectorError, rng: Rng): number {
    // The server's Retry-After replaces our own schedule, within a cap.
    if (error.retryAfter !== null) return Math.min(error.retryAfter, this.maxRetryAfterSeconds);
    return this.backoff(retryNumber, rng);
  }
}

export function shouldRetry(error: ConnectorError): boolean {
  if (error.failFast) return false;
  if (error.status !== null) return RETRY_STATUSES.has(error.status);
  return error.code === errors.TIMEOUT || error.code === errors.NETWORK_ERROR;
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const HTTP_DATE = /^(?:[A-Za-z]{3},?\s+)?(\d{1,2})[\s-]+([A-Za-z]{3})[\s-]+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:(GMT|UTC|UT|Z)|([+-])(\d{2})(\d{2}))?$/i;

/** An HTTP-date (RFC 9110 IMF-fixdate, or RFC 2822 with a numeric zone) -> epoch seconds, or null. */
export function parseHttpDate(text: string): number | null {
  const m = HTTP_DATE.exec(text.trim());
  if (!m) return null;
  const month = MONTHS.indexOf(m[2].toLowerCase());
  if (month < 0) return null;
  let year = Number(m[3]);
  if (m[3].length === 2) year += year < 50 ? 2000 : 1900;
  const [day, hour, minute, second] = [Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? "0")];
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return null;
  let offset = 0;
  if (m[8] !== undefined) offset = (m[8] === "-" ? -1 : 1) * (Number(m[9]) * 3600 + Number(m[10]) * 60);
  return Date.UTC(year, month, day, hour, minute, second) / 1000 - offset;
}

/** Retry-After as delta-seconds or an HTTP-date -> seconds to wait (>= 0), or null if unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowEpoch: number): number | null {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  let seconds = pyFloat(text);
  if (seconds === null) {
    const when = parseHttpDate(text);
    if (when === null) return null;
    seconds = when - nowEpoch;
  }
  if (Number.isNaN(seconds)) return null;
  return Math.max(0.0, seconds);
}

export type OnRetry = (attempt: number, delay: number, error: ConnectorError) => unknown;

/**
 * Call attemptFn(attemptNumber) until it resolves, or throw its last error.
 *
 * Gives up when the error is not retryable, when maxAttempts calls were made, or when the
 * next wait would end past budgetSeconds after the first attempt started.
 */
export async function callWithRetry<T>(
  attemptFn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  clock: Clock,
  rng: Rng,
  onRetry?: OnRetry,
): Promise<T> {
  const started = clock.monotonic();
  let attempt = 1;
  for (;;) {
    try {
      return await attemptFn(attempt);
    } catch (error) {
      if (!(error instanceof ConnectorError)) throw error;
      if (!shouldRetry(error) || attempt >= policy.maxAttempts) throw error;
      const delay = policy.delayFor(attempt, error, rng);
      if (clock.monotonic() - started + delay > policy.budgetSeconds) throw error;
      if (onRetry) await onRetry(attempt, delay, error);
      await clock.sleep(delay);
      attempt += 1;
    }
  }
}
