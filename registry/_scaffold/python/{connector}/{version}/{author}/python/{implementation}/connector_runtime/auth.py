"""Authentication: the manifest's `auth` object plus the config's `credentials` (contract 2, 3).

Manifest `auth` objects understood here (registry/_schemas/implementation.schema.json):
  {"type": "none"}
  {"type": "api_key", "in": "header"|"query", "name": "X-Api-Key", "prefix": ""}   credentials.api_key
  {"type": "bearer"}                                                              credentials.token
  {"type": "basic"}                                             credentials.username, credentials.password
  {"type": "oauth2", "flow": "client_credentials"|"refresh_token", "token_url": "/oauth/token",
   "scopes": ["read"]}
      credentials.client_id, client_secret, refresh_token (refresh flow), access_token (optional)
      The token endpoint gets a form-encoded POST with client_id and client_secret in the body.

Each auth object is a pipeline hook (before_request). Every credential, and every token we
obtain, is registered with the redactor before it can reach a log line.
"""
from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from . import errors
from .errors import ConnectorError
from .http import Request

KNOWN_TYPES = ("none", "api_key", "bearer", "basic", "oauth2")


def _grant_type(spec, credentials):
    grant = spec.get("flow") or spec.get("grant_type")  # older manifests said grant_type
    if grant:
        return grant
    return "refresh_token" if credentials.get("refresh_token") else "client_credentials"


def required_credentials(spec, credentials):
    """The credential keys this auth type needs (raises UNSUPPORTED for an unknown type)."""
    kind = spec.get("type", "none")
    if kind not in KNOWN_TYPES:
        raise ConnectorError(errors.UNSUPPORTED, "auth type %r is not supported" % (kind,))
    if kind == "api_key":
        return ["api_key"]
    if kind == "bearer":
        return ["token"]
    if kind == "basic":
        return ["username", "password"]
    if kind == "oauth2":
        grant = _grant_type(spec, credentials)
        if grant == "client_credentials":
            return ["client_id", "client_secret"]
        if grant == "refresh_token":
            return ["client_id", "client_secret", "refresh_token"]
        raise ConnectorError(errors.UNSUPPORTED, "oauth2 flow %r is not supported" % (grant,))
    return []


def check_credentials(spec, credentials):
    missing = [key for key in required_credentials(spec, credentials)
               if credentials.get(key) in (None, "")]
    if missing:
        raise ConnectorError(errors.VALIDATION_ERROR,
                             "config.credentials lacks %s (needed by auth type %s)"
                             % (", ".join(missing), spec.get("type")))


class NoAuth:
    def before_request(self, ctx, request):
        return None

    def invalidate(self):
        return False


class ApiKeyAuth(NoAuth):
    def __init__(self, key, location="header", name="X-Api-Key", prefix=""):
        if location not in ("header", "query"):
            raise ConnectorError(errors.UNSUPPORTED, "api_key auth: 'in' must be header or query")
        self.value = prefix + str(key)
        self.location = location
        self.name = name

    def before_request(self, ctx, request):
        if self.location == "header":
            request.headers[self.name] = self.value
        else:
            request.set_param(self.name, self.value)


class BearerAuth(NoAuth):
    def __init__(self, token):
        self.header = "Bearer %s" % (token,)

    def before_request(self, ctx, request):
        request.headers["Authorization"] = self.header


class BasicAuth(NoAuth):
    def __init__(self, username, password, redactor=None):
        encoded = base64.b64encode(("%s:%s" % (username, password)).encode("utf-8")).decode("ascii")
        if redactor is not None:
            redactor.add(encoded)  # the encoded pair is as secret as the password
        self.header = "Basic " + encoded

    def before_request(self, ctx, request):
        request.headers["Authorization"] = self.header


