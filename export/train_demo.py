"""Demo registration: train a small FNOReg on synthetic pairs for a few seconds, register a held-out
pair, optionally export to ONNX and check onnxruntime against PyTorch, and print what happened.

``python -m fnoreg_export.train_demo`` (torch needed: it trains; no console script: the one demo,
``fnoreg-demo``, is the torch-free registration of the bundled pair, :mod:`fnoreg_export.demo`). It lives in
fnoreg_export because it exports: fnoreg_core never imports fnoreg_export.
Training pairs come from ``fnoreg_core.data.synth``; after training the model registers a held-out
synthetic pair and the bundled real pair (``assets/demo/2d``, Colin27 -> fsaverage, 160x192).

Examples:
    python -m fnoreg_export.train_demo
    python -m fnoreg_export.train_demo --steps 300 --size 96x112 --export
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 32:
        raise argparse.ArgumentTypeError(f"expected a 2D size like 96x112 with both sides >= 32, got {text!r}")
    return size


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fnoreg_export.train_demo",
        description=__doc__.split("\n\n")[0],
        epilog="Examples:\n  python -m fnoreg_export.train_demo\n  python -m fnoreg_export.train_demo --steps 300 --export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--size", type=_parse_size, default=(96, 112), help="image size HxW. Default: 96x112")
    p.add_argument("--steps", type=int, default=120, help="training steps. Default: 120 (about 40 s on 2 idle cores)")
    p.add_argument("--batch", type=int, default=4, help="training batch size. Default: 4")
    p.add_argument("--seed", type=int, default=0, help="random seed. Default: 0")
    p.add_argument("--export", action="store_true", help="also export to ONNX and compare onnxruntime (about 1-2 min)")
    p.add_argument("--threads", type=int, default=None, help="torch threads. Default: torch's choice")
    return p


def _to_tensors(sample: dict):
    """(moving, fixed, moving_labels, fixed_labels) as (1, 1, H, W) tensors from a PairSource sample."""
    import torch

    return (torch.from_numpy(sample["moving"][None]), torch.from_numpy(sample["fixed"][None]),
            torch.from_numpy(sample["moving_labels"][None].astype("int64")),
            torch.from_numpy(sample["fixed_labels"][None].astype("int64")))


def _register_and_report(model, sample, title: str) -> None:
    import numpy as np
    import torch

    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.layers.spatial_transformer import warp, warp_labels
    from fnoreg_core.metrics import registration_report

    moving, fixed, moving_labels, fixed_labels = _to_tensors(sample)
    shape = tuple(fixed.shape[2:])
    with torch.no_grad():
        model(moving, fixed)  # warm-up: builds the DFT bases for this size
        t1 = time.perf_counter()
        ddf = model(moving, fixed)
        moved = warp(moving, ddf)
        register_s = time.perf_counter() - t1
        moved_labels = warp_labels(moving_labels, ddf)
    ddf_vox = ddf_norm_to_vox(ddf[0].numpy(), shape)
    before = registration_report(warped_labels=moving_labels[0, 0].numpy(), fixed_labels=fixed_labels[0, 0].numpy())
    after = registration_report(ddf_vox, moved_labels[0, 0].numpy(), fixed_labels[0, 0].numpy())
    print(f"\n{title} ({'x'.join(map(str, shape))}):")
    print(f"  mean Dice  before {before['mean_dice']:.3f}  after {after['mean_dice']:.3f}  ({after['n_labels']} labels)")
    print(f"  MSE        before {float(((moving - fixed) ** 2).mean()):.5f}  after {float(((moved - fixed) ** 2).mean()):.5f}")
    print(f"  folded voxels (J <= 0) {after['nonpositive_jac_pct']:.3f} %   SDlogJ {after['sdlogj']:.3f}")
    print(f"  max displacement {np.abs(ddf_vox).max():.2f} voxel   registration time {register_s * 1000:.1f} ms")
    return moving, fixed, ddf


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        print("fnoreg: error: --steps and --batch must be positive", file=sys.stderr)
        return 2

    import numpy as np
    import torch

    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.layers.spatial_transformer import warp
    from fnoreg_core.losses import DiffusionLoss, MSELoss
    from fnoreg_core.models import create_model

    from pathlib import Path

    from fnoreg_core.data import open_source
    from fnoreg_core.data.synth import SynthPairs

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    h, w = args.size
    synth = SynthPairs((h, w), seed=args.seed)
    model = create_model("fnoreg", preset="2d-cpu")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"FNOReg demo: preset 2d-cpu ({n_params / 1e6:.2f} M parameters), synthetic 2D pairs {h}x{w}, "
          f"{torch.get_num_threads()} threads")

    mse, diffusion = MSELoss(), DiffusionLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    losses = []
    model.train()
    for step in range(1, args.steps + 1):
        pairs = [_to_tensors(synth[(step - 1) * args.batch + i]) for i in range(args.batch)]
        moving = torch.cat([p[0] for p in pairs])
        fixed = torch.cat([p[1] for p in pairs])
        ddf = model(moving, fixed)
        loss = mse(warp(moving, ddf), fixed) + 0.01 * diffusion(ddf)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if step == 1 or step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(f"  step {step:4d}/{args.steps}  loss {np.mean(losses[-10:]):.5f}  ({time.perf_counter() - t0:.1f} s)")
    train_s = time.perf_counter() - t0

    model.eval()
    print(f"\nTrained {args.steps} steps in {train_s:.1f} s.")
    held_out = SynthPairs((h, w), seed=10_000 + args.seed)[0]
    moving, fixed, ddf = _register_and_report(model, held_out, f"Held-out synthetic pair (seed {10_000 + args.seed})")
    from fnoreg_export.bundled import demo_dir

    demo = demo_dir(required=False) / "2d" / "pairs.csv"
    if demo.is_file():
        real = open_source(f"pairs:{demo}", dims=2)[0]
        _register_and_report(model, real, "Real demo pair, Colin27 -> fsaverage axial slice, 12 labels, "
                                          "applied at a resolution it was not trained at")

    if args.export:
        import tempfile
        from pathlib import Path

        from fnoreg_export.onnx_export import export_onnx
        from fnoreg_export.runtime.backends import OrtRunner

        with tempfile.TemporaryDirectory() as tmp:
            t2 = time.perf_counter()
            path = export_onnx(model, Path(tmp) / "fnoreg2d.onnx", (32, 48), dynamic=True)
            print(f"\nExported dynamic ONNX ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t2:.0f} s")
            got = OrtRunner(path)(moving.numpy(), fixed.numpy())
            diff = np.abs(ddf_norm_to_vox(got[0] - ddf[0].numpy(), (h, w)))
            print(f"  onnxruntime vs PyTorch at {h}x{w}: max |ddf diff| {diff.max():.2e} voxel, mean {diff.mean():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
