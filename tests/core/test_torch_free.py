"""fnoreg_core.fields and fnoreg_core.metrics must import and run with torch unavailable."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    sys.path.insert(0, {root!r})
    import numpy as np
    import fnoreg_core
    import fnoreg_core.fields as fields
    import fnoreg_core.metrics as metrics
    u = fields.ddf_norm_to_vox(np.zeros((3, 4, 5, 6)))
    jac = metrics.jacobian_determinant(u)
    assert metrics.folding_fraction(jac)["negative_pct"] == 0.0
    assert metrics.mean_dice(np.ones((3, 3), int), np.ones((3, 3), int)) == 1.0
    heavy = sorted(m for m in ("torch", "monai", "scipy", "SimpleITK") if sys.modules.get(m) is not None)
    print("LOADED", heavy)
    """
)


def test_fields_and_metrics_import_without_torch():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(ROOT))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
