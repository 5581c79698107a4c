"""``easel protect`` on local files, with a tiny random VAE saved here (no downloads)."""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import numpy as np
import torch
from PIL import Image

from protect import models as M
from protect import offline
from protect import perturb as P
from server.settings import Settings
from tests.protect.images import sideways_jpeg_with_gps
from tests.protect.tiny_models import save_tiny_vae

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_vae(tmp_path_factory.mktemp("models") / "tiny-vae")


@pytest.fixture(autouse=True)
def _cheap_profiles(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Both profiles cut to a few steps without transformations, so a test takes a second:
    these tests are about the command, test_perturb.py about the perturbation."""
    for name in ("default", "cpu"):
        cheap = dataclasses.replace(P.PROFILES[name], steps_scale=0.05, eot_samples=1, tile=64,
                                    overlap=16, train_sides=(32,), transforms=())
        monkeypatch.setitem(P.PROFILES, name, cheap)
    # One thread: tiny models gain nothing from more, and lose much when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    M.clear_cache()
    yield
    M.clear_cache()
    torch.set_num_threads(threads)


def arguments(*argv: str | Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="easel protect")
    offline.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.full((height, width, 3), (180, 90, 40), dtype=np.uint8)
    a[:, width // 2:] = rng.integers(0, 256, (height, width - width // 2, 3), dtype=np.uint8)
    return Image.fromarray(a, "RGB")


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """Two images (one in a subfolder) and a file that only looks like one."""
    root = tmp_path / "album"
    (root / "sketches").mkdir(parents=True)
    picture(48, 40, 1).save(root / "cat.png")
    picture(40, 56, 2).save(root / "sketches" / "fox.webp", lossless=True)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    (root / "notes.txt").write_text("not an image")
    return root


def no_model() -> Settings:
    return Settings()


def test_a_folder_is_protected_and_a_bad_file_is_named(album: Path, tmp_path: Path, vae_folder: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "protected"

    status = offline.run(arguments(album, "--out", out, "--vae", vae_folder), no_model())

    captured = capsys.readouterr()
    assert status == 1
    cat, fox = out / "cat.png", out / "sketches" / "fox.png"
    assert captured.out.splitlines() == [str(cat), str(fox)]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "cat.png", "sketches", "sketches/fox.png"]
    for original, protected in ((album / "cat.png", cat), (album / "sketches" / "fox.webp", fox)):
        before, after = pixels(original), pixels(protected)
        assert after.shape == before.shape
        assert 0 < np.abs(after - before).max() <= 8  # changed, within the default budget
    assert "broken.jpg: error: Could not read the image" in captured.err
    assert "[3/3]" in captured.err
    assert "2 of 3 image(s) protected" in captured.err and "1 failed" in captured.err
    assert "tiny-vae" in captured.err and "strength default" in captured.err


def test_files_are_normalised_like_uploads_and_written_as_png(tmp_path: Path, vae_folder: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sideways_jpeg_with_gps())
    scan = tmp_path / "scan.tiff"
    picture(24, 20, 3).save(scan)
    out = tmp_path / "out"

    status = offline.run(arguments(photo, scan, "--out", out, "--vae", vae_folder, "--strength", "low",
                                   "--profile", "cpu", "--seed", "7"), no_model())

    assert status == 0, capsys.readouterr().err
    data = (out / "photo.png").read_bytes()
    assert data.startswith(b"\x89PNG")
    assert b"SecretCam" not in data and b"secret-artist-xmp" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (40, 80)  # the EXIF orientation applied
        # Nothing of the input's metadata; only "not for AI training" (protect/optout_metadata.py).
        assert set(image.getexif()) == {0x8298}  # Copyright
        assert b"DMI-PROHIBITED-AIMLTRAINING" in image.info["xmp"]
    assert np.abs(pixels(out / "scan.png") - pixels(scan)).max() <= 4  # low: ≤ 4/255
    assert "strength low, profile cpu" in capsys.readouterr().err


def test_without_a_model_nothing_is_written(album: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    status = offline.run(arguments(album, "--out", tmp_path / "out"), no_model())

    assert status == 2
    assert "no protection model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_model_that_cannot_load_is_a_usage_error(album: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = offline.run(arguments(album, "--out", tmp_path / "out", "--vae", tmp_path / "missing"),
                         no_model())

    assert status == 2
    err = capsys.readouterr().err
    assert "missing does not exist" in err and "Traceback" not in err


def test_the_configured_model_is_used_when_no_vae_is_given(album: Path, tmp_path: Path, vae_folder: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings().with_changes(vae_paths=(vae_folder,))
    status = offline.run(arguments(album / "cat.png", "--out", tmp_path / "out"), settings)

    assert status == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "out" / "cat.png")]


def test_inputs_are_never_overwritten(album: Path, vae_folder: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = (album / "cat.png").read_bytes()

    status = offline.run(arguments(album, "--out", album, "--vae", vae_folder), no_model())

    assert status == 2
    assert "cat.png would be overwritten, but it is an input" in capsys.readouterr().err
    assert (album / "cat.png").read_bytes() == before
    assert sorted(p.name for p in album.rglob("*")) == [
        "broken.jpg", "cat.png", "fox.webp", "notes.txt", "sketches"]


def test_an_output_folder_inside_the_input_is_not_protected_again(album: Path, vae_folder: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (album / "broken.jpg").unlink()
    out = album / "protected"
    assert offline.run(arguments(album / "cat.png", "--out", out, "--vae", vae_folder), no_model()) == 0
    capsys.readouterr()

    status = offline.run(arguments(album, "--out", out, "--vae", vae_folder), no_model())

    assert status == 0
    assert capsys.readouterr().out.splitlines() == [str(out / "cat.png"), str(out / "sketches" / "fox.png")]
    assert not (out / "protected").exists()
    assert not list(album.rglob("*.part"))


def test_two_inputs_with_the_same_output_name_are_refused(tmp_path: Path, vae_folder: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    picture(16, 16, 4).save(tmp_path / "a.png")
    picture(16, 16, 5).save(tmp_path / "a.jpg")

    status = offline.run(arguments(tmp_path / "a.png", tmp_path / "a.jpg", "--out", tmp_path / "out",
                                   "--vae", vae_folder), no_model())

    assert status == 2
    assert "would both be written to" in capsys.readouterr().err


def test_a_missing_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = offline.run(arguments(tmp_path / "nope.png", "--out", tmp_path / "out"), no_model())

    assert status == 2
    assert "nope.png does not exist" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_live_progress_bar(album: Path, tmp_path: Path, vae_folder: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    status = offline.run(arguments(album / "cat.png", "--out", tmp_path / "out", "--vae", vae_folder),
                         no_model())

    assert status == 0
    shown = terminal.getvalue()
    assert "\r[1/1] [------------------------]   0% " in shown
    assert "\r[1/1] [########################] 100% " in shown
    assert shown.count("\n") == 3  # the header, the finished image, the summary


def test_the_choices_match_the_perturbation_module() -> None:
    assert set(offline.STRENGTH_CHOICES) == set(P.STRENGTHS)
    assert set(offline.PROFILE_CHOICES) == {"auto", *P.PROFILES}
