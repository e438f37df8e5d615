"""``fnoreg-export``: a trained checkpoint -> ONNX graphs (+ fp16) -> TensorRT engines, with parity.

Stages (each printed with its time):

1. load the checkpoint (``weights_only`` reading; bad files are refused with exit code 2);
2. the dynamic ONNX graph ``model.onnx`` (batch and spatial axes symbolic: one file for every size
   in the model's range), parity against PyTorch at each ``--res`` (or the training size);
3. with ``--res``: one static graph per resolution, ``model.<DxHxW>.onnx``, parity, and a check that
   TensorRT's ONNX parser can take it (operator list in ``tensorrt_onnx_ops.txt``);
4. with ``--fp16``: an fp16 copy of every graph (``*.fp16.onnx``; spectral transforms, normalisations
   and the lifting layer stay fp32 inside it, :mod:`fnoreg_export.mixed_precision`), parity with the fp16 bound;
5. with ``--trt``: one engine per resolution, ``model.<DxHxW>.<fp16|fp32>.engine`` + ``.engine.json``,
   run once and compared with onnxruntime;
6. with ``--triton DIR``: a Triton Inference Server model repository for the graphs and engines.

Every ONNX file embeds its model card and has it beside as ``<file>.json``. Files are written into
a hidden staging folder and moved into place only when everything passed: on any failure nothing
is left behind (and no existing file is touched), except that an fp16 copy failing parity fails
alone: the fp32 files that passed are written, the fp16 ones left out, and the run exits 1 with advice. Exit codes: 0 done, 1 parity or export failure,
2 bad input, or TensorRT/GPU missing for ``--trt`` (the ONNX files are written first).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

from fnoreg_core.geometry import ImageError
from fnoreg_core.staging import OUTPUT_OPTION_HELP, OutputError, StagedOutputs

__all__ = ["main", "build_parser", "parse_res", "UsageError", "ExportError", "ParityError"]

EPILOG = """\
examples:
  fnoreg-export runs/fnoreg-3d-cpu/best.pt --out exported/
      one dynamic-size model.onnx (+ model.onnx.json card), parity at the training size
  fnoreg-export best.pt --res 160x192x224 80x96x112 --fp16 --out exported/
      + static graphs per size and fp16 copies of every graph, each with parity
  fnoreg-export best.pt --end-to-end
      + model.e2e.onnx: raw images in, displacement in voxels and mm and the moved image out (docs/DEPLOY.md)
  fnoreg-export best.pt --trt --res 160x192x224 --fp16 --no-dynamic --triton triton_repo/
      fp16 TensorRT engine for 160x192x224 (needs an NVIDIA GPU and tensorrt) and a Triton repository

exit codes: 0 done; 1 parity above the bound (fp32: 1e-3 voxel; fp16: 0.1 voxel or 0.2% of the largest
displacement) or a failed export (an fp16 failure keeps the fp32 files that passed);
2 bad input, or --trt without TensorRT/CUDA GPU (after writing the ONNX files).
"""

PROG = "fnoreg-export"


class UsageError(ValueError):
    """Bad command-line input: exit code 2."""


class ExportError(RuntimeError):
    """The export cannot be completed as asked (e.g. a graph TensorRT cannot take): exit code 1."""


class ParityError(ExportError):
    """An exported graph or engine differs from its reference by more than the bound: exit code 1."""


# ----------------------------------------------------------------------------------------------
# arguments


def parse_res(text: str) -> tuple[int, ...]:
    """``"160x192x224"`` -> ``(160, 192, 224)``; UsageError for anything else."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--res {text!r} is not a size like 160x192x224 (or 160x192 for 2D models)") from None
    if any(n <= 0 for n in size):
        raise UsageError(f"--res {text!r} has a non-positive size")
    from fnoreg_core.geometry import MAX_AXIS, MAX_VOXELS

    if any(n > MAX_AXIS for n in size) or _prod(size) > MAX_VOXELS:
        raise UsageError(f"--res {text!r} is too large (at most {MAX_AXIS} per axis and {MAX_VOXELS:,} voxels)")
    return size


def _prod(size: Sequence[int]) -> int:
    n = 1
    for v in size:
        n *= int(v)
    return n


def res_name(size: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in size)


