"""``easel`` with the test job kinds loaded, for tests that run real worker processes.

With ``EASEL_TEST_PROTECT_HOLD=<file>`` it also makes protection cheap (every profile cut
to a few steps) and holds the first attempt mid-perturbation: after the perturbation's
first step it writes ``<file>`` and waits forever (the test kills the process there).
Once ``<file>`` exists, perturbations run through. Only this harness installs the hold;
no production code path knows about it.
"""

import os
import sys
import threading
from pathlib import Path
from typing import Any

import tests.server.queue.kinds_for_tests  # noqa: F401  (registers the test kinds)
from server.cli import main


def install_protect_hold(marker: Path) -> None:
    from protect import perturb
    from tests.protect.tiny_models import install_fast_profiles

    install_fast_profiles()
    real = perturb.protect_image

    def held(image: Any, encoders: Any, **options: Any) -> Any:
        progress = options.get("progress")

        def step(fraction: float) -> None:
            if progress is not None:
                progress(fraction)
            if not marker.exists():
                marker.write_text("perturbing")
                threading.Event().wait()  # until SIGKILL

        return real(image, encoders, **{**options, "progress": step})

    perturb.protect_image = held


if __name__ == "__main__":
    hold = os.environ.get("EASEL_TEST_PROTECT_HOLD")
    if hold:
        install_protect_hold(Path(hold))
    sys.exit(main(sys.argv[1:]))
