import unittest

import helpers
from connector_runtime import errors
from connector_runtime.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from connector_runtime.client import ApiClient
from connector_runtime.errors import ConnectorError
from connector_runtime.hooks import Context, Pipeline
from connector_runtime.http import Request, Transport
from connector_runtime.retry import RetryPolicy


def failure(code=errors.SERVER_ERROR, status=503):
    return ConnectorError(code, "failed", status=status)


class BreakerUnitTest(unittest.TestCase):
    def setUp(self):
        self.clock = helpers.FakeClock()
        self.breaker = CircuitBreaker(failure_threshold=3, reset_seconds=10, clock=self.clock)

    def test_opens_after_threshold_consecutive_failures_and_fails_fast(self):
        for _ in range(2):
            self.breaker.record(failure())
        self.assertEqual(self.breaker.state, CLOSED)
        self.breaker.check()
        self.breaker.record(failure(errors.TIMEOUT, None))
        self.assertEqual(self.breaker.state, OPEN)
        with self.assertRaises(ConnectorError) as caught:
            self.breaker.check()
        self.assertTrue(caught.exception.fail_fast)
        self.assertEqual(caught.exception.code, errors.TIMEOUT)
        self.assertIn("circuit breaker open", caught.exception.message)

    def test_success_resets_the_count(self):
        self.breaker.record(failure())
        self.breaker.record(failure())
        self.breaker.record(None)
        self.breaker.record(failure())
        self.breaker.record(failure())
        self.assertEqual(self.breaker.state, CLOSED)

    def test_client_errors_do_not_count(self):
        for _ in range(5):
            self.breaker.record(failure(errors.INVALID_REQUEST, 404))
        self.assertEqual(self.breaker.state, CLOSED)

    def test_half_open_after_reset_then_close_on_success(self):
        for _ in range(3):
            self.breaker.record(failure())
        self.clock.advance(9.9)
        with self.assertRaises(ConnectorError):
            self.breaker.check()
        self.clock.advance(0.1)
        self.breaker.check()  # the trial request is let through
        self.assertEqual(self.breaker.state, HALF_OPEN)
        self.breaker.record(None)
        self.assertEqual(self.breaker.state, CLOSED)
        self.assertEqual(self.breaker.failures, 0)
        self.breaker.check()

    def test_failed_trial_reopens_for_a_full_period(self):
        for _ in range(3):
            self.breaker.record(failure())
        self.clock.advance(10)
        self.breaker.check()
        self.breaker.record(failure())
        self.assertEqual(self.breaker.state, OPEN)
        self.clock.advance(5)
        with self.assertRaises(ConnectorError):
            self.breaker.check()
        self.clock.advance(5)
        self.breaker.check()
        self.assertEqual(self.breaker.state, HALF_OPEN)


class BreakerInClientTest(helpers.ServerCase, unittest.TestCase):
    def test_open_breaker_stops_retries_and_recovers_after_reset(self):
        status = {"code": 503}
        server = self.serve(lambda seen: helpers.reply(status["code"], {"n": len(server.requests)}))
        clock = helpers.FakeClock()
        breaker = CircuitBreaker(failure_threshold=2, reset_seconds=30, clock=clock)
        client = ApiClient(Transport(), Pipeline(), RetryPolicy(max_attempts=10, initial_delay_seconds=0.1),
                           breaker, clock, 2.0, rng=helpers.SeqRandom(0.0))
        with self.assertRaises(ConnectorError) as caught:
            client.send(Context(), Request("GET", server.url + "/x"))
        self.assertEqual(len(server.requests), 2)  # the third attempt failed fast
        self.assertEqual(caught.exception.code, errors.SERVER_ERROR)
        self.assertTrue(caught.exception.fail_fast)
        self.assertEqual(breaker.state, OPEN)

        status["code"] = 200
        with self.assertRaises(ConnectorError):
            client.send(Context(), Request("GET", server.url + "/x"))  # still open
        self.assertEqual(len(server.requests), 2)
        clock.advance(30)
        self.assertEqual(client.send(Context(), Request("GET", server.url + "/x")).status, 200)
        self.assertEqual(breaker.state, CLOSED)
        self.assertEqual(len(server.requests), 3)


if __name__ == "__main__":
    unittest.main()
