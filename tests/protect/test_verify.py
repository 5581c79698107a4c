"""The verification check with tiny random VAEs built here (no downloads, no files).

Random weights are weak encoders, so these tests assert what holds by construction (an
unperturbed image moves no latent; identical images have SSIM 1; every transform is
computed) and the shape of the documents, never how well a perturbation survives: that
is calibrated on a trained encoder in bench/."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image

from protect import perturb as P
from protect import verify as V
from protect.models import KLDecoder, LoadedModel

pytestmark = pytest.mark.torch

NUMBERS = ("ratio", "retention", "shift", "noise_shift", "natural", "natural_units", "target_progress")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny models gain nothing from more threads, and lose much when the cores are busy.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_kl(seed: int) -> Any:
    torch.manual_seed(seed)
    vae: Any = AutoencoderKL(in_channels=3, out_channels=3,
                             down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                             up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                             block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
                             norm_num_groups=4, sample_size=32)
    return vae.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def with_decoder() -> LoadedModel:
    vae = tiny_kl(0)
    return LoadedModel(name="tiny-kl", path=Path("tiny-kl"), kind="AutoencoderKL",
                       encoder=P.as_encoder(vae).eval(), decoder=KLDecoder(vae).eval())


@pytest.fixture(scope="module")
def encoder_only() -> LoadedModel:
    return LoadedModel(name="tiny-encoder", path=Path("tiny-encoder"), kind="AutoencoderKL",
                       encoder=P.as_encoder(tiny_kl(1)).eval(), decoder=None)


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """Half flat colour with a block, half busy noise."""
    rng = np.random.default_rng(seed)
    a = np.full((height, width, 3), (200, 120, 60), dtype=np.uint8)
    a[:, width // 2:] = rng.integers(0, 256, (height, width - width // 2, 3), dtype=np.uint8)
    a[height // 4: height // 2, 4: width // 3] = (20, 40, 230)
    return Image.fromarray(a, "RGB")


def smooth(width: int = 48, height: int = 40) -> Image.Image:
    """A clean image with nothing a light purification would change much."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a = np.stack([60 + 100 * x / width, 80 + 90 * y / height, 150 - 60 * x / width + 0 * y], axis=-1)
    return Image.fromarray(a.round().astype(np.uint8), "RGB")


CHEAP = dataclasses.replace(P.PROFILES["cpu"], max_side=None, tile=48, overlap=16, steps_scale=0.2,
                            train_sides=(32,), transforms=("blur", "noise"))


@pytest.fixture(scope="module")
def protected(with_decoder: LoadedModel) -> Image.Image:
    return P.protect_image(picture(), with_decoder.encoder, profile=CHEAP)


def assert_finite_figures(entry: dict[str, Any]) -> None:
    assert entry["verdict"] in V.VERDICTS
    for key in NUMBERS:
        assert isinstance(entry[key], float) and math.isfinite(entry[key]), key


# ------------------------------------------------------------------------------ the report


def test_a_protected_image_gets_a_report_with_every_transform(with_decoder: LoadedModel,
                                                              protected: Image.Image) -> None:
    doc = V.report(picture(), protected, [with_decoder])

    json.dumps(doc, allow_nan=False)  # serialisable, no NaN or infinity
    assert doc["check"] == "full"
    assert doc["battery"] == list(V.BATTERY) == [
        "identity", "jpeg95", "jpeg85", "jpeg75", "resize_0.5", "resize_512", "blur", "noise",
        "noise_upscale", "vae_roundtrip"]
    assert list(doc["transforms"]) == doc["battery"]
    for entry in doc["transforms"].values():
        assert_finite_figures(entry)
        assert math.isfinite(entry["recon_psnr"])
        assert "models" not in entry  # one model: its figures are the transform's
    identity = doc["transforms"]["identity"]
    assert identity["shift"] > 0 and identity["retention"] == 1.0
    assert 0 < doc["budget"]["linf"] <= 8  # the default strength's budget
    assert doc["budget"]["psnr"] > 30 and 0 < doc["budget"]["ssim"] < 1
    assert doc["verdict"] == max((t["verdict"] for t in doc["transforms"].values()), key=V.VERDICTS.index)
    assert doc["models"] == ["tiny-kl"]
    assert doc["resolution"] == doc["size"] == [48, 40]
    assert doc["summary"].startswith(("Held against this battery", "Weakened by", "Defeated by"))
    assert "not tested: diffusion-based purification" in doc["summary"]
    assert "encoders other than tiny-kl" in doc["untested"]


