"""fnoreg-train: train a registration network on any pair source; resumable; DDP-ready.

(Over 500 lines on purpose: the config, objective, loop and CLI of one command, which change together.)

Examples:
  fnoreg-train --preset 2d-cpu --data synth --train-res 96x112 --steps 600 --out runs/demo2d
  fnoreg-train --config my.yaml --steps 2000 --resume
  fnoreg-train --preset 3d-cpu --data oasis:/data/neurite-oasis --train-res 80x96x112 --val-res 160x192x224
  torchrun --nproc_per_node 2 -m fnoreg_core.train --preset 2d-cpu --data synth --train-res 96x112 --out runs/ddp

Objective: ``similarity(warp(moving, u), fixed) + reg_weight * diffusion(u) [+ dice_weight * soft Dice]``
with Adam (the paper's). Validation registers ``val_pairs`` pairs of the validation split at
``val_res`` (full resolution) and reports mean Dice, % folded voxels and SDlogJ; the checkpoint with
the best validation Dice is kept as ``best.pt`` beside ``last.pt``. Metrics go to ``metrics.csv``
and, when the ``tensorboard`` package is installed, to TensorBoard (``OUT/tb``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fnoreg_core.data import SPECS_HELP

__all__ = ["TrainConfig", "train", "main", "parse_size", "DEFAULT_RES", "TrainError"]

#: Training resolution when the data has none of its own (synthetic pairs), by dims.
DEFAULT_RES = {2: (160, 192), 3: (80, 96, 112)}


class TrainError(ValueError):
    """Bad training input (preset, sizes, data, checkpoint): reported with exit code 2."""


def parse_size(text: str | list | tuple | None) -> tuple[int, ...] | None:
    """``"80x96x112"`` (or a list) -> ``(80, 96, 112)``; None stays None."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        text = "x".join(str(n) if isinstance(n, int) and not isinstance(n, bool) else "?" for n in text)
    try:
        size = tuple(int(v) for v in str(text).lower().split("x"))
    except ValueError:
        size = ()
    if len(size) not in (2, 3) or min(size) < 2:
        raise TrainError(f"expected a size like 160x192 or 80x96x112, got {text!r}")
    from fnoreg_core.geometry import MAX_AXIS, MAX_VOXELS

    if max(size) > MAX_AXIS or math.prod(size) > MAX_VOXELS:
        raise TrainError(f"size {text!r} is too large (at most {MAX_AXIS} per axis and {MAX_VOXELS:,} voxels)")
    return size


