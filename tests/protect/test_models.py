"""Loading protection models from local files: tiny random VAEs saved here (no downloads)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING
from safetensors.torch import load_file, save_file

from protect import models as M
from protect.perturb import CPU_PROFILE, DEFAULT_PROFILE, KLEncoder, TinyEncoder
from server.settings import Settings
from tests.protect.tiny_models import tiny_kl, tiny_taesd

pytestmark = pytest.mark.torch

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: more threads only contend for busy cores
    M.clear_cache()
    yield
    M.clear_cache()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def kl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kl") / "sd-vae-tiny"
    tiny_kl(scaling_factor=0.5, shift_factor=0.1).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def taesd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taesd") / "taesd-tiny"
    tiny_taesd().save_pretrained(folder)
    return folder


def image_batch() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def same_encoding(loaded: M.LoadedModel, reference: torch.nn.Module) -> bool:
    x = image_batch()
    expected = (KLEncoder(reference) if isinstance(reference, AutoencoderKL) else TinyEncoder(reference))(x)
    return torch.allclose(loaded.encoder(x), expected, atol=1e-5)


# ------------------------------------------------------------------------------ folders


def test_a_diffusers_autoencoderkl_folder_loads_frozen_in_fp32(kl_folder: Path) -> None:
    loaded = M.load_model(kl_folder, CPU)

    assert (loaded.name, loaded.kind, loaded.path) == ("sd-vae-tiny", "AutoencoderKL", kl_folder)
    assert isinstance(loaded.encoder, KLEncoder) and loaded.decoder is not None
    assert not loaded.encoder.training
    assert all(not p.requires_grad and p.dtype == torch.float32 for p in loaded.encoder.parameters())
    assert same_encoding(loaded, tiny_kl(scaling_factor=0.5, shift_factor=0.1))


def test_a_diffusers_autoencodertiny_folder_loads(taesd_folder: Path) -> None:
    loaded = M.load_model(taesd_folder, CPU)

    assert (loaded.name, loaded.kind) == ("taesd-tiny", "AutoencoderTiny")
    assert isinstance(loaded.encoder, TinyEncoder) and loaded.decoder is not None
    assert same_encoding(loaded, tiny_taesd())


def test_a_pipeline_folder_uses_its_vae_subfolder(tmp_path: Path, kl_folder: Path) -> None:
    pipeline = tmp_path / "stable-diffusion-tiny"
    shutil.copytree(kl_folder, pipeline / "vae")
    (pipeline / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    loaded = M.load_model(pipeline, CPU)

    assert (loaded.name, loaded.kind) == ("stable-diffusion-tiny", "AutoencoderKL")
    assert M.load_model(pipeline / "vae", CPU).name == "stable-diffusion-tiny"


def test_an_fp16_variant_folder_loads_in_fp32(tmp_path: Path) -> None:
    folder = tmp_path / "vae-fp16"
    tiny_kl().half().save_pretrained(folder, variant="fp16")
    assert not (folder / "diffusion_pytorch_model.safetensors").exists()

    loaded = M.load_model(folder, CPU)

    assert all(p.dtype == torch.float32 for p in loaded.encoder.parameters())


def test_loading_sets_the_hub_offline(monkeypatch: pytest.MonkeyPatch, kl_folder: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    M.load_model(kl_folder, CPU)
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"


# --------------------------------------------------------------------------- single files


def test_a_safetensors_file_with_a_stem_json_loads(tmp_path: Path, kl_folder: Path) -> None:
    weights = tmp_path / "my-vae.safetensors"
    shutil.copy(kl_folder / "diffusion_pytorch_model.safetensors", weights)
    shutil.copy(kl_folder / "config.json", tmp_path / "my-vae.json")

    loaded = M.load_model(weights, CPU)

    assert (loaded.name, loaded.kind, loaded.path) == ("my-vae", "AutoencoderKL", weights)
    assert same_encoding(loaded, tiny_kl(scaling_factor=0.5, shift_factor=0.1))
    assert all(not p.requires_grad for p in loaded.encoder.parameters())


def test_a_safetensors_file_with_a_config_json_beside_it_loads(tmp_path: Path, taesd_folder: Path) -> None:
    weights = tmp_path / "taesd.safetensors"
    shutil.copy(taesd_folder / "diffusion_pytorch_model.safetensors", weights)
    shutil.copy(taesd_folder / "config.json", tmp_path / "config.json")

    loaded = M.load_model(weights, CPU)

    assert (loaded.name, loaded.kind) == ("taesd", "AutoencoderTiny")
    assert same_encoding(loaded, tiny_taesd())
    inside = M.load_model(taesd_folder / "diffusion_pytorch_model.safetensors", CPU)
    assert inside.name == "taesd-tiny"


def _ldm_name(key: str, up_blocks: int) -> str:
    """The original LDM/CompVis name of a diffusers AutoencoderKL key (the inverse of
    diffusers' ``convert_ldm_vae_checkpoint``, for the layers a tiny model has)."""
    top = DIFFUSERS_TO_LDM_MAPPING["vae"]  # diffusers name → LDM name
    if key in top:
        return top[key]
    parts = key.split(".")
    side, rest = parts[0], parts[1:]
    if rest[0] == "down_blocks":
        i, what = rest[1], rest[2]
        tail = rest[4:]
        if what == "resnets":
            name = ".".join([side, "down", i, "block", rest[3], *tail])
            return name.replace("conv_shortcut", "nin_shortcut")
        return ".".join([side, "down", i, "downsample", *tail])
    if rest[0] == "up_blocks":
        i, what = str(up_blocks - 1 - int(rest[1])), rest[2]
        tail = rest[4:]
        if what == "resnets":
            name = ".".join([side, "up", i, "block", rest[3], *tail])
            return name.replace("conv_shortcut", "nin_shortcut")
        return ".".join([side, "up", i, "upsample", *tail])
    if rest[:2] == ["mid_block", "resnets"]:
        return ".".join([side, "mid", f"block_{int(rest[2]) + 1}", *rest[3:]])
    if rest[:2] == ["mid_block", "attentions"]:
        layer = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}[rest[3]]
        return ".".join([side, "mid", "attn_1", layer, rest[-1]])
    raise AssertionError(f"no LDM name for {key}")


