/**
 * Request / Response values and the fetch transport.
 *
 * The transport returns a Response for every HTTP status (turning statuses into errors is the
 * client's job, after the hooks have seen the response) and throws ConnectorError only for
 * TIMEOUT and NETWORK_ERROR (and VALIDATION_ERROR for a URL fetch cannot use). Its deadline
 * covers the whole response: one AbortController is armed for `timeout` seconds before the
 * request starts and still armed while the body is read, so a server that trickles bytes cannot
 * stretch one request past it.
 */
import * as errors from "./errors.js";
import { Cancelled, ConnectorError } from "./errors.js";
import { bytesRepr, floatText, parseJson, pyStr, urlencode } from "./format.js";

export type ParamPair = [string, unknown];

function paramText(value: unknown): string {
  if (typeof value === "boolean") return value ? "true" : "false";
  return pyStr(value);
}

export class Request {
  readonly method: string;
  /** Without the query parameters below. */
  url: string;
  /** [name, value] pairs appended as the query string. */
  params: ParamPair[];
  headers: Record<string, string>;
  /** Bytes (or text) sent as the body, or null. */
  body: Uint8Array | string | null;

  constructor(
    method: string,
    url: string,
    params: ParamPair[] = [],
    headers: Record<string, string> = {},
    body: Uint8Array | string | null = null,
  ) {
    this.method = method.toUpperCase();
    this.url = url;
    this.params = params.map(([name, value]) => [name, value] as ParamPair);
    this.headers = { ...headers };
    this.body = body;
  }

  fullUrl(): string {
    if (this.params.length === 0) return this.url;
    const pairs = this.params.map(([name, value]) => [String(name), paramText(value)] as [string, string]);
    return this.url + (this.url.includes("?") ? "&" : "?") + urlencode(pairs);
  }

  /** Replace (or add) one query parameter. */
  setParam(name: string, value: unknown): void {
    this.params = this.params.filter(([n]) => n !== name);
    this.params.push([name, value]);
  }

  copy(): Request {
    return new Request(this.method, this.url, this.params, this.headers, this.body);
  }
}

/** Case-insensitive, multi-valued response headers. */
export class Headers {
  private readonly list: Array<[string, string]>;

  constructor(items: Iterable<[string, string]> | Record<string, string> = []) {
    const pairs: Iterable<[string, string]> =
      Symbol.iterator in Object(items) ? (items as Iterable<[string, string]>) : Object.entries(items);
    this.list = Array.from(pairs, ([k, v]) => [String(k), String(v)] as [string, string]);
  }

  get(name: string): string | null {
    const lower = name.toLowerCase();
    for (const [key, value] of this.list) {
      if (key.toLowerCase() === lower) return value;
    }
    return null;
  }

  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    return this.list.filter(([key]) => key.toLowerCase() === lower).map(([, value]) => value);
  }

  items(): Array<[string, string]> {
    return this.list.map(([k, v]) => [k, v]);
  }
}

export class Response {
  readonly headers: Headers;

  constructor(
    public status: number,
    headers: Headers | Record<string, string> | Iterable<[string, string]> = {},
    public body: Uint8Array = new Uint8Array(0),
    public url = "",
    public request: Request | null = null,
    /** Seconds from sending to the last body byte. */
    public elapsed = 0,
  ) {
    this.headers = headers instanceof Headers ? headers : new Headers(headers);
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  get requestId(): string | null {
    return this.headers.get("X-Request-Id") || this.headers.get("Request-Id") || null;
  }

  header(name: string): string | null {
    return this.headers.get(name);
  }

  text(): string {
    return new TextDecoder("utf-8").decode(this.body);
  }

  json(): unknown {
    try {
      return parseJson(new TextDecoder("utf-8", { fatal: true }).decode(this.body));
    } catch (exc) {
      const reason = exc instanceof Error ? exc.message : String(exc);
      throw new ConnectorError(
        errors.PARSING_ERROR,
        `response from ${this.url} is not valid JSON (${reason}): ${bytesRepr(this.body.subarray(0, 120))}`,
        { status: this.status, requestId: this.requestId },
      );
    }
  }
}

/** Anything that can send a Request: the fetch transport, or a fake in tests. */
export interface Transport {
  send(request: Request, timeoutSeconds: number): Promise<Response>;
}

function timeoutError(url: string, timeout: number): ConnectorError {
  return new ConnectorError(errors.TIMEOUT, `no complete response from ${url} within ${floatText(timeout)}s`);
}

const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"]);
const SLOW = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"]);

interface ErrorWithCause {
  name?: string;
  message?: string;
  code?: string;
  cause?: unknown;
  errors?: unknown[];
}

function describeCause(exc: unknown): { code: string; text: string; name: string } {
  let cause = (exc as ErrorWithCause)?.cause as ErrorWithCause | undefined;
  if (!cause) cause = exc as ErrorWithCause;
  let text = cause.message || "";
  if (!text && Array.isArray(cause.errors) && cause.errors.length > 0) {
    text = (cause.errors as ErrorWithCause[]).map((e) => e?.message ?? String(e)).join("; ");
  }
  return { code: cause.code ?? "", text: text || String(cause), name: cause.name ?? "Error" };
}

/** Sends one Request with the built-in fetch (Node.js 20+). */
export class FetchTransport implements Transport {
  /** `cancel`, when given, aborts a request in flight with Cancelled (SIGINT / SIGTERM). */
  constructor(private readonly cancel?: AbortSignal) {}

  async send(request: Request, timeout: number): Promise<Response> {
    const url = request.fullUrl();
    if (this.cancel?.aborted) throw new Cancelled();
    try {
      new URL(url);
    } catch (exc) {
      throw new ConnectorError(errors.VALIDATION_ERROR, `bad URL ${url}: ${(exc as Error).message}`);
    }
    const controller = new AbortController();
    let timedOut = false;
    let cancelled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, Math.max(1, Math.min(timeout * 1000, 2 ** 31 - 1)));
    const onCancel = (): void => {
      cancelled = true;
      controller.abort();
    };
    this.cancel?.addEventListener("abort", onCancel, { once: true });
    const started = performance.now();
    try {
      const init: RequestInit = {
        method: request.method,
        headers: request.headers,
        signal: controller.signal,
        redirect: "follow",
      };
      if (request.body !== null) init.body = request.body;
      const res = await fetch(url, init);
      const body = new Uint8Array(await res.arrayBuffer());
      const headers = new Headers(Array.from(res.headers.entries()));
      return new Response(res.status, headers, body, url, request, (performance.now() - started) / 1000);
    } catch (exc) {
      if (cancelled) throw new Cancelled();
      if (timedOut) throw timeoutError(url, timeout);
      if (exc instanceof ConnectorError || exc instanceof Cancelled) throw exc;
      const cause = describeCause(exc);
      if (SLOW.has(cause.code)) throw timeoutError(url, timeout);
      if (exc instanceof TypeError && exc.message !== "fetch failed") {
        throw new ConnectorError(errors.VALIDATION_ERROR, `bad URL ${url}: ${exc.message}`);
      }
      if (UNREACHABLE.has(cause.code)) {
        throw new ConnectorError(errors.NETWORK_ERROR, `cannot reach ${url}: ${cause.text}`);
      }
      throw new ConnectorError(errors.NETWORK_ERROR, `connection to ${url} failed: ${cause.name}: ${cause.text}`);
    } finally {
      clearTimeout(timer);
      this.cancel?.removeEventListener("abort", onCancel);
    }
  }
}