@dataclass
class TrainConfig:
    """Everything a training run depends on (saved in every checkpoint and as ``OUT/config.json``)."""

    model: str = "fnoreg"
    preset: str | None = "2d-cpu"
    dims: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    data: str = "synth"
    val_data: str | None = None
    train_res: list[int] | None = None
    val_res: list[int] | None = None
    loss: str = "mse"
    reg_weight: float = 0.01
    dice_weight: float = 0.0
    field_weight: float = 0.0
    lr: float = 1e-4
    lr_schedule: str = "constant"
    amp: str = "none"
    synth_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    steps: int = 1000
    time_budget_min: float | None = None
    budget_clock: str = "wall"
    val_every: int = 200
    val_pairs: int = 8
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    out: str = "runs/fnoreg"
    name: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise TrainError(f"unknown config key(s) {unknown}; known: {sorted(known)}")
        try:
            cfg = cls(**values)
        except TypeError as exc:
            raise TrainError(f"bad config: {exc}") from None
        cfg.train_res = list(parse_size(cfg.train_res)) if cfg.train_res is not None else None
        cfg.val_res = list(parse_size(cfg.val_res)) if cfg.val_res is not None else None
        return cfg

    def validate(self) -> None:
        from fnoreg_core.validate import check_number, max_threads

        for key, kind in (("model", str), ("preset", (str, type(None))), ("data", str), ("val_data", (str, type(None))),
                          ("loss", str), ("lr_schedule", str), ("amp", str), ("budget_clock", str), ("device", str),
                          ("out", str), ("name", (str, type(None))), ("model_options", dict),
                          ("synth_options", dict)):
            if not isinstance(getattr(self, key), kind):
                raise TrainError(f"{key} must be {'text' if kind is str else 'a mapping' if kind is dict else 'text'}"
                                 f", got {getattr(self, key)!r}")
        if self.dims is not None and self.dims not in (2, 3) or isinstance(self.dims, bool):
            raise TrainError(f"dims must be 2 or 3, got {self.dims!r}")
        numbers = {"lr": dict(lo=0, hi=10, lo_open=True), "reg_weight": dict(lo=0), "dice_weight": dict(lo=0),
                   "field_weight": dict(lo=0), "steps": dict(lo=1, hi=10**9, integer=True),
                   "batch_size": dict(lo=1, hi=4096, integer=True), "val_every": dict(lo=1, integer=True),
                   "val_pairs": dict(lo=1, hi=100_000, integer=True), "workers": dict(lo=0, hi=max_threads(), integer=True),
                   "seed": dict(lo=0, hi=2**32 - 1, integer=True)}
        if self.time_budget_min is not None:
            numbers["time_budget_min"] = dict(lo=0, lo_open=True)
        for key, rule in numbers.items():
            try:
                setattr(self, key, check_number(getattr(self, key), key, **rule))
            except ValueError as exc:
                raise TrainError(str(exc)) from None
        for key, value in self.model_options.items():
            if isinstance(value, bool) or value is None or isinstance(value, str):
                continue
            if isinstance(value, (int, float)):
                try:
                    check_number(value, f"model option {key}", lo=0, hi=4096)
                except ValueError as exc:
                    raise TrainError(f"{exc} (a model option this large or negative cannot build a model)") from None
        if self.loss not in ("mse", "ncc"):
            raise TrainError(f"unknown loss {self.loss!r}, expected mse or ncc")
        for key in ("steps", "batch_size", "val_every", "val_pairs"):
            if getattr(self, key) < 1:
                raise TrainError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise TrainError(f"unknown lr schedule {self.lr_schedule!r}, expected constant or cosine")
        if self.amp not in ("none", "bf16"):
            raise TrainError(f"unknown amp mode {self.amp!r}, expected none or bf16")
        if self.field_weight < 0:
            raise TrainError("field_weight must be >= 0")
        if self.budget_clock not in ("wall", "cpu"):
            raise TrainError(f"unknown budget clock {self.budget_clock!r}, expected wall or cpu")
        if self.time_budget_min is not None and self.time_budget_min <= 0:
            raise TrainError(f"time_budget_min must be > 0, got {self.time_budget_min}")
        if self.lr <= 0 or self.reg_weight < 0 or self.dice_weight < 0:
            raise TrainError("lr must be > 0 and reg_weight, dice_weight >= 0")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise TrainError(f"unknown device {self.device!r}, expected auto, cpu or cuda")


# -- building blocks -------------------------------------------------------------------------------

def build_model(cfg: TrainConfig):
    from fnoreg_core.models import create_model

    try:
        return create_model(cfg.model, dims=cfg.dims, preset=cfg.preset, **cfg.model_options)
    except (ValueError, TypeError) as exc:
        raise TrainError(f"cannot build model {cfg.model!r} with options {cfg.model_options}: {exc}") from None
    except RuntimeError as exc:  # torch: e.g. a layer too large to allocate
        raise TrainError(f"cannot build model {cfg.model!r} with options {cfg.model_options}: {str(exc)[:200]}") from None


def _check_size(model, size: tuple[int, ...], what: str) -> None:
    small = model.min_spatial_size()
    if len(size) != model.dims:
        raise TrainError(f"{what} {'x'.join(map(str, size))} has {len(size)} axes, the model is {model.dims}D")
    if any(n < m for n, m in zip(size, small)):
        raise TrainError(f"{what} {'x'.join(map(str, size))} is below this model's minimum "
                         f"{'x'.join(map(str, small))} (its Fourier modes); use a larger size or fewer modes")


