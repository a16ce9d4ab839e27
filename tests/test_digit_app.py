"""examples/digit_app.py: its JSON API (every bad input refused with a 4xx and a message,
the backward pass equal to the formulas, learn and reset, concurrent requests), its start
from a fresh cache, and its page driven in a real headless Chromium.

The browser tests need Debian's chromium and Playwright's Python package; they skip with
the reason where either is missing, unless TINYNET_REQUIRE_BROWSER=1 (as .ci/run sets),
where a missing browser fails them. The drawn-digit tests need the real MNIST
(TINYNET_DATA_DIR): a model trained on it for a few seconds reads a mouse-drawn digit.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from synthetic import write_mnist_dir

import tinynet as tn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import digit_app  # noqa: E402

pytest.importorskip("PIL")
CHROMIUM = os.environ.get("TINYNET_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = os.path.join(ROOT, "examples", "digit_app", "screenshot.png")


def _real_mnist():
    directory = os.environ.get("TINYNET_DATA_DIR")
    return directory if directory and os.path.isdir(directory) else None


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    if _real_mnist():
        return digit_app.train_small_mlp(_real_mnist(), epochs=2)
    data = tmp_path_factory.mktemp("mnist")
    write_mnist_dir(data, n_train=400, n_test=100)
    return digit_app.train_small_mlp(str(data), epochs=3, verify=False)


@pytest.fixture(scope="module")
def server(model):
    app = digit_app.DigitApp(model, "test model")
    httpd = digit_app.make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(base, path, body=None, raw=None, headers=None):
    """(status, JSON answer) of a POST (or a GET when neither body nor raw is given)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        base + path, data=data, headers=headers or {}, method="GET" if data is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _digit(k=0):
    """A 28x28 image in [0, 1]: a vertical bar (a "1"), shifted by k columns."""
    a = np.zeros((28, 28))
    a[4:24, 13 + k : 16 + k] = 1.0
    return a


# ------------------------------------------------------------------ the API


def test_predict_answers_probabilities_the_input_and_every_layer(server):
    app, base = server
    status, answer = call(base, "/api/predict", {"image": _digit().tolist()})
    assert status == 200
    p = np.array(answer["probabilities"])
    assert p.shape == (10,) and p.sum() == pytest.approx(1, abs=1e-5) and answer["label"] == int(p.argmax())
    np.testing.assert_allclose(p, app.model.predict(_digit().reshape(1, 784).astype(np.float32))[0], rtol=1e-5)
    assert np.array(answer["input"]).shape == (28, 28)
    assert [(la["class_name"], len(la["output"])) for la in answer["layers"]] == [("Dense", 128), ("Dense", 10)]
    assert answer["layers"][0]["forward"] == "y = act(x W + b)"


def test_a_drawing_is_prepared_by_the_librarys_own_function(server):
    _, base = server
    drawing = np.zeros((140, 140))
    drawing[10:60, 100:112] = 1.0  # small, in a corner
    status, answer = call(base, "/api/predict", {"drawing": drawing.tolist()})
    assert status == 200
    np.testing.assert_allclose(answer["input"], tn.images.prepare_digit(drawing.astype(np.float32)), atol=1e-6)


def test_backward_is_the_formula_on_the_forward_the_prediction_showed(server):
    app, base = server
    image = _digit(2).tolist()
    _, shown = call(base, "/api/predict", {"image": image})
    status, answer = call(base, "/api/backward", {"image": image, "label": 7})
    assert status == 200
    p = np.array(shown["probabilities"])
    assert answer["loss"] == pytest.approx(-np.log(p[7]), rel=1e-5)
    last, first = answer["layers"][0], answer["layers"][-1]
    assert last["name"] == app.model.layers[-1].name  # last layer first
    np.testing.assert_allclose(last["gradients"]["bias"], p - np.eye(10)[7], atol=1e-6)  # softmax + cross-entropy
    x = np.array(image).reshape(784)
    gz = np.array(first["gy"]) * (np.array(shown["layers"][0]["output"]) > 0)  # through the ReLU
    np.testing.assert_allclose(first["gradients"]["kernel"], np.outer(x, gz), atol=1e-6)  # gW = x^T gz
    assert np.array(first["gx"]).shape == (784,)
    assert "gW = x^T gz" in first["backward"]


