"""`cnn download` and ensure_mnist against a local HTTP server — no internet.

The server binds 127.0.0.1 on a free port, serves small generated IDX files
under behaviour prefixes (/ok/, /404/, /500/, /bad/, /xor/, /cut/, /flaky/, /cutnolen/, /slow/,
/html/, /redirect/), counts requests (bounded) and shuts itself down after a
deadline even if a test forgets to. DEFAULT_MIRRORS is emptied for every test
so nothing can reach the real mirrors.
"""

from __future__ import annotations

import gzip
import http.server
import io
import socket
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cnn_cli.data import download as dl
from cnn_cli.data import fetch as fx
from cnn_cli.cli import app
from cnn_cli.data import load_split
from cnn_cli.errors import UserError

from idx_fixtures import NAMES, make_mnist_folder

REAL_DEFAULT_MIRRORS = dl.DEFAULT_MIRRORS  # captured before any test patches it
REAL_OFFICIAL_FILES = dict(dl.OFFICIAL_FILES)
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "mnist-sample"
MAX_REQUESTS = 300
SERVER_LIFETIME = 120.0  # seconds; the server stops by itself after this


# --------------------------------------------------------------------------- server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            over = len(srv.requests) > MAX_REQUESTS
        if over:
            self._status(503)
            threading.Thread(target=srv.shutdown, daemon=True).start()
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 2:
            return self._status(404)
        mode, name = parts
        body = srv.files.get(name)
        if mode == "redirect":
            self.send_response(302)
            self.send_header("Location", f"/ok/{name}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode in ("404", "500"):
            return self._status(int(mode))
        if body is None:
            return self._status(404)
        if mode == "ok":
            return self._send(body)
        if mode == "bad":  # a well-formed IDX file, just not the expected one: wrong checksum
            return self._send(srv.other[name])
        if mode == "xor":  # same length, scrambled bytes: corrupt in transit
            return self._send(bytes(b ^ 0x5A for b in body))
        if mode == "html":  # a captive portal answering 200 with a web page
            return self._send(b"<!doctype html><html><body>Please log in</body></html>")
        if mode == "flaky":  # the first request of each file is cut, the next ones are whole
            with srv.lock:
                first = sum(r == self.path for r in srv.requests) == 1
            if not first:
                return self._send(body)
            mode = "cut"
        if mode == "cut":  # promises the whole file, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "cutnolen":  # no Content-Length: only the checksum/structure can tell
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "slow":  # headers, then silence longer than the client's timeout
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:10])
            self.wfile.flush()
            srv.stop.wait(3.0)
            self.close_connection = True
            return
        self._status(404)

    def _send(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _status(self, code: int):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class MirrorServer:
    def __init__(self, files: dict[str, bytes], other: dict[str, bytes]):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files = files
        self.httpd.other = other
        self.httpd.requests = []
        self.httpd.lock = threading.Lock()
        self.httpd.stop = threading.Event()
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(SERVER_LIFETIME, self.close)
        self.watchdog.daemon = True
        self._closed = False

    def __enter__(self):
        self.thread.start()
        self.watchdog.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.watchdog.cancel()
        self.httpd.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/"

    @property
    def requests(self) -> list[str]:
        with self.httpd.lock:
            return list(self.httpd.requests)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _no_internet_plain_output(monkeypatch):
    monkeypatch.setattr(dl, "DEFAULT_MIRRORS", ())
    monkeypatch.setattr(fx, "RETRIES", 0)  # pooch waits a second before a retry; test_retry proves retrying
    for var in ("CNN_DATA_DIR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a configured proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")


@pytest.fixture
def src(tmp_path):
    """Four small generated IDX files with official names."""
    return make_mnist_folder(tmp_path / "src", n_train=60, n_test=20, seed=3)


@pytest.fixture
def server(src, tmp_path):
    other = make_mnist_folder(tmp_path / "other", n_train=60, n_test=20, seed=4)
    files = {n: p.read_bytes() for n, p in src.paths.items()}
    with MirrorServer(files, {n: p.read_bytes() for n, p in other.paths.items()}) as s:
        yield s


@pytest.fixture
def refused_url():
    """A URL on 127.0.0.1 whose port is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mnist/"
    finally:
        sock.close()


@pytest.fixture
def out():
    buf = io.StringIO()
    return buf, Console(file=buf, width=60, highlight=False)


def leftovers(folder: Path) -> list[str]:
    """Anything in the folder that is not one of the official names (pooch's temporary files: tmp*)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in NAMES)


def assert_same_files(dst: Path, src, names=NAMES):
    for n in names:
        assert (dst / n).read_bytes() == src.paths[n].read_bytes(), n


def fetch(dst, src, mirrors, out, **kw):
    kw.setdefault("timeout", 5)
    return dl.download_mnist(dst, mirrors=mirrors, console=out[1], expected=src.md5, **kw)


# --------------------------------------------------------------------------- happy path, failover


def test_happy_path_fetches_all_four_and_leaves_no_temp(tmp_path, src, server, out):
    dst = tmp_path / "data"
    results = fetch(dst, src, [server.url("ok")], out)
    assert_same_files(dst, src)
    assert sorted(p.name for p in dst.iterdir()) == sorted(NAMES)
    assert all(r.status == "fetched" and r.verified for r in results.values())
    assert sorted(server.requests) == sorted(f"/ok/{n}" for n in NAMES)
    assert "MD5 OK" in out[0].getvalue()


def test_refused_first_mirror_falls_over_and_is_not_retried_for_later_files(tmp_path, src, server, out, refused_url):
    dst = tmp_path / "data"
    results = fetch(dst, src, [refused_url, server.url("ok")], out)
    assert_same_files(dst, src)
    assert all(r.source.startswith(server.url("ok")) for r in results.values())
    text = out[0].getvalue()
    assert text.count("connection refused") == 1  # tried once, then skipped as unreachable


@pytest.mark.parametrize("mode", ["404", "500"])
def test_http_error_on_first_mirror_falls_over(tmp_path, src, server, out, mode):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url(mode), server.url("ok")], out)
    assert_same_files(dst, src)
    # an HTTP error is per file: the mirror is asked again for every file
    assert sum(r.startswith(f"/{mode}/") for r in server.requests) == 4
    assert f"HTTP {mode}" in out[0].getvalue()


