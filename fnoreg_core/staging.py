"""The one output rule: build privately, validate, move into place; never lose a file the tool did not write.

Every tool that writes files (``fnoreg-register``, ``fnoreg-export``, ``fnoreg-eval``,
``fnoreg-train``, ``fnoreg-data``, the GUI's save, the demo) goes through this module:

1. **One run per folder.** :class:`OutputLock` holds ``OUT/.fnoreg.lock`` (the owner's pid, host,
   tool and start time, plus an advisory ``flock``) while a run writes; a second run into the same
   folder gets :class:`OutputError` naming the owner. A lock whose process has died is stale: the
   next run takes it over (the kernel drops the ``flock`` with the process).
2. **Build privately.** :class:`StagedOutputs` gives a hidden staging folder inside the destination
   (same file system, so moves are atomic renames); nothing is visible before :meth:`commit`.
3. **Validate first.** :meth:`StagedOutputs.commit` checks every target before moving anything: a
   target that exists is replaced only with ``overwrite=True`` *and* only when the tool wrote it
   (it is listed, unchanged, in ``OUT/.fnoreg-manifest.json``); a file the user wrote or edited is
   never replaced or deleted, with or without ``--overwrite``. A target below a symbolic link, or a
   symbolic link itself, is refused (nothing is written through a link out of the folder).
4. **Move, record, release.** Files move into place one ``os.replace`` each, the manifest records
   them (size and mtime), the staging folder and the lock go. On any error nothing is moved, the
   staging folder is removed, and folders the run created are removed again when empty.

``how`` says which of the tool's *earlier* files a run replaces as a set (with ``overwrite=True``):

``"files"``    only the files staged now; nothing else in the destination is touched
``"entries"``  also the tool's files inside every top-level staged entry that were not staged again
               (a pair folder rewritten without labels loses its old ``moved_labels.nii.gz``)
``"folder"``   also every other file of the tool's in the destination (a rebuilt data set)

User files are kept in every mode.

>>> with StagedOutputs(how="entries") as out:        # doctest: +SKIP
...     tmp = out.folder(Path("results"))
...     (tmp / "report.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

try:  # POSIX advisory locks; elsewhere the pid in the lock file decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["StagedOutputs", "staged_folder", "OutputLock", "OutputError", "Manifest", "HOW", "LOCK_NAME",
           "MANIFEST_NAME", "RunFolder", "check_output_folder", "check_output_file", "OUTPUT_OPTION_HELP"]

HOW = ("files", "entries", "folder")
LOCK_NAME = ".fnoreg.lock"
MANIFEST_NAME = ".fnoreg-manifest.json"
_TMP_MARK = ".fnoreg-tmp-"
_INTERNAL = (LOCK_NAME, MANIFEST_NAME)
#: what ``--overwrite`` means, for the CLIs' help texts
OUTPUT_OPTION_HELP = ("replace results an earlier fnoreg run wrote in the output folder (files you wrote or "
                      "edited are never replaced). Default: refuse")


class OutputError(ValueError):
    """An output that cannot be written without losing something (or at all): exit code 2 in the CLIs.

    The message says what is in the way and what to do (``--overwrite``, another folder, wait for the
    other run, remove a stale lock). ``replaceable`` is True when ``--overwrite`` (``overwrite=True``)
    would succeed: everything in the way is an earlier fnoreg result (the GUI then asks).
    """

    def __init__(self, message: str, replaceable: bool = False):
        super().__init__(message)
        self.replaceable = replaceable


# ------------------------------------------------------------------------------------------------
# paths


def _abs(path: str | Path) -> Path:
    """Absolute, user-expanded, without resolving symbolic links (a link the user names is their choice)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def check_output_folder(dest: str | Path, what: str = "output folder") -> Path:
    """``dest`` as an absolute path if it can be (or is) a folder; else :class:`OutputError` saying why."""
    dest = _abs(dest)
    for part in dest.parts:
        if len(os.fsencode(part)) > 255:
            raise OutputError(f"{what} {str(dest)[:80]}... has a name longer than 255 bytes ({part[:40]}...); choose "
                              "a shorter one")
    if len(os.fsencode(str(dest))) > 3800:
        raise OutputError(f"{what} {str(dest)[:60]}... is too long for the file system; choose a shorter path")
    if os.path.islink(dest) and not dest.exists():
        raise OutputError(f"{what} {dest} is a symbolic link to nothing ({os.readlink(dest)}); remove the link "
                          "or choose another folder")
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"{what} {dest} exists and is a file, not a folder; choose a folder path")
    anchor = dest
    while not anchor.exists():
        if os.path.islink(anchor):
            raise OutputError(f"{what} {dest}: {anchor} is a symbolic link to nothing; remove it or choose "
                              "another folder")
        anchor = anchor.parent
    if not anchor.is_dir():
        raise OutputError(f"{what} {dest} lies below {anchor}, which is a file; choose a folder path")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {dest}: {anchor} is not writable (permission denied); choose "
                          "another folder")
    return dest