def test_the_verdicts_follow_the_thresholds(with_decoder: LoadedModel, protected: Image.Image) -> None:
    doc = V.report(picture(), protected, [with_decoder])

    for entry in doc["transforms"].values():
        assert entry["verdict"] == V.transform_verdict(entry["ratio"], entry["retention"])
    assert V.transform_verdict(0.0, 1.0) == "defeated"
    assert V.transform_verdict(V.RATIO_HOLDS, V.RETENTION_DEFEATED / 2) == "defeated"
    assert V.transform_verdict(V.RATIO_HOLDS, V.RETENTION_HOLDS) == "holds"
    assert V.transform_verdict((V.RATIO_DEFEATED + V.RATIO_HOLDS) / 2, 1.0) == "weakened"


def test_an_unperturbed_image_is_defeated_everywhere(with_decoder: LoadedModel) -> None:
    doc = V.report(picture(), picture(), [with_decoder])

    assert doc["budget"] == {"linf": 0, "psnr": V.PSNR_CAP, "ssim": 1.0}
    for entry in doc["transforms"].values():
        assert entry["verdict"] == "defeated"
        assert entry["shift"] == 0 and entry["ratio"] == 0 and entry["retention"] == 0
        assert entry["noise_shift"] > 0  # the same budget as noise would move it
        assert entry["recon_psnr"] == V.PSNR_CAP  # identical reconstructions
    assert doc["verdict"] == "defeated"
    assert doc["summary"].startswith("Defeated by identity, jpeg95, ")


def test_noise_served_as_protection_is_defeated_against_its_own_baseline(
        with_decoder: LoadedModel) -> None:
    """A caller's baseline (the verify job's: same-budget noise made into a rendition like
    the served image) replaces the measured-L∞ noise: served noise is that noise."""
    noisy = V.sign_noise(picture(), 8)
    assert np.abs(np.asarray(noisy, dtype=np.int16) - np.asarray(picture(), dtype=np.int16)).max() == 8
    doc = V.report(picture(), noisy, [with_decoder], baseline=noisy)
    for entry in doc["transforms"].values():
        assert entry["shift"] == entry["noise_shift"] > 0 and entry["ratio"] == 1.0
        assert entry["verdict"] == "defeated"
    with pytest.raises(V.VerifyError, match="baseline"):
        V.report(picture(), noisy, [with_decoder], baseline=picture(40, 48))


def test_several_models_get_per_model_entries(with_decoder: LoadedModel, encoder_only: LoadedModel,
                                              protected: Image.Image) -> None:
    doc = V.report(picture(), protected, [with_decoder, encoder_only])

    assert doc["models"] == ["tiny-kl", "tiny-encoder"]
    assert doc["battery"] == list(V.BATTERY)
    for name, entry in doc["transforms"].items():
        expected = ["tiny-kl"] if name == "vae_roundtrip" else ["tiny-kl", "tiny-encoder"]
        assert list(entry["models"]) == expected
        for figures in entry["models"].values():
            assert_finite_figures(figures)
        assert entry["model"] in expected
        worst = entry["models"][entry["model"]]
        assert entry["verdict"] == worst["verdict"] == max(
            (f["verdict"] for f in entry["models"].values()), key=V.VERDICTS.index)
        assert entry["ratio"] == worst["ratio"]
        assert ("recon_psnr" in entry["models"]["tiny-kl"]
                and "recon_psnr" not in entry["models"].get("tiny-encoder", {}))
    assert "vae_roundtrip against tiny-encoder (no decoder)" in doc["untested"]


