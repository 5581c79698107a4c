"""Loading the VAEs that uploads are protected against, from local files only.

An admin points ``EASEL_VAE_PATH`` at one or several local VAEs; this module turns each
into an encoder for :mod:`protect.perturb` (image batch in [0, 1] → latent) and, where the
VAE has one, a decoder (latent → image in [0, 1]) for verification. Accepted:

* a diffusers folder whose ``config.json`` names ``AutoencoderKL`` or ``AutoencoderTiny``
  (``diffusion_pytorch_model.safetensors``, or a single variant such as ``.fp16``);
* a whole diffusers pipeline folder: its ``vae/`` subfolder is used;
* a single ``.safetensors`` file with the diffusers ``config.json`` of that VAE beside it,
  as ``<stem>.json`` or ``config.json``. Both the diffusers key layout and the original
  LDM/CompVis layout of Stable Diffusion VAE files (``encoder.down.0.block.0…``, as in
  ``vae-ft-mse-840000-ema-pruned.safetensors``) load; the latter through diffusers' own
  converter.

What it must never do: download anything (``HF_HUB_OFFLINE=1`` is set before diffusers is
imported, and every load is ``local_files_only``), unpickle a checkpoint (single files are
safetensors only), or show an admin a raw traceback: every failure is a
:class:`ModelLoadError` with one sentence that names the path and says what to fix.

Models are loaded once per process (:func:`load_models` caches them), in fp32 with every
parameter frozen; ``perturb`` runs the encoder under bf16 autocast on CUDA by itself.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from protect.naming import DIFFUSERS_WEIGHTS, readable_name, unique_names
from protect.perturb import PROFILES, STRENGTHS, Profile, as_encoder, device_of, latent_scaling
from server.settings import Settings

__all__ = [
    "KINDS",
    "KLDecoder",
    "LoadedModel",
    "ModelLoadError",
    "ProtectionModels",
    "TinyDecoder",
    "clear_cache",
    "is_ldm_layout",
    "load_model",
    "load_models",
    "resolve_device",
    "resolve_profile",
]

log = logging.getLogger(__name__)

#: The diffusers classes Easel can attack (``_class_name`` in a VAE's ``config.json``).
KINDS = ("AutoencoderKL", "AutoencoderTiny")
#: Prefixes a whole-model LDM checkpoint puts before its VAE keys.
_LDM_PREFIXES = ("first_stage_model.", "vae.")
_WEIGHTS = DIFFUSERS_WEIGHTS


class ModelLoadError(Exception):
    """A configured model cannot be used; ``message`` is one sentence for the admin."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """One VAE, ready for ``protect_image``."""

    name: str  # readable: folder name or file stem, e.g. "sd-vae-ft-mse"
    path: Path
    kind: str  # one of KINDS
    encoder: nn.Module  # image batch in [0, 1] (N, 3, H, W) -> latent; eval, frozen
    decoder: Callable[[torch.Tensor], torch.Tensor] | None  # latent -> image in [0, 1]
    # What the perturbation search runs: on CUDA a copy of the encoder with bf16 weights
    # (GroupNorm then runs in bf16 too: a step is ~25 % faster than fp32 weights under
    # autocast on an H100, with the same efficacy on taef2 — bench/RESULTS.md); None: the
    # encoder itself. Verification always measures with ``encoder``.
    search_encoder: nn.Module | None = None


@dataclass(frozen=True)
class ProtectionModels:
    """Everything the protection worker needs, resolved once from the settings."""

    models: tuple[LoadedModel, ...]
    device: torch.device
    profile: Profile
    strength: str

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def encoders(self) -> list[nn.Module]:
        """The encoders the perturbation search runs (``search_encoder`` where there is one)."""
        return [m.search_encoder or m.encoder for m in self.models]


class KLDecoder(nn.Module):
    """Inverse of ``perturb.KLEncoder``: a latent in its scaled space → image in [0, 1]."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scale, self.shift = latent_scaling(vae)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        latent = z.to(device_of(self.vae)) / self.scale + self.shift
        sample: torch.Tensor = self.vae.decode(latent).sample  # type: ignore[operator]
        return ((sample.float() + 1) / 2).clamp(0, 1).to(z.device)