def build_parser() -> argparse.ArgumentParser:
    from fnoreg_export.onnx_export import DEFAULT_MAX_SIZE, DEFAULT_OPSET

    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Export a trained FNOReg checkpoint to ONNX (dynamic size, static sizes, fp16) and "
                    "TensorRT engines, check parity against PyTorch, and write model cards "
                    "(and optionally a Triton model repository).")
    p.add_argument("checkpoint", type=Path, help="checkpoint .pt written by fnoreg-train")
    p.add_argument("--trt", action="store_true",
                   help="also build a TensorRT engine per --res (needs an NVIDIA GPU, tensorrt and CUDA PyTorch)")
    p.add_argument("--trt-version-compatible", action="store_true",
                   help="build engines that later TensorRT releases of the same major load (embeds the lean runtime; "
                        "Triton then needs --backend-config=tensorrt,version-compatible=true; may be slower). "
                        "Default: no, an engine loads only under the TensorRT version that built it")
    p.add_argument("--trt-hardware-compat", choices=["none", "ampere-plus", "same-cc"], default="none",
                   help="GPUs an engine may run on: none (the build GPU's compute capability), ampere-plus (compute "
                        "capability >= 8.0) or same-cc (other GPUs of the same compute capability); may be slower. "
                        "Default: none")
    p.add_argument("--res", action="extend", nargs="+", default=[], metavar="DxHxW",
                   help="resolution(s) for static graphs, engines and parity, e.g. 160x192x224 (2D: 160x192)")
    p.add_argument("--dynamic", action=argparse.BooleanOptionalAction, default=True,
                   help="write the dynamic-size model.onnx (default: yes); with it, every --res must be a "
                        "multiple of the model's size multiple")
    p.add_argument("--fp16", action="store_true",
                   help="also write fp16 graphs (fp16 inputs/outputs; spectral transforms, normalisations and "
                        "lifting computed in fp32); engines become fp16. An fp16 copy above the parity bound is "
                        "left out (exit 1), the fp32 files are kept")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: <checkpoint folder>/<checkpoint name>-export)")
    p.add_argument("--overwrite", action="store_true", help=OUTPUT_OPTION_HELP)
    p.add_argument("--triton", type=Path, default=None, metavar="DIR",
                   help="write an NVIDIA Triton Inference Server model repository here")
    p.add_argument("--triton-max-batch", type=int, default=4, metavar="N",
                   help="max_batch_size of dynamic graphs in the Triton repository (default: 4)")
    p.add_argument("--name", default=None, help="model name for the cards (default: from the checkpoint)")
    p.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE, metavar="N",
                   help=f"largest spatial size per axis of the dynamic graph (default: {DEFAULT_MAX_SIZE})")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 20, default {DEFAULT_OPSET})")
    p.add_argument("--bundle", action="store_true",
                   help="also write what a shipped model folder holds (assets/models/<name>/): checkpoint.pt "
                        "(weights, config and training facts; no optimiser state) and, from the run folder, "
                        "training.csv (metrics.csv) and training_config.json")
    p.add_argument("--demo", type=Path, default=None, metavar="DIR",
                   help="folder with demo image pairs for parity (default: assets/demo)")
    p.add_argument("--end-to-end", nargs="?", const="moved", default=None, choices=["moved", "field"],
                   help="also write <graph>.e2e.onnx per fp32 graph: raw images in, the card's normalisation inside, "
                        "ddf_vox/ddf_mm (+ the moved image unless 'field') out, for any onnxruntime application "
                        "(docs/DEPLOY.md); parity vs the Python path")
    return p


# ----------------------------------------------------------------------------------------------
# progress


class Progress:
    """``[i/n] what ... done in t s`` lines."""

    def __init__(self, total: int, stream=None):
        self.total, self.index = total, 0
        self.stream = stream or sys.stdout

    @contextmanager
    def stage(self, label: str):
        self.index += 1
        print(f"[{self.index}/{self.total}] {label} ...", end=" ", file=self.stream, flush=True)
        start = time.perf_counter()
        notes: list[str] = []
        try:
            yield notes
        except BaseException:
            print(f"failed after {time.perf_counter() - start:.1f} s", file=self.stream, flush=True)
            raise
        print(f"done in {time.perf_counter() - start:.1f} s", file=self.stream, flush=True)
        for note in notes:
            print(f"      {note}", file=self.stream, flush=True)


# ----------------------------------------------------------------------------------------------
# cards


