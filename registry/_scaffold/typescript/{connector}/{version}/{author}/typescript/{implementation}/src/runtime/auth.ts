/**
 * Authentication: the manifest's `auth` object plus the config's `credentials` (contract 2, 3).
 *
 * Manifest `auth` objects understood here (registry/_schemas/implementation.schema.json):
 *   {"type": "none"}
 *   {"type": "api_key", "in": "header"|"query", "name": "X-Api-Key", "prefix": ""}   credentials.api_key
 *   {"type": "bearer"}                                                              credentials.token
 *   {"type": "basic"}                                             credentials.username, credentials.password
 *   {"type": "oauth2", "flow": "client_credentials"|"refresh_token", "token_url": "/oauth/token",
 *    "scopes": ["read"]}
 *       credentials.client_id, client_secret, refresh_token (refresh flow), access_token (optional)
 *       The token endpoint gets a form-encoded POST with client_id and client_secret in the body.
 *
 * Each auth object is a pipeline hook (before_request). Every credential, and every token we
 * obtain, is registered with the redactor before it can reach a log line.
 */
import type { Clock } from "./clock.js";
import * as errors from "./errors.js";
import { ConnectorError } from "./errors.js";
import { asFloat, getKey, isObject, parseJson, pyFloat, pyStr, repr, urlencode } from "./format.js";
import type { Context } from "./hooks.js";
import { Request, type Response } from "./http.js";
import type { Logger, Redactor } from "./log.js";

export const KNOWN_TYPES = ["none", "api_key", "bearer", "basic", "oauth2"];

export type Spec = Record<string, unknown>;
export type Credentials = Record<string, unknown>;

function grantType(spec: Spec, credentials: Credentials): unknown {
  const grant = spec.flow || spec.grant_type; // older manifests said grant_type
  if (grant) return grant;
  return credentials.refresh_token ? "refresh_token" : "client_credentials";
}

/** The credential keys this auth type needs (throws UNSUPPORTED for an unknown type). */
export function requiredCredentials(spec: Spec, credentials: Credentials): string[] {
  const kind = getKey(spec, "type", "none");
  if (typeof kind !== "string" || !KNOWN_TYPES.includes(kind)) {
    throw new ConnectorError(errors.UNSUPPORTED, `auth type ${repr(kind)} is not supported`);
  }
  if (kind === "api_key") return ["api_key"];
  if (kind === "bearer") return ["token"];
  if (kind === "basic") return ["username", "password"];
  if (kind === "oauth2") {
    const grant = grantType(spec, credentials);
    if (grant === "client_credentials") return ["client_id", "client_secret"];
    if (grant === "refresh_token") return ["client_id", "client_secret", "refresh_token"];
    throw new ConnectorError(errors.UNSUPPORTED, `oauth2 flow ${repr(grant)} is not supported`);
  }
  return [];
}

export function checkCredentials(spec: Spec, credentials: Credentials): void {
  const missing = requiredCredentials(spec, credentials).filter((key) => {
    const value = credentials[key];
    return value === null || value === undefined || value === "";
  });
  if (missing.length > 0) {
    throw new ConnectorError(
      errors.VALIDATION_ERROR,
      `config.credentials lacks ${missing.join(", ")} (needed by auth type ${pyStr(spec.type)})`,
    );
  }
}

/** The interface every auth hook has. */
export interface Auth {
  before_request(ctx: Context, request: Request): unknown;
  /** Forget a token after a 401; true when asking again may help. */
  invalidate(): boolean;
}

export class NoAuth implements Auth {
  before_request(_ctx: Context, _request: Request): unknown {
    return undefined;
  }

  invalidate(): boolean {
    return false;
  }
}

export class ApiKeyAuth extends NoAuth {
  readonly value: string;

  constructor(key: unknown, readonly location: unknown = "header", readonly name = "X-Api-Key", prefix = "") {
    super();
    if (location !== "header" && location !== "query") {
      throw new ConnectorError(errors.UNSUPPORTED, "api_key auth: 'in' must be header or query");
    }
    this.value = prefix + pyStr(key);
  }