def open_sources(cfg: TrainConfig, dims: int):
    """(train source at train_res, validation source at val_res)."""
    from fnoreg_core.data import DataSpecError, open_source

    train_res = tuple(cfg.train_res) if cfg.train_res else None
    val_res = tuple(cfg.val_res) if cfg.val_res else None
    if cfg.data.startswith("synth"):
        train_res = train_res or DEFAULT_RES[dims]
        val_res = val_res or train_res
    try:
        train_src = open_source(cfg.data, dims, "train", shape=train_res, seed=cfg.seed,
                                synth_options=cfg.synth_options)
        val_spec = cfg.val_data or cfg.data
        val_src = open_source(val_spec, dims, "val", shape=val_res or (None if not val_spec.startswith("synth")
                                                                       else train_src.shape), seed=cfg.seed,
                              synth_options=cfg.synth_options if val_spec == cfg.data else None)
    except (DataSpecError, FileNotFoundError) as exc:
        raise TrainError(str(exc)) from None
    return train_src, val_src


def _one_hot(labels, n_classes: int):
    import torch.nn.functional as F

    oh = F.one_hot(labels[:, 0].clamp(0, n_classes - 1), n_classes)
    return oh.movedim(-1, 1).float()


class Objective:
    """similarity + reg_weight * diffusion (+ dice_weight * soft Dice) (+ field_weight * end-point
    error against the known field, in voxels of the training grid). Returns (loss, parts)."""

    def __init__(self, cfg: TrainConfig, n_classes: int = 0) -> None:
        from fnoreg_core.losses import DiffusionLoss, LocalNCCLoss, MSELoss, SoftDiceLoss

        self.similarity = MSELoss() if cfg.loss == "mse" else LocalNCCLoss()
        self.diffusion = DiffusionLoss()
        self.dice = SoftDiceLoss(include_background=False) if cfg.dice_weight > 0 and n_classes > 1 else None
        self.cfg, self.n_classes = cfg, n_classes

    def __call__(self, ddf_norm, batch):
        import torch

        from fnoreg_core.layers.spatial_transformer import warp

        moved = warp(batch["moving"], ddf_norm)
        sim = self.similarity(moved, batch["fixed"])
        reg = self.diffusion(ddf_norm)
        loss = sim + self.cfg.reg_weight * reg
        parts = {"similarity": float(sim.detach()), "diffusion": float(reg.detach())}
        if self.dice is not None and "moving_labels" in batch:
            warped = warp(_one_hot(batch["moving_labels"], self.n_classes), ddf_norm)
            d = self.dice(warped, _one_hot(batch["fixed_labels"], self.n_classes))
            loss = loss + self.cfg.dice_weight * d
            parts["soft_dice_loss"] = float(d.detach())
        if self.cfg.field_weight > 0 and "ddf_vox" in batch:
            from fnoreg_core.fields import ddf_norm_to_vox

            diff = ddf_norm_to_vox(ddf_norm, ddf_norm.shape[2:]) - batch["ddf_vox"]
            epe = torch.sqrt((diff * diff).sum(1) + 1e-6).mean()
            loss = loss + self.cfg.field_weight * epe
            parts["epe_vox"] = float(epe.detach())
        parts["loss"] = float(loss.detach())
        return loss, parts