def to_ldm(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        name = _ldm_name(key, up_blocks=2)
        if ".attn_1." in name and value.ndim == 2:
            value = value[:, :, None, None]  # LDM attention projections are 1×1 convolutions
        out[prefix + name] = value.contiguous()
    return out


@pytest.mark.parametrize("prefix", ["", "first_stage_model."])
def test_an_ldm_layout_safetensors_file_is_converted(tmp_path: Path, kl_folder: Path, prefix: str) -> None:
    state = load_file(kl_folder / "diffusion_pytorch_model.safetensors")
    ldm = to_ldm(state, prefix)
    assert prefix + "encoder.down.0.block.0.norm1.weight" in ldm
    assert prefix + "decoder.up.0.block.0.nin_shortcut.weight" in ldm
    if prefix:
        ldm["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(2)  # a whole SD file
    weights = tmp_path / "vae-ft-tiny-ema-pruned.safetensors"
    save_file(ldm, weights)
    shutil.copy(kl_folder / "config.json", tmp_path / "vae-ft-tiny-ema-pruned.json")

    assert M.is_ldm_layout(ldm) and not M.is_ldm_layout(state)
    loaded = M.load_model(weights, CPU)

    assert loaded.kind == "AutoencoderKL" and loaded.decoder is not None
    reference = tiny_kl(scaling_factor=0.5, shift_factor=0.1)
    assert same_encoding(loaded, reference)
    z = loaded.encoder(image_batch())
    assert torch.allclose(loaded.decoder(z), M.KLDecoder(reference)(z), atol=1e-5)


def test_an_encoder_only_file_loads_without_a_decoder(tmp_path: Path, kl_folder: Path) -> None:
    state = load_file(kl_folder / "diffusion_pytorch_model.safetensors")
    encoder_only = {k: v for k, v in state.items() if not k.startswith(("decoder.", "post_quant_conv."))}
    save_file(encoder_only, tmp_path / "enc.safetensors")
    shutil.copy(kl_folder / "config.json", tmp_path / "enc.json")

    loaded = M.load_model(tmp_path / "enc.safetensors", CPU)

    assert loaded.decoder is None
    assert same_encoding(loaded, tiny_kl(scaling_factor=0.5, shift_factor=0.1))


# -------------------------------------------------------------------------------- errors


def test_a_single_file_without_a_config_names_what_to_put_there(tmp_path: Path, kl_folder: Path) -> None:
    weights = tmp_path / "lonely.safetensors"
    shutil.copy(kl_folder / "diffusion_pytorch_model.safetensors", weights)

    with pytest.raises(M.ModelLoadError) as caught:
        M.load_model(weights, CPU)

    assert "lonely.json" in caught.value.message and str(tmp_path) in caught.value.message
    assert caught.value.path == weights


def test_an_unknown_class_is_refused(tmp_path: Path, kl_folder: Path) -> None:
    folder = tmp_path / "unet"
    shutil.copytree(kl_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DConditionModel"}))

    with pytest.raises(M.ModelLoadError, match=r"UNet2DConditionModel.*AutoencoderKL or AutoencoderTiny"):
        M.load_model(folder, CPU)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(M.ModelLoadError, match="does not exist"):
        M.load_model(tmp_path / "nowhere", CPU)


def test_a_folder_without_config_or_weights_is_refused(tmp_path: Path, kl_folder: Path) -> None:
    with pytest.raises(M.ModelLoadError, match=re.escape("no config.json")):
        M.load_model(tmp_path, CPU)
    folder = tmp_path / "empty-vae"
    folder.mkdir()
    shutil.copy(kl_folder / "config.json", folder / "config.json")
    with pytest.raises(M.ModelLoadError, match="no weights found"):
        M.load_model(folder, CPU)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path, kl_folder: Path,
                                                        taesd_folder: Path) -> None:
    weights = tmp_path / "mixed.safetensors"
    shutil.copy(kl_folder / "diffusion_pytorch_model.safetensors", weights)
    shutil.copy(taesd_folder / "config.json", tmp_path / "mixed.json")
    with pytest.raises(M.ModelLoadError, match=re.escape("mixed.safetensors: these weights do not match")):
        M.load_model(weights, CPU)

    config = json.loads((kl_folder / "config.json").read_text())
    (tmp_path / "mixed.json").write_text(json.dumps({**config, "block_out_channels": [8, 32]}))
    with pytest.raises(M.ModelLoadError, match=re.escape("does not fit mixed.json")):
        M.load_model(weights, CPU)


def test_pickled_and_unreadable_files_are_refused(tmp_path: Path, kl_folder: Path) -> None:
    (tmp_path / "vae.ckpt").write_bytes(b"not loaded")
    with pytest.raises(M.ModelLoadError, match=re.escape("only .safetensors")):
        M.load_model(tmp_path / "vae.ckpt", CPU)
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 20)
    shutil.copy(kl_folder / "config.json", tmp_path / "broken.json")
    with pytest.raises(M.ModelLoadError, match="not a readable safetensors file"):
        M.load_model(tmp_path / "broken.safetensors", CPU)


# ------------------------------------------------------------------------------ decoders


def test_the_kl_decoder_inverts_the_encoder_scaling(kl_folder: Path) -> None:
    loaded = M.load_model(kl_folder, CPU)
    assert loaded.decoder is not None
    x = image_batch()
    with torch.no_grad():
        z = loaded.encoder(x)
        image = loaded.decoder(z)
        vae = loaded.encoder.vae
        expected = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)

    assert z.shape == (1, 4, 16, 16)
    assert image.shape == x.shape and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert torch.allclose(image, expected, atol=1e-5)


