"""What a protection model is called: in each image's protection document, the worker's
log and the studio's check page — the same name everywhere, and without torch, so the
web process can name the configured models (``EASEL_VAE_PATH``) without loading them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# The weights file of a diffusers folder (``diffusion_pytorch_model[.variant].safetensors``).
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"


def readable_name(path: Path) -> str:
    """A single file's stem, a diffusers folder's name, a pipeline's name for its ``vae/``."""
    if path.is_file():
        if not path.name.startswith(DIFFUSERS_WEIGHTS):
            return path.stem
        path = path.parent  # .../sd-vae-ft-mse/diffusion_pytorch_model.safetensors
    if path.name == "vae" and path.parent.name:
        return path.parent.name  # .../stable-diffusion-v1-5/vae → the pipeline's name
    return path.name or str(path)


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` with each repeat numbered (``sd-vae``, ``sd-vae-2``), never colliding."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        if count > 1:
            numbered = f"{name}-{count}"
            while numbered in seen:
                count += 1
                numbered = f"{name}-{count}"
            seen[numbered] = 1
            name = numbered
        out.append(name)
    return out


def model_names(paths: Iterable[Path]) -> list[str]:
    """The names of the models at ``paths``, in order, as the protect worker names them."""
    return unique_names(readable_name(path) for path in paths)
