import base64
import io
import json
import unittest
from urllib.parse import quote, quote_plus, urlencode

import helpers
from connector_runtime.auth import BasicAuth
from connector_runtime.errors import ConnectorError
from connector_runtime.log import Logger, Redactor

SECRET = 'p@ss/w"rd+&=\u00e9x'


class RedactorTest(unittest.TestCase):
    def setUp(self):
        self.redactor = Redactor()
        self.redactor.add(SECRET)

    def test_every_written_form_is_hidden(self):
        forms = [SECRET, quote(SECRET, safe=""), quote_plus(SECRET), urlencode({"k": SECRET})[2:],
                 json.dumps(SECRET)[1:-1], json.dumps(SECRET, ensure_ascii=False)[1:-1],
                 base64.b64encode(SECRET.encode()).decode()]
        for form in forms:
            with self.subTest(form=form):
                self.assertEqual(self.redactor.redact("before %s after" % form), "before *** after")

    def test_basic_auth_pair_is_hidden(self):
        redactor = Redactor()
        auth = BasicAuth("alice", "hunter22", redactor)
        self.assertEqual(redactor.redact("Authorization: " + auth.header), "Authorization: Basic ***")

    def test_nested_credentials_and_numbers(self):
        redactor = Redactor()
        redactor.add_all({"a": "token-aaaa", "nested": {"b": ["list-secret"]}, "pin": 987654})
        self.assertEqual(redactor.redact("token-aaaa list-secret 987654 keep"), "*** *** *** keep")

    def test_values_too_short_to_hide_are_left_alone(self):
        redactor = Redactor()
        redactor.add("ab")
        self.assertEqual(redactor.redact("tab"), "tab")


class LoggerTest(unittest.TestCase):
    def test_log_line_shape_and_redaction_in_every_field(self):
        out = io.StringIO()
        redactor = Redactor()
        redactor.add("sk_test_abcdef")
        logger = Logger(out, redactor)
        logger.info("GET https://h/x?key=sk_test_abcdef", event="request", status=200, stream=None,
                    url="https://h/x?key=" + quote("sk_test_abcdef"))
        logger.error_line(ConnectorError("AUTH_FAILED", "bad key sk_test_abcdef", status=401))
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        self.assertEqual(lines[0], {"type": "LOG", "level": "INFO", "message": "GET https://h/x?key=***",
                                    "event": "request", "status": 200, "url": "https://h/x?key=***"})
        self.assertEqual(lines[1]["type"], "ERROR")
        self.assertEqual(lines[1]["message"], "bad key ***")
        self.assertNotIn("sk_test_abcdef", out.getvalue())


class RedactionEndToEndTest(helpers.ServerCase, unittest.TestCase):
    def test_secret_never_reaches_stdout_or_stderr(self):
        key = "qk/Secret+Value=1"

        def route(seen):
            # A hostile API that echoes the key back in its error body and headers.
            return helpers.reply(404, {"error": "unknown key %s" % seen.query.get("key"),
                                       "url": seen.raw_query}, {"X-Request-Id": "rid-1"})

        server = self.serve(route)
        connector = self.connector(helpers.manifest([helpers.stream()],
                                                    auth={"type": "api_key", "in": "query", "name": "key"}))
        run = helpers.run_cli(connector, helpers.base_config(server.url, credentials={"api_key": key}))
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "INVALID_REQUEST")
        both = run.out_text + run.err_text
        for form in (key, quote(key, safe=""), quote_plus(key), json.dumps(key)[1:-1]):
            self.assertNotIn(form, both)
        self.assertIn("***", run.error["message"])


if __name__ == "__main__":
    unittest.main()