def test_the_tiny_decoder_round_trips(taesd_folder: Path) -> None:
    loaded = M.load_model(taesd_folder, CPU)
    assert loaded.decoder is not None
    x = image_batch()
    with torch.no_grad():
        image = loaded.decoder(loaded.encoder(x))
        taesd = loaded.encoder.taesd
        expected = ((taesd.decode(taesd.encode(x * 2 - 1).latents).sample + 1) / 2).clamp(0, 1)

    assert image.shape == x.shape
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert torch.allclose(image, expected, atol=1e-5)


# ------------------------------------------------------------------- settings and caching


def settings(*paths: Path, **changes: Any) -> Settings:
    return Settings().with_changes(vae_paths=tuple(paths), **changes)


def test_no_configured_path_means_no_models() -> None:
    assert M.load_models(Settings()) is None


def test_models_are_loaded_once_per_process(kl_folder: Path, taesd_folder: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="protect.models"):
        first = M.load_models(settings(kl_folder, taesd_folder))
        again = M.load_models(settings(kl_folder, taesd_folder))

    assert first is not None and again is first
    assert first.names == ["sd-vae-tiny", "taesd-tiny"]
    assert first.encoders == [m.encoder for m in first.models]
    assert first.strength == "default"
    assert first.profile is (DEFAULT_PROFILE if first.device.type == "cuda" else CPU_PROFILE)
    lines = [r.getMessage() for r in caplog.records if r.name == "protect.models"]
    assert len(lines) == 2
    assert "sd-vae-tiny" in lines[0] and "AutoencoderKL" in lines[0] and str(first.device) in lines[0]
    assert f"profile {first.profile.name}" in lines[0]
    other = M.load_models(settings(taesd_folder))
    assert other is not None and other is not first and other.names == ["taesd-tiny"]


