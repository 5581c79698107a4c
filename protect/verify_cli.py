"""``easel verify``: is this image protected, and does the protection survive purification?

For an image protected elsewhere (Glaze, Mist, an earlier ``easel protect``) or by Easel.
With the clean original (``--original``), the full report of :mod:`protect.verify`: the
budget used, and per transform of the battery whether the effect on the configured
encoders holds, is weakened or is defeated. Without it, the blind test: how much worse the
model reconstructs the image than a lightly purified copy (``detected``, ``weak`` or
``none``).

The models are the server's (``--vae`` or ``EASEL_VAE_PATH``, loaded by
``protect.models`` through the same helpers as ``easel protect``), and images are decoded
like uploads (same limits, orientation applied). On the ``cpu`` profile (``auto`` on a
machine without a GPU) the check runs at the profile's working resolution, and says so.

Output: with ``--json`` exactly one JSON object on stdout, with a top-level ``verdict``;
otherwise a readable summary on stdout. Progress, logs and errors go to stderr. Exit
status: 0 the check ran (whatever its verdict), 1 it failed while running, 2 it could not
start (usage, an unreadable image, no usable model).

Importing this module never loads torch (``easel`` builds its parser from it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from protect.ingest import ImageRejected
from protect.offline import PROFILE_CHOICES, UsageError, _first_line, _models, decode
from server.settings import Settings, SettingsError, load_settings

__all__ = ["add_arguments", "format_human", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``easel verify``, added to a (sub)parser."""
    parser.description = (
        "Check whether an image's protection works against the configured diffusion models' "
        "encoders. With --original (the clean image), the full report: the budget used, and for "
        "each purification of a fixed battery (JPEG, resizing, blur, noise, the model's own VAE) "
        "whether the effect holds, is weakened or is defeated. Without it, a blind test: how much "
        "worse the model reconstructs the image than a lightly purified copy. Diffusion-based "
        "purification is never tested, and nothing is claimed for other models.")
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the image to check (as published)")
    parser.add_argument("--original", type=Path, default=None, metavar="CLEAN",
                        help="the clean original, for the full report; resized to IMAGE's size if "
                             "only the size differs (the aspect ratio must match)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (with a top-level \"verdict\") on stdout")
    parser.add_argument("--vae", action="append", default=None, metavar="PATH",
                        help="a local diffusers VAE folder or .safetensors file to check against "
                             f"(several: repeat, or separate with {os.pathsep!r}); "
                             "default: EASEL_VAE_PATH")
    parser.add_argument("--profile", choices=PROFILE_CHOICES, default=None,
                        help="default: full resolution; cpu: at the cpu profile's working resolution "
                             "(faster); auto picks by device (default: EASEL_PROTECT_PROFILE, else auto)")
    parser.set_defaults(strength=None)  # read by the shared model loader; not used here


def _read(path: Path, what: str) -> Image.Image:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from exc
    try:
        return decode(data)
    except ImageRejected as exc:
        raise UsageError(f"{what} {path}: {exc.message}") from exc


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [_row(header, widths), *(_row(r, widths) for r in rows)]


def format_human(doc: dict[str, Any]) -> str:
    from protect.verify import TRANSFORMS  # numpy: not imported to build the parser
    """A report or blind-test document as text for a terminal."""
    lines: list[str] = []
    size = "×".join(str(v) for v in doc["size"])
    resolution = "×".join(str(v) for v in doc["resolution"])
    at = f"{resolution} (working resolution; served {size})" if resolution != size else size
    if doc["check"] == "blind":
        lines += [f"Verdict: {doc['verdict']} (blind test)", doc["summary"], ""]
        rows = [[name, f"{f['gap_db']:+.2f}", f"{f['band_gap_db']:+.2f}", f"{f['psnr_image']:.2f}",
                 f"{f['psnr_purified']:.2f}", f"{f['purification_shift']:.3g}", f["verdict"]]
                for name, f in doc["figures"].items()]
        lines += _table(["model", "gap dB", "band gap dB", "image dB", "purified dB", "shift (natural)",
                         "verdict"], rows)
        lines += ["", f"Purification: {doc['purification']}. Resolution: {at}."]
    else:
        budget = doc["budget"]
        lines += [f"Verdict: {doc['verdict']}", doc["summary"], "",
                  f"Budget: L∞ {budget['linf']}/255, PSNR {budget['psnr']:.2f} dB, SSIM {budget['ssim']:.4f}",
                  ""]
        several = len(doc["models"]) > 1
        rows = []
        for name, t in doc["transforms"].items():
            recon = f"{t['recon_psnr']:.2f}" if "recon_psnr" in t else "-"
            row = [name, t["verdict"], f"{t['ratio']:.2f}", f"{t['retention']:.2f}",
                   f"{t['natural_units']:.3g}", f"{t['target_progress']:+.3f}", recon]
            rows.append([*row, t["model"]] if several else row)
        header = ["transform", "verdict", "ratio", "retention", "natural", "target", "recon dB"]
        lines += _table([*header, "worst model"] if several else header, rows)
        lines += ["", f"Models: {', '.join(doc['models'])}. Resolution: {at}.",
                  "Battery: " + "; ".join(f"{n}: {TRANSFORMS[n].description}" for n in doc["battery"]) + "."]
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run ``easel verify`` with parsed ``args``; returns the exit status."""
    err: TextIO = sys.stderr
    try:
        from protect.verify import VerifyError, full_check  # numpy: only when run
    except ImportError as exc:
        print(f"easel verify: this needs the protect extra (torch and diffusers): {exc}", file=err)
        return 2
    try:
        if settings is None:
            settings = load_settings()
        image = _read(args.image, "image")
        original = _read(args.original, "original") if args.original is not None else None
        models = _models(args, settings)
    except (UsageError, SettingsError) as exc:
        print(f"easel verify: {exc}", file=err)
        return EXIT_USAGE

    side = models.profile.max_side
    check = "full report" if original is not None else "blind test"
    print(f"easel verify: {check} of {args.image} against {', '.join(models.names)} on {models.device}, "
          f"profile {models.profile.name}" + (f" (working side {side} px)" if side else ""), file=err)
    try:
        doc = full_check(image, original, models.models, working_side=side)
    except VerifyError as exc:
        print(f"easel verify: {exc.message}", file=err)
        return EXIT_USAGE
    except Exception as exc:  # the model failed on this image
        print(f"easel verify: the check failed: {_first_line(exc)}", file=err)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, allow_nan=False), flush=True)
    else:
        print(format_human(doc), flush=True)
    return EXIT_OK
