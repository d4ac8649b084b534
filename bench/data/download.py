"""Fetching public dataset files: progress bar, checksum, resumable, never a half file in place.

A transfer writes to `NAME.part` beside the target and asks the server for the remaining bytes
(HTTP Range) when a `.part` is already there; the finished file is verified against its
published checksum and only then renamed to `NAME`. Archives marked `extract` are unpacked
into the same folder, every member checked to stay inside it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.core.errors import BenchError, unknown_name

CHUNK = 1 << 20
MAX_EXPANSION = 50  # unpacked bytes per archive byte at most (image archives barely compress)
DIGESTS = ("md5", "sha256")
KEYS = {"url", "name", "extract", *DIGESTS}


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file: its URL, the name to save it as, its published checksum
    (`algorithm`, hex digest; empty when none is published) and whether to unzip it."""

    url: str
    name: str
    algorithm: str = ""
    digest: str = ""
    extract: bool = False


def parse_remote_files(entries: Any, where: str) -> tuple[RemoteFile, ...]:
    """Validate a spec's list of `{url, name, md5 | sha256, extract}` tables."""
    if not isinstance(entries, list) or not entries:
        raise BenchError(f"{where}: must be a non-empty array of tables with url and name.")
    files = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"url", "name"} <= set(entry):
            raise BenchError(f"{where}: entry {i + 1} needs 'url' and 'name'.")
        unknown = sorted(set(entry) - KEYS)
        if unknown:
            raise BenchError(
                f"{where}: entry {i + 1} has unknown key(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(KEYS))}."
            )
        name = str(entry["name"])
        if Path(name).name != name or name in ("", ".", ".."):
            raise BenchError(f"{where}: entry {i + 1} name {name!r} must be a plain file name.")
        if not isinstance(entry.get("extract", False), bool):
            raise BenchError(f"{where}: entry {i + 1} extract must be true or false.")
        algorithm = next((a for a in DIGESTS if a in entry), "")
        files.append(
            RemoteFile(
                url=str(entry["url"]),
                name=str(entry["name"]),
                algorithm=algorithm,
                digest=str(entry.get(algorithm, "")).lower(),
                extract=bool(entry.get("extract", False)),
            )
        )
    return tuple(files)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manual_help(remote: RemoteFile, target: Path) -> str:
    return (
        f"To place it by hand, download {remote.url} with a browser or curl and save it as "
        f"{target}"
        + (f" ({remote.algorithm} {remote.digest})" if remote.digest else "")
        + ("; it is unzipped there on the next `bench data download`." if remote.extract else ".")
    )


def _transfer(remote: RemoteFile, part: Path, progress: bool, timeout: float) -> None:
    """Append the missing bytes of `remote` to `part` (from the start if the server cannot
    resume)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(remote.url, headers={"User-Agent": "medlt-bench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: complete only if sizes agree
            remote_size = (error.headers.get("Content-Range") or "").rpartition("/")[2]
            if remote_size.isdigit() and int(remote_size) == have:
                return
            part.unlink()
            raise urllib.error.URLError(
                "the partial file does not match the remote one; it was deleted, rerun"
            ) from error
        raise
    with response:
        sent_range = (response.headers.get("Content-Range") or "").removeprefix("bytes ")
        resumed = response.status == 206 and sent_range.partition("-")[0] == str(have)
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            part.open("ab" if resumed else "wb") as handle,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=remote.name,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise urllib.error.URLError(
                f"connection closed after {part.stat().st_size} of {total} bytes"
            )


def _unpack(archive: Path, scratch: Path) -> None:
    """Unpack every member into `scratch`, each checked to stay inside it, stopping once the
    bytes written pass `MAX_EXPANSION` times the archive's size (a zip bomb)."""
    limit = MAX_EXPANSION * max(archive.stat().st_size, CHUNK)
    written = 0
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for member in members:
            if not (scratch / member.filename).resolve().is_relative_to(scratch.resolve()):
                raise BenchError(
                    f"{archive}: member {member.filename!r} would unpack outside its folder."
                )
        if sum(m.file_size for m in members) > limit:
            raise BenchError(
                f"{archive}: would unpack to more than {MAX_EXPANSION} times its size; refused."
            )
        for member in members:
            target = scratch / member.filename
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, target.open("wb") as sink:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > limit:  # the sizes in the archive's index can lie
                        raise BenchError(
                            f"{archive}: unpacks to more than {MAX_EXPANSION} times its size; "
                            "refused."
                        )
                    sink.write(chunk)


