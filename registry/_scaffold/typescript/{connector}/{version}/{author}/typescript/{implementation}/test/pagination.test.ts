import assert from "node:assert/strict";
import { type TestContext, describe, test } from "node:test";
import * as errors from "../src/runtime/errors.js";
import { ConnectorError } from "../src/runtime/errors.js";
import { getPath, makeExtractor, nextLink } from "../src/runtime/pagination.js";
import { Env, type Json, type Route, type Run, type Seen, baseConfig, manifest, reply, runCli, stream } from "./helpers.js";

const RECORDS = [1, 2, 3, 4, 5, 6, 7].map((i) => ({ id: i, name: `r${i}` }));

const ids = (run: Run): unknown[] => run.records.map((r) => r.id);
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

async function sync(t: TestContext, route: Route, pagination: Json, pageSize = 3, selector = "data", extra: Json = {}) {
  const env = new Env(t);
  const server = await env.serve(route);
  const connector = env.connector(manifest([stream("items", "/items", { pagination, record_selector: selector, ...extra })]));
  const run = await runCli(connector, { config: baseConfig(server.url, { page_size: pageSize }) });
  return { server, run };
}

describe("none", () => {
  test("a single request", async (t) => {
    const { server, run } = await sync(t, () => reply(200, { data: RECORDS, next: "x" }), { type: "none", size_param: "per_page" });
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(ids(run), range(1, 8));
    assert.equal(server.requests.length, 1);
    assert.deepEqual(server.requests[0].query, { per_page: "3" });
  });
});

describe("cursor", () => {
  const CURSOR = {
    type: "cursor", cursor_param: "cursor", cursor_source: "body", cursor_path: "meta.next",
    has_more_path: "meta.has_more", size_param: "limit",
  };

  function bodyCursorRoute(lastPageCursor: "keep" | "null" | "empty" = "keep", hasMoreOnLast = false): Route {
    return (seen: Seen) => {
      const start = Number(seen.query.cursor ?? "0");
      const size = Number(seen.query.limit);
      const page = RECORDS.slice(start, start + size);
      const end = start + size >= RECORDS.length;
      let cursor: string | null = String(start + size);
      if (end) cursor = { keep: cursor, null: null, empty: "" }[lastPageCursor];
      return reply(200, { data: page, meta: { next: cursor, has_more: hasMoreOnLast || !end } });
    };
  }

  test("has_more false stops even with a cursor on the last page", async (t) => {
    const { server, run } = await sync(t, bodyCursorRoute("keep"), CURSOR);
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.cursor), [undefined, "3", "6"]);
    assert.ok(server.requests.every((r) => r.query.limit === "3"));
  });

  for (const kind of ["null", "empty"] as const) {
    test(`a ${kind} cursor stops`, async (t) => {
      const { has_more_path: _dropped, ...spec } = CURSOR;
      const { server, run } = await sync(t, bodyCursorRoute(kind), spec);
      assert.deepEqual(ids(run), range(1, 8));
      assert.equal(server.requests.length, 3);
    });
  }

  test("a repeated cursor stops", async (t) => {
    const route: Route = (seen) => {
      if (!("cursor" in seen.query)) return reply(200, { data: RECORDS.slice(0, 3), meta: { next: "A", has_more: true } });
      // The server keeps answering cursor A with new records but the same cursor.
      return reply(200, { data: RECORDS.slice(3, 6), meta: { next: "A", has_more: true } });
    };
    const { server, run } = await sync(t, route, CURSOR);
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(ids(run), [1, 2, 3, 4, 5, 6]);
    assert.equal(server.requests.length, 2);
  });

  test("an empty page stops", async (t) => {
    const route: Route = (seen) => {
      if (seen.query.cursor === "B") return reply(200, { data: [], meta: { next: "C", has_more: true } });
      return reply(200, { data: RECORDS.slice(0, 3), meta: { next: "B", has_more: true } });
    };
    const { server, run } = await sync(t, route, CURSOR);
    assert.deepEqual(ids(run), [1, 2, 3]);
    assert.equal(server.requests.length, 2);
  });

  test("a last_record cursor, like Stripe's", async (t) => {
    const route: Route = (seen) => {
      const after = seen.query.starting_after;
      const start = after === undefined ? 0 : RECORDS.findIndex((r) => r.id === Number(after)) + 1;
      const page = RECORDS.slice(start, start + Number(seen.query.limit));
      return reply(200, { object: "list", data: page, has_more: start + page.length < RECORDS.length });
    };
    const { server, run } = await sync(t, route, {
      type: "cursor", cursor_param: "starting_after", cursor_source: "last_record", cursor_path: "id",
      has_more_path: "has_more", size_param: "limit",
    });
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.starting_after), [undefined, "3", "6"]);
  });

  test("has_more given as a string 'false' stops", async (t) => {
    const route: Route = () => reply(200, { data: RECORDS.slice(0, 3), meta: { next: "N", has_more: "false" } });
    const { server } = await sync(t, route, CURSOR);
    assert.equal(server.requests.length, 1);
  });

  test("an unknown cursor_source is UNSUPPORTED", async (t) => {
    const { server, run } = await sync(t, () => reply(200, { data: [] }), { type: "cursor", cursor_source: "header" });
    assert.equal(run.error?.code, "UNSUPPORTED");
    assert.equal(server.requests.length, 0);
  });
});