class TinyDecoder(nn.Module):
    """Inverse of ``perturb.TinyEncoder``. ``AutoencoderTiny`` takes and returns raw
    latents (its ``scale_latents`` is only for storing them as bytes) and decodes to
    [-1, 1], like the other diffusers VAEs."""

    def __init__(self, taesd: nn.Module) -> None:
        super().__init__()
        self.taesd = taesd

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sample: torch.Tensor = self.taesd.decode(z.to(device_of(self.taesd))).sample  # type: ignore[operator]
        return ((sample.float() + 1) / 2).clamp(0, 1).to(z.device)


# ---------------------------------------------------------------------------------------
# Devices and profiles
# ---------------------------------------------------------------------------------------

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(value: str) -> torch.device:
    """``auto`` → the first GPU if there is one, else the CPU; ``cpu``; ``cuda[:N]``.

    Asking for a GPU that is not there is an error, never a silent fall back to the CPU
    (which would be many times slower than the admin planned for)."""
    word = value.strip().lower()
    if word == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if word == "cpu":
        return torch.device("cpu")
    match = _CUDA_RE.match(word)
    if match is None:
        raise ModelLoadError(f"EASEL_PROTECT_DEVICE={value!r} must be auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"EASEL_PROTECT_DEVICE={value!r} asks for a GPU, but torch sees no CUDA device "
            "(is a CUDA build of torch installed?); use auto or cpu")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ModelLoadError(f"EASEL_PROTECT_DEVICE={value!r}: there is no GPU {index} ({count} found)")
    return torch.device("cuda", index)


def resolve_profile(value: str, device: torch.device) -> Profile:
    """``auto`` → the ``default`` profile on a GPU, the lighter ``cpu`` one elsewhere."""
    word = value.strip().lower()
    if word == "auto":
        word = "default" if device.type == "cuda" else "cpu"
    if word not in PROFILES:
        raise ModelLoadError(
            f"EASEL_PROTECT_PROFILE={value!r} must be one of: auto, {', '.join(PROFILES)}")
    return PROFILES[word]


# ---------------------------------------------------------------------------------------
# Loading one model
# ---------------------------------------------------------------------------------------


