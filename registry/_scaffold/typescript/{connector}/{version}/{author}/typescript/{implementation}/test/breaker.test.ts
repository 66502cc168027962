import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CLOSED, CircuitBreaker, HALF_OPEN, OPEN } from "../src/runtime/breaker.js";
import { ApiClient } from "../src/runtime/client.js";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { Context, Pipeline } from "../src/runtime/hooks.js";
import { FetchTransport, Request } from "../src/runtime/http.js";
import { RetryPolicy } from "../src/runtime/retry.js";
import { Env, FakeClock, type LocalServer, SeqRandom, reply } from "./helpers.js";

function failure(code: string = errors.SERVER_ERROR, status: number | null = 503): ConnectorError {
  return new ConnectorError(code, "failed", { status });
}

describe("breaker", () => {
  const make = () => {
    const clock = new FakeClock();
    return { clock, breaker: new CircuitBreaker(3, 10, clock) };
  };

  test("opens after the threshold of consecutive failures and fails fast", () => {
    const { breaker } = make();
    breaker.record(failure());
    breaker.record(failure());
    assert.equal(breaker.state, CLOSED);
    breaker.check();
    breaker.record(failure(errors.TIMEOUT, null));
    assert.equal(breaker.state, OPEN);
    assert.throws(() => breaker.check(), (error: ConnectorError) => {
      assert.ok(error.failFast);
      assert.equal(error.code, errors.TIMEOUT);
      assert.ok(error.message.includes("circuit breaker open"));
      return true;
    });
  });

  test("a success resets the count", () => {
    const { breaker } = make();
    breaker.record(failure());
    breaker.record(failure());
    breaker.record(null);
    breaker.record(failure());
    breaker.record(failure());
    assert.equal(breaker.state, CLOSED);
  });

  test("client errors do not count", () => {
    const { breaker } = make();
    for (let i = 0; i < 5; i++) breaker.record(failure(errors.INVALID_REQUEST, 404));
    assert.equal(breaker.state, CLOSED);
  });

  test("half-open after the reset time, then closed on success", () => {
    const { breaker, clock } = make();
    for (let i = 0; i < 3; i++) breaker.record(failure());
    clock.advance(9.9);
    assert.throws(() => breaker.check());
    clock.advance(0.1);
    breaker.check(); // the trial request is let through
    assert.equal(breaker.state, HALF_OPEN);
    breaker.record(null);
    assert.equal(breaker.state, CLOSED);
    assert.equal(breaker.failures, 0);
    breaker.check();
  });

  test("a failed trial reopens for a full period", () => {
    const { breaker, clock } = make();
    for (let i = 0; i < 3; i++) breaker.record(failure());
    clock.advance(10);
    breaker.check();
    breaker.record(failure());
    assert.equal(breaker.state, OPEN);
    clock.advance(5);
    assert.throws(() => breaker.check());
    clock.advance(5);
    breaker.check();
    assert.equal(breaker.state, HALF_OPEN);
  });
});

describe("breaker in the client", () => {
  test("an open breaker stops retries and recovers after the reset time", async (t) => {
    const env = new Env(t);
    const status = { code: 503 };
    const server: LocalServer = await env.serve(() => reply(status.code, { n: server.requests.length }));
    const clock = new FakeClock();
    const breaker = new CircuitBreaker(2, 30, clock);
    const client = new ApiClient(new FetchTransport(), new Pipeline(),
      new RetryPolicy({ maxAttempts: 10, initialDelaySeconds: 0.1 }), breaker, clock, 2.0, new SeqRandom(0.0));
    const get = () => client.send(new Context(), new Request("GET", server.url + "/x"));
    await assert.rejects(get(), (error: ConnectorError) => error.code === errors.SERVER_ERROR && error.failFast);
    assert.equal(server.requests.length, 2); // the third attempt failed fast
    assert.equal(breaker.state, OPEN);

    status.code = 200;
    await assert.rejects(get()); // still open
    assert.equal(server.requests.length, 2);
    clock.advance(30);
    assert.equal((await get()).status, 200);
    assert.equal(breaker.state, CLOSED);
    assert.equal(server.requests.length, 3);
  });
});
