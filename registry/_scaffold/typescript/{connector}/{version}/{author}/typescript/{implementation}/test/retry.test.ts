import assert from "node:assert/strict";
import { type TestContext, describe, test } from "node:test";
import { CircuitBreaker } from "../src/runtime/breaker.js";
import { ApiClient } from "../src/runtime/client.js";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { Context, Pipeline } from "../src/runtime/hooks.js";
import { FetchTransport, Request } from "../src/runtime/http.js";
import { type RetryOptions, RetryPolicy, type Rng, callWithRetry, parseRetryAfter } from "../src/runtime/retry.js";
import { Env, FakeClock, type LocalServer, type Reply, SeqRandom, reply, seeded, sleep } from "./helpers.js";

function httpDate(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toUTCString();
}

describe("backoff", () => {
  test("delays double up to the cap with jitter in range", () => {
    const policy = new RetryPolicy({ initialDelaySeconds: 0.5, maxDelaySeconds: 3.0 });
    const rng = seeded(7);
    const bases = [0.5, 1.0, 2.0, 3.0, 3.0];
    const delays = [1, 2, 3, 4, 5].map((n) => policy.backoff(n, rng));
    bases.forEach((base, i) => {
      assert.ok(delays[i] >= base && delays[i] < base * 1.25, `${delays[i]} vs ${base}`);
    });
    assert.ok(delays[0] < delays[1] && delays[1] < delays[2]);
  });

  test("jitter is the uniform draw times a quarter", () => {
    const policy = new RetryPolicy({ initialDelaySeconds: 1.0, maxDelaySeconds: 100.0 });
    assert.equal(policy.backoff(3, new SeqRandom(0.0)), 4.0);
    assert.equal(policy.backoff(3, new SeqRandom(0.5)), 4.5);
    const draws = new Set([...Array(10).keys()].map((seed) => policy.backoff(1, seeded(seed + 1)).toFixed(6)));
    assert.ok(draws.size > 5, `only ${draws.size} different delays`);
  });
});

describe("Retry-After parsing", () => {
  test("seconds", () => {
    assert.equal(parseRetryAfter("3", 0), 3.0);
    assert.equal(parseRetryAfter(" 1.5 ", 0), 1.5);
  });

  test("HTTP-date", () => {
    const now = 1_700_000_000.0;
    assert.equal(parseRetryAfter(httpDate(now + 12), now), 12.0);
    assert.equal(parseRetryAfter("Tue, 14 Nov 2023 22:13:32 +0000", now), 12.0);
  });

  test("past date means no wait and garbage means null", () => {
    const now = 1_700_000_000.0;
    assert.equal(parseRetryAfter(httpDate(now - 50), now), 0.0);
    assert.equal(parseRetryAfter("soon", now), null);
    assert.equal(parseRetryAfter(null, now), null);
    assert.equal(parseRetryAfter("", now), null);
  });
});

describe("callWithRetry", () => {
  test("budget_seconds stops before a wait that would pass it", async () => {
    const clock = new FakeClock();
    const calls: number[] = [];
    const fail = async (n: number): Promise<never> => {
      calls.push(n);
      throw new ConnectorError(errors.SERVER_ERROR, "x", { status: 503 });
    };
    const policy = new RetryPolicy({ maxAttempts: 10, initialDelaySeconds: 1.0, maxDelaySeconds: 60, budgetSeconds: 2.5 });
    await assert.rejects(callWithRetry(fail, policy, clock, new SeqRandom(0.0)), ConnectorError);
    assert.deepEqual(calls, [1, 2]); // waits 1 s, then 2 s would end at 3 s > 2.5 s
    assert.deepEqual(clock.sleeps, [1.0]);
  });

  test("other exceptions pass straight through", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const boom = async (): Promise<never> => {
      calls += 1;
      throw new TypeError("bug");
    };
    await assert.rejects(callWithRetry(boom, new RetryPolicy(), clock, new SeqRandom(0.0)), TypeError);
    assert.equal(calls, 1);
  });
});