def validate(model, source, device, max_pairs: int) -> dict[str, float]:
    """Mean Dice, % folded (J <= 0) and SDlogJ over the first ``max_pairs`` pairs of ``source``."""
    import numpy as np
    import torch

    from fnoreg_core.fields import ddf_norm_to_vox
    from fnoreg_core.layers.spatial_transformer import warp_labels
    from fnoreg_core.metrics import registration_report

    was_training = model.training
    model.eval()
    dice, folded, sdlogj = [], [], []
    with torch.no_grad():
        for i in range(min(max_pairs, len(source))):
            sample = source[i]
            moving = torch.from_numpy(sample["moving"][None]).to(device)
            fixed = torch.from_numpy(sample["fixed"][None]).to(device)
            ddf = model(moving, fixed)
            ddf_vox = ddf_norm_to_vox(ddf[0].cpu().numpy(), source.shape)
            kwargs = {}
            if source.has_labels:
                ml = torch.from_numpy(sample["moving_labels"][None].astype(np.int64)).to(device)
                kwargs = {"warped_labels": warp_labels(ml, ddf)[0, 0].cpu().numpy(),
                          "fixed_labels": sample["fixed_labels"][0]}
            rep = registration_report(ddf_vox, **kwargs)  # a voxel field: no mm spacing (issue 21)
            if "mean_dice" in rep and not math.isnan(rep["mean_dice"]):
                dice.append(rep["mean_dice"])
            folded.append(rep["nonpositive_jac_pct"])
            sdlogj.append(rep["sdlogj"])
    model.train(was_training)
    return {"val_dice": float(np.mean(dice)) if dice else float("nan"),
            "val_folded_pct": float(np.mean(folded)), "val_sdlogj": float(np.mean(sdlogj))}


class _Logger:
    """metrics.csv (appending, resume-safe) + TensorBoard when available."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, out / "metrics.csv", None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        except (ImportError, ModuleNotFoundError):
            print("fnoreg-train: tensorboard not installed (pip install tensorboard); logging to metrics.csv only",
                  file=sys.stderr)

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "metric", "value"])
            for k, v in values.items():
                w.writerow([step, k, f"{v:.6g}"])
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """Adam's rate at ``progress`` in [0, 1] of the run (time budget, else steps): constant, or a
    cosine from ``lr`` down to ``lr / 10``."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(max(progress, 0.0), 1.0)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError("--device cuda asked for, but no CUDA GPU is visible to PyTorch; use --device cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


# -- the loop --------------------------------------------------------------------------------------

#: what a run writes into its --out folder (fnoreg_core.staging.RunFolder guards them)
RUN_FILES = ("config.json", "metrics.csv", "last.pt", "best.pt", "tb")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          session_minutes: float | None = None) -> dict[str, Any]:
    """Run (or resume) training; return the final metrics. Raises :class:`TrainError` on bad input.

    ``session_minutes`` stops this session (validate, save) after that much wall time, whatever the
    run's budget: for leases such as a GPU machine lent for a few minutes; resume later.

    The run folder ``cfg.out`` follows the output rule (:class:`fnoreg_core.staging.RunFolder`): one
    run at a time (a lock), and a new run never writes over files it did not write
    (:class:`~fnoreg_core.staging.OutputError`).
    """
    from fnoreg_core.staging import RunFolder

    cfg.validate()
    if _distributed()[0] != 0:
        return _train(cfg, resume, progress, session_minutes)
    with RunFolder(cfg.out, RUN_FILES, resume=resume, tool="fnoreg-train"):
        return _train(cfg, resume, progress, session_minutes)


