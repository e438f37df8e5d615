"""Build output folders privately, move them into place only when complete (the one output rule).

Every tool that writes a folder (``fnoreg-register``, ``fnoreg-export``, the GUI's save, the demo,
``fnoreg-data``) goes through :class:`StagedOutputs`: files are written into a hidden staging
folder on the destination's file system, and :meth:`StagedOutputs.commit` renames them into place
(atomic per file); on an exception nothing is moved and the staging folders are removed, so a
failed run leaves the destination as it was.

Three ways to put a staging folder in place (``how``):

``"files"``    every staged file replaces its counterpart; nothing else in the destination is touched
``"entries"``  every top-level staged entry (file or folder) replaces its counterpart as a whole
``"folder"``   the whole destination is replaced (the old one removed after the new one is in place)

>>> with StagedOutputs(how="entries") as out:        # doctest: +SKIP
...     tmp = out.folder(Path("results"))
...     (tmp / "report.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["StagedOutputs", "staged_folder", "HOW"]

HOW = ("files", "entries", "folder")


class StagedOutputs:
    """Staging folders for one or more destinations, committed or discarded together.

    Parameters
    ----------
    how : one of :data:`HOW` (see the module docstring)
    """

    def __init__(self, how: str = "files"):
        if how not in HOW:
            raise ValueError(f"expected how in {HOW}, got {how!r}")
        self.how = how
        self.stages: list[tuple[Path, Path]] = []  # (staging folder, destination)

    def folder(self, destination: str | Path) -> Path:
        """A new private staging folder whose contents will become ``destination``'s.

        It lies on the destination's file system: inside the destination when it exists (``how``
        "files"/"entries"), else in its nearest existing ancestor; nothing is created at the
        destination before :meth:`commit`.

        Raises
        ------
        PermissionError
            The folder that would hold the staging folder is not writable.
        """
        destination = Path(destination)
        anchor = destination if self.how != "folder" else destination.parent
        while not anchor.exists():
            anchor = anchor.parent
        if not anchor.is_dir():
            raise NotADirectoryError(f"{anchor} exists and is not a folder")
        if not os.access(anchor, os.W_OK):
            raise PermissionError(f"cannot write below {anchor} (permission denied)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.fnoreg-tmp-", dir=anchor))
        self.stages.append((tmp, destination))
        return tmp

    def commit(self) -> list[Path]:
        """Move every staged folder's contents into place; returns the destination paths written."""
        written: list[Path] = []
        for tmp, destination in self.stages:
            destination.parent.mkdir(parents=True, exist_ok=True)
            if self.how == "folder" or not destination.exists():
                if destination.exists():
                    old = destination.with_name(destination.name + ".old")
                    shutil.rmtree(old, ignore_errors=True)
                    destination.rename(old)
                    os.replace(tmp, destination)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(tmp, destination)
                written.append(destination)
                continue
            if self.how == "entries":
                for entry in sorted(tmp.iterdir()):
                    target = destination / entry.name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    elif target.exists() or target.is_symlink():
                        target.unlink()
                    os.replace(entry, target)
                    written.append(target)
            else:
                for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
                    dst = destination / src.relative_to(tmp)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    written.append(dst)
            shutil.rmtree(tmp, ignore_errors=True)
        self.stages.clear()
        return written

    def discard(self) -> None:
        """Remove every staging folder; the destinations stay as they were."""
        for tmp, _ in self.stages:
            shutil.rmtree(tmp, ignore_errors=True)
        self.stages.clear()

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def staged_folder(dest: str | Path, how: str = "folder"):
    """Build one whole folder privately and put it in place only when complete.

    Yields the staging folder; on normal exit it becomes ``dest`` (``how="folder"``: an existing
    ``dest`` is replaced as a whole); on an exception it is removed and ``dest`` is left as it was.
    """
    with StagedOutputs(how=how) as out:
        yield out.folder(dest)