def _plain(value: Any) -> Any:
    """``value`` if it is JSON-serialisable plain data, else None."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def detect_preset(model) -> str | None:
    """The registry preset whose config equals the model's, if any."""
    import dataclasses

    from fnoreg_core.models import registry

    try:
        _, config_cls, presets = registry._lookup(model.arch)
    except ValueError:
        return None
    for name, values in sorted(presets.items()):
        fields = {f.name for f in dataclasses.fields(config_cls)}
        if set(values) - fields:
            continue
        try:
            candidate = config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        except (TypeError, ValueError):
            continue
        if candidate == model.config:
            return name
    return None


class CardMaker:
    """Builds the model card of each exported file from the checkpoint."""

    def __init__(self, model, ckpt: dict, ckpt_path: Path, name: str | None, max_size: int):
        from fnoreg_core.intensity import IntensityNorm

        self.model, self.ckpt, self.max_size = model, ckpt, max_size
        self.preset = ckpt.get("preset") if isinstance(ckpt.get("preset"), str) else detect_preset(model)
        dims = model.dims
        self.name = name or (ckpt.get("name") if isinstance(ckpt.get("name"), str) else None) \
            or f"{model.arch}-{self.preset or 'custom'}-{dims}d"
        train = ckpt.get("train_resolution")
        try:
            train = [int(n) for n in train] if train is not None else None
        except (TypeError, ValueError):
            train = None
        self.train_resolution = train if train is not None and len(train) == dims else None
        norm = ckpt.get("intensity_norm")
        try:
            self.intensity_norm = IntensityNorm.from_dict(norm if isinstance(norm, dict) else {}).to_dict()
        except (TypeError, ValueError):
            self.intensity_norm = IntensityNorm().to_dict()
        voxel = ckpt.get("voxel_size_mm")
        self.voxel_size_mm = [float(v) for v in voxel] if isinstance(voxel, (list, tuple)) else None
        version = ckpt.get("version")
        self.version = str(version) if isinstance(version, (str, int, float)) else "0.1.0"
        self.source = ckpt_path.name

    def card(self, onnx_path: Path, static_size: Sequence[int] | None, precision: str,
             parity: dict, extra: dict | None = None):
        from fnoreg_core.fields import DDF_CONVENTION
        from fnoreg_core.models import config_to_dict
        from fnoreg_export.model_card import ModelCard
        from fnoreg_export.onnx_export import graph_opset, io_spec, size_range

        inputs, outputs = io_spec(onnx_path)
        if static_size is None:
            lo, hi, multiple = size_range(self.model, True, self.max_size)
        else:
            lo = hi = [int(n) for n in static_size]
            multiple = 1
        info = {"source_checkpoint": self.source, "exported_by": f"{PROG} (fnoreg {_fnoreg_version()})",
                "exported_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "torch_version": _module_version("torch"), "onnxruntime_version": _module_version("onnxruntime"),
                "step": _plain(self.ckpt.get("step")), "metrics": _plain(self.ckpt.get("metrics"))}
        info = {k: v for k, v in info.items() if v is not None}
        info.update(extra or {})
        return ModelCard(
            name=self.name, arch=self.model.arch, dims=self.model.dims, config=config_to_dict(self.model),
            train_resolution=self.train_resolution, min_size=list(lo), max_size=list(hi), size_multiple=multiple,
            static_size=list(static_size) if static_size is not None else None, version=self.version,
            preset=self.preset, voxel_size_mm=self.voxel_size_mm, precision=precision,
            intensity_norm=self.intensity_norm, displacement=DDF_CONVENTION, inputs=inputs, outputs=outputs,
            opset=graph_opset(onnx_path), parity=parity, extra=info,
        )


def _module_version(name: str) -> str | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    return str(getattr(module, "__version__", "")) or None


def _fnoreg_version() -> str:
    try:
        from importlib.metadata import version

        return version("fnoreg")
    except Exception:
        return "unknown"


def write_card(onnx_path: Path, card) -> None:
    """Embed the card in the ONNX metadata and write ``<file>.json`` beside it."""
    from fnoreg_export.model_card import embed_card

    embed_card(onnx_path, card)
    card.save(onnx_path.with_name(onnx_path.name + ".json"))


# ----------------------------------------------------------------------------------------------
# the run