def _train(cfg: TrainConfig, resume: bool, progress: bool, session_minutes: float | None) -> dict[str, Any]:
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, RandomSampler
    from torch.utils.data.distributed import DistributedSampler

    from fnoreg_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from fnoreg_core.data.torch_dataset import TorchPairs
    from fnoreg_core.intensity import DEFAULT_NORM
    from fnoreg_core.models import config_to_dict

    cfg.validate()
    rank, local_rank, world = _distributed()
    device = _resolve_device(cfg.device)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
    main_rank = rank == 0
    torch.manual_seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)

    model = build_model(cfg)
    dims = model.dims
    train_src, val_src = open_sources(cfg, dims)
    _check_size(model, train_src.shape, "training size")
    _check_size(model, val_src.shape, "validation size")
    n_classes = 0
    if cfg.dice_weight > 0:
        if not train_src.has_labels:
            raise TrainError(f"--dice-weight needs labels, but {cfg.data!r} has none")
        n_classes = max(train_src.label_names or {0: ""}) + 1
    out = Path(cfg.out)
    last, best = out / "last.pt", out / "best.pt"
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best_dice, history = 0, -math.inf, {}
    train_seconds = 0.0  # optimisation time summed over all sessions of this run (validation excluded)
    clock = time.process_time if cfg.budget_clock == "cpu" else time.perf_counter
    if resume:
        if not last.is_file():
            raise TrainError(f"--resume: no checkpoint {last}; start without --resume")
        try:
            ckpt = load_checkpoint(last)
        except CheckpointError as exc:
            raise TrainError(str(exc)) from None
        if ckpt["config"] != config_to_dict(model):
            raise TrainError(f"--resume: {last} holds a different model ({ckpt['config']}); "
                             "use the same preset and options, or another --out")
        model.load_state_dict(ckpt["state_dict"])
        if isinstance(ckpt.get("optimizer"), dict) and ckpt["optimizer"].get("state"):
            try:
                optimiser.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError) as exc:
                raise TrainError(f"--resume: the optimizer state in {last} does not fit this model ({exc})") from None
        elif main_rank:
            print(f"fnoreg-train: {last} holds no optimizer state (weights only): Adam restarts from zero moments",
                  file=sys.stderr)
        try:
            step, best_dice = int(ckpt.get("step", 0)), float(ckpt.get("best_val_dice", -math.inf))
        except (TypeError, ValueError):
            raise TrainError(f"--resume: {last} has an unreadable step count; start a new run in another --out") from None
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        saved_clock = ckpt.get("train_config", {}).get("budget_clock", "wall")
        if cfg.time_budget_min is not None and saved_clock != cfg.budget_clock:
            raise TrainError(f"--resume: {last} counted {saved_clock} time; pass --budget-clock {saved_clock}")
        if main_rank:
            print(f"resumed {last} at step {step}")
    elif last.exists():
        raise TrainError(f"{last} exists; pass --resume to continue that run, or choose another --out")
    if step >= cfg.steps:
        raise TrainError(f"the run is already at step {step} >= --steps {cfg.steps}; raise --steps to train on")
    budget_s = math.inf if cfg.time_budget_min is None else 60.0 * cfg.time_budget_min
    if train_seconds >= budget_s:
        raise TrainError(f"the run has already trained {train_seconds / 60:.1f} min >= --time-budget-min "
                         f"{cfg.time_budget_min}; raise it to train on")

    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1) + "\n")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if cfg.field_weight > 0 and not cfg.data.startswith("synth"):
        raise TrainError("--field-weight needs pairs with known deformations (--data synth...)")
    dataset = TorchPairs(train_src, true_field=cfg.field_weight > 0)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    if world > 1:
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(step)
    else:
        sampler = RandomSampler(dataset, replacement=True, num_samples=10**9, generator=gen)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        drop_last=True, persistent_workers=cfg.workers > 0, pin_memory=device.type == "cuda")
    objective = Objective(cfg, n_classes)
    logger = _Logger(out, main_rank)

    def save(path: Path, metrics: dict[str, float]) -> None:
        save_checkpoint(path, model, step=step, optimizer=optimiser.state_dict(), metrics=metrics,
                        best_val_dice=best_dice, train_seconds=train_seconds, train_config=dataclasses.asdict(cfg),
                        train_resolution=list(train_src.shape), voxel_size_mm=list(train_src.voxel_size_mm or []),
                        val_voxel_size_mm=list(val_src.voxel_size_mm or []),
                        intensity_norm=DEFAULT_NORM.to_dict(),
                        name=cfg.name or f"{cfg.model}-{cfg.preset or 'custom'}",
                        label_names={str(k): v for k, v in (val_src.label_names or {}).items()})

    bar = None
    if main_rank and progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
        except ImportError:
            bar = None
    if main_rank:
        print(f"training {cfg.model}/{cfg.preset} {dims}D on {train_src.describe()}; validating on "
              f"{val_src.describe()}; {world} process(es) on {device}")
    metrics: dict[str, float] = {}
    net.train()
    t0 = time.perf_counter()
    epoch_iter = iter(loader)
    out_of_time = False
    session_end = math.inf if session_minutes is None else time.perf_counter() + 60.0 * session_minutes
    while step < cfg.steps and not out_of_time:
        t_step = clock()
        try:
            batch = next(epoch_iter)
        except StopIteration:  # DistributedSampler: one pass per epoch
            if world > 1:
                sampler.set_epoch(step)
            epoch_iter = iter(loader)
            batch = next(epoch_iter)
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        progress_frac = train_seconds / budget_s if math.isfinite(budget_s) else step / cfg.steps
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg, progress_frac)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
            ddf = net(batch["moving"], batch["fixed"])
        loss, parts = objective(ddf.float(), batch)
        if not torch.isfinite(loss):
            raise RuntimeError(f"loss became {float(loss)} at step {step + 1}; lower --lr")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if world > 1:  # every rank must stop at the same step
            spent = torch.tensor([clock() - t_step], dtype=torch.float64)
            dist.all_reduce(spent, op=dist.ReduceOp.MAX)
            train_seconds += float(spent)
        else:
            train_seconds += clock() - t_step
        out_of_time = train_seconds >= budget_s or time.perf_counter() >= session_end
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.4g}")
        final = step == cfg.steps or out_of_time
        if main_rank and (step % 10 == 0 or final):
            logger.log(step, {f"train/{k}": v for k, v in parts.items()})
        if step % cfg.val_every == 0 or final:
            if main_rank:
                metrics = validate(model, val_src, device, cfg.val_pairs)
                metrics["train_loss"] = parts["loss"]
                metrics["elapsed_s"] = time.perf_counter() - t0
                metrics["train_s"] = train_seconds
                logger.log(step, {f"val/{k[4:]}" if k.startswith("val_") else k: v for k, v in metrics.items()})
                improved = not math.isnan(metrics["val_dice"]) and metrics["val_dice"] > best_dice
                if improved:
                    best_dice = metrics["val_dice"]
                save(last, metrics)
                if improved or not best.exists():
                    save(best, metrics)
                msg = (f"step {step}: loss {parts['loss']:.4g}, val Dice {metrics['val_dice']:.4f}, "
                       f"folded {metrics['val_folded_pct']:.3f} %, SDlogJ {metrics['val_sdlogj']:.3f}")
                (bar.write if bar is not None else print)(msg)
                history[step] = metrics
            if world > 1:
                dist.barrier()
    if bar is not None:
        bar.close()
    if out_of_time and main_rank:
        print(f"time budget reached at step {step} ({train_seconds / 60:.1f} min of optimisation in all)")
    logger.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"step": step, "best_val_dice": best_dice, "train_seconds": train_seconds, **metrics}