describe("offset", () => {
  const SPEC = { type: "offset", offset_param: "offset", size_param: "limit", total_path: "total" };

  function route(data: Json[], reportTotal = true): Route {
    return (seen) => {
      const offset = Number(seen.query.offset);
      const limit = Number(seen.query.limit);
      const body: Json = { data: data.slice(offset, offset + limit) };
      if (reportTotal) body.total = data.length;
      return reply(200, body);
    };
  }

  test("a short page stops", async (t) => {
    const { server, run } = await sync(t, route(RECORDS, false), SPEC);
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.offset), ["0", "3", "6"]);
  });

  test("total stops on a full last page", async (t) => {
    const { server, run } = await sync(t, route(RECORDS.slice(0, 6)), SPEC);
    assert.deepEqual(ids(run), range(1, 7));
    assert.equal(server.requests.length, 2); // offset 6 >= total 6: no third request
  });

  test("an empty page stops without a total", async (t) => {
    const { server, run } = await sync(t, route(RECORDS.slice(0, 6), false), SPEC);
    assert.deepEqual(ids(run), range(1, 7));
    assert.equal(server.requests.length, 3); // the third page is empty
  });
});

describe("page", () => {
  function route(data: Json[], totalPages: number | null = null, first = 1): Route {
    return (seen) => {
      const page = Number(seen.query.page);
      const size = Number(seen.query.per_page);
      const start = (page - first) * size;
      const body: Json = { items: data.slice(start, start + size) };
      if (totalPages !== null) body.pages = totalPages;
      return reply(200, body);
    };
  }

  test("a short page stops", async (t) => {
    const { server, run } = await sync(t, route(RECORDS), { type: "page", page_param: "page", size_param: "per_page" }, 3, "items");
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.page), ["1", "2", "3"]);
  });

  test("total pages stops, and start_page", async (t) => {
    const { server, run } = await sync(t, route(RECORDS.slice(0, 6), 2, 0),
      { type: "page", page_param: "page", size_param: "per_page", start_page: 0, total_pages_path: "pages" }, 3, "items");
    assert.deepEqual(ids(run), range(1, 7));
    assert.deepEqual(server.requests.map((r) => r.query.page), ["0", "1"]);
  });

  test("an empty page stops", async (t) => {
    const { server, run } = await sync(t, route(RECORDS.slice(0, 6)), { type: "page", page_param: "page", size_param: "per_page" }, 3, "items");
    assert.deepEqual(ids(run), range(1, 7));
    assert.equal(server.requests.length, 3);
  });
});

