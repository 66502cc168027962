/**
 * Bookmarks and incremental filtering (contract section 7).
 *
 * The bookmark of a stream is the greatest cursor value emitted. A run that starts from a
 * bookmark (or from the config's start_date) sends it as the stream's request_param and drops
 * records whose cursor value is <= it, so resuming from a final STATE emits nothing twice.
 */
import { formatIsoSeconds, parseIso8601 } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { cloneJson, getKey, isObject, markOf, pyFloat, pyStr, setMark } from "./format.js";

export type StateValue = Record<string, unknown> & { bookmarks: Record<string, Record<string, unknown>> };


/** Accept the `value` of a STATE message or a whole STATE message; return the value. */
export function parseState(obj: unknown): StateValue {
  if (obj === null || obj === undefined) return { bookmarks: {} };
  if (isObject(obj) && obj.type === "STATE") obj = getKey(obj, "value");
  if (!isObject(obj)) throw new ConnectorError(errors.VALIDATION_ERROR, "state must be a JSON object");
  const bookmarks = getKey(obj, "bookmarks", {});
  if (!isObject(bookmarks) || !Object.values(bookmarks).every(isObject)) {
    throw new ConnectorError(errors.VALIDATION_ERROR, "state.bookmarks must map stream names to objects");
  }
  const value = cloneJson(obj);
  value.bookmarks = getKey(value, "bookmarks", {});
  return value as StateValue;
}

export class State {
  readonly value: StateValue;

  constructor(value: unknown = null) {
    this.value = parseState(value);
  }

  bookmark(stream: string, field: string): unknown {
    const entry = this.value.bookmarks[stream];
    if (!isObject(entry)) return null;
    return getKey(entry, field);
  }

  /** How the bookmark's number was written in the state file (see format.markOf). */
  bookmarkMark(stream: string, field: string): string | null {
    return markOf(this.value.bookmarks[stream], field);
  }

  setBookmark(stream: string, field: string, value: unknown, mark: string | null = null): void {
    if (!isObject(this.value.bookmarks[stream])) this.value.bookmarks[stream] = {};
    this.value.bookmarks[stream][field] = value;
    setMark(this.value.bookmarks[stream], field, mark);
  }

  toValue(): StateValue {
    return cloneJson(this.value);
  }
}

/** A comparable key: [0, epoch seconds or number] for times and numbers, [1, text] otherwise. */
export type SortKey = [0, number] | [1, string];

/**
 * A comparable key for cursor values: epoch seconds when the value is a number, a numeric
 * string or an ISO 8601 timestamp; otherwise the text itself (sorted after all times).
 */
export function sortKey(value: unknown): SortKey {
  if (typeof value === "boolean") return [1, pyStr(value)];
  if (typeof value === "number") return [0, value];
  const text = typeof value === "string" ? value : JSON.stringify(value);
  const number = pyFloat(text);
  if (number !== null) return [0, number];
  const parsed = parseIso8601(text);
  if (parsed !== null) return [0, parsed];
  return [1, text];
}

/** -1, 0 or 1, comparing two keys as Python compares the tuples. */
export function compareKeys(a: SortKey, b: SortKey): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] < b[1]) return -1;
  if (a[1] > b[1]) return 1;
  return 0;
}

export type IncrementalSpec = Record<string, unknown>;

/** Filter and bookmark keeper for one incremental stream during one run. */
export class Incremental {
  readonly cursorField: string;
  readonly requestParam: string | null;
  readonly format: string;
  /** Stays the old value until something greater is emitted. */
  bookmark: unknown;
  /** How the bookmark's number was written where it came from (a record or the state). */
  bookmarkMark: string | null;
  readonly threshold: unknown;
  private readonly thresholdKey: SortKey | null;
  private bestKey: SortKey | null;

  constructor(spec: IncrementalSpec, bookmark: unknown = null, startDate: string | null = null, mark: string | null = null) {
    this.cursorField = pyStr(spec.cursor_field);
    this.requestParam = typeof spec.request_param === "string" && spec.request_param ? spec.request_param : null;
    this.format = pyStr(getKey(spec, "format", "iso8601"));
    const initial = bookmark ?? null;
    this.bookmark = initial;
    this.bookmarkMark = mark;
    let start: unknown = initial;
    if (start === null && startDate !== null && startDate !== undefined) {
      start = startDate;
      if (this.format === "unix") start = Math.trunc(parseIso8601(startDate) as number);
    }
    this.threshold = start;
    this.thresholdKey = start !== null ? sortKey(start) : null;
    this.bestKey = initial !== null ? sortKey(initial) : null;
  }

  /** The threshold formatted for the request parameter, or null. */
  requestValue(): unknown {
    const value = this.threshold;
    if (value === null) return null;
    const key = sortKey(value);
    if (this.format === "unix") {
      if (key[0] === 0) return key[1];
      return value;
    }
    if (typeof value === "number") return formatIsoSeconds(value);
    return value;
  }

  /** Should this record be emitted? Records without a cursor value always are. */
  accept(record: unknown): boolean {
    const value = isObject(record) ? record[this.cursorField] : null;
    if (value === null || value === undefined || this.thresholdKey === null) return true;
    return compareKeys(sortKey(value), this.thresholdKey) > 0;
  }

  /** Note an emitted record; the bookmark becomes the greatest cursor value seen. */
  observe(record: Record<string, unknown>): void {
    const value = record[this.cursorField];
    if (value === null || value === undefined) return;
    const key = sortKey(value);
    if (this.bestKey === null || compareKeys(key, this.bestKey) > 0) {
      this.bestKey = key;
      this.bookmark = value;
      this.bookmarkMark = markOf(record, this.cursorField);
    }
  }
}
