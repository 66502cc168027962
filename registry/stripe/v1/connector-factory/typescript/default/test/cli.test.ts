import assert from "node:assert/strict";
import { join } from "node:path";
import { type TestContext, describe, test } from "node:test";
import { main, parseArgs } from "../src/runtime/cli.js";
import { ConnectorError } from "../src/runtime/errors.js";
import {
  Env, FakeClock, type Json, type LocalServer, type Reply, Run, SIMPLE_SCHEMA, type Seen, StringSink, type TempConnector,
  baseConfig, freePort, manifest, reply, runCli, runMain, sleep, spawnMain, stream,
} from "./helpers.js";

const ERROR_KEYS = ["code", "message", "request_id", "retryable", "status", "stream", "type"];
const PEOPLE = [1, 2, 3, 4, 5].map((i) => ({ id: i, name: `person ${i}`, updated_at: `2024-03-0${i}T00:00:00Z` }));

function pagedPeople(seen: Seen): Reply {
  const offset = Number(seen.query.offset ?? "0");
  const limit = Number(seen.query.limit ?? "100");
  return reply(200, { data: PEOPLE.slice(offset, offset + limit) }, { "X-Request-Id": `req-${offset}` });
}

function peopleManifest(extra: Json = {}): Json {
  return manifest([
    stream("people", "/people", {
      pagination: { type: "offset", offset_param: "offset", size_param: "limit" },
      incremental: { cursor_field: "updated_at", request_param: "since" },
    }),
    stream("teams", "/teams"),
  ], { type: "bearer" }, extra);
}