def _diffusers() -> Any:
    """Import diffusers with the hub switched off: it reads ``HF_HUB_OFFLINE`` at import."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import diffusers
    except ImportError as exc:
        raise ModelLoadError(f"diffusers cannot be imported ({exc}); install the protect extra") from exc
    return diffusers


def _read_config(path: Path, weights: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a readable JSON config ({exc})", weights) from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path}: a diffusers config must be a JSON object", weights)
    return config


def _kind(config: Mapping[str, Any], config_path: Path, weights: Path) -> str:
    kind = config.get("_class_name")
    if kind not in KINDS:
        raise ModelLoadError(
            f"{config_path}: _class_name is {kind!r}; Easel can load only {' or '.join(KINDS)} VAEs",
            weights)
    return str(kind)


def _variant(folder: Path) -> str | None:
    """A folder holding only ``diffusion_pytorch_model.<variant>.safetensors`` (e.g. fp16)."""
    if any((folder / f"{_WEIGHTS}{ext}").is_file() for ext in (".safetensors", ".bin")):
        return None
    variants = sorted(p.name[len(_WEIGHTS) + 1:-len(".safetensors")]
                      for p in folder.glob(f"{_WEIGHTS}.*.safetensors"))
    if not variants:
        raise ModelLoadError(
            f"{folder}: no weights found (expected {_WEIGHTS}.safetensors next to config.json)", folder)
    return variants[0]


def _check_keys(missing: list[str], unexpected: list[str], kind: str, path: Path) -> bool:
    """Fail on missing encoder weights; returns whether the decoder's weights are there too.

    A file that holds only the encoder is usable for protection (verification then has no
    decoder); weights the model does not know are ignored, but logged."""
    decoder_parts = ("decoder.", "post_quant_conv.")
    encoder_missing = [k for k in missing if not k.startswith(decoder_parts)]
    if encoder_missing:
        shown = ", ".join(encoder_missing[:3]) + (", …" if len(encoder_missing) > 3 else "")
        raise ModelLoadError(
            f"{path}: these weights do not match its {kind} config: {len(encoder_missing)} missing "
            f"({shown}); check that the config belongs to this file", path)
    if unexpected:
        log.warning("%s: ignoring %d weights %s does not use (e.g. %s)", path, len(unexpected), kind,
                    unexpected[0])
    return not missing


def _load_folder(folder: Path, config_path: Path) -> tuple[nn.Module, str, bool]:
    kind = _kind(_read_config(config_path, folder), config_path, folder)
    cls = getattr(_diffusers(), kind)
    try:
        model, info = cls.from_pretrained(
            folder, local_files_only=True, torch_dtype=torch.float32, low_cpu_mem_usage=False,
            output_loading_info=True, variant=_variant(folder))
    except ModelLoadError:
        raise
    except Exception as exc:  # diffusers and torch raise many types for bad files
        raise ModelLoadError(f"{folder}: could not load the {kind} weights: {_first_line(exc)}",
                             folder) from exc
    if info.get("mismatched_keys") or info.get("error_msgs"):
        raise ModelLoadError(f"{folder}: weights of the wrong shape for its config.json", folder)
    has_decoder = _check_keys(list(info.get("missing_keys", [])), list(info.get("unexpected_keys", [])),
                              kind, folder)
    return model, kind, has_decoder


def _single_file_config(path: Path) -> Path:
    for candidate in (path.with_suffix(".json"), path.parent / "config.json"):
        if candidate.is_file():
            return candidate
    raise ModelLoadError(
        f"{path}: a single weights file needs its diffusers config beside it: save the VAE's "
        f"config.json as {path.with_suffix('.json').name} (or config.json) in {path.parent}", path)


def is_ldm_layout(state: Mapping[str, Any]) -> bool:
    """Original LDM/CompVis VAE keys (``encoder.down.0.block.0…``), not diffusers'."""
    return any(k.startswith(_LDM_PREFIXES) or k.startswith(("encoder.down.", "encoder.mid.block_"))
               for k in state)


def _load_single_file(path: Path) -> tuple[nn.Module, str, bool]:
    if path.suffix.lower() != ".safetensors":
        raise ModelLoadError(
            f"{path}: only .safetensors single files are accepted (pickled .ckpt/.pt/.bin files can "
            "run code when loaded); convert it, or use a diffusers folder", path)
    config_path = _single_file_config(path)
    config = _read_config(config_path, path)
    kind = _kind(config, config_path, path)
    diffusers = _diffusers()
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state: dict[str, torch.Tensor] = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{path}: not a readable safetensors file: {_first_line(exc)}", path) from exc
    if kind == "AutoencoderKL" and is_ldm_layout(state):
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

        try:
            state = convert_ldm_vae_checkpoint(state, config)
        except Exception as exc:  # a converter fed the wrong config fails in arbitrary ways
            raise ModelLoadError(f"{path}: could not convert its LDM weights with {config_path.name}: "
                                 f"{_first_line(exc)}", path) from exc
    try:
        model = getattr(diffusers, kind).from_config(config)
        result = model.load_state_dict(state, strict=False)
    except Exception as exc:  # a size mismatch, or a config diffusers refuses
        raise ModelLoadError(f"{path}: does not fit {config_path.name}: {_first_line(exc)}", path) from exc
    has_decoder = _check_keys(list(result.missing_keys), list(result.unexpected_keys), kind, path)
    return model, kind, has_decoder


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "…"


