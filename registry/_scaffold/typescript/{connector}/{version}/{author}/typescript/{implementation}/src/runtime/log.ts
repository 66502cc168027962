/**
 * JSON log lines on stderr, with every known secret replaced by '***'.
 *
 * Redaction works on the finished text of a line, so it covers every field (URLs, messages,
 * error bodies) without each caller having to remember it. Each secret is also registered in
 * the forms it takes when written somewhere: URL-encoded, JSON-escaped and base64.
 */
import type { ConnectorError } from "./errors.js";
import type { Context } from "./hooks.js";
import type { Response } from "./http.js";
import { asFloat, asciiString, dumps, isObject, pyStr, quote, quotePlus } from "./format.js";

export const REDACTED = "***";
// Shorter values cannot be hidden without mangling every line (a password "ab" would
// turn every "ab" into "***"), so they are not treated as redactable.
export const MIN_SECRET_LENGTH = 4;

/** Where lines go: process.stdout / process.stderr, or anything with write(text). */
export interface Sink {
  write(text: string): unknown;
}

export class Redactor {
  private needles: string[] = [];

  /** Register one secret value (strings and numbers). */
  add(value: unknown): void {
    if (value === null || value === undefined || typeof value === "boolean" || typeof value === "object") return;
    const text = pyStr(value);
    if (text.length < MIN_SECRET_LENGTH) return;
    const forms = new Set([
      text,
      quote(text, ""),
      quote(text),
      quotePlus(text),
      asciiString(text).slice(1, -1),
      JSON.stringify(text).slice(1, -1),
      Buffer.from(text, "utf8").toString("base64"),
    ]);
    for (const form of forms) {
      if (form.length >= MIN_SECRET_LENGTH && !this.needles.includes(form)) this.needles.push(form);
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.needles.sort((a, b) => b.length - a.length);
  }

  /** Register every leaf value of a (nested) object or array, e.g. the config's credentials. */
  addAll(obj: unknown): void {
    if (Array.isArray(obj)) {
      for (const value of obj) this.addAll(value);
    } else if (isObject(obj)) {
      for (const value of Object.values(obj)) this.addAll(value);
    } else {
      this.add(obj);
    }
  }

  redact(text: string): string {
    for (const needle of this.needles) {
      if (text.includes(needle)) text = text.split(needle).join(REDACTED);
    }
    return text;
  }
}

export type LogFields = Record<string, unknown>;

/** Writes {"type":"LOG","level":...,"message":...,<fields>} lines. */
export class Logger {
  readonly redactor: Redactor;

  constructor(readonly stream?: Sink, redactor?: Redactor) {
    this.redactor = redactor ?? new Redactor();
  }

  log(level: string, message: string, fields: LogFields = {}): void {
    const line: Record<string, unknown> = { type: "LOG", level, message };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== null && value !== undefined) line[key] = value;
    }
    this.write(line);
  }

  info(message: string, fields: LogFields = {}): void {
    this.log("INFO", message, fields);
  }

  warn(message: string, fields: LogFields = {}): void {
    this.log("WARN", message, fields);
  }

  error(message: string, fields: LogFields = {}): void {
    this.log("ERROR", message, fields);
  }

  /** The single ERROR line written when a run fails. */
  errorLine(error: ConnectorError): void {
    this.write(error.toDict());
  }

  private write(obj: unknown): void {
    const text = this.redactor.redact(dumps(obj));
    try {
      (this.stream ?? process.stderr).write(text + "\n");
    } catch {
      // a closed stderr must not turn a log line into a crash
    }
  }
}

/** Pipeline hook that logs each response and each retry. */
export class LoggingHook {
  constructor(readonly logger: Logger) {}

  after_response(ctx: Context, response: Response): void {
    const request = response.request;
    this.logger.info(`${request ? request.method : "?"} ${response.url} -> ${response.status}`, {
      event: "request",
      stream: ctx.stream,
      page: ctx.page,
      attempt: ctx.attempt,
      status: response.status,
      request_id: response.requestId,
      elapsed_ms: Math.trunc(response.elapsed * 1000),
    });
  }

  on_retry(ctx: Context, attempt: number, delay: number): void {
    const error = ctx.error;
    this.logger.warn(`retrying after ${error ? error.code : "error"}: ${error ? error.message : ""}`, {
      event: "retry",
      stream: ctx.stream,
      page: ctx.page,
      attempt,
      delay_seconds: asFloat(Math.round(delay * 1000) / 1000),
      status: error ? error.status : null,
      code: error ? error.code : null,
    });
  }
}
