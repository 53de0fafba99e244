"""`cnndsl serve`: the drawing page in a real headless chromium, the preprocessing that
makes a drawing look like the digits the model was trained on, and the 400s."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from picture_checkpoint import lenet_checkpoint

from cnndsl.pictures.serve import MAX_BODY, digits_pixels, make_server, mnist_pixels

from conftest import ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server():
    srv = make_server(str(lenet_checkpoint()), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def request(port, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def post(port, value, content_type="application/json"):
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return request(port, "POST", "/predict", body, {"Content-Type": content_type})


def bar(width=56, height=56):
    ink = np.zeros((height, width))
    ink[8:48, 26:31] = 1.0
    return ink


def test_a_stroke_becomes_a_centred_bright_digit():
    small = digits_pixels(bar())
    assert small.shape == (8, 8)
    assert small.max() == 255 and small[:, :2].max() == 0 and small[:, 6:].max() == 0
    assert (small[:, 3:5].sum(1) > 200).all()  # the stroke fills the height, in the middle columns
    assert set(np.unique(small)) <= {v * 255 / 16 for v in range(17)}  # the set's 16 grey levels
    corner = np.zeros((56, 56))
    corner[0:10, 0:10] = 1.0  # a blob in the corner is scaled up and centred like any digit
    assert digits_pixels(corner).min() == 255
    assert not digits_pixels(np.zeros((56, 56))).any()
    mnist = mnist_pixels(bar(), (28, 28))
    ys, xs = np.nonzero(mnist)
    assert abs(xs.mean() - 13.5) < 1.5 and ys.max() - ys.min() + 1 == 20


def test_predict_answers_guesses_and_every_layers_maps(server):
    ink = bar()
    status, data = post(server, {"width": 56, "height": 56, "pixels": ink.reshape(-1).tolist()})
    assert status == 200
    reply = json.loads(data)
    guesses = reply["guesses"]
    assert sorted(g["class"] for g in guesses) == [str(d) for d in range(10)]
    assert abs(sum(g["probability"] for g in guesses) - 1) < 1e-4
    assert guesses[0]["probability"] >= guesses[1]["probability"]
    assert (reply["input"]["width"], reply["input"]["height"]) == (8, 8)
    assert [(layer["name"], layer["channels"], layer["height"], layer["width"]) for layer in reply["layers"]] == [
        ("c1", 6, 28, 28), ("s2", 6, 14, 14), ("c3", 16, 10, 10), ("s4", 16, 5, 5), ("c5", 1, 1, 120),
        ("f6", 1, 1, 84), ("output", 1, 1, 10)]
    assert all(max(max(m) for m in layer["maps"]) == 255 for layer in reply["layers"])


@pytest.mark.parametrize("body, content_type, message", [
    (b"{not json", "application/json", "not JSON"),
    (b"[1, 2, 3]", "application/json", "JSON object"),
    (json.dumps({"width": 56, "height": 56, "pixels": [0] * 10}).encode(), "application/json", "width*height"),
    (json.dumps({"width": 3, "height": 3, "pixels": [0] * 9}).encode(), "application/json", "width must be"),
    (json.dumps({"width": 8, "height": 8, "pixels": [2] * 64}).encode(), "application/json", "from 0 to 1"),
    (json.dumps({"width": 8, "height": 8, "pixels": ["a"] * 64}).encode(), "application/json", "number"),
    (b'{"width": 8, "height": 8, "pixels": [' + b", ".join([b"NaN"] * 64) + b"]}", "application/json", "0 to 1"),
    (json.dumps({"width": 8, "height": 8, "pixels": [0] * 64}).encode(), "text/plain", "Content-Type"),
])
def test_bad_requests_get_a_400_with_a_reason(server, body, content_type, message):
    status, data = post(server, body, content_type)
    assert status == 400
    assert message in json.loads(data)["error"]


def test_oversized_and_lengthless_bodies_are_refused_unread(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    conn.putrequest("POST", "/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(MAX_BODY + 1))
    conn.endheaders()
    conn.send(b"{")  # the rest never comes: the answer must not wait for it
    response = conn.getresponse()
    assert response.status == 413 and "at most" in json.loads(response.read())["error"]
    conn.close()
    try:  # the server answers before the body is sent, and closes: the client may see its pipe break
        status, _ = post(server, b"x" * (MAX_BODY + 10))
        assert status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _ = request(server, "POST", "/predict", b"", {"Content-Type": "application/json"})
    assert status == 400  # an empty body is not a drawing
    status, _ = request(server, "GET", "/nothing-here")
    assert status == 404
    status, data = post(server, {"width": 8, "height": 8, "pixels": [0] * 64})
    assert status == 200 and json.loads(data)["blank"] is True  # and the server still answers


def raw(port: int, data: bytes, wait: float = 30) -> bytes:
    """Send bytes as they are and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def drawing_with(pixel: str) -> bytes:
    return b'{"width": 8, "height": 8, "pixels": [' + pixel.encode() + b", 0" * 63 + b"]}"


