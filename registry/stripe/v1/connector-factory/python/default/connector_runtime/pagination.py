"""Finding the records in a response, and the pagination styles of contract section 6.

A paginator answers two questions:
  first_params()     extra query parameters for the first request
  next_request(page) what to fetch next: a dict of query parameters to set on the same
                     request, a URL string to fetch as given, or None to stop.
The sync loop stops on an empty page before asking, so no style has to handle that itself.
"""
from __future__ import annotations

import re
from urllib.parse import urljoin

from . import errors
from .errors import ConnectorError


def get_path(obj, path):
    """Follow a dotted path ("data.items", "meta.0.next") through dicts and lists; None if absent."""
    if path is None or path == "":
        return obj
    for part in str(path).split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            index = int(part)
            obj = obj[index] if -len(obj) <= index < len(obj) else None
        else:
            return None
        if obj is None:
            return None
    return obj


def make_extractor(selector):
    """The default record extractor for a dotted record_selector ("" = the body is the array).

    A hooks file may define extract_records(stream, body) to replace it.
    """
    def extract(body):
        records = get_path(body, selector)
        if not isinstance(records, list):
            raise ConnectorError(
                errors.PARSING_ERROR,
                "no array of records at record_selector %r (found %s)"
                % (selector, type(records).__name__ if records is not None else "nothing"))
        return records
    return extract


def _is_false(value):
    return value is False or value == 0 or (isinstance(value, str) and value.lower() in ("false", "0", "no"))


class Page:
    def __init__(self, records, body, response):
        self.records = records
        self.body = body
        self.response = response


class NoPagination:
    def __init__(self, spec, page_size):
        self.spec = spec
        self.page_size = page_size
        self.size_param = spec.get("size_param")

    def first_params(self):
        if self.size_param and self.page_size:
            return {self.size_param: self.page_size}
        return {}

    def next_request(self, page):
        return None


class CursorPagination(NoPagination):
    def __init__(self, spec, page_size):
        super().__init__(spec, page_size)
        self.cursor_param = spec.get("cursor_param") or "cursor"
        self.cursor_source = spec.get("cursor_source") or "body"
        if self.cursor_source not in ("body", "last_record"):
            raise ConnectorError(errors.UNSUPPORTED, "cursor_source %r is not supported" % self.cursor_source)
        self.cursor_path = spec.get("cursor_path") or ("id" if self.cursor_source == "last_record" else "next_cursor")
        self.has_more_path = spec.get("has_more_path")
        self.seen = set()

    def next_request(self, page):
        if self.has_more_path:
            has_more = get_path(page.body, self.has_more_path)
            # Checked first: a last page may still carry a cursor.
            if has_more is not None and _is_false(has_more):
                return None
        source = page.records[-1] if self.cursor_source == "last_record" else page.body
        cursor = get_path(source, self.cursor_path)
        if cursor is None or cursor == "" or isinstance(cursor, (dict, list)):
            return None
        if str(cursor) in self.seen:
            return None  # the server sent a cursor we already used: stop instead of looping
        self.seen.add(str(cursor))
        return {self.cursor_param: cursor}


class OffsetPagination(NoPagination):
    def __init__(self, spec, page_size):
        super().__init__(spec, page_size)
        self.offset_param = spec.get("offset_param") or "offset"
        self.total_path = spec.get("total_path")
        self.offset = int(spec.get("start_offset", 0))

    def first_params(self):
        params = super().first_params()
        params[self.offset_param] = self.offset
        return params

    def next_request(self, page):
        count = len(page.records)
        self.offset += count
        if self.page_size and count < self.page_size:
            return None
        if self.total_path:
            total = get_path(page.body, self.total_path)
            if isinstance(total, (int, float)) and not isinstance(total, bool) and self.offset >= total:
                return None
        return {self.offset_param: self.offset}


class PagePagination(NoPagination):
    def __init__(self, spec, page_size):
        super().__init__(spec, page_size)
        self.page_param = spec.get("page_param") or "page"
        self.total_pages_path = spec.get("total_pages_path")
        self.start_page = int(spec.get("start_page", 1))
        self.page = self.start_page

    def first_params(self):
        params = super().first_params()
        params[self.page_param] = self.page
        return params

    def next_request(self, page):
        if self.page_size and len(page.records) < self.page_size:
            return None
        self.page += 1
        if self.total_pages_path:
            total = get_path(page.body, self.total_pages_path)
            # Pages fetched so far = self.page - start_page; with the default start_page 1
            # this is the contract's "page > total pages".
            if isinstance(total, (int, float)) and not isinstance(total, bool) \
                    and self.page - self.start_page >= total:
                return None
        return {self.page_param: self.page}


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')


def next_link(header_values):
    """The URL of rel="next" in Link header values, or None."""
    for value in header_values:
        for match in _LINK.finditer(value):
            url, params = match.group(1), match.group(2)
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key.strip().lower() == "rel" and "next" in val.strip().strip('"').lower().split():
                    return url
    return None


class LinkHeaderPagination(NoPagination):
    def __init__(self, spec, page_size):
        super().__init__(spec, page_size)
        self.seen = set()

    def next_request(self, page):
        url = next_link(page.response.headers.get_all("Link"))
        if not url:
            return None
        url = urljoin(page.response.url, url)  # absolute URLs stay as given
        if url in self.seen:
            return None
        self.seen.add(url)
        return url


class NextUrlPagination(NoPagination):
    def __init__(self, spec, page_size, base_url=""):
        super().__init__(spec, page_size)
        self.next_url_path = spec.get("next_url_path") or "next"
        self.base_url = base_url
        self.seen = set()

    def next_request(self, page):
        url = get_path(page.body, self.next_url_path)
        if not isinstance(url, str) or not url:
            return None
        if not url.startswith(("http://", "https://")):
            url = self.base_url.rstrip("/") + "/" + url.lstrip("/")
        if url in self.seen:
            return None
        self.seen.add(url)
        return url


STYLES = {
    "none": NoPagination,
    "cursor": CursorPagination,
    "offset": OffsetPagination,
    "page": PagePagination,
    "link_header": LinkHeaderPagination,
    "next_url": NextUrlPagination,
}


def make_paginator(spec, page_size, base_url=""):
    kind = (spec or {}).get("type", "none")
    cls = STYLES.get(kind)
    if cls is None:
        raise ConnectorError(errors.UNSUPPORTED, "pagination type %r is not supported" % (kind,))
    if cls is NextUrlPagination:
        return cls(spec, page_size, base_url)
    return cls(spec or {}, page_size)