def test_without_a_decoder_the_roundtrip_is_named_as_not_tested(encoder_only: LoadedModel,
                                                                protected: Image.Image) -> None:
    doc = V.report(picture(), protected, [encoder_only], untested=["models not configured: SDXL"])

    assert doc["battery"] == [n for n in V.BATTERY if n != "vae_roundtrip"]
    assert list(doc["transforms"]) == doc["battery"]
    assert all("recon_psnr" not in t for t in doc["transforms"].values())
    assert "vae_roundtrip (no model with a decoder)" in doc["untested"]
    assert "models not configured: SDXL" in doc["untested"]
    assert "vae_roundtrip (no model with a decoder)" in doc["summary"]
    assert "models not configured: SDXL" in doc["summary"]


def test_the_working_resolution_is_used_and_said(with_decoder: LoadedModel) -> None:
    original = picture(96, 80, seed=3)
    rng = np.random.default_rng(4)
    noisy = np.asarray(original, dtype=np.int16) + rng.integers(-4, 5, (80, 96, 3))
    served = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    seen: list[float] = []

    doc = V.report(original, served, [with_decoder], working_side=48, progress=seen.append)

    assert doc["size"] == [96, 80] and doc["resolution"] == [48, 40]
    assert "48×40 working resolution (served at 96×80)" in doc["summary"]
    assert doc["budget"]["linf"] == 4  # measured on the served bytes, not the working copy
    assert list(doc["transforms"]) == list(V.BATTERY)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == len(V.BATTERY)


def test_large_images_are_measured_in_tiles(with_decoder: LoadedModel, protected: Image.Image) -> None:
    whole = V.report(picture(), protected, [with_decoder])
    tiled = V.report(picture(), protected, [with_decoder], tile=24)

    assert list(tiled["transforms"]) == list(V.BATTERY)
    for entry in tiled["transforms"].values():
        assert_finite_figures(entry)
    assert tiled["budget"] == whole["budget"]
    unperturbed = V.report(picture(), picture(), [with_decoder], tile=24)
    assert all(t["shift"] == 0 for t in unperturbed["transforms"].values())


def test_mismatched_inputs_are_refused(with_decoder: LoadedModel) -> None:
    with pytest.raises(V.VerifyError, match="differ in size"):
        V.report(picture(48, 40), picture(40, 48), [with_decoder])
    with pytest.raises(V.VerifyError, match="at least one model"):
        V.report(picture(), picture(), [])


# ------------------------------------------------------------------------------ transforms


@pytest.mark.parametrize("name", [n for n in V.BATTERY if n != "vae_roundtrip"])
def test_each_transform_is_deterministic_8_bit_and_keeps_the_size(name: str) -> None:
    transform = V.TRANSFORMS[name]
    for image in (picture(), picture(7, 5)):  # resize_512 upscales these, and still runs
        first, second = transform(image), transform(image)
        assert first.mode == "RGB" and first.size == image.size
        assert first.tobytes() == second.tobytes()
    assert transform.description


def test_the_vae_roundtrip_uses_the_models_decoder(with_decoder: LoadedModel,
                                                  encoder_only: LoadedModel) -> None:
    image = picture(45, 37)  # not a multiple of the encoder's factor
    out = V.TRANSFORMS["vae_roundtrip"](image, with_decoder)

    assert out.mode == "RGB" and out.size == image.size
    assert out.tobytes() == V.vae_roundtrip(image, with_decoder).tobytes()
    assert out.tobytes() != image.tobytes()
    with pytest.raises(ValueError, match="needs a model with a decoder"):
        V.TRANSFORMS["vae_roundtrip"](image)
    with pytest.raises(V.VerifyError, match="no decoder"):
        V.vae_roundtrip(image, encoder_only)