def test_redirect_is_followed(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("redirect")], out)
    assert_same_files(dst, src)


def test_wrong_checksum_moves_on_to_next_mirror(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("bad"), server.url("ok")], out)
    assert_same_files(dst, src)
    assert leftovers(dst) == []
    assert "wrong MD5" in out[0].getvalue()


def test_wrong_checksum_only_leaves_nothing_with_the_final_name(tmp_path, src, server, out):
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        fetch(dst, src, [server.url("bad")], out)
    assert list(dst.iterdir()) == []
    msg = str(info.value)
    assert "\n" not in msg
    assert "wrong MD5" in msg and "--no-verify" in msg and "data/README.md" in msg
    for n in NAMES:
        assert server.url("bad") + n in msg


def test_corrupt_payload_is_rejected_without_suggesting_no_verify(tmp_path, src, server, out):
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        fetch(dst, src, [server.url("xor")], out, names=["train-labels-idx1-ubyte.gz"], verify=False)
    assert "not a usable IDX file" in str(info.value) and "--no-verify" not in str(info.value)
    assert list(dst.iterdir()) == []
    fetch(dst, src, [server.url("xor"), server.url("ok")], out)
    assert_same_files(dst, src)


@pytest.mark.parametrize("mode", ["cut", "cutnolen"])
def test_cut_transfer_leaves_no_partial_file(tmp_path, src, server, out, mode):
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        fetch(dst, src, [server.url(mode)], out, names=["train-images-idx3-ubyte.gz"])
    assert list(dst.iterdir()) == []
    if mode == "cut":
        assert "transfer cut after" in str(info.value)


@pytest.mark.parametrize("mode", ["cut", "cutnolen"])
def test_cut_transfer_falls_over_to_next_mirror(tmp_path, src, server, out, mode):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url(mode), server.url("ok")], out)
    assert_same_files(dst, src)
    assert leftovers(dst) == []


@pytest.mark.parametrize("mode", ["cutnolen", "html"])
def test_no_verify_still_rejects_incomplete_or_non_idx_payloads(tmp_path, src, server, out, mode):
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        dl.download_mnist(dst, mirrors=[server.url(mode)], verify=False, console=out[1], timeout=5,
                          names=["train-images-idx3-ubyte.gz"])
    assert "not a usable IDX file" in str(info.value)
    assert list(dst.iterdir()) == []


def test_a_cut_transfer_is_retried_by_pooch(tmp_path, src, server, out, monkeypatch):
    monkeypatch.setattr(fx, "RETRIES", 1)
    dst = tmp_path / "data"
    name = "t10k-labels-idx1-ubyte.gz"
    results = fetch(dst, src, [server.url("flaky")], out, names=[name])
    assert results[name].status == "fetched" and results[name].source == server.url("flaky") + name
    assert server.requests == [f"/flaky/{name}"] * 2  # cut once, then fetched whole from the same mirror
    assert_same_files(dst, src, [name])
    assert leftovers(dst) == []


