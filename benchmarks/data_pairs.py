"""Benchmark the synthetic pair generator (fnoreg_core.data.synth.SynthPairs): pairs per second.

One process, one thread (the generator is numpy/scipy without BLAS calls). For each size
(2D 160x192, 3D 80x96x112, 3D 160x192x224) it times ``SynthPairs(size, seed=0).load(i)`` for
i = 0, 1, 2, ... (each pair is different: new label map, deformations and contrast) with the
default settings, and reports wall and CPU time per pair and the throughput. A second table splits
one pair into its steps (label map, two deformations, two nearest warps, two images).

The numbers are for one core: a DataLoader with W worker processes gives up to W times that on
W free cores.

Usage::

    python benchmarks/data_pairs.py            # full run (about 2 min), writes results/data_pairs.md
    python benchmarks/data_pairs.py --quick    # smoke run: fewer pairs, writes results/data_pairs_quick.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

NAME = "data_pairs"
SIZES = [(160, 192), (80, 96, 112), (160, 192, 224)]


def sz(size) -> str:
    return "x".join(str(s) for s in size)


def time_pairs(size, warmup: int, repeats: int, min_repeats: int, budget_s: float) -> dict:
    """Wall and CPU seconds per pair over consecutive indices."""
    from fnoreg_core.data.synth import SynthPairs

    src = SynthPairs(size, seed=0)
    for i in range(warmup):
        src.load(10_000 + i)
    walls, cpus = [], []
    load = C.OtherLoad().start()
    start = time.perf_counter()
    i = 0
    while len(walls) < repeats:
        w0, c0 = time.perf_counter(), time.process_time()
        src.load(i)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        i += 1
        if len(walls) >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return {"n": len(walls), "median_ms": statistics.median(walls) * 1e3, "min_ms": min(walls) * 1e3,
            "mean_ms": statistics.fmean(walls) * 1e3, "cpu_ms": statistics.fmean(cpus) * 1e3,
            "pairs_per_s": len(walls) / sum(walls), "other_load": load.stop()}


def time_steps(size, repeats: int) -> dict:
    """Median CPU ms of each step of one pair (the strongest deformation of the defaults)."""
    import numpy as np

    from fnoreg_core.data import synth

    rng = np.random.default_rng(0)
    mean = float(np.mean(size))
    labels = synth.random_label_map(size, rng, 16, spacing=mean / 8)
    ddf = synth.random_deformation(size, rng, 0.025 * mean, mean / 8)
    warped = synth.warp(labels, ddf, order=0)
    contrast = synth.random_contrast(17, rng)
    steps = {
        "label map": lambda: synth.random_label_map(size, rng, 16, spacing=mean / 8),
        "deformation": lambda: synth.random_deformation(size, rng, 0.025 * mean, mean / 8),
        "warp (nearest)": lambda: synth.warp(labels, ddf, order=0),
        "image": lambda: synth.synthesize_image(warped, rng, contrast),
    }
    out = {}
    for name, fn in steps.items():
        fn()
        times = []
        for _ in range(repeats):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
        out[name] = statistics.median(times) * 1e3
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer pairs per size")
    p.add_argument("--pairs", type=int, default=None, help="timed pairs per size, at most (default 40; quick 4)")
    p.add_argument("--budget", type=float, default=None, help="no new pair after this many seconds per size "
                                                               "(default 20; quick 3)")
    p.add_argument("--max-other-load", type=float, default=0.2,
                   help="before each size, wait until other processes use fewer cores than this (default 0.2)")
    p.add_argument("--max-wait", type=float, default=30,
                   help="longest wait for a quiet machine before each size, seconds (default 30; 0: no wait)")
    p.add_argument("--output", default=None, help=f"results file under benchmarks/results/ (default {NAME}, "
                                                  f"{NAME}_quick with --quick)")
    args = p.parse_args()
    repeats = args.pairs if args.pairs is not None else (4 if args.quick else 40)
    budget = args.budget if args.budget is not None else (3.0 if args.quick else 20.0)
    min_repeats = min(3, repeats)

    import numpy
    import scipy

    fingerprint = C.source_fingerprint()
    head = C.header("Synthetic pairs per second (fnoreg_core.data.synth, one core)", 1, [
        f"- generator: `SynthPairs(size, seed=0)` defaults (16 random labels in a head-shaped blob, two "
        f"diffeomorphic deformations, same contrast), `load(i)` for i = 0, 1, ...; numpy {numpy.__version__}, "
        f"scipy {scipy.__version__}; one process, no BLAS calls (single-threaded)",
        f"- timing: 1 warm-up pair, then up to {repeats} pairs (at least {min_repeats}; no new pair after "
        f"{budget:.0f} s); wall ms median and mean, CPU ms mean (process time, less sensitive to other load); "
        f"pairs/s = pairs / total wall time",
        f"- other load: before each size the script waits (at most {args.max_wait:.0f} s) until other processes "
        f"use < {args.max_other_load} cores; 'other load' is the cores they used while it ran",
        f"- busiest other processes at start: {C.busy_processes() or 'none above 5% CPU'}"])
    head = [line for line in head if not line.startswith("- threads:")]
    print("\n".join(head), flush=True)

    rows, step_rows, loads = [], [], []
    for k, size in enumerate(SIZES):
        print(f"[size {k + 1}/{len(SIZES)}] {sz(size)} ...", file=sys.stderr, flush=True)
        if args.max_wait > 0:
            C.wait_for_quiet(args.max_other_load, args.max_wait)
        r = time_pairs(size, warmup=1, repeats=repeats, min_repeats=min_repeats, budget_s=budget)
        loads.append(r["other_load"])
        rows.append([f"{len(size)}D {sz(size)}", f"{r['pairs_per_s']:.2f}", f"{r['median_ms']:.0f}",
                     f"{r['mean_ms']:.0f}", f"{r['min_ms']:.0f}", f"{r['cpu_ms']:.0f}", str(r["n"]),
                     f"{r['other_load']:.2f}"])
        steps = time_steps(size, repeats=3 if args.quick or len(size) == 3 and size[0] > 100 else 7)
        pair = steps["label map"] + 2 * (steps["deformation"] + steps["warp (nearest)"] + steps["image"])
        step_rows.append([f"{len(size)}D {sz(size)}"] + [f"{v:.1f}" for v in steps.values()] + [f"{pair:.0f}"])
        print(f"[size {k + 1}/{len(SIZES)}] {sz(size)}: {r['pairs_per_s']:.2f} pairs/s", file=sys.stderr, flush=True)

    shared = max(loads) >= args.max_other_load
    note = (f"**Shared machine**: other processes kept up to {max(loads):.2f} cores busy during the measurements "
            f"(this machine has {os.cpu_count()} logical CPUs, shared with other jobs); wall times are pessimistic, "
            f"CPU ms/pair is the better guide." if shared else
            "Quiet machine: other processes used < "
            f"{args.max_other_load} cores during every measurement.")
    lines = head + ["", note, "",
                    "## Pairs per second (one process, default settings)", ""]
    lines += C.markdown_table(["size", "pairs/s", "wall ms/pair (median)", "wall ms (mean)", "wall ms (min)",
                               "CPU ms/pair (mean)", "pairs timed", "other load (cores)"], rows)
    lines += ["", "## Steps of one pair (CPU ms, median; strongest default deformation)", ""]
    lines += C.markdown_table(["size", "label map", "deformation (x2)", "warp nearest (x2)", "image (x2)",
                               "sum of a pair"], step_rows)
    lines += ["", "A pair = 1 label map + 2 x (deformation + warp + image); `load(i, return_ddf=True)` "
                  "(true fixed->moving field) costs extra full-resolution interpolations.", ""] + C.footer(fingerprint)
    print("\n".join(lines[len(head):]), flush=True)
    path = C.write_results(args.output or (f"{NAME}_quick" if args.quick else NAME), lines)
    print(f"\nwritten to {os.path.relpath(path, C.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
