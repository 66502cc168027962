import email.utils
import random
import time
import unittest

import helpers
from connector_runtime import errors
from connector_runtime.breaker import CircuitBreaker
from connector_runtime.client import ApiClient
from connector_runtime.errors import ConnectorError
from connector_runtime.hooks import Context, Pipeline
from connector_runtime.http import Request, Transport
from connector_runtime.retry import RetryPolicy, call_with_retry, parse_retry_after


class BackoffTest(unittest.TestCase):
    def test_delays_double_up_to_the_cap_with_jitter_in_range(self):
        policy = RetryPolicy(initial_delay_seconds=0.5, max_delay_seconds=3.0)
        rng = random.Random(7)
        bases = [0.5, 1.0, 2.0, 3.0, 3.0]
        delays = [policy.backoff(n, rng) for n in range(1, 6)]
        for base, delay in zip(bases, delays):
            self.assertGreaterEqual(delay, base)
            self.assertLess(delay, base * 1.25)
        self.assertLess(delays[0], delays[1])
        self.assertLess(delays[1], delays[2])

    def test_jitter_is_the_uniform_draw_times_a_quarter(self):
        policy = RetryPolicy(initial_delay_seconds=1.0, max_delay_seconds=100.0)
        self.assertAlmostEqual(policy.backoff(3, helpers.SeqRandom(0.0)), 4.0)
        self.assertAlmostEqual(policy.backoff(3, helpers.SeqRandom(0.5)), 4.5)
        # Different draws really give different delays.
        draws = {round(policy.backoff(1, random.Random(seed)), 6) for seed in range(10)}
        self.assertGreater(len(draws), 5)


class RetryAfterParsingTest(unittest.TestCase):
    def test_seconds(self):
        self.assertEqual(parse_retry_after("3", 0), 3.0)
        self.assertEqual(parse_retry_after(" 1.5 ", 0), 1.5)

    def test_http_date(self):
        now = 1_700_000_000.0
        header = email.utils.formatdate(now + 12, usegmt=True)
        self.assertAlmostEqual(parse_retry_after(header, now), 12.0)

    def test_past_date_means_no_wait_and_garbage_means_none(self):
        now = 1_700_000_000.0
        self.assertEqual(parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now), 0.0)
        self.assertIsNone(parse_retry_after("soon", now))
        self.assertIsNone(parse_retry_after(None, now))


class CallWithRetryTest(unittest.TestCase):
    def test_budget_seconds_stops_before_a_wait_that_would_pass_it(self):
        clock = helpers.FakeClock()
        calls = []

        def fail(n):
            calls.append(n)
            raise ConnectorError(errors.SERVER_ERROR, "x", status=503)

        policy = RetryPolicy(max_attempts=10, initial_delay_seconds=1.0, max_delay_seconds=60,
                             budget_seconds=2.5)
        with self.assertRaises(ConnectorError):
            call_with_retry(fail, policy, clock, helpers.SeqRandom(0.0))
        self.assertEqual(calls, [1, 2])          # waits 1 s, then 2 s would end at 3 s > 2.5 s
        self.assertEqual(clock.sleeps, [1.0])


