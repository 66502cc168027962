import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BearerAuth } from "../src/runtime/auth.js";
import { CircuitBreaker } from "../src/runtime/breaker.js";
import { ApiClient } from "../src/runtime/client.js";
import { Context, type HookPoint, Pipeline } from "../src/runtime/hooks.js";
import { FetchTransport, Request } from "../src/runtime/http.js";
import { RetryPolicy } from "../src/runtime/retry.js";
import { Env, FakeClock, SeqRandom, reply } from "./helpers.js";

describe("pipeline order", () => {
  test("lower priority first and ties keep registration order", async () => {
    const pipeline = new Pipeline();
    const calls: string[] = [];
    const order: Array<[string, number]> = [["a", 50], ["b", 10], ["c", 50], ["d", 90], ["e", 10], ["f", 50]];
    for (const [label, priority] of order) {
      pipeline.register("before_request", () => void calls.push(label), priority);
    }
    await pipeline.before_request(new Context(), new Request("GET", "http://x"));
    assert.deepEqual(calls, ["b", "e", "a", "c", "f", "d"]);
  });

  test("each point has its own order", async () => {
    const pipeline = new Pipeline();
    const calls: unknown[] = [];
    pipeline.register("on_retry", (_ctx, n, d) => void calls.push(["late", n, d]), 70);
    pipeline.register("on_retry", (_ctx, n, d) => void calls.push(["early", n, d]), 20);
    pipeline.register("on_error", (_ctx, e) => void calls.push(["error", e]), 1);
    await pipeline.on_retry(new Context(), 2, 0.5);
    assert.deepEqual(calls, [["early", 2, 0.5], ["late", 2, 0.5]]);
  });

  test("a returned Request replaces the request and anything else keeps it", async () => {
    const pipeline = new Pipeline();
    const replacement = new Request("GET", "http://replaced");
    pipeline.register("before_request", () => undefined, 1);
    pipeline.register("before_request", () => replacement, 2);
    pipeline.register("before_request", (_ctx, req: Request) => (req.headers["X-Seen"] = req.url), 3);
    const result = await pipeline.before_request(new Context(), new Request("GET", "http://original"));
    assert.equal(result, replacement);
    assert.equal(result.headers["X-Seen"], "http://replaced");
  });

  test("async hooks are awaited in order", async () => {
    const pipeline = new Pipeline();
    const calls: string[] = [];
    pipeline.register("before_request", async () => {
      await new Promise((r) => setTimeout(r, 5));
      calls.push("slow first");
    }, 1);
    pipeline.register("before_request", () => void calls.push("second"), 2);
    await pipeline.before_request(new Context(), new Request("GET", "http://x"));
    assert.deepEqual(calls, ["slow first", "second"]);
  });

  test("add registers methods named after points", async () => {
    class Hook {
      seen: string[] = [];
      before_request(): void {
        this.seen.push("before");
      }
      on_error(): void {
        this.seen.push("error");
      }
    }
    const hook = new Hook();
    const pipeline = new Pipeline();
    pipeline.add(hook, 5);
    assert.equal(pipeline.hooks("before_request").length, 1);
    assert.equal(pipeline.hooks("on_error").length, 1);
    assert.deepEqual(pipeline.hooks("after_response"), []);
    await pipeline.on_error(new Context(), new Error() as never);
    assert.deepEqual(hook.seen, ["error"]);
  });

  test("add accepts camelCase method names too", async () => {
    const seen: string[] = [];
    const pipeline = new Pipeline();
    pipeline.add({ onRetry: () => void seen.push("retry") });
    await pipeline.on_retry(new Context(), 1, 0.1);
    assert.deepEqual(seen, ["retry"]);
  });

  test("unknown point is rejected", () => {
    assert.throws(() => new Pipeline().register("before_everything" as HookPoint, () => undefined));
  });
});

describe("pipeline in the client", () => {
  test("hooks run at all four points in priority order around auth", async (t) => {
    const env = new Env(t);
    const answers = [reply(503, { error: "busy" }), reply(200, { ok: true })];
    const server = await env.serve(() => answers.shift() ?? null);
    const pipeline = new Pipeline();
    const events: unknown[] = [];
    pipeline.add(new BearerAuth("tok-12345"), 10);
    pipeline.register("before_request", (_c, req: Request) => void events.push(["before@5", "Authorization" in req.headers]), 5);
    pipeline.register("before_request", (_c, req: Request) => void events.push(["before@20", "Authorization" in req.headers]), 20);
    pipeline.register("after_response", (_c, resp) => void events.push(["after", resp.status]));
    pipeline.register("on_error", (_c, err) => void events.push(["error", err.status]));
    pipeline.register("on_retry", (_c, n) => void events.push(["retry", n]));
    const clock = new FakeClock();
    const client = new ApiClient(new FetchTransport(), pipeline, new RetryPolicy({ initialDelaySeconds: 0.1 }),
      new CircuitBreaker(5, 30, clock), clock, 2.0, new SeqRandom(0.0));
    const response = await client.send(new Context("s"), new Request("GET", server.url + "/x"));
    assert.equal(response.status, 200);
    assert.deepEqual(events, [
      ["before@5", false], ["before@20", true], ["after", 503], ["error", 503], ["retry", 1],
      ["before@5", false], ["before@20", true], ["after", 200],
    ]);
    assert.equal(server.requests[0].headers["authorization"], "Bearer tok-12345");
  });
});
