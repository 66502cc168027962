/** Shared test helpers: a fake clock, a loopback HTTP server, temp connectors, in-process and real CLI runs. */
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { main } from "../src/runtime/cli.js";
import type { Clock } from "../src/runtime/clock.js";
import type { Rng } from "../src/runtime/retry.js";

const HERE = dirname(fileURLToPath(import.meta.url)); // dist-test/test
/** The compiled runtime and entry point the tests run against (dist-test/src). */
export const COMPILED_SRC = resolve(HERE, "..", "src");

/** sleep() advances time instantly and remembers each wait. */
export class FakeClock implements Clock {
  mono = 1000.0;
  sleeps: number[] = [];

  constructor(public wall = 1_700_000_000.0) {}

  time(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  async sleep(seconds: number): Promise<void> {
    this.sleeps.push(seconds);
    this.advance(seconds);
  }

  advance(seconds: number): void {
    this.wall += seconds;
    this.mono += seconds;
  }
}

/** An Rng returning the given values in turn (then the last one). */
export class SeqRandom implements Rng {
  private readonly values: number[];

  constructor(...values: number[]) {
    this.values = values;
  }

  random(): number {
    return this.values.length > 1 ? (this.values.shift() as number) : this.values[0];
  }
}

/** A seeded generator, for tests that want many different but repeatable draws. */
export function seeded(seed: number): Rng {
  let state = seed >>> 0 || 1;
  return {
    random(): number {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      return state / 2 ** 32;
    },
  };
}

/** One request as the server saw it. */
export class Seen {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string> = {};
  readonly rawQuery: string;
  readonly headers: Record<string, string> = {};

  constructor(readonly req: http.IncomingMessage, readonly res: http.ServerResponse, readonly body: Buffer) {
    const url = new URL(req.url ?? "/", "http://placeholder");
    this.method = req.method ?? "GET";
    this.path = url.pathname;
    this.rawQuery = url.search.replace(/^\?/, "");
    for (const [k, v] of url.searchParams) this.query[k] = v;
    for (const [k, v] of Object.entries(req.headers)) this.headers[k] = Array.isArray(v) ? v.join(", ") : String(v);
  }

  form(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(this.body.toString("utf8"))) out[k] = v;
    return out;
  }
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

/** A canned response; objects and arrays are sent as JSON, strings and buffers as they are. */
export function reply(status = 200, body?: unknown, headers: Record<string, string | string[]> = {}): Reply {
  let payload: Buffer;
  if (body === undefined || body === null) payload = Buffer.alloc(0);
  else if (Buffer.isBuffer(body)) payload = body;
  else if (typeof body === "string") payload = Buffer.from(body, "utf8");
  else payload = Buffer.from(JSON.stringify(body), "utf8");
  return { status, headers: { ...headers }, body: payload };
}

export type Route = (seen: Seen) => Reply | null | Promise<Reply | null>;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * An HTTP server on 127.0.0.1. `route(seen)` returns reply(...) or null when it wrote (or
 * dropped) the response itself through seen.res.
 */
export class LocalServer {
  readonly requests: Seen[] = [];
  readonly errors: unknown[] = [];
  stopping = false;
  url = "";
  private readonly server: http.Server;

  constructor(private readonly route: Route) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void this.handle(req, res, Buffer.concat(chunks)));
    });
  }

  static async start(route: Route): Promise<LocalServer> {
    const server = new LocalServer(route);
    await new Promise<void>((ok) => server.server.listen(0, "127.0.0.1", ok));
    server.url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): Promise<void> {
    const seen = new Seen(req, res, body);
    this.requests.push(seen);
    try {
      const result = await this.route(seen);
      if (result === null) return;
      const headers: Record<string, string | string[]> = { "Content-Type": "application/json", ...result.headers };
      headers["Content-Length"] = String(result.body.length);
      res.writeHead(result.status, headers);
      res.end(result.body);
    } catch (exc) {
      // A bug in a test route: make it visible, not a hang-up.
      this.errors.push(exc);
      if (!res.headersSent) res.writeHead(599);
      res.end(`test route failed: ${String(exc)}`);
    }
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

/** A loopback port with nothing listening on it. */
export async function freePort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

export const SIMPLE_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: {
    id: { type: ["integer", "string"] },
    updated_at: { type: ["string", "null"] },
    created: { type: ["integer", "null"] },
    name: { type: ["string", "null"] },
  },
  required: ["id"],
};

export type Json = Record<string, unknown>;

export function stream(name = "items", path = "/items", extra: Json = {}): Json {
  return {
    name,
    path,
    method: "GET",
    params: {},
    record_selector: "data",
    primary_key: ["id"],
    pagination: { type: "none" },
    schema: `schemas/${name}.json`,
    ...extra,
  };
}

