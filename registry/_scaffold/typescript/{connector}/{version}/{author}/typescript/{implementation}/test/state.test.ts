import assert from "node:assert/strict";
import { type TestContext, describe, test } from "node:test";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { Incremental, State, parseState } from "../src/runtime/state.js";
import { Env, type Json, type LocalServer, type TempConnector, baseConfig, manifest, reply, runCli, stream } from "./helpers.js";

const RECORDS: Json[] = [
  { id: 1, updated_at: "2024-01-03T00:00:00Z", created: 1704240000 },
  { id: 2, updated_at: "2024-01-01T00:00:00Z", created: 1704067200 },
  { id: 3, updated_at: "2024-01-05T10:00:00.5+00:00", created: 1704448800 },
  { id: 4, updated_at: "2024-01-02T00:00:00Z", created: 1704153600 },
  { id: 5, updated_at: "2024-01-04T00:00:00Z", created: 1704326400 },
];

describe("state", () => {
  test("parse a value or a whole message", () => {
    const value = { bookmarks: { s: { updated_at: "x" } } };
    assert.deepEqual(parseState(value), value);
    assert.deepEqual(parseState({ type: "STATE", value }), value);
    assert.deepEqual(parseState({}), { bookmarks: {} });
  });

  for (const bad of [[], { bookmarks: [] }, { bookmarks: { s: 3 } }, { type: "STATE", value: 1 }]) {
    test(`bad state ${JSON.stringify(bad)} is VALIDATION_ERROR`, () => {
      assert.throws(() => parseState(bad), (error: ConnectorError) => error.code === errors.VALIDATION_ERROR);
    });
  }

  test("the bookmark is the greatest value emitted whatever the order", () => {
    const inc = new Incremental({ cursor_field: "updated_at" });
    for (const record of RECORDS) {
      assert.ok(inc.accept(record));
      inc.observe(record);
    }
    assert.equal(inc.bookmark, "2024-01-05T10:00:00.5+00:00");
  });

  test("the filter drops values at or below the bookmark", () => {
    const inc = new Incremental({ cursor_field: "updated_at", request_param: "since" }, "2024-01-03T00:00:00Z");
    assert.deepEqual(RECORDS.filter((r) => inc.accept(r)).map((r) => r.id), [3, 5]);
    assert.ok(inc.accept({ id: 9 })); // no cursor value: cannot be filtered
    // Values with other offsets compare as instants, not as text.
    assert.ok(inc.accept({ updated_at: "2024-01-03T01:30:00+01:00" })); // 00:30 UTC
    assert.ok(!inc.accept({ updated_at: "2024-01-03T00:30:00+01:00" }));
    assert.equal(inc.requestValue(), "2024-01-03T00:00:00Z");
  });

  test("unix format and start_date", () => {
    const inc = new Incremental({ cursor_field: "created", request_param: "created[gte]", format: "unix" }, null,
      "2024-01-03T00:00:00Z");
    assert.equal(inc.requestValue(), 1704240000);
    assert.deepEqual(RECORDS.filter((r) => inc.accept(r)).map((r) => r.id), [3, 5]);
    assert.equal(inc.bookmark, null); // nothing emitted yet: no bookmark invented
  });

  test("the state bookmark wins over start_date", () => {
    const inc = new Incremental({ cursor_field: "created", format: "unix" }, 1704326400, "2020-01-01T00:00:00Z");
    assert.equal(inc.requestValue(), 1704326400);
    assert.deepEqual(RECORDS.filter((r) => inc.accept(r)).map((r) => r.id), [3]);
  });

  test("numeric strings compare as numbers, not as text", () => {
    const inc = new Incremental({ cursor_field: "created", format: "unix" }, "999");
    assert.ok(inc.accept({ created: "1000" }));
    assert.ok(!inc.accept({ created: 998 }));
    assert.equal(inc.requestValue(), 999);
  });

  test("an ISO request value from a numeric bookmark", () => {
    const inc = new Incremental({ cursor_field: "t", format: "iso8601" }, 1704240000);
    assert.equal(inc.requestValue(), "2024-01-03T00:00:00Z");
  });

  test("the state keeps other streams", () => {
    const state = new State({ bookmarks: { other: { k: 1 } }, extra: true });
    state.setBookmark("s", "updated_at", "v");
    assert.deepEqual(state.toValue(), { bookmarks: { other: { k: 1 }, s: { updated_at: "v" } }, extra: true });
  });
});