class Plan:
    """Validated inputs of one run."""

    def __init__(self, args, model, ckpt):
        from fnoreg_export.onnx_export import size_range

        self.args, self.model, self.ckpt = args, model, ckpt
        dims = model.dims
        if args.opset < 20:
            raise UsageError(f"--opset {args.opset}: expected 20 or higher (5-D GridSample needs opset 20)")
        top = _max_opset()
        if args.opset > top:
            raise UsageError(f"--opset {args.opset}: the installed onnx knows opsets up to {top}; use 20..{top}")
        if args.triton_max_batch < 0:
            raise UsageError(f"--triton-max-batch {args.triton_max_batch}: expected 0 or more")
        sizes: list[tuple[int, ...]] = []
        for text in args.res:
            size = parse_res(text)
            if size not in sizes:
                sizes.append(size)
        lo_dyn, hi_dyn, multiple = size_range(model, True, args.max_size)
        min_size = [max(int(n), 2) for n in model.min_spatial_size()]
        if args.dynamic and any(h < lo for h, lo in zip(hi_dyn, lo_dyn)):
            raise UsageError(f"--max-size {args.max_size} is below the smallest size the dynamic graph can take "
                             f"({res_name(lo_dyn)})")
        for size in sizes:
            name = res_name(size)
            if len(size) != dims:
                raise UsageError(f"--res {name} has {len(size)} sizes, but this is a {dims}D model "
                                 f"(expected {dims} numbers like {'160x192x224' if dims == 3 else '160x192'})")
            small = [n for n, m in zip(size, min_size) if n < m]
            if small:
                raise UsageError(f"--res {name} is below this model's minimum size {res_name(min_size)} "
                                 "(its Fourier layers keep that many modes per axis)")
            if args.dynamic:
                if any(n % multiple for n in size):
                    near = [max(int(round(n / multiple)) * multiple, lo) for n, lo in zip(size, lo_dyn)]
                    raise UsageError(
                        f"--res {name}: the dynamic graph takes sizes that are multiples of {multiple} "
                        f"per axis (e.g. {res_name(near)}); use such a size, or --no-dynamic for static "
                        "graphs only (they take any size at or above the minimum)")
                if any(n > h for n, h in zip(size, hi_dyn)):
                    raise UsageError(f"--res {name} is above --max-size {args.max_size}")
        if args.trt and not sizes:
            raise UsageError("--trt builds one engine per resolution: give them with --res (e.g. --res 160x192x224)")
        if not args.dynamic and not sizes:
            raise UsageError("--no-dynamic leaves nothing to export: give --res for static graphs")
        self.sizes = sizes
        self.multiple = multiple
        # parity sizes of the dynamic graph: the requested ones, else the training size (or a small one)
        if sizes:
            self.dynamic_parity_sizes = sizes
        else:
            train = ckpt.get("train_resolution")
            default = None
            try:
                train = [int(n) for n in train] if train is not None else None
            except (TypeError, ValueError):
                train = None
            if train and len(train) == dims:
                default = tuple(min(max(int(round(n / multiple)) * multiple, lo), hi)
                                for n, lo, hi in zip(train, lo_dyn, hi_dyn))
            self.dynamic_parity_sizes = [default or self.example_size()]
        out = args.out if args.out is not None else args.checkpoint.resolve().parent / f"{args.checkpoint.stem}-export"
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} exists and is not a folder")
        self.out = out
        if args.triton is not None and args.triton.exists() and not args.triton.is_dir():
            raise UsageError(f"--triton {args.triton} exists and is not a folder")
        self.triton = args.triton
        if args.demo is not None and not args.demo.is_dir():
            raise UsageError(f"--demo {args.demo} is not a folder")

    def example_size(self) -> tuple[int, ...]:
        """Tracing size of the dynamic export: small, valid, distinct per axis, every symbol >= 2."""
        from fnoreg_export.onnx_export import size_range

        lo, _, multiple = size_range(self.model, True, self.args.max_size)
        step = max(multiple, 1)
        return tuple(max(n, 2 * step) + step * i for i, n in enumerate(lo))

    def stage_count(self, engines: bool = True) -> int:
        n = 1  # load
        graphs = (1 if self.args.dynamic else 0) + len(self.sizes)
        n += 2 * graphs  # export + parity
        n += 1 if self.sizes else 0  # TensorRT compatibility check
        n += graphs if self.args.fp16 else 0
        n += 2 * len(self.sizes) if self.args.trt and engines else 0
        n += 1 if self.triton is not None else 0
        n += 1 if self.args.bundle else 0
        n += graphs if self.args.end_to_end else 0
        n += 1  # move into place
        return n


