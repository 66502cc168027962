import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatIsoSeconds, formatRfc3339, parseIso8601 } from "../src/runtime/clock.js";
import { bytesRepr, cloneJson, dumps, floatRepr, parseJson, pyFloat, quote, quotePlus, repr, sortedDumps } from "../src/runtime/format.js";
import { SingerWriter } from "../src/runtime/singer.js";
import { State } from "../src/runtime/state.js";
import { Env, FakeClock, StringSink, baseConfig, manifest, reply, runCli, stream } from "./helpers.js";

describe("ISO 8601", () => {
  const cases: Array<[string, number | null]> = [
    ["2024-01-03T00:00:00Z", 1704240000],
    ["2024-01-03T00:00:00z", 1704240000],
    ["2024-01-03T01:30:00+01:00", 1704245400 - 3600],
    ["2024-01-03T00:00:00-0500", 1704240000 + 5 * 3600],
    ["2024-01-03T00:00:00.5Z", 1704240000.5],
    ["2024-01-03T00:00:00.1234567Z", 1704240000.123456],
    ["2024-01-03 00:00", 1704240000],
    ["2024-01-03", 1704240000],
    ["2024-01-03T00:00:00", 1704240000],
    ["2024-02-30T00:00:00Z", null],
    ["2024-01-03T24:00:00Z", null],
    ["yesterday", null],
    ["", null],
  ];
  for (const [text, expected] of cases) {
    test(`parses ${JSON.stringify(text)}`, () => {
      const parsed = parseIso8601(text);
      if (expected === null) assert.equal(parsed, null);
      else assert.ok(parsed !== null && Math.abs(parsed - expected) < 1e-6, `${parsed} vs ${expected}`);
    });
  }

  test("formats RFC 3339 with microseconds and whole-second request values", () => {
    assert.equal(formatRfc3339(1704240000.678), "2024-01-03T00:00:00.678000Z");
    assert.equal(formatRfc3339(0), "1970-01-01T00:00:00.000000Z");
    assert.equal(formatIsoSeconds(1704240000.9), "2024-01-03T00:00:00Z");
  });
});

describe("Python-compatible text", () => {
  test("json.dumps: ASCII-only, both separator styles", () => {
    const value = { a: "caf\u00e9 \u{1F600}", b: [1, 2.5, null, true], c: {}, d: "\u007f\n\"" };
    assert.equal(dumps(value),
      '{"a": "caf\\u00e9 \\ud83d\\ude00", "b": [1, 2.5, null, true], "c": {}, "d": "\\u007f\\n\\""}');
    assert.equal(dumps(value, true),
      '{"a":"caf\\u00e9 \\ud83d\\ude00","b":[1,2.5,null,true],"c":{},"d":"\\u007f\\n\\""}');
    assert.deepEqual(JSON.parse(dumps(value)), value);
  });

  test("sort_keys fingerprints ignore key order", () => {
    assert.equal(sortedDumps([{ b: 1, a: { d: 1, c: 2 } }]), sortedDumps([{ a: { c: 2, d: 1 }, b: 1 }]));
  });

  test("quote and quote_plus follow urllib.parse", () => {
    assert.equal(quote("a b/c~*'é"), "a%20b/c~%2A%27%C3%A9");
    assert.equal(quote("a b/c", ""), "a%20b%2Fc");
    assert.equal(quotePlus("a b/c&="), "a+b%2Fc%26%3D");
  });

  test("repr, bytes repr and float()", () => {
    assert.equal(repr("it's"), "\"it's\"");
    assert.equal(repr(["a", 1, null, true]), "['a', 1, None, True]");
    assert.equal(bytesRepr(new TextEncoder().encode('{"a": \'é')), "b'{\"a\": \\'\\xc3\\xa9'");
    assert.equal(pyFloat(" 1.5 "), 1.5);
    assert.equal(pyFloat("1_000"), 1000);
    assert.equal(pyFloat("1e3"), 1000);
    assert.equal(pyFloat(""), null);
    assert.equal(pyFloat("0x10"), null);
    assert.equal(pyFloat("-inf"), -Infinity);
  });
});

describe("singer writer", () => {
  test("compact ASCII lines, redacted, with counts", () => {
    const out = new StringSink();
    const writer = new SingerWriter(out, null, new FakeClock(1704240000.25));
    writer.schema("s", { type: "object" }, ["id"], []);
    writer.record("s", { id: 1, name: "Zo\u00eb" });
    writer.state({ bookmarks: {} });
    assert.equal(out.text,
      '{"type":"SCHEMA","stream":"s","schema":{"type":"object"},"key_properties":["id"],"bookmark_properties":[]}\n' +
      '{"type":"RECORD","stream":"s","record":{"id":1,"name":"Zo\\u00eb"},"time_extracted":"2024-01-03T00:00:00.250000Z"}\n' +
      '{"type":"STATE","value":{"bookmarks":{}}}\n');
    assert.deepEqual(writer.counts, { s: 1 });
  });
});

