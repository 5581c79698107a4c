"""Adversarial perturbation against latent-diffusion image encoders (the "encoder attack").

What it does
    Latent diffusion models (Stable Diffusion 1.x/2.x/XL/3, FLUX, …) never look at pixels:
    every image is first mapped to a latent by a VAE encoder, for training, fine-tuning
    (LoRA, DreamBooth) and img2img alike. ``protect_image`` searches, by projected gradient
    descent (PGD) with sign steps under an L∞ budget, for a small change to the pixels that
    moves the encoder's latent toward the latent of a fixed, procedurally generated texture
    and away from the clean latent. Several encoders can be attacked at once; the loss is
    the sum of each encoder's loss normalised by its own clean-to-target distance.

    The budget is shaped by local texture: flat colour areas get a fraction (``FLOOR``) of
    the budget, busy areas the full budget, and no pixel ever moves by more than the
    strength's budget (also after 8-bit quantisation: the delta is truncated toward zero).

    Robustness is sought by expectation over transformations (EOT): during the search the
    perturbed image goes through random downscaling (including to a model's training
    resolution, 512–1024 px on the short side), JPEG (a real Pillow round trip, with a
    straight-through gradient), blur, Gaussian noise and small integer shifts. The
    transformations are drawn once per image as a small pool whose clean and target latents
    are computed up front, so an optimisation step costs one encoder forward and backward
    (bench: 1.01–1.03× a bare forward+backward); sign steps carry momentum (MI-FGSM), which
    helps the perturbation transfer across the transformations.

    The defaults (``FLOOR``, ``TOWARD_WEIGHT``, ``MOMENTUM``, the pool, the identity share and
    the step sizes) were chosen by a sweep on a real trained encoder (bench/RESULTS.md), not
    on random weights: the "away" term does most of the work; the target term keeps the
    latent heading somewhere specific (texture) rather than anywhere.

What it protects against, honestly
    * Only the encoders it was computed on. SD 1.x/2.x share a VAE; SDXL, SD3 and FLUX each
      have their own. An unknown or future encoder may be unaffected.
    * Only the purifications it optimised over, and only partly: JPEG, downscaling, blur
      and noise weaken it; stronger cleaning (diffusion-based purification, noisy
      upscaling, adversarial training of the model, heavy re-compression, crops at other
      scales) can remove it. Whether anything survived must be measured on the bytes that
      are actually served; this module makes no such claim.
    * It does not hide the image, stop a person from copying it, or stop models that do not
      use an attacked encoder (pixel-space models, CLIP-only pipelines).

Numerics and determinism
    Image and perturbation stay in fp32 (a 1/255 step would vanish in bf16); only the
    encoder forward runs under bf16 autocast on CUDA; CPU runs fp32. All randomness comes
    from a ``torch.Generator`` on the CPU seeded per call, so a given seed gives the same
    result on the same device and software — bit for bit on the CPU; on CUDA the same
    transformations and starting point, but some backward kernels (interpolation, cuDNN's
    convolution algorithms) add in a nondeterministic order, so a few sign steps, and thus
    the last bits of a result, may differ between runs. Large images are processed as overlapping tiles
    of one shared full-image perturbation (each tile's gradient is weighted by a raised
    cosine window), so there are no tile seams by construction. If the device runs out of
    memory the tile size is halved and the search restarts from the same seed (the progress
    reported never goes backwards: it waits until the restarted search passes it).

The profile (``DEFAULT_PROFILE`` or the lighter ``CPU_PROFILE``) and the strength are
always passed in explicitly; this module never changes them on its own. Nothing here
assumes the encoder downscales by 8: the clean image and the target go through the same
transformation as the perturbed image, and their latents are compared at whatever shape
the encoder produces.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

__all__ = [
    "CPU_PROFILE",
    "DEFAULT_PROFILE",
    "FLOOR",
    "PROFILES",
    "STRENGTHS",
    "KLEncoder",
    "Profile",
    "Strength",
    "TinyEncoder",
    "as_encoder",
    "blend_window",
    "budget_map",
    "device_of",
    "encode",
    "latent_scaling",
    "perturb",
    "protect_image",
    "target_texture",
    "tile_starts",
]

# ---------------------------------------------------------------------------------------
# Configuration as data
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strength:
    """An L∞ budget (in [0, 1] pixel units) with its PGD schedule."""

    name: str
    epsilon: float
    steps: int
    step_size: float


STRENGTHS: dict[str, Strength] = {
    "low": Strength("low", 4 / 255, 40, 0.5 / 255),
    "default": Strength("default", 8 / 255, 60, 1.5 / 255),
    "high": Strength("high", 16 / 255, 100, 1.5 / 255),
}


@dataclass(frozen=True)
class Profile:
    """How much compute the search may use. Chosen by the worker, never by ``perturb``.

    ``max_side``: the perturbation is searched at most at this longest side and the delta
    upsampled to full resolution (``None``: always full resolution). ``tile``/``overlap``:
    tiling of the working image. ``steps_scale`` multiplies the strength's steps.
    ``eot_samples``: transformations per step, drawn from a pool of ``eot_pool`` random
    ones fixed for the run (plus the identity, drawn with probability ``identity_share``);
    the clean and target latents under each are computed once, so a step costs one encoder
    forward and backward. ``batch``: tiles per encoder call.
    ``train_sides``: short sides a model is trained at (the EOT downscale targets).
    ``min_tile``: the OOM fallback gives up below this tile size. ``transforms``: the EOT
    transformations used (all by default; tests narrow them).
    """

    name: str
    max_side: int | None = None
    tile: int = 1024
    overlap: int = 64
    steps_scale: float = 1.0
    eot_samples: int = 1
    eot_pool: int = 8
    identity_share: float = 0.55
    batch: int = 2
    train_sides: tuple[int, ...] = (512, 768, 1024)
    jpeg_quality: tuple[int, int] = (60, 95)
    min_tile: int = 32
    transforms: tuple[str, ...] = ("shift", "downscale", "blur", "jpeg", "noise")


DEFAULT_PROFILE = Profile("default")
#: The lighter profile for workers without a GPU: the search runs at most at 384 px on the
#: long side (the delta is upsampled), with a quarter of the steps and a small pool of
#: transformations. A 1024² upload at ``default`` takes about 5 minutes on 2 cores with the
#: SD VAE (bench/RESULTS.md), and is protected less well than with the full profile.
CPU_PROFILE = Profile("cpu", max_side=384, tile=384, overlap=32, steps_scale=0.25, eot_pool=2,
                      identity_share=0.5, batch=1)
PROFILES: dict[str, Profile] = {p.name: p for p in (DEFAULT_PROFILE, CPU_PROFILE)}

#: Fraction of the budget that perfectly flat areas get.
FLOOR = 0.8
#: Local standard deviation (in [0, 1] units) at which an area counts as fully "busy".
BUSY_STD = 0.06
#: Weight of the "toward the target" term relative to "away from the clean latent".
TOWARD_WEIGHT = 0.05
#: Momentum of the sign steps (MI-FGSM); 0 for plain PGD.
MOMENTUM = 0.9
#: Smallest side a transformation may shrink a tile to (at least two latent cells of the
#: encoder that shrinks most, whatever its factor).
MIN_SIDE = 16
#: Seed of the fixed target texture (the same for every image and every call).
TEXTURE_SEED = 0x5EA5E1

_OOM_TYPES: tuple[type[BaseException], ...] = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
    if isinstance(t, type)
)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, _OOM_TYPES):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


# ---------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------


def latent_scaling(vae: nn.Module) -> tuple[float, float]:
    """A diffusers VAE's ``(scaling_factor, shift_factor)`` (1 and 0 when it has none)."""
    config = getattr(vae, "config", None)
    return (float(getattr(config, "scaling_factor", None) or 1.0),
            float(getattr(config, "shift_factor", None) or 0.0))


