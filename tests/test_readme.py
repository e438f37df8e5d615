"""README.md is true: every fenced ``bash`` and ``python`` block runs as written (issue 21).

Each block runs in a fresh copy of the repository's tracked files (a temporary directory; a git
repository so that what the commands leave behind can be listed) with the repository's ``.venv``
linked in, in a new shell without a display: ``env`` holds only PATH (system folders) and HOME, so a
command works only if the README says how (``source .venv/bin/activate``). Blocks run in README order
and share the copy, as they would for a reader going down the page (the export block uses the
training block's ``runs/demo2d``). A command passes when it exits 0, or with the exit code the table
below documents.

Placeholders (:data:`PLACEHOLDERS`): where the README shows a file of the user's (``fixed.nii.gz``,
``F.nii.gz``, ``pairs.csv``), the test substitutes a real one. Each entry is used exactly where its
text occurs, and the test fails when the README no longer contains it, so the table cannot go stale.
Commands that are not run (:data:`NOT_RUN`) say why. After the last block nothing may be left
untracked in the copy outside ``.gitignore`` (point 7: no stray ``eval/``, ``triton_repo/``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV = ROOT / ".venv"

#: README text -> what runs instead, and why. Applied to the block that contains the text.
PLACEHOLDERS: list[tuple[str, str, str]] = [
    # the GUI blocks: a window that stays open until the user closes it; the test gives it 30 s under
    # Qt's offscreen platform and counts "still running, then stopped" (exit 124) as a pass
    ("fnoreg-gui                                   #", "gui_runs fnoreg-gui  #", "a window: runs 30 s, then stopped"),
    ("fnoreg-gui --demo 2d ", "gui_runs fnoreg-gui --demo 2d ", "a window: runs 30 s, then stopped"),
    ("fnoreg-gui --fixed F.nii.gz --moving M.nii.gz [--fixed-labels FL --moving-labels ML] [--model X.onnx] "
     "[--backend onnxruntime-cpu]",
     "gui_runs fnoreg-gui --fixed assets/demo/2d/fixed.nii.gz --moving assets/demo/2d/moving.nii.gz "
     "--fixed-labels assets/demo/2d/fixed_labels.nii.gz --moving-labels assets/demo/2d/moving_labels.nii.gz "
     "--model assets/models/fnoreg2d/model.onnx --backend onnxruntime-cpu",
     "the synopsis's optional parts, all given, on the 2-D demo pair"),
    # a user's own pair and cohort: the 2-D demo pair
    ("best-export/model.onnx fixed.nii.gz moving.nii.gz -o out \\\n    --moving-labels moving_labels.nii.gz "
     "--fixed-labels fixed_labels.nii.gz",
     "best-export/model.onnx assets/demo/2d/fixed.nii.gz assets/demo/2d/moving.nii.gz -o out \\\n"
     "    --moving-labels assets/demo/2d/moving_labels.nii.gz --fixed-labels assets/demo/2d/fixed_labels.nii.gz",
     "the user's pair: the 2-D demo pair"),
    ("fnoreg-register --model model.onnx --pairs pairs.csv -o runs/cohort ",
     "make_pairs_csv runs/pairs.csv && fnoreg-register --model runs/demo2d/best-export/model.onnx "
     "--pairs runs/pairs.csv -o runs/cohort ",
     "the user's cohort: a CSV of the 2-D demo pair twice (runs/pairs.csv), the model exported above"),
    ('Registrator.load("model.onnx", backend="auto", threads=4)',
     'Registrator.load("assets/models/fnoreg2d/model.onnx", backend="auto", threads=2)',
     "the user's model: the bundled 2-D one; 2 threads on this machine"),
    ('nib.load("fixed.nii.gz")', 'nib.load("assets/demo/2d/fixed.nii.gz")', "the user's image: the 2-D demo pair"),
    ('nib.load("moving.nii.gz")', 'nib.load("assets/demo/2d/moving.nii.gz")', "the user's image: the 2-D demo pair"),
    ('nib.load("moving_labels.nii.gz")', 'nib.load("assets/demo/2d/moving_labels.nii.gz")',
     "the user's labels: the 2-D demo pair"),
]

#: Commands of the README that this test does not run, and why (matched at the start of a command).
NOT_RUN: dict[str, str] = {
    "make test": "the command that runs this test (CI: .ci/run)",
    "sudo apt-get install": "system packages (root, the network); tests/gui covers the message without them",
}

#: Commands that exit non-zero on purpose here, with the code (matched at the start of a command).
EXPECTED_EXIT: dict[str, tuple[int, str]] = {
    "fnoreg-export assets/models/fnoreg3d/checkpoint.pt --trt": (
        2, "no TensorRT / GPU here: writes the ONNX graphs, then exits 2 saying what to install"),
}

#: Commands that need the offline template set (``fnoreg-data templates``): run only when it is built.
NEEDS_TEMPLATES = ("fnoreg-eval runs/demo2d/best.pt --data templates",)

PRELUDE = r"""
gui_runs() {  # a GUI command: must still be running after 30 s (then stopped: exit 124)
    local rc=0
    QT_QPA_PLATFORM=offscreen timeout 30 "$@" || rc=$?
    if [ "$rc" -ne 124 ]; then echo "GUI command ended by itself with exit code $rc: $*" >&2; return 1; fi
}
make_pairs_csv() {  # FILE: the 2-D demo pair twice, as a user's cohort CSV
    local d="$PWD/assets/demo/2d"  # a CSV's relative paths are relative to its own folder
    printf 'moving,fixed,moving_labels,fixed_labels\n' > "$1"
    for i in 1 2; do printf '%s\n' "$d/moving.nii.gz,$d/fixed.nii.gz,$d/moving_labels.nii.gz,$d/fixed_labels.nii.gz" >> "$1"; done
}
"""


def readme_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(first line number, language, body)`` of every fenced bash / python block."""
    blocks = []
    for m in re.finditer(r"^```(bash|python)\n(.*?)^```", text, flags=re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 2, m.group(1), m.group(2)))
    return blocks


