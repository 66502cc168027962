/**
 * The connector runtime: everything a connector needs except the API-specific part.
 *
 * The API-specific part lives in ../../connector.json (see docs/connector-contract.md in the
 * Connector Factory repository). These modules are copied into each connector and owned by it,
 * so they use Node.js built-ins only (Node 20+: fetch, AbortController, node:fs).
 *
 * Module map (read in this order):
 *   errors      error codes and the ConnectorError class
 *   format      JSON text, URL quoting and repr() exactly as the Python runtime writes them
 *   clock       wall/monotonic time and sleep behind one object (tests inject a fake)
 *   log         JSON log lines on stderr and secret redaction
 *   config      the --config file turned into Settings
 *   manifest    connector.json turned into Manifest / StreamSpec
 *   hooks       the request pipeline (before_request, after_response, on_error, on_retry)
 *   http        Request / Response and the fetch transport with a whole-response deadline
 *   retry       backoff with jitter, Retry-After, attempt and time budgets
 *   ratelimit   token bucket that also obeys rate-limit response headers
 *   breaker     circuit breaker
 *   auth        none, api_key, bearer, basic, oauth2
 *   client      one logical request: pipeline + breaker + retry around the transport
 *   pagination  record extraction and the pagination styles
 *   state       bookmarks and incremental filtering
 *   singer      SCHEMA / RECORD / STATE writers
 *   sync        runs one stream page by page
 *   cli         the command line (--about, --discover, sync)
 *
 * A hooks file imports what it needs from here, e.g. `import { Pipeline } from "./runtime/index.js"`.
 */

export const RUNTIME_VERSION = "0.1.0";

export * from "./errors.js";
export { Context, Pipeline, POINTS, PRIORITY_AUTH, PRIORITY_DEFAULT, PRIORITY_LOGGING, PRIORITY_RATE_LIMIT } from "./hooks.js";
export type { HookFn, HookPoint } from "./hooks.js";
export { Headers, Request, Response } from "./http.js";
export type { Transport } from "./http.js";
export { getPath } from "./pagination.js";
export { dumps, parseJson } from "./format.js";
export { main } from "./cli.js";
