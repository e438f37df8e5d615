"""The benchmark report: ``docs/BENCHMARKS.md`` and ``docs/benchmarks/*.png`` from one command.

On the real-brain set (``fnoreg-data templates``: Colin27 <-> fsaverage with 12 subcortical
structures, MNI152 <-> fsaverage with grey/white matter; the test split, never trained on), at 2 mm
(80x96x112) and 1 mm (160x192x224): no registration, dipy affine, dipy SyN (the classical
deformable baseline), VoxelMorph, FNO and FNOReg (the bundled ``fnoreg3d``). All learned models run
through onnxruntime with the same thread count; they were trained with the same data and the same
CPU-time budget (``--budget-clock cpu``; see the training section). Then: resolution robustness
(trained at 2 mm, evaluated at 1 mm), synthetic held-out pairs at 160x192x224 with end-point error
against the known deformation, FNOReg-3D latency and peak memory through onnxruntime at
160x192x224, the training records, and whether the targets of the issue are met. The bundled
models' ``MODEL_CARD.md`` files get the measured numbers.

Examples:
  python benchmarks/run_all.py                    # the whole report (about 1 h on 2 cores, SyN at 1 mm most of it)
  python benchmarks/run_all.py --no-dipy-1mm      # without dipy at 1 mm (about 30 min)
  python benchmarks/run_all.py --quick --out /tmp/b.md   # smoke run: 2 mm, Colin27 -> fsaverage only
  python benchmarks/run_all.py --train-baselines  # first retrain VoxelMorph / FNO with FNOReg-3D's recorded budget

Exit codes: 0 written; 2 missing inputs (template set, models), with what to run.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common as C  # noqa: E402

#: learned models: name -> (folder with model.onnx + checkpoint.pt + training.csv, label in tables)
LEARNED = {
    "fnoreg3d": (ROOT / "assets" / "models" / "fnoreg3d", "FNOReg-3D (ours, bundled)"),
    "fno3d": (ROOT / "benchmarks" / "models" / "fno3d", "FNO-3D"),
    "voxelmorph3d": (ROOT / "benchmarks" / "models" / "voxelmorph3d", "VoxelMorph-3D"),
}
#: the run whose data, options and CPU budget the baselines are (re)trained with
BUDGET_REFERENCE = "fnoreg3d"
BASELINE_ARCH = {"fno3d": "fno", "voxelmorph3d": "voxelmorph"}
CLASSICAL = {"none": "no registration", "affine": "affine (dipy)", "syn": "SyN (dipy)"}
OURS = LEARNED["fnoreg3d"][1]
TARGET_PAIR = "colin27->fsaverage"
SUBCORTICAL = tuple(range(1, 13))
TISSUE = (13, 14)
SYNTH_SIZE = (160, 192, 224)


class ReportError(RuntimeError):
    """Missing inputs: reported with exit code 2."""


# ------------------------------------------------------------------------------------------------ inputs


def template_root() -> Path:
    """The built template set; builds it when its source packages are installed, else says how."""
    from fnoreg_core.data.templates import default_root

    root = default_root()
    if (root / "manifest.json").is_file():
        return root
    print(f"run_all: the template set is not built in {root}; building it (fnoreg-data templates) ...")
    code = subprocess.call([sys.executable, "-m", "fnoreg_core.data.cli", "templates"])
    if code != 0 or not (root / "manifest.json").is_file():
        raise ReportError("the real-brain template set is missing; install its sources and build it: "
                          "`pip install -e '.[data]' && sudo apt-get install -y mricron-data && fnoreg-data templates` "
                          "(or `make report`, which does all of it)")
    return root


def train_baselines(threads: int) -> None:
    """Retrain VoxelMorph and FNO with exactly the data, options and CPU budget of the bundled FNOReg-3D."""
    from fnoreg_core.checkpoint import load_checkpoint

    ours = load_checkpoint(LEARNED[BUDGET_REFERENCE][0] / "checkpoint.pt")
    cfg = dict(ours["train_config"])
    for name, arch in BASELINE_ARCH.items():
        run = ROOT / "runs" / name
        cmd = [sys.executable, "-m", "fnoreg_core.train", "--model", arch, "--preset", cfg["preset"],
               "--data", cfg["data"], "--train-res", "x".join(map(str, cfg["train_res"])),
               "--batch-size", str(cfg["batch_size"]), "--lr", str(cfg["lr"]), "--reg-weight", str(cfg["reg_weight"]),
               "--loss", cfg["loss"], "--steps", str(cfg["steps"]), "--time-budget-min", str(cfg["time_budget_min"]),
               "--budget-clock", cfg["budget_clock"], "--val-every", str(cfg["val_every"]),
               "--val-pairs", str(cfg["val_pairs"]), "--seed", str(cfg["seed"]), "--name", name,
               "--out", str(run), "--no-progress"]
        if (run / "last.pt").is_file():
            cmd.append("--resume")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        print("run_all:", shlex.join(cmd[1:]))
        code = subprocess.call(cmd, env=env)
        if code not in (0, 2):  # 2: the budget is already spent (resume)
            raise ReportError(f"training {name} failed (exit {code})")
        code = subprocess.call([sys.executable, "-m", "fnoreg_export.cli", str(run / "best.pt"), "--bundle",
                                "--out", str(LEARNED[name][0]), "--name", name], env=env)
        if code != 0:
            raise ReportError(f"exporting {name} failed (exit {code})")


def learned_models(names) -> dict[str, dict]:
    from fnoreg_core.checkpoint import load_checkpoint

    out = {}
    for name in names:
        folder, label = LEARNED[name]
        onnx = folder / "model.onnx"
        if not onnx.is_file() or not (folder / "checkpoint.pt").is_file():
            hint = ("fnoreg-export runs/fnoreg3d/best.pt --bundle --out assets/models/fnoreg3d" if name == "fnoreg3d"
                    else "python benchmarks/run_all.py --train-baselines")
            raise ReportError(f"{label}: {onnx} or checkpoint.pt is missing; run `{hint}`")
        ckpt = {k: v for k, v in load_checkpoint(folder / "checkpoint.pt").items() if k != "state_dict"}
        run_config = folder / "training_config.json"  # the run's last settings (a resume may change the budget)
        if run_config.is_file():
            ckpt["train_config"] = {**ckpt.get("train_config", {}), **json.loads(run_config.read_text())}
        out[name] = {"label": label, "onnx": onnx, "folder": folder, "ckpt": ckpt}
    return out


# ------------------------------------------------------------------------------------------------ evaluation


def methods_for(models: dict, threads: int, grid_affine, classical=("none", "affine", "syn")) -> dict:
    from fnoreg_core.evaluate import baseline_predictor
    from fnoreg_export.eval_cli import exported_predictor as onnx_predictor

    methods = {CLASSICAL[kind]: baseline_predictor(kind, grid_affine) for kind in classical}
    for name, info in models.items():
        methods[info["label"]] = onnx_predictor(info["onnx"], threads)[0]
    return methods


class _Subset:
    """The pairs of a source whose names are in ``names`` (keeps the order)."""

    def __init__(self, source, names):
        self.source = source
        all_names = [source.pair_name(i) for i in range(len(source))]
        self.index = [i for i, n in enumerate(all_names) if not names or n in names]
        self.names = [all_names[i] for i in self.index]
        self.voxel_size_mm, self.dims, self.shape = source.voxel_size_mm, source.dims, source.shape
        self.label_names = source.label_names

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        return self.source[self.index[i]]


class _WithTrueField:
    """Synthetic pairs with their known fixed->moving displacement (``ddf_vox``) in each sample."""

    def __init__(self, source, n):
        self.source, self.n = source, n
        self.voxel_size_mm, self.dims, self.shape = (1.0,) * source.dims, source.dims, source.shape
        self.label_names = source.label_names

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.source.load(i, return_ddf=True)


def _classical_task(task: tuple[str, int, str]) -> dict:
    """One (resolution, pair index, classical method) in a worker process (dipy is single-threaded)."""
    from fnoreg_core.data.templates import TemplatePairs
    from fnoreg_core.evaluate import _grid_affine, evaluate_pair, pair_row

    resolution, index, kind = task
    source = TemplatePairs(None, dims=3, split="test", resolution=resolution)
    sample = source[index]
    predict = methods_for({}, 1, _grid_affine(source), (kind,))[CLASSICAL[kind]]
    row = pair_row(CLASSICAL[kind], sample["name"], evaluate_pair(predict, sample, source.voxel_size_mm))
    print(f"  {row['pair']} {row['method']}: Dice {row['mean_dice']:.4f}, J<=0 {row['nonpositive_jac_pct']:.3f} %, "
          f"{row['time_s']:.1f} s", flush=True)
    return row


def run_real(models, threads, resolution, pair_names, classical, jobs) -> list[dict]:
    """Classical methods first, ``jobs`` pairs at a time in one-thread worker processes; then the
    learned models one pair at a time with ``threads`` threads (nothing else running)."""
    import multiprocessing

    from fnoreg_core.data.templates import TemplatePairs
    from fnoreg_core.evaluate import evaluate

    source = _Subset(TemplatePairs(None, dims=3, split="test", resolution=resolution), pair_names)
    tasks = [(resolution, source.index[i], kind) for kind in classical for i in range(len(source))]
    print(f"run_all: real pairs at {resolution}: {len(source)} pairs x {len(classical)} classical methods "
          f"({jobs} at a time) + {len(models)} learned models")
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the workers' numpy / BLAS: one thread each
    try:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            classical_rows = pool.map(_classical_task, tasks, chunksize=1)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    methods = methods_for(models, threads, None, ())
    learned_rows = evaluate(methods, source, progress=lambda msg: print("  " + msg, flush=True))
    order = {m: k for k, m in enumerate([CLASSICAL[c] for c in classical] + list(methods))}
    rows = sorted(classical_rows + learned_rows, key=lambda r: (source.names.index(r["pair"]), order[r["method"]]))
    for r in rows:
        r["resolution"] = resolution
    return rows


def run_synthetic(models, threads, n_pairs) -> list[dict]:
    from fnoreg_core.data import open_source
    from fnoreg_core.evaluate import evaluate

    spec = models["fnoreg3d"]["ckpt"]["train_config"]["data"]
    source = _WithTrueField(open_source(spec, 3, "test", shape=SYNTH_SIZE), n_pairs)
    methods = methods_for(models, threads, None, classical=("none",))
    print(f"run_all: synthetic held-out pairs ({spec}, test split) at {SYNTH_SIZE}: {n_pairs} pairs")
    return evaluate(methods, source, progress=lambda msg: print("  " + msg, flush=True))


_LATENCY_CHILD = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
sys.path.insert(0, sys.argv[3])
from fnoreg_export.runtime import ort_session_options
sess = ort.InferenceSession(sys.argv[1], ort_session_options(int(sys.argv[2])), providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
x = {"moving": rng.random((1, 1, 160, 192, 224), dtype=np.float32), "fixed": rng.random((1, 1, 160, 192, 224), dtype=np.float32)}
times = []
for _ in range(4):
    t = time.perf_counter(); sess.run(None, x); times.append(time.perf_counter() - t)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"times_s": times, "peak_rss_mb": int(hwm) / 1024}))
"""


