import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BasicAuth } from "../src/runtime/auth.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { asciiString, quote, quotePlus, urlencode } from "../src/runtime/format.js";
import { Logger, Redactor } from "../src/runtime/log.js";
import { Env, StringSink, baseConfig, manifest, reply, runCli, stream } from "./helpers.js";

const SECRET = 'p@ss/w"rd+&=\u00e9x';

describe("redactor", () => {
  const forms: Array<[string, string]> = [
    ["as is", SECRET],
    ["quote safe=''", quote(SECRET, "")],
    ["quote_plus", quotePlus(SECRET)],
    ["urlencode", urlencode([["k", SECRET]]).slice(2)],
    ["JSON, ASCII", asciiString(SECRET).slice(1, -1)],
    ["JSON, unicode", JSON.stringify(SECRET).slice(1, -1)],
    ["base64", Buffer.from(SECRET, "utf8").toString("base64")],
  ];
  for (const [label, form] of forms) {
    test(`hides the secret written ${label}`, () => {
      const redactor = new Redactor();
      redactor.add(SECRET);
      assert.equal(redactor.redact(`before ${form} after`), "before *** after");
    });
  }

  test("the basic auth pair is hidden", () => {
    const redactor = new Redactor();
    const auth = new BasicAuth("alice", "hunter22", redactor);
    assert.equal(redactor.redact("Authorization: " + auth.header), "Authorization: Basic ***");
  });

  test("nested credentials and numbers", () => {
    const redactor = new Redactor();
    redactor.addAll({ a: "token-aaaa", nested: { b: ["list-secret"] }, pin: 987654 });
    assert.equal(redactor.redact("token-aaaa list-secret 987654 keep"), "*** *** *** keep");
  });

  test("values too short to hide are left alone", () => {
    const redactor = new Redactor();
    redactor.add("ab");
    assert.equal(redactor.redact("tab"), "tab");
  });
});

describe("logger", () => {
  test("line shape and redaction in every field", () => {
    const out = new StringSink();
    const redactor = new Redactor();
    redactor.add("sk_test_abcdef");
    const logger = new Logger(out, redactor);
    logger.info("GET https://h/x?key=sk_test_abcdef", {
      event: "request", status: 200, stream: null, url: "https://h/x?key=" + quote("sk_test_abcdef"),
    });
    logger.errorLine(new ConnectorError("AUTH_FAILED", "bad key sk_test_abcdef", { status: 401 }));
    const lines = out.text.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines[0], {
      type: "LOG", level: "INFO", message: "GET https://h/x?key=***", event: "request", status: 200, url: "https://h/x?key=***",
    });
    assert.equal(lines[1].type, "ERROR");
    assert.equal(lines[1].message, "bad key ***");
    assert.ok(!out.text.includes("sk_test_abcdef"));
  });

  test("lines are written as Python's json.dumps writes them", () => {
    const out = new StringSink();
    new Logger(out).warn("caf\u00e9", { n: 1, list: [1, "a"], nested: { k: true } });
    assert.equal(out.text,
      '{"type": "LOG", "level": "WARN", "message": "caf\\u00e9", "n": 1, "list": [1, "a"], "nested": {"k": true}}\n');
  });

  test("a broken stream does not throw", () => {
    const logger = new Logger({ write: () => { throw new Error("EPIPE"); } });
    logger.info("still fine");
  });
});

describe("redaction end to end", () => {
  test("the secret never reaches stdout or stderr", async (t) => {
    const env = new Env(t);
    const key = "qk/Secret+Value=1";
    // A hostile API that echoes the key back in its error body.
    const server = await env.serve((seen) =>
      reply(404, { error: `unknown key ${seen.query.key}`, url: seen.rawQuery }, { "X-Request-Id": "rid-1" }));
    const connector = env.connector(manifest([stream()], { type: "api_key", in: "query", name: "key" }));
    const run = await runCli(connector, { config: baseConfig(server.url, { credentials: { api_key: key } }) });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "INVALID_REQUEST");
    const both = run.outText + run.errText;
    for (const form of [key, quote(key, ""), quotePlus(key), JSON.stringify(key).slice(1, -1)]) {
      assert.ok(!both.includes(form), form);
    }
    assert.ok(String(run.error?.message).includes("***"));
  });
});
