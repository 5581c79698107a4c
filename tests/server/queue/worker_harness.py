"""``easel`` with the test job kinds loaded, for tests that run real worker processes."""

import sys

import tests.server.queue.kinds_for_tests  # noqa: F401  (registers the test kinds)
from server.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