def test_learn_moves_the_prediction_toward_the_label_in_memory_only_and_reset_undoes_it(server, tmp_path):
    app, base = server
    before = [w.copy() for w in app.model.get_weights()]
    image = _digit(-3).tolist()
    _, start = call(base, "/api/predict", {"image": image})
    label = int(np.argsort(start["probabilities"])[0])  # its least likely digit
    status, answer = call(base, "/api/learn", {"image": image, "label": label})
    assert status == 200
    assert answer["after"]["probabilities"][label] > answer["before"]["probabilities"][label]
    assert answer["before"]["probabilities"] == pytest.approx(start["probabilities"], abs=1e-6)
    assert call(base, "/api/model")[1]["changed"] is True
    status, described = call(base, "/api/reset", {})
    assert status == 200 and described["changed"] is False
    for w, w0 in zip(app.model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    _, again = call(base, "/api/predict", {"image": image})
    assert again["probabilities"] == pytest.approx(start["probabilities"], abs=1e-7)


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "the body is empty"),
    (b"[1, 2]", 400, "should be a JSON object"),
    (b'{"imag": []}', 400, '"image" (28 rows of 28 numbers in [0, 1]) or "drawing" is missing'),
    (json.dumps({"image": [[0.5] * 28] * 27}).encode(), 400, "got 27 rows of [28] numbers"),
    (json.dumps({"image": [[0.5] * 27] * 28}).encode(), 400, "got 28 rows of [27] numbers"),
    (json.dumps({"image": [["a"] * 28] * 28}).encode(), 400, 'got a str ("a")'),
    (json.dumps({"image": [[True] * 28] * 28}).encode(), 400, "got a bool"),
    (b'{"image": [[NaN]]}', 400, "NaN is not a number JSON allows"),
    (("{" + '"image": [' + ",".join(["[" + ",".join(["Infinity"] * 28) + "]"] * 28) + "]}").encode(), 400, "Infinity"),
    (json.dumps({"image": [[2.0] * 28] * 28}).encode(), 400, "got values from 2.0 to 2.0"),
    (json.dumps({"image": "a picture"}).encode(), 400, "got str"),
    (json.dumps({"drawing": [[0.0] * 30] * 30}).encode(), 422, "the image is blank"),
    (json.dumps({"drawing": [[0.0] * 600] * 2}).encode(), 400, "at most 512x512"),
    (json.dumps({"drawing": [[0.0] * 5, [0.0] * 6]}).encode(), 400, "got 2 rows of [5, 6] numbers"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deep"),
    (b'{"drawing": [[1' + b"0" * 400 + b"]]}", 400, "an integer too large for a float"),
    (json.dumps({"image": _digit().tolist(), "drawing": [[0.5]]}).encode(), 400, "not both"),
]


@pytest.mark.parametrize("raw, status, message", BAD)
def test_bad_input_gets_a_4xx_that_says_what_was_expected(server, raw, status, message):
    _, base = server
    got, answer = call(base, "/api/predict", raw=raw)
    assert (got, message in answer["error"]) == (status, True), answer


