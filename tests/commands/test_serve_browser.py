"""`cnn serve` in a real browser: headless Chromium (Debian's package) driven by Playwright.

A small lenet5 is trained for two epochs on real digits (the shared sample when
present, generated ones otherwise, where class 1 is a vertical bar too); the test
draws a vertical stroke with the mouse and with a finger (CDP touch events) and
expects the page to answer "1", with the MNIST-style views and a picture per
feature map of every conv and pool layer. Screenshots go to $CNN_TEST_ARTEFACTS
(or the test's tmp_path); their paths are printed.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnn_cli.cli import app
from cnn_cli.commands.serve import make_server
from idx_fixtures import make_mnist_folder

SHARED_SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "mnist-sample"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LAYERS = [("conv1", 6), ("pool1", 6), ("conv2", 16), ("pool2", 16)]  # lenet5's conv and pool layers

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install -y chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install playwright")


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    if (SHARED_SAMPLE / "train-images-idx3-ubyte.gz").is_file():
        data = SHARED_SAMPLE
    else:
        data = make_mnist_folder(base / "mnist", n_train=1000, n_test=100, seed=3).folder
    result = CliRunner().invoke(app, ["train", "lenet5", "--data-dir", str(data), "--epochs", "2", "--offline",
                                      "--quiet", "--run-dir", str(base / "run"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    server = make_server(base / "run" / "best.npz", "127.0.0.1", 0, data, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # Playwright's own browser download is unreachable here: drive the system's chromium.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def artefact(tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("CNN_TEST_ARTEFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def open_page(browser, url: str, touch: bool = False):
    context = browser.new_context(viewport={"width": 1280, "height": 1100}, has_touch=touch)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.goto(url)
    page.wait_for_function("document.getElementById('model').textContent.startsWith('lenet5')")
    return page, errors


def answers(page) -> int:
    return int(page.eval_on_selector("#pad", "pad => pad.dataset.answers || '0'"))


def stroke_points(page, steps: int = 16) -> list[tuple[float, float]]:
    """A vertical line down the middle of the drawing area: a "1"."""
    box = page.locator("#pad").bounding_box()
    x = box["x"] + box["width"] / 2
    top, bottom = box["y"] + 0.15 * box["height"], box["y"] + 0.85 * box["height"]
    return [(x, top + (bottom - top) * i / steps) for i in range(steps + 1)]


def check_answer_and_pictures(page, expected: str) -> None:
    page.wait_for_function(f"document.getElementById('label').textContent === '{expected}'", timeout=15000)
    top = page.locator("#top3 li").all_inner_texts()
    assert len(top) == 3 and top[0].startswith(expected), top
    rows = page.locator("#layers .layer")
    assert [rows.nth(i).get_attribute("data-layer") for i in range(rows.count())] == [n for n, _ in LAYERS]
    for name, maps in LAYERS:
        assert page.locator(f"#layers .layer[data-layer='{name}'] canvas").count() == maps
    # The pictures are drawn: each view and the first conv map hold more than one colour.
    for selector in ("#raw", "#styled", "#layers .layer[data-layer='conv1'] canvas"):
        colours = page.eval_on_selector(selector, """canvas => {
            const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
            return seen.size; }""")
        assert colours > 1, selector
    note = page.locator("#prep-note").inner_text()
    assert "centre of mass" in note, note


def test_drawing_a_one_with_the_mouse(browser, page_url, tmp_path):
    page, errors = open_page(browser, page_url)
    assert page.locator("#label").inner_text() == "–"
    points = stroke_points(page)
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point)
    page.mouse.up()
    check_answer_and_pictures(page, "1")
    shot = artefact(tmp_path, "serve-mouse-one.png")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert not errors, errors

    page.click("#clear")
    assert page.locator("#label").inner_text() == "–" and page.locator("#layers .layer").count() == 0


def test_drawing_a_one_with_a_finger(browser, page_url, tmp_path):
    page, errors = open_page(browser, page_url, touch=True)
    cdp = page.context.new_cdp_session(page)
    points = stroke_points(page)
    for kind, point in [("touchStart", points[0]), *[("touchMove", p) for p in points[1:]]]:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": point[0], "y": point[1]}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    check_answer_and_pictures(page, "1")
    page.screenshot(path=str(artefact(tmp_path, "serve-touch-one.png")), full_page=True)
    assert not errors, errors


def test_show_a_test_digit(browser, page_url, tmp_path):
    page, errors = open_page(browser, page_url)
    page.click("#test-digit")
    page.wait_for_function("document.getElementById('hint').textContent.startsWith('Test digit #')")
    page.wait_for_function("Number(document.getElementById('pad').dataset.answers || 0) >= 1")
    hint = page.locator("#hint").inner_text()
    label = page.locator("#label").inner_text()
    assert label in [str(i) for i in range(10)], label
    assert "sent as it is" in page.locator("#prep-note").inner_text()
    page.screenshot(path=str(artefact(tmp_path, "serve-test-digit.png")), full_page=True)
    print(f"{hint} → the page says {label}")
    assert not errors, errors
