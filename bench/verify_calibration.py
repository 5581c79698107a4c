"""Calibrating the verification verdicts on a real trained encoder (taef2), on CPU.

    .venv/bin/python bench/verify_calibration.py [--size 256] [--protected 8]

For scikit-image's sample photographs at SIZE² (the first N of them protected with
``protect_image(…, strength="default", seed=0)``, which takes about a minute each here), prints
per battery transform the ``ratio`` and ``retention`` that ``protect.verify.report`` finds for
  * protected images (what "holds" should describe),
  * same-budget ±8/255 sign noise served as if it were protection (what must never "hold":
    noise is not protection),
and the blind test's figures (``gap_db``, ``band_gap_db``) for every clean image and every
protected one (clean images must get "none"). The thresholds in protect/verify.py were set
from these figures (bench/RESULTS.md). taef2 (encoder and decoder) is loaded from ../shared,
never copied; it is a FLUX.2 autoencoder, a proxy for the SD VAE.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protect import verify as V
from protect.perturb import protect_image

TAEF2 = ROOT.parent / "shared" / "models" / "taef2"
NAMES = ("astronaut", "chelsea", "coffee", "rocket", "colorwheel", "brick", "hubble_deep_field",
         "camera", "immunohistochemistry", "retina", "grass", "gravel", "moon", "coins", "clock")


@dataclass
class Taef2:
    name: str
    encoder: torch.nn.Module
    decoder: Any


def load(path: Path, device: torch.device) -> Taef2:
    spec = importlib.util.spec_from_file_location("taef2", path / "taef2.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    encoder = module.load_encoder().to(device).eval().requires_grad_(False)
    decoder = module.load_decoder().to(device).eval().requires_grad_(False)

    def decode(z: torch.Tensor) -> torch.Tensor:
        return decoder(z.to(device)).float().clamp(0, 1)  # type: ignore[no-any-return]

    return Taef2("taef2", encoder, decode)


def images(size: int) -> dict[str, Image.Image]:
    import skimage.data

    out = {}
    for name in NAMES:
        array = getattr(skimage.data, name)()
        image = Image.fromarray(array).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        out[name] = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    return out


def sign_noise(image: Image.Image, linf: int = 8) -> Image.Image:
    a = np.asarray(image, dtype=np.int16)
    rng = np.random.default_rng(1)
    return Image.fromarray(np.clip(a + linf * rng.choice([-1, 1], size=a.shape), 0, 255).astype(np.uint8))


def table(title: str, reports: list[dict[str, Any]]) -> None:
    print(f"\n{title} ({len(reports)} images): ratio / retention, min · median · max; verdicts")
    for name in reports[0]["transforms"]:
        ratios = [r["transforms"][name]["ratio"] for r in reports]
        kept = [r["transforms"][name]["retention"] for r in reports]
        verdicts = [r["transforms"][name]["verdict"] for r in reports]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in V.VERDICTS if verdicts.count(v))
        print(f"  {name:<14} ratio {min(ratios):6.2f} {statistics.median(ratios):6.2f} {max(ratios):6.2f}"
              f"   retention {min(kept):5.2f} {statistics.median(kept):5.2f} {max(kept):5.2f}   {counts}")
    overall = [r["verdict"] for r in reports]
    print("  overall: " + ", ".join(f"{v} {overall.count(v)}" for v in V.VERDICTS if overall.count(v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--protected", type=int, default=8)
    parser.add_argument("--taef2", type=Path, default=TAEF2, help="the folder of taef2.py and its weights")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (encoder under bf16 autocast there)")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = load(args.taef2, device)
    originals = images(args.size)
    print(f"verification calibration on taef2, {args.size}², {device}, torch {torch.__version__}; "
          "thresholds now: "
          f"holds ratio ≥ {V.RATIO_HOLDS} & retention ≥ {V.RETENTION_HOLDS}; defeated ratio < "
          f"{V.RATIO_DEFEATED} or retention < {V.RETENTION_DEFEATED}; blind detected ≥ "
          f"{V.BLIND_DETECTED_DB} dB, weak ≥ {V.BLIND_WEAK_DB} dB", flush=True)
    protected: dict[str, Image.Image] = {}
    for name in list(originals)[: args.protected]:
        started = time.perf_counter()
        protected[name] = protect_image(originals[name], model.encoder, strength="default", seed=0)
        print(f"  protected {name} in {time.perf_counter() - started:.0f} s", flush=True)

    if not protected:
        print("(no protected images: --protected 0)")
    else:
        table("protected", [V.report(originals[n], p, [model]) for n, p in protected.items()])
        table("sign noise, same budget", [V.report(originals[n], sign_noise(originals[n]), [model])
                                          for n in protected])
    print("\nblind test: gap_db / band_gap_db (verdict)")
    for name, original in originals.items():
        clean = V.blind(original, [model])["figures"]["taef2"]
        line = f"  {name:<22} clean {clean['gap_db']:6.2f} / {clean['band_gap_db']:6.2f} ({clean['verdict']})"
        if name in protected:
            prot = V.blind(protected[name], [model])["figures"]["taef2"]
            line += f"   protected {prot['gap_db']:6.2f} / {prot['band_gap_db']:6.2f} ({prot['verdict']})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
