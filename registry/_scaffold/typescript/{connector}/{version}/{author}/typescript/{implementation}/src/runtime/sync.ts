/** Running streams: build the client once, then fetch each stream page by page. */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Auth, buildAuth } from "./auth.js";
import { CircuitBreaker } from "./breaker.js";
import { ApiClient } from "./client.js";
import { type Clock, formatRfc3339 } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { isObject, pyStr, quote, sortedDumps, typeName } from "./format.js";
import { Context, PRIORITY_AUTH, PRIORITY_LOGGING, PRIORITY_RATE_LIMIT, Pipeline } from "./hooks.js";
import { FetchTransport, Request, type Transport } from "./http.js";
import { type Logger, LoggingHook, type Redactor } from "./log.js";
import type { Manifest, StreamSpec } from "./manifest.js";
import { type Extractor, Page, makeExtractor, makePaginator, type NoPagination } from "./pagination.js";
import { RateLimitHook, TokenBucket } from "./ratelimit.js";
import type { Settings } from "./config.js";
import type { Rng } from "./retry.js";
import type { SingerWriter } from "./singer.js";
import { Incremental, type State } from "./state.js";

export const USER_AGENT = "connector-factory-runtime/0.1";
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

type TransformRecord = (stream: string, record: Record<string, unknown>) => unknown;
type ExtractRecords = (stream: string, body: unknown) => unknown;

/** What a manifest's `hooks` file contributed. */
export class CustomHooks {
  readonly transformRecord: TransformRecord | null;
  readonly extractRecords: ExtractRecords | null;

  constructor(readonly module: Record<string, unknown> | null = null) {
    const pick = (...names: string[]): unknown => {
      for (const name of names) {
        const value = module?.[name] ?? (module?.default as Record<string, unknown> | undefined)?.[name];
        if (typeof value === "function") return value;
      }
      return null;
    };
    this.transformRecord = pick("transform_record", "transformRecord") as TransformRecord | null;
    this.extractRecords = pick("extract_records", "extractRecords") as ExtractRecords | null;
  }
}

/**
 * The file to import for the manifest's `hooks`: a .js/.mjs file as named, or for a TypeScript
 * source under src/ the file tsc compiles it to under dist/ ("src/hooks.ts" -> "dist/hooks.js").
 */
