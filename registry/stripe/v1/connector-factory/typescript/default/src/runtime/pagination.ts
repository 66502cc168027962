/**
 * Finding the records in a response, and the pagination styles of contract section 6.
 *
 * A paginator answers two questions:
 *   firstParams()      extra query parameters for the first request
 *   nextRequest(page)  what to fetch next: [name, value] pairs to set on the same request,
 *                      a URL string to fetch as given, or null to stop.
 * The sync loop stops on an empty page before asking, so no style has to handle that itself.
 */
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { getKey, isObject, markOf, pyStr, repr, typeName } from "./format.js";
import type { ParamPair, Response } from "./http.js";

export type Spec = Record<string, unknown>;
export type NextRequest = ParamPair[] | string | null;

/** Follow a dotted path ("data.items", "meta.0.next") through objects and arrays; null if absent. */
export function getPath(obj: unknown, path: string | null | undefined): unknown {
  if (path === null || path === undefined || path === "") return obj;
  for (const part of String(path).split(".")) {
    if (isObject(obj)) {
      obj = Object.prototype.hasOwnProperty.call(obj, part) ? obj[part] : null;
    } else if (Array.isArray(obj) && /^-?\d+$/.test(part)) {
      const index = Number(part);
      obj = index >= -obj.length && index < obj.length ? obj[index < 0 ? obj.length + index : index] : null;
    } else {
      return null;
    }
    if (obj === null || obj === undefined) return null;
  }
  return obj;
}

/**
 * getPath, but an integer too large for a JavaScript number comes back as a BigInt with every
 * digit the server sent (a cursor must be sent back exactly as received).
 */
export function getPathExact(obj: unknown, path: string | null | undefined): unknown {
  const value = getPath(obj, path);
  if (typeof value !== "number" || path === null || path === undefined || path === "") return value;
  const parts = String(path).split(".");
  const last = parts.pop() as string;
  const parent = getPath(obj, parts.join("."));
  const key = Array.isArray(parent) && Number(last) < 0 ? parent.length + Number(last) : last;
  const mark = markOf(parent, key);
  return mark !== null && /^-?\d+$/.test(mark) && Number(mark) === value ? BigInt(mark) : value;
}

export type Extractor = (body: unknown) => unknown[] | Promise<unknown[]>;

/**
 * The default record extractor for a dotted record_selector ("" = the body is the array).
 * A hooks file may export extract_records(stream, body) to replace it.
 */
export function makeExtractor(selector: string): (body: unknown) => unknown[] {
  return (body: unknown): unknown[] => {
    const records = getPath(body, selector);
    if (!Array.isArray(records)) {
      const found = records !== null && records !== undefined ? typeName(records) : "nothing";
      throw new ConnectorError(
        errors.PARSING_ERROR,
        `no array of records at record_selector ${repr(selector)} (found ${found})`,
      );
    }
    return records;
  };
}

function isFalse(value: unknown): boolean {
  return (
    value === false ||
    value === 0 ||
    (typeof value === "string" && ["false", "0", "no"].includes(value.toLowerCase()))
  );
}

export class Page {
  constructor(readonly records: unknown[], readonly body: unknown, readonly response: Response) {}
}

