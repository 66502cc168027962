#!/usr/bin/env python3
"""Entry point of this connector. See README.md; the runtime is in connector_runtime/."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from connector_runtime.cli import main  # noqa: E402  (needs the path set up above)

if __name__ == "__main__":
    sys.exit(main(HERE))
