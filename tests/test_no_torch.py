"""The web process never loads torch: importing every server and federation module, and
the package ``protect`` itself, building the app and the ``easel`` command's parser,
leaves torch and diffusers out of ``sys.modules``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, pkgutil, sys
import server, federation, protect
for package in (server, federation):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from server.app import create_app
from server.cli import build_parser
from server.settings import Settings
create_app(Settings())
build_parser()  # easel --help: the protect subcommand's options come from protect.offline
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "diffusers", "numpy"))
print(",".join(loaded) or "none")
"""


def test_the_web_process_imports_no_torch(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"