export function manifest(streams: Json[], auth: Json | null = null, extra: Json = {}): Json {
  return {
    name: "testapi",
    version: "v1",
    author: "tester",
    language: "typescript",
    implementation: "default",
    description: "test connector",
    run: { command: ["node", "dist/main.js"] },
    base_url: "https://api.invalid",
    auth: auth ?? { type: "none" },
    headers: {},
    defaults: {},
    streams,
    ...extra,
  };
}

/** A throwaway implementation folder: manifest, schemas and (optionally) the compiled runtime. */
export class TempConnector {
  readonly dir: string;

  constructor(manifestData: Json, options: { withRuntime?: boolean; files?: Record<string, unknown> } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "cf-ts-test-"));
    mkdirSync(join(this.dir, "schemas"));
    this.write("connector.json", manifestData);
    for (const spec of manifestData.streams as Json[]) {
      this.write((spec.schema as string) || `schemas/${spec.name as string}.json`, SIMPLE_SCHEMA);
    }
    for (const [name, content] of Object.entries(options.files ?? {})) this.write(name, content);
    if (options.withRuntime) {
      cpSync(COMPILED_SRC, join(this.dir, "dist"), { recursive: true });
      this.write("package.json", { type: "module", private: true });
    }
  }

  write(name: string, content: unknown): string {
    const path = join(this.dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content), "utf8");
    return path;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function baseConfig(serverUrl: string, extra: Json = {}): Json {
  return {
    base_url: serverUrl,
    credentials: {},
    timeout_seconds: 2.0,
    retry: { max_attempts: 3, initial_delay_seconds: 0.01, max_delay_seconds: 0.05, budget_seconds: 5.0 },
    ...extra,
  };
}

function jsonLines(text: string): Json[] {
  return text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Json);
}

/** Outcome of one CLI run, with stdout/stderr parsed as JSON lines. */
export class Run {
  readonly messages: Json[];
  readonly logs: Json[];

  constructor(readonly code: number | null, readonly outText: string, readonly errText: string) {
    this.messages = jsonLines(outText);
    this.logs = jsonLines(errText);
  }

  of(kind: string): Json[] {
    return this.messages.filter((m) => m.type === kind);
  }

  get records(): Json[] {
    return this.of("RECORD").map((m) => m.record as Json);
  }

  get error(): Json | null {
    const errors = this.logs.filter((line) => line.type === "ERROR");
    return errors.length > 0 ? errors[errors.length - 1] : null;
  }
}

export class StringSink {
  text = "";

  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface CliOptions {
  config?: unknown;
  args?: string[];
  clock?: Clock;
  rng?: Rng;
  state?: unknown;
  catalog?: unknown;
}

/** Run cli.main in this process against a TempConnector; config/state/catalog files go in its folder. */
export async function runCli(connector: TempConnector, options: CliOptions = {}): Promise<Run> {
  const argv = [...(options.args ?? [])];
  if (options.config !== undefined) argv.push("--config", connector.write("config.json", options.config));
  if (options.state !== undefined) argv.push("--state", connector.write("state.json", options.state));
  if (options.catalog !== undefined) argv.push("--catalog", connector.write("catalog.json", options.catalog));
  const out = new StringSink();
  const err = new StringSink();
  const code = await main(connector.dir, argv, {
    stdout: out,
    stderr: err,
    clock: options.clock,
    rng: options.rng,
    signals: false,
  });
  return new Run(code, out.text, err.text);
}

export interface Spawned {
  child: ReturnType<typeof spawn>;
  done: Promise<Run>;
}

/** Start `node dist/main.js ...args` in `dir` (the real entry point, as the spec tests run it). */
export function spawnMain(dir: string, args: string[], timeoutMs = 30_000): Spawned {
  const child = spawn(process.execPath, ["dist/main.js", ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (err += c.toString("utf8")));
  const done = new Promise<Run>((ok, fail) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new Error(`node dist/main.js ${args.join(" ")} did not finish in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      ok(new Run(code, out, err));
    });
  });
  return { child, done };
}

export function runMain(dir: string, ...args: string[]): Promise<Run> {
  return spawnMain(dir, args).done;
}

/** Per-test resources, removed when the test ends (servers closed, temp folders deleted). */
export class Env {
  private readonly servers: LocalServer[] = [];
  private readonly connectors: TempConnector[] = [];

  constructor(t: TestContext) {
    t.after(async () => {
      for (const server of this.servers) await server.close();
      for (const connector of this.connectors) connector.cleanup();
    });
  }

  async serve(route: Route): Promise<LocalServer> {
    const server = await LocalServer.start(route);
    this.servers.push(server);
    return server;
  }

  connector(manifestData: Json, options: { withRuntime?: boolean; files?: Record<string, unknown> } = {}): TempConnector {
    const connector = new TempConnector(manifestData, options);
    this.connectors.push(connector);
    return connector;
  }
}