class KLEncoder(nn.Module):
    """A diffusers ``AutoencoderKL`` as an image-in-[0, 1] → latent module.

    Returns the posterior mean, shifted and scaled by the VAE's ``shift_factor`` and
    ``scaling_factor`` so that latents of different VAEs have comparable (≈ unit) range.
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scale, self.shift = latent_scaling(vae)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        posterior = self.vae.encode(x * 2 - 1).latent_dist  # type: ignore[operator]
        mean: torch.Tensor = posterior.mean
        return (mean - self.shift) * self.scale


class TinyEncoder(nn.Module):
    """A diffusers ``AutoencoderTiny`` (TAESD, TAEF2, …) as an image-in-[0, 1] → latent module."""

    def __init__(self, taesd: nn.Module) -> None:
        super().__init__()
        self.taesd = taesd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latents: torch.Tensor = self.taesd.encode(x * 2 - 1).latents  # type: ignore[operator]
        return latents


def as_encoder(model: nn.Module) -> nn.Module:
    """Wrap diffusers VAEs; any other module is taken as-is (it must map [0, 1] → latent)."""
    name = type(model).__name__
    if name == "AutoencoderKL":
        return KLEncoder(model)
    if name == "AutoencoderTiny":
        return TinyEncoder(model)
    if not isinstance(model, nn.Module):
        raise TypeError(f"an encoder must be a torch module, not {type(model).__name__}")
    return model


def device_of(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _dtype_of(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        return p.dtype
    return torch.float32


def encode(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run one encoder on a batch in [0, 1]; fp32 in, fp32 out.

    An encoder whose weights are bf16 gets a bf16 input; an fp32 encoder runs under bf16
    autocast on CUDA and in fp32 elsewhere. The image and the perturbation never leave fp32.
    """
    device = device_of(encoder)
    inp = x.to(device)
    if _dtype_of(encoder) == torch.bfloat16:
        z = encoder(inp.to(torch.bfloat16))
    elif device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            z = encoder(inp)
    else:
        z = encoder(inp)
    return z.float().to(x.device)


