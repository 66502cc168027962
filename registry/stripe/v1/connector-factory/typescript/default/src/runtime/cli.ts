/**
 * The command line (contract section 4):
 *
 *     node dist/main.js --about
 *     node dist/main.js --config C --discover
 *     node dist/main.js --config C [--catalog K] [--state S]
 *
 * Any failure ends with one ERROR line on stderr and exit status 1.
 */
import { checkCredentials } from "./auth.js";
import { type Clock, SystemClock } from "./clock.js";
import { Settings, loadJsonFile } from "./config.js";
import * as errors from "./errors.js";
import { Cancelled, ConnectorError } from "./errors.js";
import { dumps, isObject, repr } from "./format.js";
import { FetchTransport, type Transport } from "./http.js";
import { Logger, Redactor, type Sink } from "./log.js";
import { type Manifest, type StreamSpec, loadManifest } from "./manifest.js";
import type { Rng } from "./retry.js";
import { SingerWriter } from "./singer.js";
import { State, parseState } from "./state.js";
import { Runtime, syncStream } from "./sync.js";

export const CAPABILITIES = ["discover", "catalog", "state"];
/** After SIGINT/SIGTERM, a run that has not wound down by then is ended by force. */
export const CANCEL_GRACE_SECONDS = 5;

export interface Args {
  help: boolean;
  about: boolean;
  config: string | null;
  discover: boolean;
  catalog: string | null;
  state: string | null;
}

type OptionKind = "flag" | "value";

const OPTIONS: Array<[string, keyof Args, OptionKind, string]> = [
  ["--help", "help", "flag", "show this help message and exit"],
  ["--about", "about", "flag", "print what this connector is"],
  ["--config", "config", "value", "config JSON file"],
  ["--discover", "discover", "flag", "print the catalog"],
  ["--catalog", "catalog", "value", "catalog JSON file: sync the selected streams"],
  ["--state", "state", "value", "state JSON file to resume from"],
];

export const USAGE =
  "usage: main.js [-h] [--about] [--config CONFIG] [--discover] [--catalog CATALOG] [--state STATE]";

export const HELP =
  USAGE + "\n\nSinger tap built on the connector runtime.\n\noptions:\n" +
  "  -h, --help         show this help message and exit\n" +
  "  --about            print what this connector is\n" +
  "  --config CONFIG    config JSON file\n" +
  "  --discover         print the catalog\n" +
  "  --catalog CATALOG  catalog JSON file: sync the selected streams\n" +
  "  --state STATE      state JSON file to resume from\n";

function badCommandLine(message: string): ConnectorError {
  // argparse would print usage and exit 2; the contract wants an ERROR line and exit 1.
  return new ConnectorError(errors.VALIDATION_ERROR, "bad command line: " + message);
}

/** Parse the flags the way the Python runtime's argparse does (unique prefixes accepted). */
export function parseArgs(argv: string[]): Args {
  const args: Args = { help: false, about: false, config: null, discover: false, catalog: null, state: null };
  const unknown: string[] = [];
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (onlyPositionals || !token.startsWith("-") || token === "-" || /^-\d/.test(token)) {
      unknown.push(token);
      continue;
    }
    if (token === "--") {
      onlyPositionals = true;
      continue;
    }
    if (token === "-h") {
      args.help = true;
      return args;
    }
    const eq = token.indexOf("=");
    const name = eq >= 0 ? token.slice(0, eq) : token;
    const inline = eq >= 0 ? token.slice(eq + 1) : null;
    let matches = OPTIONS.filter(([option]) => option === name);
    if (matches.length === 0 && name.startsWith("--")) matches = OPTIONS.filter(([option]) => option.startsWith(name));
    if (matches.length > 1) {
      throw badCommandLine(`ambiguous option: ${name} could match ${matches.map(([o]) => o).join(", ")}`);
    }
    if (matches.length === 0) {
      unknown.push(token);
      continue;
    }
    const [option, key, kind] = matches[0];
    if (kind === "flag") {
      if (inline !== null) throw badCommandLine(`argument ${option}: ignored explicit argument ${repr(inline)}`);
      (args[key] as boolean) = true;
      if (key === "help") return args;
      continue;
    }
    let value = inline;
    if (value === null) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next !== "-" && !/^-\d/.test(next))) {
        throw badCommandLine(`argument ${option}: expected one argument`);
      }
      value = next;
      i += 1;
    }
    (args[key] as string) = value;
  }
  if (unknown.length > 0) throw badCommandLine(`unrecognized arguments: ${unknown.join(" ")}`);
  return args;
}

