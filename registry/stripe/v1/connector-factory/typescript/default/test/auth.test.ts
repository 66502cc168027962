import assert from "node:assert/strict";
import { type TestContext, describe, test } from "node:test";
import { type Auth, OAuth2Auth, buildAuth, checkCredentials } from "../src/runtime/auth.js";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { FetchTransport } from "../src/runtime/http.js";
import { Redactor } from "../src/runtime/log.js";
import { Env, FakeClock, type Json, type LocalServer, type Route, type Seen, baseConfig, manifest, reply, runCli, stream } from "./helpers.js";

const PAGE = { data: [{ id: 1 }, { id: 2 }] };

async function sync(t: TestContext, auth: Json, credentials: Json, route?: Route) {
  const env = new Env(t);
  const server = await env.serve(route ?? (() => reply(200, PAGE)));
  const connector = env.connector(manifest([stream()], auth));
  const run = await runCli(connector, { config: baseConfig(server.url, { credentials }) });
  return { server, run };
}

describe("auth types", () => {
  test("none", async (t) => {
    const { server, run } = await sync(t, { type: "none" }, {});
    assert.equal(run.code, 0, run.errText);
    assert.ok(!("authorization" in server.requests[0].headers));
  });

  test("api_key in a header", async (t) => {
    const { server, run } = await sync(t, { type: "api_key", in: "header", name: "X-Api-Key" }, { api_key: "key-abc-123" });
    assert.equal(run.code, 0, run.errText);
    assert.equal(server.requests[0].headers["x-api-key"], "key-abc-123");
    assert.ok(!(run.errText + run.outText).includes("key-abc-123"));
  });

  test("api_key in the query", async (t) => {
    const { server, run } = await sync(t, { type: "api_key", in: "query", name: "api_key" }, { api_key: "key/with+chars&=" });
    assert.equal(run.code, 0, run.errText);
    assert.equal(server.requests[0].query.api_key, "key/with+chars&=");
    assert.ok(!("api_key" in server.requests[0].headers));
    assert.ok(run.errText.includes("api_key=***")); // the request log line shows the URL, redacted
  });

  test("api_key with a prefix", async (t) => {
    const { server, run } = await sync(t, { type: "api_key", in: "header", name: "Authorization", prefix: "Token " },
      { api_key: "abc-12345" });
    assert.equal(run.code, 0, run.errText);
    assert.equal(server.requests[0].headers["authorization"], "Token abc-12345");
  });

  test("bearer", async (t) => {
    const { server } = await sync(t, { type: "bearer" }, { token: "tok_live_42" });
    assert.equal(server.requests[0].headers["authorization"], "Bearer tok_live_42");
  });

  test("basic", async (t) => {
    const { server } = await sync(t, { type: "basic" }, { username: "alice", password: "s3cret!pw" });
    assert.equal(server.requests[0].headers["authorization"], "Basic " + Buffer.from("alice:s3cret!pw").toString("base64"));
  });

  const missing: Array<[Json, Json]> = [
    [{ type: "api_key" }, {}],
    [{ type: "bearer" }, { token: "" }],
    [{ type: "basic" }, { username: "u" }],
    [{ type: "oauth2", flow: "client_credentials" }, { client_id: "c" }],
    [{ type: "oauth2", flow: "refresh_token" }, { client_id: "c", client_secret: "s" }],
  ];
  for (const [auth, credentials] of missing) {
    test(`missing credentials for ${JSON.stringify(auth)} is VALIDATION_ERROR`, async (t) => {
      const { server, run } = await sync(t, auth, credentials);
      assert.equal(run.code, 1);
      assert.equal(run.error?.code, "VALIDATION_ERROR");
      assert.deepEqual(server.requests, []);
    });
  }

  test("unknown auth type is UNSUPPORTED", async (t) => {
    const { run } = await sync(t, { type: "hmac" }, { key: "x" });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "UNSUPPORTED");
    assert.equal(run.error?.message, "auth type 'hmac' is not supported");
  });

  test("wrong credentials is AUTH_FAILED", async (t) => {
    const { server, run } = await sync(t, { type: "bearer" }, { token: "bad-token" },
      () => reply(401, { error: "bad key" }, { "X-Request-Id": "r-401" }));
    assert.equal(run.code, 1);
    assert.deepEqual(run.error, {
      type: "ERROR", code: "AUTH_FAILED", message: run.error?.message, retryable: false, status: 401,
      request_id: "r-401", stream: "items",
    });
    assert.equal(server.requests.length, 1);
  });
});