# ------------------------------------------------------------------------------ budget


def test_the_budget_of_a_known_pair() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(10, 200, (40, 48, 3), dtype=np.uint8)
    plus3 = Image.fromarray(base + 3, "RGB")

    figures = V.budget(Image.fromarray(base, "RGB"), plus3)

    assert figures["linf"] == 3
    assert figures["psnr"] == round(10 * math.log10(255**2 / 9), 2) == 38.59
    assert 0.99 < figures["ssim"] < 1


def test_ssim_is_one_for_identical_images_and_low_for_unrelated_ones() -> None:
    assert V.ssim(picture(), picture()) == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(6)
    a, b = (Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB") for _ in range(2))
    assert abs(V.ssim(a, b)) < 0.1
    assert V.ssim(picture(7, 5), picture(7, 5)) == pytest.approx(1.0)  # smaller than the window
    # Strips give the same answer as one pass.
    assert V.ssim(a, picture(64, 64), strip=7) == pytest.approx(V.ssim(a, picture(64, 64)), abs=1e-9)


# ------------------------------------------------------------------------------ blind test


def test_a_clean_image_gets_none_in_the_blind_test(with_decoder: LoadedModel,
                                                  encoder_only: LoadedModel) -> None:
    doc = V.blind(smooth(), [with_decoder, encoder_only])

    json.dumps(doc, allow_nan=False)
    assert doc["check"] == "blind" and doc["verdict"] == "none"
    assert doc["models"] == ["tiny-kl"]
    figures = doc["figures"]["tiny-kl"]
    assert figures["verdict"] == "none" and abs(figures["gap_db"]) < V.BLIND_WEAK_DB
    assert all(math.isfinite(v) for k, v in figures.items() if k != "verdict")
    assert doc["gap_db"] == figures["gap_db"]
    assert "tiny-encoder (no decoder)" in doc["untested"]
    assert doc["summary"].startswith("No sign of protection against tiny-kl")


def test_the_blind_verdict_follows_its_thresholds() -> None:
    assert V.blind_verdict(0.0) == "none"
    assert V.blind_verdict(V.BLIND_WEAK_DB) == "weak"
    assert V.blind_verdict(V.BLIND_DETECTED_DB) == "detected"


def test_the_blind_test_needs_a_decoder(encoder_only: LoadedModel) -> None:
    with pytest.raises(V.VerifyError, match="needs a model with a decoder, and tiny-encoder has none"):
        V.blind(smooth(), [encoder_only])


# ------------------------------------------------------------------------------ full_check


def test_full_check_picks_the_report_or_the_blind_test(with_decoder: LoadedModel,
                                                      protected: Image.Image) -> None:
    assert V.full_check(protected, None, [with_decoder])["check"] == "blind"
    larger = picture().resize((96, 80), Image.Resampling.NEAREST)  # same aspect, twice the size
    doc = V.full_check(protected, larger, [with_decoder])
    assert doc["check"] == "full" and doc["size"] == [48, 40]
    with pytest.raises(V.VerifyError, match="aspect ratios differ"):
        V.full_check(protected, picture(48, 48), [with_decoder])


def test_an_image_with_transparency_is_checked_on_its_colours(with_decoder: LoadedModel,
                                                             protected: Image.Image) -> None:
    served = protected.convert("RGBA")
    doc = V.report(picture(), served, [with_decoder])
    assert doc == V.report(picture(), protected, [with_decoder])


class NaNEncoder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 4, 2, 2), float("nan"))


def test_a_model_that_returns_nan_is_an_error_not_a_figure() -> None:
    broken = LoadedModel(name="broken", path=Path("broken"), kind="AutoencoderKL",
                         encoder=NaNEncoder(), decoder=None)
    with pytest.raises(V.VerifyError, match="broken returned NaN or infinite latents"):
        V.report(picture(), picture(), [broken])