def test_stalled_server_times_out_and_falls_over(tmp_path, src, server, out):
    dst = tmp_path / "data"
    t0 = time.monotonic()
    fetch(dst, src, [server.url("slow"), server.url("ok")], out, timeout=0.3,
          names=["t10k-labels-idx1-ubyte.gz"])
    assert time.monotonic() - t0 < 2.5
    assert_same_files(dst, src, ["t10k-labels-idx1-ubyte.gz"])
    assert "timed out after 0.3 s" in out[0].getvalue()


# --------------------------------------------------------------------------- present, force


def test_valid_files_present_are_skipped_without_any_request(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("ok")], out)
    before = len(server.requests)
    results = fetch(dst, src, [server.url("ok")], out)
    assert len(server.requests) == before
    assert all(r.status == "present" for r in results.values())
    assert out[0].getvalue().count("already present, MD5 OK, skipped") == 4


def test_corrupt_present_file_is_fetched_again(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("ok")], out)
    (dst / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    results = fetch(dst, src, [server.url("ok")], out)
    assert results["train-labels-idx1-ubyte.gz"].status == "fetched"
    assert [r.status for n, r in results.items() if n != "train-labels-idx1-ubyte.gz"] == ["present"] * 3
    assert_same_files(dst, src)


def test_force_fetches_again(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("ok")], out)
    before = len(server.requests)
    results = fetch(dst, src, [server.url("ok")], out, force=True)
    assert len(server.requests) == before + 4
    assert all(r.status == "fetched" for r in results.values())
    assert_same_files(dst, src)


def test_failed_refetch_keeps_the_existing_file(tmp_path, src, server, out):
    dst = tmp_path / "data"
    fetch(dst, src, [server.url("ok")], out)
    with pytest.raises(UserError):
        fetch(dst, src, [server.url("cut")], out, force=True)
    assert_same_files(dst, src)  # the old good files are untouched
    assert leftovers(dst) == []


def test_interrupt_mid_transfer_removes_the_temp_file(tmp_path, src, out, monkeypatch):
    def interrupted(*args, **kw):
        args[1].write(b"partial")  # something is on disk already
        raise KeyboardInterrupt

    monkeypatch.setattr(fx, "copy_stream", interrupted)
    dst = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        fetch(dst, src, [str(src.folder)], out)
    assert list(dst.iterdir()) == []


def test_disk_full_is_a_user_error_not_a_mirror_failure(tmp_path, src, out, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fx.os, "fsync", full)
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        fetch(dst, src, [str(src.folder), str(src.folder) + "/"], out)
    msg = str(info.value)
    assert msg.startswith(f"cannot write {dst / NAMES[0]}") and "No space left" in msg
    assert list(dst.iterdir()) == []


# --------------------------------------------------------------------------- file:// and folders


def test_file_url_and_folder_mirrors(tmp_path, src, out):
    a, b = tmp_path / "a", tmp_path / "b"
    fetch(a, src, [src.folder.as_uri()], out)
    assert_same_files(a, src)
    fetch(b, src, [str(tmp_path / "does-not-exist"), str(src.folder)], out)
    assert_same_files(b, src)
    assert "folder does not exist" in out[0].getvalue()


def test_folder_mirror_missing_one_file(tmp_path, src, out):
    (src.folder / "t10k-labels-idx1-ubyte.gz").unlink()
    dst = tmp_path / "data"
    with pytest.raises(UserError) as info:
        fetch(dst, src, [str(src.folder)], out)
    msg = str(info.value)
    assert msg.startswith("could not fetch 1 of 4 MNIST file(s)")
    assert "t10k-labels-idx1-ubyte.gz" in msg and "file not found" in msg
    # the three that were there are kept
    assert sorted(p.name for p in dst.iterdir()) == sorted(set(NAMES) - {"t10k-labels-idx1-ubyte.gz"})


def test_terminal_progress_bars_do_not_break(tmp_path, src, server):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    fetch(tmp_path / "data", src, [server.url("404"), server.url("ok")], (buf, console))
    text = buf.getvalue()
    assert "train-images-idx3-ubyte.gz" in text and "HTTP 404" in text


# --------------------------------------------------------------------------- options, paths


