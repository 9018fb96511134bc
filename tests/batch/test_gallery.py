"""``wangp gallery``: a results file with real outputs (mp4s and a PNG made here), the page parsed with html.parser,
its thumbnails decoded with Pillow, and the page opened in a real headless Chromium (Debian's package)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.parse
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import subprocess_env

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = "apt-get install -y --no-install-recommends chromium"
EVIL_PROMPT = "a <script>alert('x')</script> & \"quotes\"\nsecond line \x1b[31m"
SIZE = (96, 64)


def solid_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> Path:
    """A PNG written by hand (zlib + struct), so that no image library made what the gallery reads."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\0" + bytes(rgb) * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def solid_mp4(path: Path, colours: list[tuple[int, int, int]]) -> Path:
    """An H.264 mp4 (imageio-ffmpeg), one solid frame per colour: the first frame is ``colours[0]``."""
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), SIZE, fps=8, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=16, ffmpeg_log_level="error")
    writer.send(None)
    for rgb in colours:
        writer.send(bytes(rgb) * (SIZE[0] * SIZE[1]))
    writer.close()
    return path


def record(job_id: str, status: str, path: Path | None, **extra) -> dict:
    base = {"id": job_id, "index": 0, "line": 1, "model": "t2v_fusionix", "status": status, "error": None,
            "seed": 7, "frames": 17, "steps": 4, "resolution": "96x64", "prompt": f"prompt of {job_id}"}
    if path is not None:
        base["path"] = str(path)
    return {**base, **extra}


