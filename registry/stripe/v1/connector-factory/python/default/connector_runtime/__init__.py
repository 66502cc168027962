"""The connector runtime: everything a connector needs except the API-specific part.

The API-specific part lives in ../connector.json (see docs/connector-contract.md in the
Connector Factory repository). This package is copied into each connector and owned by it,
so it uses the standard library only.

Module map (read in this order):
  errors      error codes and the ConnectorError exception
  clock       wall/monotonic time and sleep behind one object (tests inject a fake)
  log         JSON log lines on stderr and secret redaction
  config      the --config file turned into Settings
  manifest    connector.json turned into Manifest / StreamSpec
  hooks       the request pipeline (before_request, after_response, on_error, on_retry)
  http        Request / Response and the urllib transport with a whole-response deadline
  retry       backoff with jitter, Retry-After, attempt and time budgets
  ratelimit   token bucket that also obeys rate-limit response headers
  breaker     circuit breaker
  auth        none, api_key, bearer, basic, oauth2
  client      one logical request: pipeline + breaker + retry around the transport
  pagination  record extraction and the pagination styles
  state       bookmarks and incremental filtering
  singer      SCHEMA / RECORD / STATE writers
  sync        runs one stream page by page
  cli         the command line (--about, --discover, sync)
"""

__version__ = "0.1.0"
