"""Draw a digit in the browser, see it recognised, and watch backprop happen, layer by layer.

    python examples/digit_app.py                      # then open the address it prints
    python examples/digit_app.py --model mnist_cnn.npz --port 8000 --host 127.0.0.1

With no --model it uses mnist_mlp.npz or mnist_cnn.npz in this folder (the names the
README's commands save), else the model it trained itself before (in the tinynet cache),
else it trains a small MLP on MNIST first (a few seconds on 2 cores) and keeps it for next
time. --model takes a tinynet .npz or a .keras file, Keras's own included.

The page (examples/digit_app/: plain HTML, CSS and JavaScript, nothing from the network)
talks to a JSON API that any client can use:

    POST /api/predict   {"drawing": H rows of W numbers in [0, 1], white on black}
                        or {"image": 28 rows of 28, already MNIST-like}
                    ->  {"label", "probabilities", "input": the 28x28 the model saw, "layers"}
    POST /api/backward  {"image": 28x28, "label": 0..9}
                    ->  {"loss", "layers": [last to first: gy, gradients, gx, formula]}
    POST /api/learn     {"image": 28x28, "label": 0..9}: one optimizer step, in memory only
                    ->  {"before": {...}, "after": {...}, "loss"}
    POST /api/reset     the model as it was loaded
    GET  /api/model     its layers, and whether it was changed by /api/learn

A drawing is prepared the way MNIST's digits were, by tinynet.images.prepare_digit, the
function examples/predict_digits.py uses too. The backward pass is the library's own
(each layer's backward), run on the same forward the prediction showed: dropout off,
batch normalisation with its moving statistics. The server is the standard library's
ThreadingHTTPServer: five JSON routes and three static files need no framework.
It binds 127.0.0.1 unless --host says otherwise; no request names a file; one lock
serialises every use of the model, so concurrent requests are safe.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

import tinynet as tn
from tinynet.engine import keras_rules
from tinynet.images import prepare_digit

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digit_app")
FILES = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
MAX_BODY = 1 << 20  # bytes: a 28x28 image is 5 KB of JSON, a 140x140 drawing about 100 KB
MAX_DRAWING = 512  # pixels on a side


class BadRequest(ValueError):
    """A request the API refuses with 400 (or ``status``), its message saying what was expected."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------ checking what comes in


def _grid(value, what, rows=None, cols=None, limit=MAX_DRAWING):
    """A list of equal rows of plain numbers in [0, 1], as float32; any other thing is refused."""
    shape = f"{rows} rows of {cols} numbers" if rows else f"a list of rows (at most {limit}x{limit}) of numbers"
    expected = f'"{what}" should be {shape} in [0, 1]'
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise BadRequest(f"{expected}, got {type(value).__name__}")
    if rows and (len(value) != rows or any(len(r) != cols for r in value)):
        raise BadRequest(f"{expected}, got {len(value)} rows of {sorted({len(r) for r in value})[:5]} numbers")
    if len(value) > limit or len({len(r) for r in value}) != 1 or not 1 <= len(value[0]) <= limit:
        raise BadRequest(f"{expected}, got {len(value)} rows of {sorted({len(r) for r in value})[:5]} numbers")
    for r in value:
        for v in r:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise BadRequest(f"{expected}, got a {type(v).__name__} ({json.dumps(v)[:40]})")
    try:
        a = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an integer of hundreds of digits
        raise BadRequest(f"{expected}, got an integer too large for a float") from None
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise BadRequest(f"{expected}, got values from {a.min()} to {a.max()}")
    return a.astype(np.float32)


