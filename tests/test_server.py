"""bank serve: answers as the CLI does, gathers concurrent requests, refuses bad input by name."""

import io
import json
import re
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # recent Starlette suggests httpx2 for its test client; httpx works
    from fastapi.testclient import TestClient

from bank import Registry  # noqa: E402
from bank.cli import main  # noqa: E402
from bank.answering.server import create_app  # noqa: E402

FIELDS = ["error", "z", "score", "test_z", "method", "p_value", "conformal_p_value", "margin", "complexity_z", "flag", "reasons"]


def model_file(entry):
    """An autoencoder entry's Keras model file."""
    return entry.path / "model.keras"


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def upload(*files: tuple[str, bytes]) -> list:
    return [("files", (name, data, "image/png")) for name, data in files]


@pytest.fixture(scope="module")
def pngs(digits):
    """16 held-out digits (0, 1 and 7) as PNG files."""
    images, labels = digits
    idx = [i for i in range(1400, len(labels)) if labels[i] in (0, 1, 7)][:16]
    return [png(images[i]) for i in idx]


@pytest.fixture(scope="module")
def client(bank_registry):
    with TestClient(create_app(bank_registry.root)) as c:
        yield c


def test_classify_answers_as_the_cli_does(client, bank_registry, pngs, tmp_path, capsys):
    path = tmp_path / "d.png"
    path.write_bytes(pngs[0])
    assert main(["classify", str(path), "--registry", str(bank_registry.root), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    multipart = client.post("/v1/classify", files=upload(("d.png", pngs[0])))
    raw = client.post("/v1/classify", content=pngs[0], headers={"content-type": "image/png"})
    assert multipart.status_code == raw.status_code == 200
    assert multipart.json()["results"][0]["image"] == "d.png" and raw.json()["results"][0]["image"] == "body"
    for doc in (multipart.json(), raw.json()):
        assert doc.keys() == cli.keys()
        assert {k: v for k, v in doc.items() if k != "results"} == {k: v for k, v in cli.items() if k != "results"}
        got, want = doc["results"][0], cli["results"][0]
        assert got.keys() == want.keys() and got["classes"].keys() == want["classes"].keys() == {"0", "1", "7"}
        assert [got[k] for k in ("label", "unknown", "nearest")] == [want[k] for k in ("label", "unknown", "nearest")]
        for c, fields in want["classes"].items():
            assert list(got["classes"][c]) == list(fields) == FIELDS
            for f, v in fields.items():
                assert got["classes"][c][f] == (pytest.approx(v, rel=1e-5) if isinstance(v, float) else v), (c, f)


def test_score_gives_every_class_its_numbers(client, pngs):
    r = client.post("/v1/score", files=upload(("a.png", pngs[1]), ("b.png", pngs[2])))
    assert r.status_code == 200
    doc = r.json()
    assert [x["image"] for x in doc["results"]] == ["a.png", "b.png"] and doc["skipped"] == []
    for rec in doc["results"]:
        assert list(rec["classes"]) == ["0", "1", "7"]
        for v in rec["classes"].values():
            assert list(v) == FIELDS and v["error"] >= 0 and 0 <= v["p_value"] <= 1


def test_a_bad_file_among_good_ones_gets_its_own_error(client, pngs):
    r = client.post("/v1/classify", files=upload(("good.png", pngs[0]), ("bad.png", b"just some text\n")))
    assert r.status_code == 200
    doc = r.json()
    assert [x["image"] for x in doc["results"]] == ["good.png"]
    assert doc["skipped"] == [{"image": "bad.png", "error": "not an image Pillow can read"}]


@pytest.mark.parametrize("name, data, reason", [
    ("bad.png", b"just some text\n", "not an image"),
    ("cut.png", None, "cannot decode image"),
    ("empty.png", b"", "empty file"),
])
def test_a_single_bad_file_is_422_naming_it(client, pngs, name, data, reason):
    data = pngs[0][:-30] if data is None else data  # truncated
    r = client.post("/v1/classify", files=upload((name, data)))
    assert r.status_code == 422
    doc = r.json()
    assert name in doc["error"] and reason in doc["error"]
    assert [s["image"] for s in doc["skipped"]] == [name]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_decompression_bomb_is_refused(client, pngs, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 32)  # the 8x8 digit counts as a bomb
    r = client.post("/v1/score", content=pngs[0])
    assert r.status_code == 422 and "body" in r.json()["error"] and "decompression bomb" in r.json()["error"]


def test_no_image_is_422(client):
    r = client.post("/v1/classify", content=b"")
    assert r.status_code == 422 and "no image in the request" in r.json()["error"]
    r = client.post("/v1/classify", data={"note": "hello"}, files=upload(("a.png", b"x")))
    assert r.status_code == 422 and "unexpected form field 'note'" in r.json()["error"]


def test_an_oversized_upload_is_413(bank_registry, pngs):
    with TestClient(create_app(bank_registry.root, max_upload_bytes=100)) as c:
        assert len(pngs[0]) > 100
        r = c.post("/v1/classify", files=upload(("big.png", pngs[0])))  # refused on its Content-Length
        assert r.status_code == 413 and "limit of 100 bytes" in r.json()["error"]
        r = c.post("/v1/classify", content=iter([pngs[0][:60], pngs[0][60:]]))  # chunked: counted as it arrives
        assert r.status_code == 413 and r.json()["error"].startswith("body: ") and r.json()["image"] == "body"
        body = (b'--XyZ\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
                b"Content-Type: image/png\r\n\r\n" + pngs[0] + b"\r\n--XyZ--\r\n")
        r = c.post("/v1/classify", content=iter([body[i : i + 32] for i in range(0, len(body), 32)]),
                   headers={"content-type": "multipart/form-data; boundary=XyZ"})
        assert r.status_code == 413 and r.json()["error"].startswith("big.png: ") and "limit of 100" in r.text
        assert c.post("/v1/classify", content=pngs[0][:90]).status_code == 422  # under the limit: read, then refused


def test_a_token_guards_everything_but_healthz(bank_registry):
    with TestClient(create_app(bank_registry.root, token="s3cret")) as c:
        assert c.get("/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.get("/v1/classes", headers=headers)
            assert r.status_code == 401 and "token" in r.json()["error"]
        assert c.get("/readyz").status_code == 401
        assert c.get("/v1/classes", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_ready_classes_and_errors_as_json(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["classes"] == ["0", "1", "7"]
    doc = client.get("/v1/classes").json()
    assert [(c["class"], c["version"]) for c in doc["classes"]] == [("0", 1), ("1", 1), ("7", 1)]
    assert doc["classes"][0]["input_spec"] == {"height": 8, "width": 8, "color": "gray", "scaling": "unit"}
    assert doc["classes"][0]["stats"]["n"] > 0 and doc["skipped_classes"] == []
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_an_empty_registry_is_alive_but_not_ready(tmp_path):
    with TestClient(create_app(tmp_path)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
        r = c.post("/v1/classify", content=b"x")
        assert r.status_code == 503 and "no classes loaded" in r.json()["error"]
        assert c.post("/v1/reload").status_code == 503


def test_an_unexpected_error_is_a_json_500(bank_registry, pngs, monkeypatch):
    app = create_app(bank_registry.root)
    with TestClient(app, raise_server_exceptions=False) as c:
        def boom(images):
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.router, "measure_prepared", boom)
        r = c.post("/v1/classify", content=pngs[0])
        assert r.status_code == 500 and r.json() == {"error": "internal error: RuntimeError: boom"}
        monkeypatch.undo()
        assert c.post("/v1/classify", content=pngs[0]).status_code == 200  # the batcher goes on


def test_reload_serves_a_new_version_and_refuses_a_broken_one(bank_registry, pngs, tmp_path):
    root = tmp_path / "registry"
    shutil.copytree(bank_registry.root, root)
    reg = Registry(root)
    with TestClient(create_app(root)) as c:
        reg.register("0", reg.load_detector("0", runtime="keras"), litert=False)
        assert c.get("/v1/classes").json()["classes"][0]["version"] == 1  # until reloaded
        r = c.post("/v1/reload")
        assert r.status_code == 200
        assert [(x["class"], x["version"]) for x in r.json()["classes"]] == [("0", 2), ("1", 1), ("7", 1)]
        assert c.get("/v1/classes").json()["classes"][0]["version"] == 2
        assert c.post("/v1/classify", content=pngs[0]).status_code == 200
        e = reg.register("0", reg.load_detector("0", runtime="keras"), litert=False)
        with open(model_file(e), "ab") as fh:
            fh.write(b"tampered")
        doc = c.post("/v1/reload").json()
        assert doc["classes"][0]["version"] == 2
        assert doc["skipped_classes"][0]["class"] == "0" and "still using version 2" in doc["skipped_classes"][0]["error"]


def test_concurrent_requests_share_router_calls(client, bank_registry, pngs):
    alone = [client.post("/v1/classify", content=p).json()["results"][0] for p in pngs]
    app = create_app(bank_registry.root, max_batch=8, max_wait_ms=500)
    with TestClient(app) as c, ThreadPoolExecutor(len(pngs)) as pool:
        answers = list(pool.map(lambda i: c.post("/v1/classify", files=upload((f"{i}.png", pngs[i]))),
                                range(len(pngs))))
        sizes = dict(app.state.batch_sizes)
    assert all(r.status_code == 200 for r in answers)
    assert sum(n * k for n, k in sizes.items()) == len(pngs)
    assert sum(sizes.values()) < len(pngs) and max(sizes) <= 8
    for i, (r, want) in enumerate(zip(answers, alone)):
        (got,) = r.json()["results"]
        assert got["image"] == f"{i}.png" and got["label"] == want["label"] and got["nearest"] == want["nearest"]
        for c in want["classes"]:
            assert got["classes"][c]["error"] == pytest.approx(want["classes"][c]["error"], rel=1e-4)


def test_serve_refuses_a_public_host_without_a_token(monkeypatch, capsys):
    monkeypatch.delenv("BANK_TOKEN", raising=False)
    for host in ("0.0.0.0", "example.org"):
        assert main(["serve", "--host", host]) == 2
        assert f"--host {host} can be reached from other machines: set a token" in capsys.readouterr().err


def test_metrics_count_requests_errors_and_batches(bank_registry, pngs):
    app = create_app(bank_registry.root, token="s3cret")
    with TestClient(app) as c:
        auth = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/classify", content=pngs[0], headers=auth).status_code == 200
        assert c.post("/v1/classify", content=b"not an image", headers=auth).status_code == 422
        assert c.get("/v1/classes").status_code == 401
        assert c.get("/no/such/path", headers=auth).status_code == 404
        text = c.get("/metrics", headers=auth).text
    assert 'bank_requests_total{path="/v1/classify",status="200"} 1.0' in text
    assert 'bank_request_errors_total{path="/v1/classify",status="422"} 1.0' in text
    assert 'bank_request_errors_total{path="/v1/classes",status="401"} 1.0' in text  # refused requests count too
    assert 'bank_requests_total{path="other",status="404"} 1.0' in text  # unknown paths: one label
    assert 'bank_batch_images_count 1.0' in text and 'bank_request_seconds_bucket{le="10.0",path="/v1/classify"} 2.0' in text


def test_the_docs_are_open_and_offline_the_api_is_not(bank_registry):
    with TestClient(create_app(bank_registry.root, token="s3cret")) as c:
        page = c.get("/docs")
        assert page.status_code == 200
        scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert scripts and all(s.startswith("/docs/assets/") or s == "/openapi.json" for s in scripts), scripts
        for s in scripts:
            assert c.get(s).status_code == 200, s
        schema = c.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
        assert "/v1/classify" in schema["paths"] and "/docs" not in schema["paths"]
        assert c.get("/docs/assets/../../v1/classes").status_code in (401, 404)
        assert c.get("/v1/classes").status_code == 401
    with TestClient(create_app(bank_registry.root)) as c:
        assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})
