"""``easel protect``: an artist protects files on their own machine before posting them.

It runs the server's code path on local files: the same decoding and normalisation as an
upload (``protect.ingest``: orientation applied, EXIF and other metadata stripped, the
same size and pixel limits), the same models (``protect.models``, from ``--vae`` or
``EASEL_VAE_PATH``), the same ``protect_image``. Output is PNG, because PNG is lossless:
JPEG or lossy WebP would blur part of the perturbation away before anyone sees the file.

What it must never do: pretend. Without a model it stops (exit 2) instead of writing
copies that look protected and are not. It never overwrites an input, never leaves a
half-written file under a final name (it writes a temporary file and renames it), and a
file it cannot read stops only that file. Every output says "not for AI training" in its
XMP and EXIF, as Easel's renditions do (``--artist`` adds whose it is).

Importing this module never loads torch (``easel`` builds its parser from it in the web
process's command); torch and the models load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from protect.ingest import MEGABYTE, UNREADABLE, ImageRejected, decode_upload, normalise, sniff_type
from protect.optout_metadata import DMI_PROHIBITED_AIML, OptOut, save_with_metadata
from server.limits import IMAGE_MATRIX_LIMIT, IMAGE_SIZE_LIMIT
from server.settings import PROTECT_PROFILES, PROTECT_STRENGTHS, Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from protect.models import ProtectionModels

__all__ = ["IMAGE_SUFFIXES", "PROFILE_CHOICES", "STRENGTH_CHOICES", "add_arguments", "run"]

#: What a folder is searched for (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
#: The settings' choices, which mirror ``protect.perturb`` (that module imports torch).
STRENGTH_CHOICES = PROTECT_STRENGTHS
PROFILE_CHOICES = PROTECT_PROFILES
#: Formats uploads do not accept but an artist's folder may hold; decoded here with the
#: same limits, then normalised exactly like an upload.
_EXTRA_FORMATS = ("BMP", "TIFF")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """The command cannot start; the message says why (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``easel protect``, added to a (sub)parser."""
    parser.description = (
        "Protect images offline with the same code as an Easel server: each image is changed, "
        "within a small budget, so that the configured diffusion models' encoders see something "
        "else. Output is always PNG, because PNG is lossless: a lossy format would remove part of "
        "the protection before anyone sees the file. Metadata (EXIF, GPS) is removed and the "
        "orientation applied; of an animated GIF only the first frame is kept.")
    parser.add_argument("inputs", nargs="+", metavar="IN", type=Path,
                        help=f"image files, or folders searched recursively for "
                             f"{', '.join(IMAGE_SUFFIXES)}")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="where to write <name>.png, keeping the folders' layout; "
                             "inputs are never overwritten")
    parser.add_argument("--strength", choices=STRENGTH_CHOICES, default=None,
                        help="perturbation budget: low <= 4/255, default <= 8/255, high <= 16/255 per "
                             "pixel (default: EASEL_PROTECT_STRENGTH, else default)")
    parser.add_argument("--profile", choices=PROFILE_CHOICES, default=None,
                        help="compute: default (full resolution, for a GPU) or cpu (lighter, "
                             "fewer steps); auto picks by device (default: EASEL_PROTECT_PROFILE, "
                             "else auto)")
    parser.add_argument("--vae", action="append", default=None, metavar="PATH",
                        help="a local diffusers VAE folder or .safetensors file to protect against "
                             f"(several: repeat, or separate with {os.pathsep!r}); "
                             "default: EASEL_VAE_PATH")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--artist", default="", metavar="NAME",
                        help="your name, written into each PNG's XMP (dc:creator) and EXIF (Artist) "
                             "beside the 'not for AI training' statement (IPTC PLUS DataMining "
                             "DMI-PROHIBITED-AIMLTRAINING) that every output carries")
    parser.add_argument("--artist-url", default="", metavar="URL",
                        help="where to ask you for a licence (XMP plus:LicensorURL), e.g. your "
                             "portfolio")


# ---------------------------------------------------------------------------------------
# Inputs and outputs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    source: Path
    shown: str  # how the source is named in messages
    target: Path


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan(inputs: Sequence[Path], out: Path) -> list[Task]:
    """Every image to protect and where its PNG goes, checked before any work starts."""
    out_dir = out.resolve()
    tasks: list[Task] = []
    for given in inputs:
        if given.is_dir():
            root = given.resolve()
            # An --out folder inside an input folder holds earlier outputs, not inputs.
            skip = out_dir if out_dir != root and _is_within(out_dir, root) else None
            found = sorted(p for p in root.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not (skip and _is_within(p.resolve(), skip)))
            if not found:
                raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {given}")
            for path in found:
                relative = path.relative_to(root)
                tasks.append(Task(path, str(given / relative), out_dir / relative.with_suffix(".png")))
        elif given.is_file():
            tasks.append(Task(given.resolve(), str(given), out_dir / f"{given.stem}.png"))
        else:
            raise UsageError(f"{given} does not exist")
    sources = {t.source for t in tasks}
    targets: dict[Path, Task] = {}
    for task in tasks:
        if task.target in sources:
            raise UsageError(f"{task.target} would be overwritten, but it is an input; "
                             "choose another --out")
        other = targets.get(task.target)
        if other is not None and other.source != task.source:
            raise UsageError(f"{other.shown} and {task.shown} would both be written to {task.target}; "
                             "protect them in separate runs")
        targets[task.target] = task
    unique = {t.source: t for t in tasks}  # a file named twice is done once
    return list(unique.values())


def decode(data: bytes) -> Image.Image:
    """Decode like an upload (``decode_upload``); BMP and TIFF, which uploads do not take,
    under the same limits and through the same normalisation."""
    if sniff_type(data) is not None or not data:
        image, _info = decode_upload(data, size_limit=IMAGE_SIZE_LIMIT, pixel_limit=IMAGE_MATRIX_LIMIT)
        return image
    if len(data) > IMAGE_SIZE_LIMIT:
        raise ImageRejected(f"File file size must be less than {IMAGE_SIZE_LIMIT // MEGABYTE} MB")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(_EXTRA_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(f"Image is too large (the limit is {IMAGE_MATRIX_LIMIT:,} pixels)") from exc
        except Exception as exc:  # Pillow raises many types for what it cannot identify
            raise ImageRejected(UNREADABLE) from exc
        width, height = image.size
        if width * height > IMAGE_MATRIX_LIMIT:
            raise ImageRejected(f"Image is too large: {width}×{height} pixels "
                                f"(the limit is {IMAGE_MATRIX_LIMIT:,} pixels)")
        try:
            image.load()
            return normalise(image)
        except ImageRejected:
            raise
        except Exception as exc:  # truncated data, or a mode Pillow cannot convert
            raise ImageRejected(UNREADABLE) from exc
        finally:
            image.close()


def optout_of(args: argparse.Namespace) -> OptOut:
    """What every output says: not for AI training, and whose it is when ``--artist`` says."""
    artist = (getattr(args, "artist", "") or "").strip()
    return OptOut(creator=artist, handle=artist, profile_url=(getattr(args, "artist_url", "") or "").strip(),
                  data_mining=DMI_PROHIBITED_AIML, policy_url="")


def write_png(image: Image.Image, target: Path, optout: OptOut | None = None) -> None:
    """Write ``image`` to ``target`` atomically: a temporary file beside it, then a rename.
    With ``optout``, the PNG carries its XMP and EXIF (``protect/optout_metadata.py``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            if optout is None:
                image.save(handle, "PNG")
            else:
                handle.write(save_with_metadata(image, "PNG", optout))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------


class ProgressBar:
    """Plain-text progress on ``stream``: one line redrawn with ``\\r`` on a terminal, one
    line per finished image otherwise (logs, pipes)."""

    WIDTH = 24

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self._drawn = ""
        self._percent = -1

    def _line(self, index: int, name: str, fraction: float) -> str:
        filled = round(self.WIDTH * fraction)
        return f"[{index}/{self.total}] [{'#' * filled}{'-' * (self.WIDTH - filled)}] {fraction:4.0%} {name}"

    def _draw(self, text: str) -> None:
        pad = " " * max(0, len(self._drawn) - len(text))
        self.stream.write(f"\r{text}{pad}")
        self.stream.flush()
        self._drawn = text

    def _clear(self) -> None:
        if self.live and self._drawn:
            self._draw("")
            self.stream.write("\r")
            self._drawn = ""

    def update(self, index: int, name: str, fraction: float) -> None:
        percent = int(fraction * 100)
        if self.live and percent != self._percent:
            self._percent = percent
            self._draw(self._line(index, name, fraction))

    def finished(self, index: int, name: str, target: Path, seconds: float) -> None:
        self._clear()
        self._percent = -1
        self.stream.write(f"[{index}/{self.total}] {name} -> {target} ({seconds:.1f} s)\n")
        self.stream.flush()

    def failed(self, index: int, name: str, message: str) -> None:
        self._clear()
        self._percent = -1
        self.stream.write(f"[{index}/{self.total}] {name}: error: {message}\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def _vae_paths(values: Sequence[str]) -> tuple[Path, ...]:
    return tuple(Path(part).expanduser() for value in values for part in value.split(os.pathsep)
                 if part.strip())


def _models(args: argparse.Namespace, settings: Settings) -> ProtectionModels:
    """The models, device, profile and strength: the settings, with the options on top."""
    try:
        from protect.models import ModelLoadError, load_models
    except ImportError as exc:  # torch is not installed
        raise UsageError(f"this needs the protect extra (torch and diffusers): {exc}") from exc

    if args.vae:
        settings = settings.with_changes(vae_paths=_vae_paths(args.vae))
    if args.strength:
        settings = settings.with_changes(protect_strength=args.strength)
    if args.profile:
        settings = settings.with_changes(protect_profile=args.profile)
    if not settings.vae_paths:
        raise UsageError("no protection model: pass --vae PATH (a local diffusers VAE folder or "
                         ".safetensors file) or set EASEL_VAE_PATH; without one nothing would be "
                         "protected")
    try:
        models = load_models(settings)
    except ModelLoadError as exc:
        raise UsageError(exc.message) from exc
    assert models is not None
    return models


def _protect_one(task: Task, index: int, models: ProtectionModels, seed: int, bar: ProgressBar,
                 optout: OptOut | None = None) -> None:
    from protect.perturb import protect_image

    image = decode(task.source.read_bytes())
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    bar.update(index, task.shown, 0.0)
    protected = protect_image(image, models.encoders, strength=models.strength, seed=seed,
                              profile=models.profile, progress=lambda f: bar.update(index, task.shown, f))
    if alpha is not None:
        protected.putalpha(alpha)  # transparency is kept as it was; the colours are protected
    write_png(protected, task.target, optout)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """Run ``easel protect`` with parsed ``args``; returns the exit status (0 all protected,
    1 some files failed, 2 nothing could start). Output paths go to stdout, one per line;
    progress, errors and the summary to stderr."""
    err = sys.stderr
    try:
        if settings is None:
            settings = load_settings()
        if args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {args.out} is a file, not a folder")
        tasks = plan(args.inputs, args.out)
        models = _models(args, settings)
    except (UsageError, SettingsError) as exc:
        print(f"easel protect: {exc}", file=err)
        return EXIT_USAGE

    print(f"easel protect: {len(tasks)} image(s) against {', '.join(models.names)} on {models.device}, "
          f"strength {models.strength}, profile {models.profile.name}", file=err)
    bar = ProgressBar(err, len(tasks))
    started = time.monotonic()
    failed = 0
    for index, task in enumerate(tasks, start=1):
        begun = time.monotonic()
        try:
            _protect_one(task, index, models, args.seed, bar, optout_of(args))
        except ImageRejected as exc:
            failed += 1
            bar.failed(index, task.shown, exc.message)
            continue
        except OSError as exc:
            failed += 1
            bar.failed(index, task.shown, exc.strerror or str(exc))
            continue
        except Exception as exc:  # the model failed on this image; the others may still work
            failed += 1
            bar.failed(index, task.shown, f"protection failed: {_first_line(exc)}")
            continue
        bar.finished(index, task.shown, task.target, time.monotonic() - begun)
        print(task.target, flush=True)
    seconds = time.monotonic() - started
    done = len(tasks) - failed
    summary = f"easel protect: {done} of {len(tasks)} image(s) protected in {seconds:.1f} s"
    print(summary + (f"; {failed} failed" if failed else ""), file=err)
    return EXIT_SOME_FAILED if failed else EXIT_OK
