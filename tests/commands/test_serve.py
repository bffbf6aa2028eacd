"""`cnn serve` over HTTP, without a browser: answers, the 400s, and that it keeps serving."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cnn_cli.nn.checkpoint import save_checkpoint
from cnn_cli.cli import app
from cnn_cli.commands.serve import MAX_BODY, PAGE_DIR, make_server
from cnn_cli.spec.config import load_config
from cnn_cli.data import load_split
from cnn_cli.errors import UserError
from cnn_cli.data.mnist_style import mnist_style
from cnn_cli.commands.trained import load_trained
from cnn_cli.nn.model import Model
from idx_fixtures import make_mnist_folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(host, port, checkpoint, data folder) of a running server with a random-weight lenet5-classic."""
    base = tmp_path_factory.mktemp("serve-http")
    model = Model(load_config("lenet5-classic"), seed=4)
    ckpt = base / "m.npz"
    save_checkpoint(ckpt, model.state_dict(), {}, model.config.resolved, {})
    data = make_mnist_folder(base / "mnist", n_train=20, n_test=30, seed=1).folder
    server = make_server(ckpt, "127.0.0.1", 0, data, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    yield host, port, ckpt, data
    server.shutdown()
    server.server_close()


def request(served, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = served[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def predict(served, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, raw = request(served, "POST", "/api/predict", body, {"Content-Type": "application/json"})
    return status, json.loads(raw)


def vertical_stroke() -> np.ndarray:
    pixels = np.zeros((28, 28))
    pixels[3:25, 6:9] = 255  # a "1", off to the left
    return pixels


def test_page_files_load_nothing_from_the_internet(served):
    status, kind, html = request(served, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b'<canvas id="pad"' in html
    for name in ("app.js", "style.css"):
        status, _, body = request(served, "GET", f"/{name}")
        assert status == 200 and body == (PAGE_DIR / name).read_bytes()
    for path in PAGE_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


def test_info(served):
    status, _, raw = request(served, "GET", "/api/info")
    info = json.loads(raw)
    assert status == 200 and info["name"] == "lenet5-classic" and info["input"] == [1, 32, 32]
    assert info["classes"] == [str(i) for i in range(10)] and info["test_digits"] == 30


def test_predict_runs_our_model_on_the_mnist_style_digit(served):
    pixels = vertical_stroke()
    status, answer = predict(served, {"pixels": pixels.reshape(-1).tolist()})
    assert status == 200, answer
    styled = mnist_style(pixels / 255.0)
    steps = answer["preprocessing"]
    assert steps["box"] == [3, 6, 25, 9] and steps["fitted"] == list(styled.fitted)
    assert base64.b64decode(steps["digit"]) == styled.digit.tobytes()
    loaded = load_trained(served[2])
    expected = loaded.model.predict_proba(loaded.prepare(styled.digit[None]))[0]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-5, atol=1e-7)
    assert [t["class"] for t in answer["top"]] == [str(c) for c in np.argsort(-expected, kind="stable")[:3]]
    assert answer["label"] == answer["top"][0]["class"]
    names = [(layer["name"], layer["kind"], layer["shape"]) for layer in answer["layers"]]
    assert names == [("C1", "conv", [6, 28, 28]), ("S2", "subsample pool", [6, 14, 14]),
                     ("C3", "conv", [16, 10, 10]), ("S4", "subsample pool", [16, 5, 5]),
                     ("C5", "conv", [120, 1, 1])]
    for layer in answer["layers"]:
        assert len(base64.b64decode(layer["data"])) == int(np.prod(layer["shape"]))


def test_test_digits(served):
    images, labels = load_split(served[3], "test")
    status, _, raw = request(served, "GET", "/api/test-digit?index=7")
    digit = json.loads(raw)
    assert status == 200 and digit["label"] == int(labels[7]) and digit["pixels"] == images[7].reshape(-1).tolist()
    status, answer = predict(served, {"pixels": digit["pixels"], "mnist_style": False})
    assert status == 200 and answer["preprocessing"]["mnist_style"] is False
    assert base64.b64decode(answer["preprocessing"]["digit"]) == images[7].tobytes()  # sent as it is
    for query, needle in (("index=x", "whole number"), ("index=30", "outside 0-29")):
        status, _, raw = request(served, "GET", f"/api/test-digit?{query}")
        assert status == 400 and needle in json.loads(raw)["error"]


@pytest.mark.parametrize("body,needle", [
    ({"pixels": [0] * 783}, "expected 784 numbers"),
    ({"pixels": [[0] * 28] * 28}, "got a list of 28"),
    ({"pixels": ["a"] + [0] * 783}, 'pixels[0]: expected a number 0-255, got "a"'),
    ({"pixels": [0] * 783 + [None]}, "pixels[783]: expected a number 0-255, got null"),
    ({"pixels": [True] + [0] * 783}, "got true"),
    ({"pixels": [0, 300] + [0] * 782}, "pixels[1]: 300 is outside 0-255"),
    ({"pixels": [0] * 784, "mnist_style": "yes"}, "mnist_style: expected true or false"),
    ({"image": [0] * 784}, "a 'pixels' list"),
    (b'{"pixels": [NaN' + b", 0" * 783 + b"]}", "got NaN"),
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
])
def test_bad_requests_get_400_and_the_server_keeps_serving(served, body, needle):
    status, answer = predict(served, body)
    assert status == 400 and needle in answer["error"], answer
    assert predict(served, {"pixels": [0] * 784})[0] == 200


def test_huge_and_unsized_bodies(served):
    status, _, raw = request(served, "POST", "/api/predict", b"[" + b"0," * MAX_BODY + b"0]")
    assert status == 400 and "over the limit" in json.loads(raw)["error"]
    host, port = served[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.putrequest("POST", "/api/predict")  # no Content-Length, no body
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()
    assert predict(served, {"pixels": [0] * 784})[0] == 200
    assert request(served, "GET", "/nowhere")[0] == 404


def test_port_in_use_and_bad_checkpoint_are_user_errors(served, tmp_path):
    host, port, ckpt, _ = served
    with pytest.raises(UserError, match=f"--port {port}: cannot listen"):
        make_server(ckpt, host, port, None, quiet=True)
    result = CliRunner().invoke(app, ["serve", str(tmp_path / "none.npz")])
    assert result.exit_code == 2 and "no such checkpoint file" in result.output
