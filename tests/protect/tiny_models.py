"""A tiny random VAE saved like a real one, and a perturbation profile cheap enough for
job tests (each protection well under a second on a CPU). Torch is imported lazily, so
test modules and the worker harness can import this without the protect extra."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def tiny_kl(**config: Any) -> Any:
    """A random AutoencoderKL with a few thousand parameters (seed 0), in eval mode."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae: Any = AutoencoderKL(in_channels=3, out_channels=3,
                             down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                             up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
                             block_out_channels=(8, 16), layers_per_block=1, latent_channels=4,
                             norm_num_groups=4, sample_size=32, **config)
    return vae.eval()


def tiny_taesd() -> Any:
    """A random AutoencoderTiny (seed 1), in eval mode."""
    import torch
    from diffusers import AutoencoderTiny

    torch.manual_seed(1)
    vae: Any = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8), decoder_block_out_channels=(8, 8, 8),
                               num_encoder_blocks=(1, 1, 1), num_decoder_blocks=(1, 1, 1),
                               latent_channels=4)
    return vae.eval()


def save_tiny_vae(folder: Path) -> Path:
    """:func:`tiny_kl` in diffusers' folder layout."""
    tiny_kl().save_pretrained(folder)
    return folder


def fast_profile(name: str) -> Any:
    """The profile ``name`` cut down to a few small tiles and a few steps (same name, so the
    job records it as usual)."""
    from protect.perturb import PROFILES

    return dataclasses.replace(PROFILES[name], max_side=None, tile=48, overlap=16, steps_scale=0.05,
                               eot_samples=1, batch=4, train_sides=(32,), min_tile=16,
                               transforms=("blur", "noise"))


def install_fast_profiles() -> dict[str, Any]:
    """Replace every profile by its fast version (the worker harness; tests use monkeypatch
    with :func:`fast_profile`). Returns the replaced ones."""
    from protect.perturb import PROFILES

    replaced = dict(PROFILES)
    for name in list(PROFILES):
        PROFILES[name] = fast_profile(name)
    return replaced