def _max_opset() -> int:
    try:
        import onnx

        return int(onnx.defs.onnx_opset_version())
    except Exception:  # noqa: BLE001 - onnx missing: the export itself says so
        return 10**6


class Outputs(StagedOutputs):
    """A staging folder per destination (:class:`fnoreg_core.staging.StagedOutputs`, file by file);
    files move into place only at :meth:`commit`, under the output rule (only files an earlier
    fnoreg run wrote are replaced, and only with ``--overwrite``)."""

    def __init__(self, overwrite: bool = False):
        super().__init__(how="files", overwrite=overwrite, tool=PROG)

    def staging(self, destination: Path) -> Path:
        return self.folder(destination)


def _end_to_end(progress: Progress, network: Path, size: Sequence[int], args) -> None:
    """``<graph>.e2e.onnx`` beside an fp32 network graph (:mod:`fnoreg_export.end_to_end`), parity or ParityError."""
    from fnoreg_export.end_to_end import E2EParityError, write

    target = network.with_name(network.name[: -len(".onnx")] + ".e2e.onnx")
    with progress.stage(f"end-to-end graph -> {target.name}, parity vs the Python path at {res_name(size)}") as notes:
        try:
            _, parity = write(network, target, moved=args.end_to_end == "moved", size=size, demo_dir=args.demo)
        except E2EParityError as exc:
            raise ParityError(str(exc)) from None
        entry = next(iter(parity.values()))
        notes.append(f"max |ddf_vox diff| {entry['max_abs_vox']:.2e} vox, |ddf_mm| {entry['max_abs_mm']:.2e} mm, "
                     f"moved {entry['moved_max_abs_rel']:.2e} of the range ({_size_mb(target)})")


def _fmt_parity(summary: dict) -> str:
    inputs = ", ".join(i["label"] for i in summary["inputs"])
    return (f"max |ddf diff| {summary['max_abs_vox']:.2e} vox, mean {summary['mean_abs_vox']:.2e} vox "
            f"(bound {summary['bound_vox']:g}; {summary['reference']} vs {summary['candidate']}; inputs: {inputs})")


def _check_parity(summaries: dict[str, dict], what: str) -> None:
    failed = {size: s for size, s in summaries.items() if not s["passed"]}
    if failed:
        details = "; ".join(f"{size}: max {s['max_abs_vox']:.3e} > {s['bound_vox']:g} voxel" for size, s in failed.items())
        raise ParityError(f"{what} does not match its reference ({details})")


