import unittest

import helpers
from connector_runtime import errors
from connector_runtime.errors import ConnectorError
from connector_runtime.state import Incremental, State, parse_state

RECORDS = [
    {"id": 1, "updated_at": "2024-01-03T00:00:00Z", "created": 1704240000},
    {"id": 2, "updated_at": "2024-01-01T00:00:00Z", "created": 1704067200},
    {"id": 3, "updated_at": "2024-01-05T10:00:00.5+00:00", "created": 1704448800},
    {"id": 4, "updated_at": "2024-01-02T00:00:00Z", "created": 1704153600},
    {"id": 5, "updated_at": "2024-01-04T00:00:00Z", "created": 1704326400},
]


class StateUnitTest(unittest.TestCase):
    def test_parse_value_or_whole_message(self):
        value = {"bookmarks": {"s": {"updated_at": "x"}}}
        self.assertEqual(parse_state(value), value)
        self.assertEqual(parse_state({"type": "STATE", "value": value}), value)
        self.assertEqual(parse_state({}), {"bookmarks": {}})

    def test_bad_state_is_validation_error(self):
        for bad in ([], {"bookmarks": []}, {"bookmarks": {"s": 3}}, {"type": "STATE", "value": 1}):
            with self.assertRaises(ConnectorError) as caught:
                parse_state(bad)
            self.assertEqual(caught.exception.code, errors.VALIDATION_ERROR)

    def test_bookmark_is_greatest_value_emitted_whatever_the_order(self):
        inc = Incremental({"cursor_field": "updated_at"})
        for record in RECORDS:
            self.assertTrue(inc.accept(record))
            inc.observe(record)
        self.assertEqual(inc.bookmark, "2024-01-05T10:00:00.5+00:00")

    def test_filter_drops_values_at_or_below_the_bookmark(self):
        inc = Incremental({"cursor_field": "updated_at", "request_param": "since"}, bookmark="2024-01-03T00:00:00Z")
        accepted = [r["id"] for r in RECORDS if inc.accept(r)]
        self.assertEqual(accepted, [3, 5])
        self.assertTrue(inc.accept({"id": 9}))  # no cursor value: cannot be filtered
        # Values with other offsets compare as instants, not as text.
        self.assertTrue(inc.accept({"updated_at": "2024-01-03T01:30:00+01:00"}))  # 00:30 UTC
        self.assertFalse(inc.accept({"updated_at": "2024-01-03T00:30:00+01:00"}))
        self.assertEqual(inc.request_value(), "2024-01-03T00:00:00Z")

    def test_unix_format_and_start_date(self):
        inc = Incremental({"cursor_field": "created", "request_param": "created[gte]", "format": "unix"},
                          start_date="2024-01-03T00:00:00Z")
        self.assertEqual(inc.request_value(), 1704240000)
        self.assertEqual([r["id"] for r in RECORDS if inc.accept(r)], [3, 5])
        self.assertIsNone(inc.bookmark)  # nothing emitted yet: no bookmark invented

    def test_state_bookmark_wins_over_start_date(self):
        inc = Incremental({"cursor_field": "created", "format": "unix"}, bookmark=1704326400,
                          start_date="2020-01-01T00:00:00Z")
        self.assertEqual(inc.request_value(), 1704326400)
        self.assertEqual([r["id"] for r in RECORDS if inc.accept(r)], [3])

    def test_iso_request_value_from_a_numeric_bookmark(self):
        inc = Incremental({"cursor_field": "t", "format": "iso8601"}, bookmark=1704240000)
        self.assertEqual(inc.request_value(), "2024-01-03T00:00:00Z")

    def test_state_keeps_other_streams(self):
        state = State({"bookmarks": {"other": {"k": 1}}, "extra": True})
        state.set_bookmark("s", "updated_at", "v")
        self.assertEqual(state.to_value(), {"bookmarks": {"other": {"k": 1}, "s": {"updated_at": "v"}},
                                            "extra": True})


class IncrementalSyncTest(helpers.ServerCase, unittest.TestCase):
    def setUp(self):
        self.data = list(RECORDS)

        def route(seen):
            since = seen.query.get("since")
            rows = [r for r in self.data if since is None or r["updated_at"] >= since]
            offset = int(seen.query.get("offset", "0"))
            return helpers.reply(200, {"data": rows[offset:offset + 2]})

        self.server = self.serve(route)
        self.connector_dir = self.connector(helpers.manifest([helpers.stream(
            pagination={"type": "offset", "offset_param": "offset", "size_param": "limit"},
            incremental={"cursor_field": "updated_at", "request_param": "since", "format": "iso8601"})]))

    def sync(self, state=None):
        return helpers.run_cli(self.connector_dir, helpers.base_config(self.server.url, page_size=2), state=state)

    def test_state_per_stream_and_resume_emits_nothing_twice(self):
        first = self.sync()
        self.assertEqual(first.code, 0, first.err_text)
        self.assertEqual(sorted(r["id"] for r in first.records), [1, 2, 3, 4, 5])
        states = first.of("STATE")
        # One when the stream is complete, one at the end of the run; none mid-stream.
        self.assertEqual(len(states), 2)
        last_record = max(i for i, m in enumerate(first.messages) if m["type"] == "RECORD")
        first_state = min(i for i, m in enumerate(first.messages) if m["type"] == "STATE")
        self.assertGreater(first_state, last_record)
        final = states[-1]["value"]
        self.assertEqual(final, {"bookmarks": {"items": {"updated_at": "2024-01-05T10:00:00.5+00:00"}}})
        self.assertEqual(first.messages[-1]["type"], "STATE")
        schema = first.of("SCHEMA")[0]
        self.assertEqual(schema["bookmark_properties"], ["updated_at"])

        second = self.sync(state=states[-1])  # a whole STATE message works too
        self.assertEqual(second.code, 0, second.err_text)
        self.assertEqual(second.records, [])
        self.assertEqual(self.server.requests[-1].query["since"], "2024-01-05T10:00:00.5+00:00")
        self.assertEqual(second.of("STATE")[-1]["value"], final)

        self.data.append({"id": 6, "updated_at": "2024-02-01T00:00:00Z"})
        third = self.sync(state=final)
        self.assertEqual([r["id"] for r in third.records], [6])
        self.assertEqual(third.of("STATE")[-1]["value"]["bookmarks"]["items"]["updated_at"], "2024-02-01T00:00:00Z")

    def test_start_date_is_sent_and_applied(self):
        run = helpers.run_cli(self.connector_dir, helpers.base_config(
            self.server.url, page_size=2, start_date="2024-01-02T00:00:00Z"))
        self.assertEqual(self.server.requests[0].query["since"], "2024-01-02T00:00:00Z")
        self.assertEqual(sorted(r["id"] for r in run.records), [1, 3, 5])

    def test_invalid_state_file_fails(self):
        run = self.sync(state={"bookmarks": ["nope"]})
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "VALIDATION_ERROR")
        self.assertEqual(self.server.requests, [])


if __name__ == "__main__":
    unittest.main()
