import base64
import unittest

import helpers
from connector_runtime import errors
from connector_runtime.auth import OAuth2Auth, build_auth, check_credentials
from connector_runtime.errors import ConnectorError
from connector_runtime.http import Transport
from connector_runtime.log import Redactor

PAGE = {"data": [{"id": 1}, {"id": 2}]}


class AuthTypesTest(helpers.ServerCase, unittest.TestCase):
    def sync(self, auth, credentials, route=None):
        server = self.serve(route or (lambda seen: helpers.reply(200, PAGE)))
        connector = self.connector(helpers.manifest([helpers.stream()], auth=auth))
        run = helpers.run_cli(connector, helpers.base_config(server.url, credentials=credentials))
        return server, run

    def test_none(self):
        server, run = self.sync({"type": "none"}, {})
        self.assertEqual(run.code, 0, run.err_text)
        self.assertNotIn("authorization", server.requests[0].headers)

    def test_api_key_in_header(self):
        server, run = self.sync({"type": "api_key", "in": "header", "name": "X-Api-Key"}, {"api_key": "key-abc-123"})
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(server.requests[0].headers["x-api-key"], "key-abc-123")
        self.assertNotIn("key-abc-123", run.err_text + run.out_text)

    def test_api_key_in_query(self):
        server, run = self.sync({"type": "api_key", "in": "query", "name": "api_key"}, {"api_key": "key/with+chars&="})
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(server.requests[0].query["api_key"], "key/with+chars&=")
        self.assertNotIn("api_key", server.requests[0].headers)
        self.assertIn("api_key=***", run.err_text)  # the request log line shows the URL, redacted

    def test_bearer(self):
        server, run = self.sync({"type": "bearer"}, {"token": "tok_live_42"})
        self.assertEqual(server.requests[0].headers["authorization"], "Bearer tok_live_42")

    def test_basic(self):
        server, run = self.sync({"type": "basic"}, {"username": "alice", "password": "s3cret!pw"})
        expected = "Basic " + base64.b64encode(b"alice:s3cret!pw").decode()
        self.assertEqual(server.requests[0].headers["authorization"], expected)

    def test_missing_credentials_is_validation_error(self):
        cases = [({"type": "api_key"}, {}), ({"type": "bearer"}, {"token": ""}),
                 ({"type": "basic"}, {"username": "u"}),
                 ({"type": "oauth2", "flow": "client_credentials"}, {"client_id": "c"}),
                 ({"type": "oauth2", "flow": "refresh_token"}, {"client_id": "c", "client_secret": "s"})]
        for auth, credentials in cases:
            with self.subTest(auth=auth):
                server, run = self.sync(auth, credentials)
                self.assertEqual(run.code, 1)
                self.assertEqual(run.error["code"], "VALIDATION_ERROR")
                self.assertEqual(server.requests, [])

    def test_unknown_auth_type_is_unsupported(self):
        server, run = self.sync({"type": "hmac"}, {"key": "x"})
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "UNSUPPORTED")

    def test_wrong_credentials_is_auth_failed(self):
        server, run = self.sync({"type": "bearer"}, {"token": "bad-token"},
                                lambda seen: helpers.reply(401, {"error": "bad key"}, {"X-Request-Id": "r-401"}))
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error, {"type": "ERROR", "code": "AUTH_FAILED", "message": run.error["message"],
                                     "retryable": False, "status": 401, "request_id": "r-401",
                                     "stream": "items"})
        self.assertEqual(len(server.requests), 1)


class OAuth2Server:
    """Token endpoint plus a data endpoint that only accepts the latest token."""

    def __init__(self, case, expires_in=3600, rotate=False):
        self.tokens = []
        self.refresh_tokens = ["rt-original"]
        self.expires_in = expires_in
        self.rotate = rotate
        self.reject_next_data = False
        self.server = case.serve(self.route)

    def route(self, seen):
        if seen.path == "/oauth/token":
            form = seen.form()
            self.last_form = form
            if seen.method != "POST" or seen.headers.get("content-type") != "application/x-www-form-urlencoded":
                return helpers.reply(400, {"error": "invalid_request"})
            if form.get("client_secret") != "shh-secret":
                return helpers.reply(401, {"error": "invalid_client"})
            if form["grant_type"] == "refresh_token" and form.get("refresh_token") != self.refresh_tokens[-1]:
                return helpers.reply(400, {"error": "invalid_grant"})
            token = "at-%d-xyz" % (len(self.tokens) + 1)
            self.tokens.append(token)
            body = {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in}
            if self.rotate:
                self.refresh_tokens.append("rt-%d" % len(self.tokens))
                body["refresh_token"] = self.refresh_tokens[-1]
            return helpers.reply(200, body)
        if self.reject_next_data:
            self.reject_next_data = False
            return helpers.reply(401, {"error": "token revoked"})
        if not self.tokens or seen.headers.get("authorization") != "Bearer " + self.tokens[-1]:
            return helpers.reply(401, {"error": "bad token"})
        return helpers.reply(200, PAGE)

    def token_requests(self):
        return [r for r in self.server.requests if r.path == "/oauth/token"]


