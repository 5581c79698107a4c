"""Protection efficacy on a real trained encoder (../shared/models/taef2), on CPU.

    .venv/bin/python bench/protect_efficacy.py [--size 256] [--strength default]

For each of scikit-image's sample photographs (astronaut, chelsea, coffee; `pip install
scikit-image`, a benchmark-only dependency), centre-cropped and resized to SIZE², runs
`protect_image(img, encoder, strength=…, seed=0)` with its default arguments and compares
the encoder's latent shift with that of random ±L∞ sign noise, L∞ being the largest change
the protection actually made:

    shift(T) = ‖E(T(perturbed)) − E(T(original))‖      for T in {identity, JPEG 75, 0.5× down-and-up}

and prints, per image and on average, the ratios the issue sets targets for:
  protected / noise at identity ≥ 3;   shift kept after T (protected(T) / protected(id)) ≥ 0.5;
  protected / noise under the same T ≥ 1.5.
taef2 is a FLUX.2 autoencoder, not the SD VAE: these are proxy figures. It is loaded from
../shared (never copied into the project) and no test depends on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protect.perturb import protect_image

TAEF2 = Path(os.environ.get("EASEL_TAEF2", ROOT.parent / "shared" / "models" / "taef2")) / "taef2.py"


def load_taef2_encoder() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("taef2", TAEF2)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {TAEF2}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    encoder: torch.nn.Module = module.load_encoder()
    return encoder


def sample_images(size: int) -> dict[str, Image.Image]:
    """scikit-image's astronaut, chelsea and coffee, centre-cropped; from PNG copies in
    ``$EASEL_BENCH_IMAGES`` (a machine without scikit-image, e.g. the GPU one) when set."""
    folder = os.environ.get("EASEL_BENCH_IMAGES")
    images = {}
    for name in ("astronaut", "chelsea", "coffee"):
        if folder:
            image = Image.open(Path(folder) / f"{name}.png").convert("RGB")
        else:
            import skimage.data

            image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        images[name] = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    return images


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def jpeg(image: Image.Image, quality: int = 75) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def down_up(image: Image.Image) -> Image.Image:
    half = image.resize((image.width // 2, image.height // 2), Image.BICUBIC)
    return half.resize(image.size, Image.BICUBIC)


TRANSFORMS = {"identity": lambda im: im, "jpeg75": jpeg, "down0.5": down_up}


def measure(original: Image.Image, protected: Image.Image,
            latent: Callable[[Image.Image], torch.Tensor]) -> dict[str, float]:
    """The five ratios of issue 6 for one image, against ±L∞ sign noise (L∞ as made).

    id: protected / noise shift; kj, kd: shift kept after JPEG 75 / 0.5× down-and-up;
    nj, nd: protected / noise shift under the same transform. Also linf (in /255).
    """
    a, b = np.asarray(original, dtype=np.int16), np.asarray(protected, dtype=np.int16)
    linf = int(np.abs(b - a).max())
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(np.clip(a + linf * rng.choice([-1, 1], size=a.shape), 0, 255).astype(np.uint8))
    shift = {}
    for t_name, transform in TRANSFORMS.items():
        clean = latent(transform(original))
        shift[t_name] = (float((latent(transform(protected)) - clean).norm()),
                         float((latent(transform(noisy)) - clean).norm()))
    base = shift["identity"][0]
    return {"id": base / shift["identity"][1],
            "kj": shift["jpeg75"][0] / base, "kd": shift["down0.5"][0] / base,
            "nj": shift["jpeg75"][0] / shift["jpeg75"][1], "nd": shift["down0.5"][0] / shift["down0.5"][1],
            "linf": float(linf)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--strength", default="default")
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = load_taef2_encoder()

    def latent(image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            return encoder(to_tensor(image))

    print(f"Protection efficacy on taef2 (trained FLUX.2 encoder, a proxy for the SD VAE), "
          f"{args.size}², strength={args.strength}, CPU, torch {torch.__version__}")
    rows = []
    for name, original in sample_images(args.size).items():
        started = time.perf_counter()
        protected = protect_image(original, encoder, strength=args.strength, seed=0)
        seconds = time.perf_counter() - started
        m = measure(original, protected, latent)
        row = {
            "image": name, "linf": int(m["linf"]), "seconds": seconds,
            "vs_noise": m["id"], "kept_jpeg": m["kj"], "kept_down": m["kd"],
            "vs_noise_jpeg": m["nj"], "vs_noise_down": m["nd"],
        }
        rows.append(row)
        print(f"  {name:<10} L∞ {row['linf']}/255  {seconds:6.1f} s  protected/noise {row['vs_noise']:.2f}  "
              f"kept after JPEG75 {row['kept_jpeg']:.2f}, after 0.5× {row['kept_down']:.2f}  "
              f"vs noise under JPEG75 {row['vs_noise_jpeg']:.2f}, under 0.5× {row['vs_noise_down']:.2f}")
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0] if key != "image"}
    print(f"  mean: protected/noise {mean['vs_noise']:.2f} (target ≥ 3); kept after JPEG75 "
          f"{mean['kept_jpeg']:.2f}, after 0.5× {mean['kept_down']:.2f} (target ≥ 0.5); vs noise "
          f"under JPEG75 {mean['vs_noise_jpeg']:.2f}, under 0.5× {mean['vs_noise_down']:.2f} (target ≥ 1.5); "
          f"{mean['seconds']:.1f} s per image")


if __name__ == "__main__":
    main()
