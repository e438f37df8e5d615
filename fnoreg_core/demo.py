"""Demo registration: train a small FNOReg on synthetic pairs for a few seconds, register a held-out
pair, optionally export to ONNX and check onnxruntime against PyTorch, and print what happened.

This is the project's main job until the bundled data, models and the GUI exist (`make demo`).
The synthetic phantom here (random smooth label blobs with per-label intensities, deformed by a
random smooth field) is deliberately small; ``fnoreg_core.data.synth`` will replace it.

Examples:
    python -m fnoreg_core.demo
    python -m fnoreg_core.demo --steps 300 --size 96x112 --export
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
        prog="fnoreg-demo",
        description=__doc__.split("\n\n")[0],
        epilog="Examples:\n  python -m fnoreg_core.demo\n  python -m fnoreg_core.demo --steps 300 --export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--size", type=_parse_size, default=(96, 112), help="image size HxW. Default: 96x112")
    p.add_argument("--steps", type=int, default=120, help="training steps. Default: 120 (about 40 s on 2 idle cores)")
    p.add_argument("--batch", type=int, default=4, help="training batch size. Default: 4")
    p.add_argument("--seed", type=int, default=0, help="random seed. Default: 0")
    p.add_argument("--export", action="store_true", help="also export to ONNX and compare onnxruntime (about 1-2 min)")
    p.add_argument("--threads", type=int, default=None, help="torch threads. Default: torch's choice")
    return p


def synthetic_pair(size: tuple[int, int], generator, n_labels: int = 6, max_disp_vox: float = 6.0):
    """A random phantom and a smoothly deformed copy of it (2D).

    Returns
    -------
    moving, fixed : (1, 1, H, W) float32 in [0, 1]
    moving_labels, fixed_labels : (1, 1, H, W) int64, 0 = background
    """
    import torch
    import torch.nn.functional as F

    from fnoreg_core.fields import ddf_vox_to_norm
    from fnoreg_core.layers.spatial_transformer import warp, warp_labels

    h, w = size
    noise = torch.randn(1, n_labels + 1, h // 12, w // 12, generator=generator)
    smooth = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=True)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    inside = (yy / 0.85) ** 2 + (xx / 0.8) ** 2 < 1.0  # an elliptical "head"
    labels = smooth.argmax(1, keepdim=True)
    labels = torch.where(inside[None, None], labels + 1, torch.zeros_like(labels))
    means = torch.rand(n_labels + 2, generator=generator) * 0.8 + 0.2
    means[0] = 0.0
    image = means[labels] + 0.02 * torch.randn(labels.shape, generator=generator)
    image = image.clamp(0, 1).float()
    coarse = torch.randn(1, 2, 5, 6, generator=generator)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    field = field / field.abs().amax().clamp_min(1e-6) * max_disp_vox * (0.5 + 0.5 * torch.rand(1, generator=generator))
    ddf = ddf_vox_to_norm(field, (h, w))
    moving = warp(image, ddf)
    moving_labels = warp_labels(labels, ddf)
    return moving, image, moving_labels, labels


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        print("fnoreg: error: --steps and --batch must be positive", file=sys.stderr)
        return 2

    import numpy as np
    import torch

    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.layers.spatial_transformer import warp, warp_labels
    from fnoreg_core.losses import DiffusionLoss, MSELoss
    from fnoreg_core.metrics import registration_report
    from fnoreg_core.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    h, w = args.size
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
        pairs = [synthetic_pair((h, w), gen) for _ in range(args.batch)]
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
    test_gen = torch.Generator().manual_seed(10_000 + args.seed)
    moving, fixed, moving_labels, fixed_labels = synthetic_pair((h, w), test_gen)
    with torch.no_grad():
        t1 = time.perf_counter()
        ddf = model(moving, fixed)
        moved = warp(moving, ddf)
        register_s = time.perf_counter() - t1
        moved_labels = warp_labels(moving_labels, ddf)
    ddf_vox = ddf_norm_to_vox(ddf[0].numpy(), (h, w))
    before = registration_report(warped_labels=moving_labels[0, 0].numpy(), fixed_labels=fixed_labels[0, 0].numpy())
    after = registration_report(ddf_vox, moved_labels[0, 0].numpy(), fixed_labels[0, 0].numpy())
    mse_before = float(((moving - fixed) ** 2).mean())
    mse_after = float(((moved - fixed) ** 2).mean())
    print(f"\nTrained {args.steps} steps in {train_s:.1f} s. Held-out synthetic pair (seed {10_000 + args.seed}):")
    print(f"  mean Dice  before {before['mean_dice']:.3f}  after {after['mean_dice']:.3f}  ({after['n_labels']} labels)")
    print(f"  MSE        before {mse_before:.5f}  after {mse_after:.5f}")
    print(f"  folded voxels (J <= 0) {after['nonpositive_jac_pct']:.3f} %   SDlogJ {after['sdlogj']:.3f}")
    print(f"  max displacement {np.abs(ddf_vox).max():.2f} voxel   registration time {register_s * 1000:.1f} ms")

    if args.export:
        import tempfile
        from pathlib import Path

        import onnxruntime as ort

        from fnoreg_export.onnx_export import export_onnx

        with tempfile.TemporaryDirectory() as tmp:
            t2 = time.perf_counter()
            path = export_onnx(model, Path(tmp) / "fnoreg2d.onnx", (32, 48), dynamic=True)
            print(f"\nExported dynamic ONNX ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t2:.0f} s")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (got,) = session.run(None, {"moving": moving.numpy(), "fixed": fixed.numpy()})
            diff = np.abs(ddf_norm_to_vox(got[0] - ddf[0].numpy(), (h, w)))
            print(f"  onnxruntime vs PyTorch at {h}x{w}: max |ddf diff| {diff.max():.2e} voxel, mean {diff.mean():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