export function hooksModulePath(dir: string, hooks: string): string {
  if (hooks.endsWith(".ts") && !hooks.endsWith(".d.ts")) {
    const inside = hooks.replace(/^(\.\/)?src\//, "");
    return join(dir, "dist", inside.slice(0, -3) + ".js");
  }
  return join(dir, hooks);
}

/** Import the manifest's hooks file and call its register(pipeline). */
export async function loadHooksFile(manifest: Manifest, pipeline: Pipeline): Promise<CustomHooks> {
  if (!manifest.hooks) return new CustomHooks();
  const path = hooksModulePath(manifest.dir, manifest.hooks);
  if (!existsSync(path) || !statSync(path).isFile()) {
    const built = path === join(manifest.dir, manifest.hooks) ? "" : ` (compiled to ${path}: run the build first)`;
    throw new ConnectorError(errors.VALIDATION_ERROR, `hooks file ${manifest.hooks} not found${built}`);
  }
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const custom = new CustomHooks(module);
  const register = module.register ?? (module.default as Record<string, unknown> | undefined)?.register;
  if (typeof register === "function") await register(pipeline);
  return custom;
}

export interface RuntimeOptions {
  transport?: Transport;
  rng?: Rng;
}

/** The wired-up parts shared by all streams of one run. */
export class Runtime {
  readonly pipeline = new Pipeline();
  readonly client: ApiClient;
  readonly auth: Auth;
  custom: CustomHooks = new CustomHooks();

  private constructor(
    readonly manifest: Manifest,
    readonly settings: Settings,
    readonly logger: Logger,
    redactor: Redactor,
    readonly clock: Clock,
    options: RuntimeOptions,
  ) {
    const transport = options.transport ?? new FetchTransport();
    const breaker = new CircuitBreaker(settings.failureThreshold, settings.resetSeconds, clock);
    this.client = new ApiClient(transport, this.pipeline, settings.retry, breaker, clock, settings.timeoutSeconds, options.rng);
    const authSpec = settings.tokenUrl ? { ...manifest.auth, token_url: settings.tokenUrl } : manifest.auth;
    this.auth = buildAuth(authSpec, settings.credentials, settings.baseUrl, {
      redactor,
      sendTokenRequest: (request) => this.client.sendPlain(request),
      clock,
      logger,
    });
    this.client.auth = this.auth;
    this.pipeline.add(this.auth, PRIORITY_AUTH);
    const bucket = new TokenBucket(settings.requestsPerSecond, settings.burst, clock);
    this.pipeline.add(new RateLimitHook(bucket, logger), PRIORITY_RATE_LIMIT);
    this.pipeline.add(new LoggingHook(logger), PRIORITY_LOGGING);
  }

  static async create(
    manifest: Manifest,
    settings: Settings,
    logger: Logger,
    redactor: Redactor,
    clock: Clock,
    options: RuntimeOptions = {},
  ): Promise<Runtime> {
    const runtime = new Runtime(manifest, settings, logger, redactor, clock, options);
    runtime.custom = await loadHooksFile(manifest, runtime.pipeline);
    return runtime;
  }
}

/** Replace {name} in a path or parameter with the config's params[name]. */
export function fillPlaceholders(text: string, params: Record<string, unknown>, where: string): string {
  return text.replace(PLACEHOLDER, (_match, name: string) => {
    if (!Object.prototype.hasOwnProperty.call(params, name)) {
      throw new ConnectorError(errors.VALIDATION_ERROR, `${where} needs config.params.${name}`);
    }
    return quote(pyStr(params[name]), "");
  });
}

export function firstRequest(
  runtime: Runtime,
  stream: StreamSpec,
  paginator: NoPagination,
  incremental: Incremental | null,
): Request {
  const settings = runtime.settings;
  const path = fillPlaceholders(stream.path, settings.params, `stream ${stream.name} path`);
  const url =
    path.startsWith("http://") || path.startsWith("https://") ? path : settings.baseUrl + "/" + path.replace(/^\/+/, "");
  const params: Array<[string, unknown]> = [];
  for (const [name, raw] of Object.entries(stream.params)) {
    const value =
      typeof raw === "string" ? fillPlaceholders(raw, settings.params, `stream ${stream.name} param ${name}`) : raw;
    params.push([name, value]);
  }
  const request = new Request(stream.method, url, params, { Accept: "application/json", "User-Agent": USER_AGENT });
  Object.assign(request.headers, runtime.manifest.headers);
  for (const [name, value] of paginator.firstParams()) request.setParam(name, value);
  if (incremental !== null && incremental.requestParam) {
    const since = incremental.requestValue();
    if (since !== null) request.setParam(incremental.requestParam, since);
  }
  return request;
}

/** Emit SCHEMA, then RECORDs page by page, then STATE once the stream is complete. */
export async function syncStream(runtime: Runtime, stream: StreamSpec, state: State, writer: SingerWriter): Promise<void> {
  try {
    await syncOneStream(runtime, stream, state, writer);
  } catch (error) {
    if (error instanceof ConnectorError && error.stream === null) error.stream = stream.name;
    throw error;
  }
}

async function syncOneStream(runtime: Runtime, stream: StreamSpec, state: State, writer: SingerWriter): Promise<void> {
  const logger = runtime.logger;
  let incremental: Incremental | null = null;
  const cursorField = stream.cursorField;
  if (stream.incremental && cursorField !== null) {
    incremental = new Incremental(stream.incremental, state.bookmark(stream.name, cursorField),
      runtime.settings.startDate, state.bookmarkMark(stream.name, cursorField));
  }
  writer.schema(stream.name, stream.schema, stream.primaryKey, incremental && cursorField !== null ? [cursorField] : []);

  const paginator = makePaginator(stream.pagination, runtime.settings.pageSize, runtime.settings.baseUrl);
  const custom = runtime.custom;
  let extract: Extractor;
  if (custom.extractRecords !== null) {
    const hook = custom.extractRecords;
    extract = async (body) => {
      const records = await hook(stream.name, body);
      if (!Array.isArray(records)) {
        throw new ConnectorError(errors.PARSING_ERROR, `extract_records returned a ${typeName(records)}, not a list`);
      }
      return records;
    };
  } else {
    extract = makeExtractor(stream.recordSelector);
  }

  let request = firstRequest(runtime, stream, paginator, incremental);
  let pageNumber = 0;
  let previousFingerprint: string | null = null;
  let emitted = 0;
  for (;;) {
    pageNumber += 1;
    const ctx = new Context(stream.name, pageNumber);
    const response = await runtime.client.send(ctx, request);
    const body = response.json();
    const records = await extract(body);
    const extractedAt = formatRfc3339(runtime.clock.time());
    let pageEmitted = 0;
    for (let record of records) {
      if (!isObject(record)) {
        throw new ConnectorError(errors.PARSING_ERROR, `a record is a ${typeName(record)}, not an object`, {
          status: response.status,
          requestId: response.requestId,
        });
      }
      if (custom.transformRecord !== null) {
        const transformed = await custom.transformRecord(stream.name, record);
        if (transformed === null || transformed === undefined) continue; // the hook dropped it
        record = transformed;
      }
      if (incremental !== null) {
        if (!incremental.accept(record)) continue;
        incremental.observe(record as Record<string, unknown>);
      }
      writer.record(stream.name, record, extractedAt);
      pageEmitted += 1;
    }
    emitted += pageEmitted;
    logger.info(`page ${pageNumber} of ${stream.name}: ${records.length} records, ${pageEmitted} emitted`, {
      event: "page",
      stream: stream.name,
      page: pageNumber,
      records: records.length,
      emitted: pageEmitted,
    });
    if (records.length === 0) break;
    // Guard for servers that ignore the paging parameter and repeat the same page.
    const fingerprint = sortedDumps(records);
    if (fingerprint === previousFingerprint) {
      logger.warn("page repeated the previous one; stopping", { event: "page", stream: stream.name });
      break;
    }
    previousFingerprint = fingerprint;
    const following = paginator.nextRequest(new Page(records, body, response));
    if (following === null) break;
    if (typeof following === "string") {
      request = new Request(request.method, following, [], request.headers);
    } else {
      request = request.copy();
      for (const [name, value] of following) request.setParam(name, value);
    }
  }
  // The bookmark is saved only once the stream has been read to its end: APIs often list
  // newest first, and a bookmark saved mid-stream would make a resumed run skip older records
  // it never read.
  if (incremental !== null && cursorField !== null) {
    if (incremental.bookmark !== null) {
      state.setBookmark(stream.name, cursorField, incremental.bookmark, incremental.bookmarkMark);
    }
    writer.state(state.toValue());
  }
  logger.info(`stream ${stream.name} done: ${emitted} records`, {
    event: "stream_done",
    stream: stream.name,
    records: emitted,
  });
}
