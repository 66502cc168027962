import io
import json
import unittest

import helpers
from connector_runtime.breaker import CircuitBreaker
from connector_runtime.client import ApiClient
from connector_runtime.hooks import Context, Pipeline
from connector_runtime.http import Headers, Request, Transport
from connector_runtime.log import Logger
from connector_runtime.ratelimit import RateLimitHook, TokenBucket
from connector_runtime.retry import RetryPolicy


class TokenBucketTest(unittest.TestCase):
    def setUp(self):
        self.clock = helpers.FakeClock()

    def test_steady_rate(self):
        bucket = TokenBucket(rate=4, burst=1, clock=self.clock)
        waits = [bucket.acquire() for _ in range(5)]
        self.assertAlmostEqual(waits[0], 0.0)
        for wait in waits[1:]:
            self.assertAlmostEqual(wait, 0.25)
        self.assertAlmostEqual(sum(self.clock.sleeps), 1.0)

    def test_burst_then_rate(self):
        bucket = TokenBucket(rate=2, burst=3, clock=self.clock)
        waits = [bucket.acquire() for _ in range(4)]
        self.assertEqual(waits[:3], [0.0, 0.0, 0.0])
        self.assertAlmostEqual(waits[3], 0.5)

    def test_idle_time_refills(self):
        bucket = TokenBucket(rate=1, burst=1, clock=self.clock)
        bucket.acquire()
        self.clock.advance(1.0)
        self.assertEqual(bucket.acquire(), 0.0)
        self.assertAlmostEqual(bucket.acquire(), 1.0)

    def test_no_rate_means_no_wait(self):
        bucket = TokenBucket(rate=None, clock=self.clock)
        self.assertEqual([bucket.acquire() for _ in range(10)], [0.0] * 10)

    def test_x_ratelimit_reset_epoch_blocks_until_reset(self):
        bucket = TokenBucket(rate=None, clock=self.clock)
        bucket.adapt(Headers({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(self.clock.time()) + 5)}))
        self.assertAlmostEqual(bucket.acquire(), 5.0)
        self.assertEqual(bucket.acquire(), 0.0)  # only until the reset

    def test_ratelimit_reset_is_seconds_from_now(self):
        bucket = TokenBucket(rate=100, clock=self.clock)
        bucket.adapt(Headers({"RateLimit-Remaining": "0", "RateLimit-Reset": "3"}))
        self.assertAlmostEqual(bucket.acquire(), 3.0)

    def test_remaining_above_zero_changes_nothing(self):
        bucket = TokenBucket(rate=None, clock=self.clock)
        bucket.adapt(Headers({"X-RateLimit-Remaining": "7", "X-RateLimit-Reset": str(int(self.clock.time()) + 50)}))
        self.assertEqual(bucket.acquire(), 0.0)


class RateLimitInClientTest(helpers.ServerCase, unittest.TestCase):
    def test_zero_remaining_header_delays_the_next_request_and_is_logged(self):
        clock = helpers.FakeClock()
        reset_at = int(clock.time()) + 4

        def route(seen):
            if len(server.requests) == 1:
                return helpers.reply(200, {"page": 1}, {"X-RateLimit-Remaining": "0",
                                                        "X-RateLimit-Reset": str(reset_at)})
            return helpers.reply(200, {"page": 2}, {"X-RateLimit-Remaining": "99"})

        server = self.serve(route)
        err = io.StringIO()
        pipeline = Pipeline()
        bucket = TokenBucket(rate=None, clock=clock)
        pipeline.add(RateLimitHook(bucket, Logger(err)), 90)
        client = ApiClient(Transport(), pipeline, RetryPolicy(), CircuitBreaker(clock=clock), clock, 2.0)
        client.send(Context(stream="s"), Request("GET", server.url + "/a"))
        self.assertEqual(clock.sleeps, [])
        sent_at = clock.time()
        client.send(Context(stream="s"), Request("GET", server.url + "/a"))
        self.assertGreaterEqual(sent_at + sum(clock.sleeps), reset_at)
        lines = [json.loads(line) for line in err.getvalue().splitlines()]
        self.assertEqual([line["event"] for line in lines], ["rate_limit_wait"])
        self.assertAlmostEqual(lines[0]["delay_seconds"], 4.0)

    def test_retries_also_take_a_token(self):
        answers = [helpers.reply(503), helpers.reply(503), helpers.reply(200, {})]
        server = self.serve(lambda seen: answers.pop(0))
        clock = helpers.FakeClock()
        bucket = TokenBucket(rate=1, burst=1, clock=clock)
        pipeline = Pipeline()
        pipeline.add(RateLimitHook(bucket), 90)
        client = ApiClient(Transport(), pipeline, RetryPolicy(initial_delay_seconds=0.1, max_delay_seconds=0.1),
                           CircuitBreaker(clock=clock), clock, 2.0, rng=helpers.SeqRandom(0.0))
        client.send(Context(), Request("GET", server.url + "/a"))
        self.assertEqual(len(server.requests), 3)
        # Each retry waits 0.1 s of backoff, then 0.9 s more for the bucket (1 request/s).
        self.assertEqual(len(clock.sleeps), 4)
        self.assertAlmostEqual(sum(clock.sleeps), 2.0)


if __name__ == "__main__":
    unittest.main()
