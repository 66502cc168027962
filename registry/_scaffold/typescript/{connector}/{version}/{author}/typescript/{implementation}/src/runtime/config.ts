/**
 * The --config file (contract section 3) merged with the manifest's defaults into Settings.
 *
 * Precedence for each value: config, then the manifest's `defaults`, then the runtime default.
 */
import { readFileSync } from "node:fs";
import { parseIso8601 } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { floatText, getKey, isObject, parseJson, repr } from "./format.js";
import type { Manifest } from "./manifest.js";
import { RetryPolicy } from "./retry.js";

export const DEFAULT_TIMEOUT_SECONDS = 30.0;

export function invalid(message: string): ConnectorError {
  return new ConnectorError(errors.VALIDATION_ERROR, message);
}

const STRERROR: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EPERM: "Operation not permitted",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
};

/** Read a JSON file given on the command line; any problem is a VALIDATION_ERROR. */
export function loadJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (exc) {
    const err = exc as NodeJS.ErrnoException;
    throw invalid(`cannot read ${what} file ${path}: ${(err.code && STRERROR[err.code]) || err.message}`);
  }
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  try {
    return parseJson(text);
  } catch (exc) {
    throw invalid(`${what} file ${path} is not valid JSON: ${(exc as Error).message}`);
  }
}

type Section = Record<string, unknown>;

function numberOf(
  section: Section,
  key: string,
  where: string,
  fallback: number | null,
  minimum = 0.0,
  integer = false,
): number | null {
  const value = section[key];
  if (value === null || value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw invalid(`${where}.${key} must be a number`);
  if (value < minimum) {
    throw invalid(`${where}.${key} must be at least ${integer ? String(minimum) : floatText(minimum)}`);
  }
  if (integer && !Number.isInteger(value)) throw invalid(`${where}.${key} must be a whole number`);
  return value;
}

function objectOf(config: Section, key: string): Section {
  const value = config[key];
  if (value === null || value === undefined) return {};
  if (!isObject(value)) throw invalid(`config.${key} must be an object`);
  return value;
}

/** Everything the runtime needs from config + manifest, already validated. */
export class Settings {
  readonly raw: Section;
  readonly credentials: Record<string, unknown>;
  readonly baseUrl: string;
  readonly params: Record<string, unknown>;
  readonly startDate: string | null;
  readonly tokenUrl: string | null;
  readonly pageSize: number | null;
  readonly timeoutSeconds: number;
  readonly retry: RetryPolicy;
  readonly requestsPerSecond: number | null;
  readonly burst: number;
  readonly failureThreshold: number;
  readonly resetSeconds: number;
  readonly streams: string[] | null;

  constructor(config: unknown, manifest: Manifest) {
    if (!isObject(config)) throw invalid("the config must be a JSON object");
    const defaults = manifest.defaults;
    this.raw = config;

    if ("credentials" in config && !isObject(config.credentials)) throw invalid("config.credentials must be an object");
    this.credentials = (config.credentials as Record<string, unknown>) || {};

    const baseUrl = config.base_url || manifest.baseUrl;
    if (typeof baseUrl !== "string" || !(baseUrl.startsWith("http://") || baseUrl.startsWith("https://"))) {
      throw invalid(`base_url must be an http(s) URL, got ${repr(baseUrl ?? null)}`);
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");

    this.params = objectOf(config, "params");

    // Overrides the manifest's oauth2 token_url (a test harness points it at its mock).
    const tokenUrl = getKey(config, "token_url");
    if (tokenUrl !== null && !(typeof tokenUrl === "string" && (tokenUrl.startsWith("http://") || tokenUrl.startsWith("https://")))) {
      throw invalid(`token_url must be an http(s) URL, got ${repr(tokenUrl)}`);
    }
    this.tokenUrl = tokenUrl as string | null;

    const startDate = getKey(config, "start_date");
    if (startDate !== null && parseIso8601(startDate) === null) {
      throw invalid(`start_date must be an ISO 8601 timestamp, got ${repr(startDate)}`);
    }
    this.startDate = startDate as string | null;

    this.pageSize =
      numberOf(config, "page_size", "config", null, 1, true) ??
      numberOf(defaults, "page_size", "defaults", null, 1, true);

    this.timeoutSeconds =
      numberOf(config, "timeout_seconds", "config", null, 0.001) ??
      (numberOf(defaults, "timeout_seconds", "defaults", DEFAULT_TIMEOUT_SECONDS, 0.001) as number);

    const retry = objectOf(config, "retry");
    this.retry = new RetryPolicy({
      maxAttempts: numberOf(retry, "max_attempts", "retry", 5, 1, true) as number,
      initialDelaySeconds: numberOf(retry, "initial_delay_seconds", "retry", 0.5) as number,
      maxDelaySeconds: numberOf(retry, "max_delay_seconds", "retry", 30.0) as number,
      budgetSeconds: numberOf(retry, "budget_seconds", "retry", 120.0) as number,
      maxRetryAfterSeconds: numberOf(retry, "max_retry_after_seconds", "retry", 60.0) as number,
    });

    const rate = objectOf(config, "rate_limit");
    this.requestsPerSecond =
      numberOf(rate, "requests_per_second", "rate_limit", null) ??
      numberOf(defaults, "requests_per_second", "defaults", null);
    this.burst = numberOf(rate, "burst", "rate_limit", 1, 1, true) as number;

    const breaker = objectOf(config, "circuit_breaker");
    this.failureThreshold = numberOf(breaker, "failure_threshold", "circuit_breaker", 5, 1, true) as number;
    this.resetSeconds = numberOf(breaker, "reset_seconds", "circuit_breaker", 30.0) as number;

    const streams = getKey(config, "streams");
    if (streams !== null && (!Array.isArray(streams) || !streams.every((s) => typeof s === "string"))) {
      throw invalid("config.streams must be a list of stream names");
    }
    this.streams = streams as string[] | null;
  }
}
