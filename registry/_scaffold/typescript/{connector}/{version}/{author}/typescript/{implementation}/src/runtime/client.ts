/**
 * One logical API request: hooks, circuit breaker and retries around the transport.
 *
 *     attempt n:  breaker.check -> before_request hooks (auth, custom, rate limit)
 *                 -> transport.send -> after_response hooks (rate limit adapts, custom, logging)
 *                 -> status check -> on success return; on failure on_error hooks, then maybe retry
 */
import type { Auth } from "./auth.js";
import type { CircuitBreaker } from "./breaker.js";
import type { Clock } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import type { Context, Pipeline } from "./hooks.js";
import type { Request, Response, Transport } from "./http.js";
import { type RetryPolicy, type Rng, callWithRetry, defaultRng, parseRetryAfter } from "./retry.js";

/** null for a 2xx response, else the ConnectorError it stands for. */
export function errorForResponse(response: Response, nowEpoch: number): ConnectorError | null {
  if (response.ok) return null;
  const status = response.status;
  const snippet = response.text().slice(0, 300).trim();
  const error = new ConnectorError(
    errors.codeForStatus(status),
    `HTTP ${status} from ${response.url}${snippet ? ": " + snippet : ""}`,
    { status, requestId: response.requestId },
  );
  error.retryAfter = parseRetryAfter(response.header("Retry-After"), nowEpoch);
  return error;
}

export class ApiClient {
  auth: Auth | null = null;
  readonly rng: Rng;

  constructor(
    readonly transport: Transport,
    readonly pipeline: Pipeline,
    readonly retryPolicy: RetryPolicy,
    readonly breaker: CircuitBreaker,
    readonly clock: Clock,
    public timeoutSeconds: number,
    rng?: Rng,
  ) {
    this.rng = rng ?? defaultRng;
  }

  /** Send `request` (retrying per policy) and resolve to the successful Response. */
  async send(ctx: Context, request: Request): Promise<Response> {
    try {
      return await this.sendWithRetry(ctx, request);
    } catch (error) {
      // An expired or revoked OAuth token: fetch a new one and try once more.
      if (error instanceof ConnectorError && error.status === 401 && this.auth !== null && this.auth.invalidate()) {
        return await this.sendWithRetry(ctx, request);
      }
      throw error;
    }
  }

  private sendWithRetry(ctx: Context, request: Request): Promise<Response> {
    const attempt = async (number: number): Promise<Response> => {
      ctx.attempt = number;
      this.breaker.check();
      const prepared = await this.pipeline.before_request(ctx, request.copy());
      let response: Response | null = null;
      let error: ConnectorError | null = null;
      try {
        response = await this.transport.send(prepared, this.timeoutSeconds);
      } catch (failure) {
        if (!(failure instanceof ConnectorError)) throw failure;
        error = failure;
      }
      if (response !== null) {
        response = await this.pipeline.after_response(ctx, response);
        error = errorForResponse(response, this.clock.time());
      }
      this.breaker.record(error);
      if (error === null) return response as Response;
      ctx.error = error;
      await this.pipeline.on_error(ctx, error);
      throw error;
    };
    const onRetry = (number: number, delay: number): Promise<void> => this.pipeline.on_retry(ctx, number, delay);
    return callWithRetry(attempt, this.retryPolicy, this.clock, this.rng, onRetry);
  }

  /** Retries and the breaker, but no hooks: for the OAuth token endpoint. */
  sendPlain(request: Request): Promise<Response> {
    const attempt = async (): Promise<Response> => {
      this.breaker.check();
      let response: Response;
      try {
        response = await this.transport.send(request, this.timeoutSeconds);
      } catch (failure) {
        if (failure instanceof ConnectorError) this.breaker.record(failure);
        throw failure;
      }
      if (response.status >= 500 || response.status === 408 || response.status === 429) {
        const error = errorForResponse(response, this.clock.time()) as ConnectorError;
        this.breaker.record(error);
        throw error;
      }
      this.breaker.record(null);
      return response; // 4xx is reported by the caller, which knows it is the token endpoint
    };
    return callWithRetry(attempt, this.retryPolicy, this.clock, this.rng);
  }
}