/** Token endpoint plus a data endpoint that only accepts the latest token. */
class OAuth2Server {
  tokens: string[] = [];
  refreshTokens = ["rt-original"];
  rejectNextData = false;
  lastForm: Record<string, string> = {};
  server!: LocalServer;

  constructor(readonly expiresIn: number = 3600, readonly rotate = false) {}

  async start(env: Env): Promise<this> {
    this.server = await env.serve((seen) => this.route(seen));
    return this;
  }

  route(seen: Seen) {
    if (seen.path === "/oauth/token") {
      const form = seen.form();
      this.lastForm = form;
      if (seen.method !== "POST" || seen.headers["content-type"] !== "application/x-www-form-urlencoded") {
        return reply(400, { error: "invalid_request" });
      }
      if (form.client_secret !== "shh-secret") return reply(401, { error: "invalid_client" });
      if (form.grant_type === "refresh_token" && form.refresh_token !== this.refreshTokens[this.refreshTokens.length - 1]) {
        return reply(400, { error: "invalid_grant" });
      }
      const token = `at-${this.tokens.length + 1}-xyz`;
      this.tokens.push(token);
      const body: Json = { access_token: token, token_type: "bearer", expires_in: this.expiresIn };
      if (this.rotate) {
        this.refreshTokens.push(`rt-${this.tokens.length}`);
        body.refresh_token = this.refreshTokens[this.refreshTokens.length - 1];
      }
      return reply(200, body);
    }
    if (this.rejectNextData) {
      this.rejectNextData = false;
      return reply(401, { error: "token revoked" });
    }
    if (this.tokens.length === 0 || seen.headers["authorization"] !== "Bearer " + this.tokens[this.tokens.length - 1]) {
      return reply(401, { error: "bad token" });
    }
    return reply(200, PAGE);
  }

  tokenRequests(): Seen[] {
    return this.server.requests.filter((r) => r.path === "/oauth/token");
  }
}

const CREDS = { client_id: "client-1", client_secret: "shh-secret" };

function makeAuth(api: OAuth2Server, clock: FakeClock, credentials: Json, grant: string): { auth: OAuth2Auth; redactor: Redactor } {
  const redactor = new Redactor();
  const transport = new FetchTransport();
  const auth: Auth = buildAuth({ type: "oauth2", flow: grant, token_url: "/oauth/token" }, credentials, api.server.url, {
    redactor,
    sendTokenRequest: (request) => transport.send(request, 2.0),
    clock,
  });
  assert.ok(auth instanceof OAuth2Auth);
  return { auth, redactor };
}

