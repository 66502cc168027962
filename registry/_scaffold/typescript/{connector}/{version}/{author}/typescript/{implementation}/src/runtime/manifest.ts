/** connector.json (contract section 2) read into plain objects, with the checks the runtime relies on. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { getKey, isObject, parseJson } from "./format.js";

export const MANIFEST_FILE = "connector.json";

export function invalid(message: string): ConnectorError {
  return new ConnectorError(errors.VALIDATION_ERROR, "connector.json: " + message);
}

function errorText(exc: unknown): string {
  return exc instanceof Error ? exc.message : String(exc);
}

export class StreamSpec {
  readonly data: Record<string, unknown>;
  readonly name: string;
  readonly path: string;
  readonly method: string;
  readonly params: Record<string, unknown>;
  readonly recordSelector: string;
  readonly primaryKey: string[];
  readonly pagination: Record<string, unknown>;
  readonly incremental: Record<string, unknown> | null;
  readonly schemaPath: string;
  readonly fixturesPath: string | null;
  private loadedSchema: unknown = null;

  constructor(data: unknown, private readonly implDir: string) {
    if (!isObject(data)) throw invalid("each stream must be an object");
    this.data = data;
    if (typeof data.name !== "string" || !data.name) throw invalid("a stream has no name");
    this.name = data.name;
    if (typeof data.path !== "string") throw invalid(`stream ${this.name} has no path`);
    this.path = data.path;
    this.method = String(data.method || "GET").toUpperCase();
    this.params = isObject(data.params) ? data.params : {};
    this.recordSelector = typeof data.record_selector === "string" ? data.record_selector : "";
    this.primaryKey = Array.isArray(data.primary_key) ? data.primary_key.map(String) : [];
    this.pagination = isObject(data.pagination) ? data.pagination : { type: "none" };
    this.incremental = isObject(data.incremental) && Object.keys(data.incremental).length > 0 ? data.incremental : null;
    if (this.incremental !== null) {
      if (!this.incremental.cursor_field) throw invalid(`stream ${this.name}: incremental needs a cursor_field`);
      const format = getKey(this.incremental, "format", "iso8601");
      if (format !== "iso8601" && format !== "unix") {
        throw invalid(`stream ${this.name}: incremental.format must be iso8601 or unix`);
      }
    }
    this.schemaPath = typeof data.schema === "string" && data.schema ? data.schema : join("schemas", this.name + ".json");
    this.fixturesPath = typeof data.fixtures === "string" ? data.fixtures : null;
  }

  get cursorField(): string | null {
    return this.incremental ? String(this.incremental.cursor_field) : null;
  }

  get schema(): unknown {
    if (this.loadedSchema === null) {
      try {
        this.loadedSchema = parseJson(readFileSync(join(this.implDir, this.schemaPath), "utf8"));
      } catch (exc) {
        throw invalid(`stream ${this.name}: cannot load schema ${this.schemaPath}: ${errorText(exc)}`);
      }
    }
    return this.loadedSchema;
  }
}

export class Manifest {
  readonly data: Record<string, unknown>;
  readonly name: unknown;
  readonly version: unknown;
  readonly author: unknown;
  readonly language: unknown;
  readonly implementation: unknown;
  readonly description: unknown;
  readonly baseUrl: unknown;
  readonly auth: Record<string, unknown>;
  readonly headers: Record<string, string>;
  readonly defaults: Record<string, unknown>;
  readonly hooks: string | null;
  readonly streams: StreamSpec[];

  constructor(data: unknown, readonly dir: string) {
    if (!isObject(data)) throw invalid("must be a JSON object");
    this.data = data;
    this.name = getKey(data, "name");
    this.version = getKey(data, "version");
    this.author = getKey(data, "author");
    this.language = getKey(data, "language", "typescript");
    this.implementation = getKey(data, "implementation");
    this.description = getKey(data, "description", "");
    this.baseUrl = getKey(data, "base_url");
    this.auth = isObject(data.auth) && Object.keys(data.auth).length > 0 ? data.auth : { type: "none" };
    this.headers = isObject(data.headers) ? (data.headers as Record<string, string>) : {};
    this.defaults = isObject(data.defaults) ? data.defaults : {};
    this.hooks = typeof data.hooks === "string" && data.hooks ? data.hooks : null;
    const rawStreams = data.streams;
    if (!Array.isArray(rawStreams)) throw invalid("streams must be a list");
    this.streams = rawStreams.map((s) => new StreamSpec(s, dir));
    const names = this.streams.map((s) => s.name);
    if (new Set(names).size !== names.length) throw invalid("stream names must be unique");
  }

  stream(name: unknown): StreamSpec | null {
    return this.streams.find((spec) => spec.name === name) ?? null;
  }
}

export function loadManifest(implDir: string): Manifest {
  const path = join(implDir, MANIFEST_FILE);
  let data: unknown;
  try {
    data = parseJson(readFileSync(path, "utf8"));
  } catch (exc) {
    throw invalid(`cannot load ${path}: ${errorText(exc)}`);
  }
  return new Manifest(data, implDir);
}