def logical_commands(body: str) -> list[str]:
    """Shell commands of a bash block: continuation lines joined, blank and comment-only lines dropped."""
    commands, current = [], ""
    for line in body.splitlines():
        current += line
        if line.endswith("\\"):
            current += "\n"
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current)
        current = ""
    return commands


def apply_placeholders(body: str) -> str:
    for text, replacement, _ in PLACEHOLDERS:
        body = body.replace(text, replacement)
    return body


def _template_set_built() -> bool:
    try:
        from fnoreg_core.data.templates import default_root
    except ImportError:
        return False
    return (Path(default_root()) / "manifest.json").is_file()


BLOCKS = readme_blocks(README.read_text())


def test_readme_has_the_blocks_and_every_placeholder_is_used():
    text = README.read_text()
    assert text.startswith("# FNOReg") and len(BLOCKS) >= 6
    first = BLOCKS[0]
    assert first[1] == "bash" and [c.split()[:2] for c in logical_commands(first[2])] == [["make", "demo"], ["make", "test"]]
    for needle, _, why in PLACEHOLDERS:
        assert text.count(needle) >= 1, f"README no longer contains the placeholder text {needle!r} ({why})"
    commands = [c for _, lang, body in BLOCKS if lang == "bash" for c in logical_commands(body)]
    for table in (NOT_RUN, EXPECTED_EXIT):
        for start in table:
            assert any(c.startswith(start) for c in commands), f"no README command starts with {start!r}"
    assert all(any(c.startswith(start) for c in commands) for start in NEEDS_TEMPLATES)


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A copy of the tracked files, a git repository, with the repository's .venv linked in."""
    if not (VENV / "bin" / "python").is_file():
        pytest.skip("the README's commands need the make-built .venv (make venv)")
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the tracked files")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    dest = tmp_path_factory.mktemp("readme") / "fnoreg"
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to(VENV)
    stamp = VENV / ".fnoreg-installed"
    if stamp.exists():  # make must not rebuild the shared venv for the copy's pyproject.toml
        older = stamp.stat().st_mtime - 1
        os.utime(dest / "pyproject.toml", (older, older))
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.invalid"]
    subprocess.run(git[:1] + ["init", "-q"], cwd=dest, check=True)
    with open(dest / ".git" / "info" / "exclude", "a") as exclude:  # the link (.gitignore's .venv/ is a folder)
        exclude.write("/.venv\n")
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest


