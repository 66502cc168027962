"""The scaffold template itself: placeholders only where meant, and a filled copy runs."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import helpers

SCAFFOLD_ROOT = os.path.join(helpers.REPO, "registry", "_scaffold", "python")
PLACEHOLDER = re.compile(r"\{(connector|version|author|implementation)\}")
VALUES = {"connector": "demo-api", "version": "v2", "author": "someone", "implementation": "default"}


def template_files():
    for dirpath, dirs, files in os.walk(SCAFFOLD_ROOT):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(dirpath, name)
            if os.path.relpath(path, SCAFFOLD_ROOT) != "_scaffold.json":
                yield path


class ScaffoldTest(unittest.TestCase):
    def test_header_declares_the_four_variables(self):
        with open(os.path.join(SCAFFOLD_ROOT, "_scaffold.json")) as handle:
            header = json.load(handle)
        self.assertEqual(header["scaffold"], "python")
        self.assertEqual(set(header["variables"]), set(VALUES))
        for name, spec in header["variables"].items():
            self.assertRegex(spec["example"], spec["pattern"], name)

    def test_runtime_code_has_no_placeholders(self):
        for path in template_files():
            if path.endswith(".py"):
                with open(path, encoding="utf-8") as handle:
                    self.assertIsNone(PLACEHOLDER.search(handle.read()), path)

    def test_no_empty_placeholder_files(self):
        for path in template_files():
            self.assertGreater(os.path.getsize(path), 0, path)
            self.assertNotEqual(os.path.basename(path), ".gitkeep")

    def test_filled_copy_answers_about(self):
        target = tempfile.mkdtemp(prefix="cf-scaffold-")
        self.addCleanup(shutil.rmtree, target, True)
        for path in template_files():
            rel = PLACEHOLDER.sub(lambda m: VALUES[m.group(1)], os.path.relpath(path, SCAFFOLD_ROOT))
            out = os.path.join(target, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(path, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
                dst.write(PLACEHOLDER.sub(lambda m: VALUES[m.group(1)], src.read()))
        impl = os.path.join(target, "demo-api", "v2", "someone", "python", "default")
        with open(os.path.join(impl, "connector.json")) as handle:
            manifest = json.load(handle)
        self.assertEqual((manifest["name"], manifest["version"], manifest["author"], manifest["implementation"]),
                         ("demo-api", "v2", "someone", "default"))
        proc = subprocess.run([sys.executable, "-B", "main.py", "--about"], cwd=impl, capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["name"], "demo-api")


if __name__ == "__main__":
    unittest.main()
