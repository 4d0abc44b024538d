"""Safe extraction of uploaded template archives (.tar.gz/.tgz/.zip).

Refuses absolute paths, `..` components, links and special files, too many files, names that
clash (a file `a` beside `a/b.tf`, or the same file twice), and archives whose content is over the
size limit (declared sizes and bytes actually written); nothing is left behind on refusal.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any


class ArchiveError(ValueError):
    pass


def _check_name(name: str) -> PurePosixPath:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"{name!r} is not a UTF-8 file name") from None
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{name!r} is an absolute path")
    path = PurePosixPath(name.replace("\\", "/"))
    if ".." in path.parts:
        raise ArchiveError(f"{name!r} contains '..'")
    return path


def _check_layout(entries: list[tuple[PurePosixPath, bool]]) -> None:
    """Every name is a file or a folder, never both, and no file is there twice (checked before writing)."""
    files: set[PurePosixPath] = set()
    folders: set[PurePosixPath] = set()
    for rel, is_dir in entries:
        if not rel.parts:
            continue
        folders.update(rel.parents)
        if is_dir:
            folders.add(rel)
        elif rel in files:
            raise ArchiveError(f"{rel.as_posix()!r} is in the archive twice")
        else:
            files.add(rel)
    clashes = sorted(files & folders)
    if clashes:
        raise ArchiveError(f"{clashes[0].as_posix()!r} is both a file and a folder in the archive")


def _read(upload: Any) -> bytes:
    if isinstance(upload, str | Path):
        return Path(upload).read_bytes()
    if hasattr(upload, "seek"):
        upload.seek(0)
    return upload.read()


def safe_extract(
    upload: Any, dest: Path, *, max_bytes: int = 10 * 1024 * 1024, max_files: int = 500, name: str = ""
) -> list[str]:
    data = _read(upload)
    if len(data) > max_bytes:
        raise ArchiveError(f"the archive is {len(data)} bytes, over the {max_bytes} byte limit")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            written = _zip(data, dest, max_bytes, max_files)
        else:
            try:
                archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
            except tarfile.TarError as exc:
                raise ArchiveError(f"{name or 'the upload'} is not a .tar.gz or .zip archive") from exc
            with archive:
                written = _tar(archive, dest, max_bytes, max_files)
    except ArchiveError:
        for child in dest.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise
    return written


def _write(dest: Path, rel: PurePosixPath, source: Any, budget: list[int]) -> None:
    target = dest.joinpath(*rel.parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as out:
            while chunk := source.read(65536):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise ArchiveError("the archive's content is over the size limit")
                out.write(chunk)
    except OSError as exc:  # a name too long, or one _check_layout missed: a refusal, never a 500
        raise ArchiveError(f"{rel.as_posix()!r} cannot be extracted ({exc.strerror or exc})") from None


def _tar(archive: tarfile.TarFile, dest: Path, max_bytes: int, max_files: int) -> list[str]:
    members = archive.getmembers()
    if len(members) > max_files:
        raise ArchiveError(f"the archive has {len(members)} entries, over the limit of {max_files}")
    if sum(m.size for m in members if m.isfile()) > max_bytes:
        raise ArchiveError("the archive's content is over the size limit")
    for m in members:
        _check_name(m.name)
        if m.issym() or m.islnk():
            raise ArchiveError(f"{m.name!r} is a link; links are not allowed")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{m.name!r} is not a regular file")
    _check_layout([(_check_name(m.name), m.isdir()) for m in members])
    budget = [max_bytes]
    written = []
    for m in members:
        rel = _check_name(m.name)
        if m.isdir() or not rel.parts:
            continue
        _write(dest, rel, archive.extractfile(m), budget)
        written.append(rel.as_posix())
    return written


def _zip(data: bytes, dest: Path, max_bytes: int, max_files: int) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > max_files:
            raise ArchiveError(f"the archive has {len(infos)} entries, over the limit of {max_files}")
        if sum(i.file_size for i in infos) > max_bytes:
            raise ArchiveError("the archive's content is over the size limit")
        for info in infos:
            _check_name(info.filename)
            mode = info.external_attr >> 16
            if mode and (mode & 0o170000) == 0o120000:
                raise ArchiveError(f"{info.filename!r} is a link; links are not allowed")
        _check_layout([(_check_name(i.filename), i.is_dir()) for i in infos])
        budget = [max_bytes]
        written = []
        for info in infos:
            rel = _check_name(info.filename)
            if info.is_dir() or not rel.parts:
                continue
            with archive.open(info) as source:
                _write(dest, rel, source, budget)
            written.append(rel.as_posix())
        return written
