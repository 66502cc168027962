import unittest

import helpers
from connector_runtime.breaker import CircuitBreaker
from connector_runtime.client import ApiClient
from connector_runtime.hooks import Context, Pipeline
from connector_runtime.http import Request, Transport
from connector_runtime.retry import RetryPolicy
from connector_runtime.auth import BearerAuth


class PipelineOrderTest(unittest.TestCase):
    def test_lower_priority_first_and_ties_keep_registration_order(self):
        pipeline = Pipeline()
        calls = []
        for label, priority in [("a", 50), ("b", 10), ("c", 50), ("d", 90), ("e", 10), ("f", 50)]:
            pipeline.register("before_request", lambda ctx, req, label=label: calls.append(label), priority)
        pipeline.before_request(Context(), Request("GET", "http://x"))
        self.assertEqual(calls, ["b", "e", "a", "c", "f", "d"])

    def test_each_point_has_its_own_order(self):
        pipeline = Pipeline()
        calls = []
        pipeline.register("on_retry", lambda ctx, n, d: calls.append(("late", n, d)), 70)
        pipeline.register("on_retry", lambda ctx, n, d: calls.append(("early", n, d)), 20)
        pipeline.register("on_error", lambda ctx, e: calls.append(("error", e)), 1)
        pipeline.on_retry(Context(), 2, 0.5)
        self.assertEqual(calls, [("early", 2, 0.5), ("late", 2, 0.5)])

    def test_returned_value_replaces_request_and_none_keeps_it(self):
        pipeline = Pipeline()
        replacement = Request("GET", "http://replaced")
        pipeline.register("before_request", lambda ctx, req: None, 1)
        pipeline.register("before_request", lambda ctx, req: replacement, 2)
        pipeline.register("before_request", lambda ctx, req: req.headers.update({"X-Seen": req.url}), 3)
        result = pipeline.before_request(Context(), Request("GET", "http://original"))
        self.assertIs(result, replacement)
        self.assertEqual(result.headers["X-Seen"], "http://replaced")

    def test_add_registers_methods_named_after_points(self):
        class Hook:
            def __init__(self):
                self.seen = []

            def before_request(self, ctx, request):
                self.seen.append("before")

            def on_error(self, ctx, error):
                self.seen.append("error")

        hook = Hook()
        pipeline = Pipeline()
        pipeline.add(hook, 5)
        self.assertEqual(len(pipeline.hooks("before_request")), 1)
        self.assertEqual(len(pipeline.hooks("on_error")), 1)
        self.assertEqual(pipeline.hooks("after_response"), [])
        pipeline.on_error(Context(), ValueError())
        self.assertEqual(hook.seen, ["error"])

    def test_unknown_point_is_rejected(self):
        with self.assertRaises(ValueError):
            Pipeline().register("before_everything", lambda *a: None)


class PipelineInClientTest(helpers.ServerCase, unittest.TestCase):
    def test_hooks_run_at_all_four_points_in_priority_order_around_auth(self):
        answers = [helpers.reply(503, {"error": "busy"}), helpers.reply(200, {"ok": True})]
        server = self.serve(lambda seen: answers.pop(0))
        pipeline = Pipeline()
        events = []
        pipeline.add(BearerAuth("tok-12345"), 10)
        pipeline.register("before_request",
                          lambda ctx, req: events.append(("before@5", "Authorization" in req.headers)), 5)
        pipeline.register("before_request",
                          lambda ctx, req: events.append(("before@20", "Authorization" in req.headers)), 20)
        pipeline.register("after_response", lambda ctx, resp: events.append(("after", resp.status)))
        pipeline.register("on_error", lambda ctx, err: events.append(("error", err.status)))
        pipeline.register("on_retry", lambda ctx, n, delay: events.append(("retry", n)))
        clock = helpers.FakeClock()
        client = ApiClient(Transport(), pipeline, RetryPolicy(initial_delay_seconds=0.1),
                           CircuitBreaker(clock=clock), clock, 2.0, rng=helpers.SeqRandom(0.0))
        response = client.send(Context(stream="s"), Request("GET", server.url + "/x"))
        self.assertEqual(response.status, 200)
        self.assertEqual(events, [
            ("before@5", False), ("before@20", True), ("after", 503), ("error", 503), ("retry", 1),
            ("before@5", False), ("before@20", True), ("after", 200),
        ])
        self.assertEqual(server.requests[0].headers["authorization"], "Bearer tok-12345")


if __name__ == "__main__":
    unittest.main()