describe("oauth2", () => {
  test("client_credentials through the CLI", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server().start(env);
    const connector = env.connector(manifest([stream("a", "/a"), stream("b", "/b")], {
      type: "oauth2", flow: "client_credentials", token_url: "/oauth/token", scopes: ["read", "write"],
    }));
    const run = await runCli(connector, { config: baseConfig(api.server.url, { credentials: CREDS }) });
    assert.equal(run.code, 0, run.errText);
    assert.equal(run.records.length, 4);
    assert.equal(api.tokenRequests().length, 1); // reused while valid
    assert.deepEqual(api.lastForm, {
      grant_type: "client_credentials", client_id: "client-1", client_secret: "shh-secret", scope: "read write",
    });
    for (const secret of ["shh-secret", "at-1-xyz"]) assert.ok(!(run.errText + run.outText).includes(secret), secret);
  });

  test("the token is renewed shortly before it expires", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server(100).start(env);
    const clock = new FakeClock();
    const { auth, redactor } = makeAuth(api, clock, CREDS, "client_credentials");
    assert.equal(await auth.token(), "at-1-xyz");
    clock.advance(50);
    assert.equal(await auth.token(), "at-1-xyz");
    clock.advance(39);
    assert.equal(await auth.token(), "at-1-xyz"); // 89 s: still outside the 10 s margin
    clock.advance(2);
    assert.equal(await auth.token(), "at-2-xyz"); // 91 s: renewed before the 100 s expiry
    assert.equal(api.tokenRequests().length, 2);
    assert.equal(redactor.redact("Bearer at-1-xyz at-2-xyz"), "Bearer *** ***");
  });

  test("refresh_token flow with rotation", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server(60, true).start(env);
    const clock = new FakeClock();
    const { auth, redactor } = makeAuth(api, clock, { ...CREDS, refresh_token: "rt-original" }, "refresh_token");
    assert.equal(await auth.token(), "at-1-xyz");
    assert.equal(api.lastForm.grant_type, "refresh_token");
    assert.equal(api.lastForm.refresh_token, "rt-original");
    clock.advance(61);
    assert.equal(await auth.token(), "at-2-xyz");
    assert.equal(api.lastForm.refresh_token, "rt-1"); // the rotated one
    assert.equal(redactor.redact("rt-1 rt-2"), "*** ***");
  });

  test("a given access token is used, then refreshed after a 401", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server().start(env);
    api.tokens.push("at-given");
    const connector = env.connector(manifest([stream()], {
      type: "oauth2", flow: "refresh_token", token_url: api.server.url + "/oauth/token",
    }));
    api.rejectNextData = true;
    const credentials = { ...CREDS, refresh_token: "rt-original", access_token: "at-given" };
    const run = await runCli(connector, { config: baseConfig(api.server.url, { credentials }) });
    assert.equal(run.code, 0, run.errText);
    const data = api.server.requests.filter((r) => r.path !== "/oauth/token");
    assert.equal(data[0].headers["authorization"], "Bearer at-given");
    assert.equal(data[1].headers["authorization"], "Bearer at-2-xyz");
    assert.equal(api.tokenRequests().length, 1);
  });

  test("a rejected client is AUTH_FAILED", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server().start(env);
    const { auth } = makeAuth(api, new FakeClock(), { client_id: "c", client_secret: "wrong-one" }, "client_credentials");
    await assert.rejects(auth.token(), (error: ConnectorError) => {
      assert.equal(error.code, errors.AUTH_FAILED);
      assert.equal(error.status, 401);
      return true;
    });
  });

  test("a token endpoint without access_token is AUTH_FAILED", async (t) => {
    const env = new Env(t);
    const server = await env.serve(() => reply(200, { token_type: "bearer" }));
    const auth = buildAuth({ type: "oauth2", flow: "client_credentials", token_url: "/t" }, CREDS, server.url, {
      clock: new FakeClock(),
      sendTokenRequest: (request) => new FetchTransport().send(request, 2.0),
    }) as OAuth2Auth;
    await assert.rejects(auth.token(), (error: ConnectorError) =>
      error.code === errors.AUTH_FAILED && error.message === "token endpoint returned no access_token");
  });

  test("a rejected client through the CLI asks once", async (t) => {
    const env = new Env(t);
    const api = await new OAuth2Server().start(env);
    const connector = env.connector(manifest([stream()], { type: "oauth2", flow: "client_credentials", token_url: "/oauth/token" }));
    const run = await runCli(connector, {
      config: baseConfig(api.server.url, { credentials: { client_id: "c", client_secret: "not-the-secret" } }),
    });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "AUTH_FAILED");
    assert.equal(run.error?.status, 401);
    assert.equal(api.server.requests.length, 1);
    assert.ok(!(run.errText + run.outText).includes("not-the-secret"));
  });

  test("checkCredentials accepts complete sets and rejects unknown flows", () => {
    checkCredentials({ type: "oauth2" }, CREDS);
    checkCredentials({ type: "oauth2" }, { ...CREDS, refresh_token: "r" });
    checkCredentials({ type: "none" }, {});
    assert.throws(() => checkCredentials({ type: "oauth2", flow: "password" }, CREDS),
      (error: ConnectorError) => error.code === errors.UNSUPPORTED);
  });
});