TIMINGS = {"download": 0.0, "load": 2.5, "encode": 0.4, "denoise": 11.2, "decode": 1.3, "save": 0.2}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """An output folder as a manifest run leaves it, with its results.jsonl: 7 jobs (6 cards' worth of states)."""
    root = tmp_path_factory.mktemp("gallery")
    out = root / "outputs"
    out.mkdir()
    red = solid_mp4(out / "red clip #1 ü.mp4", [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    again = solid_mp4(out / "again.mp4", [(0, 200, 0), (255, 0, 0)])
    blue = solid_png(out / "blue.png", 80, 40, (0, 0, 255))
    (again.with_suffix(".json")).write_text(json.dumps({"seed": 99, "timings": TIMINGS}))
    lines = [
        json.dumps(record("red", "ok", red, prompt=EVIL_PROMPT, seconds=15.6, timings=TIMINGS,
                          peak_memory={"ram_bytes": 3 << 30})),
        "",
        json.dumps(record("blue", "ok", blue, media="image", seconds=2.0, timings={"denoise": 1.5})),
        json.dumps(record("boom", "failed", out / "boom.mp4", seconds=1.25,
                          error="RuntimeError: CUDA error <b>bold</b>")),
        json.dumps(record("gone", "ok", out / "gone.mp4", seconds=3.0)),
        json.dumps(record("bad", "invalid", None, error="frames 8: must be 4k+1 (1, 5, 9, ..., 81)")),
        json.dumps(record("again", "skipped", again, seed=99)),  # a rerun: its sidecar has the timings
        json.dumps(record("red", "skipped", red, prompt=EVIL_PROMPT)),  # the latest state of 'red': still one card
        '{"id": "half", "status": "o',  # a killed run's half line
    ]
    results = out / "results.jsonl"
    results.write_text("\n".join(lines), encoding="utf-8")
    return {"root": root, "out": out, "results": results, "cards": 6}


def wangp(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "wangp_cli", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=cwd, timeout=timeout)


class Page(HTMLParser):
    """What a test needs of the page: cards (with their text and images), every src/href, script tags."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.cards, self.urls, self.scripts, self.tags, self._card, self._depth = [], [], 0, [], None, 0
        self.meta = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        if tag == "meta" and attrs.get("http-equiv"):
            self.meta[attrs["http-equiv"].lower()] = attrs.get("content", "")
        for name in ("src", "href"):
            if name in attrs:
                self.urls.append(attrs[name])
        if tag == "article" and "card" in attrs.get("class", "").split():
            self._card = {"id": attrs.get("id"), "class": attrs["class"], "text": "", "images": [], "links": [],
                          "title": None}
            self.cards.append(self._card)
            self._depth = 0
        if self._card is not None:
            self._depth += 1
            if tag == "img":
                self._card["images"].append(attrs.get("src", ""))
            if tag == "a" and "href" in attrs:
                self._card["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if self._card is not None:
            self._depth -= 1
            if tag == "article":
                self._card = None

    def handle_data(self, data):
        if self._card is not None:
            self._card["text"] += data
            if self.tags[-1] == "h2" and self._card["title"] is None:
                self._card["title"] = data


def mean_rgb(jpeg: bytes) -> tuple[float, float, float]:
    image = pytest.importorskip("PIL.Image")
    with image.open(io.BytesIO(jpeg)) as picture:
        assert picture.format == "JPEG"
        raw = picture.convert("RGB").tobytes()
    return tuple(sum(raw[i::3]) / (len(raw) // 3) for i in range(3))


@pytest.fixture(scope="module")
def gallery(batch):
    page = batch["root"] / "site" / "gallery.html"
    result = wangp("gallery", batch["results"], "-o", page, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return {"path": page, "summary": json.loads(result.stdout), "stderr": result.stderr,
            "text": page.read_text(encoding="utf-8")}


def test_page_has_one_card_per_job_with_escaped_text_and_embedded_thumbnails(batch, gallery):
    page = Page(gallery["text"])
    cards = {card["title"]: card for card in page.cards}
    assert len(page.cards) == batch["cards"], [c["text"][:40] for c in page.cards]
    summary = gallery["summary"]
    counts = [summary[key] for key in ("jobs", "ok", "skipped", "failed", "invalid")]
    assert counts == [6, 2, 2, 1, 1]
    assert summary["thumbnails"] == 3 and summary["missing_files"] == 1
    assert summary["skipped_lines"] == ["line 9: not JSON (Unterminated string starting at)"]
    assert "skipped line 9: not JSON" in gallery["stderr"]  # the warning names the line

    # escaping: the prompt is text, never markup; no script anywhere; control characters shown as escapes
    assert page.scripts == 0 and "script" not in page.tags
    red = cards["red"]
    assert "a <script>alert('x')</script> & \"quotes\"\nsecond line \\x1b[31m" in red["text"]
    assert re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", gallery["text"]) is None
    assert "CUDA error <b>bold</b>" in cards["boom"]["text"]
    assert "<b>bold</b>" not in gallery["text"]

    # nothing from the network: every src is a data: URI, no http(s) or protocol-relative URL at all
    assert page.urls and not [u for u in page.urls if re.match(r"\s*(https?:|//)", u, re.I)]
    assert not re.search(r"https?://", gallery["text"])
    assert "default-src 'none'" in page.meta["content-security-policy"]
    images = [src for card in page.cards for src in card["images"]]
    assert len(images) == 3 and all(src.startswith("data:image/jpeg;base64,") for src in images)

    # the thumbnails are the first frames (decoded here with Pillow, not with the ffmpeg that made them)
    def thumb(job_id):
        return base64.b64decode(cards[job_id]["images"][0].split(",", 1)[1])

    r, g, b = mean_rgb(thumb("red"))
    assert r > 200 and g < 60 and b < 60, (r, g, b)
    r, g, b = mean_rgb(thumb("again"))
    assert g > 150 and r < 60 and b < 60, (r, g, b)  # its first frame is green, its second red
    r, g, b = mean_rgb(thumb("blue"))
    assert b > 200 and r < 60 and g < 60, (r, g, b)

    # links: relative to the page's folder, percent-encoded, naming the real file
    link = red["links"][0]
    assert link == "../outputs/red%20clip%20%231%20%C3%BC.mp4"
    assert (gallery["path"].parent / urllib.parse.unquote(link)).resolve() == (batch["out"] / "red clip #1 ü.mp4")

    # every state on its card
    assert "file not found" in cards["gone"]["text"] and not cards["gone"]["images"]
    assert "frames 8: must be 4k+1" in cards["bad"]["text"] and not cards["bad"]["images"]
    assert "15.6 s" in red["text"] and "denoise 11.2" in red["text"] and "2 lines" in red["text"]
    assert "99" in cards["again"]["text"] and "denoise 11.2" in cards["again"]["text"]  # from its sidecar
    assert "failed: no output" in cards["boom"]["text"] and "failed" in cards["boom"]["class"].split()
    assert list(cards) == ["red", "blue", "boom", "gone", "bad", "again"]  # first appearance order


def test_existing_page_needs_force_and_bad_input_is_a_clean_error(batch, tmp_path):
    page = tmp_path / "g.html"
    page.write_text("mine")
    refused = wangp("gallery", batch["results"], "-o", page)
    assert refused.returncode == 1 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert page.read_text() == "mine"
    done = wangp("gallery", batch["results"], "-o", page, "--force")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "6 job(s)" in done.stdout and len(Page(page.read_text()).cards) == 6
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind

    itself = wangp("gallery", batch["results"], "-o", batch["results"], "--force")
    assert itself.returncode == 1 and "is the results file" in itself.stderr
    missing = wangp("gallery", tmp_path / "nope.jsonl", "-o", tmp_path / "x.html")
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello\nworld\n")
    wrong = wangp("gallery", garbage, "-o", tmp_path / "x.html")
    assert wrong.returncode == 1 and "holds no job record: line 1: not JSON" in wrong.stderr
    assert not (tmp_path / "x.html").exists()


def test_gallery_imports_no_torch_diffusers_or_image_library(batch, tmp_path):
    script = ("import sys\nfrom wangp_cli.cli._app import main\nsys.argv = ['wangp', 'gallery', sys.argv[1], '-o', "
              "sys.argv[2]]\ntry:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
              "print([m for m in ('torch', 'diffusers', 'transformers', 'numpy', 'PIL') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", script, str(batch["results"]), str(tmp_path / "g.html")],
                            capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# --- a real browser ----------------------------------------------------------------------------------------------

#: Hosts Chromium talks to for itself (component updater, network time, sign-in), even with the flags below.
CHROMIUM_OWN = {"update.googleapis.com", "accounts.google.com", "clients1.google.com", "clients2.google.com",
                "redirector.gvt1.com", "edgedl.me.gvt1.com", "optimizationguide-pa.googleapis.com",
                "safebrowsingohttpgateway.googleapis.com", "content-autofill.googleapis.com"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-sync", "--disable-background-networking", "--disable-component-update",
         "--disable-extensions", "--disable-default-apps", "--no-pings", "--disable-domain-reliability",
         "--disable-breakpad", "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
         "--enable-logging=stderr", "--v=0", "--proxy-bypass-list=<-loopback>"]
CONSOLE = re.compile(r"CONSOLE[(:]|Uncaught")


class Proxy:
    """A proxy on 127.0.0.1 that Chromium sends every http(s) request to: it records the host asked for (the
    request line: ``GET http://host/...`` or ``CONNECT host:443``), answers 403 and closes."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.hosts, self._stop = self.server.getsockname()[1], [], threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    parts = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1").split()
                    target = parts[1] if len(parts) > 1 else ""
                    host = urllib.parse.urlsplit(target).hostname if "://" in target else target.rsplit(":", 1)[0]
                    self.hosts.append(host or target)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def browser(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}: {INSTALL}")
    proxy = Proxy()
    runs = iter(range(100))

    def run(*args) -> tuple[str, str, list[str]]:
        """(stdout, stderr, hosts requested) of one headless Chromium run; its whole process group ends."""
        del proxy.hosts[:]
        profile = tmp_path / f"profile{next(runs)}"
        command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", f"--proxy-server=127.0.0.1:{proxy.port}",
                   *map(str, args)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 errors="replace", start_new_session=True, env={**os.environ, "HOME": str(tmp_path)})
        try:
            out, err = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            pytest.fail("headless Chromium did not finish within 120 s")
        try:
            os.killpg(child.pid, signal.SIGKILL)  # helpers it left behind, if any
        except ProcessLookupError:
            pass
        assert child.returncode == 0, err[-3000:]
        return out, err, list(proxy.hosts)

    yield run
    proxy.close()


def test_page_renders_every_card_in_chromium_without_console_errors_or_requests(batch, gallery, browser, tmp_path):
    # the checks themselves, on a page that does what the gallery must not: a request, a script error
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><html><body><article class="card"></article>'
                       '<img src="http://gallery-leak.test/x.png"><script>console.error("seen"); nope();</script>'
                       "</body></html>")
    dom, err, hosts = browser("--dump-dom", control.as_uri())
    assert "gallery-leak.test" in hosts, hosts
    assert len(CONSOLE.findall(err)) >= 2 and "Uncaught" in err
    assert len(Page(dom).cards) == 1
    own = CHROMIUM_OWN | (set(hosts) - {"gallery-leak.test"})

    # the gallery: the rendered DOM holds every card, the console stays silent, nothing is fetched
    dom, err, hosts = browser("--dump-dom", gallery["path"].as_uri())
    assert len(Page(dom).cards) == batch["cards"]
    assert "first frame of red" in dom
    assert not CONSOLE.search(err), [line for line in err.splitlines() if CONSOLE.search(line)]
    assert set(hosts) <= own, set(hosts) - own

    shot = tmp_path / "shot.png"
    _, err, hosts = browser(f"--screenshot={shot}", "--window-size=1280,900", gallery["path"].as_uri())
    assert not CONSOLE.search(err) and set(hosts) <= own, (err[-2000:], hosts)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    image = pytest.importorskip("PIL.Image")
    with image.open(shot) as picture:  # the red first frame is on screen: the browser decoded the thumbnail
        raw = picture.convert("RGB").tobytes()
        red = sum(1 for i in range(0, len(raw), 3) if raw[i] > 200 and raw[i + 1] < 50 and raw[i + 2] < 50)
    assert red > 5_000, red
