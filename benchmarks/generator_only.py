"""How fast can E_s and G learn to reconstruct on their own? Self-reconstruction L1 with no other loss.

    python -m benchmarks.generator_only [--config default] [--iterations 600] [--lr 5e-4] [--beta1 0.5]

A diagnostic for the joint training's blurry generations: E_a is the
config's starting trunk (frozen, its appearance code detached as in joint
training), and E_s + G train on the self-reconstruction L1 alone, with Adam
at the joint run's batch size. Compare the curve with ``loss/img1`` of a
joint run (``reports/metrics/train_dgnet.json``, or the MLflow run): the gap
is what the other losses cost the reconstruction. Prints the mean L1 every 50
iterations and writes ``benchmarks/results/generator_only.json`` and a PNG
(real row over reconstructed row, on images of the held-out validation ids'
training split).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dgnet import io
from dgnet.config import apply_overrides, preset_config
from dgnet.data.dataset import scaled_pad
from dgnet.models import build_dgnet, to_gray
from dgnet.train.batches import BatchSampler, dgnet_batch
from dgnet.data.loading import load_training_set
from dgnet.train.samples import save_rows

OUT = Path(__file__).resolve().parent / "results" / "generator_only.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--lr", type=float, default=None, help="default: the config's train.lr_generator")
    parser.add_argument("--beta1", type=float, default=0.0, help="Adam beta1 (the joint training's is 0)")
    args = parser.parse_args()

    cfg = apply_overrides(preset_config(args.config), args.set)
    lr = args.lr if args.lr is not None else cfg.train.lr_generator
    sw = cfg.switches
    data = load_training_set(cfg.data, hold_out_validation=True, progress=False, resize=sw.resize)
    torch.manual_seed(cfg.train.seed)
    nets = build_dgnet(cfg.model, data.num_classes)
    appearance, structure, decoder = nets["appearance"].eval(), nets["structure"], nets["decoder"]
    params = list(structure.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(args.beta1, 0.999), weight_decay=cfg.train.weight_decay)
    sampler = BatchSampler(data.labels, cfg.train.batch_size, seed=cfg.train.seed)
    pad = scaled_pad(cfg.data.pad, cfg.data.height)
    device = torch.device("cpu")
    curve, window, began = [], [], time.perf_counter()
    for it in range(args.iterations):
        batch = dgnet_batch(data.images, sampler, it, pad, device, sw.pad_mode)
        with torch.no_grad():
            code = appearance(batch.images).code
        loss = (decoder(structure(to_gray(batch.images)), code) - batch.images).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(loss.item())
        if (it + 1) % 50 == 0 or it + 1 == args.iterations:
            curve.append({"iteration": it + 1, "img1": sum(window) / len(window)})
            window = []
            print(f"it {it + 1:5d}: self-recon L1 {curve[-1]['img1']:.3f} ({time.perf_counter() - began:.0f} s)",
                  flush=True)
    with torch.no_grad():
        batch = dgnet_batch(data.images, sampler, args.iterations, pad, device, sw.pad_mode)
        recon = decoder(structure(to_gray(batch.images)), appearance(batch.images).code)
    save_rows([batch.images, recon], OUT.with_suffix(".png"))
    io.write_json(OUT, {"config": cfg.name, "changes": args.set, "lr": lr, "beta1": args.beta1,
                        "batch_size": cfg.train.batch_size, "iterations": args.iterations,
                        "loss": "self-reconstruction L1 only (mean over each 50 iterations)", "curve": curve})
    print(f"wrote {OUT} and {OUT.with_suffix('.png')}")


if __name__ == "__main__":
    main()
