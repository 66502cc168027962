import unittest

import helpers
from connector_runtime import errors
from connector_runtime.errors import ConnectorError
from connector_runtime.pagination import get_path, make_extractor, next_link

RECORDS = [{"id": i, "name": "r%d" % i} for i in range(1, 8)]  # 7 records


def ids(run):
    return [r["id"] for r in run.records]


class PaginationCase(helpers.ServerCase, unittest.TestCase):
    def sync(self, route, pagination, page_size=3, selector="data", **stream_extra):
        server = self.serve(route)
        connector = self.connector(helpers.manifest([helpers.stream(
            pagination=pagination, record_selector=selector, **stream_extra)]))
        run = helpers.run_cli(connector, helpers.base_config(server.url, page_size=page_size))
        return server, run


class NoneStyleTest(PaginationCase):
    def test_single_request(self):
        server, run = self.sync(lambda s: helpers.reply(200, {"data": RECORDS, "next": "x"}),
                                {"type": "none", "size_param": "per_page"})
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual(len(server.requests), 1)
        self.assertEqual(server.requests[0].query, {"per_page": "3"})


class CursorStyleTest(PaginationCase):
    CURSOR = {"type": "cursor", "cursor_param": "cursor", "cursor_source": "body",
              "cursor_path": "meta.next", "has_more_path": "meta.has_more", "size_param": "limit"}

    def body_cursor_route(self, last_page_cursor="keep", has_more_on_last=False):
        def route(seen):
            start = int(seen.query.get("cursor", "0"))
            size = int(seen.query["limit"])
            page = RECORDS[start:start + size]
            end = start + size >= len(RECORDS)
            cursor = str(start + size)
            if end:
                cursor = {"keep": cursor, "null": None, "empty": ""}[last_page_cursor]
            return helpers.reply(200, {"data": page, "meta": {"next": cursor,
                                                              "has_more": has_more_on_last or not end}})
        return route

    def test_has_more_false_stops_even_with_a_cursor_on_the_last_page(self):
        server, run = self.sync(self.body_cursor_route("keep"), self.CURSOR)
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query.get("cursor") for r in server.requests], [None, "3", "6"])
        self.assertTrue(all(r.query["limit"] == "3" for r in server.requests))

    def test_null_or_empty_cursor_stops(self):
        for kind in ("null", "empty"):
            with self.subTest(kind=kind):
                spec = dict(self.CURSOR)
                del spec["has_more_path"]
                server, run = self.sync(self.body_cursor_route(kind), spec)
                self.assertEqual(ids(run), list(range(1, 8)))
                self.assertEqual(len(server.requests), 3)

    def test_repeated_cursor_stops(self):
        def route(seen):
            if "cursor" not in seen.query:
                return helpers.reply(200, {"data": RECORDS[:3], "meta": {"next": "A", "has_more": True}})
            # The server keeps answering cursor A with new records but the same cursor.
            return helpers.reply(200, {"data": RECORDS[3:6], "meta": {"next": "A", "has_more": True}})

        server, run = self.sync(route, self.CURSOR)
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(ids(run), [1, 2, 3, 4, 5, 6])
        self.assertEqual(len(server.requests), 2)

    def test_empty_page_stops(self):
        def route(seen):
            if seen.query.get("cursor") == "B":
                return helpers.reply(200, {"data": [], "meta": {"next": "C", "has_more": True}})
            return helpers.reply(200, {"data": RECORDS[:3], "meta": {"next": "B", "has_more": True}})

        server, run = self.sync(route, self.CURSOR)
        self.assertEqual(ids(run), [1, 2, 3])
        self.assertEqual(len(server.requests), 2)

    def test_last_record_cursor_like_stripe(self):
        def route(seen):
            after = seen.query.get("starting_after")
            start = 0 if after is None else [r["id"] for r in RECORDS].index(int(after)) + 1
            page = RECORDS[start:start + int(seen.query["limit"])]
            return helpers.reply(200, {"object": "list", "data": page,
                                       "has_more": start + len(page) < len(RECORDS)})

        server, run = self.sync(route, {"type": "cursor", "cursor_param": "starting_after",
                                        "cursor_source": "last_record", "cursor_path": "id",
                                        "has_more_path": "has_more", "size_param": "limit"})
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query.get("starting_after") for r in server.requests], [None, "3", "6"])


class OffsetStyleTest(PaginationCase):
    SPEC = {"type": "offset", "offset_param": "offset", "size_param": "limit", "total_path": "total"}

    def route(self, data, report_total=True):
        def route(seen):
            offset, limit = int(seen.query["offset"]), int(seen.query["limit"])
            body = {"data": data[offset:offset + limit]}
            if report_total:
                body["total"] = len(data)
            return helpers.reply(200, body)
        return route

    def test_short_page_stops(self):
        server, run = self.sync(self.route(RECORDS, report_total=False), self.SPEC)
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query["offset"] for r in server.requests], ["0", "3", "6"])

    def test_total_stops_on_a_full_last_page(self):
        server, run = self.sync(self.route(RECORDS[:6]), self.SPEC)
        self.assertEqual(ids(run), list(range(1, 7)))
        self.assertEqual(len(server.requests), 2)  # offset 6 >= total 6: no third request

    def test_empty_page_stops_without_total(self):
        server, run = self.sync(self.route(RECORDS[:6], report_total=False), self.SPEC)
        self.assertEqual(ids(run), list(range(1, 7)))
        self.assertEqual(len(server.requests), 3)  # the third page is empty