def run(args) -> int:
    from fnoreg_core.checkpoint import CheckpointError, load_model
    from fnoreg_export import parity as P
    from fnoreg_export.onnx_export import export_onnx

    if args.checkpoint.is_dir():
        raise UsageError(f"{args.checkpoint} is a folder; expected a checkpoint file (.pt)")
    start = time.perf_counter()
    try:
        model, ckpt = load_model(args.checkpoint)  # CheckpointError -> exit 2
    except CheckpointError:
        raise
    except Exception as exc:  # torch.load raises more than CheckpointError covers (e.g. IndexError on junk)
        raise UsageError(f"{args.checkpoint} is not a readable FNOReg checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); expected a .pt file written by fnoreg-train") from None
    plan = Plan(args, model, ckpt)
    trt_ok, trt_reason = (True, "")
    if args.trt:
        from fnoreg_export.tensorrt_build import tensorrt_status

        trt_ok, trt_reason = tensorrt_status()
        if not trt_ok:
            print(f"{PROG}: note: {trt_reason}; the ONNX files will be written, then the run stops with exit code 2 "
                  "before building engines", file=sys.stderr)
    progress = Progress(plan.stage_count(engines=trt_ok))
    with progress.stage(f"load {args.checkpoint.name}") as notes:
        makers = CardMaker(model, ckpt, args.checkpoint, args.name, args.max_size)
        n_params = sum(p.numel() for p in model.parameters())
        notes.append(f"{makers.name}: {model.arch} {model.dims}D, {n_params:,} parameters, preset "
                     f"{makers.preset or 'none'}, size multiple {plan.multiple}, minimum "
                     f"{res_name(model.min_spatial_size())}")
        if getattr(model.config, "factorization", None) == "tucker":
            notes.append("Tucker-factorised spectral weights are exported as they are (core x factors in the graph)")

    outputs = Outputs(overwrite=args.overwrite)
    try:
        outputs.check(plan.out, ["model.onnx"] if args.dynamic else [])  # refuse before the work
        stage_dir = outputs.staging(plan.out)
        graphs: list[tuple[Path, tuple[int, ...] | None]] = []  # (fp32 graph, static size or None)
        cases_cache: dict[tuple[int, ...], list] = {}

        def cases(size):
            if size not in cases_cache:
                cases_cache[size] = P.parity_cases(model.dims, size, args.demo,
                                                   _norm(makers.intensity_norm))
            return cases_cache[size]

        torch_ref = lambda moving, fixed: P.torch_ddf(model, moving, fixed)  # noqa: E731

        def parity_of(path: Path, sizes, precision: str, reference=torch_ref, ref_name="PyTorch fp32",
                      candidate=None, cand_name="onnxruntime CPU") -> dict[str, dict]:
            runner = candidate or P.OrtRunner(path)
            return {res_name(s): P.summarise(P.measure(reference, runner, cases(s)), precision, ref_name, cand_name)
                    for s in sizes}

        jobs: list[tuple[str, tuple[int, ...] | None, list]] = []
        if args.dynamic:
            jobs.append(("model.onnx", None, plan.dynamic_parity_sizes))
        for size in plan.sizes:
            jobs.append((f"model.{res_name(size)}.onnx", size, [size]))

        for filename, static, sizes in jobs:
            path = stage_dir / filename
            kind = "dynamic" if static is None else f"static {res_name(static)}"
            example = plan.example_size() if static is None else static
            with progress.stage(f"export {kind} ONNX -> {filename}") as notes:
                export_onnx(model, path, example, dynamic=static is None, opset=args.opset, max_size=args.max_size)
                notes.append(f"{_size_mb(path)}, opset {args.opset}")
            with progress.stage(f"parity {filename} vs PyTorch at {', '.join(res_name(s) for s in sizes)}") as notes:
                summaries = parity_of(path, sizes, "fp32")
                notes.extend(f"{size}: {_fmt_parity(s)}" for size, s in summaries.items())
                _check_parity(summaries, filename)
            write_card(path, makers.card(path, static, "fp32", summaries))
            graphs.append((path, static))
            if args.end_to_end:
                _end_to_end(progress, path, static or sizes[0], args)

        trt_problems: dict[str, list[str]] = {}
        if plan.sizes:
            from fnoreg_export.trt_support import analyse_graph, load_op_list

            ops = load_op_list()
            with progress.stage(f"check static graphs against TensorRT {ops.tensorrt_version}'s ONNX operator list") as notes:
                for path, static in graphs:
                    if static is None:
                        continue
                    report = analyse_graph(path, static=True)
                    trt_problems[path.name] = report.problems
                    status = "ok" if report.ok else "PROBLEMS: " + "; ".join(report.problems)
                    notes.append(f"{path.name}: {status} ({len(report.op_types)} operator types, static shapes, "
                                 "no DFT/complex)" if report.ok else f"{path.name}: {status}")
                    _update_card(path, {"tensorrt_check": {"tensorrt_version": ops.tensorrt_version,
                                                           "source": ops.source, "problems": report.problems,
                                                           "operators": report.op_types}})

        fp16_graphs: dict[Path, Path] = {}
        fp16_failed: dict[str, str] = {}  # fp16 file -> why it was left out (the fp32 files are kept)
        if args.fp16:
            from fnoreg_export.mixed_precision import DEFAULT_KEEP_FP32, convert_mixed_fp16

            for path, static in graphs:
                half = path.with_name(path.name[: -len(".onnx")] + ".fp16.onnx")
                sizes = plan.dynamic_parity_sizes if static is None else [static]
                with progress.stage(f"fp16 {half.name} (spectral transforms, normalisations and lifting in fp32) "
                                    "+ parity vs PyTorch fp32") as notes:
                    try:
                        facts = convert_mixed_fp16(path, half, DEFAULT_KEEP_FP32)
                        summaries = parity_of(half, sizes, "fp16")
                    except (ValueError, FloatingPointError) as exc:
                        facts, summaries, fp16_failed[half.name] = None, {}, str(exc)
                    if facts is not None:
                        notes.append(f"{_size_mb(half)}; {facts['converted_initializers']} weight tensors converted, "
                                     f"{facts['clipped']} values clipped to the fp16 range; {facts['fp32_nodes']} of "
                                     f"{facts['fp32_nodes'] + facts['fp16_nodes']} nodes in fp32, {facts['casts']} casts")
                        notes.extend(f"{size}: {_fmt_parity(s)}" for size, s in summaries.items())
                        failed = {size: s for size, s in summaries.items() if not s["passed"]}
                        if failed:
                            fp16_failed[half.name] = "; ".join(f"{size}: max {s['max_abs_vox']:.3f} > {s['bound_vox']:g} "
                                                               "voxel" for size, s in failed.items())
                    if half.name in fp16_failed:  # per precision: drop this fp16 copy, keep every fp32 file
                        for leftover in (half, half.with_name(half.name + ".data")):
                            leftover.unlink(missing_ok=True)
                        notes.append(f"FAILED: {fp16_failed[half.name]}; {half.name} is left out, {path.name} is kept")
                        continue
                extra = {"fp16_conversion": {**facts, "io_dtype": "float16",
                                             "compute": "float16; float32 in " + ", ".join(DEFAULT_KEEP_FP32),
                                             "from": path.name}}
                if path.name in trt_problems:
                    from fnoreg_export.trt_support import analyse_graph

                    extra["tensorrt_check"] = {"problems": analyse_graph(half, static=True).problems}
                write_card(half, makers.card(half, static, "fp16", summaries, extra))
                fp16_graphs[path] = half

        engines: list[tuple[Path, dict]] = []
        if args.trt and not trt_ok:
            _triton(plan, progress, outputs, graphs, fp16_graphs, engines)
            with progress.stage("move files into place") as notes:
                written = outputs.commit()
                notes.extend(str(p) for p in written)
            from fnoreg_export.tensorrt_build import INSTALL_HINT

            if fp16_failed:
                _fp16_advice(fp16_failed, plan.out)
            print(f"{PROG}: error: cannot build TensorRT engines: {trt_reason}. {INSTALL_HINT} "
                  f"The ONNX files are in {plan.out}.", file=sys.stderr)
            return 2
        if args.trt:
            from fnoreg_export.runtime.backends import TensorRTRunner
            from fnoreg_export.tensorrt_build import build_engine
            from fnoreg_export.trt_support import check_graph

            precision = "fp16" if args.fp16 else "fp32"
            sources = [(fp16_graphs[path] if precision == "fp16" else path, static)  # no engine from a failed fp16 copy
                       for path, static in graphs if static is not None and (precision == "fp32" or path in fp16_graphs)]
            bad = {source.name: check_graph(source, static=True) for source, _ in sources}
            bad = {name: problems for name, problems in bad.items() if problems}
            if bad:
                raise ExportError("TensorRT cannot take the static graph(s): " +
                                  "; ".join(f"{n}: {', '.join(p)}" for n, p in bad.items()))
            for source, static in sources:
                engine = stage_dir / f"model.{res_name(static)}.{precision}.engine"
                with progress.stage(f"build TensorRT engine {engine.name}") as notes:
                    facts = build_engine(source, engine, (1, 1, *static), precision,
                                         version_compatible=args.trt_version_compatible,
                                         hardware_compatibility=args.trt_hardware_compat)
                    notes.append(f"{_size_mb(engine)}; TensorRT {facts['tensorrt_version']} on {facts['gpu_name']} "
                                 f"(compute capability {facts['compute_capability']}), build {facts['build_time_s']:.1f} s")
                with progress.stage(f"run {engine.name} once, parity vs onnxruntime") as notes:
                    # the runtime's TensorRT code, as users run it (the card is not written yet: say whether
                    # the engine embeds TensorRT's lean runtime, as the card will)
                    with TensorRTRunner(engine, allow_host_code=facts["version_compatible"]
                                        and not facts["exclude_lean_runtime"]) as runner:
                        summaries = parity_of(source, [static], precision, reference=P.OrtRunner(source),
                                              ref_name=f"onnxruntime CPU ({source.name})", candidate=runner,
                                              cand_name="TensorRT")
                    notes.extend(f"{size}: {_fmt_parity(s)}" for size, s in summaries.items())
                    _check_parity(summaries, engine.name)
                card = makers.card(source, static, precision, summaries,
                                   {"engine": facts, "onnx_parity": _read_card(source).parity})
                card.save(engine.with_name(engine.name + ".json"))
                engines.append((engine, card.to_dict()))

        _triton(plan, progress, outputs, graphs, fp16_graphs, engines)
        if args.bundle:
            with progress.stage("bundle the weights and the training log") as notes:
                notes.extend(_bundle(args.checkpoint, ckpt, stage_dir))
        with progress.stage("move files into place") as notes:
            written = outputs.commit()
            notes.extend(str(p) for p in written)
        print(f"{PROG}: wrote {len(written)} files to {plan.out} in {time.perf_counter() - start:.1f} s")
        if fp16_failed:
            _fp16_advice(fp16_failed, plan.out)
            return 1
        return 0
    except BaseException:
        outputs.discard()
        raise


