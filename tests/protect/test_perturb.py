"""The perturbation core with tiny random diffusers VAEs built here (no downloads, no files)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import numpy as np
import torch
from PIL import Image

from protect import perturb as P
from tests.protect.tiny_models import tiny_kl, tiny_taesd

pytestmark = pytest.mark.torch

FAST = P.Profile("test", max_side=None, tile=48, overlap=16, steps_scale=1.0, eot_samples=1, batch=4,
                 train_sides=(32,), min_tile=16, transforms=("blur", "jpeg", "noise"))
# Tiny random VAEs are far less robust than trained ones, so the fast tests optimise over the
# milder transformations; one test runs the full set.
QUICK = P.Strength("quick", 8 / 255, 6, 2 / 255)


@pytest.fixture(scope="module", autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def kl_vae() -> Any:
    return tiny_kl()


@pytest.fixture(scope="module")
def tiny_vae() -> Any:
    return tiny_taesd()


def picture(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """Half flat colour, half busy noise and edges."""
    rng = np.random.default_rng(seed)
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[:, :] = (200, 120, 60)
    busy = rng.integers(0, 256, (height, width // 2, 3), dtype=np.uint8)
    a[:, width // 2:] = busy
    a[height // 4: height // 2, 4: width // 3] = (20, 40, 230)
    return Image.fromarray(a, "RGB")


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def latent_distance(encoder: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> float:
    with torch.no_grad():
        return float((P.encode(encoder, a.unsqueeze(0)) - P.encode(encoder, b.unsqueeze(0))).norm())


def test_strengths_are_data_with_growing_budgets_and_steps() -> None:
    low, default, high = (P.STRENGTHS[k] for k in ("low", "default", "high"))
    assert (low.epsilon, default.epsilon, high.epsilon) == (4 / 255, 8 / 255, 16 / 255)
    assert low.steps < default.steps < high.steps
    assert P.PROFILES["cpu"].steps_scale < P.PROFILES["default"].steps_scale
    with pytest.raises(ValueError, match="unknown strength"):
        P.perturb(torch.zeros(3, 8, 8), torch.nn.Identity(), strength="max")


def test_budget_map_is_shaped_by_texture_and_never_above_the_budget() -> None:
    x = as_tensor(picture()).unsqueeze(0)
    eps = 8 / 255
    b = P.budget_map(x, eps)
    assert b.shape == (1, 1, 64, 64)
    assert float(b.max()) <= eps + 1e-7  # fp32
    assert float(b.min()) >= P.FLOOR * eps - 1e-7
    flat, busy = b[..., 40:, 2:12].mean(), b[..., :, 40:].mean()
    assert float(flat) == pytest.approx(P.FLOOR * eps, rel=0.03)  # fp32 cancellation
    assert float(busy) > 0.9 * eps


def test_target_texture_is_fixed_busy_and_tile_consistent() -> None:
    t = P.target_texture(40, 50)
    assert t.shape == (3, 40, 50) and float(t.min()) >= 0 and float(t.max()) <= 1
    assert torch.equal(t, P.target_texture(40, 50))
    assert torch.allclose(P.target_texture(10, 12, top=7, left=9), t[:, 7:17, 9:21], atol=1e-5)
    assert float(t.std()) > 0.2


@pytest.mark.parametrize("strength", ["low", "default", "high"])
def test_the_budget_is_never_exceeded(kl_vae: Any, strength: str) -> None:
    image = picture()
    s = dataclasses.replace(P.STRENGTHS[strength], steps=4)
    out = P.protect_image(image, kl_vae, strength=s, seed=3, profile=FAST)
    assert out.mode == "RGB" and out.size == image.size
    a, b = np.asarray(image, dtype=np.int16), np.asarray(out, dtype=np.int16)
    diff = np.abs(b - a)
    assert diff.max() <= round(s.epsilon * 255)
    assert diff.max() >= 1
    per_pixel = P.budget_map(as_tensor(image).unsqueeze(0), s.epsilon)[0, 0].numpy() * 255
    assert (diff <= per_pixel[..., None] + 1e-4).all()
    # Flat areas get visibly less than busy ones.
    assert diff[40:, 2:12].mean() < diff[:, 40:].mean()


def test_the_tensor_result_respects_the_per_pixel_budget_and_range(tiny_vae: Any) -> None:
    x = as_tensor(picture(56, 40))
    y = P.perturb(x, tiny_vae, strength=QUICK, seed=1, profile=FAST)
    budget = P.budget_map(x.unsqueeze(0), QUICK.epsilon)[0]
    assert ((y - x).abs() <= budget + 1e-6).all()
    assert float(y.min()) >= 0 and float(y.max()) <= 1


@pytest.mark.parametrize("which", ["kl", "tiny"])
def test_the_latent_moves_much_further_than_same_budget_noise(kl_vae: Any,
                                                              tiny_vae: Any, which: str) -> None:
    vae = kl_vae if which == "kl" else tiny_vae
    encoder = P.as_encoder(vae)
    assert isinstance(encoder, P.KLEncoder if which == "kl" else P.TinyEncoder)
    x = as_tensor(picture())
    strength = P.Strength("t", 8 / 255, 16, 2 / 255)
    y = P.perturb(x, vae, strength=strength, seed=0, profile=FAST)
    budget = P.budget_map(x.unsqueeze(0), strength.epsilon)[0]
    g = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
    noisy = (x + signs * budget).clamp(0, 1)  # the full budget everywhere, random signs
    adversarial = latent_distance(encoder, y, x)
    random = latent_distance(encoder, noisy, x)
    assert adversarial > 2.5 * random, (adversarial, random)


def test_the_full_eot_set_still_beats_noise(kl_vae: Any) -> None:
    full = dataclasses.replace(FAST, transforms=P.DEFAULT_PROFILE.transforms, eot_samples=2)
    x = as_tensor(picture())
    y = P.perturb(x, kl_vae, strength=P.Strength("t", 8 / 255, 12, 2 / 255), seed=0, profile=full)
    budget = P.budget_map(x.unsqueeze(0), 8 / 255)[0]
    g = torch.Generator().manual_seed(0)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1) * budget).clamp(0, 1)
    encoder = P.as_encoder(kl_vae)
    assert latent_distance(encoder, y, x) > 1.2 * latent_distance(encoder, noisy, x)


def test_deterministic_for_a_seed(kl_vae: Any) -> None:
    image = picture(48, 48)
    a = P.protect_image(image, kl_vae, strength=QUICK, seed=5, profile=FAST)
    b = P.protect_image(image, kl_vae, strength=QUICK, seed=5, profile=FAST)
    c = P.protect_image(image, kl_vae, strength=QUICK, seed=6, profile=FAST)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_blending_windows_sum_to_one_and_change_smoothly() -> None:
    height, width, tile, overlap = 40, 90, 32, 12
    ys, xs = P.tile_starts(height, tile, overlap), P.tile_starts(width, tile, overlap)
    assert len(xs) > 2 and xs[0] == 0 and xs[-1] == width - tile
    total = torch.zeros(height, width)
    stitched = torch.zeros(height, width)
    for iy, top in enumerate(ys):
        for ix, left in enumerate(xs):
            w = P.blend_window(tile, tile, ys, xs, iy, ix)
            total[top:top + tile, left:left + tile] += w
            stitched[top:top + tile, left:left + tile] += w * float(ix % 2)  # alternating 0/1 tiles
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    # A hard cut would jump by 1 between neighbouring columns; the raised cosine ramps.
    assert float(stitched.diff(dim=1).abs().max()) < 3.5 / overlap


def test_tiling_leaves_no_seams(kl_vae: Any) -> None:
    # A flat image, so the budget is uniform and any seam would stand out in the delta.
    x = torch.full((3, 40, 96), 0.5)
    tiled = dataclasses.replace(FAST, tile=32, overlap=12)
    y = P.perturb(x, kl_vae, strength=QUICK, seed=2, profile=tiled)
    delta = (y - x).abs().mean(dim=(0, 1))  # mean |delta| per column
    starts = P.tile_starts(96, 32, 12)
    assert len(starts) >= 3
    # No column (in particular none at a tile's edge) is weaker or stronger than the rest.
    assert float(delta.min()) > 0.5 * float(delta.median())
    assert float(delta.max()) < 1.5 * float(delta.median())
    jumps = (y - x).diff(dim=2).abs().mean(dim=(0, 1))
    edges = [s - 1 for s in starts[1:]] + [s + 31 for s in starts[:-1]]
    assert float(jumps[edges].max()) < 1.5 * float(jumps.median()) + 1e-6


def test_several_encoders_at_once(kl_vae: Any, tiny_vae: Any) -> None:
    x = as_tensor(picture(48, 48))
    strength = P.Strength("t", 8 / 255, 16, 2 / 255)
    both = P.perturb(x, [kl_vae, tiny_vae], strength=strength, seed=0, profile=FAST)
    budget = P.budget_map(x.unsqueeze(0), strength.epsilon)[0]
    assert ((both - x).abs() <= budget + 1e-6).all()
    g = torch.Generator().manual_seed(1)
    noisy = (x + (torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1) * budget).clamp(0, 1)
    for vae in (kl_vae, tiny_vae):
        enc = P.as_encoder(vae)
        assert latent_distance(enc, both, x) > 1.5 * latent_distance(enc, noisy, x)


class Strided(torch.nn.Module):
    """A plain module encoder (factor 3, not 8) that runs out of memory above a tile size."""

    def __init__(self, limit: int | None, error: type[BaseException] | None = None) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = torch.nn.Conv2d(3, 5, 3, stride=3)
        self.limit, self.error = limit, error
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append((int(x.shape[-2]), int(x.shape[-1])))
        if self.limit is not None and max(x.shape[-2:]) > self.limit:
            if self.error is RuntimeError:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise torch.OutOfMemoryError("injected")
        return torch.tanh(self.conv(x * 2 - 1))


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
def test_out_of_memory_halves_the_tile_and_retries(error: type[BaseException]) -> None:
    encoder = Strided(limit=32, error=error)
    x = as_tensor(picture(80, 72))
    profile = dataclasses.replace(FAST, tile=64, overlap=16, min_tile=16, train_sides=())
    y = P.perturb(x, encoder, strength=QUICK, seed=0, profile=profile)
    assert max(encoder.sizes[0]) == 64  # tried the configured tile first
    assert all(max(s) <= 32 for s in encoder.sizes[1:])
    assert float((y - x).abs().max()) > 0
    reference = P.perturb(x, Strided(limit=None), strength=QUICK, seed=0,
                          profile=dataclasses.replace(profile, tile=32))
    assert torch.equal(y, reference)  # the retry is the same search as starting at 32


def test_out_of_memory_below_the_smallest_tile_is_raised() -> None:
    with pytest.raises(torch.OutOfMemoryError):
        P.perturb(torch.rand(3, 40, 40), Strided(limit=4), strength=QUICK, seed=0,
                  profile=dataclasses.replace(FAST, tile=32, min_tile=16))


def test_other_errors_are_not_swallowed() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        P.perturb(torch.rand(3, 20, 20), Broken(), strength=QUICK, profile=FAST)


def test_working_resolution_cap_upsamples_within_budget(tiny_vae: Any) -> None:
    image = picture(90, 60)
    capped = dataclasses.replace(FAST, max_side=48)
    out = P.protect_image(image, tiny_vae, strength=QUICK, seed=0, profile=capped)
    assert out.size == image.size
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(image, dtype=np.int16))
    assert 1 <= diff.max() <= 8


def test_rgba_and_greyscale_inputs_come_back_rgb(tiny_vae: Any) -> None:
    for mode in ("RGBA", "L"):
        image = picture(32, 32).convert(mode)
        out = P.protect_image(image, tiny_vae, strength=QUICK, seed=0, profile=FAST)
        assert out.mode == "RGB" and out.size == (32, 32)


def test_jpeg_straight_through_is_a_real_round_trip_with_identity_gradient() -> None:
    x = torch.rand(1, 3, 24, 24, requires_grad=True)
    y = P._JpegStraightThrough.apply(x, 50)
    assert float((y - x).detach().abs().mean()) > 1e-3
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones_like(x))


class Coarse(torch.nn.Module):
    """An encoder that shrinks by 32 (a latent cell per 32 × 32 pixels) and fails below that."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 4, 32, stride=32)
        self.smallest: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = min(x.shape[-2:])
        self.smallest = side if self.smallest is None else min(self.smallest, side)
        if side < 32:
            raise ValueError(f"a {side}px input has no latent cell")
        return torch.tanh(self.conv(x * 2 - 1))


