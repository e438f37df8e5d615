"""pytest-qt, offscreen: open the demo pair, register in the worker, switch every mode, slice, save."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QSettings  # noqa: E402

from fnoreg_gui.app import build_window, main  # noqa: E402
from fnoreg_gui.main_window import MainWindow  # noqa: E402
from fnoreg_gui.state import MODES, OVERLAYS  # noqa: E402


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    return w


def _register(qtbot, win):
    assert win.controls.register_btn.isEnabled()
    win.controls.register_btn.click()
    assert win.worker is not None and not win.controls.register_btn.isEnabled() and win.controls.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: win.worker is None, timeout=120000)


def test_demo_2d_register_modes_save(qtbot, win, model2d, tmp_path):
    assert win.open_demo("2d")
    assert len(win.views) == 1 and win.state.shape == (160, 192)
    assert win.set_model(model2d)
    assert "tiny-fno-2d" in win.controls.card_text.toPlainText()
    win.controls.backend_combo.setCurrentText("onnxruntime-cpu")
    _register(qtbot, win)
    assert not win.errors, win.errors
    assert win.state.result is not None and "folding" in win.info.metrics_label.text()
    n = len(win.state.dice_table())
    assert n >= 5 and win.info.dice_table.rowCount() == n + 1 and win.info.dice_table.item(n, 2).text() != ""
    for i, mode in enumerate(MODES):
        win.controls.mode_combo.setCurrentIndex(i)
        assert win.state.display.mode == mode
        for j, ov in enumerate(OVERLAYS):
            win.controls.overlay_combo.setCurrentIndex(j)
            assert win.state.display.overlay == ov
            shown = [p for p in win.views[0].panels if not p.isHidden()]
            assert len(shown) == (3 if mode == "side_by_side" else 1)     # each panel its own view
            for p in shown:
                img = p.image.image
                assert img is not None and img.dtype == np.uint8 and img.shape[:2] == (192, 160)
    win.controls.labels_combo.setCurrentText("contour")
    win.controls.tile_spin.setValue(5)
    win.controls.grid_spin.setValue(4)
    win.controls.blend_slider.setValue(30)
    win.controls.overlay_slider.setValue(80)
    assert win.state.display.checker_tile == 5 and win.state.display.blend == pytest.approx(0.3)
    assert win.state.display.overlay_opacity == pytest.approx(0.8) and win.state.display.label_opacity == 0.45
    win.controls.auto_window.setChecked(False)
    win.controls.win_lo.setValue(0.1)
    win.controls.win_hi.setValue(0.6)
    assert win.state.display.window == pytest.approx((0.1, 0.6))
    out = tmp_path / "out"
    written = win.save_to(out)
    assert {p.name for p in written} == {"moved.nii.gz", "warp.nii.gz", "jacobian.nii.gz", "moved_labels.nii.gz",
                                         "affine.txt", "warp_deformable.nii.gz", "report.json"}
    assert all(p.stat().st_size > 0 for p in written)
    assert win.save_screenshot(out / "shot.png") and (out / "shot.png").stat().st_size > 0
    assert not win.errors, win.errors


def _start(qtbot, tmp_path, argv):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = build_window(argv, settings=settings)
    qtbot.addWidget(w)
    w.show()
    return w


def test_startup_registers_demo_3d_with_bundled_model(qtbot, tmp_path, monkeypatch, bundled_dir):
    """Plain `fnoreg-gui`: the 3-D 2 mm demo pair and the bundled 3-D model, registered once shown."""
    monkeypatch.setenv("FNOREG_MODELS", str(bundled_dir))
    win = _start(qtbot, tmp_path, ["--backend", "onnxruntime-cpu"])
    assert win.state.model_path == bundled_dir / "fnoreg3d" / "model.onnx"
    assert win.state.shape == (80, 96, 112) and [v.axis for v in win.views] == [0, 1, 2]
    assert win.view_grid.itemAtPosition(1, 1).widget().widget() is win.info     # the fourth quadrant
    qtbot.waitUntil(lambda: win.state.result is not None and win.worker is None, timeout=120000)
    assert not win.errors, win.errors
    assert "registered in" in win.info.metrics_label.text() and "folding" in win.info.metrics_label.text()
    assert win.info.dice_table.rowCount() == 13 and "Thalamus" in win.info.dice_table.item(0, 0).text()
    sag, cor, ax = win.views
    ax.slider.setValue(10)
    assert win.state.slices[2] == 10
    sag._wheel(+1)
    assert win.state.slices[0] == 41
    ax._clicked(5.5, 3.5)                         # click in the axial view moves x and y, keeps z
    assert win.state.slices == [80 - 1 - 5, 96 - 1 - 3, 10]   # radiological: column 5 is 5 voxels from R
    assert cor.slider.value() == 92               # the coronal slider follows the crosshair
    for i in range(len(MODES)):
        win.controls.mode_combo.setCurrentIndex(i)
        for j in range(len(OVERLAYS)):
            win.controls.overlay_combo.setCurrentIndex(j)
            assert win.info.legend_box.isVisible() or win.state.display.mode == "side_by_side"
    assert max(v.last_redraw_ms for v in win.views) < 500


def test_startup_without_bundled_model_says_how_to_choose(qtbot, tmp_path):
    win = _start(qtbot, tmp_path, [])
    qtbot.wait(50)
    assert win.state.shape == (80, 96, 112) and win.state.model_path is None and win.worker is None
    assert not win.errors                         # not an error dialog: a non-blocking notice
    assert win.controls.notice_label.isVisible() and "Open model" in win.controls.notice_label.text()
    assert "FNOREG_MODELS" in win.notices[-1]


def test_startup_with_model_given_registers(qtbot, tmp_path, demo_dir, model2d):
    d = demo_dir / "2d"
    win = _start(qtbot, tmp_path, ["--fixed", str(d / "fixed.nii.gz"), "--moving", str(d / "moving.nii.gz"),
                                   "--model", str(model2d), "--backend", "onnxruntime-cpu"])
    qtbot.waitUntil(lambda: win.state.result is not None and win.worker is None, timeout=120000)
    assert win.state.model_path == model2d and not win.errors
    win2 = _start(qtbot, tmp_path, ["--demo", "2d", "--model", str(model2d), "--no-register"])
    qtbot.wait(50)
    assert win2.worker is None and win2.state.result is None


def test_bundled_models_menu_and_combo(qtbot, tmp_path, monkeypatch, bundled_dir, model2d):
    monkeypatch.setenv("FNOREG_MODELS", str(bundled_dir))
    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    assert [a.text() for a in win.bundled_menu.actions()] == ["fnoreg2d", "fnoreg3d"]
    win.bundled_menu.actions()[1].trigger()
    assert win.state.model_path == bundled_dir / "fnoreg3d" / "model.onnx"
    assert win.controls.model_combo.currentText() == "fnoreg3d (bundled)" and "tiny-fno-3d" in win.controls.card_text.toPlainText()
    assert win.open_demo("2d")                   # 2-D images: the bundled 2-D model follows
    assert win.state.model_path == bundled_dir / "fnoreg2d" / "model.onnx"
    win.controls.model_combo.setCurrentIndex(1)
    win.controls.model_combo.activated.emit(1)
    assert win.state.card.dims == 3
    assert win.set_model(model2d)                # a model the user opened joins the list and is kept
    assert win.controls.model_combo.currentText() == model2d.name and win.controls.model_combo.count() == 3
    assert win.open_demo("3d_2mm") and win.state.model_path == model2d


def test_unreadable_files_are_dialogs(qtbot, win, tmp_path, demo_dir):
    assert not win.open_pair(tmp_path / "missing.nii.gz", demo_dir / "2d" / "moving.nii.gz")
    assert "does not exist" in win.errors[-1][1]
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not a nifti at all")
    assert not win.open_pair(junk, demo_dir / "2d" / "moving.nii.gz")
    assert win.errors[-1][0] == "Cannot open the images" and "junk.nii.gz" in win.errors[-1][1]
    png = tmp_path / "bad.png"
    png.write_bytes(b"not a png")
    assert not win.open_file("fixed", png) and "not a readable image" in win.errors[-1][1]
    assert not win.open_file("fixed", tmp_path / "notes.txt") and "unsupported file type" in win.errors[-1][1]
    assert win.state.fixed is None


def test_wrong_dims_are_dialogs(qtbot, win, tmp_path, demo_dir, model3d):
    import nibabel as nib

    assert not win.open_pair(demo_dir / "2d" / "fixed.nii.gz", demo_dir / "3d_2mm" / "moving.nii.gz")
    assert "open two 2-D or two 3-D images" in win.errors[-1][1]
    four = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.float32), np.eye(4)), str(four))
    assert not win.open_pair(four, four) and "4-D" in win.errors[-1][1]
    assert win.open_demo("2d") and win.set_model(model3d)
    win.start_registration()                      # caught before any work starts
    assert win.worker is None and "3-D but the images are 2-D" in win.errors[-1][1]
    assert "choose a 2-D model" in win.errors[-1][1]


def test_different_grids_offer_resampling(qtbot, win, demo_dir):
    d2, d1 = demo_dir / "3d_2mm", demo_dir / "3d_1mm"
    assert win.open_pair(d2 / "fixed.nii.gz", d1 / "moving.nii.gz", d2 / "fixed_labels.nii.gz",
                         d1 / "moving_labels.nii.gz")
    box = win.last_question
    assert box is not None and "different grids" in box.windowTitle() and "160x192x224" in box.text()
    assert win.state.moved_or_moving() is None    # nothing to compare yet
    box.yes_button.click()
    st = win.state
    assert st.moving.shape == st.fixed.shape == (80, 96, 112) and st.same_grid
    assert st.moving_labels.shape == st.fixed.shape and st.dice_table()[0][1] is not None
    win.controls.mode_combo.setCurrentIndex(1)             # red-cyan now shows both
    assert win.views[0].panels[0].image.image[..., 1].any()
    assert not win.errors, win.errors


def test_non_fnoreg_models_are_dialogs(qtbot, win, tmp_path, demo_dir):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"junk")
    assert not win.set_model(bad) and win.errors[-1][0] == "Cannot use this model"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(plain))
    assert not win.set_model(plain) and "not an FNOReg export" in win.errors[-1][1]
    assert not win.set_model(demo_dir / "2d" / "fixed.nii.gz") and "not an exported model" in win.errors[-1][1]
    assert not win.set_model(tmp_path / "missing.onnx") and "does not exist" in win.errors[-1][1]
    assert win.state.model_path is None


def test_resolution_below_the_model_minimum(qtbot, win, tmp_path, model2d):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("f.png", "m.png"):
        Image.fromarray((rng.random((12, 20)) * 255).astype(np.uint8)).save(tmp_path / name)
    assert win.open_pair(tmp_path / "f.png", tmp_path / "m.png") and win.set_model(model2d)
    win.start_registration()
    assert win.worker is None
    title, msg = win.errors[-1]
    assert title == "Cannot register these images" and "below the minimum" in msg and "16x16" in msg


def test_nothing_to_register_or_save(qtbot, win, tmp_path):
    win.start_registration()
    assert "open a fixed and a moving image" in win.errors[-1][1]
    assert win.open_demo("2d")
    win.start_registration()
    assert "choose a model first" in win.errors[-1][1]
    assert win.save_to(tmp_path / "o") == [] and "press Register" in win.errors[-1][1]


def test_model_of_wrong_dims_reports(qtbot, win, model3d):
    """The worker checks too (a model chosen while its card could not be read ahead)."""
    assert win.open_demo("2d") and win.set_model(model3d)
    win.state.card = None
    win.controls.backend_combo.setCurrentText("onnxruntime-cpu")
    _register(qtbot, win)
    assert win.state.result is None
    assert "3-D but the images are 2-D" in win.errors[-1][1]


def test_cancel_drops_result(qtbot, win, model2d):
    assert win.open_demo("2d") and win.set_model(model2d)
    win.controls.backend_combo.setCurrentText("onnxruntime-cpu")
    win.start_registration()
    win.cancel_registration()
    qtbot.waitUntil(lambda: win.worker is None, timeout=120000)
    assert win.state.result is None and win.controls.progress_label.text().startswith("cancelled")


def test_drop_and_recent(qtbot, win, demo_dir):
    d = demo_dir / "2d"
    win.open_dropped([str(d / "fixed.nii.gz"), str(d / "moving.nii.gz")])
    assert win.state.fixed is not None and win.state.moving is not None
    assert len(win.recent_menu.actions()) >= 2


def test_main_rejects_half_pair(capsys):
    assert main(["--fixed", "a.nii.gz"]) == 2


def test_widgets_follow_state(qtbot, win):
    assert win.open_demo("3d_2mm")
    assert [v.axis for v in win.views] == [0, 1, 2]
    assert win.open_demo("2d")
    qtbot.wait(10)
    assert [v.axis for v in win.views] == [None] and win.view_grid.count() == 2   # the view + the info panel
    win.state.set_display(mode="difference", overlay="jacobian", label_mode="fill", checker_tile=7)
    assert win.controls.mode_combo.currentData() == "difference" and win.controls.overlay_combo.currentData() == "jacobian"
    assert win.controls.labels_combo.currentText() == "fill" and win.controls.tile_spin.value() == 7


def test_no_display_is_one_line_and_exit_2(monkeypatch, capsys):
    """Issue 21: without a display fnoreg-gui says so (exit 2) instead of Qt aborting (exit 134)."""
    from fnoreg_gui import app

    assert app.display_problem({}, "linux").startswith("no display")
    assert app.display_problem({"DISPLAY": ":0"}, "linux") is None
    assert app.display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert app.display_problem({}, "darwin") is None
    monkeypatch.setattr(app, "display_problem", lambda: "no display: test")
    monkeypatch.setattr(app.QApplication, "instance", staticmethod(lambda: None))
    assert app.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "fnoreg-gui: error: no display: test"
