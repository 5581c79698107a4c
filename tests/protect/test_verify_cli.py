"""``easel verify`` on local files, with tiny random VAEs saved here (no downloads)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from protect import models as M
from protect import perturb as P
from protect import verify as V
from protect import verify_cli
from server.cli import build_parser, main
from server.settings import Settings
from tests.protect.tiny_models import save_tiny_vae

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vae(tmp_path_factory.mktemp("models") / "tiny-vae")


@pytest.fixture(scope="module")
def encoder_only_file(vae_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same VAE without its decoder weights: a usable encoder, no decoder."""
    folder = tmp_path_factory.mktemp("encoder-only")
    state = load_file(vae_folder / "diffusion_pytorch_model.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith(("decoder.", "post_quant_conv."))},
              folder / "enc.safetensors")
    shutil.copy(vae_folder / "config.json", folder / "enc.json")
    return folder / "enc.safetensors"


@pytest.fixture(autouse=True)
def _one_thread_and_no_cached_models() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    M.clear_cache()
    yield
    M.clear_cache()
    torch.set_num_threads(threads)


def smooth(width: int = 48, height: int = 40) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a = np.stack([60 + 100 * x / width, 80 + 90 * y / height, 150 - 60 * x / width + 0 * y], axis=-1)
    return Image.fromarray(a.round().astype(np.uint8), "RGB")


def busy(width: int = 48, height: int = 40) -> Image.Image:
    rng = np.random.default_rng(0)
    a = np.full((height, width, 3), (200, 120, 60), dtype=np.uint8)
    a[:, width // 2:] = rng.integers(0, 256, (height, width - width // 2, 3), dtype=np.uint8)
    return Image.fromarray(a, "RGB")


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    path = tmp_path / "clean.png"
    smooth().save(path)
    return path


@pytest.fixture
def pair(tmp_path: Path, vae_folder: Path) -> tuple[Path, Path]:
    """A clean image and its protected copy (a cheap profile), as PNG files."""
    original = busy()
    model = M.load_model(vae_folder, torch.device("cpu"))
    profile = dataclasses.replace(P.PROFILES["cpu"], max_side=None, tile=48, overlap=16, steps_scale=0.1,
                                  train_sides=(32,), transforms=())
    protected = P.protect_image(original, model.encoder, profile=profile)
    original.save(tmp_path / "original.png")
    protected.save(tmp_path / "protected.png")
    return tmp_path / "original.png", tmp_path / "protected.png"


def arguments(*argv: str | Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="easel verify")
    verify_cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def one_json_object(out: str) -> dict[str, Any]:
    assert out.endswith("\n") and out.count("\n") == 1, out  # exactly one line: one object
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


def test_a_clean_image_says_none(clean: Path, vae_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = verify_cli.run(arguments(clean, "--json", "--vae", vae_folder), Settings())

    captured = capsys.readouterr()
    assert status == 0, captured.err
    doc = one_json_object(captured.out)
    assert doc["verdict"] == "none" and doc["check"] == "blind"
    assert set(doc["figures"]["tiny-vae"]) >= {"gap_db", "psnr_image", "psnr_purified"}
    assert "blind test of" in captured.err and "tiny-vae" in captured.err


def test_with_the_original_the_full_report(pair: tuple[Path, Path], vae_folder: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    original, protected = pair

    status = verify_cli.run(arguments(protected, "--original", original, "--json", "--vae", vae_folder),
                            Settings())

    captured = capsys.readouterr()
    assert status == 0, captured.err
    doc = one_json_object(captured.out)
    assert doc["check"] == "full" and doc["verdict"] in V.VERDICTS
    assert list(doc["transforms"]) == list(V.BATTERY)
    assert 0 < doc["budget"]["linf"] <= 8


def test_the_human_summary(pair: tuple[Path, Path], vae_folder: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    original, protected = pair

    assert verify_cli.run(arguments(protected, "--original", original, "--vae", vae_folder), Settings()) == 0
    out = capsys.readouterr().out
    assert out.startswith("Verdict: ")
    assert "Budget: L∞ " in out and "not tested: diffusion-based purification" in out
    for name in V.BATTERY:
        assert f"\n{name} " in out
    assert "jpeg75: JPEG at quality 75" in out

    assert verify_cli.run(arguments(protected, "--vae", vae_folder), Settings()) == 0
    out = capsys.readouterr().out
    assert "(blind test)" in out and "tiny-vae" in out


def test_an_original_of_the_same_aspect_is_resized(pair: tuple[Path, Path], vae_folder: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    original, protected = pair
    with Image.open(original) as image:
        image.resize((96, 80), Image.Resampling.NEAREST).save(tmp_path / "big.png")
    status = verify_cli.run(arguments(protected, "--original", tmp_path / "big.png", "--json",
                                      "--vae", vae_folder), Settings())
    assert status == 0
    assert one_json_object(capsys.readouterr().out)["size"] == [48, 40]


def test_an_original_of_another_aspect_is_a_usage_error(pair: tuple[Path, Path], vae_folder: Path,
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _original, protected = pair
    smooth(40, 40).save(tmp_path / "square.png")

    status = verify_cli.run(arguments(protected, "--original", tmp_path / "square.png", "--json",
                                      "--vae", vae_folder), Settings())

    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert "aspect ratios differ" in captured.err and "Traceback" not in captured.err


def test_without_a_decoder_the_blind_test_is_a_usage_error(clean: Path, encoder_only_file: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    status = verify_cli.run(arguments(clean, "--json", "--vae", encoder_only_file), Settings())

    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert "the blind test needs a model with a decoder, and enc has none" in captured.err


def test_without_a_model_or_a_readable_image_nothing_runs(clean: Path, tmp_path: Path, vae_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_cli.run(arguments(clean, "--json"), Settings()) == 2
    assert "no protection model" in capsys.readouterr().err

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    assert verify_cli.run(arguments(broken, "--vae", vae_folder), Settings()) == 2
    assert "Could not read the image" in capsys.readouterr().err

    assert verify_cli.run(arguments(tmp_path / "nope.png", "--vae", vae_folder), Settings()) == 2
    captured = capsys.readouterr()
    assert "nope.png" in captured.err and captured.out == ""


def test_easel_verify_is_a_subcommand(clean: Path, vae_folder: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["verify", str(clean), "--original", str(clean), "--json"])
    assert (args.command, args.image, args.original, args.json) == ("verify", clean, clean, True)

    for name in list(os.environ):
        if name.startswith("EASEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EASEL_VAE_PATH", str(vae_folder))

    assert main(["verify", str(clean), "--json"]) == 0
    assert one_json_object(capsys.readouterr().out)["verdict"] == "none"


def test_building_the_command_loads_no_torch() -> None:
    code = ("import sys; from server.cli import build_parser; build_parser(); "
            "import protect.verify; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
