/**
 * Text helpers that make this runtime read and write exactly what the Python runtime does: JSON
 * text (Python's json module: its error messages, ASCII-only output, its separators, floats and
 * big integers kept as written), URL quoting (urllib.parse rules) and repr-style values in
 * messages. Nothing here knows about connectors; it only formats.
 */

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `obj.get(key, fallback)` of a Python dict: the fallback only when the key is absent. */
export function getKey(obj: Record<string, unknown>, key: string, fallback: unknown = null): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : fallback;
}

const SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
};
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/g;
const HAS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/;

/** A JSON string literal with every character outside printable ASCII escaped (ensure_ascii). */
export function asciiString(text: string): string {
  if (!HAS_ESCAPE.test(text)) return '"' + text + '"';
  const body = text.replace(NEEDS_ESCAPE, (ch) => SHORT_ESCAPES[ch] ?? "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
  return '"' + body + '"';
}

/**
 * JSON numbers that a JavaScript number cannot write back as Python would: a float (Python keeps
 * `5.0`, `1e-07`) or an integer past 2^53 (Python keeps every digit). parseJson notes them here,
 * per container and key, and dumps writes them the Python way while the value is unchanged.
 */
const NUMBER_MARKS = new WeakMap<object, Map<string, string>>();
const FLOAT_MARK = "f";

/** A number that Python would hold as a float (written `2.0`, not `2`), for computed log fields. */
export class PyFloat {
  constructor(readonly value: number) {}

  toJSON(): number {
    return this.value;
  }
}

export function asFloat(value: number | null | undefined): PyFloat | null {
  return value === null || value === undefined ? null : new PyFloat(value);
}

/** The mark parseJson left for container[key], if any (copy it along with the value). */
export function markOf(container: unknown, key: string | number): string | null {
  if (typeof container !== "object" || container === null) return null;
  return NUMBER_MARKS.get(container)?.get(String(key)) ?? null;
}

export function setMark(container: object, key: string | number, mark: string | null): void {
  let marks = NUMBER_MARKS.get(container);
  if (mark === null) {
    marks?.delete(String(key));
    return;
  }
  if (!marks) {
    marks = new Map();
    NUMBER_MARKS.set(container, marks);
  }
  marks.set(String(key), mark);
}

/** A deep copy of JSON data that keeps the number marks. */
export function cloneJson<T>(value: T): T {
  if (Array.isArray(value)) {
    const out = value.map((item) => cloneJson(item));
    value.forEach((_item, i) => {
      const mark = markOf(value, i);
      if (mark !== null) setMark(out, i, mark);
    });
    return out as T;
  }
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      defineKey(out, key, cloneJson(item));
      const mark = markOf(value, key);
      if (mark !== null) setMark(out, key, mark);
    }
    return out as T;
  }
  return value;
}

function defineKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

/** repr() of a Python float: shortest round-trip digits, '.0' for whole values, e+XX outside [1e-4, 1e16). */
export function floatRepr(value: number): string {
  if (Number.isNaN(value)) return "nan";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const [mantissa, expText] = value.toExponential().split("e");
  const exp = Number(expText);
  const digits = mantissa.replace("-", "").replace(".", "");
  const sign = value < 0 ? "-" : "";
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? digits[0] + "." + digits.slice(1) : digits;
    return sign + m + "e" + (exp < 0 ? "-" : "+") + String(Math.abs(exp)).padStart(2, "0");
  }
  if (exp < 0) return sign + "0." + "0".repeat(-exp - 1) + digits;
  const whole = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  return sign + whole + "." + (digits.slice(exp + 1) || "0");
}

function numberText(value: number, mark: string | null = null): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (mark === FLOAT_MARK) return floatRepr(value);
  if (mark !== null && Number(mark) === value) return mark;
  // Unmarked: a whole number was an int in Python, anything else a float.
  if (Number.isInteger(value)) return BigInt(value).toString();
  return floatRepr(value);
}

/**
 * json.dumps: ASCII-only output; `compact` uses (",", ":") as the Singer writer does, otherwise
 * Python's default (", ", ": ") as the log lines do. Keys whose value is undefined are left out.
 */
export function dumps(value: unknown, compact = false): string {
  const itemSep = compact ? "," : ", ";
  const keySep = compact ? ":" : ": ";
  const seen = new Set<unknown>();
  const walk = (v: unknown, mark: string | null): string => {
    if (typeof v === "string") return asciiString(v);
    if (v === null || v === undefined) return "null";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") return numberText(v, mark);
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "string") return asciiString(v);
    if (typeof v !== "object") return asciiString(String(v));
    if (v instanceof PyFloat) return numberText(v.value, FLOAT_MARK);
    const withJson = v as { toJSON?: () => unknown };
    if (typeof withJson.toJSON === "function") return walk(withJson.toJSON(), null);
    if (seen.has(v)) throw new TypeError("Circular reference detected");
    seen.add(v);
    let text: string;
    const marks = NUMBER_MARKS.get(v);
    const markAt = (key: string | number, item: unknown): string | null =>
      marks !== undefined && typeof item === "number" ? (marks.get(String(key)) ?? null) : null;
    if (Array.isArray(v)) {
      text = "[" + v.map((item, i) => walk(item, markAt(i, item))).join(itemSep) + "]";
    } else if (v instanceof Uint8Array) {
      text = asciiString(new TextDecoder().decode(v));
    } else {
      text = "{";
      let first = true;
      for (const key in v) {
        if (!Object.prototype.hasOwnProperty.call(v, key)) continue;
        const item = (v as Record<string, unknown>)[key];
        if (item === undefined || typeof item === "function") continue;
        text += (first ? "" : itemSep) + asciiString(key) + keySep + walk(item, markAt(key, item));
        first = false;
      }
      text += "}";
    }
    seen.delete(v);
    return text;
  };
  return walk(value, null);
}