describe("JSON read like Python's json module", () => {
  // Expected messages are what Python 3.11's json.loads says for the same text.
  const errors: Array<[string, string]> = [
    ["", "Expecting value: line 1 column 1 (char 0)"],
    ["[1,]", "Expecting value: line 1 column 4 (char 3)"],
    ['{"a":1,}', "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"],
    ['{"a" 1}', "Expecting ':' delimiter: line 1 column 6 (char 5)"],
    ["[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"],
    ['"abc', "Unterminated string starting at: line 1 column 1 (char 0)"],
    ['"a\\x"', "Invalid \\escape: line 1 column 3 (char 2)"],
    ['"a\\u12g4"', "Invalid \\uXXXX escape: line 1 column 4 (char 3)"],
    ['"a\nb"', "Invalid control character at: line 1 column 3 (char 2)"],
    ["[1]x", "Extra data: line 1 column 4 (char 3)"],
    ['{"data": [{"id": 1}', "Expecting ',' delimiter: line 1 column 20 (char 19)"],
    ["\n\n  [1,\n 2,,]", "Expecting value: line 4 column 4 (char 11)"],
  ];
  for (const [text, message] of errors) {
    test(`error for ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseJson(text), (error: Error) => error.message === message);
    });
  }

  test("numbers are written back as Python writes them", () => {
    const text = "[1.0, 5.0, 1e400, -0, -0.0, 12345678901234567891, 1e-7, 1E5, 0.1, 123456789012345678.0, 1.5e16, 100, NaN, 2.50]";
    assert.equal(dumps(parseJson(text)),
      "[1.0, 5.0, Infinity, 0, -0.0, 12345678901234567891, 1e-07, 100000.0, 0.1, 1.2345678901234568e+17, 1.5e+16, 100, NaN, 2.5]");
    const value = parseJson('{"amount": 10.0, "nested": {"id": 98765432109876543210}}');
    assert.equal(dumps(cloneJson(value), true), '{"amount":10.0,"nested":{"id":98765432109876543210}}');
    assert.deepEqual(value, { amount: 10, nested: { id: 98765432109876543210 } });
  });

  test("a __proto__ key is an ordinary property", () => {
    const value = parseJson('{"__proto__": {"x": 1}, "b": 2}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), ["__proto__", "b"]);
    assert.equal(Object.getPrototypeOf(value), Object.prototype);
  });

  test("float repr", () => {
    const cases: Array<[number, string]> = [[2, "2.0"], [0.25, "0.25"], [1e16, "1e+16"], [1e15, "1000000000000000.0"],
      [0.0001, "0.0001"], [0.00001, "1e-05"], [-1.5e-10, "-1.5e-10"], [123.456, "123.456"]];
    for (const [value, text] of cases) assert.equal(floatRepr(value), text);
  });

  test("a float bookmark read from the state keeps its form", () => {
    const state = new State(parseJson('{"bookmarks": {"s": {"t": 1700000000.0}}}'));
    const out = new StringSink();
    new SingerWriter(out).state(state.toValue());
    assert.equal(out.text, '{"type":"STATE","value":{"bookmarks":{"s":{"t":1700000000.0}}}}\n');
  });

  test("floats and huge integers pass through a sync unchanged, and a huge cursor is sent back exactly", async (t) => {
    const env = new Env(t);
    const server = await env.serve((seen) => {
      const first = seen.query.after === undefined;
      const body = first
        ? '{"data": [{"id": 98765432109876543210, "amount": 10.0, "created": 1700000000.0}], "more": true}'
        : '{"data": [{"id": 98765432109876543211, "amount": 2.5, "created": 1700000001.0}], "more": false}';
      return reply(200, body);
    });
    const connector = env.connector(manifest([stream("items", "/items", {
      pagination: { type: "cursor", cursor_param: "after", cursor_source: "last_record", cursor_path: "id", has_more_path: "more" },
      incremental: { cursor_field: "created", request_param: "since", format: "unix" },
    })]));
    const run = await runCli(connector, { config: baseConfig(server.url) });
    assert.equal(run.code, 0, run.errText);
    assert.equal(server.requests[1].query.after, "98765432109876543210");
    const lines = run.outText.trim().split("\n");
    assert.ok(lines[1].startsWith('{"type":"RECORD","stream":"items","record":{"id":98765432109876543210,"amount":10.0,"created":1700000000.0}'));
    assert.equal(lines[lines.length - 1], '{"type":"STATE","value":{"bookmarks":{"items":{"created":1700000001.0}}}}');
  });
});