def test_nothing_assumes_a_downscaling_factor_of_8() -> None:
    encoder = Coarse()
    # Strong downscaling in the pool: to 16 px on the short side would leave no latent cell.
    profile = dataclasses.replace(FAST, tile=96, overlap=32, train_sides=(16,),
                                  transforms=("downscale", "jpeg"), eot_pool=6, identity_share=0.0)
    x = as_tensor(picture(96, 96))
    y = P.perturb(x, encoder, strength=QUICK, seed=0, profile=profile)
    assert encoder.smallest is not None and encoder.smallest >= 64  # two cells of 32
    assert latent_distance(encoder, y, x) > 0


def test_progress_never_goes_backwards_after_an_out_of_memory_restart() -> None:
    seen: list[float] = []
    profile = dataclasses.replace(FAST, tile=64, overlap=16, min_tile=16, train_sides=())
    x = as_tensor(picture(80, 72))

    class LateFailure(Strided):
        """Runs out of memory at 64 px only after a few steps have been reported."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if max(x.shape[-2:]) > 32 and len(seen) >= 3:
                raise torch.OutOfMemoryError("injected")
            return super().forward(x)

    P.perturb(x, LateFailure(limit=None), strength=QUICK, seed=0, profile=profile, progress=seen.append)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[-1] == 1.0


def test_an_encoder_with_bf16_weights_gets_bf16_input_and_gives_fp32(tiny_vae: Any) -> None:
    import copy

    encoder = P.as_encoder(copy.deepcopy(tiny_vae).to(torch.bfloat16))
    z = P.encode(encoder, torch.rand(1, 3, 32, 32))
    assert z.dtype == torch.float32 and z.shape[1] == 4
    y = P.perturb(as_tensor(picture(48, 48)), encoder, strength=QUICK, seed=0, profile=FAST)
    assert y.dtype == torch.float32
    assert float((y - as_tensor(picture(48, 48))).abs().max()) <= 8 / 255 + 1e-6