/** A JSON text that is not valid, with Python's json.JSONDecodeError message. */
export class JsonDecodeError extends SyntaxError {
  constructor(readonly reason: string, readonly text: string, readonly pos: number) {
    const newline = pos > 0 ? text.lastIndexOf("\n", pos - 1) : -1;
    const line = text.slice(0, pos).split("\n").length;
    const column = newline < 0 ? pos + 1 : pos - newline;
    super(`${reason}: line ${line} column ${column} (char ${pos})`);
    this.name = "JSONDecodeError";
  }
}

const NUMBER = /(-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?/y;
const STRING_CHUNK = /[^"\\\x00-\x1f]*/y;
const WHITESPACE = /[ \t\n\r]*/y;
const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/**
 * Text in which some number may need a mark: a fraction of only zeros, an exponent or a long run
 * of digits. It may also match inside strings; that only costs the slower, marking parser.
 */
const MAY_NEED_MARKS = /\d\.0+(?![0-9])|\d[eE][-+]?\d|\d{16}/;

/**
 * json.loads: the same values as JSON.parse, plus NaN/Infinity like Python, Python's error
 * messages, and marks on floats and big integers so that dumps writes them back unchanged.
 * Text without such numbers goes through the built-in JSON.parse, which is much faster.
 */
export function parseJson(text: string): unknown {
  if (!MAY_NEED_MARKS.test(text)) {
    try {
      return JSON.parse(text);
    } catch {
      // fall through: the parser below accepts NaN/Infinity and words errors as Python does
    }
  }
  return parseMarked(text);
}

function parseMarked(text: string): unknown {
  let pos = 0;
  const fail = (reason: string, at = pos): never => {
    throw new JsonDecodeError(reason, text, at);
  };
  const skip = (): void => {
    WHITESPACE.lastIndex = pos;
    WHITESPACE.exec(text);
    pos = WHITESPACE.lastIndex;
  };
  const parseString = (): string => {
    const begin = pos; // at the opening quote
    pos += 1;
    let out = "";
    for (;;) {
      STRING_CHUNK.lastIndex = pos;
      STRING_CHUNK.exec(text);
      out += text.slice(pos, STRING_CHUNK.lastIndex);
      pos = STRING_CHUNK.lastIndex;
      if (pos >= text.length) fail("Unterminated string starting at", begin);
      const ch = text[pos];
      if (ch === '"') {
        pos += 1;
        return out;
      }
      if (ch !== "\\") fail("Invalid control character at");
      const esc = text[pos + 1];
      if (esc === undefined) fail("Unterminated string starting at", begin);
      if (esc === "u") {
        const hex = text.slice(pos + 2, pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("Invalid \\uXXXX escape", pos + 1);
        out += String.fromCharCode(parseInt(hex, 16));
        pos += 6;
      } else {
        const plain = ESCAPES[esc];
        if (plain === undefined) fail("Invalid \\escape");
        out += plain;
        pos += 2;
      }
    }
  };
  const parseValue = (container: object | null, key: string | number): unknown => {
    const ch = text[pos];
    if (ch === '"') return parseString();
    if (ch === "{") {
      pos += 1;
      const obj: Record<string, unknown> = {};
      skip();
      if (text[pos] === "}") {
        pos += 1;
        return obj;
      }
      for (;;) {
        if (text[pos] !== '"') fail("Expecting property name enclosed in double quotes");
        const name = parseString();
        skip();
        if (text[pos] !== ":") fail("Expecting ':' delimiter");
        pos += 1;
        skip();
        defineKey(obj, name, parseValue(obj, name));
        skip();
        if (text[pos] === "}") {
          pos += 1;
          return obj;
        }
        if (text[pos] !== ",") fail("Expecting ',' delimiter");
        pos += 1;
        skip();
      }
    }
    if (ch === "[") {
      pos += 1;
      const list: unknown[] = [];
      skip();
      if (text[pos] === "]") {
        pos += 1;
        return list;
      }
      for (;;) {
        list.push(parseValue(list, list.length));
        skip();
        if (text[pos] === "]") {
          pos += 1;
          return list;
        }
        if (text[pos] !== ",") fail("Expecting ',' delimiter");
        pos += 1;
        skip();
      }
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m) {
      pos = NUMBER.lastIndex;
      const lexeme = m[0];
      const value = Number(lexeme);
      if (container !== null) {
        if (m[2] !== undefined || m[3] !== undefined) {
          // Other floats are written the Python way anyway; a whole one needs telling apart from an int.
          if (Number.isInteger(value)) setMark(container, key, FLOAT_MARK);
        } else {
          const digits = BigInt(lexeme).toString();
          if (digits !== JSON.stringify(value)) setMark(container, key, digits);
        }
      }
      return value;
    }
    for (const [word, value] of [["null", null], ["true", true], ["false", false], ["NaN", NaN],
      ["Infinity", Infinity], ["-Infinity", -Infinity]] as Array<[string, unknown]>) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    return fail("Expecting value");
  };
  skip();
  const value = parseValue(null, 0);
  skip();
  if (pos !== text.length) fail("Extra data");
  return value;
}

/** JSON with object keys sorted at every level (json.dumps(sort_keys=True)), for comparisons. */
export function sortedDumps(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (isObject(v)) {
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) out[key] = sort(v[key]);
      return out;
    }
    return v;
  };
  return dumps(sort(value));
}

const ALWAYS_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~";

/** urllib.parse.quote: percent-encode the UTF-8 bytes of `text` except letters, digits, `_.-~` and `safe`. */
export function quote(text: string, safe = "/"): string {
  const keep = new Set((ALWAYS_SAFE + safe).split("").map((c) => c.charCodeAt(0)));
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    out += keep.has(byte) ? String.fromCharCode(byte) : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** urllib.parse.quote_plus: like quote, but a space becomes '+' (and '/' is encoded by default). */
export function quotePlus(text: string, safe = ""): string {
  if (!text.includes(" ")) return quote(text, safe);
  return quote(text, safe + " ").replace(/ /g, "+");
}

/** urllib.parse.urlencode of (name, value) pairs whose values are already text. */
export function urlencode(pairs: Array<[string, string]>): string {
  return pairs.map(([name, value]) => quotePlus(name) + "=" + quotePlus(value)).join("&");
}

/** str() of a JSON value as Python would print it. */
export function pyStr(value: unknown): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return Number.isFinite(value) ? numberText(value) : floatRepr(value);
  return repr(value);
}

function stringRepr(text: string): string {
  const q = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === q) out += "\\" + q;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + q;
}

