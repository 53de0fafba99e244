"""`cnndsl serve`: the notes' "Draw your number here" page for a trained checkpoint.

A reader of checkpoints like `viz.py`, whose model loading and activation capture it
shares. The standard library's ThreadingHTTPServer serves one self-contained page
(`serve_page.html`: inline script and style, nothing fetched from elsewhere) and answers
POST /predict with the downsampled drawing, the first and second guess and each
layer's activation maps. The drawing is prepared as the training images were: for
the embedded `digits` the ink is cropped, scaled to fill a 32x32 box and counted in
4x4 blocks, as the UCI set was made, to 8x8 pixels of 0..255 (bright ink on dark),
which `fit` then scales up to the model's input as it did in training; for other
grey datasets the digit is fitted in a 20x20 box centred by its mass, as MNIST's are.
Every request is answered: a malformed one 400 with a JSON error, a body over the limit
413, a client too slow 408, one connection over the limit 503; never with a crash.
"""

from __future__ import annotations

import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import click

from ..errors import CnndslError

MAX_BODY = 1 << 20  # 1 MiB: a 512x512 drawing as JSON numbers fits easily
MAX_SIDE = 512
MIN_SIDE = 8
MAX_CHANNELS = 64  # per layer, to keep a response small for wide networks
MAX_MAP = 64  # larger maps are average-pooled down to this for the page
MAX_DIGITS = 20  # in one JSON integer
MAX_NESTING = 8  # lists and objects in one body (a drawing needs 2)
TIMEOUT = 10.0  # seconds a connection may take for each read or write, and for its whole body
MAX_CONNECTIONS = 32  # served at once; more are answered 503 at once and closed