@pytest.mark.parametrize(
    "body, message",
    [
        ({"image": _digit().tolist()}, '"label" is missing'),
        ({"image": _digit().tolist(), "label": 10}, "an integer 0..9, got 10"),
        ({"image": _digit().tolist(), "label": "7"}, 'got "7"'),
        ({"image": _digit().tolist(), "label": 7.0}, "got 7.0"),
        ({"image": _digit().tolist(), "label": True}, "got true"),
        ({"label": 3}, '"image" (28 rows of 28 numbers in [0, 1]) is missing'),
    ],
)
@pytest.mark.parametrize("path", ["/api/backward", "/api/learn"])
def test_a_bad_label_is_refused_before_the_model_is_touched(server, path, body, message):
    app, base = server
    before = [w.copy() for w in app.model.get_weights()]
    status, answer = call(base, path, body)
    assert status == 400 and message in answer["error"], answer
    for w, w0 in zip(app.model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


def test_a_body_over_1_mb_or_without_a_length_is_refused_unread(server):
    _, base = server
    status, answer = call(base, "/api/predict", raw=b" " * ((1 << 20) + 1))
    assert status == 413 and "at most 1048576" in answer["error"]
    import http.client

    connection = http.client.HTTPConnection(base.split("//")[1], timeout=10)
    connection.putrequest("POST", "/api/predict")
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 411 and "Content-Length" in json.loads(answer.read())["error"]
    connection = http.client.HTTPConnection(base.split("//")[1], timeout=10)
    connection.putrequest("POST", "/api/predict")
    connection.putheader("Content-Length", str(10**10))  # 10 GB announced, none sent: answered at once
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and "at most 1048576" in json.loads(answer.read())["error"]


def test_other_methods_and_odd_headers_get_json_answers(server):
    import http.client

    _, base = server
    host = base.split("//")[1]
    for method, path, status in [("GET", "/api/predict", 405), ("PUT", "/api/predict", 405), ("HEAD", "/", 405)]:
        connection = http.client.HTTPConnection(host, timeout=10)
        connection.request(method, path)
        answer = connection.getresponse()
        body = answer.read()
        assert answer.status == status, (method, path)
        if method != "HEAD":
            assert "is not served; use" in json.loads(body)["error"]
    connection = http.client.HTTPConnection(host, timeout=10)
    connection.putrequest("POST", "/api/predict")
    connection.putheader("Content-Length", "\u00b2".encode().decode("latin-1"))  # a digit to str.isdigit only
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 411 and "error" in json.loads(answer.read())
    request = urllib.request.Request(base + "/api/reset", method="POST")  # no body at all, as curl -X POST sends
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read())["changed"] is False


@pytest.mark.parametrize(
    "head, message",
    [
        (lambda: [tn.Dense(5, activation="softmax")], r"ten outputs, one per digit; this one has \(5,\)"),
        (lambda: [tn.Dense(10)], "needs a model ending in a softmax"),
        (lambda: [tn.Dense(10, activation="sigmoid")], "this one ends in Sigmoid"),
    ],
)
def test_a_model_the_page_cannot_show_honestly_is_refused_at_start(head, message):
    model = tn.Sequential([tn.Input((784,)), tn.Dense(8, activation="relu"), *head()], seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=message):
        digit_app.DigitApp(model)


def test_learn_still_learns_after_a_reset_of_a_model_trained_in_this_process(model):
    app = digit_app.DigitApp(model, "trained here")  # fit in this process: its parameters are views of a buffer
    image, label = _digit(-2).astype(np.float32), 4
    first = app.learn(image, label)
    app.reset()
    again = app.learn(image, label)
    assert again["after"]["probabilities"][label] > again["before"]["probabilities"][label]
    assert again["after"]["probabilities"] == pytest.approx(first["after"]["probabilities"], abs=1e-7)
    app.reset()


def test_unknown_paths_and_files_are_404_and_no_request_names_a_file(server):
    _, base = server
    for path in ("/etc/passwd", "/../digit_app.py", "/api/nothing", "/index.html/.."):
        status, answer = call(base, path)
        assert status == 404 and "error" in answer
    assert call(base, "/api/load", {"path": "/etc/passwd"})[0] == 404


def test_concurrent_requests_are_safe(server):
    app, base = server
    image = _digit(1).tolist()
    _, expected = call(base, "/api/predict", {"image": image})
    results, errors = [], []

    def worker(k):
        try:
            if k % 3 == 0:
                results.append(call(base, "/api/predict", {"image": image})[1]["probabilities"])
            elif k % 3 == 1:
                assert call(base, "/api/backward", {"image": image, "label": k % 10})[0] == 200
            else:
                assert call(base, "/api/predict", raw=b"{bad")[0] == 400
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 10
    for p in results:
        assert p == pytest.approx(expected["probabilities"], abs=1e-7)


