import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { errorForResponse } from "../src/runtime/client.js";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { FetchTransport, Request, Response } from "../src/runtime/http.js";
import { Env, freePort, reply, sleep } from "./helpers.js";

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("transport", () => {
  test("success and error statuses are responses", async (t) => {
    const env = new Env(t);
    const server = await env.serve((seen) =>
      reply(seen.path === "/missing" ? 404 : 200, { path: seen.path }, { "Request-Id": "req_1" }));
    const transport = new FetchTransport();
    const ok = await transport.send(new Request("GET", server.url + "/a", [["x", "1 2"], ["flag", true]]), 2.0);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json(), { path: "/a" });
    assert.deepEqual(server.requests[0].query, { x: "1 2", flag: "true" });
    const missing = await transport.send(new Request("GET", server.url + "/missing"), 2.0);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), { path: "/missing" });
    assert.equal(missing.requestId, "req_1");
  });

  test("slow headers time out", async (t) => {
    const env = new Env(t);
    const server = await env.serve(async () => {
      await sleep(800);
      return reply(200, {});
    });
    const started = performance.now();
    await assert.rejects(new FetchTransport().send(new Request("GET", server.url + "/slow"), 0.25), (error: ConnectorError) => {
      assert.equal(error.code, errors.TIMEOUT);
      assert.equal(error.retryable, true);
      assert.match(error.message, /within 0\.25s$/);
      return true;
    });
    assert.ok(performance.now() - started < 700);
  });

  test("a trickling body hits the whole-response deadline", async (t) => {
    const env = new Env(t);
    const server = await env.serve(async (seen) => {
      seen.res.writeHead(200, { "Content-Type": "application/json", "Content-Length": "200" });
      for (let i = 0; i < 200; i++) {
        if (server.stopping || seen.res.destroyed) return null;
        seen.res.write(" ");
        await sleep(20); // every byte well inside any per-read timeout
      }
      seen.res.end();
      return null;
    });
    const started = performance.now();
    await assert.rejects(new FetchTransport().send(new Request("GET", server.url + "/trickle"), 0.4),
      (error: ConnectorError) => error.code === errors.TIMEOUT);
    assert.ok(performance.now() - started < 1500); // all 200 bytes would take 4 s
  });

  test("connection refused is NETWORK_ERROR", async () => {
    const port = await freePort();
    await assert.rejects(new FetchTransport().send(new Request("GET", `http://127.0.0.1:${port}/x`), 1.0),
      (error: ConnectorError) => {
        assert.equal(error.code, errors.NETWORK_ERROR);
        assert.equal(error.retryable, true);
        assert.match(error.message, /^cannot reach http:\/\/127\.0\.0\.1:\d+\/x: /);
        return true;
      });
  });

  test("a hang-up without a response is NETWORK_ERROR", async (t) => {
    const env = new Env(t);
    const server = await env.serve((seen) => {
      seen.req.socket.destroy();
      return null;
    });
    await assert.rejects(new FetchTransport().send(new Request("GET", server.url + "/x"), 1.0),
      (error: ConnectorError) => error.code === errors.NETWORK_ERROR && error.message.startsWith("connection to "));
  });

  test("an unusable URL is VALIDATION_ERROR", async () => {
    await assert.rejects(new FetchTransport().send(new Request("GET", "not a url"), 1.0),
      (error: ConnectorError) => error.code === errors.VALIDATION_ERROR);
  });

  test("POST body and headers are sent", async (t) => {
    const env = new Env(t);
    const server = await env.serve((seen) => reply(201, { got: seen.body.toString("utf8") }));
    const response = await new FetchTransport().send(
      new Request("POST", server.url + "/p", [], { "X-One": "1" }, bytes("a=b")), 2.0);
    assert.equal(response.status, 201);
    assert.equal(server.requests[0].method, "POST");
    assert.equal(server.requests[0].headers["x-one"], "1");
    assert.deepEqual(response.json(), { got: "a=b" });
  });

  test("query parameters are encoded like urllib (quote_plus)", () => {
    const request = new Request("GET", "http://h/x", [["created[gte]", 1704240000], ["q", "a b/c~*'"], ["t", false]]);
    assert.equal(request.fullUrl(), "http://h/x?created%5Bgte%5D=1704240000&q=a+b%2Fc~%2A%27&t=false");
    assert.equal(new Request("GET", "http://h/x?a=1", [["b", "2"]]).fullUrl(), "http://h/x?a=1&b=2");
  });

  test("setParam replaces and copy is independent", () => {
    const request = new Request("get", "http://h/x", [["a", 1], ["b", 2]]);
    assert.equal(request.method, "GET");
    const copy = request.copy();
    copy.setParam("a", 3);
    copy.headers["X"] = "y";
    assert.equal(copy.fullUrl(), "http://h/x?b=2&a=3");
    assert.equal(request.fullUrl(), "http://h/x?a=1&b=2");
    assert.deepEqual(request.headers, {});
  });
});

describe("response", () => {
  test("malformed JSON is PARSING_ERROR", () => {
    const response = new Response(200, { "X-Request-Id": "abc" }, bytes('{"data": [1, 2'), "http://h/x");
    assert.throws(() => response.json(), (error: ConnectorError) => {
      assert.equal(error.code, errors.PARSING_ERROR);
      assert.equal(error.retryable, false);
      assert.equal(error.requestId, "abc");
      assert.match(error.message, /^response from http:\/\/h\/x is not valid JSON \(.*\): b'\{"data": \[1, 2'$/);
      return true;
    });
  });

  test("a UTF-8 byte order mark is accepted", () => {
    assert.deepEqual(new Response(200, {}, bytes("\uFEFF{\"a\": 1}")).json(), { a: 1 });
  });

  test("request id prefers X-Request-Id and headers ignore case", () => {
    assert.equal(new Response(200, { "x-request-id": "one", "Request-Id": "two" }).requestId, "one");
    assert.equal(new Response(200, { "request-id": "two" }).requestId, "two");
    assert.equal(new Response(200, {}).requestId, null);
  });

  test("status to error code", () => {
    const cases: Array<[number, string | null]> = [
      [200, null], [204, null], [400, errors.INVALID_REQUEST], [401, errors.AUTH_FAILED], [403, errors.AUTH_FAILED],
      [404, errors.INVALID_REQUEST], [405, errors.INVALID_REQUEST], [408, errors.TIMEOUT], [409, errors.INVALID_REQUEST],
      [422, errors.INVALID_REQUEST], [429, errors.RATE_LIMIT], [500, errors.SERVER_ERROR], [503, errors.SERVER_ERROR],
    ];
    for (const [status, code] of cases) {
      const error = errorForResponse(new Response(status, {}, bytes("body"), "http://h"), 0);
      assert.equal(error ? error.code : null, code, String(status));
    }
    assert.equal(errorForResponse(new Response(404, {}, bytes("body"), "http://h"), 0)?.message, "HTTP 404 from http://h: body");
  });

  test("error line shape", () => {
    const error = new ConnectorError(errors.SERVER_ERROR, "boom", { status: 503, requestId: "r1", stream: "s" });
    assert.deepEqual(error.toDict(), {
      type: "ERROR", code: "SERVER_ERROR", message: "boom", retryable: true, status: 503, request_id: "r1", stream: "s",
    });
    assert.deepEqual(new ConnectorError(errors.CANCELLED, "x").toDict().retryable, false);
  });
});
