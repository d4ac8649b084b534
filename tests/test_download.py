"""`bench data download` against an HTTP server on loopback: progress, checksum, resume after a
broken transfer, no half file in place, a clear error without network. No test leaves 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from bench.cli.main import main
from bench.core.errors import BenchError
from bench.data.download import RemoteFile, fetch


@dataclass
class Served:
    """What the loopback server offers and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)  # break the next transfer here
    ignore_range: bool = False  # answer 200 with the whole file, as some servers do
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def server() -> Iterator[Served]:
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/").split("?")[0]
            if name not in served.files:
                self.send_error(404)
                return
            body, start = served.files[name], 0
            served.ranges.append(self.headers.get("Range"))
            if (wanted := self.headers.get("Range")) is not None and not served.ignore_range:
                start = int(wanted.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = served.cut_after.pop(name, None)
            self.wfile.write(body[start:cut])
            if cut is not None:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{httpd.server_port}"
    # Polled often, so that shutting it down takes milliseconds, not the default half second.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield served
    httpd.shutdown()
    httpd.server_close()


def _remote(served: Served, name: str, body: bytes, **kwargs: object) -> RemoteFile:
    served.files[name] = body
    digest = kwargs.pop("md5", hashlib.md5(body).hexdigest())
    return RemoteFile(f"{served.url}/{name}?download=1", name, "md5", str(digest), **kwargs)  # type: ignore[arg-type]


def test_download_verifies_and_places_the_file(server: Served, tmp_path: Path) -> None:
    body = np.random.default_rng(0).bytes(300_000)
    path = fetch(_remote(server, "a.npz", body), tmp_path, progress=False)
    assert path == tmp_path / "a.npz" and path.read_bytes() == body
    assert not (tmp_path / "a.npz.part").exists()
    fetch(_remote(server, "a.npz", body), tmp_path, progress=False)  # in place: not fetched
    assert len(server.ranges) == 1


def test_broken_transfer_keeps_no_file_in_place_and_resumes(server: Served, tmp_path: Path) -> None:
    body = np.random.default_rng(1).bytes(2_500_000)
    remote = _remote(server, "big.npz", body)
    server.cut_after["big.npz"] = 1_000_000
    with pytest.raises(BenchError, match=r"download of http://127\.0\.0\.1:\d+/big\.npz.*failed"):
        fetch(remote, tmp_path, progress=False)
    assert not (tmp_path / "big.npz").exists()
    assert (tmp_path / "big.npz.part").stat().st_size == 1_000_000
    assert fetch(remote, tmp_path, progress=False).read_bytes() == body
    assert server.ranges == [None, "bytes=1000000-"]  # the second request resumed


def test_server_without_range_support_restarts_from_zero(server: Served, tmp_path: Path) -> None:
    body = np.random.default_rng(2).bytes(1_500_000)
    remote = _remote(server, "big.npz", body)
    (tmp_path / "big.npz.part").write_bytes(body[:700_000])
    server.ignore_range = True
    assert fetch(remote, tmp_path, progress=False).read_bytes() == body


def test_stale_longer_part_is_not_taken_for_the_file(server: Served, tmp_path: Path) -> None:
    body = b"x" * 1000
    remote = RemoteFile(f"{server.url}/a.csv", "a.csv")  # no checksum: only sizes can tell
    server.files["a.csv"] = body
    (tmp_path / "a.csv.part").write_bytes(b"y" * 5000)
    with pytest.raises(BenchError, match=r"does not match the remote one; it was deleted"):
        fetch(remote, tmp_path, progress=False)
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "a.csv.part").exists()
    assert fetch(remote, tmp_path, progress=False).read_bytes() == body


def test_archive_is_unpacked_once_and_never_outside_its_folder(
    server: Served, tmp_path: Path
) -> None:
    good, evil = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(good, "w") as zipped:
        zipped.writestr("part/a.txt", "a")
    with zipfile.ZipFile(evil, "w") as zipped:
        zipped.writestr("../escaped.txt", "x")
    fetch(_remote(server, "good.zip", good.getvalue(), extract=True), tmp_path, progress=False)
    assert (tmp_path / "part" / "a.txt").read_text() == "a"
    (tmp_path / "part" / "a.txt").write_text("edited")
    fetch(_remote(server, "good.zip", good.getvalue(), extract=True), tmp_path, progress=False)
    assert (tmp_path / "part" / "a.txt").read_text() == "edited"  # not unpacked again
    with pytest.raises(BenchError, match=r"member '\.\./escaped\.txt' would unpack outside"):
        fetch(_remote(server, "evil.zip", evil.getvalue(), extract=True), tmp_path, progress=False)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_checksum_mismatch_deletes_the_download(server: Served, tmp_path: Path) -> None:
    remote = _remote(server, "a.npz", b"tampered", md5="0" * 32)
    with pytest.raises(BenchError, match=r"md5 checksum \w+ does not match the published 0{32}"):
        fetch(remote, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_says_which_url_and_how_to_place_by_hand(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = RemoteFile(f"http://127.0.0.1:{port}/dermamnist.npz", "dermamnist.npz", "md5", "ab")
    with pytest.raises(BenchError) as error:
        fetch(remote, tmp_path / "skin", progress=False, timeout=5)
    message = str(error.value)
    assert f"download of http://127.0.0.1:{port}/dermamnist.npz failed" in message
    assert f"save it as {tmp_path / 'skin' / 'dermamnist.npz'} (md5 ab)" in message


def test_cli_downloads_unzips_and_the_data_is_then_found(
    server: Served, tiny_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for c, label in enumerate(("a", "b")):
            for k in range(3):
                zipped.writestr(f"pics/{label}/{k}.png", _png(40 * k + c))
    body = archive.getvalue()
    server.files["pics.zip"] = body
    (tiny_project / "datasets" / "pics.toml").write_text(
        'description = "zipped image folders"\nformats = ["imagefolder"]\n'
        '[params]\nfolder = "pics/pics"\n'
        f'[[download.mirror]]\nurl = "{server.url}/pics.zip"\nname = "pics.zip"\n'
        f'sha256 = "{hashlib.sha256(body).hexdigest()}"\nextract = true\n'
    )
    assert main(["data", "download", "pics", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pics.zip (0.0 MB, sha256 verified)" in out
    assert main(["data", "info", "pics"]) == 0
    assert "found: imagefolder at" in capsys.readouterr().out
    assert main(["data", "download", "pics", "--source", "elsewhere"]) == 2
    assert "unknown pics download 'elsewhere'" in capsys.readouterr().err


def _png(shade: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, shade, shade)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unpacking_never_deletes_a_folder_it_did_not_create(
    server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("mydata/new.txt", "from the archive")
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "precious.txt").write_text("the user's")
    fetch(_remote(server, "d.zip", archive.getvalue(), extract=True), tmp_path, progress=False)
    assert (tmp_path / "mydata" / "new.txt").read_text() == "from the archive"
    (aside,) = tmp_path.glob("mydata.before-*")
    assert (aside / "precious.txt").read_text() == "the user's"
    assert f"moved to {aside}" in capsys.readouterr().out


def test_an_archive_that_unpacks_too_large_is_refused(server: Served, tmp_path: Path) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("zeros.bin", bytes(200 * (1 << 20)))  # 200 MB of zeros: ~200 kB zipped
    body = bomb.getvalue()
    with pytest.raises(BenchError, match="more than 50 times its size; refused"):
        fetch(_remote(server, "bomb.zip", body, extract=True), tmp_path, progress=False)
    assert not (tmp_path / "zeros.bin").exists()
    assert not list(tmp_path.glob(".bomb.zip.unpacking"))