describe("incremental sync", () => {
  async function setup(t: TestContext): Promise<{ data: Json[]; server: LocalServer; connector: TempConnector }> {
    const env = new Env(t);
    const data = [...RECORDS];
    const server = await env.serve((seen) => {
      const since = seen.query.since;
      const rows = data.filter((r) => since === undefined || String(r.updated_at) >= since);
      const offset = Number(seen.query.offset ?? "0");
      return reply(200, { data: rows.slice(offset, offset + 2) });
    });
    const connector = env.connector(manifest([stream("items", "/items", {
      pagination: { type: "offset", offset_param: "offset", size_param: "limit" },
      incremental: { cursor_field: "updated_at", request_param: "since", format: "iso8601" },
    })]));
    return { data, server, connector };
  }

  test("one STATE per stream, and a resume emits nothing twice", async (t) => {
    const { data, server, connector } = await setup(t);
    const syncWith = (state?: unknown) => runCli(connector, { config: baseConfig(server.url, { page_size: 2 }), state });
    const first = await syncWith();
    assert.equal(first.code, 0, first.errText);
    assert.deepEqual(first.records.map((r) => r.id).sort(), [1, 2, 3, 4, 5]);
    const states = first.of("STATE");
    // One when the stream is complete, one at the end of the run; none mid-stream.
    assert.equal(states.length, 2);
    const kinds = first.messages.map((m) => m.type);
    assert.ok(kinds.indexOf("STATE") > kinds.lastIndexOf("RECORD"));
    const final = states[states.length - 1].value as Json;
    assert.deepEqual(final, { bookmarks: { items: { updated_at: "2024-01-05T10:00:00.5+00:00" } } });
    assert.equal(first.messages[first.messages.length - 1].type, "STATE");
    assert.deepEqual(first.of("SCHEMA")[0].bookmark_properties, ["updated_at"]);

    const second = await syncWith(states[states.length - 1]); // a whole STATE message works too
    assert.equal(second.code, 0, second.errText);
    assert.deepEqual(second.records, []);
    assert.equal(server.requests[server.requests.length - 1].query.since, "2024-01-05T10:00:00.5+00:00");
    assert.deepEqual(second.of("STATE").pop()?.value, final);

    data.push({ id: 6, updated_at: "2024-02-01T00:00:00Z" });
    const third = await syncWith(final);
    assert.deepEqual(third.records.map((r) => r.id), [6]);
    assert.deepEqual(third.of("STATE").pop()?.value, { bookmarks: { items: { updated_at: "2024-02-01T00:00:00Z" } } });
  });

  test("start_date is sent and applied", async (t) => {
    const { server, connector } = await setup(t);
    const run = await runCli(connector, { config: baseConfig(server.url, { page_size: 2, start_date: "2024-01-02T00:00:00Z" }) });
    assert.equal(server.requests[0].query.since, "2024-01-02T00:00:00Z");
    assert.deepEqual(run.records.map((r) => r.id).sort(), [1, 3, 5]);
  });

  test("an invalid state file fails before any request", async (t) => {
    const { server, connector } = await setup(t);
    const run = await runCli(connector, { config: baseConfig(server.url, { page_size: 2 }), state: { bookmarks: ["nope"] } });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "VALIDATION_ERROR");
    assert.deepEqual(server.requests, []);
  });
});
