"""Protection throughput and per-step overhead with the real Stable Diffusion VAE architecture.

    .venv/bin/python bench/protect_throughput.py [--sizes 512 1024] [--device auto]
        [--strengths default] [--profile auto] [--repeats 3] [--channels-last]

Random weights (timing does not depend on them); no download. For each size it prints:
  * the FLOPs of one encoder forward + input-gradient backward (counted by torch), and its
    time ("bare step"): the floor of one optimisation step;
  * the time of one optimisation step inside ``protect_image`` without EOT (the median of
    its steps, from the progress callback) and its ratio to the bare step (target ≤ 1.15);
  * the wall time of ``protect_image`` at each strength with the chosen profile (default
    on CUDA, ``cpu`` otherwise), and the TFLOP/s that works out to.
Targets (issue 6): H100, 512², ``default`` in ≤ 1 s; the ``cpu`` profile finishes a 1024²
upload within 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import itertools

from protect import perturb as P

# Stable Diffusion 1.x/2.x VAE (sd-vae-ft-mse): the architecture most instances will run.
SD_VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
    block_out_channels=(128, 256, 512, 512), act_fn="silu", sample_size=512,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sd_vae_encoder(device: torch.device, channels_last: bool, bf16: bool = False,
                   compile_: bool = False) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD_VAE_CONFIG)  # type: ignore[arg-type]
    vae.decoder = None  # the encoder alone is attacked; saves memory
    vae.post_quant_conv = None
    vae = vae.to(device).eval().requires_grad_(False)
    if channels_last:
        vae = vae.to(memory_format=torch.channels_last)
    if bf16:
        vae = vae.to(torch.bfloat16)
    encoder = P.as_encoder(vae)
    if compile_:
        encoder = torch.compile(encoder, dynamic=None)  # type: ignore[assignment]
    return encoder


def test_image(size: int) -> Image.Image:
    """A deterministic busy-and-flat picture (gradients, stripes, noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([xx, yy, 0.5 + 0.5 * np.sin(12 * xx * yy * np.pi)], axis=-1)
    base[size // 2:, : size // 2] += 0.15 * rng.standard_normal((size - size // 2, size // 2, 3))
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8), "RGB")


def bare_step(encoder: torch.nn.Module, size: int, device: torch.device, repeats: int) -> tuple[float, float]:
    """Seconds and FLOPs of one encoder forward + input-gradient backward at size²."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)

    def once() -> None:
        x.grad = None
        P.encode(encoder, x).pow(2).mean().backward()  # weights are frozen: input grad only

    counter = FlopCounterMode(display=False)
    with counter:
        once()
    flops = float(counter.get_total_flops())
    once()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), flops


def step_times(encoder: torch.nn.Module, image: Image.Image, profile: P.Profile, device: torch.device,
               steps: int) -> list[float]:
    """Per-step seconds inside protect_image without EOT (from the progress callback)."""
    marks: list[float] = []

    def progress(_fraction: float) -> None:
        sync(device)
        marks.append(time.perf_counter())

    strength = dataclasses.replace(P.STRENGTHS["default"], steps=steps)
    bare = dataclasses.replace(profile, transforms=(), steps_scale=1.0)
    P.protect_image(image, encoder, strength=strength, seed=0, profile=bare, progress=progress)
    return [b - a for a, b in itertools.pairwise(marks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--strengths", nargs="*", default=["default"])
    parser.add_argument("--profile", default="auto", choices=["auto", "default", "cpu"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overhead-steps", type=int, default=6)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-bare", action="store_true", help="only time protect_image (slow CPUs)")
    parser.add_argument("--bf16-weights", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, nargs="*", default=[],
                        help="also time these step counts (at the strength's step size)")
    args = parser.parse_args()

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    chosen = args.profile if args.profile != "auto" else ("default" if device.type == "cuda" else "cpu")
    profile = P.PROFILES[chosen]
    print(f"SD VAE encoder (random weights) on {name}; torch {torch.__version__}; profile {profile.name}"
          f"{'; channels_last' if args.channels_last else ''}{'; bf16 weights' if args.bf16_weights else ''}"
          f"{'; torch.compile' if args.compile else ''}", flush=True)
    encoder = sd_vae_encoder(device, args.channels_last, args.bf16_weights, args.compile)

    for size in args.sizes:
        image = test_image(size)
        if args.skip_bare:
            seconds = 0.0
        else:
            seconds, flops = bare_step(encoder, size, device, args.repeats)
            print(f"{size}²: bare step (encoder fwd + input grad) {seconds * 1000:.1f} ms, "
                  f"{flops / 1e12:.2f} TFLOP, {flops / seconds / 1e12:.1f} TFLOP/s", flush=True)
        if not args.skip_overhead and seconds:
            # The step inside protect_image at the same input size: one tile covering the image.
            whole = dataclasses.replace(profile, tile=max(size, profile.tile), max_side=None)
            times = step_times(encoder, image, whole, device, args.overhead_steps)
            step = statistics.median(times)
            print(f"{size}²: protect step without EOT {step * 1000:.1f} ms (median of {len(times)}), "
                  f"ratio to bare {step / seconds:.3f} (target ≤ 1.15)", flush=True)
        for strength in args.strengths:
            runs = []
            for _ in range(max(1, args.repeats - 1) if device.type == "cuda" else 1):
                sync(device)
                started = time.perf_counter()
                P.protect_image(image, encoder, strength=strength, seed=0, profile=profile)
                sync(device)
                runs.append(time.perf_counter() - started)
            s = P.STRENGTHS[strength]
            steps = max(1, round(s.steps * profile.steps_scale)) * profile.eot_samples
            best = min(runs)
            print(f"{size}²: protect_image strength={strength} profile={profile.name}: "
                  f"{best:.2f} s (runs: {', '.join(f'{r:.2f}' for r in runs)}); {steps} steps",
                  flush=True)
        for count in args.steps:
            fewer = dataclasses.replace(P.STRENGTHS["default"], steps=count)
            runs = []
            for _ in range(max(1, args.repeats - 1)):
                sync(device)
                started = time.perf_counter()
                P.protect_image(image, encoder, strength=fewer, seed=0, profile=profile)
                sync(device)
                runs.append(time.perf_counter() - started)
            print(f"{size}²: protect_image default budget, {count} steps, profile={profile.name}: "
                  f"{min(runs):.2f} s (runs: {', '.join(f'{r:.2f}' for r in runs)})", flush=True)


if __name__ == "__main__":
    main()
