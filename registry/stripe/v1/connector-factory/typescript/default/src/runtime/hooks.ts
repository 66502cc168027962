/**
 * The request pipeline: hooks at four points, run in priority order.
 *
 *   before_request(ctx, request)   may change the request (or return a new Request)
 *   after_response(ctx, response)  sees every response, error statuses included (or returns a new Response)
 *   on_error(ctx, error)           sees every failed attempt
 *   on_retry(ctx, attempt, delay)  called before sleeping `delay` seconds; `attempt` is the one that failed
 *
 * Lower priority runs first; equal priorities keep registration order. Auth, rate limiting
 * and logging are registered here like any custom hook. A hook may be async.
 */
import type { ConnectorError } from "./errors.js";
import { Request, Response } from "./http.js";

export const POINTS = ["before_request", "after_response", "on_error", "on_retry"] as const;
export type HookPoint = (typeof POINTS)[number];

export const PRIORITY_AUTH = 10;
export const PRIORITY_DEFAULT = 50;
export const PRIORITY_RATE_LIMIT = 90;
export const PRIORITY_LOGGING = 100;

/** What a hook knows about the request being made. */
export class Context {
  attempt = 0;
  /** The last error of this request, if any. */
  error: ConnectorError | null = null;
  /** Free space for custom hooks. */
  data: Record<string, unknown> = {};

  constructor(public stream: string | null = null, public page = 0) {}
}

export type HookFn = (ctx: Context, ...args: any[]) => unknown;

const CAMEL: Record<HookPoint, string> = {
  before_request: "beforeRequest",
  after_response: "afterResponse",
  on_error: "onError",
  on_retry: "onRetry",
};

interface Entry {
  priority: number;
  order: number;
  fn: HookFn;
}

export class Pipeline {
  private readonly entries: Record<HookPoint, Entry[]> = {
    before_request: [],
    after_response: [],
    on_error: [],
    on_retry: [],
  };
  private counter = 0;

  register(point: HookPoint, fn: HookFn, priority: number = PRIORITY_DEFAULT): void {
    if (!(POINTS as readonly string[]).includes(point)) {
      throw new Error(`unknown hook point '${String(point)}' (expected one of ${POINTS.join(", ")})`);
    }
    this.counter += 1;
    this.entries[point].push({ priority, order: this.counter, fn });
    // Sorting on (priority, registration number) keeps ties in registration order.
    this.entries[point].sort((a, b) => a.priority - b.priority || a.order - b.order);
  }

  /** Register every method of `obj` named after a hook point. */
  add(obj: object, priority: number = PRIORITY_DEFAULT): void {
    const record = obj as Record<string, unknown>;
    for (const point of POINTS) {
      const fn = record[point] ?? record[CAMEL[point]];
      if (typeof fn === "function") this.register(point, (fn as HookFn).bind(obj), priority);
    }
  }

  hooks(point: HookPoint): HookFn[] {
    return this.entries[point].map((entry) => entry.fn);
  }

  async before_request(ctx: Context, request: Request): Promise<Request> {
    for (const fn of this.hooks("before_request")) {
      const result = await fn(ctx, request);
      if (result instanceof Request) request = result;
    }
    return request;
  }

  async after_response(ctx: Context, response: Response): Promise<Response> {
    for (const fn of this.hooks("after_response")) {
      const result = await fn(ctx, response);
      if (result instanceof Response) response = result;
    }
    return response;
  }

  async on_error(ctx: Context, error: ConnectorError): Promise<void> {
    for (const fn of this.hooks("on_error")) await fn(ctx, error);
  }

  async on_retry(ctx: Context, attempt: number, delay: number): Promise<void> {
    for (const fn of this.hooks("on_retry")) await fn(ctx, attempt, delay);
  }
}