describe("end to end (node dist/main.js in a subprocess)", () => {
  async function setup(t: TestContext): Promise<{ env: Env; server: LocalServer; impl: TempConnector }> {
    const env = new Env(t);
    const server = await env.serve((seen) =>
      seen.path === "/people" ? pagedPeople(seen) : reply(200, { data: [{ id: "t1", name: "core" }] }));
    const impl = env.connector(peopleManifest(), { withRuntime: true });
    impl.write("config.json", baseConfig(server.url, { credentials: { token: "cli-secret-token" }, page_size: 2 }));
    return { env, server, impl };
  }

  test("--about", async (t) => {
    const { impl } = await setup(t);
    const run = await runMain(impl.dir, "--about");
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(run.messages, [{
      name: "testapi", version: "v1", language: "typescript", capabilities: ["discover", "catalog", "state"],
      streams: ["people", "teams"],
    }]);
  });

  test("--discover", async (t) => {
    const { server, impl } = await setup(t);
    const run = await runMain(impl.dir, "--config", "config.json", "--discover");
    assert.equal(run.code, 0, run.errText);
    const streams = Object.fromEntries((run.messages[0].streams as Json[]).map((s) => [s.tap_stream_id, s]));
    assert.deepEqual(Object.keys(streams).sort(), ["people", "teams"]);
    const people = streams.people;
    assert.equal(people.stream, "people");
    assert.deepEqual(people.key_properties, ["id"]);
    assert.deepEqual(people.schema, SIMPLE_SCHEMA);
    assert.deepEqual(people.metadata, [{ breadcrumb: [], metadata: {
      selected: true, "replication-method": "INCREMENTAL", "replication-key": "updated_at" } }]);
    const teams = streams.teams.metadata as Json[];
    assert.deepEqual(teams[0].metadata, { selected: true, "replication-method": "FULL_TABLE", "replication-key": null });
    assert.deepEqual(server.requests, []); // discovery does not call the API
  });

  test("a sync, then a resume", async (t) => {
    const { server, impl } = await setup(t);
    let run = await runMain(impl.dir, "--config", "config.json");
    assert.equal(run.code, 0, run.errText);
    const kinds = run.messages.map((m) => m.type);
    assert.equal(kinds[0], "SCHEMA");
    assert.equal(kinds[kinds.length - 1], "STATE");
    const records = run.of("RECORD");
    assert.deepEqual(records.filter((m) => m.stream === "people").map((m) => (m.record as Json).id), [1, 2, 3, 4, 5]);
    assert.deepEqual(records.filter((m) => m.stream === "teams").map((m) => (m.record as Json).id), ["t1"]);
    for (const message of records) assert.match(String(message.time_extracted), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    // each stream's SCHEMA comes before its first RECORD
    for (const name of ["people", "teams"]) {
      const schemaAt = run.messages.findIndex((m) => m.type === "SCHEMA" && m.stream === name);
      const recordAt = run.messages.findIndex((m) => m.type === "RECORD" && m.stream === name);
      assert.ok(schemaAt < recordAt);
    }
    assert.ok(run.logs.every((log) => log.type === "LOG" && ["INFO", "WARN"].includes(String(log.level))));
    const events = new Set(run.logs.map((log) => log.event));
    assert.ok(events.has("request") && events.has("page"));
    assert.ok(!(run.outText + run.errText).includes("cli-secret-token"));
    assert.equal(server.requests[0].headers["authorization"], "Bearer cli-secret-token");

    impl.write("state.json", run.messages[run.messages.length - 1].value);
    run = await runMain(impl.dir, "--config", "config.json", "--state", "state.json");
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(run.of("RECORD").filter((m) => m.stream === "people"), []);
  });

  test("a catalog selects streams", async (t) => {
    const { impl } = await setup(t);
    const discovered = await runMain(impl.dir, "--config", "config.json", "--discover");
    const catalog = discovered.messages[0] as { streams: Array<{ metadata: Array<{ metadata: Json }> }> };
    catalog.streams[0].metadata[0].metadata.selected = false; // people off
    impl.write("catalog.json", catalog);
    const run = await runMain(impl.dir, "--config", "config.json", "--catalog", "catalog.json");
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual([...new Set(run.messages.filter((m) => m.type !== "STATE").map((m) => m.stream))], ["teams"]);
  });

  test("a bad command line is an ERROR line and exit 1", async (t) => {
    const { impl } = await setup(t);
    const run = await runMain(impl.dir, "--bogus");
    assert.equal(run.code, 1);
    const last = run.logs[run.logs.length - 1];
    assert.deepEqual(Object.keys(last).sort(), ERROR_KEYS);
    assert.equal(last.code, "VALIDATION_ERROR");
    assert.equal(last.message, "bad command line: unrecognized arguments: --bogus");
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal} is CANCELLED`, async (t) => {
      const { env, impl } = await setup(t);
      let release: () => void = () => undefined;
      const released = new Promise<void>((ok) => (release = ok));
      t.after(() => release());
      setTimeout(() => release(), 10_000).unref(); // never hang the suite, whatever happens
      const server = await env.serve(async () => {
        await released;
        return reply(200, { data: [] });
      });
      impl.write("config.json", baseConfig(server.url, { credentials: { token: "tok-sig" }, timeout_seconds: 20 }));
      const spawned = spawnMain(impl.dir, ["--config", "config.json"]);
      const deadline = Date.now() + 10_000;
      while (server.requests.length === 0 && Date.now() < deadline) await sleep(20);
      assert.ok(server.requests.length > 0, "the connector never called the server");
      const started = Date.now();
      spawned.child.kill(signal);
      const run = await spawned.done;
      release();
      assert.ok(Date.now() - started < 4000, "the run did not stop promptly");
      assert.equal(run.code, 1);
      const error = run.logs[run.logs.length - 1];
      assert.deepEqual(Object.keys(error).sort(), ERROR_KEYS);
      assert.equal(error.code, "CANCELLED");
      assert.equal(error.retryable, false);
      assert.equal(run.messages[run.messages.length - 1].type, "STATE"); // progress is still reported
    });
  }
});

describe("error lines (in-process, fake clock for retry sleeps)", () => {
  async function runAgainst(t: TestContext, route: ((seen: Seen) => Reply | null | Promise<Reply | null>) | null,
    config: Json = {}, manifestData: Json = peopleManifest()): Promise<{ run: Run; server: LocalServer | null }> {
    const env = new Env(t);
    const server = route ? await env.serve(route) : null;
    const connector = env.connector(manifestData);
    const url = server ? server.url : `http://127.0.0.1:${await freePort()}`;
    const run = await runCli(connector, {
      config: baseConfig(url, { credentials: { token: "tok-err-1" }, page_size: 2, ...config }),
      clock: new FakeClock(),
    });
    assert.equal(run.code, 1, run.errText);
    assert.deepEqual(Object.keys(run.error ?? {}).sort(), ERROR_KEYS);
    assert.equal(run.logs[run.logs.length - 1].type, "ERROR");
    assert.equal(run.logs.filter((line) => line.type === "ERROR").length, 1);
    return { run, server };
  }

  test("malformed JSON is PARSING_ERROR", async (t) => {
    const { run, server } = await runAgainst(t, () => reply(200, '{"data": [{"id": 1}', { "Request-Id": "rq-7" }));
    assert.equal(run.error?.code, "PARSING_ERROR");
    assert.equal(run.error?.stream, "people");
    assert.equal(run.error?.request_id, "rq-7");
    assert.equal(run.error?.retryable, false);
    assert.equal(server?.requests.length, 1); // not retried
  });

  test("a slow response is TIMEOUT", async (t) => {
    const { run, server } = await runAgainst(t, async () => {
      await sleep(500);
      return reply(200, { data: [] });
    }, { timeout_seconds: 0.15, retry: { max_attempts: 2, initial_delay_seconds: 0.01 } });
    assert.equal(run.error?.code, "TIMEOUT");
    assert.equal(run.error?.retryable, true);
    assert.equal(run.error?.status, null);
    assert.equal(server?.requests.length, 2);
  });

  test("a persistent 503 is SERVER_ERROR after the retries", async (t) => {
    const { run, server } = await runAgainst(t, () => reply(503, { error: "down" }),
      { retry: { max_attempts: 4, initial_delay_seconds: 0.5 } });
    assert.equal(run.error?.code, "SERVER_ERROR");
    assert.equal(run.error?.status, 503);
    assert.equal(server?.requests.length, 4);
    const retries = run.logs.filter((line) => line.event === "retry");
    assert.deepEqual(retries.map((line) => line.attempt), [1, 2, 3]);
    const delays = retries.map((line) => Number(line.delay_seconds));
    assert.ok(delays[0] < delays[1] && delays[1] < delays[2], String(delays));
    assert.equal(retries[0].message,
      `retrying after SERVER_ERROR: HTTP 503 from ${server?.url}/people?limit=2&offset=0: {"error":"down"}`);
  });

  test("a refused connection is NETWORK_ERROR", async (t) => {
    const { run } = await runAgainst(t, null, { retry: { max_attempts: 2, initial_delay_seconds: 0.01 } });
    assert.equal(run.error?.code, "NETWORK_ERROR");
  });

  test("not found is INVALID_REQUEST", async (t) => {
    const { run, server } = await runAgainst(t, () => reply(404, { error: "no" }));
    assert.equal(run.error?.code, "INVALID_REQUEST");
    assert.equal(run.error?.status, 404);
    assert.equal(server?.requests.length, 1);
  });

  test("a failure mid-stream does not advance its bookmark", async (t) => {
    // Records of the first page were emitted, but the stream was not read to its end: saving
    // their cursor would make a resumed run skip whatever the unread pages held.
    const { run } = await runAgainst(t, (seen) => (seen.query.offset === "2" ? reply(400, { error: "bad" }) : pagedPeople(seen)));
    assert.deepEqual(run.records.map((r) => r.id), [1, 2]);
    assert.equal(run.error?.code, "INVALID_REQUEST");
    for (const message of run.of("STATE")) {
      assert.ok(!("people" in (message.value as { bookmarks: Json }).bookmarks), JSON.stringify(message));
    }
  });

  test("a missing path placeholder is VALIDATION_ERROR", async (t) => {
    const { run, server } = await runAgainst(t, () => reply(200, { data: [] }), {},
      manifest([stream("repos", "/users/{owner}/repos")], { type: "bearer" }));
    assert.equal(run.error?.code, "VALIDATION_ERROR");
    assert.equal(run.error?.message, "stream repos path needs config.params.owner");
    assert.equal(server?.requests.length, 0);
  });
});

describe("path placeholders", () => {
  test("are filled from config params, URL-encoded", async (t) => {
    const env = new Env(t);
    const server = await env.serve(() => reply(200, { data: [{ id: 1 }] }));
    const connector = env.connector(manifest([stream("repos", "/users/{owner}/repos", { params: { type: "{kind}", n: 5 } })]));
    const run = await runCli(connector, { config: baseConfig(server.url, { params: { owner: "a b/c", kind: "all" } }) });
    assert.equal(run.code, 0, run.errText);
    assert.equal(server.requests[0].path, "/users/a%20b%2Fc/repos");
    assert.deepEqual(server.requests[0].query, { type: "all", n: "5" });
  });
});

describe("config errors", () => {
  const cases: Array<[string, unknown]> = [
    ["not json", "{not json"],
    ["a missing credential", { base_url: "http://127.0.0.1:1", credentials: {} }],
    ["a bad number", { credentials: { token: "t1234" }, timeout_seconds: "soon" }],
    ["a bad start date", { credentials: { token: "t1234" }, start_date: "yesterday" }],
    ["an unknown stream", { credentials: { token: "t1234" }, streams: ["nope"] }],
    ["a number below its minimum", { credentials: { token: "t1234" }, page_size: 0 }],
    ["a non-URL base_url", { credentials: { token: "t1234" }, base_url: "ftp://x" }],
  ];
  for (const [label, content] of cases) {
    test(`${label} is VALIDATION_ERROR`, async (t) => {
      const env = new Env(t);
      const impl = env.connector(peopleManifest());
      const path = impl.write("config.json", content);
      const out = new StringSink();
      const err = new StringSink();
      const code = await main(impl.dir, ["--config", path], { stdout: out, stderr: err, signals: false });
      const run = new Run(code, out.text, err.text);
      assert.equal(code, 1);
      assert.equal(run.error?.code, "VALIDATION_ERROR");
      assert.deepEqual(run.messages, []);
    });
  }

  test("messages read like the Python runtime's", async (t) => {
    const env = new Env(t);
    const impl = env.connector(peopleManifest());
    const check = async (config: Json, message: string) => {
      const run = await runCli(impl, { config });
      assert.equal(run.error?.message, message);
    };
    await check({ credentials: {} }, "config.credentials lacks token (needed by auth type bearer)");
    await check({ credentials: { token: "t1234" }, timeout_seconds: 0 }, "config.timeout_seconds must be at least 0.001");
    await check({ credentials: { token: "t1234" }, retry: { max_attempts: 1.5 } }, "retry.max_attempts must be a whole number");
    await check({ credentials: { token: "t1234" }, start_date: "yesterday" }, "start_date must be an ISO 8601 timestamp, got 'yesterday'");
    await check({ credentials: { token: "t1234" }, streams: ["nope"] }, "unknown stream 'nope'");
  });

  test("a missing config file, and a missing --config", async (t) => {
    const env = new Env(t);
    const impl = env.connector(peopleManifest());
    let run = await runCli(impl, { args: ["--config", join(impl.dir, "absent.json")] });
    assert.deepEqual([run.code, run.error?.code], [1, "VALIDATION_ERROR"]);
    assert.match(String(run.error?.message), /^cannot read config file .*absent\.json: No such file or directory$/);
    run = await runCli(impl, { args: ["--discover"] });
    assert.deepEqual([run.code, run.error?.code], [1, "VALIDATION_ERROR"]);
  });
});

describe("command line parsing", () => {
  test("flags, values, = forms and unique prefixes", () => {
    assert.deepEqual(parseArgs(["--config", "c.json", "--state=s.json", "--disc", "--cat", "k.json"]), {
      help: false, about: false, config: "c.json", discover: true, catalog: "k.json", state: "s.json",
    });
  });

  test("errors read like argparse's", () => {
    const message = (argv: string[]): string => {
      try {
        parseArgs(argv);
        return "";
      } catch (error) {
        return (error as ConnectorError).message;
      }
    };
    assert.equal(message(["--config"]), "bad command line: argument --config: expected one argument");
    assert.equal(message(["--config", "--about"]), "bad command line: argument --config: expected one argument");
    assert.equal(message(["--c", "x"]), "bad command line: ambiguous option: --c could match --config, --catalog");
    assert.equal(message(["extra", "--x"]), "bad command line: unrecognized arguments: extra --x");
  });

  test("--help prints usage and exits 0", async (t) => {
    const env = new Env(t);
    const impl = env.connector(peopleManifest());
    const out = new StringSink();
    const code = await main(impl.dir, ["--help"], { stdout: out, stderr: new StringSink(), signals: false });
    assert.equal(code, 0);
    assert.match(out.text, /^usage: main\.js /);
  });
});

describe("custom hooks", () => {
  const HOOKS = `
export function register(pipeline) {
  pipeline.register("before_request", (ctx, request) => {
    request.headers["X-Custom"] = "page-" + ctx.page;
  }, 50);
}

export function transform_record(stream, record) {
  if (record.id === 2) return null;
  return { ...record, name: record.name.toUpperCase() };
}
`;

  test("register and transform_record", async (t) => {
    const env = new Env(t);
    const server = await env.serve(pagedPeople);
    const impl = env.connector(manifest([stream("people", "/people", {
      pagination: { type: "offset", offset_param: "offset", size_param: "limit" },
    })], null, { hooks: "hooks.mjs" }), { files: { "hooks.mjs": HOOKS } });
    const run = await runCli(impl, { config: baseConfig(server.url, { page_size: 2 }) });
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(run.records.map((r) => [r.id, r.name]),
      [[1, "PERSON 1"], [3, "PERSON 3"], [4, "PERSON 4"], [5, "PERSON 5"]]);
    assert.deepEqual(server.requests.map((r) => r.headers["x-custom"]), ["page-1", "page-2", "page-3"]);
  });

  test("extract_records replaces the record selector", async (t) => {
    const env = new Env(t);
    const server = await env.serve(() => reply(200, { groups: [{ rows: [{ id: 1 }] }, { rows: [{ id: 2 }] }] }));
    const impl = env.connector(manifest([stream("items")], null, { hooks: "hooks.mjs" }), {
      files: { "hooks.mjs": "export const extract_records = (stream, body) => body.groups.flatMap((g) => g.rows);\n" },
    });
    const run = await runCli(impl, { config: baseConfig(server.url) });
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(run.records.map((r) => r.id), [1, 2]);
  });

  test("a TypeScript hooks file is loaded from its compiled form under dist/", async (t) => {
    const env = new Env(t);
    const server = await env.serve(() => reply(200, { data: [{ id: 1, name: "a" }] }));
    const impl = env.connector(manifest([stream("items")], null, { hooks: "src/hooks.ts" }), {
      files: {
        "src/hooks.ts": "// compiled by the build into dist/hooks.js\n",
        "dist/hooks.js": "export function transform_record(stream, record) { return { ...record, stream }; }\n",
        "package.json": { type: "module" },
      },
    });
    const run = await runCli(impl, { config: baseConfig(server.url) });
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(run.records, [{ id: 1, name: "a", stream: "items" }]);
  });

  test("a missing hooks file is VALIDATION_ERROR", async (t) => {
    const env = new Env(t);
    const server = await env.serve(() => reply(200, { data: [] }));
    const impl = env.connector(manifest([stream("items")], null, { hooks: "hooks.mjs" }));
    const run = await runCli(impl, { config: baseConfig(server.url) });
    assert.equal(run.error?.code, "VALIDATION_ERROR");
    assert.equal(run.error?.message, "hooks file hooks.mjs not found");
  });

  test("an unexpected exception in a hook is mapped to a code", async (t) => {
    const env = new Env(t);
    const server = await env.serve(pagedPeople);
    const impl = env.connector(manifest([stream("people", "/people")], null, { hooks: "hooks.mjs" }), {
      files: { "hooks.mjs": "export function transform_record(stream, record) { return record.missing.field; }\n" },
    });
    const run = await runCli(impl, { config: baseConfig(server.url) });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "PARSING_ERROR");
    assert.ok(String(run.error?.message).includes("TypeError"));
    assert.equal(run.logs[run.logs.length - 1].type, "ERROR");
    assert.ok(run.logs.some((line) => line.event === "traceback"));
  });
});