class BadRequest(ValueError):
    """A request the page (or anyone) sent wrong: answered 400 (or `status`) with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_drawing(body: bytes):
    """The JSON body {"width", "height", "pixels": [ink 0..1, row by row]} as an H x W array."""
    import numpy as np

    try:
        data = json.loads(body, parse_int=_small_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
    except RecursionError:
        data = None
    # Whether json's own recursion guard fires near its limit depends on the stack the
    # handler's thread already uses: deep nesting is refused by measure, not by luck.
    if data is None and body.strip() != b"null" or _depth(data) > MAX_NESTING:
        raise BadRequest("the body nests arrays or objects too deep for a drawing")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object with width, height and pixels")
    width, height, pixels = data.get("width"), data.get("height"), data.get("pixels")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not MIN_SIDE <= value <= MAX_SIDE:
            raise BadRequest(f"{name} must be an integer from {MIN_SIDE} to {MAX_SIDE}")
    if not isinstance(pixels, list) or len(pixels) != width * height:
        raise BadRequest(f"pixels must be a list of width*height = {width * height} numbers")
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in pixels):
        raise BadRequest("every pixel must be a number")
    ink = np.asarray(pixels, dtype=np.float64).reshape(height, width)
    if not np.isfinite(ink).all() or ink.min() < 0 or ink.max() > 1:
        raise BadRequest("pixels must be ink amounts from 0 to 1")
    return ink


def _depth(data) -> int:
    """How deep lists and objects nest in parsed JSON, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((item, depth + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def _small_int(text: str) -> int:
    """A JSON integer, refused past MAX_DIGITS digits (Python would spend quadratic time on
    a long one, or refuse it with a ValueError past 4,300 digits)."""
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise BadRequest(f"a number of {len(text.lstrip('-')):,} digits is not a pixel, width or height")
    return int(text)


def _resize(a, size: tuple[int, int]):
    """Bilinear resizing of a 2-D array (antialiased when shrinking), as `data.fit` does."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(a[None, None].astype("float32"))
    shrinking = size[0] < a.shape[0] or size[1] < a.shape[1]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrinking)[0, 0].numpy()


def _crop_square(ink):
    """The ink's bounding box, padded to a square around its centre; None when blank."""
    import numpy as np

    rows = np.flatnonzero(ink.max(1) > 0.05)
    cols = np.flatnonzero(ink.max(0) > 0.05)
    if not len(rows):
        return None
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    side = max(box.shape)
    square = np.zeros((side, side))
    top, left = (side - box.shape[0]) // 2, (side - box.shape[1]) // 2
    square[top:top + box.shape[0], left:left + box.shape[1]] = box
    return square


def digits_pixels(ink):
    """A drawing as one of the UCI digits: 8x8, 0..255 in 16 levels, bright ink on dark."""
    import numpy as np

    square = _crop_square(ink)
    if square is None:
        return np.zeros((8, 8))
    bitmap = _resize(square, (32, 32)).clip(0, 1)
    counts = bitmap.reshape(8, 4, 8, 4).mean(axis=(1, 3))  # the set's 4x4 block counts, as a fraction
    # The set's pens were thick: nearly every digit has blocks at the full 16. A thin stroke
    # from a mouse is stretched to match, or the model would see a faint digit.
    counts = counts / max(float(counts.max()), 1e-6)
    return np.rint(counts * 16) * (255.0 / 16.0)


def mnist_pixels(ink, size: tuple[int, int]):
    """A drawing as an MNIST digit: fitted in 20/28 of the frame, centred by its mass, 0..255."""
    import numpy as np

    height, width = size
    square = _crop_square(ink)
    out = np.zeros((height, width))
    if square is None:
        return out
    side = max(1, round(min(height, width) * 20 / 28))
    digit = _resize(square, (side, side)).clip(0, 1)
    ys, xs = np.indices(digit.shape)
    mass = digit.sum() or 1.0
    cy, cx = (ys * digit).sum() / mass, (xs * digit).sum() / mass
    top = int(round(height / 2 - cy))
    left = int(round(width / 2 - cx))
    top, left = min(max(top, 0), height - side), min(max(left, 0), width - side)
    out[top:top + side, left:left + side] = digit
    return out * 255.0


class Predictor:
    """The model of a checkpoint and what the page shows of it; one request at a time."""

    def __init__(self, checkpoint: str) -> None:
        from ..train.errors import CheckpointError
        from .viz import load, probes

        self.loaded = load(checkpoint)
        meta = self.loaded.meta
        shape = tuple(meta["input"])
        if len(shape) != 3 or shape[0] not in (1, 3):
            raise CheckpointError(f"{meta['network']} takes {'x'.join(map(str, shape))} input; "
                                  "the drawing page needs a grey or RGB image model")
        if meta["data"].get("task") not in ("classification", "segmentation"):
            raise CheckpointError(f"{meta['network']} was trained for {meta['data'].get('task')}; "
                                  "the drawing page shows class guesses, or a segmenter's mask")
        self.segmenter = meta["data"]["task"] == "segmentation"
        self.shape = shape
        self.classes = [str(c) for c in meta["data"]["classes"]]
        self.digits = meta["data"].get("source") == "digits"
        self.probes = probes(self.loaded.network)
        self.lock = threading.Lock()

    def info(self) -> dict:
        return {"network": self.loaded.meta["network"], "classes": self.classes, "input": list(self.shape),
                "task": self.loaded.meta["data"]["task"],
                "layers": [{"name": p.name, "label": p.label, "shape": list(p.shape)} for p in self.probes]}

    def predict(self, ink) -> dict:
        import numpy as np
        import torch

        from ..train.inference import preprocessor
        from .viz import capture

        c, h, w = self.shape
        if self.digits:
            small = digits_pixels(ink)
            pixels = _resize(small, (h, w)) if (h, w) != small.shape else small  # as `fit` scaled the set
        else:
            small = pixels = mnist_pixels(ink, (h, w))
        x = torch.from_numpy(np.repeat(pixels[None, None], c, axis=1).astype(np.float32))
        with self.lock:
            x = preprocessor(self.loaded.meta, torch.device("cpu"))(x)
            out, maps = capture(self.loaded.model, x, [p.path for p in self.probes])
            mask = self._mask(x) if self.segmenter else None
        answer = {
            "blank": bool(ink.max() <= 0.05),
            "input": {"height": small.shape[0], "width": small.shape[1],
                      "pixels": np.rint(small).clip(0, 255).astype(int).reshape(-1).tolist()},
            "layers": [_layer_json(p, maps[p.path][0]) for p in self.probes],
        }
        if mask is not None:
            answer.update(mask)
            return answer
        probabilities = out.softmax(1)[0]
        order = probabilities.argsort(descending=True).tolist()
        answer["guesses"] = [{"class": self.classes[i], "probability": float(probabilities[i])} for i in order]
        return answer

    def _mask(self, x) -> dict:
        """A segmenter's mask for the page (class ids, their VOC colours) and the classes' shares as guesses."""
        import torch

        from ..train.inference import dense_outputs
        from .overlay import PALETTE, class_shares

        _, main, _ = dense_outputs(self.loaded.model, self.loaded.meta, x)
        ids = main[0].argmax(0).to(torch.uint8).numpy()
        shares = class_shares(ids, self.classes)
        return {"mask": {"height": int(ids.shape[0]), "width": int(ids.shape[1]), "ids": ids.reshape(-1).tolist(),
                         "colours": PALETTE[:len(self.classes)].tolist()},
                "guesses": [{"class": c, "probability": shares.get(c, 0.0)} for c in
                            sorted(self.classes, key=lambda c: -shares.get(c, 0.0))]}


def _layer_json(probe, t) -> dict:
    """A layer's maps as 0..255 bytes on one scale for the layer (so channels compare)."""
    import torch
    import torch.nn.functional as F

    t = t.float()
    if t.dim() != 3 or t.shape[1] * t.shape[2] == 1:
        t = t.reshape(1, 1, -1)  # a vector: one strip of cells
    t = t[:MAX_CHANNELS]
    if t.shape[1] > 1 and (t.shape[1] > MAX_MAP or t.shape[2] > MAX_MAP):
        t = F.adaptive_avg_pool2d(t[None], (min(t.shape[1], MAX_MAP), min(t.shape[2], MAX_MAP)))[0]
    lo, hi = float(t.min()), float(t.max())
    scaled = ((t - lo) / (hi - lo) * 255) if hi - lo > 1e-12 else t * 0
    return {"name": probe.name, "label": probe.label, "shape": list(probe.shape), "min": lo, "max": hi,
            "channels": t.shape[0], "height": t.shape[1], "width": t.shape[2],
            "maps": scaled.round().clamp(0, 255).to(torch.uint8).reshape(t.shape[0], -1).tolist()}


def page() -> bytes:
    return resources.files("cnndsl.pictures").joinpath("serve_page.html").read_bytes()


class Handler(BaseHTTPRequestHandler):
    """Every request gets a response: 400 for a malformed one, 413 for a body over the
    limit, 408 for a client too slow to send its request, 500 (and one log line) for a
    failure of the server's own; a client that leaves early is let go without a trace."""

    server_version = "cnndsl"
    predictor: Predictor  # set on the subclass that `make_server` builds
    quiet = False
    timeout = TIMEOUT  # StreamRequestHandler sets it on the socket: every read and write
    requestline, request_version, command = "", "HTTP/1.0", ""  # until a request line is read

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
        if not self.quiet:
            super().log_message(format, *args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _GONE:  # the client closed its end while we answered
            self.close_connection = True

    def parse_request(self) -> bool:  # the request line and headers, read under the socket's timeout
        if not super().parse_request():
            return False
        if len(self.headers.get_all("Content-Length") or []) > 1:
            self._error(HTTPStatus.BAD_REQUEST, "send one Content-Length header, not several")
            return False
        return True

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        # The stdlib catches a timeout on the request line or headers itself, closes the
        # connection without a word, and says so here: answer 408 before it closes.
        if format.startswith("Request timed out"):
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"the request did not arrive within {self.timeout:g} s")
        super().log_error(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: dict) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        """Answer and close: the rest of the request may be left unread."""
        self.close_connection = True
        try:
            self._json(status, {"error": message})
        except (*_GONE, TimeoutError):
            pass

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8")
        elif path == "/info":
            self._json(HTTPStatus.OK, self.predictor.info())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page at {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/predict":
            self._error(HTTPStatus.NOT_FOUND, "POST to /predict")
            return
        try:
            ink = parse_drawing(self._body())
            answer = self.predictor.predict(ink)
        except BadRequest as exc:
            self._error(exc.status, str(exc))
            return
        except TimeoutError:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {self.timeout:g} s")
            return
        except _GONE:
            raise
        except Exception as exc:  # a bug of ours: one line in the log, and still an answer
            self.log_error("predict failed: %s: %s", type(exc).__name__, exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the server failed on this drawing")
            return
        self._json(HTTPStatus.OK, answer)

    def _body(self) -> bytes:
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise BadRequest("send the drawing as Content-Type: application/json")
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("send a Content-Length, not a chunked body")
        text = self.headers.get("Content-Length", "").strip()
        if not text.isdigit() or len(text) > 12:
            raise BadRequest("a Content-Length (a number of bytes) is required")
        length = int(text)
        if length > MAX_BODY:
            raise BadRequest(f"the body is {length:,} bytes; at most {MAX_BODY:,} are accepted",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return _read_before(self.rfile, length, time.monotonic() + self.timeout)


_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _read_before(stream, length: int, deadline: float) -> bytes:
    """`length` bytes, in pieces, all before `deadline`: a client sending a byte at a time
    cannot hold a connection longer than one timeout."""
    parts, left = [], length
    while left:
        if time.monotonic() > deadline:
            raise TimeoutError("the body is too slow")
        part = stream.read1(min(left, 1 << 16))
        if not part:
            raise BadRequest(f"the body ended after {length - left:,} of {length:,} bytes")
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class Server(ThreadingHTTPServer):
    """At most `MAX_CONNECTIONS` served at once; one more is answered 503 and closed, so
    that idle sockets cannot pile up threads. A client gone early is no error of ours."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            body = b'{"error": "the server is busy; try again"}'
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (*_GONE, TimeoutError)):
            return
        super().handle_error(request, client_address)


def make_server(checkpoint: str, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False,
                timeout: float = TIMEOUT, max_connections: int = MAX_CONNECTIONS):
    predictor = Predictor(checkpoint)
    handler = type("BoundHandler", (Handler,), {"predictor": predictor, "quiet": quiet, "timeout": timeout})
    server_class = type("BoundServer", (Server,), {"max_connections": max_connections})
    return server_class((host, port), handler)


@click.command("serve")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; the default is this machine only.")
def serve_command(checkpoint: str, port: int, host: str) -> None:
    """A page where you draw a digit and watch CHECKPOINT's guesses and activations."""
    try:
        server = make_server(checkpoint, host, port)
    except OSError as exc:
        raise CnndslError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    click.echo(f"serving {server.RequestHandlerClass.predictor.loaded.meta['network']} at "
               f"http://{shown}:{bound_port}/  (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