# ---------------------------------------------------------------------------------------
# Budget map and target texture
# ---------------------------------------------------------------------------------------


def budget_map(x: torch.Tensor, epsilon: float, *, floor: float | None = None,
               window: int = 7) -> torch.Tensor:
    """Per-pixel L∞ budget for ``x`` (N, C, H, W) in [0, 1]: shape (N, 1, H, W).

    Local standard deviation over a ``window`` box, averaged over channels, normalised by
    ``BUSY_STD`` and clipped to [0, 1], then smoothed; the budget is
    ``epsilon * (floor + (1 - floor) * texture)``, so it lies in [floor·ε, ε] everywhere.
    """
    floor = FLOOR if floor is None else floor
    pad = window // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(padded, window, stride=1)
    mean_sq = F.avg_pool2d(padded * padded, window, stride=1)
    std = (mean_sq - mean * mean).clamp_min(0).sqrt().mean(dim=1, keepdim=True)
    texture = (std / BUSY_STD).clamp(0, 1)
    texture = F.avg_pool2d(F.pad(texture, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return (epsilon * (floor + (1 - floor) * texture)).clamp(0, epsilon)


def target_texture(height: int, width: int, *, top: int = 0, left: int = 0,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed target: a high-contrast pattern of oriented gratings, (3, H, W) in [0, 1].

    Defined analytically on pixel coordinates, so any crop (``top``, ``left``) of it agrees
    with the same region of a larger one. Generated from ``TEXTURE_SEED``; no files.
    """
    g = torch.Generator().manual_seed(TEXTURE_SEED)
    n = 6
    angles = torch.rand(n, generator=g) * math.pi
    periods = 5 + torch.rand(n, generator=g) * 19  # 5–24 px
    phases = torch.rand(3, n, generator=g) * 2 * math.pi
    weights = 0.5 + torch.rand(3, n, generator=g)
    ys = torch.arange(top, top + height, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(left, left + width, dtype=torch.float32).view(1, 1, -1)
    out = torch.zeros(3, height, width)
    for i in range(n):
        proj = (xs * torch.cos(angles[i]) + ys * torch.sin(angles[i])) * (2 * math.pi / periods[i])
        out += weights[:, i].view(3, 1, 1) * torch.sin(proj + phases[:, i].view(3, 1, 1))
    out = torch.tanh(2.5 * out / weights.sum(dim=1).view(3, 1, 1) * 2)
    return (0.5 + 0.5 * out).to(device)


# ---------------------------------------------------------------------------------------
# Tiling
# ---------------------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``length`` with at least
    ``overlap`` between neighbours, evenly spaced."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(size: int, starts: list[int], index: int) -> torch.Tensor:
    """1-D raised-cosine window for tile ``index``: ramps only where a neighbour overlaps."""
    w = torch.ones(size)
    start = starts[index]
    if index > 0:
        ov = starts[index - 1] + size - start
        if ov > 0:
            t = (torch.arange(ov, dtype=torch.float32) + 0.5) / ov
            w[:ov] = 0.5 - 0.5 * torch.cos(math.pi * t)
    if index + 1 < len(starts):
        ov = start + size - starts[index + 1]
        if ov > 0:
            t = (torch.arange(ov, dtype=torch.float32) + 0.5) / ov
            w[size - ov:] = torch.minimum(w[size - ov:], 0.5 + 0.5 * torch.cos(math.pi * t))
    return w


def blend_window(height: int, width: int, ys: list[int], xs: list[int], iy: int, ix: int) -> torch.Tensor:
    """2-D raised-cosine window (H, W) of tile (iy, ix); neighbouring windows sum to ~1."""
    return _ramp(height, ys, iy).view(-1, 1) * _ramp(width, xs, ix).view(1, -1)


@dataclass
class _Tiles:
    size: tuple[int, int]
    boxes: list[tuple[int, int]]  # (top, left)
    windows: torch.Tensor  # (T, 1, h, w), > 0 everywhere


def _tiles(height: int, width: int, tile: int, overlap: int, device: torch.device) -> _Tiles:
    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
    boxes, windows = [], []
    for iy, top in enumerate(ys):
        for ix, left in enumerate(xs):
            boxes.append((top, left))
            windows.append(blend_window(th, tw, ys, xs, iy, ix).clamp_min(1e-3))
    return _Tiles((th, tw), boxes, torch.stack(windows).unsqueeze(1).to(device))


def _crop(x: torch.Tensor, boxes: Sequence[tuple[int, int]], size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    return torch.stack([x[:, t:t + h, s:s + w] for t, s in boxes])


# ---------------------------------------------------------------------------------------
# Expectation over transformations
# ---------------------------------------------------------------------------------------


class _JpegStraightThrough(torch.autograd.Function):
    """Forward: a real Pillow JPEG round trip at ``quality``. Backward: identity."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, quality: int) -> torch.Tensor:
        arrays = (x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        out = []
        for a in arrays:
            buf = io.BytesIO()
            Image.fromarray(a, "RGB").save(buf, "JPEG", quality=int(quality))
            buf.seek(0)
            with Image.open(buf) as im:
                out.append(np.asarray(im.convert("RGB"), dtype=np.float32) / 255)
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device, x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


def _rand(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).to(x.device, x.dtype)
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > radius else "replicate"
    x = F.pad(x, (radius, radius, radius, radius), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    padded = F.pad(x, (p, p, p, p), mode="replicate")
    return padded[..., p - dy:p - dy + h, p - dx:p - dx + w]


def _eot_transform(g: torch.Generator, image_short_side: int, profile: Profile,
                   min_side: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Draw one random transformation (the same for every tile of a batch in this step)."""
    shift = (int(torch.randint(-2, 3, (), generator=g)), int(torch.randint(-2, 3, (), generator=g)))
    scale = 1.0
    r = _rand(g)
    if r < 0.4 and profile.train_sides:
        side = profile.train_sides[int(torch.randint(len(profile.train_sides), (), generator=g))]
        scale = min(1.0, side / max(1, image_short_side))
    elif r < 0.7:
        scale = 0.5 + 0.5 * _rand(g)
    blur = 0.3 + 0.9 * _rand(g) if _rand(g) < 0.3 else 0.0
    q_low, q_high = profile.jpeg_quality
    quality = q_low + int((q_high - q_low + 1) * _rand(g)) if _rand(g) < 0.5 else 0
    noise = 0.02 * _rand(g) if _rand(g) < 0.5 else 0.0
    noise_seed = int(torch.randint(2**31 - 1, (), generator=g))

    use = set(profile.transforms)
    shift = shift if "shift" in use else (0, 0)
    scale = scale if "downscale" in use else 1.0
    blur = blur if "blur" in use else 0.0
    quality = quality if "jpeg" in use else 0
    noise = noise if "noise" in use else 0.0

    def apply(x: torch.Tensor) -> torch.Tensor:
        x = _shift(x, *shift)
        h, w = x.shape[-2:]
        if scale < 1.0:
            size = (max(min_side, round(h * scale)), max(min_side, round(w * scale)))
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if blur:
            x = _gaussian_blur(x, blur)
        if quality:
            x = _JpegStraightThrough.apply(x, quality)
        if noise:
            n = torch.randn(x.shape, generator=torch.Generator().manual_seed(noise_seed))
            x = x + noise * n.to(x.device)
        return x.clamp(0, 1)

    return apply


# ---------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------


def _batches(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class _Reference:
    """Latents of the clean tile and the target under one transformation (no gradient)."""

    clean: torch.Tensor
    target: torch.Tensor
    norm: torch.Tensor  # squared clean-to-target distance per tile: the loss's unit


def _search(x: torch.Tensor, budget: torch.Tensor, encoders: list[nn.Module], strength: Strength,
            profile: Profile, tile: int, seed: int,
            progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """PGD on one shared full-image delta, tile by tile. ``x``: (3, H, W); returns delta.

    The transformations are drawn once, as a pool, and the clean and target latents under
    each are computed up front: a step then costs one encoder forward and backward per
    encoder and tile batch, and nothing else of note.
    """
    g = torch.Generator().manual_seed(seed)
    _, height, width = x.shape
    tiles = _tiles(height, width, tile, profile.overlap, x.device)
    n = len(tiles.boxes)
    batches = list(_batches(n, profile.batch))
    target = target_texture(height, width, device=x.device)
    steps = max(1, round(strength.steps * profile.steps_scale))
    short = min(height, width)
    pool: list[Callable[[torch.Tensor], torch.Tensor]] = [_identity]
    refs: dict[tuple[int, int, int], _Reference] = {}

    def reference(bi: int, ti: int) -> None:
        sl = batches[bi]
        clean = _crop(x, tiles.boxes[sl], tiles.size)
        goal = _crop(target, tiles.boxes[sl], tiles.size)
        pair = torch.cat([pool[ti](clean), pool[ti](goal)])
        for ei, enc in enumerate(encoders):
            zc, zt = encode(enc, pair).chunk(2)
            norm = (zc - zt).pow(2).mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            refs[ei, bi, ti] = _Reference(zc, zt, norm)

    with torch.no_grad():
        for bi in range(len(batches)):
            reference(bi, 0)
        # How far the encoders shrink a tile, read off their latents (never assumed): no
        # transformation may shrink a tile below two latent cells of the coarsest one.
        factor = max(math.ceil(max(tiles.size[0] / max(1, ref.clean.shape[-2]),
                                   tiles.size[1] / max(1, ref.clean.shape[-1])))
                     for (_e, bi, _t), ref in refs.items() if bi == 0)
        if profile.transforms:
            min_side = max(MIN_SIDE, 2 * factor)
            pool += [_eot_transform(g, short, profile, min_side) for _ in range(profile.eot_pool)]
        for bi in range(len(batches)):
            for ti in range(1, len(pool)):
                reference(bi, ti)

    noise = (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device)
    delta = (noise * budget * 0.5).requires_grad_(True)
    velocity = torch.zeros_like(x)
    for step in range(steps):
        grad = torch.zeros_like(x)
        chosen = [0 if len(pool) == 1 or _rand(g) < profile.identity_share
                  else 1 + int(torch.randint(len(pool) - 1, (), generator=g))
                  for _ in range(profile.eot_samples)]
        for bi, sl in enumerate(batches):
            boxes = tiles.boxes[sl]
            w = tiles.windows[sl]
            clean = _crop(x, boxes, tiles.size)
            d = _crop(delta, boxes, tiles.size)
            # Forward value x + d; gradient to d weighted by the tile's blending window.
            adv = clean + d * w + (d * (1 - w)).detach()
            loss = torch.zeros((), device=x.device)
            for ti in chosen:
                # The clean image and the target went through the same transformation, so
                # the latents compared are aligned whatever the encoder's downscaling is.
                xt = pool[ti](adv)
                for ei, enc in enumerate(encoders):
                    ref = refs[ei, bi, ti]
                    z = encode(enc, xt)
                    toward = (z - ref.target).pow(2).mean(dim=(1, 2, 3), keepdim=True)
                    away = (z - ref.clean).pow(2).mean(dim=(1, 2, 3), keepdim=True)
                    loss = loss + ((TOWARD_WEIGHT * toward - away) / ref.norm).sum()
            (g_delta,) = torch.autograd.grad(loss, delta)
            grad += g_delta
        with torch.no_grad():
            # Step size decays linearly to a third over the run.
            size = strength.step_size * (1 - (2 / 3) * step / max(1, steps - 1))
            if MOMENTUM:
                velocity.mul_(MOMENTUM).add_(grad / grad.abs().mean().clamp_min(1e-12))
                grad = velocity
            delta -= size * grad.sign()
            delta.copy_(torch.maximum(torch.minimum(delta, budget), -budget))
            delta.copy_((x + delta).clamp(0, 1) - x)
        if progress is not None:
            progress((step + 1) / steps)
    return delta.detach()


def perturb(x: torch.Tensor, encoders: nn.Module | Sequence[nn.Module], *,
            strength: str | Strength = "default", seed: int = 0,
            profile: Profile = DEFAULT_PROFILE,
            progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Protect an image tensor (3, H, W) in [0, 1]; returns the perturbed tensor (fp32).

    ``|result - x| <= budget_map(x, epsilon)`` everywhere, and ``result`` stays in [0, 1].
    """
    if isinstance(strength, str):
        if strength not in STRENGTHS:
            raise ValueError(f"unknown strength {strength!r}; expected one of {sorted(STRENGTHS)}")
        strength = STRENGTHS[strength]
    mods = [encoders] if isinstance(encoders, nn.Module) else list(encoders)
    if not mods:
        raise ValueError("at least one encoder is needed")
    wrapped = [as_encoder(m) for m in mods]
    x = x.detach().float()
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError("expected an RGB image tensor of shape (3, H, W)")
    device = device_of(wrapped[0])
    x = x.to(device)
    full_budget = budget_map(x.unsqueeze(0), strength.epsilon)[0]

    height, width = x.shape[-2:]
    work = x
    if profile.max_side is not None and max(height, width) > profile.max_side:
        s = profile.max_side / max(height, width)
        size = (max(1, round(height * s)), max(1, round(width * s)))
        work = F.interpolate(x.unsqueeze(0), size=size, mode="bilinear", align_corners=False,
                             antialias=True)[0]
    budget = budget_map(work.unsqueeze(0), strength.epsilon)[0]

    reported = 0.0

    def forward_only(fraction: float) -> None:
        nonlocal reported
        if progress is not None and fraction > reported:
            reported = fraction
            progress(fraction)

    training = [m.training for m in wrapped]
    for m in wrapped:
        m.eval()
    try:
        tile = profile.tile
        while True:
            try:
                delta = _search(work, budget, wrapped, strength, profile, tile, seed, forward_only)
                break
            except Exception as exc:
                if not _is_oom(exc):
                    raise
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                if tile // 2 < profile.min_tile:
                    raise
                tile //= 2
    finally:
        for m, was in zip(wrapped, training, strict=True):
            m.train(was)

    if delta.shape[-2:] != x.shape[-2:]:
        # Bilinear upsampling is a convex combination, so it stays within the budget.
        delta = F.interpolate(delta.unsqueeze(0), size=(height, width), mode="bilinear",
                              align_corners=False)[0]
    delta = torch.maximum(torch.minimum(delta, full_budget), -full_budget)
    return (x + delta).clamp(0, 1)


def protect_image(image: Image.Image, encoders: nn.Module | Sequence[nn.Module], *,
                  strength: str | Strength = "default", seed: int = 0,
                  profile: Profile = DEFAULT_PROFILE,
                  progress: Callable[[float], None] | None = None) -> Image.Image:
    """Return a protected copy of ``image`` (RGB, same size). See the module docstring.

    The 8-bit result never differs from the RGB input by more than the strength's budget:
    the delta is truncated toward zero before quantisation.
    """
    rgb = image.convert("RGB")
    original = np.asarray(rgb, dtype=np.uint8)
    x = torch.from_numpy(original.astype(np.float32) / 255).permute(2, 0, 1)
    result = perturb(x, encoders, strength=strength, seed=seed, profile=profile, progress=progress)
    delta = (result.cpu().permute(1, 2, 0).numpy() - original.astype(np.float32) / 255) * 255
    steps = np.trunc(delta).astype(np.int16)  # toward zero: never beyond the budget
    out = np.clip(original.astype(np.int16) + steps, 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")