class PageStyleTest(PaginationCase):
    def route(self, data, total_pages=None, first=1):
        def route(seen):
            page, size = int(seen.query["page"]), int(seen.query["per_page"])
            start = (page - first) * size
            body = {"items": data[start:start + size]}
            if total_pages is not None:
                body["pages"] = total_pages
            return helpers.reply(200, body)
        return route

    def test_short_page_stops(self):
        server, run = self.sync(self.route(RECORDS), {"type": "page", "page_param": "page",
                                                      "size_param": "per_page"}, selector="items")
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query["page"] for r in server.requests], ["1", "2", "3"])

    def test_total_pages_stops_and_start_page(self):
        server, run = self.sync(self.route(RECORDS[:6], total_pages=2, first=0),
                                {"type": "page", "page_param": "page", "size_param": "per_page",
                                 "start_page": 0, "total_pages_path": "pages"}, selector="items")
        self.assertEqual(ids(run), list(range(1, 7)))
        self.assertEqual([r.query["page"] for r in server.requests], ["0", "1"])

    def test_empty_page_stops(self):
        server, run = self.sync(self.route(RECORDS[:6]), {"type": "page", "page_param": "page",
                                                          "size_param": "per_page"}, selector="items")
        self.assertEqual(ids(run), list(range(1, 7)))
        self.assertEqual(len(server.requests), 3)


class LinkHeaderStyleTest(PaginationCase):
    def test_follows_next_until_missing(self):
        def route(seen):
            page = int(seen.query.get("page", "1"))
            size = int(seen.query["per_page"])
            base = "http://" + seen.headers["host"]
            links = ['<%s/items?page=1&per_page=%d>; rel="first"' % (base, size)]
            if page * size < len(RECORDS):
                links.append('<%s/items?page=%d&per_page=%d>; rel="next"' % (base, page + 1, size))
            return helpers.reply(200, RECORDS[(page - 1) * size:page * size], {"Link": ", ".join(links)})

        server, run = self.sync(route, {"type": "link_header", "size_param": "per_page"}, selector="")
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query.get("page") for r in server.requests], [None, "2", "3"])

    def test_link_parsing(self):
        header = '<https://a/x?p=2>; rel="prev", <https://a/x?p=4>; rel="next last"'
        self.assertEqual(next_link([header]), "https://a/x?p=4")
        self.assertEqual(next_link(['<https://a/x?p=3>; rel=next']), "https://a/x?p=3")
        self.assertIsNone(next_link(['<https://a/x?p=1>; rel="first"']))
        self.assertIsNone(next_link([]))


class NextUrlStyleTest(PaginationCase):
    def test_absolute_and_relative_urls_until_null(self):
        def route(seen):
            page = int(seen.query.get("p", "1"))
            nxt = None
            if page == 1:
                nxt = "http://" + seen.headers["host"] + "/items?p=2"
            elif page == 2:
                nxt = "/items?p=3"
            return helpers.reply(200, {"results": RECORDS[(page - 1) * 3:page * 3], "links": {"next": nxt}})

        server, run = self.sync(route, {"type": "next_url", "next_url_path": "links.next"}, selector="results")
        self.assertEqual(ids(run), list(range(1, 8)))
        self.assertEqual([r.query.get("p") for r in server.requests], [None, "2", "3"])

    def test_missing_next_stops(self):
        server, run = self.sync(lambda s: helpers.reply(200, {"results": RECORDS[:3]}),
                                {"type": "next_url", "next_url_path": "links.next"}, selector="results")
        self.assertEqual(ids(run), [1, 2, 3])
        self.assertEqual(len(server.requests), 1)


class SelectorAndErrorsTest(PaginationCase):
    def test_get_path(self):
        body = {"a": {"b": [{"c": 1}, {"c": 2}]}}
        self.assertEqual(get_path(body, "a.b.1.c"), 2)
        self.assertEqual(get_path(body, ""), body)
        self.assertIsNone(get_path(body, "a.x.c"))
        self.assertIsNone(get_path(body, "a.b.9"))

    def test_extractor_needs_an_array(self):
        self.assertEqual(make_extractor("r.items")({"r": {"items": [1]}}), [1])
        self.assertEqual(make_extractor("")([{"id": 1}]), [{"id": 1}])
        with self.assertRaises(ConnectorError) as caught:
            make_extractor("data")({"data": {"id": 1}})
        self.assertEqual(caught.exception.code, errors.PARSING_ERROR)

    def test_missing_array_at_selector_fails_the_run(self):
        server, run = self.sync(lambda s: helpers.reply(200, {"items": []}), {"type": "none"})
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "PARSING_ERROR")
        self.assertEqual(run.error["stream"], "items")

    def test_unknown_style_is_unsupported(self):
        server, run = self.sync(lambda s: helpers.reply(200, {"data": []}), {"type": "graphql_relay"})
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "UNSUPPORTED")
        self.assertEqual(len(server.requests), 0)

    def test_page_repeating_itself_is_not_followed_forever(self):
        # A server that ignores the page parameter answers every page with the same full page.
        server, run = self.sync(lambda s: helpers.reply(200, {"data": RECORDS[:3]}),
                                {"type": "page", "page_param": "page", "size_param": "limit"})
        self.assertEqual(ids(run), [1, 2, 3, 1, 2, 3])
        self.assertEqual(len(server.requests), 2)


if __name__ == "__main__":
    unittest.main()