def test_the_settings_choose_device_profile_and_strength(kl_folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = M.load_models(settings(kl_folder, protect_device="cpu", protect_profile="default",
                                    protect_strength="high"))

    assert chosen is not None
    assert (chosen.device, chosen.profile, chosen.strength) == (CPU, DEFAULT_PROFILE, "high")
    lighter = M.load_models(settings(kl_folder, protect_device="cpu", protect_profile="cpu",
                                     protect_strength="high"))
    assert lighter is not None and lighter is not chosen and lighter.profile is CPU_PROFILE

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(M.ModelLoadError, match="no CUDA device"):
        M.load_models(settings(kl_folder, protect_device="cuda"))


def test_model_names_are_unique(tmp_path: Path, kl_folder: Path) -> None:
    shutil.copytree(kl_folder, tmp_path / "b" / "sd-vae-tiny")
    loaded = M.load_models(settings(kl_folder, tmp_path / "b" / "sd-vae-tiny", kl_folder))

    assert loaded is not None
    assert loaded.names == ["sd-vae-tiny", "sd-vae-tiny-2", "sd-vae-tiny-3"]


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert M.resolve_device("auto") == CPU
    assert M.resolve_device("CPU") == CPU
    with pytest.raises(M.ModelLoadError, match="no CUDA device"):
        M.resolve_device("cuda")
    with pytest.raises(M.ModelLoadError, match="auto, cpu, cuda or cuda:N"):
        M.resolve_device("gpu")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert M.resolve_device("auto") == torch.device("cuda")
    assert M.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(M.ModelLoadError, match="no GPU 2"):
        M.resolve_device("cuda:2")


def test_resolve_profile() -> None:
    assert M.resolve_profile("auto", CPU) is CPU_PROFILE
    assert M.resolve_profile("auto", torch.device("cuda")) is DEFAULT_PROFILE
    assert M.resolve_profile("default", CPU) is DEFAULT_PROFILE
    assert M.resolve_profile("cpu", torch.device("cuda")) is CPU_PROFILE
    with pytest.raises(M.ModelLoadError, match="EASEL_PROTECT_PROFILE"):
        M.resolve_profile("fast", CPU)


@pytest.mark.parametrize("folder_fixture", ["kl_folder", "taesd_folder"])
def test_the_search_encoder_on_a_gpu_is_a_bf16_copy_without_the_decoder(
        request: pytest.FixtureRequest, folder_fixture: str) -> None:
    # Given a loaded VAE (on the CPU here; load_model makes this copy on CUDA only)
    loaded = M.load_model(request.getfixturevalue(folder_fixture), torch.device("cpu"))
    assert loaded.search_encoder is None
    # When its bf16 search copy is made
    search = M._bf16_copy(loaded.encoder)
    # I expect bf16 weights, no decoder in the copy, the original untouched (fp32, decoder kept)
    assert {p.dtype for p in search.parameters()} == {torch.bfloat16}
    inner = getattr(search, "vae", None) or search.taesd
    assert inner.decoder is None
    original = getattr(loaded.encoder, "vae", None) or loaded.encoder.taesd
    assert original.decoder is not None
    assert {p.dtype for p in loaded.encoder.parameters()} == {torch.float32}
    # and the same latents within bf16 precision
    with torch.no_grad():
        exact = loaded.encoder(image_batch())
        approx = search(image_batch().to(torch.bfloat16)).float()
    assert torch.allclose(exact, approx, atol=0.1 * float(exact.abs().max()) + 1e-3)


def test_protection_models_search_with_the_search_encoder(kl_folder: Path) -> None:
    loaded = M.load_model(kl_folder, torch.device("cpu"))
    search = M._bf16_copy(loaded.encoder)
    models = M.ProtectionModels(models=(dataclasses.replace(loaded, search_encoder=search), loaded),
                                device=torch.device("cpu"), profile=CPU_PROFILE, strength="default")
    assert models.encoders == [search, loaded.encoder]