class OAuth2Test(helpers.ServerCase, unittest.TestCase):
    CREDS = {"client_id": "client-1", "client_secret": "shh-secret"}

    def test_client_credentials_through_the_cli(self):
        api = OAuth2Server(self)
        connector = self.connector(helpers.manifest(
            [helpers.stream(name="a", path="/a"), helpers.stream(name="b", path="/b")],
            auth={"type": "oauth2", "flow": "client_credentials", "token_url": "/oauth/token",
                  "scopes": ["read", "write"]}))
        run = helpers.run_cli(connector, helpers.base_config(api.server.url, credentials=self.CREDS))
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(len(run.records), 4)
        self.assertEqual(len(api.token_requests()), 1)  # reused while valid
        self.assertEqual(api.last_form, {"grant_type": "client_credentials", "client_id": "client-1",
                                         "client_secret": "shh-secret", "scope": "read write"})
        for secret in ("shh-secret", "at-1-xyz"):
            self.assertNotIn(secret, run.err_text + run.out_text)

    def test_config_token_url_overrides_an_absolute_manifest_url(self):
        # The manifest names the provider's real endpoint; the config redirects it (spec tests do).
        api = OAuth2Server(self)
        connector = self.connector(helpers.manifest(
            [helpers.stream(name="a", path="/a")],
            auth={"type": "oauth2", "flow": "client_credentials",
                  "token_url": "https://auth.provider.invalid/oauth/token"}))
        run = helpers.run_cli(connector, helpers.base_config(
            api.server.url, credentials=self.CREDS, token_url=api.server.url + "/oauth/token"))
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(len(api.token_requests()), 1)
        bad = helpers.run_cli(connector, helpers.base_config(
            api.server.url, credentials=self.CREDS, token_url="ftp://nope"))
        self.assertEqual(bad.error["code"], "VALIDATION_ERROR")

    def make_auth(self, api, clock, credentials, grant):
        redactor = Redactor()
        transport = Transport()
        auth = build_auth({"type": "oauth2", "flow": grant, "token_url": "/oauth/token"},
                          credentials, api.server.url, redactor=redactor,
                          send_token_request=lambda req: transport.send(req, 2.0), clock=clock)
        self.assertIsInstance(auth, OAuth2Auth)
        return auth, redactor

    def test_token_is_renewed_shortly_before_it_expires(self):
        api = OAuth2Server(self, expires_in=100)
        clock = helpers.FakeClock()
        auth, redactor = self.make_auth(api, clock, self.CREDS, "client_credentials")
        self.assertEqual(auth.token(), "at-1-xyz")
        clock.advance(50)
        self.assertEqual(auth.token(), "at-1-xyz")
        clock.advance(39)
        self.assertEqual(auth.token(), "at-1-xyz")  # 89 s: still outside the 10 s margin
        clock.advance(2)
        self.assertEqual(auth.token(), "at-2-xyz")  # 91 s: renewed before the 100 s expiry
        self.assertEqual(len(api.token_requests()), 2)
        self.assertEqual(redactor.redact("Bearer at-1-xyz at-2-xyz"), "Bearer *** ***")

    def test_refresh_token_flow_with_rotation(self):
        api = OAuth2Server(self, expires_in=60, rotate=True)
        clock = helpers.FakeClock()
        credentials = dict(self.CREDS, refresh_token="rt-original")
        auth, redactor = self.make_auth(api, clock, credentials, "refresh_token")
        self.assertEqual(auth.token(), "at-1-xyz")
        self.assertEqual(api.last_form["grant_type"], "refresh_token")
        self.assertEqual(api.last_form["refresh_token"], "rt-original")
        clock.advance(61)
        self.assertEqual(auth.token(), "at-2-xyz")
        self.assertEqual(api.last_form["refresh_token"], "rt-1")  # the rotated one
        self.assertEqual(redactor.redact("rt-1 rt-2"), "*** ***")

    def test_given_access_token_is_used_then_refreshed_after_401(self):
        api = OAuth2Server(self)
        api.tokens.append("at-given")
        connector = self.connector(helpers.manifest([helpers.stream()], auth={
            "type": "oauth2", "flow": "refresh_token", "token_url": api.server.url + "/oauth/token"}))
        api.reject_next_data = True
        credentials = dict(self.CREDS, refresh_token="rt-original", access_token="at-given")
        run = helpers.run_cli(connector, helpers.base_config(api.server.url, credentials=credentials))
        self.assertEqual(run.code, 0, run.err_text)
        data_requests = [r for r in api.server.requests if r.path != "/oauth/token"]
        self.assertEqual(data_requests[0].headers["authorization"], "Bearer at-given")
        self.assertEqual(data_requests[1].headers["authorization"], "Bearer at-2-xyz")
        self.assertEqual(len(api.token_requests()), 1)

    def test_rejected_client_is_auth_failed(self):
        api = OAuth2Server(self)
        clock = helpers.FakeClock()
        auth, _ = self.make_auth(api, clock, {"client_id": "c", "client_secret": "wrong-one"}, "client_credentials")
        with self.assertRaises(ConnectorError) as caught:
            auth.token()
        self.assertEqual(caught.exception.code, errors.AUTH_FAILED)
        self.assertEqual(caught.exception.status, 401)

    def test_rejected_client_through_the_cli_asks_once(self):
        api = OAuth2Server(self)
        connector = self.connector(helpers.manifest([helpers.stream()], auth={
            "type": "oauth2", "flow": "client_credentials", "token_url": "/oauth/token"}))
        run = helpers.run_cli(connector, helpers.base_config(
            api.server.url, credentials={"client_id": "c", "client_secret": "not-the-secret"}))
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "AUTH_FAILED")
        self.assertEqual(run.error["status"], 401)
        self.assertEqual(len(api.server.requests), 1)
        self.assertNotIn("not-the-secret", run.err_text + run.out_text)

    def test_check_credentials_accepts_complete_sets(self):
        check_credentials({"type": "oauth2"}, self.CREDS)
        check_credentials({"type": "oauth2"}, dict(self.CREDS, refresh_token="r"))
        check_credentials({"type": "none"}, {})
        with self.assertRaises(ConnectorError):
            check_credentials({"type": "oauth2", "flow": "password"}, self.CREDS)


if __name__ == "__main__":
    unittest.main()