  override before_request(_ctx: Context, request: Request): unknown {
    if (this.location === "header") request.headers[this.name] = this.value;
    else request.setParam(this.name, this.value);
    return undefined;
  }
}

export class BearerAuth extends NoAuth {
  readonly header: string;

  constructor(token: unknown) {
    super();
    this.header = `Bearer ${pyStr(token)}`;
  }

  override before_request(_ctx: Context, request: Request): unknown {
    request.headers["Authorization"] = this.header;
    return undefined;
  }
}

export class BasicAuth extends NoAuth {
  readonly header: string;

  constructor(username: unknown, password: unknown, redactor: Redactor | null = null) {
    super();
    const encoded = Buffer.from(`${pyStr(username)}:${pyStr(password)}`, "utf8").toString("base64");
    if (redactor !== null) redactor.add(encoded); // the encoded pair is as secret as the password
    this.header = "Basic " + encoded;
  }

  override before_request(_ctx: Context, request: Request): unknown {
    request.headers["Authorization"] = this.header;
    return undefined;
  }
}

export type SendTokenRequest = (request: Request) => Promise<Response>;

export interface OAuth2Options {
  redactor?: Redactor | null;
  scope?: string | null;
  logger?: Logger | null;
}

/**
 * Fetches an access token from the token endpoint and renews it shortly before it expires.
 * `sendTokenRequest(request)` performs the POST (with retries) and resolves to a Response.
 */
export class OAuth2Auth extends NoAuth {
  readonly clientId: string;
  readonly clientSecret: string;
  refreshToken: unknown;
  accessToken: string | null;
  /** Epoch seconds; null = unknown (used until a 401). */
  expiresAt: number | null = null;
  refreshMargin = 0.0;
  fetchCount = 0;
  readonly scope: string | null;
  readonly redactor: Redactor | null;
  readonly logger: Logger | null;

  constructor(
    readonly grantType: unknown,
    readonly tokenUrl: string,
    credentials: Credentials,
    readonly sendTokenRequest: SendTokenRequest,
    readonly clock: Clock,
    options: OAuth2Options = {},
  ) {
    super();
    this.clientId = pyStr(credentials.client_id);
    this.clientSecret = pyStr(credentials.client_secret);
    this.refreshToken = credentials.refresh_token ?? null;
    this.accessToken = credentials.access_token ? pyStr(credentials.access_token) : null;
    this.scope = options.scope ?? null;
    this.redactor = options.redactor ?? null;
    this.logger = options.logger ?? null;
  }

  override async before_request(_ctx: Context, request: Request): Promise<undefined> {
    request.headers["Authorization"] = "Bearer " + (await this.token());
    return undefined;
  }

  async token(): Promise<string> {
    if (
      this.accessToken === null ||
      (this.expiresAt !== null && this.clock.time() >= this.expiresAt - this.refreshMargin)
    ) {
      await this.fetch();
    }
    return this.accessToken as string;
  }

  /**
   * Forget the token after a 401 so that the next request fetches a new one. Returns false
   * when there was no token, i.e. the token endpoint itself refused us: asking again would not help.
   */
  override invalidate(): boolean {
    if (this.accessToken === null) return false;
    this.accessToken = null;
    this.expiresAt = null;
    return true;
  }