class ClientRetryTest(helpers.ServerCase, unittest.TestCase):
    def make_client(self, clock=None, rng=None, **policy):
        self.clock = clock or helpers.FakeClock()
        settings = dict(max_attempts=5, initial_delay_seconds=0.5, max_delay_seconds=30.0,
                        budget_seconds=120.0, max_retry_after_seconds=60.0)
        settings.update(policy)
        return ApiClient(Transport(), Pipeline(), RetryPolicy(**settings),
                         CircuitBreaker(failure_threshold=100, clock=self.clock), self.clock,
                         2.0, rng=rng or random.Random(1))

    def scripted(self, *answers):
        queue = list(answers)
        return self.serve(lambda seen: queue.pop(0) if len(queue) > 1 else queue[0])

    def get(self, client, server):
        return client.send(Context(stream="s"), Request("GET", server.url + "/things"))

    def test_retries_5xx_with_growing_jittered_delays(self):
        server = self.scripted(helpers.reply(500), helpers.reply(502), helpers.reply(503),
                               helpers.reply(200, {"data": []}))
        client = self.make_client(initial_delay_seconds=0.5)
        self.assertEqual(self.get(client, server).status, 200)
        self.assertEqual(len(server.requests), 4)
        self.assertEqual(len(self.clock.sleeps), 3)
        for base, delay in zip([0.5, 1.0, 2.0], self.clock.sleeps):
            self.assertTrue(base <= delay < base * 1.25, (base, delay))

    def test_each_retryable_status_is_retried(self):
        for status in (408, 429, 500, 502, 503, 504):
            with self.subTest(status=status):
                server = self.scripted(helpers.reply(status), helpers.reply(200, {}))
                client = self.make_client()
                self.assertEqual(self.get(client, server).status, 200)
                self.assertEqual(len(server.requests), 2)

    def test_retry_after_seconds_replaces_backoff(self):
        server = self.scripted(helpers.reply(429, headers={"Retry-After": "7"}), helpers.reply(200, {}))
        client = self.make_client()
        self.get(client, server)
        self.assertEqual(self.clock.sleeps, [7.0])

    def test_retry_after_http_date(self):
        clock = helpers.FakeClock()
        date = email.utils.formatdate(clock.time() + 20, usegmt=True)
        server = self.scripted(helpers.reply(503, headers={"Retry-After": date}), helpers.reply(200, {}))
        client = self.make_client(clock=clock)
        self.get(client, server)
        self.assertEqual(len(clock.sleeps), 1)
        self.assertAlmostEqual(clock.sleeps[0], 20.0, places=3)

    def test_retry_after_is_capped(self):
        server = self.scripted(helpers.reply(429, headers={"Retry-After": "500"}), helpers.reply(200, {}))
        client = self.make_client(max_retry_after_seconds=30)
        self.get(client, server)
        self.assertEqual(self.clock.sleeps, [30.0])

    def test_timeout_is_retried(self):
        calls = []

        def route(seen):
            calls.append(1)
            if len(calls) == 1:
                time.sleep(0.6)
            return helpers.reply(200, {"ok": 1})

        server = self.serve(route)
        client = self.make_client()
        client.timeout_seconds = 0.2
        self.assertEqual(self.get(client, server).json(), {"ok": 1})
        self.assertEqual(len(server.requests), 2)
        self.assertEqual(len(self.clock.sleeps), 1)

    def test_network_error_is_retried(self):
        def route(seen):
            if len(server.requests) == 1:
                seen.handler.close_connection = True
                return None  # hang up without any response
            return helpers.reply(200, {"ok": 2})

        server = self.serve(route)
        client = self.make_client()
        self.assertEqual(self.get(client, server).json(), {"ok": 2})
        self.assertEqual(len(server.requests), 2)
        self.assertEqual(len(self.clock.sleeps), 1)

    def test_client_errors_are_not_retried(self):
        expected = {400: errors.INVALID_REQUEST, 401: errors.AUTH_FAILED, 403: errors.AUTH_FAILED,
                    404: errors.INVALID_REQUEST, 422: errors.INVALID_REQUEST}
        for status, code in expected.items():
            with self.subTest(status=status):
                server = self.scripted(helpers.reply(status, {"error": "no"}), helpers.reply(200, {}))
                client = self.make_client()
                with self.assertRaises(ConnectorError) as caught:
                    self.get(client, server)
                self.assertEqual(caught.exception.code, code)
                self.assertEqual(caught.exception.status, status)
                self.assertFalse(caught.exception.retryable)
                self.assertEqual(len(server.requests), 1)
                self.assertEqual(self.clock.sleeps, [])

    def test_max_attempts_then_last_error(self):
        server = self.scripted(helpers.reply(503, {"error": "down"}, {"X-Request-Id": "req-9"}))
        client = self.make_client(max_attempts=3)
        with self.assertRaises(ConnectorError) as caught:
            self.get(client, server)
        self.assertEqual(len(server.requests), 3)
        self.assertEqual(caught.exception.code, errors.SERVER_ERROR)
        self.assertEqual(caught.exception.status, 503)
        self.assertEqual(caught.exception.request_id, "req-9")
        self.assertTrue(caught.exception.retryable)

    def test_429_after_retries_is_rate_limit(self):
        server = self.scripted(helpers.reply(429, headers={"Retry-After": "1"}))
        client = self.make_client(max_attempts=2)
        with self.assertRaises(ConnectorError) as caught:
            self.get(client, server)
        self.assertEqual(caught.exception.code, errors.RATE_LIMIT)
        self.assertEqual(len(server.requests), 2)

    def test_budget_seconds_limits_retries(self):
        server = self.scripted(helpers.reply(503))
        client = self.make_client(max_attempts=10, initial_delay_seconds=1.0, budget_seconds=4.0,
                                  rng=helpers.SeqRandom(0.0))
        with self.assertRaises(ConnectorError):
            self.get(client, server)
        # 1 s + 2 s fit in 4 s; the next 4 s wait would not.
        self.assertEqual(self.clock.sleeps, [1.0, 2.0])
        self.assertEqual(len(server.requests), 3)


if __name__ == "__main__":
    unittest.main()
