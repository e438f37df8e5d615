"""Nothing crashes (issue 18), property-based: hypothesis draws the hostile inputs.

Each property says: whatever the input, the entry point either accepts it (and its result is sane)
or refuses it with the documented exception / exit code 2 and no traceback. ``FNOREG_FUZZ_EXAMPLES``
sets the examples per property (default 25: the whole file runs in well under a minute).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from fuzz_helpers import EXAMPLES, call, smooth, snapshot  # noqa: E402

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def reg2d(tiny2d):
    from fnoreg_export.runtime import Registrator

    return Registrator.load(tiny2d[1], backend="onnxruntime-cpu", threads=1)


@SETTINGS
@given(arr=hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.int64, np.bool_,
                                             np.complex64, np.float16]),
                      shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=40)))
def test_runtime_any_array(reg2d, arr):
    """register(): any array is registered (sane result) or refused with ImageError/TypeError."""
    from fnoreg_core.geometry import ImageError

    try:
        res = reg2d.register(fixed=arr, moving=arr)
    except (ImageError, TypeError):
        return
    assert np.all(np.isfinite(res.ddf_mm)) and res.moved.shape == np.squeeze(arr).shape[:2] or res.moved.ndim == 2


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["size_multiple", "min_size", "max_size", "static_size", "dims",
                                                "train_resolution", "intensity_norm", "name", "config", "inputs"]),
                               json_values, min_size=1, max_size=3))
def test_model_card_any_fields(tiny2d, changes):
    """A card with any JSON in its fields loads as a valid card or raises ModelCardError."""
    from fnoreg_export.model_card import ModelCard, ModelCardError

    values = json.loads(tiny2d[1].with_name(tiny2d[1].name + ".json").read_text())
    values.update(changes)
    try:
        card = ModelCard.from_dict(values)
    except ModelCardError:
        return
    size = card.nearest_accepted([40, 40])
    assert card.accepts(size) or card.static_size is not None


@SETTINGS
@given(raw=st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_register_any_bytes_as_image_csv_model(tmp_path_factory, tiny2d, pair2d_session, raw):
    """Random bytes as the moving image, the pairs CSV or the model: exit 2, no traceback, nothing written."""
    from fnoreg_export.register_cli import main

    d = tmp_path_factory.mktemp("bytes")
    for what in ("image", "csv", "model"):
        path = d / {"image": "moving.nii.gz", "csv": "pairs.csv", "model": "model.onnx"}[what]
        path.write_bytes(raw)
        argv = {"image": [pair2d_session["fixed"], path],
                "csv": ["--pairs", path],
                "model": [pair2d_session["fixed"], pair2d_session["moving"], "--model", path]}[what]
        if what != "model":
            argv += ["--model", tiny2d[1]]
        before = snapshot(d)
        code, _, err = call(main, [*argv, "-o", d / "out", "--refine", "off", "--affine", "none", "-q"])
        assert "Traceback" not in err
        if what == "csv" and code == 0:  # a CSV of random text can still name no readable file: never 0
            pytest.fail(f"accepted random CSV {raw!r}")
        assert code == 2, err
        assert snapshot(d) == before


@pytest.fixture(scope="module")
def pair2d_session(tmp_path_factory):
    from fuzz_helpers import write_nifti

    d = tmp_path_factory.mktemp("pair")
    return {"fixed": write_nifti(d / "fixed.nii.gz", smooth((32, 48), 0)),
            "moving": write_nifti(d / "moving.nii.gz", smooth((32, 48), 1))}


numbers = st.one_of(st.integers(-2**80, 2**80).map(str), st.floats().map(repr), st.text(max_size=6),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "", " 3", "1_000"]))


@SETTINGS
@given(option=st.sampled_from(["--lr", "--seed", "--workers", "--steps", "--batch-size", "--time-budget-min",
                               "--reg-weight", "--val-every", "--session-minutes"]), value=numbers)
def test_train_any_number(tmp_path_factory, option, value):
    """fnoreg-train's numeric options: parsed and validated before any work (exit 2) or accepted."""
    from fnoreg_core.train import TrainError, _parser, config_from_args

    try:
        args = _parser().parse_args([option, value, "--out", str(tmp_path_factory.getbasetemp() / "never")])
    except SystemExit as exc:
        assert exc.code == 2
        return
    try:
        cfg = config_from_args(args)
        cfg.validate()
    except TrainError:
        return
    for key in ("lr", "reg_weight", "time_budget_min"):
        v = getattr(cfg, key)
        assert v is None or math.isfinite(v)
    assert 0 <= cfg.seed < 2**32 and cfg.workers >= 0 and cfg.steps >= 1


@SETTINGS
@given(option=st.sampled_from(["--threads", "--refine-time", "--work-res", "--refine", "--affine"]), value=numbers)
def test_register_any_option_value(tmp_path_factory, tiny2d, pair2d_session, option, value):
    from fnoreg_export.register_cli import main

    out = tmp_path_factory.mktemp("opt") / "out"
    code, _, err = call(main, ["--model", tiny2d[1], pair2d_session["fixed"], pair2d_session["moving"], "-o", out,
                               option, value, *(["--refine", "off"] if option not in ("--refine", "--refine-time")
                                                else []), "-q"])
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        assert not out.exists()


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(["blend", "overlay_opacity", "label_opacity", "checker_tile",
                                                "grid_spacing", "window", "mode", "cmap"]),
                               json_values | st.tuples(st.floats(), st.floats()), min_size=1, max_size=3))
def test_gui_display_any_values(changes):
    """The GUI state takes display settings or refuses them with ValueError; what it keeps is finite."""
    from fnoreg_gui.state import ViewerState

    s = ViewerState()
    try:
        s.set_display(**changes)
    except (ValueError, TypeError):
        return
    for key in ("blend", "overlay_opacity", "label_opacity"):
        assert 0.0 <= getattr(s.display, key) <= 1.0