def _fp16_advice(failed: dict[str, str], out: Path) -> None:
    """Exit-1 message of an fp16 copy that failed parity: what was kept, and to drop --fp16."""
    print(f"{PROG}: error: the fp16 copy did not match PyTorch fp32 within the fp16 bound and was left out ("
          + "; ".join(f"{name}: {why}" for name, why in failed.items()) + f"). Every fp32 file passed and is in "
          f"{out} (model.onnx runs at full accuracy). Run again without --fp16, or use the fp32 graphs/engines; fp16 "
          "needs a model whose pointwise layers tolerate 11-bit rounding", file=sys.stderr)


def _bundle(checkpoint: Path, ckpt: dict, out: Path) -> list[str]:
    """``checkpoint.pt`` without optimiser state, plus the run's ``metrics.csv`` / ``config.json``."""
    import shutil

    import torch

    torch.save({k: v for k, v in ckpt.items() if k != "optimizer"}, out / "checkpoint.pt")
    notes = [f"checkpoint.pt ({_size_mb(out / 'checkpoint.pt')})"]
    for source, name in (("metrics.csv", "training.csv"), ("config.json", "training_config.json")):
        if (checkpoint.parent / source).is_file():
            shutil.copy(checkpoint.parent / source, out / name)
            notes.append(f"{name} (from {checkpoint.parent / source})")
    return notes