def run_latency(onnx: Path, threads: int) -> dict:
    """FNOReg-3D at 160x192x224 through onnxruntime in a fresh process (no torch): 1 warm-up + 3 runs."""
    import resource

    C.wait_for_quiet(max_load=0.3, max_wait_s=120)
    busy0, _ = C._cpu_times()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _LATENCY_CHILD, str(onnx), str(threads), str(ROOT)],
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    busy1, _ = C._cpu_times()
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["median_s"] = float(np.median(res["times_s"][1:]))
    child_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    res["other_load"] = max(0.0, (busy1 - busy0 - child_cpu) / wall)
    return res


# ------------------------------------------------------------------------------------------------ tables


def _stats(rows, method, key, labels=None):
    sel = [r for r in rows if r["method"] == method]
    if labels is not None:  # mean Dice over the given labels, per pair
        vals = [np.nanmean([r.get(f"dice_{k}", math.nan) for k in labels]) for r in sel]
    else:
        vals = [r.get(key, math.nan) for r in sel]
    vals = np.array(vals, float)
    vals = vals[np.isfinite(vals)]
    return (float(vals.mean()), float(vals.std())) if vals.size else (math.nan, math.nan)


def _f(x, digits=4):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def method_table(rows, methods, labels, ours=OURS) -> list[str]:
    t_ours = _stats(rows, ours, "time_s")[0]
    table = []
    for m in methods:
        d, sd = _stats(rows, m, None, labels)
        fold, _ = _stats(rows, m, "nonpositive_jac_pct")
        sdl, _ = _stats(rows, m, "sdlogj")
        t, _ = _stats(rows, m, "time_s")
        ratio = "-" if m in (CLASSICAL["none"],) or not np.isfinite(t_ours) else f"{t / t_ours:.1f}x"
        n = len([r for r in rows if r["method"] == m])
        table.append([m, n, f"{_f(d)} +- {_f(sd)}", _f(fold, 3), _f(sdl, 3), _f(t, 2), ratio])
    return C.markdown_table(["method", "pairs", "mean Dice +- sd", "% J <= 0", "SDlogJ", "time / pair (s)",
                             "time vs FNOReg-3D"], table)


