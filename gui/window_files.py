"""Opening, recent files, drag and drop and saving of the main window (:class:`FilesMixin`).

Recent files remember their role (fixed, moving, labels, model) and reopen in it. Save dialogs open
in the last folder saved to, else the home folder (:func:`save_start_dir`), never inside the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QFileDialog

from .menus import fill_recent_menu
from .pipeline import save_outputs

__all__ = ["FilesMixin", "save_start_dir", "DEMO_DIR", "IMAGE_FILTER", "PACKAGE_DIRS"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "assets" / "demo"
MODEL_SUFFIXES = (".onnx", ".engine")
IMAGE_FILTER = "Images (*.nii *.nii.gz *.mgz *.mgh *.png *.jpg *.jpeg *.tif *.tiff *.bmp);;All files (*)"
#: Folders a Save dialog never starts in: this package and the bundled assets (checkout or install).
PACKAGE_DIRS = (Path(__file__).resolve().parent, REPO_ROOT / "assets")


def save_start_dir(last_save_dir: str = "", home: str | Path | None = None) -> str:
    """The folder a Save dialog opens in: ``last_save_dir`` if it exists and lies outside
    :data:`PACKAGE_DIRS` and any ``site-packages`` / ``share/fnoreg``, else ``home`` (default: ``~``)."""
    home = str(Path(home) if home is not None else Path.home())
    if not last_save_dir:
        return home
    p = Path(last_save_dir).resolve()
    inside = any(p == d or d in p.parents for d in PACKAGE_DIRS) or "site-packages" in p.parts or \
        ("share" in p.parts and "fnoreg" in p.parts)
    return str(p) if p.is_dir() and not inside else home


class FilesMixin:
    """Open, drop, recent files, save outputs and screenshots (part of :class:`MainWindow`)."""

    # -- opening -------------------------------------------------------------------------------
    def open_pair(self, fixed, moving, fixed_labels=None, moving_labels=None) -> bool:
        """Open a pair (and label maps); False after showing a dialog if any failed."""
        if not self._guard("Cannot open the images", self.state.load_pair, fixed, moving):
            return False
        self._add_recent(("fixed", fixed), ("moving", moving))
        ok = True
        if fixed_labels:
            ok &= self._guard("Cannot open the fixed labels", self.state.load_labels, "fixed", fixed_labels)
        if moving_labels:
            ok &= self._guard("Cannot open the moving labels", self.state.load_labels, "moving", moving_labels)
        self._add_recent(*((r, p) for r, p in (("fixed_labels", fixed_labels), ("moving_labels", moving_labels))
                           if p and getattr(self.state, r) is not None))
        self._offer_resample()
        return ok

    def open_demo(self, which: str | None = None) -> bool:
        """Open a bundled demo pair with its labels: ``"2d"``, ``"3d_2mm"`` (default) or ``"3d_1mm"``."""
        which = which or "3d_2mm"
        d = DEMO_DIR / which
        if not (d / "fixed.nii.gz").exists():
            self.show_error("No demo pair", f"{d} has no fixed.nii.gz; open your own images (File > Open)")
            return False
        ok = self.open_pair(d / "fixed.nii.gz", d / "moving.nii.gz", d / "fixed_labels.nii.gz",
                            d / "moving_labels.nii.gz")
        if ok:
            self.state.label_names = _demo_label_names()
            self._refresh_controls()
        return ok

    def open_file(self, role: str, path) -> bool:
        """Open one file as ``"fixed"``, ``"moving"``, ``"fixed_labels"`` or ``"moving_labels"``."""
        if role in ("fixed", "moving"):
            ok = self._guard(f"Cannot open the {role} image", self.state.load_image, role, path)
        elif role in ("fixed_labels", "moving_labels"):
            ok = self._guard(f"Cannot open the {role.replace('_', ' ')}", self.state.load_labels,
                             role.split("_")[0], path)
        else:
            raise ValueError(role)
        if ok:
            self._add_recent((role, path))
            if role in ("fixed", "moving"):
                self._offer_resample()
        return ok

    def _offer_resample(self) -> None:
        """Fixed and moving on different grids: offer to put the moving image on the fixed grid."""
        st = self.state
        if st.fixed is None or st.moving is None or st.same_grid:
            return
        f, m = st.fixed, st.moving
        sp = lambda v: "x".join(f"{x:.2g}" for x in np.sqrt((v.affine[:3, :v.ndim] ** 2).sum(axis=0)))  # noqa: E731
        self.ask("Images on different grids",
                 f"The fixed image is {'x'.join(map(str, f.shape))} voxels ({sp(f)} mm) and the moving image is "
                 f"{'x'.join(map(str, m.shape))} voxels ({sp(m)} mm), or they are placed differently.\n\n"
                 "Resample the moving image (and its labels) onto the fixed grid? Their world coordinates (the "
                 "affines) are used. Registration works either way (it resamples the same way), but only "
                 "images on one grid can be compared before registering.",
                 lambda: self._guard("Cannot resample", st.resample_moving_to_fixed),
                 yes_text="Resample moving onto fixed", no_text="Keep as is")

    def open_dialog(self, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Open {role.replace('_', ' ')}", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_file(role, path)

    # drag and drop (see open_dropped)
    def dragEnterEvent(self, ev):  # noqa: N802
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        self.open_dropped(paths)

    def open_dropped(self, paths) -> None:
        """One model file -> model; two images -> fixed, moving; one image -> fixed, then moving."""
        models = [p for p in paths if str(p).lower().endswith(MODEL_SUFFIXES)]
        images = [p for p in paths if p not in models]
        for p in models[:1]:
            self.set_model(p)
        if len(images) >= 2:
            self.open_pair(images[0], images[1])
        elif len(images) == 1:
            self.open_file("moving" if self.state.fixed is not None else "fixed", images[0])

    # recent files (QSettings): "role<TAB>path" entries, newest first
    def _recent_entries(self) -> list[tuple[str | None, str]]:
        out = []
        for e in self.settings.value("recent_files", []) or []:
            role, _, path = str(e).partition("\t")
            out.append((role, path) if path else (None, role))
        out += [(None, str(p)) for p in (self.settings.value("recent", []) or [])]   # older settings: no role
        return out[:10]

    def _add_recent(self, *entries) -> None:
        """Remember ``(role, path)`` entries (role: fixed, moving, fixed_labels, moving_labels, model)."""
        if not entries:
            return
        recent = [f"{r}\t{p}" if r else p for r, p in self._recent_entries()]
        for role, p in entries:
            e = f"{role}\t{Path(p).resolve()}"
            recent = [x for x in recent if x != e and x != str(Path(p).resolve())]
            recent.insert(0, e)
        self.settings.setValue("recent_files", recent[:10])
        self.settings.remove("recent")
        self.settings.setValue("last_dir", str(Path(entries[-1][1]).resolve().parent))
        self._refresh_recent()

    def open_recent(self, role: str | None, path: str) -> bool:
        """Reopen a recent file in the role it had (a model as the model)."""
        if role == "model":
            return self.set_model(path)
        if role in ("fixed", "moving", "fixed_labels", "moving_labels"):
            return self.open_file(role, path)
        self.open_dropped([path])
        return True

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", "") or "")

    def _refresh_recent(self) -> None:
        fill_recent_menu(self, self._recent_entries())

    # -- saving --------------------------------------------------------------------------------
    def save_to(self, folder) -> list[Path]:
        """Write the outputs (:func:`fnoreg_gui.pipeline.save_outputs`) to ``folder``; [] after a dialog."""
        from fnoreg_core.staging import OutputError

        try:
            try:
                written = save_outputs(self.state, folder)
            except OutputError as exc:  # earlier results there: ask before replacing (never a user's own file)
                if not exc.replaceable or not self.confirm_replace(folder):
                    raise
                written = save_outputs(self.state, folder, overwrite=True)
        except Exception as exc:
            self.show_error("Cannot save", str(exc).replace("pass --overwrite to replace",
                                                            "confirm replacing"))
            return []
        self.statusBar().showMessage(f"saved {len(written)} files to {folder}", 10000)
        return written

    def confirm_replace(self, folder) -> bool:
        """Ask whether to replace the results an earlier save wrote in ``folder`` (default: No)."""
        from PySide6.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "Replace earlier results?",
                                      f"{folder} already holds results saved by fnoreg. Replace them? (Files you "
                                      "wrote yourself are never replaced.)", QMessageBox.Yes | QMessageBox.No,
                                      QMessageBox.No)
        return answer == QMessageBox.Yes

    def save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save outputs to folder", self.save_start_dir())
        if folder:
            self.settings.setValue("last_save_dir", folder)
            self.save_to(folder)

    def save_start_dir(self) -> str:
        """Where Save dialogs open: the last folder saved to, else the home folder; never a folder of the
        installed package or its bundled assets (where the demo pairs live)."""
        return save_start_dir(self.settings.value("last_save_dir", "") or "")

    def save_screenshot(self, path) -> bool:
        """Save the views and the info panel as a PNG; False after a dialog."""
        ok = self.view_area.grab().save(str(path), "PNG")
        if not ok:
            self.show_error("Cannot save the screenshot", f"could not write {path}; choose a writable .png path")
        return ok

    def screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", self.save_start_dir(), "PNG (*.png)")
        if path:
            self.save_screenshot(path if path.lower().endswith(".png") else path + ".png")


def _demo_label_names() -> dict[int, str]:
    try:  # numpy-only module; names of the harmonised demo labels
        from fnoreg_core.data.templates import HARMONISED_LABELS
    except Exception:
        return {}
    return dict(HARMONISED_LABELS)