function intOf(value: unknown, fallback: number): number {
  if (value === null || value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new ConnectorError(errors.VALIDATION_ERROR, `not a whole number: ${repr(value)}`);
  return Math.trunc(n);
}

export class NoPagination {
  readonly sizeParam: string | null;

  constructor(readonly spec: Spec, readonly pageSize: number | null) {
    this.sizeParam = typeof spec.size_param === "string" && spec.size_param ? spec.size_param : null;
  }

  firstParams(): ParamPair[] {
    if (this.sizeParam && this.pageSize) return [[this.sizeParam, this.pageSize]];
    return [];
  }

  nextRequest(_page: Page): NextRequest {
    return null;
  }
}

export class CursorPagination extends NoPagination {
  readonly cursorParam: string;
  readonly cursorSource: string;
  readonly cursorPath: string;
  readonly hasMorePath: string | null;
  private readonly seen = new Set<string>();

  constructor(spec: Spec, pageSize: number | null) {
    super(spec, pageSize);
    this.cursorParam = spec.cursor_param ? pyStr(spec.cursor_param) : "cursor";
    this.cursorSource = spec.cursor_source ? pyStr(spec.cursor_source) : "body";
    if (this.cursorSource !== "body" && this.cursorSource !== "last_record") {
      throw new ConnectorError(errors.UNSUPPORTED, `cursor_source ${repr(this.cursorSource)} is not supported`);
    }
    this.cursorPath = spec.cursor_path
      ? pyStr(spec.cursor_path)
      : this.cursorSource === "last_record" ? "id" : "next_cursor";
    this.hasMorePath = spec.has_more_path ? pyStr(spec.has_more_path) : null;
  }

  override nextRequest(page: Page): NextRequest {
    if (this.hasMorePath) {
      const hasMore = getPath(page.body, this.hasMorePath);
      // Checked first: a last page may still carry a cursor.
      if (hasMore !== null && isFalse(hasMore)) return null;
    }
    const source = this.cursorSource === "last_record" ? page.records[page.records.length - 1] : page.body;
    const cursor = getPathExact(source, this.cursorPath);
    if (cursor === null || cursor === undefined || cursor === "" || typeof cursor === "object") return null;
    const key = pyStr(cursor);
    if (this.seen.has(key)) return null; // the server sent a cursor we already used: stop instead of looping
    this.seen.add(key);
    return [[this.cursorParam, cursor]];
  }
}

export class OffsetPagination extends NoPagination {
  readonly offsetParam: string;
  readonly totalPath: string | null;
  offset: number;

  constructor(spec: Spec, pageSize: number | null) {
    super(spec, pageSize);
    this.offsetParam = spec.offset_param ? pyStr(spec.offset_param) : "offset";
    this.totalPath = spec.total_path ? pyStr(spec.total_path) : null;
    this.offset = intOf(getKey(spec, "start_offset", 0), 0);
  }

  override firstParams(): ParamPair[] {
    return [...super.firstParams(), [this.offsetParam, this.offset]];
  }

  override nextRequest(page: Page): NextRequest {
    const count = page.records.length;
    this.offset += count;
    if (this.pageSize && count < this.pageSize) return null;
    if (this.totalPath) {
      const total = getPath(page.body, this.totalPath);
      if (typeof total === "number" && this.offset >= total) return null;
    }
    return [[this.offsetParam, this.offset]];
  }
}

export class PagePagination extends NoPagination {
  readonly pageParam: string;
  readonly totalPagesPath: string | null;
  readonly startPage: number;
  page: number;

  constructor(spec: Spec, pageSize: number | null) {
    super(spec, pageSize);
    this.pageParam = spec.page_param ? pyStr(spec.page_param) : "page";
    this.totalPagesPath = spec.total_pages_path ? pyStr(spec.total_pages_path) : null;
    this.startPage = intOf(getKey(spec, "start_page", 1), 1);
    this.page = this.startPage;
  }

  override firstParams(): ParamPair[] {
    return [...super.firstParams(), [this.pageParam, this.page]];
  }

  override nextRequest(page: Page): NextRequest {
    if (this.pageSize && page.records.length < this.pageSize) return null;
    this.page += 1;
    if (this.totalPagesPath) {
      const total = getPath(page.body, this.totalPagesPath);
      // Pages fetched so far = page - startPage; with the default startPage 1
      // this is the contract's "page > total pages".
      if (typeof total === "number" && this.page - this.startPage >= total) return null;
    }
    return [[this.pageParam, this.page]];
  }
}

const LINK = /<([^>]*)>\s*((?:;\s*[^;,]+)*)/g;

/** The URL of rel="next" in Link header values, or null. */
export function nextLink(headerValues: string[]): string | null {
  for (const value of headerValues) {
    for (const match of value.matchAll(LINK)) {
      const url = match[1];
      for (const param of match[2].split(";")) {
        const trimmed = param.trim();
        const eq = trimmed.indexOf("=");
        const key = eq < 0 ? trimmed : trimmed.slice(0, eq);
        const val = eq < 0 ? "" : trimmed.slice(eq + 1);
        const rels = val.trim().replace(/^"+|"+$/g, "").toLowerCase().split(/\s+/).filter(Boolean);
        if (key.trim().toLowerCase() === "rel" && rels.includes("next")) return url;
      }
    }
  }
  return null;
}

/** urljoin(base, url) for the cases pagination meets: absolute URLs stay exactly as given. */
export function resolveUrl(base: string, url: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(url)) return url;
  try {
    return new URL(url, base).toString();
  } catch {
    return url;
  }
}

export class LinkHeaderPagination extends NoPagination {
  private readonly seen = new Set<string>();

  override nextRequest(page: Page): NextRequest {
    let url = nextLink(page.response.headers.getAll("Link"));
    if (!url) return null;
    url = resolveUrl(page.response.url, url);
    if (this.seen.has(url)) return null;
    this.seen.add(url);
    return url;
  }
}

export class NextUrlPagination extends NoPagination {
  readonly nextUrlPath: string;
  private readonly seen = new Set<string>();

  constructor(spec: Spec, pageSize: number | null, readonly baseUrl = "") {
    super(spec, pageSize);
    this.nextUrlPath = spec.next_url_path ? pyStr(spec.next_url_path) : "next";
  }

  override nextRequest(page: Page): NextRequest {
    let url = getPath(page.body, this.nextUrlPath);
    if (typeof url !== "string" || !url) return null;
    if (!url.startsWith("http://") && !url.startsWith("https://")) {
      url = this.baseUrl.replace(/\/+$/, "") + "/" + url.replace(/^\/+/, "");
    }
    const next = url as string;
    if (this.seen.has(next)) return null;
    this.seen.add(next);
    return next;
  }
}

type PaginatorClass = new (spec: Spec, pageSize: number | null, baseUrl?: string) => NoPagination;

export const STYLES: Record<string, PaginatorClass> = {
  none: NoPagination,
  cursor: CursorPagination,
  offset: OffsetPagination,
  page: PagePagination,
  link_header: LinkHeaderPagination,
  next_url: NextUrlPagination,
};

export function makePaginator(spec: Spec | null | undefined, pageSize: number | null, baseUrl = ""): NoPagination {
  const data = spec ?? {};
  const kind = getKey(data, "type", "none");
  const cls = typeof kind === "string" && Object.prototype.hasOwnProperty.call(STYLES, kind) ? STYLES[kind] : null;
  if (cls === null) {
    throw new ConnectorError(errors.UNSUPPORTED, `pagination type ${repr(kind)} is not supported`);
  }
  if (cls === NextUrlPagination) return new NextUrlPagination(data, pageSize, baseUrl);
  return new cls(data, pageSize);
}