def _label(body):
    if "label" not in body:
        raise BadRequest('"label" is missing: the true digit, an integer 0..9')
    label = body["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
        raise BadRequest(f'"label" should be an integer 0..9, got {json.dumps(label)[:40]}')
    return label


def _image(body, allow_drawing=False):
    """The 28x28 input the model reads: ``image`` as given, or ``drawing`` prepared MNIST-style."""
    if "image" in body and "drawing" in body:
        raise BadRequest('send either "image" (28x28, prepared) or "drawing" (any size, to prepare), not both')
    if "image" in body:
        return _grid(body["image"], "image", 28, 28)
    if allow_drawing and "drawing" in body:
        try:
            return prepare_digit(_grid(body["drawing"], "drawing"))
        except BadRequest:
            raise
        except ValueError as e:  # blank: nothing drawn
            raise BadRequest(f'"drawing": {e}', HTTPStatus.UNPROCESSABLE_ENTITY) from None
    wanted = '"image" (28 rows of 28 numbers in [0, 1])' + (' or "drawing"' if allow_drawing else "")
    raise BadRequest(f"{wanted} is missing")


# ------------------------------------------------------------------ what the page shows


def _nested(a):
    return np.asarray(a, dtype=np.float64).tolist()


def _layer_info(layer):
    forward, _, backward = (getattr(layer, "formula", "") or "").partition("  |  ")
    return {"name": layer.name, "class_name": type(layer).__name__, "forward": forward, "backward": backward}


class DigitApp:
    """The model behind the API, and a copy of it as loaded for /api/reset."""

    def __init__(self, model, source=""):
        if not model.built or model.input_shape not in ((784,), (28, 28, 1), (28, 28)):
            raise ValueError(f"the app needs a model of MNIST images, (784,) or (28, 28, 1); got {model.input_shape}")
        head = type(keras_rules.output_head(model)).__name__
        if head != "Softmax":
            raise ValueError(
                f"the app shows ten probabilities and the loss -log p[label]: it needs a model ending in a "
                f"softmax (Dense(10, activation='softmax')), this one ends in {head}"
            )
        if model.optimizer is None:  # a .keras file saved without its compile settings
            model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        if "categorical_crossentropy" not in model.loss.name:
            raise ValueError(f"the app needs a cross-entropy loss, the model was compiled with {model.loss.name}")
        self.model, self.source, self.lock = model, source, threading.Lock()
        outputs = self._forward(np.zeros((28, 28), np.float32))
        if outputs[-1].shape != (10,):
            raise ValueError(f"the app needs a model of ten outputs, one per digit; this one has {outputs[-1].shape}")
        self.original = copy.deepcopy(model)
        self.changed = False

    def _x(self, image):
        return image.reshape((1,) + self.model.input_shape)

    def _y(self, label):
        if "sparse" in self.model.loss.name:
            return np.array([label])
        return np.eye(10, dtype=np.float32)[[label]]

    def _forward(self, image):
        """Every layer's output on this image, inference mode (dropout off, BN's moving statistics)."""
        out, outputs = self._x(image), []
        for layer in self.model.layers:
            out = layer.forward(out, training=False)
            outputs.append(tn.backend.to_numpy(out)[0])
        return outputs

    def _prediction(self, image):
        outputs = self._forward(image)
        p = outputs[-1].astype(np.float64)
        return {"label": int(np.argmax(p)), "probabilities": p.tolist()}, outputs

    def predict(self, image):
        with self.lock:
            answer, outputs = self._prediction(image)
        answer["input"] = _nested(image)
        answer["layers"] = [
            {**_layer_info(layer), "shape": list(y.shape), "output": _nested(y)}
            for layer, y in zip(self.model.layers, outputs)
        ]
        return answer

    def backward(self, image, label):
        """The library's own backward pass on the forward the prediction showed."""
        with self.lock:
            model, x, y = self.model, self._x(image), self._y(label)
            with keras_rules.loss_for(model) as loss_fn:
                out = model.forward(x, training=False)  # dropout off, BN's moving statistics: as predict showed
                loss = float(loss_fn.forward(out, y))
                g, rows = loss_fn.backward(), []
                for layer in reversed(model.layers):
                    gy = g
                    g = layer.backward(gy)
                    rows.append(
                        {
                            **_layer_info(layer),
                            "gy": _nested(tn.backend.to_numpy(gy)[0]),
                            "gx": _nested(tn.backend.to_numpy(g)[0]),
                            "gradients": {p.name: _nested(tn.backend.to_numpy(p.grad)) for p in layer.parameters()},
                        }
                    )
            p = tn.backend.to_numpy(out)[0].astype(np.float64)
        return {"loss": loss, "label": label, "probabilities": p.tolist(), "layers": rows}

    def learn(self, image, label):
        """One optimizer step on this image and label (``train_on_batch``), in memory only."""
        with self.lock:
            before, _ = self._prediction(image)
            loss = float(self.model.train_on_batch(self._x(image), self._y(label), return_dict=True)["loss"])
            after, _ = self._prediction(image)
            self.changed = True
        return {"before": before, "after": after, "loss": loss, "label": label}

    def reset(self):
        with self.lock:
            self.model, self.changed = copy.deepcopy(self.original), False
        return self.describe()

    def describe(self):
        with self.lock:
            return {
                "source": self.source,
                "input_shape": list(self.model.input_shape),
                "changed": self.changed,
                "layers": [_layer_info(layer) for layer in self.model.layers],
            }


# ------------------------------------------------------------------ the server


def make_handler(app: DigitApp):
    routes = {
        "/api/predict": lambda b: app.predict(_image(b, allow_drawing=True)),
        "/api/backward": lambda b: app.backward(_image(b), _label(b)),
        "/api/learn": lambda b: app.learn(_image(b), _label(b)),
        "/api/reset": lambda b: app.reset(),
    }
    no_body = {"/api/reset"}

    class Handler(BaseHTTPRequestHandler):
        server_version = "tinynet-digit-app"

        def log_message(self, format, *args):  # quiet: the terminal shows the address, not every request
            pass

        def _send(self, status, body: bytes, kind="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", kind + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status, obj):
            self._send(status, json.dumps(obj, allow_nan=False).encode())

        def _error(self, status, message):
            self._json(status, {"error": message})

        def send_error(self, code, message=None, explain=None):  # the standard library's own errors, as JSON
            self.close_connection = True
            self._error(code, message or HTTPStatus(code).phrase)

        def _not_allowed(self):
            path = self.path.split("?")[0]
            allowed = "POST" if path in routes else "GET"
            self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
            body = json.dumps({"error": f"{self.command} {path} is not served; use {allowed}"}).encode()
            self.send_header("Allow", allowed)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

        def do_GET(self):
            path = self.path.split("?")[0]
            if path in routes:
                return self._not_allowed()
            if path == "/favicon.ico":
                self.send_response(HTTPStatus.NO_CONTENT)
                self.send_header("Content-Length", "0")
                return self.end_headers()
            if path in FILES:
                name, kind = FILES[path]
                with open(os.path.join(STATIC, name), "rb") as f:
                    return self._send(HTTPStatus.OK, f.read(), kind)
            if path == "/api/model":
                return self._json(HTTPStatus.OK, app.describe())
            self._error(HTTPStatus.NOT_FOUND, f"no page {path}; the app serves / and the API under /api/")

        def do_POST(self):
            path = self.path.split("?")[0]
            if path not in routes:
                return self._error(HTTPStatus.NOT_FOUND, f"no API {path}; POST to {', '.join(routes)}")
            try:
                bodiless = self.headers.get("Content-Length") in (None, "0")
                body = {} if path in no_body and bodiless else self._body()
                self._json(HTTPStatus.OK, routes[path](body))
            except BadRequest as e:
                self._error(e.status, str(e))
            except Exception as e:  # never the server down: the page gets a message
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")

        def _body(self):
            length = self.headers.get("Content-Length")
            if length is None or not (length.isascii() and length.isdigit()):
                raise BadRequest("a JSON body with a Content-Length is expected", HTTPStatus.LENGTH_REQUIRED)
            if int(length) > MAX_BODY:
                self.close_connection = True
                if int(length) <= 4 * MAX_BODY:  # read and dropped, so the client gets the answer, not a reset
                    left = int(length)
                    while left > 0 and (chunk := self.rfile.read(min(1 << 16, left))):
                        left -= len(chunk)
                raise BadRequest(
                    f"the body is {length} bytes; at most {MAX_BODY} are read", HTTPStatus.REQUEST_ENTITY_TOO_LARGE
                )
            raw = self.rfile.read(int(length))
            if not raw.strip():
                raise BadRequest('the body is empty; a JSON object is expected, such as {"image": [...]}')
            try:
                body = json.loads(raw, parse_constant=_no_constant)
            except (ValueError, UnicodeDecodeError) as e:
                raise BadRequest(f"the body is not valid JSON ({e})") from None
            except RecursionError:
                raise BadRequest("the body's JSON is nested too deep; 28 rows of 28 numbers is two levels") from None
            if not isinstance(body, dict):
                raise BadRequest(f"the body should be a JSON object, got {type(body).__name__}")
            return body

    return Handler


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the standard library's 5 resets a burst of requests from one page or test


def make_server(app: DigitApp, host="127.0.0.1", port=8000) -> ThreadingHTTPServer:
    handler = make_handler(app)
    handler.timeout = 30  # seconds: a client that stalls mid-request gives its thread back
    return _Server((host, port), handler)


# ------------------------------------------------------------------ the model to serve


def _cache_path():
    from tinynet.datasets import mnist

    return os.path.join(os.path.dirname(mnist.cache_dir()), "digit_app", "mlp.npz")  # beside MNIST's cache


def train_small_mlp(data_dir=None, epochs=3, verify=True):
    """A 784-128-10 MLP trained on MNIST (Adam, batch 128): 96.6% on the test set after 3 epochs."""
    from tinynet import preprocessing
    from tinynet.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data(data_dir, verify=verify)
    x_train = preprocessing.scale(x_train).reshape(len(x_train), -1)
    x_test = preprocessing.scale(x_test).reshape(len(x_test), -1)
    model = tn.Sequential(
        [tn.Input((784,)), tn.Dense(128, activation="relu"), tn.Dense(10, activation="softmax")], seed=0
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=1)
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    print(f"test accuracy: {accuracy:.4f}")
    return model


def find_model(args):
    """(model, where it came from): --model, the examples' saved models, the cache, or a new one."""
    if args.model:
        return tn.load_model(args.model), args.model
    for name in ("mnist_mlp.npz", "mnist_cnn.npz"):
        if os.path.isfile(name):
            return tn.load_model(name), name
    cached = _cache_path()
    if os.path.isfile(cached):
        return tn.load_model(cached), cached
    print("no saved model found (mnist_mlp.npz, mnist_cnn.npz, or the app's own): training a small MLP first")
    model = train_small_mlp(args.data_dir, verify=not args.no_verify)
    print(f"model saved to {model.save(cached)} (used next time; --model PATH for another)")
    return model, cached


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a tinynet .npz or a .keras file (default: see above)")
    p.add_argument("--port", type=int, default=8000, help="default: 8000 (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine only)")
    p.add_argument("--data-dir", default=None, help="MNIST, when a model must be trained (default: as mnist_mlp.py)")
    p.add_argument("--no-verify", action="store_true", help="do not check the MNIST files' checksums")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port expects 0..65535, got {args.port}")
    try:
        import PIL.Image  # noqa: F401  (prepare_digit resizes with it)
    except ImportError as e:
        print(f'error: the app needs Pillow ({e}): pip install -e ".[app]" or pip install pillow', file=sys.stderr)
        return 2
    try:
        model, source = find_model(args)
        app = DigitApp(model, source)
    except (tn.ModelFileError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        server = make_server(app, args.host, args.port)
    except OSError as e:
        print(f"error: cannot serve on {args.host}:{args.port} ({e.strerror}); try --port 0", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"model: {source} ({model.count_params()} parameters)")
    print(f"serving at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