def test_mirror_order_user_first_then_defaults(monkeypatch):
    monkeypatch.setattr(dl, "DEFAULT_MIRRORS", ("https://a.example/m/", "http://b.example/m"))
    got = [m.base for m in fx.all_mirrors(["https://mine.example/x", "https://a.example/m/"], dl.DEFAULT_MIRRORS)]
    assert got == ["https://mine.example/x/", "https://a.example/m/", "http://b.example/m/"]


def test_official_table_matches_the_issue():
    assert REAL_DEFAULT_MIRRORS == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    f = REAL_OFFICIAL_FILES
    assert {n: (x.md5, x.size, x.split, x.kind) for n, x in f.items()} == {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422, "train", "images"),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 28_881, "train", "labels"),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 1_648_877, "test", "images"),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 4_542, "test", "labels"),
    }


def test_mirror_given_as_a_file_url_or_path_uses_its_folder(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    assert fx.parse_mirror(f"https://h.example/m/{name}", NAMES).base == "https://h.example/m/"
    assert fx.parse_mirror(str(tmp_path / name), NAMES).base == str(tmp_path)
    assert fx.parse_mirror((tmp_path / "x").as_uri(), NAMES).base == str(tmp_path / "x")


def test_resolve_data_dir(monkeypatch):
    assert dl.resolve_data_dir(None) == Path("data")
    monkeypatch.setenv("CNN_DATA_DIR", "/tmp/from-env")
    assert dl.resolve_data_dir(None) == Path("/tmp/from-env")
    assert dl.resolve_data_dir("given") == Path("given")


@pytest.mark.parametrize("mirror", ["ftp://host/mnist/", "https:///nohost", "  "])
def test_bad_mirror_is_a_user_error(tmp_path, mirror, out):
    with pytest.raises(UserError) as info:
        dl.download_mnist(tmp_path / "d", mirrors=[mirror], console=out[1])
    assert "--mirror" in str(info.value)


def test_data_dir_that_is_a_file(tmp_path, out):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        dl.download_mnist(f, mirrors=[str(tmp_path)], console=out[1])


# --------------------------------------------------------------------------- ensure_mnist (train/eval)


def test_ensure_mnist_uses_present_files_without_checksums(tmp_path, out):
    own = make_mnist_folder(tmp_path / "own", 30, 10, seed=9)  # not the official MD5s
    assert dl.ensure_mnist(own.folder, console=out[1]) == own.folder
    assert out[0].getvalue() == ""


def test_ensure_mnist_downloads_only_missing_files(tmp_path, src, server, out, monkeypatch):
    dst = tmp_path / "data"
    dst.mkdir()
    for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (dst / n).write_bytes(src.paths[n].read_bytes())
    monkeypatch.setattr(dl, "OFFICIAL_FILES", src.official_files())
    monkeypatch.setattr(dl, "DEFAULT_MIRRORS", (server.url("ok"),))
    dl.ensure_mnist(dst, console=out[1])
    assert sorted(server.requests) == ["/ok/t10k-images-idx3-ubyte.gz", "/ok/t10k-labels-idx1-ubyte.gz"]
    assert_same_files(dst, src)
    first = out[0].getvalue().splitlines()[0]
    assert "missing" in first and "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in first


def test_ensure_mnist_offline_names_exactly_the_missing_files(tmp_path, src):
    dst = tmp_path / "data"
    dst.mkdir()
    (dst / "t10k-images-idx3-ubyte.gz").write_bytes(src.paths["t10k-images-idx3-ubyte.gz"].read_bytes())
    with pytest.raises(UserError) as info:
        dl.ensure_mnist(dst, offline=True)
    msg = str(info.value)
    assert "--offline" in msg and str(dst) in msg and "cnn download" in msg
    missing = msg.split("missing MNIST file(s) in ")[1].split(";")[0]
    assert "t10k-images-idx3-ubyte.gz" not in missing
    for n in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert n in missing
    assert sorted(p.name for p in dst.iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def test_ensure_mnist_offline_missing_folder(tmp_path):
    with pytest.raises(UserError, match="folder does not exist"):
        dl.ensure_mnist(tmp_path / "nowhere", offline=True)


# --------------------------------------------------------------------------- the CLI


def run(*args):
    import typer.main

    # With a single command Typer runs it directly; with several, `download` is a subcommand.
    is_group = hasattr(typer.main.get_command(app), "commands")
    return CliRunner().invoke(app, (["download"] if is_group else []) + list(args))


def assert_one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    err_lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(err_lines) == 1, result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == err_lines[0]
    for needle in needles:
        assert needle in err_lines[0], err_lines[0]
    return err_lines[0]


def test_cli_download_happy_then_skip(tmp_path, src, server, monkeypatch):
    monkeypatch.setattr(dl, "OFFICIAL_FILES", src.official_files())
    dst = tmp_path / "data"
    r = run("--data-dir", str(dst), "--mirror", server.url("500"), "--mirror", server.url("ok"), "--timeout", "5")
    assert r.exit_code == 0, r.output
    assert_same_files(dst, src)
    assert "MNIST ready in" in r.stdout and "4 fetched, 0 already present" in r.stdout
    assert "HTTP 500" in r.stderr
    r = run("--data-dir", str(dst), "--mirror", server.url("ok"))
    assert r.exit_code == 0 and "0 fetched, 4 already present" in r.stdout
    assert r.stderr.count("skipped") == 4


def test_cli_data_dir_from_environment(tmp_path, src, server, monkeypatch):
    monkeypatch.setattr(dl, "OFFICIAL_FILES", src.official_files())
    monkeypatch.setenv("CNN_DATA_DIR", str(tmp_path / "envdir"))
    r = run("--mirror", server.url("ok"))
    assert r.exit_code == 0, r.output
    assert_same_files(tmp_path / "envdir", src)


def test_cli_every_mirror_fails_one_line_exit_2(tmp_path, src, server, refused_url, monkeypatch):
    monkeypatch.setattr(dl, "OFFICIAL_FILES", src.official_files())
    monkeypatch.setattr(dl, "DEFAULT_MIRRORS", (server.url("404"), server.url("cut")))
    dst = tmp_path / "data"
    r = run("--data-dir", str(dst), "--mirror", refused_url)
    line = assert_one_line_error(
        r, "could not fetch 4 of 4", refused_url, "connection refused", "HTTP 404", "transfer cut",
        "data/README.md", str(dst),
    )
    # tried in order: the user's mirror, then the defaults
    assert line.index(refused_url) < line.index(server.url("404")) < line.index(server.url("cut"))
    assert list(dst.iterdir()) == []


def test_cli_class_sample_needs_no_verify(tmp_path, src):
    dst = tmp_path / "data"
    r = run("--data-dir", str(dst), "--mirror", str(src.folder))
    assert_one_line_error(r, "wrong MD5", "--no-verify")
    assert list(dst.iterdir()) == []
    r = run("--data-dir", str(dst), "--mirror", str(src.folder), "--no-verify")
    assert r.exit_code == 0, r.output
    assert "accepted because of --no-verify" in r.stderr
    assert "4 not the official MNIST" in r.stdout
    assert_same_files(dst, src)
    r = run("--data-dir", str(dst), "--mirror", str(src.folder), "--no-verify")
    assert r.exit_code == 0 and "0 fetched, 4 already present" in r.stdout


def test_cli_no_verify_rejects_malformed_idx_naming_the_file(tmp_path, src):
    bad = tmp_path / "bad"
    bad.mkdir()
    for n, p in src.paths.items():
        (bad / n).write_bytes(p.read_bytes())
    raw = gzip.decompress((bad / "train-images-idx3-ubyte.gz").read_bytes())
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    dst = tmp_path / "data"
    r = run("--data-dir", str(dst), "--mirror", str(bad), "--no-verify")
    assert_one_line_error(r, "could not fetch 1 of 4", "train-images-idx3-ubyte.gz", "truncated")
    assert not (dst / "train-images-idx3-ubyte.gz").exists()
    assert leftovers(dst) == []


def test_cli_bad_mirror_scheme(tmp_path):
    r = run("--data-dir", str(tmp_path), "--mirror", "ftp://example.org/mnist/")
    assert_one_line_error(r, "--mirror ftp://example.org/mnist/", "unsupported scheme")


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"{SAMPLE} is not there")
def test_real_class_sample_through_the_download_path(tmp_path):
    dst = tmp_path / "data"
    r = run("--data-dir", str(dst), "--mirror", str(SAMPLE), "--no-verify")
    assert r.exit_code == 0, r.output
    x, y = load_split(dst, "train")
    assert x.shape == (4000, 28, 28) and x.dtype.name == "uint8"
    assert y.dtype.name == "int64" and list(__import__("numpy").bincount(y)) == [400] * 10
    xt, yt = load_split(dst, "test")
    assert xt.shape == (1000, 28, 28) and len(yt) == 1000
    # the sample is not the official MNIST: without --no-verify it is refused
    r = run("--data-dir", str(tmp_path / "other"), "--mirror", str(SAMPLE))
    assert r.exit_code == 2