export function about(manifest: Manifest): Record<string, unknown> {
  return {
    name: manifest.name,
    version: manifest.version,
    language: manifest.language,
    capabilities: [...CAPABILITIES],
    streams: manifest.streams.map((s) => s.name),
  };
}

export function catalog(manifest: Manifest): Record<string, unknown> {
  return {
    streams: manifest.streams.map((stream) => ({
      tap_stream_id: stream.name,
      stream: stream.name,
      schema: stream.schema,
      key_properties: stream.primaryKey,
      metadata: [
        {
          breadcrumb: [],
          metadata: {
            selected: true,
            "replication-method": stream.incremental ? "INCREMENTAL" : "FULL_TABLE",
            "replication-key": stream.cursorField,
          },
        },
      ],
    })),
  };
}

/** Stream specs to sync: the catalog's selected ones, else config.streams, else all. */
export function selectedStreams(manifest: Manifest, settings: Settings, catalogObj: unknown): StreamSpec[] {
  let names: unknown[];
  if (catalogObj !== null && catalogObj !== undefined) {
    if (!isObject(catalogObj) || !Array.isArray(catalogObj.streams)) {
      throw new ConnectorError(errors.VALIDATION_ERROR, "the catalog must be an object with a streams list");
    }
    names = [];
    for (const entry of catalogObj.streams) {
      if (!isObject(entry)) throw new ConnectorError(errors.VALIDATION_ERROR, "each catalog stream must be an object");
      const name = entry.tap_stream_id || entry.stream;
      let selected = entry.selected === true;
      for (const item of Array.isArray(entry.metadata) ? entry.metadata : []) {
        if (isObject(item) && Array.isArray(item.breadcrumb) && item.breadcrumb.length === 0) {
          selected = isObject(item.metadata) && item.metadata.selected === true;
        }
      }
      if (selected) names.push(name);
    }
  } else if (settings.streams !== null) {
    names = [...settings.streams];
  } else {
    return [...manifest.streams];
  }
  return names.map((name) => {
    const spec = manifest.stream(name);
    if (spec === null) throw new ConnectorError(errors.VALIDATION_ERROR, `unknown stream ${repr(name ?? null)}`);
    return spec;
  });
}

const FILE_PROBLEMS = new Set(["ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR"]);

/** Map an exception that is not a ConnectorError to the closest contract code. */
export function unexpected(exc: unknown): ConnectorError {
  const err = exc as { name?: string; message?: string; code?: unknown; syscall?: unknown };
  const text = exc instanceof Error ? `${exc.name}: ${exc.message}` : `${typeof exc}: ${String(exc)}`;
  const code = typeof err?.code === "string" ? err.code : "";
  if (FILE_PROBLEMS.has(code)) return new ConnectorError(errors.VALIDATION_ERROR, text);
  if (code === "ETIMEDOUT") return new ConnectorError(errors.TIMEOUT, text);
  if (/^E[A-Z]+$/.test(code) && typeof err?.syscall === "string") return new ConnectorError(errors.NETWORK_ERROR, text);
  // Anything else (TypeError, RangeError, ...) nearly always means data of a shape the
  // code did not expect; not retryable, since a rerun sees the same data.
  return new ConnectorError(errors.PARSING_ERROR, "unexpected " + text);
}

