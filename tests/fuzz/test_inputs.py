"""Nothing crashes (issue 18): malformed inputs at every entry point, table-driven.

Each row builds one hostile input the issue's hunt used (or one like it) in a fresh folder and runs
one entry point on it. CLIs: exit 2, a one-line ``PROG: error: ...`` and no traceback, no partial
output, no user file changed (:func:`fuzz_helpers.check_refused`). Runtime API: the documented exception
(``ImageError`` / ``TypeError`` / ``ModelCardError`` / ``BackendError``). GUI state: ``ValueError``
(``ImageError`` is one), shown by the window as a dialog.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from fuzz_helpers import call, check_refused, smooth, snapshot, write_nifti

FAST = ["--refine", "off", "--affine", "none", "--threads", "1", "-q"]


# ------------------------------------------------------------------------------------------------ zoo


def bad_image(kind: str, d: Path) -> Path:
    """One malformed image file in ``d`` (or a path that is not a file)."""
    p = d / f"bad_{kind}.nii.gz"
    rng = np.random.default_rng(1)
    if kind == "random_bytes":
        p.write_bytes(rng.bytes(400))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "gzip_of_junk":
        p.write_bytes(gzip.compress(b"not a nifti" * 40))
    elif kind == "truncated":
        write_nifti(p, smooth((32, 48)))
        raw = gzip.decompress(p.read_bytes())
        p.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif kind == "rgb":
        import nibabel as nib

        rgb = np.zeros((32, 48), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(p))
    elif kind == "one_d":
        write_nifti(p, smooth((64,)))
    elif kind == "four_d":
        write_nifti(p, np.ones((16, 16, 16, 3), np.float32))
    elif kind == "nan":
        img = smooth((32, 48))
        img[3, 4] = np.nan
        write_nifti(p, img)
    elif kind == "inf":
        img = smooth((32, 48))
        img[5, 5] = np.inf
        write_nifti(p, img)
    elif kind == "singular_affine":  # nibabel refuses to build one: write the sform by hand
        import nibabel as nib

        img = nib.Nifti1Image(smooth((32, 48)), None)
        img.header.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)
        img.header.set_qform(None, code=0)
        nib.save(img, str(p))
    elif kind == "tiny_2x2":
        write_nifti(p, np.ones((2, 2), np.float32))
    elif kind == "tiny_2x2x2":
        write_nifti(p, np.ones((2, 2, 2), np.float32))
    elif kind == "complex":
        write_nifti(p, smooth((32, 48)).astype(np.complex64))
    elif kind == "folder":
        p.mkdir()
    elif kind == "missing":
        pass
    elif kind == "text_suffix":
        p = d / "image.txt"
        p.write_text("hello")
    elif kind == "huge_header":
        import nibabel as nib

        hdr = nib.Nifti1Header()
        hdr.set_data_shape((30000, 30000, 30000))
        hdr.set_data_dtype(np.float32)
        p = d / "huge.nii"
        p.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 100)
    else:
        raise ValueError(kind)
    return p


IMAGE_KINDS = ["random_bytes", "empty", "gzip_of_junk", "truncated", "rgb", "one_d", "four_d", "nan", "inf",
               "singular_affine", "tiny_2x2", "tiny_2x2x2", "complex", "folder", "missing", "text_suffix",
               "huge_header"]

#: (a 2x2 label map is resampled in world space like any label map on its own grid: not an error)
LABEL_KINDS = [k for k in IMAGE_KINDS if k != "tiny_2x2"] + ["labels_float", "labels_int64_huge"]


def bad_labels(kind: str, d: Path) -> Path:
    p = d / f"labels_{kind}.nii.gz"
    if kind == "labels_float":
        return write_nifti(p, np.random.default_rng(0).random((32, 48)).astype(np.float32))
    if kind == "labels_int64_huge":
        lab = np.zeros((32, 48), np.int64)
        lab[4:10, 4:10] = 2**40
        return write_nifti(p, lab, header_dtype=np.int64)
    return bad_image(kind, d)


def onnx_variant(kind: str, d: Path, tiny: Path) -> Path:
    """A model file that is not a usable FNOReg export."""
    p = d / f"model_{kind}.onnx"
    card = json.loads(tiny.with_name(tiny.name + ".json").read_text())

    def with_card(changes):
        p.write_bytes(tiny.read_bytes())
        c = dict(card, **changes)
        p.with_name(p.name + ".json").write_text(json.dumps(c))
        return p

    if kind == "random_bytes":
        p.write_bytes(np.random.default_rng(2).bytes(1000))
        p.with_name(p.name + ".json").write_text(json.dumps(card))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "no_card":
        p.write_bytes(tiny.read_bytes())
    elif kind == "card_not_utf8":
        p.write_bytes(tiny.read_bytes())
        p.with_name(p.name + ".json").write_bytes(b"\xff\xfe\x00{" + bytes(range(256)))
    elif kind == "card_nested":
        p.write_bytes(tiny.read_bytes())
        p.with_name(p.name + ".json").write_text("[" * 100000 + "]" * 100000)
    elif kind == "card_list":
        p.write_bytes(tiny.read_bytes())
        p.with_name(p.name + ".json").write_text("[1, 2, 3]")
    elif kind == "size_multiple_0":
        with_card({"size_multiple": 0})
    elif kind == "size_multiple_str":
        with_card({"size_multiple": "16"})
    elif kind == "min_size_abc":
        with_card({"min_size": "abc"})
    elif kind == "min_size_negative":
        with_card({"min_size": [-4, -4]})
    elif kind == "static_size_0":
        with_card({"static_size": [0, 0]})
    elif kind == "static_size_huge":
        with_card({"static_size": [10**9, 10**9]})
    elif kind == "intensity_unknown":
        with_card({"intensity_norm": {"method": "magic"}})
    elif kind == "dims_7":
        with_card({"dims": 7})
    elif kind == "dims_str":
        with_card({"dims": "two"})
    elif kind in ("output_nan", "output_wrong_shape", "inputs_float64"):
        _graph(kind, p)
        p.with_name(p.name + ".json").write_text(json.dumps(card))
    elif kind == "folder":
        p.mkdir()
    elif kind == "pt_zero_bytes":
        p = d / "model.pt"
        p.write_bytes(b"")
    else:
        raise ValueError(kind)
    return p


def _graph(kind: str, path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    elem = TensorProto.DOUBLE if kind == "inputs_float64" else TensorProto.FLOAT
    shape = [1, 1, "H", "W"]
    inputs = [helper.make_tensor_value_info(n, elem, shape) for n in ("moving", "fixed")]
    if kind == "output_wrong_shape":
        nodes = [helper.make_node("Identity", ["moving"], ["ddf_norm"])]
        out_shape = [1, 1, "H", "W"]
    else:
        nodes = [helper.make_node("Concat", ["moving", "fixed"], ["both"], axis=1),
                 helper.make_node("Sub", ["both", "both"], ["zero"]),
                 helper.make_node("Div", ["zero", "zero"] if kind == "output_nan" else ["both", "both"],
                                  ["ddf_norm"])]
        out_shape = [1, 2, "H", "W"]
    out = helper.make_tensor_value_info("ddf_norm", elem, out_shape)
    model = helper.make_model(helper.make_graph(nodes, "bad", inputs, [out]),
                              opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.save(model, str(path))


MODEL_KINDS = ["random_bytes", "empty", "no_card", "card_not_utf8", "card_nested", "card_list", "size_multiple_0",
               "size_multiple_str", "min_size_abc", "min_size_negative", "static_size_0", "static_size_huge",
               "intensity_unknown", "dims_7", "dims_str", "output_nan", "output_wrong_shape", "inputs_float64",
               "folder", "pt_zero_bytes"]


# ------------------------------------------------------------------------------------------------ fnoreg-register


def _register(argv, tmp_path, allow_new=()):
    from fnoreg_export.register_cli import main

    before = snapshot(tmp_path)
    code, _, err = call(main, argv)
    check_refused(code, err, before, tmp_path, allow_new=allow_new)


@pytest.mark.parametrize("role", ["fixed", "moving"])
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_register_bad_image(tmp_path, tiny2d, pair2d, role, kind):
    files = dict(pair2d)
    files[role] = bad_image(kind, tmp_path / "in")
    _register(["--model", tiny2d[1], files["fixed"], files["moving"], "-o", tmp_path / "out", *FAST], tmp_path)


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_register_bad_labels(tmp_path, tiny2d, pair2d, kind):
    bad = bad_labels(kind, tmp_path / "in")
    _register(["--model", tiny2d[1], pair2d["fixed"], pair2d["moving"], "--moving-labels", bad,
               "--fixed-labels", pair2d["fixed_labels"], "-o", tmp_path / "out", *FAST], tmp_path)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_register_bad_model(tmp_path, tiny2d, pair2d, kind):
    model = onnx_variant(kind, tmp_path / "in", tiny2d[1])
    _register(["--model", model, pair2d["fixed"], pair2d["moving"], "-o", tmp_path / "out", *FAST], tmp_path)


OPTIONS = {
    "threads_0": ["--threads", "0"], "threads_neg": ["--threads", "-1"], "threads_huge": ["--threads", "100000"],
    "threads_text": ["--threads", "many"], "refine_time_nan": ["--refine-time", "nan"],
    "refine_time_neg": ["--refine-time", "-1"], "refine_time_inf": ["--refine-time", "inf"],
    "work_res_junk": ["--work-res", "big"], "work_res_zero": ["--work-res", "0x0"],
    "work_res_huge": ["--work-res", "99999x99999"], "refine_junk": ["--refine", "lots"],
    "refine_neg": ["--refine", "-5"], "affine_missing": ["--affine", "/nonexistent/affine.txt"],
    "backend_junk": ["--backend", "quantum"], "labels_without_moving": ["--fixed-labels", "X"],
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_register_bad_option(tmp_path, tiny2d, pair2d, name):
    argv = [a if a != "X" else pair2d["fixed_labels"] for a in OPTIONS[name]]
    fast = list(FAST)
    for opt in ("--threads", "--refine", "--affine"):
        if opt in argv:
            i = fast.index(opt)
            del fast[i:i + 2]
    _register(["--model", tiny2d[1], pair2d["fixed"], pair2d["moving"], "-o", tmp_path / "out", *argv, *fast],
              tmp_path)


def test_register_affine_file_of_junk(tmp_path, tiny2d, pair2d):
    junk = tmp_path / "in" / "affine.txt"
    junk.write_bytes(np.random.default_rng(3).bytes(300))
    _register(["--model", tiny2d[1], pair2d["fixed"], pair2d["moving"], "-o", tmp_path / "out",
               "--affine", junk, "--refine", "off", "-q"], tmp_path)


@pytest.mark.parametrize("kind", ["file", "under_file", "dangling", "long_name", "long_path"])
def test_register_bad_output(tmp_path, tiny2d, pair2d, kind):
    (tmp_path / "afile").write_text("keep")
    out = {"file": tmp_path / "afile", "under_file": tmp_path / "afile" / "out", "dangling": tmp_path / "dangling",
           "long_name": tmp_path / ("o" * 300), "long_path": tmp_path / "/".join(["d" * 200] * 25)}[kind]
    if kind == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    _register(["--model", tiny2d[1], pair2d["fixed"], pair2d["moving"], "-o", out, *FAST], tmp_path)


CSVS = {
    "empty": b"", "header_only": b"moving,fixed\n", "no_columns": b"a,b\n1,2\n", "not_utf8": b"moving,fixed\n\xff\xfe,\x80\n",
    "binary": bytes(range(256)) * 4, "duplicate_names": b"moving,fixed,name\nM,F,a\nM,F,a\n",
    "empty_cell": b"moving,fixed\n,F\n", "missing_file": b"moving,fixed\nnope.nii.gz,F\n",
    "bad_image_row": b"moving,fixed\nBAD,F\n", "nan_image_row": b"moving,fixed\nNAN,F\n",
    "truncated_row": b"moving,fixed\nTRUNC,F\n", "mixed_dims": b"moving,fixed\nM,F\nM3,F3\n",
}


@pytest.mark.parametrize("name", sorted(CSVS))
def test_register_bad_pairs_csv(tmp_path, tiny2d, pair2d, name):
    d = tmp_path / "in"
    subs = {b"M3": write_nifti(d / "m3.nii.gz", smooth((16, 16, 16))), b"F3": write_nifti(d / "f3.nii.gz",
                                                                                          smooth((16, 16, 16))),
            b"M": pair2d["moving"], b"F": pair2d["fixed"], b"BAD": bad_image("random_bytes", d),
            b"NAN": bad_image("nan", d), b"TRUNC": bad_image("truncated", d)}
    text = CSVS[name]
    for key in (b"M3", b"F3", b"BAD", b"NAN", b"TRUNC", b"M", b"F"):
        text = text.replace(key, str(subs[key]).encode())
    csv = d / "pairs.csv"
    csv.write_bytes(text)
    _register(["--model", tiny2d[1], "--pairs", csv, "-o", tmp_path / "out", *FAST], tmp_path)


# ------------------------------------------------------------------------------------------------ fnoreg-eval


def _eval(argv, tmp_path):
    from fnoreg_export.eval_cli import main

    before = snapshot(tmp_path)
    code, _, err = call(main, argv)
    check_refused(code, err, before, tmp_path)


EVAL = {
    "data_junk": ["--dims", "2", "--data", "nonsense"], "pairs_missing": ["--dims", "2", "--data", "pairs:/no/p.csv"],
    "max_pairs_0": ["--dims", "2", "--data", "synth", "--max-pairs", "0"],
    "max_pairs_neg": ["--dims", "2", "--data", "synth", "--max-pairs", "-1"],
    "res_junk": ["--dims", "2", "--data", "synth", "--res", "axb"],
    "res_huge": ["--dims", "2", "--data", "synth", "--res", "99999x99999"],
    "res_1": ["--dims", "2", "--data", "synth", "--res", "1x1"],
    "threads_0": ["--dims", "2", "--data", "synth", "--threads", "0"],
    "threads_huge": ["--dims", "2", "--data", "synth", "--threads", "100000"],
    "dims_4": ["--dims", "4", "--data", "synth"], "baseline_junk": ["--dims", "2", "--data", "synth",
                                                                      "--baselines", "magic"],
    "no_model_no_dims": ["--data", "synth"],
}


@pytest.mark.parametrize("name", sorted(EVAL))
def test_eval_bad_option(tmp_path, name):
    _eval([*EVAL[name], "--out", tmp_path / "eval"], tmp_path)


@pytest.mark.parametrize("kind", ["random_bytes", "empty", "output_nan", "card_nested", "min_size_abc",
                                  "pt_zero_bytes", "folder"])
def test_eval_bad_model(tmp_path, tiny2d, kind):
    model = onnx_variant(kind, tmp_path / "in", tiny2d[1]) if (tmp_path / "in").mkdir() is None else None
    _eval([model, "--data", "synth", "--res", "32x48", "--max-pairs", "1", "--out", tmp_path / "eval"], tmp_path)


@pytest.mark.parametrize("kind", ["truncated", "nan", "random_bytes", "rgb"])
def test_eval_bad_pairs(tmp_path, tiny2d, pair2d, kind):
    bad = bad_image(kind, tmp_path / "in")
    csv = tmp_path / "in" / "pairs.csv"
    csv.write_text(f"moving,fixed\n{bad},{pair2d['fixed']}\n")
    _eval([tiny2d[1], "--data", f"pairs:{csv}", "--out", tmp_path / "eval"], tmp_path)


# ------------------------------------------------------------------------------------------------ fnoreg-train


TRAIN = {
    "lr_nan": ["--lr", "nan"], "lr_inf": ["--lr", "inf"], "lr_neg": ["--lr", "-1"], "lr_zero": ["--lr", "0"],
    "seed_neg": ["--seed", "-1"], "seed_huge": ["--seed", str(2**70)], "workers_neg": ["--workers", "-1"],
    "steps_0": ["--steps", "0"], "batch_0": ["--batch-size", "0"], "budget_nan": ["--time-budget-min", "nan"],
    "budget_0": ["--time-budget-min", "0"], "session_nan": ["--session-minutes", "nan"],
    "hidden_neg": ["--model-option", "hidden_channels=-4"], "hidden_huge": ["--model-option", "hidden_channels=100000"],
    "option_no_eq": ["--model-option", "hidden_channels"], "option_unknown": ["--model-option", "wings=3"],
    "train_res_junk": ["--train-res", "big"], "train_res_1": ["--train-res", "1x1"],
    "train_res_huge": ["--train-res", "99999x99999"], "data_junk": ["--data", "nonsense"],
    "dims_5": ["--dims", "5"], "device_junk": ["--device", "abacus"], "resume_nothing": ["--resume"],
    "config_missing": ["--config", "/no/such.yaml"], "config_binary": ["--config", "BIN"],
    "config_list": ["--config", "LIST"], "config_types": ["--config", "TYPES"], "config_unknown": ["--config", "UNK"],
    "resume_zero_byte": ["--resume", "ZERO"],
}


@pytest.mark.parametrize("name", sorted(TRAIN))
def test_train_bad_option(tmp_path, name):
    from fnoreg_core.train import main

    d = tmp_path / "in"
    d.mkdir()
    configs = {"BIN": bytes(range(256)) * 3, "LIST": b"- 1\n- 2\n", "TYPES": b"steps: abc\nlr: [1, 2]\n",
               "UNK": b"wings: 3\n"}
    argv = []
    out = tmp_path / "run"
    for a in TRAIN[name]:
        if a in configs:
            (d / "c.yaml").write_bytes(configs[a])
            a = d / "c.yaml"
        elif a == "ZERO":
            out.mkdir()
            (out / "last.pt").write_bytes(b"")
            continue
        argv.append(a)
    before = snapshot(tmp_path)
    code, _, err = call(main, ["--preset", "2d-cpu", "--data", "synth", "--train-res", "32x32", "--steps", "1",
                               "--out", out, "--no-progress", *argv])
    check_refused(code, err, before, tmp_path)


# ------------------------------------------------------------------------------------------------ fnoreg-export


EXPORT = {
    "opset_99": ["--opset", "99"], "opset_5": ["--opset", "5"], "res_junk": ["--res", "big"],
    "res_zero": ["--res", "0x0"], "res_huge": ["--res", "99999x99999"], "res_below_min": ["--no-dynamic", "--res", "2x2"],
    "res_3d_for_2d": ["--res", "32x32x32"], "max_size_neg": ["--max-size", "-1"],
    "triton_batch_neg": ["--triton-max-batch", "-1"], "out_file": ["--out", "FILE"],
    "out_under_file": ["--out", "FILE/x"], "triton_file": ["--triton", "FILE"],
}


@pytest.mark.parametrize("name", sorted(EXPORT))
def test_export_bad_option(tmp_path, tiny2d, name):
    from fnoreg_core.checkpoint import save_checkpoint
    from fnoreg_export.cli import main

    ckpt = save_checkpoint(tmp_path / "m.pt", tiny2d[0], step=0)
    (tmp_path / "afile").write_text("keep")
    argv = [str(a).replace("FILE", str(tmp_path / "afile")) for a in EXPORT[name]]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "exp")]
    before = snapshot(tmp_path)
    code, _, err = call(main, [ckpt, *argv])
    check_refused(code, err, before, tmp_path)


@pytest.mark.parametrize("kind", ["zero", "random", "text", "missing", "folder", "pickle_of_list"])
def test_export_bad_checkpoint(tmp_path, kind):
    from fnoreg_export.cli import main

    p = tmp_path / "m.pt"
    if kind == "zero":
        p.write_bytes(b"")
    elif kind == "random":
        p.write_bytes(np.random.default_rng(4).bytes(5000))
    elif kind == "text":
        p.write_text("hello")
    elif kind == "folder":
        p.mkdir()
    elif kind == "pickle_of_list":
        import torch

        torch.save([1, 2, 3], p)
    before = snapshot(tmp_path)
    code, _, err = call(main, [p, "--out", tmp_path / "exp"])
    check_refused(code, err, before, tmp_path)


# ------------------------------------------------------------------------------------------------ fnoreg-data


@pytest.mark.parametrize("case", ["demo_no_templates", "templates_out_file", "demo_out_file",
                                  "templates_bad_manifest"])
def test_data_bad_input(tmp_path, case, monkeypatch):
    from fnoreg_core.data.cli import main

    monkeypatch.setenv("FNOREG_DATA", str(tmp_path / "data"))
    (tmp_path / "afile").write_text("keep")
    argv = {"demo_no_templates": ["demo", "--templates", tmp_path / "none", "--out", tmp_path / "d"],
            "templates_out_file": ["templates", "--out", tmp_path / "afile"],
            "demo_out_file": ["demo", "--out", tmp_path / "afile"],
            "templates_bad_manifest": ["demo", "--templates", tmp_path / "tpl", "--out", tmp_path / "d"]}[case]
    if case == "templates_bad_manifest":
        (tmp_path / "tpl").mkdir()
        (tmp_path / "tpl" / "manifest.json").write_text('{"files": 3}')
    before = snapshot(tmp_path)
    code, _, err = call(main, argv)
    check_refused(code, err, before, tmp_path)


# ------------------------------------------------------------------------------------------------ runtime API


@pytest.fixture(scope="module")
def reg2d(tiny2d):
    from fnoreg_export.runtime import Registrator

    return Registrator.load(tiny2d[1], backend="onnxruntime-cpu", threads=1)


def _arrays():
    img = smooth((32, 48))
    nan = img.copy()
    nan[0, 0] = np.nan
    return {
        "none": None, "strings": [["a", "b"], ["c", "d"]], "object": np.array([[object()] * 20] * 20),
        "complex": img.astype(np.complex64), "one_d": np.ones(50, np.float32), "four_d": np.ones((4, 4, 4, 3)),
        "tiny": np.ones((2, 2), np.float32), "below_min": np.ones((8, 8), np.float32), "nan": nan,
        "inf": np.where(img > 50, np.inf, img), "three_d": np.ones((16, 16, 16), np.float32), "path": "fixed.nii.gz",
        "dict": {"data": img}, "bytes": b"\x00" * 64, "empty": np.zeros((0, 10), np.float32),
    }


@pytest.mark.parametrize("name", sorted(_arrays()))
def test_runtime_bad_arrays(reg2d, name):
    from fnoreg_core.geometry import ImageError

    bad = _arrays()[name]
    with pytest.raises((ImageError, TypeError)):
        reg2d.register(fixed=bad, moving=smooth((32, 48), 1))
    with pytest.raises((ImageError, TypeError)):
        reg2d.register(fixed=smooth((32, 48), 1), moving=bad)


@pytest.mark.parametrize("affine", ["nan", "singular", "perspective", "shape", "text"])
def test_runtime_bad_affines(reg2d, affine):
    from fnoreg_core.geometry import ImageError

    aff = {"nan": np.full((4, 4), np.nan), "singular": np.diag([1.0, 0.0, 1.0, 1.0]),
           "perspective": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.1, 0, 0, 1.0]]),
           "shape": np.eye(5), "text": [["a"] * 4] * 4}[affine]
    with pytest.raises((ImageError, TypeError)):
        reg2d.register(fixed=smooth((32, 48)), moving=smooth((32, 48), 1), fixed_affine=aff)


@pytest.mark.parametrize("kind", ["labels_float", "labels_int64_huge", "labels_nan", "labels_3d"])
def test_runtime_bad_labels(reg2d, kind):
    from fnoreg_core.geometry import ImageError
    from fnoreg_export.runtime import warp_labels

    result = reg2d.register(fixed=smooth((32, 48)), moving=smooth((32, 48), 1))
    lab = {"labels_float": np.random.default_rng(0).random((32, 48)),
           "labels_int64_huge": np.full((32, 48), 2**40, np.int64),
           "labels_nan": np.full((32, 48), np.nan), "labels_3d": np.ones((8, 8, 8), np.int16)}[kind]
    with pytest.raises((ImageError, TypeError)):
        warp_labels(lab, result)


def test_gui_float_tiff_as_labels(tmp_path):
    from PIL import Image

    from fnoreg_gui.volume import load_volume

    p = tmp_path / "lab.tiff"
    Image.fromarray(np.random.default_rng(0).random((32, 48)).astype(np.float32)).save(p)
    with pytest.raises(ValueError, match="label"):
        load_volume(p, labels=True)


@pytest.mark.parametrize("kind", [k for k in MODEL_KINDS if k != "pt_zero_bytes"])
def test_runtime_bad_models(tmp_path, tiny2d, kind):
    from fnoreg_core.geometry import ImageError
    from fnoreg_export.model_card import ModelCardError
    from fnoreg_export.runtime import BackendError, Registrator

    (tmp_path / "in").mkdir()
    model = onnx_variant(kind, tmp_path / "in", tiny2d[1])
    with pytest.raises((ModelCardError, BackendError, ImageError)):
        reg = Registrator.load(model, backend="onnxruntime-cpu", threads=1)
        reg.register(fixed=smooth((32, 48)), moving=smooth((32, 48), 1))


# ------------------------------------------------------------------------------------------------ GUI state


@pytest.mark.parametrize("kind", [k for k in IMAGE_KINDS if k != "tiny_2x2"] + ["png_junk", "tiff_nan", "name_300"])
def test_gui_load_bad_image(tmp_path, pair2d, kind):
    """(A 2x2 image loads: the model's minimum is checked at Register, test_gui_model_fit_checks.)"""
    from fnoreg_gui.state import ViewerState

    d = tmp_path / "in"
    if kind == "png_junk":
        bad = d / "x.png"
        bad.write_bytes(b"\x89PNG junk")
    elif kind == "tiff_nan":
        from PIL import Image

        bad = d / "nan.tiff"
        arr = smooth((32, 48))
        arr[1, 1] = np.nan
        Image.fromarray(arr).save(bad)
    elif kind == "name_300":
        bad = d / ("n" * 300 + ".nii.gz")
    else:
        bad = bad_image(kind, d)
    s = ViewerState()
    with pytest.raises(ValueError):  # ImageError is a ValueError; the window shows it in a dialog
        s.load_pair(pair2d["fixed"], bad)
    with pytest.raises(ValueError):
        s.load_pair(bad, pair2d["moving"])


@pytest.mark.parametrize("change", [dict(blend=float("nan")), dict(overlay_opacity=float("inf")),
                                    dict(label_opacity="abc"), dict(checker_tile=float("nan")),
                                    dict(grid_spacing=None), dict(window=(1.0, float("nan"))), dict(window=(3, 1)),
                                    dict(mode="nope"), dict(cmap=42), dict(colour="red")])
def test_gui_bad_display_settings(pair2d, change):
    from fnoreg_gui.state import ViewerState

    s = ViewerState()
    s.load_pair(pair2d["fixed"], pair2d["moving"])
    before = dict(vars(s.display))
    with pytest.raises(ValueError):
        s.set_display(**change)
    assert dict(vars(s.display)) == before


@pytest.mark.parametrize("kwargs", [dict(affine_mode="warp"), dict(refine_iterations=-1),
                                    dict(refine_iterations=float("nan")), dict(refine_iterations=10**9)])
def test_gui_bad_pipeline(kwargs):
    from fnoreg_gui.state import ViewerState

    with pytest.raises(ValueError):
        ViewerState().set_pipeline(**kwargs)


@pytest.mark.parametrize("kind", ["no_train_resolution", "min_size_abc", "dims_7", "below_min"])
def test_gui_model_fit_checks(tmp_path, tiny2d, pair2d, kind):
    from fnoreg_export.model_card import ModelCardError, read_card
    from fnoreg_gui.pipeline import check_model_fits
    from fnoreg_gui.state import ViewerState

    card_path = tiny2d[1].with_name(tiny2d[1].name + ".json")
    values = json.loads(card_path.read_text())
    d = tmp_path / "m"
    d.mkdir()
    model = d / "m.onnx"
    model.write_bytes(tiny2d[1].read_bytes())
    if kind == "no_train_resolution":
        values.pop("train_resolution")
    elif kind == "min_size_abc":
        values["min_size"] = "abc"
    elif kind == "dims_7":
        values["dims"] = 7
    else:
        values["min_size"] = [64, 64]
    (d / "m.onnx.json").write_text(json.dumps(values))
    s = ViewerState()
    s.load_pair(pair2d["fixed"], pair2d["moving"])
    try:
        card = read_card(model)
    except ModelCardError:
        return  # refused at load: the window shows it in a dialog
    if kind == "no_train_resolution":
        check_model_fits(card, s.fixed)  # optional field: must not crash
        return
    with pytest.raises(ValueError):
        check_model_fits(card, s.fixed)
