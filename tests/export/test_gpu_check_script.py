"""benchmarks/gpu/validate.sh, the one-call GPU path check, keeps working: its dry run (CPU, small
sizes) exits 0, says what it skipped and why, and checks the runtime's TensorRT runner against the
stand-in engine on the recording fake of cuda-python."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu" / "validate.sh"), "--dry"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "skipped: --dry (CPU reference only)" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert set(sections) == {"env", "torch", "presets", "standin", "onnxruntime", "tensorrt"}
    assert sections["presets"]["data"]["3d-cpu 48x48x64"]["fp32_ms"] > 0  # the dry run times the preset on the CPU
    assert not any(s["status"].startswith("FAILED") for s in sections.values())
    standin = sections["standin"]["data"]
    assert standin["cuda-python FLOAT"]["ok"] and standin["cuda-python HALF"]["ok"]
    assert standin["cuda-python FLOAT"]["max_vox_vs_torch"] <= 1e-3
    assert sections["onnxruntime"]["status"] == "ok"
    assert (tmp_path / "gpu_check.md").read_text().startswith("# GPU path check")
    assert (tmp_path / "check.log").is_file()
