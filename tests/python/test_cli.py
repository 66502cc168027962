import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import helpers
from connector_runtime import cli

ERROR_KEYS = {"type", "code", "message", "retryable", "status", "request_id", "stream"}
PEOPLE = [{"id": i, "name": "person %d" % i, "updated_at": "2024-03-%02dT00:00:00Z" % i} for i in range(1, 6)]


def paged_people(seen):
    offset = int(seen.query.get("offset", "0"))
    limit = int(seen.query.get("limit", "100"))
    return helpers.reply(200, {"data": PEOPLE[offset:offset + limit]}, {"X-Request-Id": "req-%d" % offset})


def people_manifest(**extra):
    return helpers.manifest([
        helpers.stream(name="people", path="/people",
                       pagination={"type": "offset", "offset_param": "offset", "size_param": "limit"},
                       incremental={"cursor_field": "updated_at", "request_param": "since"}),
        helpers.stream(name="teams", path="/teams"),
    ], auth={"type": "bearer"}, **extra)


class EndToEndTest(helpers.ServerCase, unittest.TestCase):
    """The real entry point (main.py) in a subprocess, as the spec tests run it."""

    def setUp(self):
        self.server = self.serve(lambda seen: paged_people(seen) if seen.path == "/people"
                                 else helpers.reply(200, {"data": [{"id": "t1", "name": "core"}]}))
        self.impl = self.connector(people_manifest(), with_runtime=True)
        self.config = self.impl.write("config.json", helpers.base_config(
            self.server.url, credentials={"token": "cli-secret-token"}, page_size=2))

    def main(self, *args, timeout=30):
        proc = subprocess.run([sys.executable, "main.py"] + list(args), cwd=self.impl.dir,
                              capture_output=True, text=True, timeout=timeout)
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        logs = [json.loads(line) for line in proc.stderr.splitlines()]
        return proc, lines, logs

    def test_about(self):
        proc, lines, _ = self.main("--about")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(lines, [{"name": "testapi", "version": "v1", "language": "python",
                                  "capabilities": ["discover", "catalog", "state"],
                                  "streams": ["people", "teams"]}])

    def test_discover(self):
        proc, lines, _ = self.main("--config", "config.json", "--discover")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        streams = {s["tap_stream_id"]: s for s in lines[0]["streams"]}
        self.assertEqual(set(streams), {"people", "teams"})
        people = streams["people"]
        self.assertEqual(people["stream"], "people")
        self.assertEqual(people["key_properties"], ["id"])
        self.assertEqual(people["schema"], helpers.SIMPLE_SCHEMA)
        self.assertEqual(people["metadata"], [{"breadcrumb": [], "metadata": {
            "selected": True, "replication-method": "INCREMENTAL", "replication-key": "updated_at"}}])
        self.assertEqual(streams["teams"]["metadata"][0]["metadata"]["replication-method"], "FULL_TABLE")
        self.assertEqual(self.server.requests, [])  # discovery does not call the API

    def test_sync_then_resume(self):
        proc, lines, logs = self.main("--config", "config.json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        kinds = [m["type"] for m in lines]
        self.assertEqual(kinds[0], "SCHEMA")
        self.assertEqual(kinds[-1], "STATE")
        records = [m for m in lines if m["type"] == "RECORD"]
        self.assertEqual([m["record"]["id"] for m in records if m["stream"] == "people"], [1, 2, 3, 4, 5])
        self.assertEqual([m["record"]["id"] for m in records if m["stream"] == "teams"], ["t1"])
        for message in records:
            self.assertRegex(message["time_extracted"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        # each stream's SCHEMA comes before its first RECORD
        for name in ("people", "teams"):
            first_schema = next(i for i, m in enumerate(lines) if m["type"] == "SCHEMA" and m["stream"] == name)
            first_record = next(i for i, m in enumerate(lines) if m["type"] == "RECORD" and m["stream"] == name)
            self.assertLess(first_schema, first_record)
        self.assertTrue(all(log["type"] == "LOG" and log["level"] in ("INFO", "WARN") for log in logs))
        self.assertIn("request", {log.get("event") for log in logs})
        self.assertIn("page", {log.get("event") for log in logs})
        self.assertNotIn("cli-secret-token", proc.stdout + proc.stderr)
        self.assertEqual(self.server.requests[0].headers["authorization"], "Bearer cli-secret-token")

        self.impl.write("state.json", lines[-1]["value"])
        proc, lines, _ = self.main("--config", "config.json", "--state", "state.json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        people = [m for m in lines if m["type"] == "RECORD" and m["stream"] == "people"]
        self.assertEqual(people, [])

    def test_catalog_selects_streams(self):
        proc, lines, _ = self.main("--config", "config.json", "--discover")
        catalog = lines[0]
        catalog["streams"][0]["metadata"][0]["metadata"]["selected"] = False  # people off
        self.impl.write("catalog.json", catalog)
        proc, lines, _ = self.main("--config", "config.json", "--catalog", "catalog.json")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual({m["stream"] for m in lines if m["type"] in ("SCHEMA", "RECORD")}, {"teams"})

    def test_bad_command_line_is_an_error_line_and_exit_1(self):
        proc, lines, logs = self.main("--bogus")
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(set(logs[-1]), ERROR_KEYS)
        self.assertEqual(logs[-1]["code"], "VALIDATION_ERROR")

    def test_sigterm_is_cancelled(self):
        release = threading.Event()

        def hang(seen):
            release.wait(10)
            return helpers.reply(200, {"data": []})

        server = self.serve(hang)
        self.addCleanup(release.set)
        self.impl.write("config.json", helpers.base_config(server.url, credentials={"token": "tok-sig"},
                                                           timeout_seconds=20))
        proc = subprocess.Popen([sys.executable, "main.py", "--config", "config.json"], cwd=self.impl.dir,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(server.requests, "the connector never called the server")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        release.set()
        self.assertEqual(proc.returncode, 1)
        error = json.loads(err.splitlines()[-1])
        self.assertEqual(set(error), ERROR_KEYS)
        self.assertEqual(error["code"], "CANCELLED")
        self.assertFalse(error["retryable"])


class ErrorLineTest(helpers.ServerCase, unittest.TestCase):
    """Failure codes through cli.main in-process (fast: fake clock for retry sleeps)."""

    def run_against(self, route, manifest=None, **config):
        server = self.serve(route) if route else None
        connector = self.connector(manifest or people_manifest())
        url = server.url if server else "http://127.0.0.1:%d" % helpers.free_port()
        settings = dict(credentials={"token": "tok-err-1"}, page_size=2)
        settings.update(config)
        run = helpers.run_cli(connector, helpers.base_config(url, **settings), clock=helpers.FakeClock())
        self.assertEqual(run.code, 1, run.err_text)
        self.assertEqual(set(run.error), ERROR_KEYS)
        self.assertEqual(run.logs[-1]["type"], "ERROR")
        self.assertEqual(sum(1 for line in run.logs if line["type"] == "ERROR"), 1)
        return run, server

    def test_malformed_json_is_parsing_error(self):
        run, server = self.run_against(lambda seen: helpers.reply(200, b'{"data": [{"id": 1}', {"Request-Id": "rq-7"}))
        self.assertEqual(run.error["code"], "PARSING_ERROR")
        self.assertEqual(run.error["stream"], "people")
        self.assertEqual(run.error["request_id"], "rq-7")
        self.assertFalse(run.error["retryable"])
        self.assertEqual(len(server.requests), 1)  # not retried

    def test_slow_response_is_timeout(self):
        def slow(seen):
            time.sleep(0.5)
            return helpers.reply(200, {"data": []})

        run, server = self.run_against(slow, timeout_seconds=0.15,
                                       retry={"max_attempts": 2, "initial_delay_seconds": 0.01})
        self.assertEqual(run.error["code"], "TIMEOUT")
        self.assertTrue(run.error["retryable"])
        self.assertIsNone(run.error["status"])
        self.assertEqual(len(server.requests), 2)

    def test_persistent_503_is_server_error_after_retries(self):
        run, server = self.run_against(lambda seen: helpers.reply(503, {"error": "down"}),
                                       retry={"max_attempts": 4, "initial_delay_seconds": 0.5})
        self.assertEqual(run.error["code"], "SERVER_ERROR")
        self.assertEqual(run.error["status"], 503)
        self.assertEqual(len(server.requests), 4)
        retries = [line for line in run.logs if line.get("event") == "retry"]
        self.assertEqual([line["attempt"] for line in retries], [1, 2, 3])
        delays = [line["delay_seconds"] for line in retries]
        self.assertTrue(delays[0] < delays[1] < delays[2], delays)

    def test_refused_connection_is_network_error(self):
        run, _ = self.run_against(None, retry={"max_attempts": 2, "initial_delay_seconds": 0.01})
        self.assertEqual(run.error["code"], "NETWORK_ERROR")

    def test_not_found_is_invalid_request(self):
        run, server = self.run_against(lambda seen: helpers.reply(404, {"error": "no"}))
        self.assertEqual(run.error["code"], "INVALID_REQUEST")
        self.assertEqual(run.error["status"], 404)
        self.assertEqual(len(server.requests), 1)

    def test_failure_mid_stream_does_not_advance_its_bookmark(self):
        # Records of the first page were emitted, but the stream was not read to its end: saving
        # their cursor would make a resumed run skip whatever the unread pages held.
        def second_page_fails(seen):
            if seen.query.get("offset") == "2":
                return helpers.reply(400, {"error": "bad"})
            return paged_people(seen)

        run, _ = self.run_against(second_page_fails)
        self.assertEqual([r["id"] for r in run.records], [1, 2])
        self.assertEqual(run.error["code"], "INVALID_REQUEST")
        for message in run.of("STATE"):
            self.assertNotIn("people", message["value"]["bookmarks"], message)


class ConfigErrorsTest(helpers.ServerCase, unittest.TestCase):
    def setUp(self):
        self.impl = self.connector(people_manifest())

    def run_args(self, *args):
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(self.impl.dir, list(args), stdout=out, stderr=err)
        return code, helpers.Run(code, out.getvalue(), err.getvalue())

    def test_config_problems_are_validation_errors(self):
        cases = {
            "not json": "{not json",
            "missing credential": {"base_url": "http://127.0.0.1:1", "credentials": {}},
            "bad number": {"credentials": {"token": "t1234"}, "timeout_seconds": "soon"},
            "bad start date": {"credentials": {"token": "t1234"}, "start_date": "yesterday"},
            "unknown stream": {"credentials": {"token": "t1234"}, "streams": ["nope"]},
        }
        for label, content in cases.items():
            with self.subTest(label):
                path = self.impl.write("config.json", content)
                code, run = self.run_args("--config", path)
                self.assertEqual(code, 1)
                self.assertEqual(run.error["code"], "VALIDATION_ERROR")
                self.assertEqual(run.messages, [])

    def test_missing_config_file_and_flag(self):
        code, run = self.run_args("--config", os.path.join(self.impl.dir, "absent.json"))
        self.assertEqual((code, run.error["code"]), (1, "VALIDATION_ERROR"))
        code, run = self.run_args("--discover")
        self.assertEqual((code, run.error["code"]), (1, "VALIDATION_ERROR"))


class CustomHooksTest(helpers.ServerCase, unittest.TestCase):
    HOOKS = (
        "def register(pipeline):\n"
        "    def tag(ctx, request):\n"
        "        request.headers['X-Custom'] = 'page-%d' % ctx.page\n"
        "    pipeline.register('before_request', tag, priority=50)\n"
        "\n"
        "def transform_record(stream, record):\n"
        "    if record['id'] == 2:\n"
        "        return None\n"
        "    record['name'] = record['name'].upper()\n"
        "    return record\n"
    )

    def test_register_and_transform_record(self):
        server = self.serve(paged_people)
        impl = self.connector(helpers.manifest([helpers.stream(
            name="people", path="/people",
            pagination={"type": "offset", "offset_param": "offset", "size_param": "limit"})], hooks="hooks.py"),
            files={"hooks.py": self.HOOKS})
        run = helpers.run_cli(impl, helpers.base_config(server.url, page_size=2))
        self.assertEqual(run.code, 0, run.err_text)
        self.assertEqual([(r["id"], r["name"]) for r in run.records],
                         [(1, "PERSON 1"), (3, "PERSON 3"), (4, "PERSON 4"), (5, "PERSON 5")])
        self.assertEqual([r.headers["x-custom"] for r in server.requests], ["page-1", "page-2", "page-3"])

    def test_unexpected_exception_in_a_hook_is_mapped_to_a_code(self):
        server = self.serve(paged_people)
        impl = self.connector(helpers.manifest([helpers.stream(name="people", path="/people")], hooks="hooks.py"),
                              files={"hooks.py": "def transform_record(stream, record):\n    return record['missing']\n"})
        run = helpers.run_cli(impl, helpers.base_config(server.url))
        self.assertEqual(run.code, 1)
        self.assertEqual(run.error["code"], "PARSING_ERROR")
        self.assertIn("KeyError", run.error["message"])
        self.assertEqual(run.logs[-1]["type"], "ERROR")


if __name__ == "__main__":
    unittest.main()
