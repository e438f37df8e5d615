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


NUMPY_MODULES = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None
    sys.path.insert(0, {root!r})
    import numpy as np
    import fnoreg_core.io, fnoreg_core.intensity, fnoreg_core.data, fnoreg_core.data.synth
    import fnoreg_core.data.oasis, fnoreg_core.data.pairs, fnoreg_core.data.templates
    import fnoreg_export.model_card, fnoreg_export.runtime
    pair = fnoreg_core.data.open_source("synth", 2, "val", shape=(32, 40))[0]
    assert pair["moving"].shape == (1, 32, 40)
    print("OK")
    """
)


def test_data_io_and_runtime_modules_import_without_torch():
    """What the runtime and the GUI use (pair sources, I/O, cards, Registrator) must not need torch."""
    proc = subprocess.run([sys.executable, "-c", NUMPY_MODULES.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