# -- CLI -------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fnoreg-train", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="YAML file of TrainConfig keys; flags given here override it")
    p.add_argument("--model", help="fnoreg | fno | voxelmorph | fourier-net | transmorph. Default: fnoreg")
    p.add_argument("--preset", help="model preset (fnoreg: 2d-small, 2d-medium, 2d-large, 3d, 2d-cpu, 3d-cpu; "
                   "the other models: 2d, 3d, 2d-cpu, 3d-cpu). Default: 2d-cpu")
    p.add_argument("--dims", type=int, choices=(2, 3), help="2 or 3 (default: the preset's)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override, e.g. hidden_channels=24 (JSON values); repeatable")
    p.add_argument("--data", help=f"{SPECS_HELP}. Default: synth")
    p.add_argument("--val-data", help="validation source (default: --data, split val)")
    p.add_argument("--train-res", help="training size, e.g. 80x96x112 (default: the data's; synth: 160x192 / 80x96x112)")
    p.add_argument("--val-res", help="validation size (default: the data's full size)")
    p.add_argument("--loss", choices=("mse", "ncc"))
    p.add_argument("--reg-weight", type=float, help="diffusion weight lambda. Default: 0.01")
    p.add_argument("--dice-weight", type=float, help="soft Dice weight (needs labels). Default: 0")
    p.add_argument("--field-weight", type=float,
                   help="weight of the end-point error (voxels) against the known field of synthetic pairs. Default: 0")
    p.add_argument("--lr", type=float, help="Adam learning rate. Default: 1e-4")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant, or cosine decay to lr/10 over the time budget (else the steps). Default: constant")
    p.add_argument("--amp", choices=("none", "bf16"), help="bf16 autocast of the network (CUDA). Default: none")
    p.add_argument("--synth-option", action="append", default=[], metavar="KEY=VALUE",
                   help="SynthPairs option for synth data, e.g. contrast=random or deform_std=0.03; repeatable")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, help="total optimiser steps. Default: 1000")
    p.add_argument("--time-budget-min", type=float,
                   help="stop (validate, save) once optimisation time summed over all sessions of the run reaches "
                        "this many minutes; with --steps, whichever comes first. Default: no limit")
    p.add_argument("--budget-clock", choices=("wall", "cpu"),
                   help="what --time-budget-min counts: wall time, or CPU time of the training process (all its "
                        "threads; fair between runs that share a busy machine). Default: wall")
    p.add_argument("--val-every", type=int)
    p.add_argument("--val-pairs", type=int)
    p.add_argument("--workers", type=int, help="DataLoader worker processes. Default: 0")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda. Default: auto")
    p.add_argument("--out", help="run folder (checkpoints, metrics.csv, tb/). Default: runs/fnoreg")
    p.add_argument("--name", help="model name for checkpoints and exports")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--session-minutes", type=float,
                   help="stop this session (validate, save last.pt) after this many wall minutes; resume later")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _key_values(items: list[str], flag: str, base: dict | None) -> dict[str, Any]:
    """``base`` updated with ``KEY=VALUE`` items (values parsed as JSON where they are JSON)."""
    out = dict(base or {})
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise TrainError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    if args.config is not None:
        import yaml

        if not args.config.is_file():
            raise TrainError(f"config file {args.config} does not exist")
        try:
            loaded = yaml.safe_load(args.config.read_text()) or {}
        except (UnicodeDecodeError, OSError) as exc:
            raise TrainError(f"cannot read {args.config} as a text YAML file ({exc}); give a YAML mapping of "
                             "TrainConfig keys") from None
        except yaml.YAMLError as exc:
            raise TrainError(f"{args.config} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise TrainError(f"{args.config} must hold a mapping of TrainConfig keys")
        values.update(loaded)
    for key in ("model", "preset", "dims", "data", "val_data", "train_res", "val_res", "loss", "reg_weight",
                "dice_weight", "field_weight", "lr", "lr_schedule", "amp", "batch_size", "steps", "time_budget_min", "budget_clock", "val_every", "val_pairs", "workers", "seed", "device",
                "out", "name"):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    values["model_options"] = _key_values(args.model_option, "--model-option", values.get("model_options"))
    values["synth_options"] = _key_values(args.synth_option, "--synth-option", values.get("synth_options"))
    return TrainConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    from fnoreg_core.checkpoint import CheckpointError
    from fnoreg_core.validate import run_cli

    args = _parser().parse_args(argv)
    results: list[dict] = []

    def body() -> int:
        cfg = config_from_args(args)
        if args.session_minutes is not None and not (args.session_minutes > 0 and math.isfinite(args.session_minutes)):
            raise TrainError("--session-minutes must be a finite number > 0")
        try:
            results.append(train(cfg, resume=args.resume, progress=not args.no_progress,
                                 session_minutes=args.session_minutes))
        except KeyboardInterrupt:
            print("fnoreg-train: interrupted; continue with --resume", file=sys.stderr)
            return 130
        return 0

    code = run_cli("fnoreg-train", body, (TrainError, CheckpointError))
    if code:
        return code
    result = results[0]
    if _distributed()[0] == 0:
        print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