def _new_shell_env(home: Path) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": os.environ.get("LANG", "C.UTF-8")}
    for key in ("TMPDIR", "FNOREG_DATA"):  # no DISPLAY: make demo takes its headless branch
        if key in os.environ:
            env[key] = os.environ[key]
    real_home = Path(os.environ.get("HOME", "~")).expanduser()
    cache = real_home / ".cache" / "fnoreg"
    if cache.is_dir():  # the template set, where it is built (fnoreg-eval --data templates)
        (home / ".cache").mkdir(parents=True, exist_ok=True)
        if not (home / ".cache" / "fnoreg").exists():
            (home / ".cache" / "fnoreg").symlink_to(cache)
    return env


def _script(lang: str, body: str, activate: bool) -> tuple[str, list[str]]:
    """The bash script of one block, and the commands it will skip (with the reason)."""
    lines = ["set -uo pipefail", PRELUDE]
    skipped = []
    if activate:
        lines.append("source .venv/bin/activate")
    if lang == "python":
        lines.append("python - <<'README_PY'\n" + apply_placeholders(body) + "README_PY")
        lines.append('rc=$?; [ "$rc" -eq 0 ] || { echo "FAILED (exit $rc): the python block" >&2; exit 1; }')
        return "\n".join(lines) + "\n", skipped
    templates = _template_set_built()
    for command in logical_commands(body):
        if any(command.startswith(s) for s in NOT_RUN):
            skipped.append(f"{command.splitlines()[0]}: {next(v for k, v in NOT_RUN.items() if command.startswith(k))}")
            continue
        if not templates and any(command.startswith(s) for s in NEEDS_TEMPLATES):
            skipped.append(f"{command.splitlines()[0]}: the template set is not built (fnoreg-data templates)")
            continue
        expected = next((code for start, (code, _) in EXPECTED_EXIT.items() if command.startswith(start)), 0)
        shown = re.sub(r"[\\'\"$`]", "", command.splitlines()[0]).strip()  # safe inside quotes
        lines.append(f"echo '>>> {shown}'; SECONDS=0")
        lines.append(apply_placeholders(command))
        lines.append(f'rc=$?; echo "<<< exit $rc, $SECONDS s"; [ "$rc" -eq {expected} ] || '
                     f'{{ echo "FAILED (exit $rc, expected {expected}): {shown}" >&2; exit 1; }}')
    return "\n".join(lines) + "\n", skipped


@pytest.mark.slow
@pytest.mark.parametrize("line,lang,body", BLOCKS, ids=[f"L{line}-{lang}" for line, lang, _ in BLOCKS])
def test_readme_block_runs_as_written(copy, tmp_path, line, lang, body):
    script, skipped = _script(lang, body, activate=line != BLOCKS[0][0])
    (tmp_path / "block.sh").write_text(script)
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", str(tmp_path / "block.sh")], cwd=copy, env=_new_shell_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=1500)
    log = proc.stdout[-6000:] + "\n--- stderr ---\n" + proc.stderr[-6000:]
    print(f"README block at line {line} ({lang}): {time.perf_counter() - t0:.0f} s; not run: {skipped}\n{log}",
          file=sys.stderr)
    assert proc.returncode == 0, f"README block at line {line} failed:\n{log}"


@pytest.mark.slow
def test_readme_commands_leave_nothing_untracked(copy):
    """Runs after the blocks (file order): what they wrote is all under .gitignore."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=copy,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"README commands left files outside .gitignore:\n{status}"