class OAuth2Auth(NoAuth):
    """Fetches an access token from the token endpoint and renews it shortly before it expires.

    `send_token_request(request)` performs the POST (with retries) and returns a Response.
    """

    def __init__(self, grant_type, token_url, credentials, send_token_request, clock,
                 redactor=None, scope=None, logger=None):
        self.grant_type = grant_type
        self.token_url = token_url
        self.client_id = str(credentials.get("client_id"))
        self.client_secret = str(credentials.get("client_secret"))
        self.refresh_token = credentials.get("refresh_token")
        self.access_token = credentials.get("access_token") or None
        self.expires_at = None  # epoch seconds; None = unknown (used until a 401)
        self.refresh_margin = 0.0
        self.scope = scope
        self.send_token_request = send_token_request
        self.clock = clock
        self.redactor = redactor
        self.logger = logger
        self.fetch_count = 0

    def before_request(self, ctx, request):
        request.headers["Authorization"] = "Bearer " + self.token()

    def token(self):
        if self.access_token is None or (
                self.expires_at is not None
                and self.clock.time() >= self.expires_at - self.refresh_margin):
            self.fetch()
        return self.access_token

    def invalidate(self):
        """Forget the token after a 401 so that the next request fetches a new one. Returns
        False when there was no token, i.e. the token endpoint itself refused us: asking
        again would not help."""
        if self.access_token is None:
            return False
        self.access_token = None
        self.expires_at = None
        return True

    def fetch(self):
        self.access_token = None  # stays None if this fetch fails
        self.expires_at = None
        form = {"grant_type": self.grant_type}
        if self.grant_type == "refresh_token":
            form["refresh_token"] = self.refresh_token
        if self.scope:
            form["scope"] = self.scope
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        request = Request("POST", self.token_url, headers=headers, body=urlencode(form).encode("ascii"))
        response = self.send_token_request(request)
        if not response.ok:
            code = errors.AUTH_FAILED if response.status < 500 else errors.SERVER_ERROR
            raise ConnectorError(code, "token endpoint answered %d: %s"
                                 % (response.status, response.text()[:200]),
                                 status=response.status, request_id=response.request_id)
        try:
            payload = json.loads(response.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict) or not payload.get("access_token"):
            raise ConnectorError(errors.AUTH_FAILED, "token endpoint returned no access_token",
                                 status=response.status, request_id=response.request_id)
        self.access_token = str(payload["access_token"])
        if self.redactor is not None:
            self.redactor.add(self.access_token)
        if payload.get("refresh_token"):
            self.refresh_token = str(payload["refresh_token"])  # servers may rotate it
            if self.redactor is not None:
                self.redactor.add(self.refresh_token)
        lifetime = payload.get("expires_in")
        try:
            lifetime = float(lifetime) if lifetime is not None else None
        except (TypeError, ValueError):
            lifetime = None
        if lifetime is not None:
            self.expires_at = self.clock.time() + lifetime
            # Renew a little early so a token never expires mid-request.
            self.refresh_margin = min(60.0, lifetime * 0.1)
        else:
            self.expires_at = None
        self.fetch_count += 1
        if self.logger is not None:
            self.logger.info("obtained an access token", event="token", grant_type=self.grant_type,
                             expires_in=lifetime)


def build_auth(spec, credentials, base_url, redactor=None, send_token_request=None,
               clock=None, logger=None):
    """Build the auth hook for the manifest's `auth` object (credentials already checked)."""
    kind = spec.get("type", "none")
    required_credentials(spec, credentials)  # raises UNSUPPORTED for unknown types
    if redactor is not None:
        redactor.add_all(credentials)
    if kind == "none":
        return NoAuth()
    if kind == "api_key":
        location = spec.get("in", "header")
        default_name = "api_key" if location == "query" else "X-Api-Key"
        return ApiKeyAuth(credentials["api_key"], location, spec.get("name", default_name),
                          spec.get("prefix", ""))
    if kind == "bearer":
        return BearerAuth(credentials["token"])
    if kind == "basic":
        return BasicAuth(credentials["username"], credentials["password"], redactor)
    token_url = spec.get("token_url") or "/oauth/token"
    if not token_url.startswith(("http://", "https://")):
        # Relative to the (possibly overridden) base URL, so a mock server gets the token calls too.
        token_url = base_url.rstrip("/") + "/" + token_url.lstrip("/")
    scopes = spec.get("scopes")
    scope = " ".join(scopes) if isinstance(scopes, list) and scopes else None
    return OAuth2Auth(_grant_type(spec, credentials), token_url, credentials, send_token_request,
                      clock, redactor=redactor, scope=scope, logger=logger)
