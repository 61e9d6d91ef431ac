"""The page of bank serve (GET /), in a real browser: Playwright driving the system's Chromium against uvicorn.

Playwright cannot download its own browser here, so the tests use Debian's ``chromium`` (``.ci/run`` installs
it when it can); without it, or without Playwright, the browser tests skip, saying why.
"""

import io
import re
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from bank.answering.server import create_app  # noqa: E402

try:
    from playwright.sync_api import expect
except ImportError:  # the browser tests skip (the fixture says why); the others run
    expect = None

TOKEN = "page-s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(bank_registry):
    """The real service (with a token) on a free loopback port, in a background thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv = uvicorn.Server(uvicorn.Config(create_app(bank_registry.root, token=TOKEN), log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            assert thread.is_alive(), "the server stopped while starting"
            try:
                if httpx.get(base + "/readyz", headers=AUTH, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server was not ready within 120 s"
            time.sleep(0.1)
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("no Chromium found (neither 'chromium' nor 'chromium-browser' on PATH): "
                    "apt-get install chromium; Playwright cannot download its own browser here")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """The page, loaded, with the token filled in; fails the test on any script error or console error."""
    context = browser.new_context()
    pg = context.new_page()
    problems = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.goto(server + "/")
    pg.fill("#token", TOKEN)
    yield pg
    context.close()
    # Chromium logs a refused request (4xx) as a console error: those are expected, the rest are not
    assert not [p for p in problems if "status of 4" not in p], problems


@pytest.fixture(scope="module")
def digit_files(digits, tmp_path_factory):
    """A held-out "0" and a held-out "7" (index >= 1400: not trained on) as PNG files."""
    images, labels = digits
    out = tmp_path_factory.mktemp("page")
    files = []
    for d in (0, 7):
        i = next(i for i in range(1400, len(labels)) if labels[i] == d)
        path = out / f"digit{d}_{i}.png"
        path.write_bytes(png(images[i]))
        files.append(path)
    return files


def card(page, name: str):
    return page.locator(f'.card[data-image="{name}"]')


def test_the_page_is_served_without_the_token_and_needs_nothing_online(server):
    r = httpx.get(server + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="files"' in r.text and "v1/score" in r.text
    assert not re.search(r"https?://", r.text, re.IGNORECASE), "the page must work offline: no URL to load"
    assert httpx.get(server + "/v1/classes").status_code == 401  # the API still needs the token


def test_uploaded_images_get_the_apis_verdict_and_a_bar_per_class(page, server, digit_files):
    with page.expect_response(lambda r: r.url.endswith("/v1/score")) as answer:
        page.set_input_files("#files", [str(p) for p in digit_files])
    assert answer.value.status == 200
    expect(page.locator(".card")).to_have_count(2)
    expect(page.locator("#status")).to_have_attribute("data-state", "done")
    for path in digit_files:
        files = {"files": (path.name, path.read_bytes(), "image/png")}
        api = httpx.post(server + "/v1/classify", files=files, headers=AUTH).json()["results"][0]
        c = card(page, path.name)
        assert c.locator(".verdict").inner_text().strip() == (api["label"] or "unknown"), path.name
        assert c.get_attribute("data-unknown") == str(api["unknown"]).lower()
        assert c.locator("img.thumb").get_attribute("src").startswith("blob:")
        bars = c.locator(".bar")
        expect(bars).to_have_count(3)
        assert [bars.nth(k).get_attribute("data-class") for k in range(3)] == list(api["classes"])
        for k, (name, v) in enumerate(api["classes"].items()):
            bar = bars.nth(k)
            assert float(bar.get_attribute("data-score")) == pytest.approx(v["score"], rel=1e-5, abs=1e-9)
            assert bar.get_attribute("data-flag") == str(v["flag"]).lower()
            assert ("flagged" in bar.inner_text()) == v["flag"] and "error" in bar.inner_text()
            width = bar.locator(".fill").evaluate("e => e.style.width")
            assert float(width.rstrip("%")) == pytest.approx(100 * v["score"], abs=0.06), name
        if api["unknown"]:
            assert c.locator(".nearest").inner_text().strip() == api["nearest"]


def test_the_classes_and_their_versions_show_before_any_upload_once_the_token_is_given(browser, server):
    api = httpx.get(server + "/v1/classes", headers=AUTH).json()
    context = browser.new_context()
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server + "/")
    box = pg.locator("#classes")
    expect(box).to_have_attribute("data-state", "needs-token")  # 401: say what to do, not nothing
    expect(box).to_contain_text("fill in the token field")
    pg.fill("#token", "wrong")
    expect(box).to_contain_text("token was refused")
    pg.fill("#token", TOKEN)  # loads without an upload
    expect(box).to_have_attribute("data-state", "loaded")
    items = box.locator("#class-list li")
    expect(items).to_have_count(len(api["classes"]))
    for k, c in enumerate(api["classes"]):
        assert items.nth(k).get_attribute("data-class") == c["class"]
        assert items.nth(k).get_attribute("data-version") == str(c["version"])
        assert items.nth(k).inner_text().split() == [c["class"], f"v{c['version']}"]
    expect(box).to_contain_text(f"{len(api['classes'])} classes loaded")
    rule = box.locator(".rule").inner_text()  # the rule's parts under distinct names
    assert "complexity-corrected z of the error > 3" in rule and "|input complexity z| > 4" in rule
    assert "margin > 0.2" in rule
    expect(pg.locator(".card")).to_have_count(0)
    context.close()
    assert errors == []


def test_a_flagged_class_says_why(page, server, tmp_path, digit_files):
    blank = tmp_path / "blank.png"  # flagged by every class: at least the input complexity test
    Image.new("L", (8, 8), 0).save(blank)
    paths = [*digit_files, blank]
    page.set_input_files("#files", [str(p) for p in paths])
    expect(page.locator(".card")).to_have_count(3)
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]
    doc = httpx.post(server + "/v1/score", files=files, headers=AUTH).json()
    flagged = 0
    for rec in doc["results"]:
        for name, v in rec["classes"].items():
            bar = card(page, rec["image"]).locator(f'.bar[data-class="{name}"]')
            why = bar.locator(".flag-why")
            if not v["flag"]:
                expect(why).to_have_count(0)
                assert "complexity-corrected z" in bar.inner_text()  # the z the flag tests, by its name
                continue
            flagged += 1
            assert v["reasons"], (rec["image"], name)
            text = why.inner_text()
            assert text.startswith("flagged: ")
            for reason in v["reasons"]:
                assert reason in text, (rec["image"], name, reason)
    assert flagged >= 3  # the blank at least
    blank_bars = card(page, "blank.png").locator(".flag-why")
    expect(blank_bars.first).to_contain_text("input simpler than the class's images (input complexity z")


@pytest.mark.parametrize("with_good", [False, True], ids=["alone", "among-good"])
def test_an_unreadable_file_shows_its_error_by_name(page, tmp_path, digit_files, with_good):
    bad = tmp_path / "bad.png"
    bad.write_text("just some text\n")
    page.set_input_files("#files", [str(bad)] + ([str(digit_files[0])] if with_good else []))
    error = card(page, "bad.png").locator(".error")
    expect(error).to_contain_text("bad.png")
    expect(error).to_contain_text("not an image")
    expect(page.locator(".card")).to_have_count(2 if with_good else 1)
    if with_good:
        expect(card(page, digit_files[0].name).locator(".bar")).to_have_count(3)
    else:  # 422: no image could be read, said above the cards
        expect(page.locator("#status")).to_have_attribute("data-state", "error")
        expect(page.locator("#status")).to_contain_text("HTTP 422")


def test_without_the_token_the_page_says_so(page, digit_files):
    page.fill("#token", "")
    page.set_input_files("#files", [str(digit_files[0])])
    expect(page.locator("#status")).to_contain_text("HTTP 401")
    expect(page.locator("#status")).to_contain_text("token")
    expect(page.locator(".card")).to_have_count(0)


def test_a_dropped_image_is_scored_too(page, digit_files):
    path = digit_files[1]
    page.evaluate("""([name, bytes]) => {
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
        document.querySelector("#drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
    }""", [path.name, list(path.read_bytes())])
    expect(card(page, path.name).locator(".bar")).to_have_count(3)
    expect(card(page, path.name).locator(".verdict")).not_to_be_empty()


def test_the_api_docs_render_offline_and_authorize_with_the_token(browser, server):
    """Swagger UI at /docs from the package's own files: every request the page makes stays on this server."""
    context = browser.new_context()
    pg = context.new_page()
    outside = []

    def only_here(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    pg.route("**/*", only_here)
    pg.goto(server + "/docs")
    expect(pg.locator(".swagger-ui .info .title")).to_contain_text("bank")
    expect(pg.locator("#operations-default-route_v1_classify_post, .opblock-summary-path[data-path='/v1/classify']")
           .first).to_be_visible()
    expect(pg.locator(".swagger-ui .btn.authorize")).to_be_visible()  # the token scheme is declared
    context.close()
    assert outside == [], outside
