"""Running streams: build the client once, then fetch each stream page by page."""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
from urllib.parse import quote

from . import errors
from .auth import build_auth
from .breaker import CircuitBreaker
from .client import ApiClient
from .clock import format_rfc3339
from .errors import ConnectorError
from .hooks import PRIORITY_AUTH, PRIORITY_LOGGING, PRIORITY_RATE_LIMIT, Context, Pipeline
from .http import Request, Transport
from .log import LoggingHook
from .pagination import Page, make_extractor, make_paginator
from .ratelimit import RateLimitHook, TokenBucket
from .state import Incremental

USER_AGENT = "connector-factory-runtime/0.1"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CustomHooks:
    """What a manifest's `hooks` file contributed."""

    def __init__(self, module=None):
        self.module = module
        self.transform_record = getattr(module, "transform_record", None)
        self.extract_records = getattr(module, "extract_records", None)


def load_hooks_file(manifest, pipeline):
    """Import the manifest's hooks file and call its register(pipeline)."""
    if not manifest.hooks:
        return CustomHooks()
    path = os.path.join(manifest.dir, manifest.hooks)
    if not os.path.isfile(path):
        raise ConnectorError(errors.VALIDATION_ERROR, "hooks file %s not found" % manifest.hooks)
    spec = importlib.util.spec_from_file_location("connector_hooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    register = getattr(module, "register", None)
    if callable(register):
        register(pipeline)
    return CustomHooks(module)


class Runtime:
    """The wired-up parts shared by all streams of one run."""

    def __init__(self, manifest, settings, logger, redactor, clock, transport=None, rng=None):
        self.manifest = manifest
        self.settings = settings
        self.logger = logger
        self.clock = clock
        self.pipeline = Pipeline()
        transport = transport or Transport()
        breaker = CircuitBreaker(settings.failure_threshold, settings.reset_seconds, clock)
        self.client = ApiClient(transport, self.pipeline, settings.retry, breaker, clock,
                                settings.timeout_seconds, rng=rng or random.Random())
        auth_spec = dict(manifest.auth)
        if settings.token_url:
            auth_spec["token_url"] = settings.token_url
        self.auth = build_auth(auth_spec, settings.credentials, settings.base_url,
                               redactor=redactor, send_token_request=self.client.send_plain,
                               clock=clock, logger=logger)
        self.client.auth = self.auth
        self.pipeline.add(self.auth, PRIORITY_AUTH)
        bucket = TokenBucket(settings.requests_per_second, settings.burst, clock)
        self.pipeline.add(RateLimitHook(bucket, logger), PRIORITY_RATE_LIMIT)
        self.pipeline.add(LoggingHook(logger), PRIORITY_LOGGING)
        self.custom = load_hooks_file(manifest, self.pipeline)


def fill_placeholders(text, params, where):
    """Replace {name} in a path or parameter with the config's params[name]."""
    def replace(match):
        name = match.group(1)
        if name not in params:
            raise ConnectorError(errors.VALIDATION_ERROR,
                                 "%s needs config.params.%s" % (where, name))
        return quote(str(params[name]), safe="")
    return _PLACEHOLDER.sub(replace, text)


def first_request(runtime, stream, paginator, incremental):
    settings = runtime.settings
    path = fill_placeholders(stream.path, settings.params, "stream %s path" % stream.name)
    if path.startswith(("http://", "https://")):
        url = path
    else:
        url = settings.base_url + "/" + path.lstrip("/")
    params = []
    for name, value in stream.params.items():
        if isinstance(value, str):
            value = fill_placeholders(value, settings.params, "stream %s param %s" % (stream.name, name))
        params.append((name, value))
    request = Request(stream.method, url, params=params,
                      headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    request.headers.update(runtime.manifest.headers)
    for name, value in paginator.first_params().items():
        request.set_param(name, value)
    if incremental is not None and incremental.request_param:
        since = incremental.request_value()
        if since is not None:
            request.set_param(incremental.request_param, since)
    return request


def sync_stream(runtime, stream, state, writer):
    """Emit SCHEMA, then RECORDs page by page, then STATE once the stream is complete."""
    try:
        _sync_stream(runtime, stream, state, writer)
    except ConnectorError as error:
        if error.stream is None:
            error.stream = stream.name
        raise


def _sync_stream(runtime, stream, state, writer):
    logger = runtime.logger
    incremental = None
    if stream.incremental:
        incremental = Incremental(stream.incremental, state.bookmark(stream.name, stream.cursor_field),
                                  runtime.settings.start_date)
    writer.schema(stream.name, stream.schema, stream.primary_key,
                  [stream.cursor_field] if incremental else [])

    paginator = make_paginator(stream.pagination, runtime.settings.page_size, runtime.settings.base_url)
    custom = runtime.custom
    if custom.extract_records is not None:
        def extract(body):
            return custom.extract_records(stream.name, body)
    else:
        extract = make_extractor(stream.record_selector)

    request = first_request(runtime, stream, paginator, incremental)
    page_number = 0
    previous_fingerprint = None
    emitted = 0
    while True:
        page_number += 1
        ctx = Context(stream=stream.name, page=page_number)
        response = runtime.client.send(ctx, request)
        body = response.json()
        records = extract(body)
        extracted_at = format_rfc3339(runtime.clock.time())
        page_emitted = 0
        for record in records:
            if not isinstance(record, dict):
                raise ConnectorError(errors.PARSING_ERROR,
                                     "a record is a %s, not an object" % type(record).__name__,
                                     status=response.status, request_id=response.request_id)
            if custom.transform_record is not None:
                record = custom.transform_record(stream.name, record)
                if record is None:
                    continue  # the hook dropped it
            if incremental is not None:
                if not incremental.accept(record):
                    continue
                incremental.observe(record)
            writer.record(stream.name, record, extracted_at)
            page_emitted += 1
        emitted += page_emitted
        logger.info("page %d of %s: %d records, %d emitted" % (page_number, stream.name, len(records), page_emitted),
                    event="page", stream=stream.name, page=page_number, records=len(records),
                    emitted=page_emitted)
        if not records:
            break
        # Guard for servers that ignore the paging parameter and repeat the same page.
        fingerprint = json.dumps(records, sort_keys=True, default=str)
        if fingerprint == previous_fingerprint:
            logger.warn("page repeated the previous one; stopping", event="page", stream=stream.name)
            break
        previous_fingerprint = fingerprint
        following = paginator.next_request(Page(records, body, response))
        if following is None:
            break
        if isinstance(following, str):
            request = Request(request.method, following, headers=request.headers)
        else:
            request = request.copy()
            for name, value in following.items():
                request.set_param(name, value)
    # The bookmark is saved only once the stream has been read to its end: APIs often list
    # newest first, and a bookmark saved mid-stream would make a resumed run skip older records
    # it never read.
    if incremental is not None:
        if incremental.bookmark is not None:
            state.set_bookmark(stream.name, stream.cursor_field, incremental.bookmark)
        writer.state(state.to_value())
    logger.info("stream %s done: %d records" % (stream.name, emitted), event="stream_done",
                stream=stream.name, records=emitted)
