"""fnoreg-train: a tiny end-to-end run, resume, YAML config, bad input (exit 2), DDP on gloo."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fnoreg_core.checkpoint import load_checkpoint, load_model
from fnoreg_core.train import main

TINY = ["--preset", "2d-cpu", "--model-option", "hidden_channels=4", "--model-option", "n_layers=1",
        "--model-option", "n_modes=[8,8]", "--model-option", "projection_channels=8",
        "--train-res", "24x32", "--val-pairs", "2", "--lr", "1e-3", "--no-progress"]


def _run(tmp_path: Path, *extra: str) -> int:
    return main([*TINY, "--out", str(tmp_path / "run"), *extra])


def test_train_writes_checkpoints_and_metrics_then_resumes(tmp_path, capsys):
    assert _run(tmp_path, "--steps", "4", "--val-every", "2") == 0
    run = tmp_path / "run"
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 4 and ckpt["train_resolution"] == [24, 32]
    assert {"val_dice", "val_folded_pct", "val_sdlogj"} <= set(ckpt["metrics"])
    assert ckpt["train_config"]["data"] == "synth" and "state" in ckpt["optimizer"]
    assert (run / "best.pt").is_file() and json.loads((run / "config.json").read_text())["steps"] == 4
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert {"train/loss", "val/dice"} <= {r["metric"] for r in rows}
    model, _ = load_model(run / "last.pt")
    before = {k: v.clone() for k, v in model.state_dict().items()}

    assert _run(tmp_path, "--steps", "6", "--val-every", "3", "--resume") == 0
    assert "resumed" in capsys.readouterr().out
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] == 6
    assert any(not torch.equal(before[k], v) for k, v in resumed["state_dict"].items())


def test_yaml_config_with_cli_override(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("preset: 2d-cpu\nmodel_options: {hidden_channels: 4, n_layers: 1, n_modes: [8, 8], "
                   "projection_channels: 8}\ntrain_res: 24x32\nsteps: 50\nval_pairs: 1\n")
    assert main(["--config", str(cfg), "--steps", "2", "--out", str(tmp_path / "y"), "--no-progress"]) == 0
    assert load_checkpoint(tmp_path / "y" / "last.pt")["step"] == 2


@pytest.mark.parametrize("args,message", [
    (["--preset", "4d-huge"], "unknown preset"),
    (["--train-res", "4x6"], "below this model's minimum"),
    (["--data", "oasis:/no/such/folder"], "/no/such/folder"),
    (["--data", "pairs:/no/such.csv"], "/no/such.csv"),
    (["--data", "imagenet"], "unknown data source"),
    (["--loss", "mse", "--steps", "0"], "steps must be >= 1"),
])
def test_bad_input_exits_2(tmp_path, capsys, args, message):
    argv = [*TINY, "--steps", "2", "--out", str(tmp_path / "bad")]
    for i in range(0, len(args), 2):  # later flags win
        argv += args[i:i + 2]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad" / "last.pt").exists()


def test_resume_with_another_model_exits_2(tmp_path, capsys):
    assert _run(tmp_path, "--steps", "2") == 0
    assert main([*TINY, "--model-option", "hidden_channels=6", "--steps", "4", "--resume",
                 "--out", str(tmp_path / "run")]) == 2
    assert "different model" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2  # untouched


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    assert _run(tmp_path, "--steps", "2") == 0
    assert _run(tmp_path, "--steps", "2") == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_ddp_two_processes_on_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29577",
           "-m", "fnoreg_core.train", *TINY, "--steps", "4", "--val-every", "4", "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stdout
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["step"] == 4


def test_time_budget_stops_saves_and_is_summed_over_resumes(tmp_path, capsys):
    # a budget far below one validation interval: training stops after the first step that exceeds it
    assert _run(tmp_path, "--steps", "1000", "--val-every", "500", "--time-budget-min", "0.0001",
                "--budget-clock", "cpu") == 0
    run = tmp_path / "run"
    ckpt = load_checkpoint(run / "last.pt")
    assert 1 <= ckpt["step"] < 1000 and ckpt["train_seconds"] >= 0.006
    assert "val_dice" in ckpt["metrics"] and "time budget" in capsys.readouterr().out
    # the same budget is spent: resuming refuses (exit 2) and says how to go on
    assert _run(tmp_path, "--steps", "1000", "--time-budget-min", "0.0001", "--budget-clock", "cpu", "--resume") == 2
    assert "--time-budget-min" in capsys.readouterr().err
    # a larger budget continues from the saved time
    assert _run(tmp_path, "--steps", "1000", "--time-budget-min", "0.01", "--resume") == 2  # another clock
    assert "--budget-clock cpu" in capsys.readouterr().err
    assert _run(tmp_path, "--steps", "1000", "--val-every", "500", "--time-budget-min", "0.01", "--budget-clock", "cpu",
                "--resume") == 0
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] > ckpt["step"] and resumed["train_seconds"] >= 0.6


def test_recipe_options_field_loss_cosine_and_synth_option(tmp_path, capsys):
    """--field-weight logs the end-point error against the known field; options are saved."""
    assert _run(tmp_path, "--steps", "3", "--val-every", "3", "--field-weight", "0.1", "--loss", "ncc",
                "--lr-schedule", "cosine", "--synth-option", "contrast=random", "--synth-option", "deform_std=0.03") == 0
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    epe = [float(r["value"]) for r in rows if r["metric"] == "train/epe_vox"]
    assert epe and all(v > 0 for v in epe)
    cfg = load_checkpoint(run / "last.pt")["train_config"]
    assert cfg["field_weight"] == 0.1 and cfg["lr_schedule"] == "cosine"
    assert cfg["synth_options"] == {"contrast": "random", "deform_std": 0.03}


def test_learning_rate_schedule():
    from fnoreg_core.train import TrainConfig, learning_rate

    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine")
    assert learning_rate(cfg, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 0.5) == pytest.approx(0.55e-3)
    assert learning_rate(cfg, 1.0) == pytest.approx(1e-4)
    assert learning_rate(TrainConfig(lr=1e-3), 0.7) == 1e-3


def test_session_minutes_stops_and_saves(tmp_path, capsys):
    assert _run(tmp_path, "--steps", "100000", "--val-every", "1000", "--session-minutes", "0.01") == 0
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert 1 <= ckpt["step"] < 100000


@pytest.mark.parametrize("args,message", [
    (["--lr-schedule", "linear"], "invalid choice"),
    (["--synth-option", "contrast"], "KEY=VALUE"),
    (["--synth-option", "colour=red"], "bad synthetic data option"),
    (["--session-minutes", "0"], "session-minutes"),
])
def test_recipe_options_bad_input_exits_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) if "invalid choice" in message else _nullcontext():
        code = _run(tmp_path, "--steps", "2", *args)
        assert code == 2
    assert message in capsys.readouterr().err


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_mixed_synthetic_source_interleaves_shapes_and_brains(tmp_path):
    from fnoreg_core.data.mix import MixedPairs
    from fnoreg_core.data.synth import SynthPairs

    a, b = SynthPairs((24, 32), 3, seed=0), SynthPairs((24, 32), 3, seed=5)
    mix = MixedPairs([a, b])
    assert len(mix) == 6 and mix.shape == (24, 32)
    assert mix[0]["name"] == a[0]["name"] and mix[1]["name"] == b[0]["name"] and mix[5]["name"] == b[2]["name"]
    assert "ddf_vox" in mix.load(3, return_ddf=True)
    with pytest.raises(ValueError, match="differ in size"):
        MixedPairs([a, SynthPairs((16, 16), 2)])


def test_resume_from_weights_only_checkpoint_restarts_adam(tmp_path, capsys):
    """A checkpoint stripped of its optimizer state (e.g. carried to a GPU machine) resumes with a note."""
    assert _run(tmp_path, "--steps", "2", "--val-every", "2") == 0
    last = tmp_path / "run" / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt.pop("optimizer")
    torch.save(ckpt, last)
    assert _run(tmp_path, "--steps", "3", "--val-every", "3", "--resume") == 0
    assert "Adam restarts" in capsys.readouterr().err
    assert load_checkpoint(last)["step"] == 3