def check_output_file(path: str | Path, overwrite: bool = False, what: str = "output file") -> Path:
    """``path`` as an absolute path if a file can be written there under the output rule."""
    path = _abs(path)
    if path.name in ("", ".", ".."):
        raise OutputError(f"{what} {path} names a folder; give a file name")
    check_output_folder(path.parent, f"the folder of {what}")
    if os.path.islink(path):
        raise OutputError(f"{what} {path} is a symbolic link; fnoreg does not write through links: remove it "
                          "or choose another name")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{what} {path} exists; pass --overwrite to replace it, or choose another name")
    return path


def _makedirs(path: Path) -> list[Path]:
    """Create ``path`` and missing parents; return the folders created (deepest last)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    created = []
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            if not p.is_dir():
                raise OutputError(f"{p} appeared as a file while creating the output folder") from None
            continue
        except OSError as exc:
            _remove_empty(created)
            raise OutputError(f"cannot create output folder {path}: {exc.strerror or exc}; choose another "
                              "folder") from None
        created.append(p)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for p in reversed(folders):
        try:
            p.rmdir()
        except OSError:
            break


# ------------------------------------------------------------------------------------------------
# lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


class OutputLock:
    """``folder/.fnoreg.lock``: one writing run per output folder (the folder must exist).

    The file holds JSON ``{"pid", "host", "tool", "started"}`` and, where the OS has it, an
    exclusive ``flock`` for as long as the owner lives. A lock whose owner has died (no ``flock``
    held; on the same host, no process with that pid) is stale and taken over.

    Raises
    ------
    OutputError
        Another live run holds the lock.
    """

    def __init__(self, folder: str | Path, tool: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.tool = tool or Path(sys.argv[0]).name or "fnoreg"
        self.fd: int | None = None
        self.took_over: dict | None = None

    def _owner(self) -> dict:
        try:
            info = json.loads(self.path.read_text(errors="replace") or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _busy(self, owner: dict) -> OutputError:
        who = (f"pid {owner.get('pid')} ({owner.get('tool', 'fnoreg')}, started {owner.get('started', '?')}"
               f"{', on ' + str(owner['host']) if owner.get('host') not in (None, socket.gethostname()) else ''})"
               if owner else "another process")
        return OutputError(f"another fnoreg run is writing to {self.folder} ({who}); wait for it to finish or "
                           f"choose another output folder (if no run is active, delete {self.path})")

    def acquire(self) -> "OutputLock":
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise OutputError(f"{self.path} is a symbolic link; remove it") from None
                raise OutputError(f"cannot create the lock {self.path}: {exc.strerror}; choose another output "
                                  "folder") from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise self._busy(self._owner()) from None
                try:  # the file we locked must still be the one at the path (not unlinked by its releaser)
                    same = os.fstat(fd).st_ino == os.stat(self.path, follow_symlinks=False).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            owner = self._owner()
            if owner and fcntl is None:
                if owner.get("host") != socket.gethostname() or _pid_alive(int(owner.get("pid", -1))):
                    os.close(fd)
                    raise self._busy(owner)
            if owner.get("pid") not in (None, os.getpid()):
                self.took_over = owner  # a stale lock: its process died without releasing it
            info = {"pid": os.getpid(), "host": socket.gethostname(), "tool": self.tool,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(info) + "\n").encode())
            os.fsync(fd)
            self.fd = fd
            return self
        raise self._busy(self._owner())

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ------------------------------------------------------------------------------------------------
# manifest


class Manifest:
    """``folder/.fnoreg-manifest.json``: the files fnoreg wrote there (relative path -> size, mtime_ns).

    A file is the tool's (:meth:`owns`) while it is a regular file of the recorded size and
    modification time; a file the user edited, replaced or linked is theirs again.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self.files: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text())
            files = data.get("files", {}) if isinstance(data, dict) else {}
            self.files = {str(k): v for k, v in files.items() if isinstance(v, dict)}
        except (OSError, ValueError):
            self.files = {}

    def owns(self, rel: str) -> bool:
        entry = self.files.get(rel)
        if entry is None:
            return False
        try:
            st = os.lstat(self.folder / rel)
        except OSError:
            return False
        import stat as _stat

        return (_stat.S_ISREG(st.st_mode) and st.st_size == entry.get("size")
                and st.st_mtime_ns == entry.get("mtime_ns"))

    def record(self, rel: str) -> None:
        st = os.lstat(self.folder / rel)
        self.files[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def forget(self, rel: str) -> None:
        self.files.pop(rel, None)

    def owned_under(self, prefix: str) -> list[str]:
        """Recorded files equal to ``prefix`` or inside it ("" = all)."""
        return [r for r in self.files if not prefix or r == prefix or r.startswith(prefix.rstrip("/") + "/")]

    def save(self) -> None:
        self.files = {r: e for r, e in self.files.items() if os.path.lexists(self.folder / r)}
        fd, tmp = tempfile.mkstemp(prefix=".manifest" + _TMP_MARK, dir=self.folder)
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": "fnoreg-manifest/1", "files": self.files}, fh, indent=0, sort_keys=True)
        os.replace(tmp, self.path)


# ------------------------------------------------------------------------------------------------
# staged outputs


class _Stage:
    def __init__(self, tmp: Path, dest: Path, created: list[Path], lock: OutputLock | None, owns: tuple[str, ...]):
        self.tmp, self.dest, self.created, self.lock, self.owns = tmp, dest, created, lock, owns


class StagedOutputs:
    """Staging folders for one or more destinations, committed or discarded together.

    Parameters
    ----------
    how : one of :data:`HOW` (see the module docstring)
    overwrite : replace files an earlier fnoreg run wrote (the ``--overwrite`` option); files the tool
        did not write are never replaced
    lock : hold each destination's :class:`OutputLock` from :meth:`folder` to commit/discard
    tool : the program named in the lock file
    """

    def __init__(self, how: str = "files", overwrite: bool = False, lock: bool = True, tool: str | None = None):
        if how not in HOW:
            raise ValueError(f"expected how in {HOW}, got {how!r}")
        self.how, self.overwrite, self.use_lock, self.tool = how, bool(overwrite), lock, tool
        self._stages: list[_Stage] = []

    @property
    def stages(self) -> list[tuple[Path, Path]]:
        """(staging folder, destination) pairs."""
        return [(s.tmp, s.dest) for s in self._stages]

    def folder(self, destination: str | Path, owns: Iterable[str] = ()) -> Path:
        """A new private staging folder whose contents will go into ``destination``.

        The destination (and missing parents) is created now, locked, and the staging folder made
        inside it; on :meth:`discard` folders this call created are removed again when empty.
        ``owns``: further relative paths this run produces as a set (with ``overwrite``, the tool's
        earlier files there that are not staged again are removed at commit).

        Raises
        ------
        OutputError
            The destination is a file, a dangling link, below a file, not writable, too long, or
            another run is writing to it.
        """
        dest = check_output_folder(destination)
        created = _makedirs(dest)
        lock = None
        try:
            if self.use_lock:
                lock = OutputLock(dest, self.tool).acquire()
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name[:40]}{_TMP_MARK}", dir=dest))
        except BaseException:
            if lock is not None:
                lock.release()
            _remove_empty(created)
            raise
        self._stages.append(_Stage(tmp, dest, created, lock, tuple(owns)))
        return tmp

    def check(self, destination: str | Path, names: Iterable[str]) -> None:
        """Refuse early: :class:`OutputError` if writing ``names`` (relative paths) into ``destination``
        would replace something this run may not replace (call before long work)."""
        dest = check_output_folder(destination)
        if not dest.is_dir():
            return
        _refuse(dest, Manifest(dest), list(names), self.overwrite)

    def commit(self) -> list[Path]:
        """Validate every target of every stage, then move the staged files into place.

        Returns the destination paths written. On :class:`OutputError` (or any error) nothing has
        been moved, and the stages are discarded.
        """
        try:
            plans = []
            for st in self._stages:
                manifest = Manifest(st.dest)
                staged = sorted(p.relative_to(st.tmp).as_posix() for p in st.tmp.rglob("*")
                                if p.is_file() or p.is_symlink())
                staged = [r for r in staged if r.split("/")[-1] not in _INTERNAL]
                _refuse(st.dest, manifest, staged, self.overwrite)
                retire = []
                if self.overwrite:
                    scopes = list(st.owns)
                    if self.how == "folder":
                        scopes.append("")
                    elif self.how == "entries":
                        scopes += sorted({r.split("/")[0] for r in staged})
                    for scope in scopes:
                        retire += [r for r in manifest.owned_under(scope) if r not in staged and manifest.owns(r)]
                plans.append((st, manifest, staged, sorted(set(retire))))
            written: list[Path] = []
            for st, manifest, staged, retire in plans:
                for rel in staged:
                    target = st.dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(st.tmp / rel, target)
                    manifest.record(rel)
                    written.append(target)
                for rel in retire:
                    (st.dest / rel).unlink()
                    manifest.forget(rel)
                    _remove_empty_parents(st.dest, rel)
                manifest.save()
                st.created = []  # the destination now holds results: keep it
            return written
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove every staging folder and release the locks; the destinations stay as they were."""
        for st in self._stages:
            shutil.rmtree(st.tmp, ignore_errors=True)
            if st.lock is not None:
                st.lock.release()
            _remove_empty(st.created)
        self._stages.clear()

    def __enter__(self) -> "StagedOutputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _remove_empty_parents(dest: Path, rel: str) -> None:
    parent = (dest / rel).parent
    while parent != dest:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def _conflicts(dest: Path, manifest: Manifest, names: list[str], overwrite: bool) -> list[str]:
    """Targets (relative) that may not be written, each with the reason."""
    problems = []
    for rel in names:
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts) or os.path.isabs(rel):
            problems.append(f"{rel} (not a plain relative name)")
            continue
        p = dest
        blocked = None
        for part in parts[:-1]:
            p = p / part
            if os.path.islink(p):
                blocked = f"{p.relative_to(dest)} is a symbolic link (fnoreg does not write through links)"
                break
            if p.exists() and not p.is_dir():
                blocked = f"{p.relative_to(dest)} is a file, not a folder"
                break
        if blocked:
            problems.append(blocked)
            continue
        target = dest / rel
        if not os.path.lexists(target):
            continue
        if os.path.islink(target):
            problems.append(f"{rel} is a symbolic link (fnoreg does not write through or replace links)")
        elif target.is_dir():
            problems.append(f"{rel} is a folder")
        elif not overwrite:
            problems.append(f"{rel} exists")
        elif not manifest.owns(rel):
            problems.append(f"{rel} was not written by fnoreg (or was changed since)")
    return problems


def _refuse(dest: Path, manifest: Manifest, names: list[str], overwrite: bool) -> None:
    """:class:`OutputError` saying what is in the way, unless nothing is."""
    if not _conflicts(dest, manifest, names, overwrite):
        return
    hard = _conflicts(dest, manifest, names, True)  # what even --overwrite may not replace
    problems = hard or _conflicts(dest, manifest, names, overwrite)
    shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
    advice = ("move those away or choose another output folder (fnoreg never replaces files it did not write, "
              "even with --overwrite)" if hard else
              "they are results of an earlier fnoreg run: pass --overwrite to replace them, or choose another folder")
    raise OutputError(f"output folder {dest}: {shown}; {advice}. Nothing was written", replaceable=not hard)


class RunFolder:
    """A folder a long run writes into as it goes (``fnoreg-train --out``), under the output rule.

    On entry: the folder is created if needed and locked (:class:`OutputLock`); a new run
    (``resume=False``) is refused when any of ``names`` (files, or folders checked file by file)
    already exists, whoever wrote it (:class:`OutputError`: resume, or choose another folder); a
    resumed run continues the files it finds. On exit the files under ``names`` are recorded in the
    manifest as the tool's, the lock is released, and a folder the run created and left empty is
    removed.
    """

    def __init__(self, folder: str | Path, names: Iterable[str], resume: bool = False, tool: str | None = None):
        self.names, self.resume, self.tool = tuple(names), resume, tool
        self.folder = _abs(folder)
        self.lock: OutputLock | None = None
        self.created: list[Path] = []

    def _files(self) -> dict[str, tuple[int, int]]:
        found = {}
        for name in self.names:
            p = self.folder / name
            files = [p] if p.is_file() and not p.is_symlink() else (
                [f for f in p.rglob("*") if f.is_file() and not f.is_symlink()] if p.is_dir() and not p.is_symlink()
                else [])
            for f in files:
                st = f.lstat()
                found[f.relative_to(self.folder).as_posix()] = (st.st_size, st.st_mtime_ns)
        return found

    def __enter__(self) -> "RunFolder":
        dest = check_output_folder(self.folder, "run folder")
        self.created = _makedirs(dest)
        self.before = {}
        try:
            self.lock = OutputLock(dest, self.tool).acquire()
            if not self.resume:
                found = [n for n in self.names if os.path.lexists(dest / n)]
                if found:
                    raise OutputError(f"run folder {dest} already holds {', '.join(found)}; continue that run with "
                                      "--resume, or choose another --out (fnoreg never writes over them)")
            self.before = self._files()
        except BaseException:
            self._close(failed=True)
            raise
        return self

    def _close(self, failed: bool) -> None:
        if not failed:
            try:  # record what this run wrote (new or changed files), nothing it merely found
                written = [rel for rel, st in self._files().items() if self.before.get(rel) != st]
                if written:
                    manifest = Manifest(self.folder)
                    for rel in written:
                        manifest.record(rel)
                    manifest.save()
            except OSError:
                pass
        if self.lock is not None:
            self.lock.release()
        if failed:
            _remove_empty(self.created)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close(failed=False)
        if exc_type is not None and not os.listdir(self.folder):
            _remove_empty(self.created)


@contextlib.contextmanager
def staged_folder(dest: str | Path, how: str = "folder", overwrite: bool = False):
    """Build one folder's contents privately and put them in place only when complete.

    Yields the staging folder; on normal exit its files go into ``dest`` under the output rule
    (``how="folder"`` with ``overwrite``: the tool's earlier files not written again are removed;
    user files stay); on an exception it is removed and ``dest`` is left as it was.
    """
    with StagedOutputs(how=how, overwrite=overwrite) as out:
        yield out.folder(dest)