def _extract(archive: Path, folder: Path) -> None:
    """Unpack into a scratch folder, then move the top-level entries into place, then leave a
    marker: an interrupted unpack is redone, a finished one is not. Nothing already in the
    folder is deleted: an entry in the way is moved aside, and the message says where."""
    marker = folder / f".{archive.name}.extracted"
    if marker.exists():
        return
    scratch = folder / f".{archive.name}.unpacking"
    shutil.rmtree(scratch, ignore_errors=True)  # the harness's own scratch, never the user's
    try:
        _unpack(archive, scratch)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for entry in scratch.iterdir():
            target = folder / entry.name
            if target.exists() or target.is_symlink():
                aside = folder / f"{entry.name}.before-{stamp}"
                os.replace(target, aside)
                tqdm.write(f"{target} was in the way of {archive.name}: moved to {aside}")
            os.replace(entry, target)
        marker.touch()
    except zipfile.BadZipFile as error:
        raise BenchError(
            f"{archive}: not a valid zip archive ({error}); delete it and retry."
        ) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch(remote: RemoteFile, folder: Path, progress: bool = True, timeout: float = 60) -> Path:
    """Download `remote` into `folder` (resuming a `.part` left by a broken transfer), verify
    it, rename it into place, unzip it if asked; returns the file's path. A file already in
    place with the right checksum is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    target, part = folder / remote.name, folder / f"{remote.name}.part"
    if not target.exists():
        try:
            _transfer(remote, part, progress, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            kept = f" The partial file {part} is kept; rerun to resume." if part.exists() else ""
            raise BenchError(
                f"download of {remote.url} failed ({getattr(error, 'reason', error)}).{kept} "
                + _manual_help(remote, target)
            ) from error
        if remote.digest:
            actual = file_digest(part, remote.algorithm)
            if actual != remote.digest:
                part.unlink()
                raise BenchError(
                    f"{remote.url}: {remote.algorithm} checksum {actual} does not match the "
                    f"published {remote.digest}; the download was deleted. Retry. "
                    + _manual_help(remote, target)
                )
        os.replace(part, target)
    elif remote.digest and file_digest(target, remote.algorithm) != remote.digest:
        raise BenchError(
            f"{target}: exists but its {remote.algorithm} checksum is not the published "
            f"{remote.digest}; delete it and rerun to download it again."
        )
    if remote.extract:
        _extract(target, folder)
    return target


def fetch_dataset(
    name: str,
    downloads: dict[str, tuple[RemoteFile, ...]],
    source: str | None,
    folder: Path,
    progress: bool = True,
) -> tuple[str, list[tuple[Path, str]]]:
    """Fetch the files of the dataset `name`'s download `source` (default: its first) into
    `folder`; returns the source fetched and each file with how it was verified."""
    if not downloads:
        raise BenchError(
            f"{name}: no public direct download is known; place the files by hand "
            f"(`bench data info {name}` shows where they are looked for)."
        )
    source = source or next(iter(downloads))
    if source not in downloads:
        raise unknown_name(f"{name} download", source, list(downloads))
    fetched = []
    for remote in downloads[source]:
        path = fetch(remote, folder, progress=progress)
        fetched.append(
            (path, f"{remote.algorithm} verified" if remote.digest else "no published checksum")
        )
    return source, fetched