def _triton(plan, progress, outputs, graphs, fp16_graphs, engines) -> None:
    if plan.triton is None:
        return
    from fnoreg_export.triton import triton_model_name, write_triton_model

    repo = outputs.staging(plan.triton)
    with progress.stage(f"Triton model repository {plan.triton}") as notes:
        served: list[Path] = []
        dynamic = [p for p, s in graphs if s is None]
        if dynamic:
            served += dynamic + [fp16_graphs[p] for p in dynamic if p in fp16_graphs]
        else:  # no dynamic graph: serve the static ones
            served += [p for p, _ in graphs] + [fp16_graphs[p] for p, _ in graphs if p in fp16_graphs]
        for path in served:
            card = _read_card(path).to_dict()
            stem = path.name[: -len(".onnx")].replace("model", card["name"], 1)
            folder = write_triton_model(repo, path, card, triton_model_name(stem),
                                        max_batch_size=plan.args.triton_max_batch)
            notes.append(f"{folder.name}: onnxruntime_onnx <- {path.name}")
        for engine, card in engines:
            stem = engine.name[: -len(".engine")].replace("model", card["name"], 1)
            folder = write_triton_model(repo, engine, card, triton_model_name(stem + ".trt"))
            notes.append(f"{folder.name}: tensorrt_plan <- {engine.name}")


def _read_card(path: Path):
    from fnoreg_export.model_card import read_card

    return read_card(path)


def _update_card(path: Path, extra: dict) -> None:
    card = _read_card(path)
    card.extra.update(extra)
    write_card(path, card)


def _norm(values: dict):
    from fnoreg_core.intensity import IntensityNorm

    return IntensityNorm.from_dict(values)


def _size_mb(path: Path) -> str:
    size = path.stat().st_size
    data = path.with_name(path.name + ".data")
    if data.is_file():
        size += data.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fnoreg-export``; returns the exit code."""
    from fnoreg_core.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (UsageError, CheckpointError, OutputError, ImageError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        print(f"{PROG}: error: {exc}; no files were written", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no files were written", file=sys.stderr)
        return 130
    except Exception as exc:  # an export that failed: say what, leave nothing behind
        from fnoreg_export.tensorrt_build import TensorRTUnavailable

        if isinstance(exc, TensorRTUnavailable):
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        from fnoreg_core.validate import log_traceback

        log = log_traceback(PROG, exc)
        print(f"{PROG}: error: export failed ({type(exc).__name__}: {str(exc)[:300]}); no files were written "
              f"(full traceback in {log})", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