export interface MainOptions {
  stdout?: Sink;
  stderr?: Sink;
  clock?: Clock;
  transport?: Transport;
  rng?: Rng;
  /** Listen for SIGINT / SIGTERM (default true). */
  signals?: boolean;
  /** End the process after CANCEL_GRACE_SECONDS if a signalled run does not wind down (main.ts). */
  hardExit?: boolean;
}

/** Run the CLI; resolves to the exit status. Streams, clock and transport are injectable for tests. */
export async function main(implDir: string, argv: string[] = process.argv.slice(2), options: MainOptions = {}): Promise<number> {
  const stdout = options.stdout ?? process.stdout;
  const redactor = new Redactor();
  const logger = new Logger(options.stderr ?? process.stderr, redactor);
  const cancel = new AbortController();
  const clock = options.clock ?? new SystemClock(cancel.signal);
  const transport = options.transport ?? new FetchTransport(cancel.signal);
  let finished = false;
  const cancelledError = (): ConnectorError => new ConnectorError(errors.CANCELLED, "cancelled by signal");
  const onSignal = (): void => {
    if (cancel.signal.aborted) return;
    cancel.abort();
    if (options.hardExit) {
      setTimeout(() => {
        if (finished) return;
        finished = true;
        logger.errorLine(cancelledError());
        process.exit(1);
      }, CANCEL_GRACE_SECONDS * 1000).unref();
    }
  };
  const listen = options.signals !== false;
  if (listen) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  try {
    let error: ConnectorError;
    try {
      await run(implDir, argv, stdout, logger, redactor, clock, transport, options.rng);
      if (!cancel.signal.aborted) return 0;
      error = cancelledError();
    } catch (exc) {
      if (exc instanceof Cancelled || cancel.signal.aborted) {
        error = cancelledError();
      } else if (exc instanceof ConnectorError) {
        error = exc;
      } else {
        const stack = exc instanceof Error && exc.stack ? exc.stack.split("\n").slice(0, 9).join("\n") : String(exc);
        logger.warn("unexpected exception", { event: "traceback", traceback: stack });
        error = unexpected(exc);
      }
    }
    if (!finished) logger.errorLine(error);
    return 1;
  } finally {
    finished = true;
    if (listen) {
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
    }
  }
}

async function run(
  implDir: string,
  argv: string[],
  stdout: Sink,
  logger: Logger,
  redactor: Redactor,
  clock: Clock,
  transport: Transport,
  rng: Rng | undefined,
): Promise<void> {
  const args = parseArgs(argv);
  if (args.help) {
    stdout.write(HELP);
    return;
  }
  const manifest = loadManifest(implDir);
  if (args.about) {
    print(stdout, about(manifest));
    return;
  }
  if (!args.config) throw new ConnectorError(errors.VALIDATION_ERROR, "--config is required (or use --about)");
  const config = loadJsonFile(args.config, "config");
  if (isObject(config) && isObject(config.credentials)) redactor.addAll(config.credentials); // before anything else can log
  const settings = new Settings(config, manifest);
  checkCredentials(manifest.auth, settings.credentials);
  if (args.discover) {
    print(stdout, catalog(manifest));
    return;
  }
  const catalogObj = args.catalog ? loadJsonFile(args.catalog, "catalog") : null;
  const streams = selectedStreams(manifest, settings, catalogObj);
  const state = new State(args.state ? parseState(loadJsonFile(args.state, "state")) : null);
  const writer = new SingerWriter(stdout, redactor, clock);
  const runtime = await Runtime.create(manifest, settings, logger, redactor, clock, { transport, rng });
  logger.info("sync started", { event: "sync_start", streams: streams.map((s) => s.name) });
  try {
    for (const stream of streams) await syncStream(runtime, stream, state, writer);
  } finally {
    // Always at least one STATE per run; on failure it keeps the progress made so far.
    writer.state(state.toValue());
  }
  logger.info("sync finished", { event: "sync_done", records: writer.counts });
}

function print(stdout: Sink, obj: unknown): void {
  stdout.write(dumps(obj, true) + "\n");
}