  async fetch(): Promise<void> {
    this.accessToken = null; // stays null if this fetch fails
    this.expiresAt = null;
    const form: Array<[string, string]> = [["grant_type", pyStr(this.grantType)]];
    if (this.grantType === "refresh_token") form.push(["refresh_token", pyStr(this.refreshToken)]);
    if (this.scope) form.push(["scope", this.scope]);
    form.push(["client_id", this.clientId]);
    form.push(["client_secret", this.clientSecret]);
    const headers = { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" };
    const request = new Request("POST", this.tokenUrl, [], headers, new TextEncoder().encode(urlencode(form)));
    const response = await this.sendTokenRequest(request);
    if (!response.ok) {
      const code = response.status < 500 ? errors.AUTH_FAILED : errors.SERVER_ERROR;
      throw new ConnectorError(code, `token endpoint answered ${response.status}: ${response.text().slice(0, 200)}`, {
        status: response.status,
        requestId: response.requestId,
      });
    }
    let payload: unknown = null;
    try {
      payload = parseJson(new TextDecoder("utf-8", { fatal: true }).decode(response.body));
    } catch {
      payload = null;
    }
    if (!isObject(payload) || !payload.access_token) {
      throw new ConnectorError(errors.AUTH_FAILED, "token endpoint returned no access_token", {
        status: response.status,
        requestId: response.requestId,
      });
    }
    this.accessToken = pyStr(payload.access_token);
    this.redactor?.add(this.accessToken);
    if (payload.refresh_token) {
      this.refreshToken = pyStr(payload.refresh_token); // servers may rotate it
      this.redactor?.add(this.refreshToken);
    }
    let lifetime: number | null = null;
    const raw = payload.expires_in;
    if (typeof raw === "number") lifetime = raw;
    else if (typeof raw === "string") lifetime = pyFloat(raw);
    if (lifetime !== null) {
      this.expiresAt = this.clock.time() + lifetime;
      // Renew a little early so a token never expires mid-request.
      this.refreshMargin = Math.min(60.0, lifetime * 0.1);
    } else {
      this.expiresAt = null;
    }
    this.fetchCount += 1;
    this.logger?.info("obtained an access token", {
      event: "token",
      grant_type: this.grantType,
      expires_in: asFloat(lifetime),
    });
  }
}

export interface BuildAuthOptions {
  redactor?: Redactor | null;
  sendTokenRequest?: SendTokenRequest;
  clock: Clock;
  logger?: Logger | null;
}

/** Build the auth hook for the manifest's `auth` object (credentials already checked). */
export function buildAuth(spec: Spec, credentials: Credentials, baseUrl: string, options: BuildAuthOptions): Auth {
  const kind = getKey(spec, "type", "none");
  requiredCredentials(spec, credentials); // throws UNSUPPORTED for unknown types
  options.redactor?.addAll(credentials);
  if (kind === "none") return new NoAuth();
  if (kind === "api_key") {
    const location = getKey(spec, "in", "header");
    const defaultName = location === "query" ? "api_key" : "X-Api-Key";
    return new ApiKeyAuth(
      credentials.api_key,
      location,
      pyStr(getKey(spec, "name", defaultName)),
      pyStr(getKey(spec, "prefix", "")),
    );
  }
  if (kind === "bearer") return new BearerAuth(credentials.token);
  if (kind === "basic") return new BasicAuth(credentials.username, credentials.password, options.redactor ?? null);
  let tokenUrl = typeof spec.token_url === "string" && spec.token_url ? spec.token_url : "/oauth/token";
  if (!tokenUrl.startsWith("http://") && !tokenUrl.startsWith("https://")) {
    // Relative to the (possibly overridden) base URL, so a mock server gets the token calls too.
    tokenUrl = baseUrl.replace(/\/+$/, "") + "/" + tokenUrl.replace(/^\/+/, "");
  }
  const scopes = spec.scopes;
  const scope = Array.isArray(scopes) && scopes.length > 0 ? scopes.map(pyStr).join(" ") : null;
  const send: SendTokenRequest =
    options.sendTokenRequest ??
    (() => Promise.reject(new ConnectorError(errors.UNSUPPORTED, "oauth2 needs a way to call the token endpoint")));
  return new OAuth2Auth(grantType(spec, credentials), tokenUrl, credentials, send, options.clock, {
    redactor: options.redactor ?? null,
    scope,
    logger: options.logger ?? null,
  });
}
