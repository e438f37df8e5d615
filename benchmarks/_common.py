"""Shared helpers of the benchmark scripts: timing, machine description, child processes, output.

Not a library module: imported by the scripts in this folder (``python benchmarks/<script>.py``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------------------------
# timing


def measure(fn, warmup: int, repeats: int, min_repeats: int, budget_s: float) -> dict:
    """Median wall time of ``fn()`` over up to ``repeats`` runs after ``warmup`` runs.

    Stops early (after at least ``min_repeats`` runs) once the timed runs exceed ``budget_s``.
    Returns ``{"median_ms", "min_ms", "max_ms", "n"}``.
    """
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return {
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "n": len(times),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of THIS process image in MB (``VmHWM`` of /proc/self/status).

    Not ``ru_maxrss``: Linux carries it over ``execve`` from the forking parent, so a case process
    would never report less than its parent's peak. Falls back to ``ru_maxrss`` off Linux.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("can't allocate memory", "out of memory", "bad_alloc", "bad allocation",
                                   "failed to allocate", "cannot allocate"))


def describe_error(exc: BaseException) -> str:
    if is_oom(exc):
        return "OOM"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"error: {type(exc).__name__}: {first[:120]}"


def limit_memory(gb: float) -> None:
    """Cap this process's address space (RLIMIT_AS) so an allocation beyond it raises instead of
    waking the kernel's OOM killer. ``gb <= 0``: no cap."""
    if gb > 0:
        cap = int(gb * 1024 ** 3)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _meminfo_gb(key: str) -> float:
    """A /proc/meminfo entry in GiB (0.0 where unavailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return 0.0


def mem_available_gb() -> float:
    return _meminfo_gb("MemAvailable")


def mem_limit_from_args(args) -> float:
    """``--mem-limit-gb`` of :func:`add_case_runner_args`, default 85 % of MemAvailable."""
    return args.mem_limit_gb if args.mem_limit_gb is not None else round(0.85 * mem_available_gb(), 1)


# ------------------------------------------------------------------------------------------------
# machine and run description


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gb() -> float:
    return _meminfo_gb("MemTotal")


def _git(*args: str, cwd: str | Path = ROOT) -> str:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10).stdout.rstrip("\n")
    except (OSError, subprocess.SubprocessError):
        return ""


def git_commit(tree: str | Path) -> str:
    """Short commit of another checkout or worktree (``unknown`` when it is not one)."""
    return _git("rev-parse", "--short", "HEAD", cwd=tree).strip() or "unknown"


def source_fingerprint() -> str:
    """Short hash of the library sources, to notice edits made while a benchmark runs."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "fnoreg_core").rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def header(title: str, threads: int, extra: list[str] | None = None) -> list[str]:
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "not installed"
    try:
        import onnx

        onnx_version = onnx.__version__
    except ImportError:
        onnx_version = "not installed"
    commit = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = _git("status", "--porcelain", "--", "fnoreg_core")
    dirty_files = ", ".join(line[3:] for line in dirty.splitlines()) if dirty else "none"
    load = os.getloadavg()
    lines = [
        f"# {title}",
        "",
        f"- command: `{shlex.join([Path(sys.executable).name] + [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])}`",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} logical CPUs ({cpu_model()}), {mem_total_gb():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort_version}, "
        f"onnx {onnx_version}",
        f"- threads: torch.set_num_threads({threads}), onnxruntime intra_op_num_threads={threads}",
        f"- source: commit {commit}; uncommitted changes under fnoreg_core/: {dirty_files}; "
        f"fnoreg_core fingerprint {source_fingerprint()}",
        f"- load average at start (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
    ]
    return lines + (extra or [])


def footer(fingerprint_at_start: str) -> list[str]:
    load = os.getloadavg()
    lines = [f"- load average at end (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"]
    now = source_fingerprint()
    if now != fingerprint_at_start:
        lines.append(f"- WARNING: fnoreg_core sources changed during the run (fingerprint {fingerprint_at_start} "
                     f"-> {now}); cases may have run different code")
    return lines


def markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_results(name: str, lines: list[str]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------
# load from other processes (benchmarks on 2 cores are very sensitive to it)


def _cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return (total - idle) / hz, total / hz


def _own_cpu() -> float:
    """CPU seconds used by this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class OtherLoad:
    """Average number of cores kept busy by OTHER processes between start() and stop()."""

    def start(self):
        self.busy0, _ = _cpu_times()
        self.own0 = _own_cpu()
        self.t0 = time.perf_counter()
        return self

    def stop(self) -> float:
        busy1, _ = _cpu_times()
        wall = time.perf_counter() - self.t0
        if wall <= 0:
            return 0.0
        return max(0.0, ((busy1 - self.busy0) - (_own_cpu() - self.own0)) / wall)


def wait_for_quiet(max_load: float, max_wait_s: float, window_s: float = 2.0) -> tuple[float, float]:
    """Wait until other processes use fewer than ``max_load`` cores over a ``window_s`` window
    (at most ``max_wait_s``). Returns (seconds waited, the last window's load)."""
    start = time.perf_counter()
    announced = False
    while True:
        probe = OtherLoad().start()
        time.sleep(window_s)
        load = probe.stop()
        waited = time.perf_counter() - start
        if load < max_load or waited >= max_wait_s:
            if announced:
                print(f"[load] other processes at {load:.2f} cores after waiting {waited:.0f} s", file=sys.stderr,
                      flush=True)
            return waited, load
        if not announced:
            print(f"[load] other processes keep {load:.2f} cores busy; waiting up to {max_wait_s:.0f} s for "
                  f"< {max_load} ...", file=sys.stderr, flush=True)
            announced = True


def busy_processes(limit: int = 3) -> str:
    """The other processes using the most CPU right now (ps), for the report."""
    try:
        out = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True,
                             text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return ""
    me = os.getpid()
    rows = []
    for line in out:
        parts = line.split(None, 2)
        if len(parts) < 3 or int(parts[0]) == me or float(parts[1]) < 5 or parts[2].startswith("ps "):
            continue
        rows.append(f"{parts[2][:60]} ({parts[1]}% CPU)")
    return "; ".join(rows[:limit])


# ------------------------------------------------------------------------------------------------
# child processes (one per configuration: isolated peak memory, survives an OOM kill)


def run_child(script: str, case: dict, out_path: Path, timeout_s: float) -> tuple[dict, str | None]:
    """Run ``python script --_case JSON --_out out_path`` and return (partial results, failure).

    ``results["other_load"]``: cores kept busy by other processes while the child ran (0 = quiet).

    The child writes its results JSON after every stage, so a crash or kill keeps what was done.
    ``failure`` is None on success, else a short reason ("killed by signal 9 (likely OOM)", "timeout").
    """
    if out_path.exists():
        out_path.unlink()
    cmd = [sys.executable, script, "--_case", json.dumps(case), "--_out", str(out_path)]
    failure = None
    load = OtherLoad().start()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, timeout=timeout_s)
        if proc.returncode < 0:
            sig = -proc.returncode
            failure = f"killed by signal {sig}" + (" (likely OOM)" if sig == 9 else "")
        elif proc.returncode != 0:
            failure = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        failure = f"timeout after {timeout_s:.0f} s"
    other = load.stop()
    result = {}
    if out_path.exists():
        try:
            result = json.loads(out_path.read_text())
        except json.JSONDecodeError:
            result = {}
    result["other_load"] = other
    return result, failure


class ResultWriter:
    """Dict persisted to a JSON file on every update (read by the parent after the child exits)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.data: dict = {}

    def __setitem__(self, key, value):
        self.data[key] = value
        self.data["peak_rss_mb"] = peak_rss_mb()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)

    def get(self, key, default=None):
        return self.data.get(key, default)


def fmt_ms(m) -> str:
    if isinstance(m, dict) and "median_ms" in m:
        v = m["median_ms"]
        return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
    if isinstance(m, str):
        return m
    return "n/a"


def ratio(a, b) -> str:
    if isinstance(a, dict) and isinstance(b, dict) and "median_ms" in a and "median_ms" in b:
        return f"{a['median_ms'] / b['median_ms']:.2f}x"
    return "n/a"


def median_of(m):
    return m["median_ms"] if isinstance(m, dict) and "median_ms" in m else None


def add_timing_args(parser, budget_s: float) -> None:
    """--warmup / --repeats / --min-repeats / --budget of the latency-style benchmarks."""
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs per measurement (default 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement, at most (default 7)")
    parser.add_argument("--min-repeats", type=int, default=None,
                        help="timed runs per measurement, at least (default 3)")
    parser.add_argument("--budget", type=float, default=None,
                        help=f"stop adding timed runs to a measurement after this many seconds (default {budget_s:g})")


def timing_from_args(args, quick: bool, budget_s: float) -> dict:
    """The timing dict of :func:`add_timing_args` options; ``--quick`` defaults: 2 runs, 5 s."""
    timing = dict(
        warmup=args.warmup if args.warmup is not None else 1,
        repeats=args.repeats if args.repeats is not None else (2 if quick else 7),
        min_repeats=args.min_repeats if args.min_repeats is not None else (2 if quick else 3),
        budget_s=args.budget if args.budget is not None else (5.0 if quick else float(budget_s)),
    )
    timing["min_repeats"] = min(timing["min_repeats"], timing["repeats"])
    return timing


def add_case_runner_args(parser, name: str, unit: str, case_timeout_s: float) -> None:
    """The options every case-per-process benchmark shares (memory cap, timeout, quiet-machine wait,
    output name, and the hidden child-process options). ``unit`` names a case in help texts."""
    import argparse

    parser.add_argument("--mem-limit-gb", type=float, default=None,
                        help=f"address-space cap per {unit}, so an OOM is reported (default 85%% of MemAvailable; 0: none)")
    parser.add_argument("--case-timeout", type=float, default=case_timeout_s,
                        help=f"seconds per {unit} (default {case_timeout_s:g})")
    parser.add_argument("--max-other-load", type=float, default=0.2,
                        help=f"before each {unit}, wait until other processes use fewer cores than this (default 0.2)")
    parser.add_argument("--max-wait", type=float, default=600,
                        help=f"longest wait for a quiet machine before each {unit}, seconds (default 600; 0: no wait)")
    parser.add_argument("--output", default=None,
                        help=f"results file name under benchmarks/results/ (default {name}, {name}_quick with --quick)")
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
