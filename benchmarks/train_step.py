"""Benchmark one training step of every model preset at its training resolution (CPU).

A step is: ``ddf = model(moving, fixed)``, ``moved = warp(moving, ddf)``,
``loss = MSE(moved, fixed) + 0.01 * Diffusion(ddf)``, ``loss.backward()``, ``Adam.step()``.

Resolutions: 2D "*-cpu" presets 80x96, the paper's 2D presets 160x192, 3D presets (cpu and paper)
80x96x112. Batch 1 everywhere, and also batch 8 for the 2D "*-cpu" presets. Each configuration runs
in its own process, which gives its peak RSS and turns an out-of-memory failure (address space
capped) or a timeout into a table entry instead of ending the run.

Usage::

    python benchmarks/train_step.py            # every preset (the paper 3D presets take minutes)
    python benchmarks/train_step.py --quick    # "*-cpu" presets only, 2 timed steps
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

NAME = "train_step"
SEED = 0
RES_2D_CPU = (80, 96)
RES_2D_PAPER = (160, 192)
RES_3D = (80, 96, 112)


def sz(size) -> str:
    return "x".join(str(s) for s in size)


def preset_dims(preset: str) -> int | None:
    head = preset.split("-")[0]
    return {"2d": 2, "3d": 3}.get(head)


def resolution(dims: int, cpu: bool) -> tuple[int, ...]:
    if dims == 2:
        return RES_2D_CPU if cpu else RES_2D_PAPER
    return RES_3D


def configs(quick: bool) -> list[dict]:
    from fnoreg_core.models import available_models, available_presets

    out = []
    for model in available_models():
        for preset in available_presets(model):
            cpu = preset.endswith("-cpu")
            if quick and not cpu:
                continue
            dims = preset_dims(preset)
            if dims is None:  # name does not tell: ask the model
                from fnoreg_core.models import create_model

                dims = create_model(model, preset=preset).config.dims
            size = resolution(dims, cpu)
            batches = [1, 8] if (dims == 2 and cpu) else [1]
            for b in batches:
                out.append(dict(model=model, preset=preset, dims=dims, cpu=cpu, size=list(size), batch=b))
    # cheap first: cpu presets, then paper 2D, then paper 3D
    out.sort(key=lambda c: (not c["cpu"], c["dims"], c["model"], c["preset"], c["batch"]))
    return out


# ------------------------------------------------------------------------------------------------
# one configuration (child process)


def run_case(case: dict, out_path: str) -> None:
    C.limit_memory(case["mem_limit_gb"])
    import torch

    from fnoreg_core.layers.spatial_transformer import warp
    from fnoreg_core.losses import DiffusionLoss, MSELoss
    from fnoreg_core.models import create_model

    torch.set_num_threads(case["threads"])
    out = C.ResultWriter(out_path)
    out["rss_start_mb"] = C.peak_rss_mb()
    torch.manual_seed(SEED)
    try:
        model = create_model(case["model"], preset=case["preset"])
    except Exception as exc:  # noqa: BLE001
        out["error"] = C.describe_error(exc)
        return
    if model.config.dims != case["dims"]:
        out["error"] = f"preset is {model.config.dims}D, expected {case['dims']}D from its name"
        return
    model.train()
    out["params"] = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    mse, diffusion = MSELoss(), DiffusionLoss()
    gen = torch.Generator().manual_seed(SEED + 1)
    shape = (case["batch"], 1, *case["size"])
    moving = torch.rand(shape, generator=gen)
    fixed = torch.rand(shape, generator=gen)

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        ddf = model(moving, fixed)
        moved = warp(moving, ddf)
        loss = mse(moved, fixed) + 0.01 * diffusion(ddf)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)}")
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2

    t = case["timing"]
    try:
        warm = []
        for _ in range(t["warmup"]):
            warm.append(step()[0])
        out["warmup_s"] = warm
        gc.collect()
        times = []
        start = time.perf_counter()
        while len(times) < t["steps"]:
            times.append(step())
            out["n"] = len(times)
            if len(times) >= t["min_steps"] and time.perf_counter() - start > t["budget_s"]:
                break
        cols = list(zip(*times))
        for key, col in zip(("step", "fwd", "bwd", "opt"), cols):
            out[key] = {"median_ms": statistics.median(col) * 1e3, "min_ms": min(col) * 1e3,
                        "max_ms": max(col) * 1e3, "n": len(col)}
    except Exception as exc:  # noqa: BLE001
        out["error"] = C.describe_error(exc)
        return
    if case.get("profile"):
        try:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            totals = {}
            for evt in prof.key_averages():
                totals[evt.key] = totals.get(evt.key, 0.0) + evt.self_cpu_time_total
            total = sum(totals.values())
            best = sorted(totals.items(), key=lambda kv: -kv[1])[:4]
            out["hot"] = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in best) if total > 0 else "n/a"
        except Exception as exc:  # noqa: BLE001
            out["hot"] = C.describe_error(exc)
    out["done"] = True


# ------------------------------------------------------------------------------------------------
# parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help='smoke run: "*-cpu" presets only, 2 timed steps')
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per configuration (default 1)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per configuration, at most (default 5)")
    p.add_argument("--min-steps", type=int, default=None, help="timed steps, at least (default 3)")
    p.add_argument("--budget", type=float, default=None,
                   help="no new timed step after this many seconds per configuration (default 60)")
    p.add_argument("--models", nargs="*", default=None, help="restrict to these model names")
    p.add_argument("--presets", nargs="*", default=None, help="restrict to these preset names")
    p.add_argument("--no-profile", action="store_true", help="skip the profiled extra step (op hotspots)")
    p.add_argument("--baseline", default=None, metavar="DIR",
                   help="another FNOReg source tree (e.g. `git worktree add /tmp/base REV`): every configuration "
                        "also runs with that tree's code, alternating with this one, and the ratios are printed")
    C.add_case_runner_args(p, NAME, "configuration", 1800)
    args = p.parse_args()
    if args._case:
        run_case(json.loads(args._case), args._out)
        return

    import tempfile

    quick = args.quick
    timing = dict(
        warmup=args.warmup,
        steps=args.steps if args.steps is not None else (2 if quick else 5),
        min_steps=args.min_steps if args.min_steps is not None else (2 if quick else 3),
        budget_s=args.budget if args.budget is not None else (10.0 if quick else 60.0),
    )
    timing["min_steps"] = min(timing["min_steps"], timing["steps"])
    mem_limit = C.mem_limit_from_args(args)
    todo = [c for c in configs(quick)
            if (args.models is None or c["model"] in args.models)
            and (args.presets is None or c["preset"] in args.presets)]
    fingerprint = C.source_fingerprint()
    head = C.header(
        "Training step time per model preset (CPU)", args.threads,
        [f"- step: forward, warp (fnoreg_core.layers.spatial_transformer.warp), loss = MSELoss + 0.01 * "
         f"DiffusionLoss, backward, Adam step; float32, model.train(), random images",
         f"- timing: median of up to {timing['steps']} timed steps (at least {timing['min_steps']}; no new step after "
         f"{timing['budget_s']:.0f} s) after {timing['warmup']} warm-up step(s); fwd = model + warp + loss",
         f"- each configuration runs in its own process (peak RSS = its ru_maxrss), address space capped at "
         f"{mem_limit} GiB (0: no cap) so an out-of-memory failure is reported, not fatal",
         f"- other load: before each configuration the script waits (at most {args.max_wait:.0f} s) until other "
         f"processes use < {args.max_other_load} cores; 'other load' is the cores they used during the configuration",
         f"- busiest other processes at start: {C.busy_processes() or 'none above 5% CPU'}"])
    print("\n".join(head), flush=True)

    out_name = args.output or (f"{NAME}_quick" if args.quick else NAME)
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="fnoreg_bench_train_"))
    try:
        for i, cfg in enumerate(todo):
            case = dict(cfg, threads=args.threads, timing=timing, mem_limit_gb=mem_limit, profile=not args.no_profile)
            label = f"{cfg['model']} {cfg['preset']} B={cfg['batch']} {sz(cfg['size'])}"
            print(f"[case {i + 1}/{len(todo)}] {label} ...", file=sys.stderr, flush=True)
            if args.max_wait > 0:
                C.wait_for_quiet(args.max_other_load, args.max_wait)
            t0 = time.perf_counter()
            if args.baseline:  # the other tree's own script imports that tree's fnoreg_core
                script = str(Path(args.baseline).resolve() / "benchmarks" / "train_step.py")
                res, failure = C.run_child(script, case, workdir / f"case_{i}_base.json", args.case_timeout)
                res["failure"] = failure
                results.append((dict(cfg, source="baseline"), res))
            res, failure = C.run_child(__file__, case, workdir / f"case_{i}.json", args.case_timeout)
            res["failure"] = failure
            results.append((cfg, res))
            if i + 1 < len(todo):  # keep what is done if the run is interrupted
                C.write_results(out_name, head + ["", f"**PARTIAL: {i + 1} of {len(todo)} configurations done "
                                                  f"(run interrupted or still running)**", ""] + tables(results, args))
            print(f"[case {i + 1}/{len(todo)}] {label} done in {time.perf_counter() - t0:.0f} s"
                  + (f" ({failure or res.get('error')})" if failure or res.get("error") else ""),
                  file=sys.stderr, flush=True)
    finally:
        for f in workdir.glob("*"):
            f.unlink()
        workdir.rmdir()

    if args.baseline:
        head.append(f"- baseline: {os.path.abspath(args.baseline)} (commit {C.git_commit(args.baseline)}), rows marked "
                    "[baseline]; each configuration runs the baseline first, then this tree")
    lines = head + [""] + tables(results, args) + [""] + C.footer(fingerprint)
    print("\n".join(lines[len(head):]), flush=True)
    path = C.write_results(out_name, lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


def status(res: dict) -> str:
    if res.get("done"):
        return "ok"
    reason = res.get("error") or res.get("failure") or "incomplete"
    stage = "warm-up" if "warmup_s" not in res else "timed steps"
    if "params" not in res:
        stage = "model creation"
    return f"{reason} (during {stage})"


def tables(results: list, args) -> list[str]:
    rows = []
    for cfg, r in results:
        def ms(key):
            m = r.get(key)
            return C.fmt_ms(m) if isinstance(m, dict) else "-"

        n = r["step"]["n"] if isinstance(r.get("step"), dict) else "-"
        rows.append([cfg["model"], cfg["preset"] + (" [baseline]" if cfg.get("source") else ""),
                     f"({cfg['batch']}, 1, {', '.join(map(str, cfg['size']))})",
                     f"{r['params']:,}" if "params" in r else "-", ms("step"), ms("fwd"), ms("bwd"), ms("opt"), n,
                     f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-",
                     f"{r['other_load']:.2f}" if "other_load" in r else "-", status(r)])
    lines = ["## One training step", ""]
    lines += C.markdown_table(["model", "preset", "input (B, 1, *spatial)", "params", "step ms", "fwd ms", "bwd ms",
                               "Adam ms", "timed steps", "peak RSS MB", "other load (cores)", "status"], rows)
    lines += ["", "step = fwd + bwd + Adam (+ zero_grad); fwd includes warp and loss. Values are medians.",
              "Peak RSS includes the interpreter and torch (about "
              + (f"{min(r['rss_start_mb'] for _, r in results if 'rss_start_mb' in r):.0f}"
                 if any('rss_start_mb' in r for _, r in results) else "?")
              + " MB after imports)."]
    base = {(c["model"], c["preset"], c["batch"]): r for c, r in results if c.get("source")}
    ratios = []
    for cfg, r in results:
        b = base.get((cfg["model"], cfg["preset"], cfg["batch"]))
        if cfg.get("source") or b is None:
            continue
        now, before = C.median_of(r.get("step")), C.median_of(b.get("step"))
        if now and before:
            ratios.append(f"- {cfg['model']} {cfg['preset']} B={cfg['batch']}: step {now:.0f} ms vs baseline "
                          f"{before:.0f} ms = {now / before:.2f}x (target <= 1.00x, i.e. no slower): "
                          f"{'met' if now <= before else 'NOT met'}")
    if ratios:
        lines += ["", "## This tree vs the baseline", ""] + ratios
    if not args.no_profile:
        lines += ["", "## Hotspots (one profiled step after the timed ones; share of self CPU time)", ""]
        rows = [[cfg["model"], cfg["preset"], cfg["batch"], r.get("hot", "-")] for cfg, r in results]
        lines += C.markdown_table(["model", "preset", "B", "top ops"], rows)
    lines += ["", "## Raw step times (ms: min / median / max; warm-up step s)", ""]
    rows = []
    for cfg, r in results:
        m = r.get("step")
        if isinstance(m, dict):
            warm = ", ".join(f"{w:.2f}" for w in r.get("warmup_s", []))
            rows.append([cfg["model"], cfg["preset"], cfg["batch"], f"{m['min_ms']:.1f}", f"{m['median_ms']:.1f}",
                         f"{m['max_ms']:.1f}", m["n"], warm])
    lines += C.markdown_table(["model", "preset", "B", "min", "median", "max", "n", "warm-up s"], rows)
    return lines


if __name__ == "__main__":
    main()