describe("client retries", () => {
  async function setup(t: TestContext, answers: Reply[], policy: RetryOptions = {},
    clock = new FakeClock(), rng: Rng = seeded(1)): Promise<{ server: LocalServer; client: ApiClient; clock: FakeClock }> {
    const env = new Env(t);
    const queue = [...answers];
    const server = await env.serve(() => (queue.length > 1 ? (queue.shift() as Reply) : queue[0]));
    const client = new ApiClient(new FetchTransport(), new Pipeline(),
      new RetryPolicy({ maxAttempts: 5, initialDelaySeconds: 0.5, maxDelaySeconds: 30, budgetSeconds: 120, maxRetryAfterSeconds: 60, ...policy }),
      new CircuitBreaker(100, 30, clock), clock, 2.0, rng);
    return { server, client, clock };
  }

  const get = (client: ApiClient, server: LocalServer) =>
    client.send(new Context("s"), new Request("GET", server.url + "/things"));

  test("retries 5xx with growing jittered delays", async (t) => {
    const { server, client, clock } = await setup(t, [reply(500), reply(502), reply(503), reply(200, { data: [] })]);
    assert.equal((await get(client, server)).status, 200);
    assert.equal(server.requests.length, 4);
    assert.equal(clock.sleeps.length, 3);
    [0.5, 1.0, 2.0].forEach((base, i) => assert.ok(base <= clock.sleeps[i] && clock.sleeps[i] < base * 1.25));
  });

  for (const status of [408, 429, 500, 502, 503, 504]) {
    test(`status ${status} is retried`, async (t) => {
      const { server, client } = await setup(t, [reply(status), reply(200, {})]);
      assert.equal((await get(client, server)).status, 200);
      assert.equal(server.requests.length, 2);
    });
  }

  test("Retry-After seconds replaces backoff", async (t) => {
    const { server, client, clock } = await setup(t, [reply(429, null, { "Retry-After": "7" }), reply(200, {})]);
    await get(client, server);
    assert.deepEqual(clock.sleeps, [7.0]);
  });

  test("Retry-After HTTP-date", async (t) => {
    const clock = new FakeClock();
    const date = httpDate(clock.time() + 20);
    const { server, client } = await setup(t, [reply(503, null, { "Retry-After": date }), reply(200, {})], {}, clock);
    await get(client, server);
    assert.equal(clock.sleeps.length, 1);
    assert.ok(Math.abs(clock.sleeps[0] - 20.0) < 0.001);
  });

  test("Retry-After is capped", async (t) => {
    const { server, client, clock } = await setup(t, [reply(429, null, { "Retry-After": "500" }), reply(200, {})],
      { maxRetryAfterSeconds: 30 });
    await get(client, server);
    assert.deepEqual(clock.sleeps, [30.0]);
  });

  test("timeout is retried", async (t) => {
    const env = new Env(t);
    let calls = 0;
    const server = await env.serve(async () => {
      calls += 1;
      if (calls === 1) await sleep(600);
      return reply(200, { ok: 1 });
    });
    const clock = new FakeClock();
    const client = new ApiClient(new FetchTransport(), new Pipeline(), new RetryPolicy(), new CircuitBreaker(100, 30, clock),
      clock, 0.2, seeded(1));
    assert.deepEqual((await get(client, server)).json(), { ok: 1 });
    assert.equal(server.requests.length, 2);
    assert.equal(clock.sleeps.length, 1);
  });

  test("network error is retried", async (t) => {
    const env = new Env(t);
    const server: LocalServer = await env.serve((seen) => {
      if (server.requests.length === 1) {
        seen.req.socket.destroy(); // hang up without any response
        return null;
      }
      return reply(200, { ok: 2 });
    });
    const clock = new FakeClock();
    const client = new ApiClient(new FetchTransport(), new Pipeline(), new RetryPolicy(), new CircuitBreaker(100, 30, clock),
      clock, 2.0, seeded(1));
    assert.deepEqual((await get(client, server)).json(), { ok: 2 });
    assert.equal(server.requests.length, 2);
    assert.equal(clock.sleeps.length, 1);
  });

  const expected: Array<[number, string]> = [
    [400, errors.INVALID_REQUEST], [401, errors.AUTH_FAILED], [403, errors.AUTH_FAILED],
    [404, errors.INVALID_REQUEST], [422, errors.INVALID_REQUEST],
  ];
  for (const [status, code] of expected) {
    test(`client error ${status} is not retried`, async (t) => {
      const { server, client, clock } = await setup(t, [reply(status, { error: "no" }), reply(200, {})]);
      await assert.rejects(get(client, server), (error: ConnectorError) => {
        assert.equal(error.code, code);
        assert.equal(error.status, status);
        assert.equal(error.retryable, false);
        return true;
      });
      assert.equal(server.requests.length, 1);
      assert.deepEqual(clock.sleeps, []);
    });
  }

  test("max_attempts then the last error", async (t) => {
    const { server, client } = await setup(t, [reply(503, { error: "down" }, { "X-Request-Id": "req-9" })], { maxAttempts: 3 });
    await assert.rejects(get(client, server), (error: ConnectorError) => {
      assert.equal(error.code, errors.SERVER_ERROR);
      assert.equal(error.status, 503);
      assert.equal(error.requestId, "req-9");
      assert.equal(error.retryable, true);
      return true;
    });
    assert.equal(server.requests.length, 3);
  });

  test("429 after the retries is RATE_LIMIT", async (t) => {
    const { server, client } = await setup(t, [reply(429, null, { "Retry-After": "1" })], { maxAttempts: 2 });
    await assert.rejects(get(client, server), (error: ConnectorError) => error.code === errors.RATE_LIMIT);
    assert.equal(server.requests.length, 2);
  });

  test("budget_seconds limits retries", async (t) => {
    const { server, client, clock } = await setup(t, [reply(503)],
      { maxAttempts: 10, initialDelaySeconds: 1.0, budgetSeconds: 4.0 }, new FakeClock(), new SeqRandom(0.0));
    await assert.rejects(get(client, server), ConnectorError);
    // 1 s + 2 s fit in 4 s; the next 4 s wait would not.
    assert.deepEqual(clock.sleeps, [1.0, 2.0]);
    assert.equal(server.requests.length, 3);
  });
});
