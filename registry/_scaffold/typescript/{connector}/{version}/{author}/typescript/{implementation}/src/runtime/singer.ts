/** Singer messages on stdout, one JSON object per line (contract section 4). */
import { type Clock, formatRfc3339 } from "./clock.js";
import { dumps } from "./format.js";
import type { Redactor, Sink } from "./log.js";

export class SingerWriter {
  readonly counts: Record<string, number> = {};

  constructor(
    readonly out: Sink | null = null,
    readonly redactor: Redactor | null = null,
    readonly clock: Clock | null = null,
  ) {}

  schema(stream: string, schema: unknown, keyProperties: string[], bookmarkProperties: string[]): void {
    this.write({
      type: "SCHEMA",
      stream,
      schema,
      key_properties: [...keyProperties],
      bookmark_properties: [...bookmarkProperties],
    });
  }

  record(stream: string, record: unknown, timeExtracted: string | null = null): void {
    const extracted = timeExtracted ?? formatRfc3339(this.clock ? this.clock.time() : Date.now() / 1000);
    this.write({ type: "RECORD", stream, record, time_extracted: extracted });
    this.counts[stream] = (this.counts[stream] ?? 0) + 1;
  }

  state(value: unknown): void {
    this.write({ type: "STATE", value });
  }

  private write(message: unknown): void {
    // ASCII-only JSON: valid whatever the encoding of stdout.
    let text = dumps(message, true);
    // The contract forbids credentials on stdout too; records never legitimately hold ours.
    if (this.redactor !== null) text = this.redactor.redact(text);
    (this.out ?? process.stdout).write(text + "\n");
  }
}
