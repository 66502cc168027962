import time
import unittest

import helpers
from connector_runtime import errors
from connector_runtime.client import error_for_response
from connector_runtime.errors import ConnectorError
from connector_runtime.http import Request, Response, Transport


class TransportTest(helpers.ServerCase, unittest.TestCase):
    def test_success_and_error_statuses_are_responses(self):
        server = self.serve(lambda seen: helpers.reply(404 if seen.path == "/missing" else 200,
                                                       {"path": seen.path}, {"Request-Id": "req_1"}))
        transport = Transport()
        ok = transport.send(Request("GET", server.url + "/a", params=[("x", "1 2"), ("flag", True)]), 2.0)
        self.assertEqual(ok.status, 200)
        self.assertEqual(ok.json(), {"path": "/a"})
        self.assertEqual(server.requests[0].query, {"x": "1 2", "flag": "true"})
        missing = transport.send(Request("GET", server.url + "/missing"), 2.0)
        self.assertEqual(missing.status, 404)
        self.assertEqual(missing.json(), {"path": "/missing"})
        self.assertEqual(missing.request_id, "req_1")

    def test_slow_headers_time_out(self):
        def route(seen):
            time.sleep(0.8)
            return helpers.reply(200, {})

        server = self.serve(route)
        started = time.monotonic()
        with self.assertRaises(ConnectorError) as caught:
            Transport().send(Request("GET", server.url + "/slow"), 0.25)
        self.assertEqual(caught.exception.code, errors.TIMEOUT)
        self.assertTrue(caught.exception.retryable)
        self.assertLess(time.monotonic() - started, 0.7)

    def test_trickling_body_hits_the_whole_response_deadline(self):
        def route(seen):
            handler = seen.handler
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "200")
            handler.end_headers()
            try:
                for _ in range(200):
                    if server.stopping.is_set():
                        return None
                    handler.wfile.write(b" ")
                    handler.wfile.flush()
                    time.sleep(0.02)  # every byte well inside the socket timeout
            except OSError:
                pass
            return None

        server = self.serve(route)
        started = time.monotonic()
        with self.assertRaises(ConnectorError) as caught:
            Transport().send(Request("GET", server.url + "/trickle"), 0.4)
        elapsed = time.monotonic() - started
        self.assertEqual(caught.exception.code, errors.TIMEOUT)
        self.assertLess(elapsed, 1.5)  # all 200 bytes would take 4 s

    def test_connection_refused_is_network_error(self):
        with self.assertRaises(ConnectorError) as caught:
            Transport().send(Request("GET", "http://127.0.0.1:%d/x" % helpers.free_port()), 1.0)
        self.assertEqual(caught.exception.code, errors.NETWORK_ERROR)
        self.assertTrue(caught.exception.retryable)

    def test_post_body_and_headers_are_sent(self):
        server = self.serve(lambda seen: helpers.reply(201, {"got": seen.body.decode()}))
        response = Transport().send(Request("POST", server.url + "/p", headers={"X-One": "1"},
                                            body=b"a=b"), 2.0)
        self.assertEqual(response.status, 201)
        self.assertEqual(server.requests[0].method, "POST")
        self.assertEqual(server.requests[0].headers["x-one"], "1")
        self.assertEqual(response.json(), {"got": "a=b"})


class ResponseTest(unittest.TestCase):
    def test_malformed_json_is_parsing_error(self):
        response = Response(200, {"X-Request-Id": "abc"}, b'{"data": [1, 2', url="http://h/x")
        with self.assertRaises(ConnectorError) as caught:
            response.json()
        self.assertEqual(caught.exception.code, errors.PARSING_ERROR)
        self.assertFalse(caught.exception.retryable)
        self.assertEqual(caught.exception.request_id, "abc")

    def test_request_id_prefers_x_request_id_and_headers_ignore_case(self):
        self.assertEqual(Response(200, {"x-request-id": "one", "Request-Id": "two"}).request_id, "one")
        self.assertEqual(Response(200, {"request-id": "two"}).request_id, "two")
        self.assertIsNone(Response(200, {}).request_id)

    def test_status_to_error_code(self):
        cases = {200: None, 204: None, 400: errors.INVALID_REQUEST, 401: errors.AUTH_FAILED,
                 403: errors.AUTH_FAILED, 404: errors.INVALID_REQUEST, 405: errors.INVALID_REQUEST,
                 408: errors.TIMEOUT, 409: errors.INVALID_REQUEST, 422: errors.INVALID_REQUEST,
                 429: errors.RATE_LIMIT, 500: errors.SERVER_ERROR, 503: errors.SERVER_ERROR}
        for status, code in cases.items():
            error = error_for_response(Response(status, {}, b"body", url="http://h"), 0)
            self.assertEqual(error.code if error else None, code, status)

    def test_error_line_shape(self):
        error = ConnectorError(errors.SERVER_ERROR, "boom", status=503, request_id="r1", stream="s")
        self.assertEqual(error.to_dict(), {"type": "ERROR", "code": "SERVER_ERROR", "message": "boom",
                                           "retryable": True, "status": 503, "request_id": "r1",
                                           "stream": "s"})


if __name__ == "__main__":
    unittest.main()
