/**
 * Time in one injectable object, plus the few date helpers the runtime needs.
 *
 * Everything that waits or reads the time goes through a clock, so tests can pass a fake one
 * whose sleep() only advances a counter.
 */
import { Cancelled } from "./errors.js";

export interface Clock {
  /** Wall-clock epoch seconds (for HTTP dates and epoch reset headers). */
  time(): number;
  /** Seconds for measuring intervals (budgets, buckets, breaker). */
  monotonic(): number;
  /** Wait; resolves after `seconds` (at once for zero or less). */
  sleep(seconds: number): Promise<void>;
}

export class SystemClock implements Clock {
  /** `cancel`, when given, ends a sleep early with Cancelled (SIGINT / SIGTERM). */
  constructor(private readonly cancel?: AbortSignal) {}

  time(): number {
    return Date.now() / 1000;
  }

  monotonic(): number {
    return performance.now() / 1000;
  }

  sleep(seconds: number): Promise<void> {
    const cancel = this.cancel;
    if (cancel?.aborted) return Promise.reject(new Cancelled());
    if (!(seconds > 0)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new Cancelled());
      };
      const timer = setTimeout(() => {
        cancel?.removeEventListener("abort", onAbort);
        resolve();
      }, Math.min(seconds * 1000, 2 ** 31 - 1));
      cancel?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

const ISO = new RegExp(
  "^(\\d{4})-(\\d{2})-(\\d{2})" +
    "(?:[Tt ](\\d{2}):(\\d{2})(?::(\\d{2})(?:\\.(\\d+))?)?" +
    "(?:([Zz])|([+-])(\\d{2}):?(\\d{2}))?)?$",
);

/** Days since 1970-01-01 of a proleptic Gregorian date. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (month + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Parse an ISO 8601 / RFC 3339 timestamp into epoch seconds (UTC), or return null.
 * Accepts a trailing 'Z', offsets with or without a colon, any number of fraction digits
 * (microsecond precision, like the Python runtime), and a bare date. No offset means UTC.
 */
export function parseIso8601(text: unknown): number | null {
  if (typeof text !== "string" || !text.trim()) return null;
  const m = ISO.exec(text.trim());
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hour = m[4] === undefined ? 0 : Number(m[4]);
  const minute = m[5] === undefined ? 0 : Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const micros = m[7] === undefined ? 0 : Number((m[7] + "000000").slice(0, 6));
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offset = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offset = (m[9] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const days = daysFromCivil(year, month, day);
  return days * 86400 + hour * 3600 + minute * 60 + second - offset + micros / 1e6;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

function utcParts(wholeSeconds: number): string {
  const d = new Date(wholeSeconds * 1000);
  return (
    pad(d.getUTCFullYear(), 4) + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
    "T" + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds())
  );
}

/** Epoch seconds -> '2024-01-02T03:04:05.678000Z' (UTC, microseconds). */
export function formatRfc3339(epochSeconds: number): string {
  const totalMicros = Math.round(epochSeconds * 1e6);
  const whole = Math.floor(totalMicros / 1e6);
  const micros = totalMicros - whole * 1e6;
  return utcParts(whole) + "." + pad(micros, 6) + "Z";
}

/** Epoch seconds -> '2024-01-02T03:04:05Z' (UTC, whole seconds), for request parameters. */
export function formatIsoSeconds(epochSeconds: number): string {
  return utcParts(Math.trunc(epochSeconds)) + "Z";
}
