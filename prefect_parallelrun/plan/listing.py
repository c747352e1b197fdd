"""Resolving an input's paths, folders, globs and URLs into a sorted list of files."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InputNotFoundError, InputReadError

if TYPE_CHECKING:
    import fsspec

_GLOB_CHARACTERS = ("*", "?", "[")
_REMOTE_VERSION_KEYS = ("mtime", "LastModified", "last_modified", "ETag", "etag", "created")


ListedFile = tuple[str, int, int | str]
"""One file of an input: `(url, size, version)`. The URL is an absolute local path or an fsspec
URL; the version is the modification time in ns (remote: its time or ETag). A plain tuple, not
a NamedTuple, whose construction alone adds a tenth of a second per 100,000 files."""


def is_remote(path: str) -> bool:
    """Whether `path` names a file that must be fetched through fsspec.

    Args:
        path: A local path or URL.

    Returns:
        True for a URL other than `file://`.
    """
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    """`path` as an absolute local path (a `file://` URL loses its scheme).

    Args:
        path: A local path or `file://` URL, relative to the working directory or absolute.

    Returns:
        The absolute path.
    """
    return os.path.abspath(path.removeprefix("file://"))


def list_files(
    paths: Sequence[str], input_label: str, skip_prefixes: tuple[str, ...]
) -> list[ListedFile]:
    """Every file the paths name, de-duplicated and sorted by URL (then size and version).

    Folders are walked recursively, skipping names that start with one of `skip_prefixes`
    (hidden files, and Spark's `_SUCCESS` markers for tables); an empty folder simply adds
    no file.

    Args:
        paths: Local paths, folders, globs or fsspec URLs.
        input_label: The input's name, for errors.
        skip_prefixes: Name prefixes of files and folders to leave out.

    Returns:
        `(url, size, version)` of each file.

    Raises:
        InputNotFoundError: A path matches nothing.
        InputReadError: A file or folder exists but cannot be read.
    """
    files: list[ListedFile] = []
    for path in paths:
        if is_remote(path):
            files += _list_remote(path, input_label, skip_prefixes)
        else:
            files += _list_local(local_path(path), path, input_label, skip_prefixes)
    # Sorting the list as listed is fast: each folder arrives as a nearly sorted run.
    files.sort()
    # Only several paths, or a glob matching a folder and files inside it, can repeat a file.
    may_repeat = len(paths) > 1 or any(_has_glob(path) for path in paths)
    return list(dict.fromkeys(files)) if may_repeat else files


def _has_glob(path: str) -> bool:
    return any(character in path for character in _GLOB_CHARACTERS)


def _not_found(path: str, input_label: str) -> InputNotFoundError:
    return InputNotFoundError(
        f"input {input_label!r}: {path!r} matches no file or folder (relative paths are "
        f"resolved against {os.getcwd()}); fix the path or glob."
    )


def _unreadable(path: str, input_label: str, error: OSError) -> InputReadError:
    return InputReadError(
        f"input {input_label!r}: cannot read {path} ({error.strerror or error}); "
        "check that it exists and that this user may read it."
    )


def _list_local(
    path: str, given: str, input_label: str, skip_prefixes: tuple[str, ...]
) -> list[ListedFile]:
    # A path that exists is taken as it is, even if it holds glob characters ("data[1]").
    if os.path.lexists(path):
        matches = [path]
    elif _has_glob(given):
        matches = glob.glob(path, recursive=True)
    else:
        matches = []
    if not matches:
        raise _not_found(given, input_label)
    files: list[ListedFile] = []
    for match in matches:
        if os.path.isdir(match):
            files += _walk_local(match, input_label, skip_prefixes)
        else:
            files.append(_stat_local(match, input_label))
    return files


def _stat_local(path: str, input_label: str) -> ListedFile:
    try:
        status = os.stat(path)
    except OSError as error:
        raise _unreadable(path, input_label, error) from error
    return (path, status.st_size, status.st_mtime_ns)


def _walk_local(folder: str, input_label: str, skip_prefixes: tuple[str, ...]) -> list[ListedFile]:
    """Walk with `os.scandir`, reusing its directory entries; links to folders are not followed,
    as with `os.walk`, so a link cycle cannot loop. One tight loop: this is the plan's hot path."""
    files: list[ListedFile] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith(skip_prefixes):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                        continue
                    status = entry.stat()
                    if stat.S_ISREG(status.st_mode):
                        files.append((entry.path, status.st_size, status.st_mtime_ns))
        except OSError as error:
            raise _unreadable(error.filename or current, input_label, error) from error
    return files


def _list_remote(
    path: str, input_label: str, skip_prefixes: tuple[str, ...]
) -> Iterator[ListedFile]:
    import fsspec  # here: entry-script processes import this module, and need no listing

    try:
        filesystem, root = fsspec.core.url_to_fs(path)
        if _has_glob(root):
            infos = list(filesystem.glob(root, detail=True).values())
            if not infos:
                raise _not_found(path, input_label)
        else:
            infos = [filesystem.info(root)]
        for info in infos:
            if info["type"] == "directory":
                found = filesystem.find(info["name"], detail=True, withdirs=False)
                yield from _remote_files(filesystem, info["name"], found.values(), skip_prefixes)
            else:
                yield _remote_file(filesystem, info)
    except FileNotFoundError as error:
        raise _not_found(path, input_label) from error
    except OSError as error:
        raise _unreadable(path, input_label, error) from error


def _remote_files(
    filesystem: fsspec.AbstractFileSystem,
    folder: str,
    infos: Iterable[dict[str, Any]],
    skip_prefixes: tuple[str, ...],
) -> Iterator[ListedFile]:
    prefix = folder.rstrip("/") + "/"
    for info in infos:
        relative = info["name"].removeprefix(prefix)
        if not any(part.startswith(skip_prefixes) for part in relative.split("/")):
            yield _remote_file(filesystem, info)


def _remote_file(filesystem: fsspec.AbstractFileSystem, info: dict[str, Any]) -> ListedFile:
    version = next((str(info[key]) for key in _REMOTE_VERSION_KEYS if info.get(key)), "")
    return (filesystem.unstrip_protocol(info["name"]), int(info["size"] or 0), version)