describe("link_header", () => {
  test("follows next until it is missing", async (t) => {
    const route: Route = (seen) => {
      const page = Number(seen.query.page ?? "1");
      const size = Number(seen.query.per_page);
      const base = "http://" + seen.headers["host"];
      const links = [`<${base}/items?page=1&per_page=${size}>; rel="first"`];
      if (page * size < RECORDS.length) links.push(`<${base}/items?page=${page + 1}&per_page=${size}>; rel="next"`);
      return reply(200, RECORDS.slice((page - 1) * size, page * size), { Link: links.join(", ") });
    };
    const { server, run } = await sync(t, route, { type: "link_header", size_param: "per_page" }, 3, "");
    assert.equal(run.code, 0, run.errText);
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.page), [undefined, "2", "3"]);
  });

  test("a relative next link is resolved against the request URL", async (t) => {
    const route: Route = (seen) => {
      const page = Number(seen.query.page ?? "1");
      const headers: Record<string, string> = page < 3 ? { Link: `<items?page=${page + 1}>; rel="next"` } : {};
      return reply(200, RECORDS.slice((page - 1) * 3, page * 3), headers);
    };
    const { server, run } = await sync(t, route, { type: "link_header" }, 3, "", { path: "/v2/items" });
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.path), ["/v2/items", "/v2/items", "/v2/items"]);
  });

  test("Link header parsing", () => {
    const header = '<https://a/x?p=2>; rel="prev", <https://a/x?p=4>; rel="next last"';
    assert.equal(nextLink([header]), "https://a/x?p=4");
    assert.equal(nextLink(["<https://a/x?p=3>; rel=next"]), "https://a/x?p=3");
    assert.equal(nextLink(['<https://a/x?p=1>; rel="first"']), null);
    assert.equal(nextLink([]), null);
  });
});

describe("next_url", () => {
  test("absolute and relative URLs until null", async (t) => {
    const route: Route = (seen) => {
      const page = Number(seen.query.p ?? "1");
      let next: string | null = null;
      if (page === 1) next = "http://" + seen.headers["host"] + "/items?p=2";
      else if (page === 2) next = "/items?p=3";
      return reply(200, { results: RECORDS.slice((page - 1) * 3, page * 3), links: { next } });
    };
    const { server, run } = await sync(t, route, { type: "next_url", next_url_path: "links.next" }, 3, "results");
    assert.deepEqual(ids(run), range(1, 8));
    assert.deepEqual(server.requests.map((r) => r.query.p), [undefined, "2", "3"]);
  });

  test("a missing next stops", async (t) => {
    const { server, run } = await sync(t, () => reply(200, { results: RECORDS.slice(0, 3) }),
      { type: "next_url", next_url_path: "links.next" }, 3, "results");
    assert.deepEqual(ids(run), [1, 2, 3]);
    assert.equal(server.requests.length, 1);
  });
});

describe("selector and errors", () => {
  test("getPath", () => {
    const body = { a: { b: [{ c: 1 }, { c: 2 }] } };
    assert.equal(getPath(body, "a.b.1.c"), 2);
    assert.equal(getPath(body, "a.b.-1.c"), 2);
    assert.equal(getPath(body, ""), body);
    assert.equal(getPath(body, "a.x.c"), null);
    assert.equal(getPath(body, "a.b.9"), null);
  });

  test("the extractor needs an array", () => {
    assert.deepEqual(makeExtractor("r.items")({ r: { items: [1] } }), [1]);
    assert.deepEqual(makeExtractor("")([{ id: 1 }]), [{ id: 1 }]);
    assert.throws(() => makeExtractor("data")({ data: { id: 1 } }), (error: ConnectorError) =>
      error.code === errors.PARSING_ERROR && error.message === "no array of records at record_selector 'data' (found dict)");
  });

  test("a missing array at the selector fails the run", async (t) => {
    const { run } = await sync(t, () => reply(200, { items: [] }), { type: "none" });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "PARSING_ERROR");
    assert.equal(run.error?.stream, "items");
  });

  test("a record that is not an object fails the run", async (t) => {
    const { run } = await sync(t, () => reply(200, { data: [1, 2] }), { type: "none" });
    assert.equal(run.error?.code, "PARSING_ERROR");
    assert.equal(run.error?.message, "a record is a int, not an object");
  });

  test("an unknown style is UNSUPPORTED", async (t) => {
    const { server, run } = await sync(t, () => reply(200, { data: [] }), { type: "graphql_relay" });
    assert.equal(run.code, 1);
    assert.equal(run.error?.code, "UNSUPPORTED");
    assert.equal(server.requests.length, 0);
  });

  test("a page repeating itself is not followed forever", async (t) => {
    // A server that ignores the page parameter answers every page with the same full page.
    const { server, run } = await sync(t, () => reply(200, { data: RECORDS.slice(0, 3) }),
      { type: "page", page_param: "page", size_param: "limit" });
    assert.deepEqual(ids(run), [1, 2, 3, 1, 2, 3]);
    assert.equal(server.requests.length, 2);
  });
});