/** repr() of a JSON value as Python would print it ('text', None, True, [1, 'a'], {'k': 1}). */
export function repr(value: unknown): string {
  if (typeof value === "string") return stringRepr(value);
  if (value === null || value === undefined || typeof value === "boolean" || typeof value === "number") {
    return pyStr(value);
  }
  if (Array.isArray(value)) return "[" + value.map(repr).join(", ") + "]";
  if (isObject(value)) {
    return "{" + Object.entries(value).map(([k, v]) => stringRepr(k) + ": " + repr(v)).join(", ") + "}";
  }
  return stringRepr(String(value));
}

/** repr() of bytes (b'...'), used when a response body is quoted in an error message. */
export function bytesRepr(bytes: Uint8Array): string {
  let hasSingle = false;
  let hasDouble = false;
  for (const b of bytes) {
    if (b === 0x27) hasSingle = true;
    if (b === 0x22) hasDouble = true;
  }
  const q = hasSingle && !hasDouble ? '"' : "'";
  let out = "b" + q;
  for (const b of bytes) {
    if (b === 0x5c) out += "\\\\";
    else if (b === q.charCodeAt(0)) out += "\\" + q;
    else if (b === 0x0a) out += "\\n";
    else if (b === 0x0d) out += "\\r";
    else if (b === 0x09) out += "\\t";
    else if (b < 0x20 || b >= 0x7f) out += "\\x" + b.toString(16).padStart(2, "0");
    else out += String.fromCharCode(b);
  }
  return out + q;
}

/** Python's type name of a JSON value, for messages ("dict", "list", "str", "int", ...). */
export function typeName(value: unknown): string {
  if (value === null || value === undefined) return "NoneType";
  if (Array.isArray(value)) return "list";
  if (typeof value === "string") return "str";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return Number.isInteger(value) ? "int" : "float";
  if (typeof value === "object") return "dict";
  return typeof value;
}

const FLOAT_TEXT = /^[+-]?(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?$/;
const FLOAT_SPECIAL = /^[+-]?(?:inf|infinity|nan)$/i;

/** float(text) of Python: the number, or null where Python raises ValueError. */
export function pyFloat(text: string): number | null {
  const value = text.trim();
  if (FLOAT_TEXT.test(value)) return Number(value.replace(/_/g, ""));
  if (FLOAT_SPECIAL.test(value)) {
    const negative = value.startsWith("-");
    if (/nan/i.test(value)) return NaN;
    return negative ? -Infinity : Infinity;
  }
  return null;
}

/** A float as Python prints it in a message: 2 -> "2.0", 0.25 -> "0.25". */
export function floatText(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : pyStr(value);
}
