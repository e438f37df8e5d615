"""pytest-qt, offscreen: open the demo pair, register in the worker, switch every mode, slice, save."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from PySide6.QtCore import QSettings  # noqa: E402

from fnoreg_gui.app import MainWindow, main  # noqa: E402
from fnoreg_gui.model import MODES, OVERLAYS  # noqa: E402


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    return w


def _register(qtbot, win):
    assert win.register_btn.isEnabled()
    win.register_btn.click()
    assert win.worker is not None and not win.register_btn.isEnabled() and win.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: win.worker is None, timeout=120000)


def test_demo_2d_register_modes_save(qtbot, win, model2d, tmp_path):
    assert win.open_demo("2d")
    assert len(win.views) == 1 and win.state.shape == (160, 192)
    assert not win.register_btn.isEnabled()          # no model yet
    assert win.set_model(model2d)
    assert "tiny-fno-2d" in win.card_text.toPlainText()
    win.backend_combo.setCurrentText("onnxruntime-cpu")
    _register(qtbot, win)
    assert not win.errors, win.errors
    assert win.state.result is not None and "folding" in win.metrics_label.text()
    n = len(win.state.dice_table())
    assert n >= 5 and win.dice_table.rowCount() == n + 1 and win.dice_table.item(n, 2).text() != ""
    for i, mode in enumerate(MODES):
        win.mode_combo.setCurrentIndex(i)
        assert win.state.display.mode == mode
        for j, ov in enumerate(OVERLAYS):
            win.overlay_combo.setCurrentIndex(j)
            assert win.state.display.overlay == ov
            img = win.views[0].image.image
            assert img is not None and img.dtype == np.uint8
            assert img.shape[1] == 160 * (3 if mode == "side_by_side" else 1)
    win.labels_combo.setCurrentText("contour")
    win.tile_spin.setValue(5)
    win.grid_spin.setValue(4)
    win.alpha_slider.setValue(30)
    assert win.state.display.checker_tile == 5 and win.state.display.alpha == pytest.approx(0.3)
    win.auto_window.setChecked(False)
    win.win_lo.setValue(0.1)
    win.win_hi.setValue(0.6)
    assert win.state.display.window == pytest.approx((0.1, 0.6))
    out = tmp_path / "out"
    written = win.save_to(out)
    assert {p.name for p in written} == {"moved.nii.gz", "warp_itk.nii.gz", "jacobian.nii.gz",
                                         "moved_labels.nii.gz", "report.json"}
    assert all(p.stat().st_size > 0 for p in written)
    assert win.save_screenshot(out / "shot.png") and (out / "shot.png").stat().st_size > 0
    assert not win.errors, win.errors


def test_demo_3d_views_slices_crosshair(qtbot, win, model3d):
    assert win.open_demo("3d_2mm")
    assert [v.axis for v in win.views] == [0, 1, 2]
    assert win.set_model(model3d)
    win.backend_combo.setCurrentText("onnxruntime-cpu")
    _register(qtbot, win)
    assert not win.errors, win.errors
    sag, cor, ax = win.views
    ax.slider.setValue(10)
    assert win.state.slices[2] == 10
    sag._wheel(+1)
    assert win.state.slices[0] == 41
    ax._clicked(5.5, 3.5)                         # click in the axial view moves x and y, keeps z
    assert win.state.slices == [5, 96 - 1 - 3, 10]
    assert cor.slider.value() == 92               # the coronal slider follows the crosshair
    for i in range(len(MODES)):
        win.mode_combo.setCurrentIndex(i)
        for j in range(len(OVERLAYS)):
            win.overlay_combo.setCurrentIndex(j)
    assert max(v.last_redraw_ms for v in win.views) < 500


def test_errors_are_dialogs_not_crashes(qtbot, win, tmp_path, demo_dir):
    assert not win.open_pair(tmp_path / "missing.nii.gz", demo_dir / "2d" / "moving.nii.gz")
    assert win.errors and "does not exist" in win.errors[-1][1]
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"junk")
    assert not win.set_model(bad)
    assert not win.set_model(demo_dir / "2d" / "fixed.nii.gz")
    assert "not an exported model" in win.errors[-1][1]
    win.start_registration()
    assert "open a fixed and a moving image" in win.errors[-1][1]
    assert win.open_demo("2d")
    win.start_registration()
    assert "choose an exported model" in win.errors[-1][1]
    assert win.save_to(tmp_path / "o") == [] and "press Register" in win.errors[-1][1]


def test_model_of_wrong_dims_reports(qtbot, win, model3d):
    assert win.open_demo("2d") and win.set_model(model3d)
    win.backend_combo.setCurrentText("onnxruntime-cpu")
    _register(qtbot, win)
    assert win.state.result is None
    assert "3-D but the images are 2-D" in win.errors[-1][1]


def test_cancel_drops_result(qtbot, win, model2d):
    assert win.open_demo("2d") and win.set_model(model2d)
    win.backend_combo.setCurrentText("onnxruntime-cpu")
    win.start_registration()
    win.cancel_registration()
    qtbot.waitUntil(lambda: win.worker is None, timeout=120000)
    assert win.state.result is None and win.progress_label.text() == "cancelled"


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
    assert [v.axis for v in win.views] == [None] and win.view_grid.count() == 1
    win.state.set_display(mode="difference", overlay="jacobian", label_mode="fill", checker_tile=7)
    assert win.mode_combo.currentData() == "difference" and win.overlay_combo.currentData() == "jacobian"
    assert win.labels_combo.currentText() == "fill" and win.tile_spin.value() == 7
