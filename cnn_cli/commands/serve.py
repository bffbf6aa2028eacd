"""`cnn serve`: a local page to draw a digit on and watch the network answer.

The standard library's ThreadingHTTPServer is enough: one page, three static
files and three small JSON endpoints on the loopback interface, one user at a
time. A web framework would add a dependency and a second way to run, and buy
nothing here.

Endpoints:
- GET  /, /app.js, /style.css        the page (cnn_cli/commands/serve_page/, no internet assets)
- GET  /api/info                      the model: name, classes, layers, whether test digits exist
- POST /api/predict                   {"pixels": [784 grey levels 0-255, row by row], "mnist_style": true}
                                      → top-3, probabilities, the preprocessing steps, every conv/pool
                                        layer's feature maps
- GET  /api/test-digit?index=N        a digit of the test split in the data folder (random without N)

Predictions run the loaded model's own layers (predict.feature_maps: our kernels,
one image), under a lock because layers keep per-call caches. A bad request gets
HTTP 400 with a JSON {"error": ...} message, and the server keeps serving.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..data import load_split, split_paths
from ..errors import UserError
from ..data.mnist_style import area_resize, mnist_style

CANVAS = 28  # the page sends a 28×28 picture, whatever the model's input size
MAX_BODY = 64 * 1024  # 784 numbers as JSON take < 8 KB even with decimals
PAGE_DIR = Path(__file__).parent / "serve_page"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}


class BadRequest(Exception):
    """A request the client must fix: answered with HTTP 400 and this message."""


def parse_pixels(body: bytes) -> tuple[np.ndarray, bool]:
    """(28×28 grey levels in [0, 1], whether to apply MNIST-style preprocessing) from a JSON body."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"the body is not JSON ({error}); send {{\"pixels\": [784 numbers 0-255]}}") from None
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise BadRequest("expected a JSON object with a 'pixels' list of 784 numbers 0-255 (28×28, row by row)")
    pixels = payload["pixels"]
    if not isinstance(pixels, list) or len(pixels) != CANVAS * CANVAS:
        got = f"a list of {len(pixels)}" if isinstance(pixels, list) else type(pixels).__name__
        raise BadRequest(f"pixels: expected {CANVAS * CANVAS} numbers (a {CANVAS}×{CANVAS} image, row by row), got {got}")
    for i, value in enumerate(pixels):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadRequest(f"pixels[{i}]: expected a number 0-255, got {json.dumps(value)}")
        if not 0 <= value <= 255:
            raise BadRequest(f"pixels[{i}]: {value} is outside 0-255")
    styled = payload.get("mnist_style", True)
    if not isinstance(styled, bool):
        raise BadRequest(f"mnist_style: expected true or false, got {json.dumps(styled)}")
    return np.array(pixels, dtype=np.float64).reshape(CANVAS, CANVAS) / 255.0, styled


def encode(array: np.ndarray, low: float, high: float) -> str:
    """Values scaled from [low, high] to bytes 0-255, base64: compact for the page's canvases."""
    span = high - low if high > low else 1.0
    scaled = np.clip(np.rint((np.asarray(array, dtype=np.float64) - low) / span * 255.0), 0, 255)
    return base64.b64encode(scaled.astype(np.uint8).tobytes()).decode("ascii")


class DigitModel:
    """The loaded checkpoint, the optional test digits, and the answers the page asks for."""

    def __init__(self, loaded, test_images: Optional[np.ndarray], test_labels: Optional[np.ndarray]):
        self.loaded = loaded
        self.test_images, self.test_labels = test_images, test_labels
        self.lock = threading.Lock()
        self.classes = [str(i) for i in range(loaded.config.num_classes)]

    def info(self) -> dict:
        config = self.loaded.config
        layers = [{"name": s.spec.name, "kind": s.spec.family if s.spec.family != "pool" else s.spec.kind,
                   "shape": list(s.out_shape)} for s in config.layers]
        return {"name": config.name, "checkpoint": self.loaded.source, "classes": self.classes,
                "input": list(config.input.shape), "canvas": CANVAS, "layers": layers,
                "test_digits": 0 if self.test_images is None else int(len(self.test_images))}

    def predict(self, pixels: np.ndarray, styled: bool) -> dict:
        from .predict import feature_maps

        inp = self.loaded.config.input
        steps: dict = {"mnist_style": styled}
        if styled:
            result = mnist_style(pixels, inp.height, inp.width)
            digit = result.digit
            steps.update(box=result.box, fitted=list(result.fitted), offset=list(result.offset),
                         centre_of_mass=result.centre_of_mass)
        else:
            digit = np.clip(np.rint(area_resize(pixels, inp.height, inp.width) * 255), 0, 255).astype(np.uint8)
        steps.update(digit=encode(digit, 0, 255), height=inp.height, width=inp.width)
        with self.lock:
            _, maps, probs = feature_maps(self.loaded, digit)
        order = np.argsort(-probs, kind="stable")
        layers = []
        kinds = {s.spec.name: f"{s.spec.kind} pool" if s.spec.family == "pool" else s.spec.family
                 for s in self.loaded.config.layers}
        for name, _, array in maps:
            low, high = float(array.min()), float(array.max())
            layers.append({"name": name, "kind": kinds[name], "shape": list(array.shape), "min": low, "max": high,
                           "data": encode(array, low, high)})
        return {"label": self.classes[int(order[0])],
                "top": [{"class": self.classes[int(c)], "p": float(probs[c])} for c in order[:3]],
                "probabilities": [float(p) for p in probs], "preprocessing": steps, "layers": layers}

    def test_digit(self, query: str) -> dict:
        if self.test_images is None:
            raise LookupError("no test digits: the data folder has no MNIST test files (run cnn download)")
        values = parse_qs(query).get("index")
        n = len(self.test_images)
        if values:
            try:
                index = int(values[0])
            except ValueError:
                raise BadRequest(f"index: expected a whole number 0-{n - 1}, got {values[0]!r}") from None
            if not 0 <= index < n:
                raise BadRequest(f"index: {index} is outside 0-{n - 1}")
        else:
            index = int(np.random.default_rng().integers(n))
        image = self.test_images[index]
        if image.shape != (CANVAS, CANVAS):
            image = np.clip(np.rint(area_resize(image / 255.0, CANVAS, CANVAS) * 255), 0, 255).astype(np.uint8)
        return {"index": index, "label": int(self.test_labels[index]), "pixels": image.reshape(-1).tolist()}


class Handler(BaseHTTPRequestHandler):
    server_version = "cnn-serve"
    app: DigitModel  # set on the subclass make_server builds
    quiet = False
    timeout = 30  # seconds a stalled client may hold its thread (a body shorter than its Content-Length)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path in STATIC:
            name, kind = STATIC[url.path]
            self.reply(HTTPStatus.OK, (PAGE_DIR / name).read_bytes(), kind)
        elif url.path == "/api/info":
            self.reply_json(HTTPStatus.OK, self.app.info())
        elif url.path == "/api/test-digit":
            self.answer(lambda: self.app.test_digit(url.query))
        else:
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"{url.path}: no such page"})

    def do_POST(self):
        if urlsplit(self.path).path != "/api/predict":
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": f"{self.path}: POST goes to /api/predict"})
            return
        self.answer(lambda: self.app.predict(*parse_pixels(self.read_body())))

    def read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise BadRequest("a Content-Length header is required")
        if int(length) > MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for the next request
            raise BadRequest(f"body of {int(length):,} bytes is over the limit of {MAX_BODY:,}")
        return self.rfile.read(int(length))

    def answer(self, compute) -> None:
        try:
            self.reply_json(HTTPStatus.OK, compute())
        except BadRequest as error:
            self.reply_json(HTTPStatus.BAD_REQUEST, {"error": str(error)})
        except LookupError as error:
            self.reply_json(HTTPStatus.NOT_FOUND, {"error": str(error.args[0])})
        except Exception as error:  # a bug: the page gets a message, the log the traceback, the server goes on
            traceback.print_exc()
            self.reply_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {error}"})

    def reply_json(self, status: HTTPStatus, payload: dict) -> None:
        self.reply(status, json.dumps(payload).encode("utf-8"), "application/json")

    def reply(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        if not self.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def load_test_digits(data_dir: Optional[Path]):
    """(images, labels) of the test split when both files are in the folder; (None, None) otherwise."""
    if data_dir is None or not all(p.is_file() for p in split_paths(data_dir, "test")):
        return None, None
    try:
        return load_split(data_dir, "test")
    except UserError as error:  # the page works without them: say why the button is off, and serve
        print(f"warning: no test digits for the page: {error}", file=sys.stderr)
        return None, None


def make_server(checkpoint: Path, host: str = "127.0.0.1", port: int = 8000, data_dir: Optional[Path] = None,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A bound server (port 0: any free port) with the model loaded and its kernels warmed up."""
    from .trained import load_trained

    loaded = load_trained(checkpoint)
    if loaded.config.input.channels != 1:
        raise UserError(f"{checkpoint}: the model takes {loaded.config.input.channels}-channel images; "
                        f"the drawing page makes grayscale digits")
    app = DigitModel(loaded, *load_test_digits(data_dir))
    app.predict(np.zeros((CANVAS, CANVAS)), True)  # compile or load the kernels before the first visitor
    handler = type("BoundHandler", (Handler,), {"app": app, "quiet": quiet})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error}); "
                        f"choose another --port") from None
    server.daemon_threads = True
    return server


def run_serve(checkpoint: Path, host: str, port: int, data_dir: Optional[Path]) -> None:
    server = make_server(checkpoint, host, port, data_dir)
    bound_host, bound_port = server.server_address[:2]
    print(f"serving {checkpoint} at http://{bound_host}:{bound_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