def load_model(path: Path, device: torch.device) -> LoadedModel:
    """Load one VAE from a local folder or ``.safetensors`` file onto ``device``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist (models load only from local paths)", path)
    if path.is_dir():
        if (path / "config.json").is_file():
            model, kind, has_decoder = _load_folder(path, path / "config.json")
        elif (path / "vae" / "config.json").is_file():
            model, kind, has_decoder = _load_folder(path / "vae", path / "vae" / "config.json")
        else:
            raise ModelLoadError(
                f"{path}: no config.json here or in a vae/ subfolder; point EASEL_VAE_PATH at a "
                "diffusers VAE folder, a pipeline folder or a .safetensors file", path)
    else:
        model, kind, has_decoder = _load_single_file(path)
    try:
        model = model.float().to(device).eval()
    except Exception as exc:  # e.g. the GPU is out of memory
        raise ModelLoadError(f"{path}: could not move the model to {device}: {_first_line(exc)}",
                             path) from exc
    model.requires_grad_(False)
    decoder: nn.Module | None = None
    if has_decoder:
        decoder = (KLDecoder(model) if kind == "AutoencoderKL" else TinyDecoder(model)).eval()
    encoder = as_encoder(model).eval()
    return LoadedModel(name=readable_name(path), path=path, kind=kind, encoder=encoder,
                       decoder=decoder, search_encoder=_bf16_copy(encoder) if device.type == "cuda" else None)


def _bf16_copy(encoder: nn.Module) -> nn.Module:
    """The encoder with bf16 weights, for the search on a GPU (the decoder is not copied)."""
    inner = getattr(encoder, "vae", None) or getattr(encoder, "taesd", None)
    if inner is not None and getattr(inner, "decoder", None) is not None:
        decoder, inner.decoder = inner.decoder, None  # deepcopy only what the search runs
        try:
            copy_ = copy.deepcopy(encoder)
        finally:
            inner.decoder = decoder
    else:
        copy_ = copy.deepcopy(encoder)
    return copy_.to(torch.bfloat16).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------
# Loading what the settings name, once per process
# ---------------------------------------------------------------------------------------

_CacheKey = tuple[tuple[str, ...], str, str, str]
_cache: dict[_CacheKey, ProtectionModels] = {}
_lock = threading.Lock()


def _unique_names(models: list[LoadedModel]) -> list[LoadedModel]:
    names = unique_names(model.name for model in models)
    return [model if model.name == name else replace(model, name=name)
            for model, name in zip(models, names, strict=True)]


def load_models(settings: Settings) -> ProtectionModels | None:
    """The models ``settings`` configure, or ``None`` when ``EASEL_VAE_PATH`` is empty.

    Loaded once per process: the same paths, device, profile and strength give the same
    object, also when worker threads ask at the same time."""
    if not settings.vae_paths:
        return None
    device = resolve_device(settings.protect_device)
    profile = resolve_profile(settings.protect_profile, device)
    strength = settings.protect_strength
    if strength not in STRENGTHS:
        raise ModelLoadError(f"EASEL_PROTECT_STRENGTH={strength!r} must be one of: {', '.join(STRENGTHS)}")
    key: _CacheKey = (tuple(str(p) for p in settings.vae_paths), str(device), profile.name, strength)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        models = _unique_names([load_model(p, device) for p in settings.vae_paths])
        for model in models:
            log.info("protection model %s (%s) from %s on %s, profile %s, strength %s", model.name,
                     model.kind, model.path, device, profile.name, strength)
        loaded = ProtectionModels(models=tuple(models), device=device, profile=profile, strength=strength)
        _cache[key] = loaded
        return loaded


def clear_cache() -> None:
    """Forget loaded models (tests; a worker never needs it)."""
    with _lock:
        _cache.clear()