def structure_table(rows, methods, labels, names) -> list[str]:
    cols = ["structure"] + methods
    table = []
    for k in labels:
        line = [names.get(k, str(k))]
        for m in methods:
            line.append(_f(_stats(rows, m, f"dice_{k}")[0], 3))
        table.append(line)
    return C.markdown_table(cols, table)


# ------------------------------------------------------------------------------------------------ plots


def plot_dice(rows_by_res, methods, labels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(rows_by_res))
    for j, (res, rows) in enumerate(rows_by_res.items()):
        means = [_stats(rows, m, None, labels)[0] for m in methods]
        sds = [_stats(rows, m, None, labels)[1] for m in methods]
        ax.bar(np.arange(len(methods)) + j * width, means, width, yerr=sds, label=res, capsize=3)
    ax.set_xticks(np.arange(len(methods)) + width * (len(rows_by_res) - 1) / 2)
    ax.set_xticklabels([m.replace(" (", "\n(") for m in methods], fontsize=8)
    ax.set_ylabel("mean Dice, 12 structures")
    ax.set_title("Colin27 <-> fsaverage (test pairs, both directions)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, info in models.items():
        log = info["folder"] / "training.csv"
        if not log.is_file():
            continue
        loss, dice = {}, {}
        for r in csv.DictReader(open(log)):
            if r["metric"] == "train/loss":
                loss[int(r["step"])] = float(r["value"])
            elif r["metric"] == "val/dice":
                dice[int(r["step"])] = float(r["value"])
        steps = sorted(loss)
        if steps:
            smooth = np.convolve([loss[s] for s in steps], np.ones(10) / 10, mode="valid") if len(steps) >= 10 else \
                [loss[s] for s in steps]
            axes[0].plot(steps[len(steps) - len(smooth):], smooth, label=info["label"])
        if dice:
            axes[1].plot(sorted(dice), [dice[s] for s in sorted(dice)], marker=".", label=info["label"])
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (MSE + reg), 10-point mean")
    axes[0].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("validation Dice (synthetic val split)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ report


def training_rows(models) -> list[list[str]]:
    rows = []
    for name, info in models.items():
        ck = info["ckpt"]
        tc = ck.get("train_config", {})
        cpu_min = ck.get("train_seconds", math.nan) / 60 if tc.get("budget_clock") == "cpu" else math.nan
        val = ck.get("metrics", {})
        n_params = info.get("params", "?")
        rows.append([info["label"], f"{tc.get('model')}/{tc.get('preset')}", f"{n_params:,}" if isinstance(n_params, int) else n_params,
                     f"{tc.get('time_budget_min')}", str(ck.get("step")), _f(cpu_min, 1), f"`{tc.get('data')}`",
                     "x".join(map(str, tc.get("train_res") or [])), _f(val.get("val_dice", math.nan), 4),
                     _f(val.get("val_folded_pct", math.nan), 3)])
    return rows


def train_command(ck) -> str:
    tc = ck.get("train_config", {})
    parts = ["fnoreg-train", "--model", tc.get("model"), "--preset", tc.get("preset"), "--data", tc.get("data"),
             "--train-res", "x".join(map(str, tc.get("train_res") or [])), "--batch-size", tc.get("batch_size"),
             "--lr", tc.get("lr"), "--reg-weight", tc.get("reg_weight"), "--loss", tc.get("loss"),
             "--time-budget-min", tc.get("time_budget_min"), "--budget-clock", tc.get("budget_clock"),
             "--val-every", tc.get("val_every"), "--val-pairs", tc.get("val_pairs"), "--seed", tc.get("seed"),
             "--name", ck.get("name"), "--out", f"runs/{ck.get('name')}"]
    return shlex.join(str(p) for p in parts)


def _params(onnx: Path) -> int:
    import onnx as onnx_lib

    model = onnx_lib.load(str(onnx), load_external_data=False)
    return int(sum(np.prod(t.dims) for t in model.graph.initializer if t.data_type == 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__[__doc__.index("Examples:"):],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="threads of every method (torch, onnxruntime). Default: 2")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md", help="report path. Default: docs/BENCHMARKS.md")
    p.add_argument("--no-syn-1mm", action="store_true", help="skip dipy SyN at 1 mm (its slowest part)")
    p.add_argument("--no-dipy-1mm", action="store_true", help="skip dipy affine and SyN at 1 mm (about 40 min)")
    p.add_argument("--jobs", type=int, default=2,
                   help="classical (dipy, single-threaded) registrations run this many at a time, alone on the "
                        "machine; the learned models run after them, one at a time. Default: 2")
    p.add_argument("--baselines", default="none,affine,syn",
                   help="classical methods, comma-separated from none,affine,syn. Default: all three")
    p.add_argument("--synthetic-pairs", type=int, default=4, help="synthetic held-out pairs at 160x192x224. Default: 4")
    p.add_argument("--train-baselines", action="store_true",
                   help="first (re)train VoxelMorph and FNO with FNOReg-3D's recorded data, options and budget")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 mm, Colin27 -> fsaverage only, 1 synthetic pair")
    p.add_argument("--no-model-cards", action="store_true", help="do not update the bundled MODEL_CARD.md files")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run(args)
    except ReportError as exc:
        print(f"run_all: error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    template_root()
    if args.train_baselines:
        train_baselines(args.threads)
    models = learned_models(LEARNED)
    for info in models.values():
        info["params"] = _params(info["onnx"])
    fingerprint = C.source_fingerprint()
    lines = C.header("FNOReg benchmark report", args.threads, [
        "- data: the real-brain template set (`fnoreg-data templates`), test split: Colin27 <-> fsaverage "
        "(12 subcortical structures), MNI152 <-> fsaverage (grey / white matter); 2 mm = 80x96x112, 1 mm = 160x192x224",
        "- learned models run through onnxruntime (CPU, the exported `model.onnx`), one pair at a time with the "
        "threads below; dipy is single-threaded (it has no thread option): its registrations run `--jobs` at a time "
        "in one-thread processes, before the learned models; times are wall time per pair, first call (session "
        "start) excluded",
    ])
    figs = args.out.parent / "benchmarks"
    figs.mkdir(parents=True, exist_ok=True)
    results: dict = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "threads": args.threads}

    baselines = tuple(b for b in CLASSICAL if b in args.baselines.split(","))
    unknown = set(args.baselines.split(",")) - set(CLASSICAL)
    if unknown or "none" not in baselines:
        raise ReportError(f"--baselines takes none,affine,syn (none included), got {args.baselines!r}")
    pairs_2mm = {TARGET_PAIR} if args.quick else None
    real = {"2mm": run_real(models, args.threads, "2mm", pairs_2mm, baselines, args.jobs)}
    if not args.quick:
        classical = tuple(b for b in baselines if b == "none" or not (args.no_dipy_1mm or (b == "syn" and args.no_syn_1mm)))
        real["1mm"] = run_real(models, args.threads, "1mm", None, classical, args.jobs)
    synth = run_synthetic(models, args.threads, 1 if args.quick else args.synthetic_pairs)
    latency = run_latency(models["fnoreg3d"]["onnx"], args.threads)
    results.update(real=real, synthetic=synth, latency=latency)

    from fnoreg_core.data.templates import HARMONISED_LABELS

    names = dict(HARMONISED_LABELS)
    all_methods = [CLASSICAL[b] for b in baselines] + [m["label"] for m in models.values()]
    learned_labels = [m["label"] for m in models.values()]
    cmd_line = f"`python benchmarks/run_all.py{' ' + shlex.join(args.argv) if args.argv else ''}`"

    def only(rows, pair_names):
        return [r for r in rows if r["pair"] in pair_names]

    colin = {"colin27->fsaverage", "fsaverage->colin27"}
    mni = {"mni152->fsaverage", "fsaverage->mni152"}
    head = only(real["2mm"], {TARGET_PAIR})
    t_syn = _stats(head, CLASSICAL["syn"], "time_s")[0]
    t_ours = _stats(head, OURS, "time_s")[0]
    d_syn = _stats(head, CLASSICAL["syn"], None, SUBCORTICAL)[0]
    d_ours = _stats(head, OURS, None, SUBCORTICAL)[0]
    fold_ours = _stats(head, OURS, "nonpositive_jac_pct")[0]
    d_vxm = _stats(head, LEARNED["voxelmorph3d"][1], None, SUBCORTICAL)[0]

    lines += ["", "## Headline: Colin27 -> fsaverage at 2 mm (12 structures)", "",
              f"Command: {cmd_line}. Same machine, same run, {args.threads} thread(s).", ""]
    lines += method_table(head, all_methods, SUBCORTICAL)

    drops = {}
    if "1mm" in real:
        for label in learned_labels:
            d2 = _stats(only(real["2mm"], colin), label, None, SUBCORTICAL)[0]
            d1 = _stats(only(real["1mm"], colin), label, None, SUBCORTICAL)[0]
            drops[label] = (d2, d1, 100.0 * (d2 - d1) / d2 if d2 else math.nan)
    lat_ok = "error" not in latency
    targets = [
        ("FNOReg-3D Dice >= dipy SyN on Colin27 -> fsaverage at 2 mm", f"{_f(d_ours)} vs {_f(d_syn)}",
         d_ours >= d_syn),
        ("... with < 0.5 % folded voxels", f"{_f(fold_ours, 3)} %", fold_ours < 0.5),
        ("... at least 50x faster than SyN", f"{t_syn / t_ours:.0f}x" if t_ours else "n/a",
         bool(t_ours) and t_syn / t_ours >= 50),
        ("FNOReg-3D Dice >= VoxelMorph, both trained with the same data and CPU budget", f"{_f(d_ours)} vs {_f(d_vxm)}",
         d_ours >= d_vxm),
    ]
    if drops:
        ours_drop, vxm_drop = drops[OURS][2], drops[LEARNED["voxelmorph3d"][1]][2]
        targets.append(("smaller Dice drop than VoxelMorph, trained at 2 mm, evaluated at 1 mm",
                        f"{ours_drop:+.1f} % vs {vxm_drop:+.1f} %", ours_drop < vxm_drop))
    if lat_ok:
        targets += [("FNOReg-3D at 160x192x224, onnxruntime, "
                     f"{args.threads} thread(s): < 5 s per pair", f"{latency['median_s']:.2f} s", latency["median_s"] < 5),
                    ("... peak RSS < 4 GB", f"{latency['peak_rss_mb'] / 1024:.2f} GB", latency["peak_rss_mb"] < 4096)]
    lines += ["", "### Targets", ""]
    lines += C.markdown_table(["target", "measured", "met"], [[t, m, "yes" if ok else "**no**"] for t, m, ok in targets])
    results["targets"] = [{"target": t, "measured": m, "met": bool(ok)} for t, m, ok in targets]

    for res, rows in real.items():
        if args.quick and res != "2mm":
            continue
        shape = "80x96x112" if res == "2mm" else "160x192x224"
        methods = [m for m in all_methods if any(r["method"] == m for r in rows)]
        lines += ["", f"## Real pairs at {res} ({shape})", "", f"Command: {cmd_line}.", "",
                  "### Colin27 <-> fsaverage, both directions (12 subcortical structures)", ""]
        lines += method_table(only(rows, colin), methods, SUBCORTICAL)
        if not args.quick:
            lines += ["", "### MNI152 <-> fsaverage, both directions (grey matter, white matter)", ""]
            lines += method_table(only(rows, mni), methods, TISSUE)
        lines += ["", "### Dice per structure (Colin27 <-> fsaverage, mean of both directions)", ""]
        lines += structure_table(only(rows, colin), methods, SUBCORTICAL, names)

    if drops:
        lines += ["", "## Resolution robustness: trained at 2 mm, evaluated at 1 mm (Colin27 <-> fsaverage)", "",
                  f"Command: {cmd_line}. Drop = (Dice at 2 mm - Dice at 1 mm) / Dice at 2 mm.", ""]
        lines += C.markdown_table(["model", "Dice at 2 mm", "Dice at 1 mm", "drop"],
                                  [[k, _f(a), _f(b), f"{c:+.1f} %"] for k, (a, b, c) in drops.items()])
    results["resolution_drop"] = {k: {"dice_2mm": a, "dice_1mm": b, "drop_pct": c} for k, (a, b, c) in drops.items()}

    synth_methods = [CLASSICAL["none"]] + learned_labels
    lines += ["", "## Synthetic held-out pairs at 160x192x224 (known deformation)", "",
              f"Command: {cmd_line}. Test split of the training generator "
              f"(`{models['fnoreg3d']['ckpt']['train_config']['data']}`, seeds never trained on), "
              f"{len(synth) // max(1, len(synth_methods))} pairs, at twice the training resolution. End-point error "
              "|u - u_true| in mm over all voxels and over the brain (fixed labels > 0).", ""]
    rows_s = []
    for m in synth_methods:
        d, sd = _stats(synth, m, "mean_dice")
        rows_s.append([m, f"{_f(d)} +- {_f(sd)}", _f(_stats(synth, m, "epe_mm")[0], 3),
                       _f(_stats(synth, m, "epe_fg_mm")[0], 3), _f(_stats(synth, m, "nonpositive_jac_pct")[0], 3),
                       _f(_stats(synth, m, "time_s")[0], 2)])
    lines += C.markdown_table(["method", "mean Dice +- sd", "EPE (mm)", "EPE in brain (mm)", "% J <= 0",
                               "time / pair (s)"], rows_s)

    lines += ["", "## FNOReg-3D latency and memory at 160x192x224 (onnxruntime CPU)", "",
              f"Command: {cmd_line}. A fresh process without torch runs `assets/models/fnoreg3d/model.onnx` "
              f"with `fnoreg_export.runtime.ort_session_options({args.threads})`: 1 warm-up + 3 timed runs, random "
              "inputs; peak RSS = the process's VmHWM.", ""]
    if lat_ok:
        lines += C.markdown_table(["threads", "median s / pair", "runs (s)", "peak RSS (MB)", "other load (cores)"],
                                  [[args.threads, f"{latency['median_s']:.2f}",
                                    ", ".join(f"{t:.2f}" for t in latency["times_s"][1:]),
                                    f"{latency['peak_rss_mb']:.0f}", f"{latency['other_load']:.2f}"]])
    else:
        lines.append(f"Failed: {latency['error']}")

    plot_training(models, figs / "training_curves.png")
    lines += ["", "## Training (same data, same CPU budget)", "",
              "The three learned models were trained at the same time on this machine's CPU, one thread "
              "each, with `fnoreg-train` and the commands below (only `--model`, `--name`, `--out` differ); "
              "`--budget-clock cpu` stops a run when the training process has used the given CPU minutes "
              "(validation excluded; the checkpoint kept is the best on the synthetic validation split); "
              "`python benchmarks/run_all.py --train-baselines` retrains the baselines with the bundled "
              "FNOReg-3D's recorded settings. The training data are synthetic pairs "
              "deforming the label maps (and, for half of the pairs, the images) of fsaverage and MNI152 from the "
              "template set, with a random relative affine; no pair of the report was trained on, but the models "
              "have seen fsaverage's and MNI152's anatomy (the fixed image of the headline pair is fsaverage).", ""]
    lines += C.markdown_table(["model", "arch/preset", "parameters", "budget (CPU min)", "best step",
                               "CPU min at best", "data", "train size", "val Dice", "val % J<=0"], training_rows(models))
    lines += ["", "```", *[train_command(m["ckpt"]) for m in models.values()], "```", "",
              "![training curves](benchmarks/training_curves.png)"]
    colin_rows = {res: only(rows, colin) for res, rows in real.items()}
    plot_dice(colin_rows, all_methods, SUBCORTICAL, figs / "dice_colin27_fsaverage.png")
    lines += ["", "![Dice per method](benchmarks/dice_colin27_fsaverage.png)"]
    lines += ["", "## Notes", "",
              "- dipy SyN: `SymmetricDiffeomorphicRegistration` with local cross-correlation after a multi-stage "
              "mutual-information affine (`fnoreg_core.evaluate.dipy_predictor`), the algorithm of ANTs SyN.",
              "- Folding and SDlogJ of the dipy baselines leave out voxels mapped from outside the moving image.",
              f"- Report written in {(time.perf_counter() - t_start) / 60:.1f} min."]
    lines += C.footer(fingerprint)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    (figs / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"run_all: wrote {args.out} and {figs}")
    if not args.no_model_cards and not args.quick:
        write_model_card(models["fnoreg3d"], head, real, drops, latency, synth, targets, args.threads)
    return 0


def write_model_card(info, head, real, drops, latency, synth, targets, threads) -> None:
    """The bundled FNOReg-3D's MODEL_CARD.md with this run's numbers (the 2-D card is written by hand)."""
    ck = info["ckpt"]
    tc = ck["train_config"]
    label = info["label"]
    d2, sd2 = _stats(head, label, None, SUBCORTICAL)
    lines = [f"# Model card: {ck.get('name')}", "",
             "FNOReg (Fourier Neural Operator with extra skips and Spectral Transform blocks, ICPR 2024), "
             f"`{tc['model']}/{tc['preset']}`, {info['params']:,} parameters, 3-D, T1-weighted brain MRI.", "",
             "## Intended use",
             "Deformable registration of two skull-stripped T1-weighted brain MRI volumes that are already roughly "
             "aligned (MNI-like orientation; the model learned affine differences of up to about 5 degrees, 6 % "
             "scaling and 3 % shift). `fnoreg-register`, `fnoreg-gui` and onnxruntime callers use `model.onnx`. "
             "Research use; not a medical device.", "",
             "## Training data",
             f"Synthetic pairs only (`--data {tc['data']}`): the harmonised label maps of fsaverage and MNI152 "
             "(template set, 1 mm) deformed by two random diffeomorphisms and a random relative affine; half of "
             "the pairs carry the templates' own images, half intensities synthesised per label. No real pair of "
             "two different brains was trained on; the fixed image of the evaluation pairs (fsaverage) is one of "
             "the two prior subjects. "
             f"Training size {'x'.join(map(str, tc['train_res']))} (2 mm), batch {tc['batch_size']}, Adam lr "
             f"{tc['lr']}, loss {tc['loss']} + {tc['reg_weight']} x diffusion; a run of {tc['time_budget_min']:g} CPU "
             f"minutes on one thread, of which this is the best checkpoint on the synthetic validation split "
             f"(step {ck['step']}, after {ck.get('train_seconds', 0) / 60:.1f} CPU minutes). Command:", "",
             f"    {train_command(ck)}", "",
             "## Resolution range",
             "Any size that is a multiple of 16 per axis and at least the card's minimum (`model.onnx.json`); "
             "trained at 2 mm (80x96x112), evaluated at 2 mm and 1 mm (160x192x224).", "",
             "## Measured (docs/BENCHMARKS.md, `python benchmarks/run_all.py`)",
             f"- Colin27 -> fsaverage, 2 mm, 12 structures: Dice {_f(d2)} (unregistered "
             f"{_f(_stats(head, CLASSICAL['none'], None, SUBCORTICAL)[0])}, dipy SyN "
             f"{_f(_stats(head, CLASSICAL['syn'], None, SUBCORTICAL)[0])}), "
             f"{_f(_stats(head, label, 'nonpositive_jac_pct')[0], 3)} % folded voxels, "
             f"{_f(_stats(head, label, 'time_s')[0], 2)} s per pair ({threads} threads, onnxruntime)."]
    if label in drops:
        a, b, c = drops[label]
        lines.append(f"- Colin27 <-> fsaverage: Dice {_f(a)} at 2 mm, {_f(b)} at 1 mm ({c:+.1f} % drop).")
    if "error" not in latency:
        lines.append(f"- 160x192x224: {latency['median_s']:.2f} s per pair, peak RSS "
                     f"{latency['peak_rss_mb'] / 1024:.2f} GB (onnxruntime CPU, {threads} threads).")
    d_syn, _ = _stats(synth, label, "mean_dice")
    lines.append(f"- Synthetic held-out pairs at 160x192x224: Dice {_f(d_syn)}, end-point error "
                 f"{_f(_stats(synth, label, 'epe_fg_mm')[0], 3)} mm in the brain.")
    lines += ["- Targets: " + "; ".join(f"{t}: {m} ({'met' if ok else 'not met'})" for t, m, ok in targets), "",
              "## Limitations"]
    d_none = _stats(head, CLASSICAL["none"], None, SUBCORTICAL)[0]
    if d2 < d_none:
        lines.append(f"- On Colin27 -> fsaverage it is worse than no registration ({_f(d2)} vs {_f(d_none)} mean Dice): "
                     "too little training for real anatomy it has not seen (Colin27). Do not rely on it for real data "
                     "before retraining; pre-align with an affine registration at least.")
    lines += ["- Not diffeomorphic: the displacement is predicted directly (as in the paper); check the folding "
              "percentage (reported by `fnoreg-register`) before using the warp.",
              "- Trained briefly on two template subjects' anatomy on a CPU; real-data accuracy is below dipy SyN "
              "where the table says so. Retrain on your data (`fnoreg-train --data oasis:...` or `pairs:CSV`).",
              "- Skull-stripped T1 only; other contrasts, pathology and children are untested.", "",
              "## Licence",
              "Weights: MIT, as the code. Derived from templates whose notices are in `assets/demo/LICENSES/` "
              "(MNI/McGill notice for MNI152 and Colin27, FreeSurfer licence Part B for fsaverage)."]
    (info["folder"] / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    print(f"run_all: wrote {info['folder'] / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    sys.exit(main())
