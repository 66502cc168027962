/** Client-side rate limiting: a token bucket that also obeys the server's rate-limit headers. */
import type { Clock } from "./clock.js";
import type { Context } from "./hooks.js";
import type { Headers, Request, Response } from "./http.js";
import type { Logger } from "./log.js";
import { asFloat, pyFloat } from "./format.js";

// Epoch values are far above this; smaller X-RateLimit-Reset values are read as
// "seconds from now", which some APIs send despite the usual convention.
const EPOCH_THRESHOLD = 1_000_000_000;
/** Never wait longer than this for a reset header (a bogus value must not hang the run). */
export const MAX_HEADER_WAIT_SECONDS = 3600.0;

/** `rate` tokens per second, holding at most `burst`. A rate of null (or 0) means unlimited. */
export class TokenBucket {
  readonly rate: number | null;
  readonly burst: number;
  tokens: number;
  private last: number;
  /** Monotonic time before which nothing may be sent. */
  blockedUntil = 0.0;

  constructor(rate: number | null | undefined, burst: number | null | undefined, readonly clock: Clock) {
    this.rate = rate ? Number(rate) : null;
    this.burst = Math.max(1.0, Number(burst || 1));
    this.tokens = this.burst;
    this.last = clock.monotonic();
  }

  private refill(): void {
    const now = this.clock.monotonic();
    if (this.rate) this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.rate);
    this.last = now;
  }

  /** Wait until one request may be sent; resolve to the seconds waited. */
  async acquire(): Promise<number> {
    let waited = 0.0;
    const hold = this.blockedUntil - this.clock.monotonic();
    if (hold > 0) {
      await this.clock.sleep(hold);
      waited += hold;
    }
    if (this.rate) {
      this.refill();
      if (this.tokens < 1.0) {
        const need = (1.0 - this.tokens) / this.rate;
        await this.clock.sleep(need);
        waited += need;
        this.refill();
        this.tokens = Math.max(this.tokens, 1.0); // we waited exactly long enough
      }
      this.tokens -= 1.0;
    }
    return waited;
  }

  /** When the server says nothing is left, hold every request until its reset. */
  adapt(headers: Headers): void {
    let remaining = headers.get("X-RateLimit-Remaining");
    if (remaining === null) remaining = headers.get("RateLimit-Remaining");
    if (remaining === null) return;
    const left = pyFloat(remaining);
    if (left === null || left > 0 || Number.isNaN(left)) return;
    let wait = 1.0; // no reset given: a short pause rather than none
    const xReset = headers.get("X-RateLimit-Reset");
    const reset = headers.get("RateLimit-Reset");
    if (xReset !== null) {
      const value = pyFloat(xReset);
      if (value !== null) wait = value > EPOCH_THRESHOLD ? value - this.clock.time() : value;
    } else if (reset !== null) {
      const value = pyFloat(reset);
      if (value !== null) wait = value;
    }
    wait = Math.min(Math.max(wait, 0.0), MAX_HEADER_WAIT_SECONDS);
    if (Number.isNaN(wait)) wait = 0.0;
    this.blockedUntil = Math.max(this.blockedUntil, this.clock.monotonic() + wait);
  }
}

/** Pipeline hook: take a token before each attempt (retries included), adapt after each response. */
export class RateLimitHook {
  constructor(readonly bucket: TokenBucket, readonly logger: Logger | null = null) {}

  async before_request(ctx: Context, _request: Request): Promise<void> {
    const waited = await this.bucket.acquire();
    if (waited > 0 && this.logger !== null) {
      this.logger.info("waited for the rate limit", {
        event: "rate_limit_wait",
        stream: ctx.stream,
        delay_seconds: asFloat(Math.round(waited * 1000) / 1000),
      });
    }
  }

  after_response(_ctx: Context, response: Response): void {
    this.bucket.adapt(response.headers);
  }
}