def test_the_app_starts_from_a_fresh_cache_by_training_and_then_reuses_its_model(tmp_path):
    data = tmp_path / "mnist"
    write_mnist_dir(data, n_train=300, n_test=100)
    env = {**os.environ, "PYTHONPATH": ROOT, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [sys.executable, os.path.join(ROOT, "examples", "digit_app.py"), "--port", "0", "--data-dir", str(data)]
    for run in ("train", "reuse"):
        started = time.perf_counter()
        process = subprocess.Popen(command + ["--no-verify"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
        try:
            lines = []
            while not lines or "serving at" not in lines[-1]:
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
            address = lines[-1].split("serving at ")[1].split()[0]
            seconds = time.perf_counter() - started
            with urllib.request.urlopen(address, timeout=10) as page:
                assert b'<canvas id="pad"' in page.read()
        finally:
            process.terminate()
            process.wait(20)
        said = "".join(lines)
        assert ("training a small MLP" in said) == (run == "train"), said
        assert seconds < 180, said
    assert (tmp_path / "cache" / "tinynet" / "digit_app" / "mlp.npz").is_file()


def test_the_app_serves_a_keras_file_and_refuses_a_model_of_other_inputs(tmp_path, model):
    pytest.importorskip("h5py")
    model.save(tmp_path / "m.keras")
    app = digit_app.DigitApp(tn.load_model(tmp_path / "m.keras"), "m.keras")
    assert app.predict(_digit().astype(np.float32))["label"] in range(10)
    keras_made = tn.load_model(os.path.join(ROOT, "tests", "fixtures", "keras_files", "cnn.keras"))  # saved by Keras
    answer = digit_app.DigitApp(keras_made, "cnn.keras").backward(_digit().astype(np.float32), 3)
    assert answer["layers"][-1]["class_name"] == "Conv2D" and answer["loss"] > 0
    other = tn.Sequential([tn.Input((5,)), tn.Dense(10, activation="softmax")])
    with pytest.raises(ValueError, match=r"needs a model of MNIST images.*got \(5,\)"):
        digit_app.DigitApp(other)


def test_a_convnet_shows_its_feature_maps_and_its_kernels_gradients():
    model = tn.Sequential(
        [
            tn.Input((28, 28, 1)),
            tn.Conv2D(4, 3, activation="relu"),
            tn.MaxPooling2D(2),
            tn.Dropout(0.5),
            tn.Flatten(),
            tn.Dense(10, activation="softmax"),
        ],
        seed=0,
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    app = digit_app.DigitApp(model, "cnn")
    image = _digit().astype(np.float32)
    shown = app.predict(image)
    assert [np.array(la["output"]).shape for la in shown["layers"]] == [
        (26, 26, 4),
        (13, 13, 4),
        (13, 13, 4),
        (676,),
        (10,),
    ]
    answer = app.backward(image, 2)
    p = np.array(shown["probabilities"])  # dropout off: the backward runs on the forward shown
    assert answer["loss"] == pytest.approx(-np.log(p[2]), rel=1e-5)
    np.testing.assert_allclose(answer["layers"][0]["gradients"]["bias"], p - np.eye(10)[2], atol=1e-6)
    conv = answer["layers"][-1]
    assert conv["class_name"] == "Conv2D" and np.array(conv["gradients"]["kernel"]).shape == (3, 3, 1, 4)
    assert np.array(conv["gy"]).shape == (26, 26, 4) and np.array(conv["gx"]).shape == (28, 28, 1)


# ------------------------------------------------------------------ the page, in a real browser


def _browser_missing():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright's Python package is not installed (pip install playwright)"
    if not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def page(server):
    missing = _browser_missing()
    if missing:
        if os.environ.get("TINYNET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TINYNET_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        tab = browser.new_page(viewport={"width": 1280, "height": 1500})
        tab.goto(server[1] + "/")
        tab.wait_for_function("document.getElementById('model-info').textContent.startsWith('model:')")
        yield tab
        browser.close()


def _stroke(page, points, box):
    """Draw through ``points`` (in a 0..1 square of the pad) with the mouse, as a person would."""
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + points[0][0] * w, y0 + points[0][1] * h)
    page.mouse.down()
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        for t in np.linspace(0, 1, 8)[1:]:
            page.mouse.move(x0 + (xa + t * (xb - xa)) * w, y0 + (ya + t * (yb - ya)) * h)
    page.mouse.up()


def _ring(cx, cy, rx, ry, n=24):
    return [(cx + rx * np.sin(a), cy - ry * np.cos(a)) for a in np.linspace(0, 2 * np.pi, n + 1)]


DIGITS = {  # strokes in a 0..1 square, then where they go: centred (large) or off-centre (small)
    "1": [[(0.5, 0.15), (0.5, 0.85)]],
    "0": [_ring(0.5, 0.5, 0.26, 0.36)],
    "7": [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
}
PLACES = {"centred": lambda x, y: (x, y), "off-centre": lambda x, y: (0.55 + 0.4 * x, 0.05 + 0.4 * y)}


def _draw(page, digit, place):
    page.click("#clear")
    box = page.locator("#pad").bounding_box()
    for stroke in DIGITS[digit]:
        _stroke(page, [PLACES[place](x, y) for x, y in stroke], box)
    page.wait_for_function("/^[0-9]/.test(document.getElementById('prediction').textContent)")
    return page.text_content("#prediction")


@pytest.mark.parametrize("place", list(PLACES))
@pytest.mark.parametrize("digit", list(DIGITS))
def test_a_digit_drawn_with_the_mouse_is_recognised(page, digit, place):
    if not _real_mnist():
        pytest.skip("recognising drawn digits needs a model of the real MNIST (set TINYNET_DATA_DIR)")
    said = _draw(page, digit, place)
    assert said.split()[0] == digit, f"drew a {digit} {place}, the page says {said!r}"
    bars = page.locator("#bars .bar")
    assert bars.count() == 10
    assert page.locator("#activations .layer").count() == 2


def test_the_backward_view_learning_and_clear_in_the_page(page):
    _draw(page, "7", "centred")
    page.select_option("#label", "3")
    page.click("#backward")
    page.wait_for_function("document.getElementById('loss').textContent.startsWith('loss')")
    assert "-log p[3]" in page.text_content("#loss")
    layers = page.locator("#gradients .layer")
    assert layers.count() == 2
    assert "gb = sum" in layers.nth(1).text_content() or "gW = x^T gz" in layers.nth(1).text_content()
    assert page.locator("#gradients .layer").nth(1).locator(".maps canvas").count() == 32  # 32 units as 28x28
    shot = _screenshot_path()
    page.screenshot(path=shot, full_page=True)
    with open(shot, "rb") as f:
        assert f.read(4) == b"\x89PNG"
    page.click("#learn")
    page.wait_for_function("document.getElementById('learned').textContent.startsWith('one step')")
    assert "on label 3" in page.text_content("#learned")
    page.wait_for_function("document.getElementById('model-info').textContent.includes('changed by Learn')")
    page.click("#reset")
    page.wait_for_function("!document.getElementById('model-info').textContent.includes('changed')")
    page.click("#clear")
    assert page.text_content("#prediction") == "draw a digit"
    assert page.locator("#gradients .layer").count() == 0


def _screenshot_path():
    """examples/digit_app/screenshot.png with TINYNET_UPDATE_SCREENSHOT=1, else a temporary file."""
    if os.environ.get("TINYNET_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
        return SCREENSHOT
    return os.path.join(os.environ.get("TMPDIR", "/tmp"), "tinynet_digit_app.png")
