"""The command line (contract section 4):

    main.py --about
    main.py --config C --discover
    main.py --config C [--catalog K] [--state S]

Any failure ends with one ERROR line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import traceback

from . import errors
from .auth import check_credentials
from .clock import SystemClock
from .config import Settings, load_json_file
from .errors import Cancelled, ConnectorError
from .log import Logger, Redactor
from .manifest import load_manifest
from .singer import SingerWriter
from .state import State, parse_state
from .sync import Runtime, sync_stream

CAPABILITIES = ["discover", "catalog", "state"]


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        # argparse would print usage and exit 2; the contract wants an ERROR line and exit 1.
        raise ConnectorError(errors.VALIDATION_ERROR, "bad command line: " + message)


def parse_args(argv):
    parser = _ArgumentParser(prog="main.py", description="Singer tap built on the connector runtime.")
    parser.add_argument("--about", action="store_true", help="print what this connector is")
    parser.add_argument("--config", help="config JSON file")
    parser.add_argument("--discover", action="store_true", help="print the catalog")
    parser.add_argument("--catalog", help="catalog JSON file: sync the selected streams")
    parser.add_argument("--state", help="state JSON file to resume from")
    return parser.parse_args(argv)


def about(manifest):
    return {"name": manifest.name, "version": manifest.version, "language": manifest.language,
            "capabilities": list(CAPABILITIES), "streams": [s.name for s in manifest.streams]}


def catalog(manifest):
    entries = []
    for stream in manifest.streams:
        entries.append({
            "tap_stream_id": stream.name,
            "stream": stream.name,
            "schema": stream.schema,
            "key_properties": stream.primary_key,
            "metadata": [{"breadcrumb": [], "metadata": {
                "selected": True,
                "replication-method": "INCREMENTAL" if stream.incremental else "FULL_TABLE",
                "replication-key": stream.cursor_field,
            }}],
        })
    return {"streams": entries}


def selected_streams(manifest, settings, catalog_obj):
    """Stream specs to sync: the catalog's selected ones, else config.streams, else all."""
    if catalog_obj is not None:
        if not isinstance(catalog_obj, dict) or not isinstance(catalog_obj.get("streams"), list):
            raise ConnectorError(errors.VALIDATION_ERROR, "the catalog must be an object with a streams list")
        names = []
        for entry in catalog_obj["streams"]:
            if not isinstance(entry, dict):
                raise ConnectorError(errors.VALIDATION_ERROR, "each catalog stream must be an object")
            name = entry.get("tap_stream_id") or entry.get("stream")
            selected = entry.get("selected") is True
            for item in entry.get("metadata") or []:
                if isinstance(item, dict) and item.get("breadcrumb") == []:
                    selected = (item.get("metadata") or {}).get("selected") is True
            if selected:
                names.append(name)
    elif settings.streams is not None:
        names = list(settings.streams)
    else:
        return list(manifest.streams)
    specs = []
    for name in names:
        spec = manifest.stream(name)
        if spec is None:
            raise ConnectorError(errors.VALIDATION_ERROR, "unknown stream %r" % (name,))
        specs.append(spec)
    return specs


def unexpected(exc):
    """Map an exception that is not a ConnectorError to the closest contract code."""
    text = "%s: %s" % (type(exc).__name__, exc)
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return ConnectorError(errors.VALIDATION_ERROR, text)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return ConnectorError(errors.TIMEOUT, text)
    if isinstance(exc, OSError):
        return ConnectorError(errors.NETWORK_ERROR, text)
    # Anything else (KeyError, TypeError, ...) nearly always means data of a shape the
    # code did not expect; not retryable, since a rerun sees the same data.
    return ConnectorError(errors.PARSING_ERROR, "unexpected " + text)


def _raise_cancelled(signum, frame):
    raise Cancelled()


def _install_signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _raise_cancelled)
        except (ValueError, OSError):
            pass
    return previous


def _restore_signal_handlers(previous):
    for sig, handler in previous.items():
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError, TypeError):
            pass


def main(impl_dir, argv=None, stdout=None, stderr=None, clock=None, transport=None, rng=None):
    """Run the CLI; returns the exit status. Streams, clock and transport are injectable for tests."""
    stdout = stdout or sys.stdout
    redactor = Redactor()
    logger = Logger(stderr or sys.stderr, redactor)
    clock = clock or SystemClock()
    previous = _install_signal_handlers()
    try:
        try:
            run(impl_dir, argv, stdout, logger, redactor, clock, transport, rng)
            return 0
        except (Cancelled, KeyboardInterrupt):
            error = ConnectorError(errors.CANCELLED, "cancelled by signal")
        except ConnectorError as exc:
            error = exc
        except Exception as exc:  # the contract wants an ERROR line for every failure
            logger.warn("unexpected exception", event="traceback",
                        traceback=traceback.format_exc(limit=8))
            error = unexpected(exc)
        logger.error_line(error)
        return 1
    finally:
        _restore_signal_handlers(previous)


def run(impl_dir, argv, stdout, logger, redactor, clock, transport, rng):
    args = parse_args(argv)
    manifest = load_manifest(impl_dir)
    if args.about:
        _print(stdout, about(manifest))
        return
    if not args.config:
        raise ConnectorError(errors.VALIDATION_ERROR, "--config is required (or use --about)")
    config = load_json_file(args.config, "config")
    if isinstance(config, dict) and isinstance(config.get("credentials"), dict):
        redactor.add_all(config["credentials"])  # before anything else can log
    settings = Settings(config, manifest)
    check_credentials(manifest.auth, settings.credentials)
    if args.discover:
        _print(stdout, catalog(manifest))
        return
    catalog_obj = load_json_file(args.catalog, "catalog") if args.catalog else None
    streams = selected_streams(manifest, settings, catalog_obj)
    state = State(parse_state(load_json_file(args.state, "state")) if args.state else None)
    writer = SingerWriter(stdout, redactor, clock)
    runtime = Runtime(manifest, settings, logger, redactor, clock, transport, rng)
    logger.info("sync started", event="sync_start", streams=[s.name for s in streams])
    try:
        for stream in streams:
            sync_stream(runtime, stream, state, writer)
    finally:
        # Always at least one STATE per run; on failure it keeps the progress made so far.
        writer.state(state.to_value())
    logger.info("sync finished", event="sync_done", records=writer.counts)


def _print(stdout, obj):
    stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    stdout.flush()