@pytest.mark.parametrize("body, message", [
    (drawing_with("9" * 400), "400 digits"),
    (drawing_with("9" * 5000), "5,000 digits"),
    (drawing_with("-" + "9" * 5000), "digits"),
    (b'{"width": ' + b"8" * 400 + b', "height": 8, "pixels": []}', "digits"),
    (drawing_with("1e999"), "0 to 1"),
    (b"[" * 1000 + b"]" * 1000, "too deep"),
    (b'{"pixels": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "too deep"),
])
def test_huge_integers_and_deep_nesting_get_a_400(server, body, message):
    status, data = post(server, body)
    assert status == 400 and message in json.loads(data)["error"]
    status, _ = post(server, {"width": 8, "height": 8, "pixels": [0] * 64})
    assert status == 200  # and the server still answers


def test_two_content_lengths_are_refused(server):
    body = json.dumps({"width": 8, "height": 8, "pixels": [0] * 64}).encode()
    answer = raw(server, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert status_of(answer) == 400 and b"one Content-Length" in answer
    for length in (b"abc", b"-5", b"1" * 40):
        answer = raw(server, b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + length + b"\r\n\r\n{}")
        assert status_of(answer) == 400 and b"Content-Length" in answer


@pytest.fixture(scope="module")
def strict_server():
    """A server with a 1-second timeout and room for 3 connections at once."""
    srv = make_server(str(lenet_checkpoint()), "127.0.0.1", 0, quiet=True, timeout=1.0, max_connections=3)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_a_slow_client_gets_408(strict_server):
    start = time.monotonic()
    answer = raw(strict_server, b"POST /predict HTTP/1.1\r\nContent-Type: appl")  # the headers stop
    assert status_of(answer) == 408 and time.monotonic() - start < 10
    answer = raw(strict_server, b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 500\r\n\r\n{\"width\": 8")  # the body stops
    assert status_of(answer) == 408 and b"did not arrive" in answer
    with socket.create_connection(("127.0.0.1", strict_server), timeout=30) as sock:  # a byte at a time
        sock.sendall(b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n")
        start, answer = time.monotonic(), b""
        try:
            while time.monotonic() - start < 10 and not answer:
                sock.sendall(b" ")
                time.sleep(0.2)
                sock.setblocking(False)
                try:
                    answer = sock.recv(65536)
                except BlockingIOError:
                    pass
                sock.setblocking(True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert status_of(answer) == 408 and time.monotonic() - start < 5


def test_connections_are_bounded_and_idle_ones_time_out(strict_server):
    idle = [socket.create_connection(("127.0.0.1", strict_server), timeout=30) for _ in range(3)]
    time.sleep(0.2)
    try:
        assert status_of(raw(strict_server, b"GET /info HTTP/1.0\r\n\r\n")) == 503
    finally:
        answers = []
        for sock in idle:  # each idle connection is answered 408 and closed after its timeout
            answers.append(sock.recv(65536))
            sock.close()
    assert all(status_of(a) == 408 for a in answers)
    time.sleep(0.2)
    assert status_of(raw(strict_server, b"GET /info HTTP/1.0\r\n\r\n")) == 200


def test_a_client_that_leaves_early_leaves_no_traceback():
    """The real command: clients that reset their connection before the answer, or mid-request."""
    server = subprocess.Popen([sys.executable, "-m", "cnndsl", "serve", str(lenet_checkpoint()), "--port", "0"],
                              cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+)/", server.stderr.readline()).group(1))
        body = json.dumps({"width": 56, "height": 56, "pixels": bar().reshape(-1).tolist()}).encode()
        request_bytes = (b"POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                         % len(body)) + body
        for cut in (len(request_bytes), len(request_bytes), len(request_bytes) // 2, 20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.sendall(request_bytes[:cut])
            sock.close()  # a reset, not a goodbye
        time.sleep(1.5)
        assert status_of(raw(port, b"GET /info HTTP/1.0\r\n\r\n")) == 200
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[1]
    assert "Traceback" not in log and "BrokenPipe" not in log and "ConnectionReset" not in log, log


def test_the_page_is_self_contained(server):
    status, data = request(server, "GET", "/")
    page = data.decode()
    assert status == 200 and "Draw your number here" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page


def test_drawing_in_a_real_browser_shows_guesses_and_activations(server):
    from playwright.sync_api import sync_playwright

    assert os.access("/usr/bin/chromium", os.X_OK), (
        "this test drives Debian's chromium at /usr/bin/chromium, which is not installed: "
        "`make test` installs it when run as root with apt-get; otherwise `sudo apt-get install chromium`")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{server}/")
            page.wait_for_selector("#maps-6")
            assert page.locator(".layer").count() == 7
            box = page.locator("#pad").bounding_box()
            x = box["x"] + box["width"] / 2
            page.mouse.move(x, box["y"] + 40)
            page.mouse.down()
            for step in range(1, 11):  # a vertical stroke: a "1"
                page.mouse.move(x + step * 0.5, box["y"] + 40 + step * 20)
            page.mouse.up()
            page.wait_for_function("document.querySelector('#first-guess').dataset.cls !== undefined")
            first = page.locator("#first-guess").get_attribute("data-cls")
            second = page.locator("#second-guess").get_attribute("data-cls")
            assert first in [str(d) for d in range(10)] and second in [str(d) for d in range(10)]
            assert first != second
            p1 = float(page.locator("#first-guess").get_attribute("data-probability"))
            p2 = float(page.locator("#second-guess").get_attribute("data-probability"))
            assert 1 >= p1 >= p2 >= 0
            assert page.locator("#first-guess .p").inner_text().endswith("%")
            # the downsampled drawing has bright ink in the middle columns and none at the sides
            columns = page.evaluate("""() => {
                const c = document.getElementById('small'), d = c.getContext('2d').getImageData(0, 0, 8, 8).data;
                const sums = new Array(8).fill(0);
                for (let i = 0; i < 64; i++) sums[i % 8] += d[4 * i];
                return sums; }""")
            assert columns[0] == 0 and columns[7] == 0 and max(columns[3:5]) > 500
            assert page.locator("#maps-0 canvas").count() == 6 and page.locator("#maps-2 canvas").count() == 16
            page.locator("#layer-0 input").uncheck()  # a layer's maps can be hidden
            assert not page.locator("#maps-0").is_visible() and page.locator("#maps-2").is_visible()
        finally:
            browser.close()
