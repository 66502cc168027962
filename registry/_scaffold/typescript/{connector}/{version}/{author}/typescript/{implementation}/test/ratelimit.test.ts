import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CircuitBreaker } from "../src/runtime/breaker.js";
import { ApiClient } from "../src/runtime/client.js";
import { Context, Pipeline } from "../src/runtime/hooks.js";
import { FetchTransport, Headers, Request } from "../src/runtime/http.js";
import { Logger } from "../src/runtime/log.js";
import { RateLimitHook, TokenBucket } from "../src/runtime/ratelimit.js";
import { RetryPolicy } from "../src/runtime/retry.js";
import { Env, FakeClock, type LocalServer, SeqRandom, StringSink, reply } from "./helpers.js";

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9;

describe("token bucket", () => {
  test("a steady rate", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(4, 1, clock);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) waits.push(await bucket.acquire());
    assert.equal(waits[0], 0);
    for (const wait of waits.slice(1)) assert.ok(close(wait, 0.25), String(wait));
    assert.ok(close(clock.sleeps.reduce((a, b) => a + b, 0), 1.0));
  });

  test("a burst, then the rate", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(2, 3, clock);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) waits.push(await bucket.acquire());
    assert.deepEqual(waits.slice(0, 3), [0, 0, 0]);
    assert.ok(close(waits[3], 0.5));
  });

  test("idle time refills", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(1, 1, clock);
    await bucket.acquire();
    clock.advance(1.0);
    assert.equal(await bucket.acquire(), 0);
    assert.ok(close(await bucket.acquire(), 1.0));
  });

  test("no rate means no wait", async () => {
    const bucket = new TokenBucket(null, 1, new FakeClock());
    for (let i = 0; i < 10; i++) assert.equal(await bucket.acquire(), 0);
  });

  test("X-RateLimit-Reset (epoch) blocks until the reset", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(null, 1, clock);
    bucket.adapt(new Headers({ "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": String(Math.trunc(clock.time()) + 5) }));
    assert.ok(close(await bucket.acquire(), 5.0));
    assert.equal(await bucket.acquire(), 0); // only until the reset
  });

  test("a small X-RateLimit-Reset is seconds from now", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(null, 1, clock);
    bucket.adapt(new Headers({ "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2" }));
    assert.ok(close(await bucket.acquire(), 2.0));
  });

  test("RateLimit-Reset is seconds from now", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(100, 1, clock);
    bucket.adapt(new Headers({ "RateLimit-Remaining": "0", "RateLimit-Reset": "3" }));
    assert.ok(close(await bucket.acquire(), 3.0));
  });

  test("remaining above zero changes nothing", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(null, 1, clock);
    bucket.adapt(new Headers({ "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": String(Math.trunc(clock.time()) + 50) }));
    assert.equal(await bucket.acquire(), 0);
  });

  test("a zero remaining without a reset pauses one second", async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(null, 1, clock);
    bucket.adapt(new Headers({ "RateLimit-Remaining": "0" }));
    assert.ok(close(await bucket.acquire(), 1.0));
  });
});

describe("rate limit in the client", () => {
  test("a zero remaining header delays the next request, and the wait is logged", async (t) => {
    const env = new Env(t);
    const clock = new FakeClock();
    const resetAt = Math.trunc(clock.time()) + 4;
    const server: LocalServer = await env.serve(() => {
      if (server.requests.length === 1) {
        return reply(200, { page: 1 }, { "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": String(resetAt) });
      }
      return reply(200, { page: 2 }, { "X-RateLimit-Remaining": "99" });
    });
    const err = new StringSink();
    const pipeline = new Pipeline();
    pipeline.add(new RateLimitHook(new TokenBucket(null, 1, clock), new Logger(err)), 90);
    const client = new ApiClient(new FetchTransport(), pipeline, new RetryPolicy(), new CircuitBreaker(5, 30, clock), clock, 2.0);
    await client.send(new Context("s"), new Request("GET", server.url + "/a"));
    assert.deepEqual(clock.sleeps, []);
    const sentAt = clock.time();
    await client.send(new Context("s"), new Request("GET", server.url + "/a"));
    assert.ok(sentAt + clock.sleeps.reduce((a, b) => a + b, 0) >= resetAt);
    const lines = err.text.trim().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map((line) => line.event), ["rate_limit_wait"]);
    assert.ok(close(lines[0].delay_seconds, 4.0));
  });

  test("retries also take a token", async (t) => {
    const env = new Env(t);
    const answers = [reply(503), reply(503), reply(200, {})];
    const server = await env.serve(() => answers.shift() ?? null);
    const clock = new FakeClock();
    const pipeline = new Pipeline();
    pipeline.add(new RateLimitHook(new TokenBucket(1, 1, clock)), 90);
    const client = new ApiClient(new FetchTransport(), pipeline,
      new RetryPolicy({ initialDelaySeconds: 0.1, maxDelaySeconds: 0.1 }), new CircuitBreaker(5, 30, clock), clock, 2.0,
      new SeqRandom(0.0));
    await client.send(new Context(), new Request("GET", server.url + "/a"));
    assert.equal(server.requests.length, 3);
    // Each retry waits 0.1 s of backoff, then 0.9 s more for the bucket (1 request/s).
    assert.equal(clock.sleeps.length, 4);
    assert.ok(close(clock.sleeps.reduce((a, b) => a + b, 0), 2.0));
  });
});
