"""The chat layer's support for the app (chatreid.chat: settings, uploads, sessions, examples),
without launching Gradio."""

from __future__ import annotations

import io
import struct
import sys
import types
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from chatreid.chat import examples, sessions, settings, uploads
from chatreid.chat.examples import example_galleries
from chatreid.chat.settings import Limits, app_default_model
from chatreid.chat.uploads import UploadError, load_gallery, load_query_images, open_image


def _png(path: Path, size=(32, 64), colour=(200, 30, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _bomb_png(path: Path, w: int = 100_000, h: int = 100_000) -> Path:
    """A tiny PNG whose header claims w x h pixels (the pixel data is never there)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


# -- default model ---------------------------------------------------------------------------------

def test_model_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATREID_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CHATREID_MODEL", "org/from-env")
    demo = tmp_path / "demo"
    monkeypatch.setattr(settings, "DEMO_MODEL_DIR", demo)
    assert app_default_model("org/from-cli").source == "--model"
    assert app_default_model("org/from-cli").name_or_path == "org/from-cli"
    assert app_default_model(None).name_or_path == "org/from-env"
    monkeypatch.delenv("CHATREID_MODEL")
    # no demo checkpoint yet -> the tiny model, named in the cache, with a visible notice
    tiny = app_default_model(None, build=False)
    assert tiny.source == "tiny" and "tiny test model" in tiny.notice
    assert Path(tiny.name_or_path).parent == tmp_path / "cache"
    demo.mkdir()
    (demo / "config.json").write_text("{}")
    assert app_default_model(None).source == "demo"
    assert app_default_model(None).name_or_path == str(demo)


def test_tiny_model_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATREID_CACHE", str(tmp_path))
    monkeypatch.delenv("CHATREID_MODEL", raising=False)
    monkeypatch.setattr(settings, "DEMO_MODEL_DIR", tmp_path / "absent")
    calls = []

    def fake_build(out, seed=0):
        calls.append(Path(out))
        Path(out, "config.json").write_text("{}")
        return Path(out)

    # a stand-in module, so this test does not pay for importing torch and transformers
    family = types.SimpleNamespace(build_tiny=fake_build)
    monkeypatch.setitem(sys.modules, "chatreid.model.families",
                        types.SimpleNamespace(default_family=lambda: family))
    first = app_default_model(None)
    second = app_default_model(None)
    assert len(calls) == 1 and (Path(first.name_or_path) / "config.json").is_file()
    assert first.name_or_path == second.name_or_path
    assert not [p for p in tmp_path.iterdir() if p.name != Path(first.name_or_path).name]  # no temp left


def test_limits_from_env(monkeypatch):
    monkeypatch.setenv("CHATREID_MAX_GALLERY", "7")
    monkeypatch.setenv("CHATREID_TOP_K", "5")
    lim = Limits.from_env()
    assert lim.max_gallery == 7 and lim.top_k == 5
    monkeypatch.setenv("CHATREID_MAX_GALLERY", "many")
    with pytest.raises(ValueError, match="CHATREID_MAX_GALLERY"):
        Limits.from_env()


# -- images ---------------------------------------------------------------------------------------

def test_open_image_refuses_bad_files(tmp_path):
    lim = Limits()
    assert open_image(str(_png(tmp_path / "ok.png")), "ok.png", lim).mode == "RGB"
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(UploadError, match="not an image"):
        open_image(str(text), "notes.png", lim)
    good = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(UploadError, match="damaged"):
        open_image(str(tmp_path / "cut.png"), "cut.png", lim)
    with pytest.raises(UploadError, match="pixels"):
        open_image(str(_bomb_png(tmp_path / "bomb.png")), "bomb.png", lim)
    with pytest.raises(UploadError, match="pixels"):  # our own limit, not only Pillow's
        open_image(str(_png(tmp_path / "big.png", (100, 100))), "big.png", Limits(upload_max_pixels=5000))


def test_pillow_limit_is_applied():
    old = Image.MAX_IMAGE_PIXELS
    try:
        Limits(upload_max_pixels=1234).apply_to_pillow()
        assert Image.MAX_IMAGE_PIXELS == 1234
    finally:
        Image.MAX_IMAGE_PIXELS = old


def test_gallery_from_files_and_zip(tmp_path):
    files = [_png(tmp_path / f"p{i}.png", colour=(i * 40, 0, 0)) for i in range(3)]
    z = tmp_path / "more.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(2):
            buf = io.BytesIO()
            Image.new("RGB", (20, 40), (0, i * 90, 0)).save(buf, "PNG")
            zf.writestr(f"people/z{i}.png", buf.getvalue())
        zf.writestr("people/readme.txt", "not a photo")
        zf.writestr("__MACOSX/._z0.png", "junk")
        zf.writestr("../escape.png", buf.getvalue())  # read in memory: the name cannot escape
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage")
    items, problems = load_gallery(files + [z, bad], Limits())
    assert [i.name for i in items] == ["p0.png", "p1.png", "p2.png", "escape.png", "z0.png", "z1.png"]
    assert items[0].path == str(files[0]) and items[-1].path is None
    assert len(problems) == 3  # the macOS metadata is named too
    assert any("readme.txt" in p for p in problems) and any("broken.jpg" in p for p in problems)
    assert any("__MACOSX/._z0.png" in p for p in problems)


def test_gallery_refusals(tmp_path):
    files = [_png(tmp_path / f"p{i}.png") for i in range(5)]
    with pytest.raises(UploadError, match="at most 4"):
        load_gallery(files, Limits(max_gallery=4))
    junk = tmp_path / "junk.txt"
    junk.write_text("x")
    with pytest.raises(UploadError, match="No readable image was uploaded"):
        load_gallery([junk], Limits())
    with pytest.raises(UploadError, match="No readable image was uploaded"):
        load_gallery([], Limits())
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(6):
            zf.writestr(f"{i}.png", files[0].read_bytes())
    with pytest.raises(UploadError, match="6 files"):
        load_gallery([z], Limits(max_gallery=5))
    with pytest.raises(UploadError, match="MB once"):
        load_gallery([z], Limits(max_zip_mb=0))


def test_query_images(tmp_path):
    files = [_png(tmp_path / f"q{i}.png") for i in range(3)]
    images, names = load_query_images(files[:2], Limits())
    assert names == ["q0.png", "q1.png"] and all(im.mode == "RGB" for im in images)
    with pytest.raises(UploadError, match="at most 2"):
        load_query_images(files, Limits(max_query_images=2))
    z = tmp_path / "q.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.png", files[0].read_bytes())
    with pytest.raises(UploadError, match="gallery box"):
        load_query_images([z], Limits())


# -- built-in examples ----------------------------------------------------------------------------

def test_example_galleries_are_consistent():
    ex = example_galleries()
    assert set(ex) == {"market", "ltcc", "sysu", "pedes"}
    total = 0
    for e in ex.values():
        names = {p.name for p in e.gallery}
        assert e.gallery and e.prompts
        for p in e.prompts:
            assert p["truth"] and set(p["truth"]) <= names  # ground truth points at real files
            if p["query"]:
                assert (examples.EXAMPLES_DIR / e.name / "query" / p["query"]).is_file()
        total += sum(f.stat().st_size for f in e.gallery + e.queries)
    assert total < 2_000_000
    assert not ex["pedes"].queries  # the text example has no query photo


@pytest.mark.parametrize("front_gap", ["", "\n"])
def test_model_card_summary_skips_front_matter_and_headings(tmp_path, front_gap):
    (tmp_path / "README.md").write_text(
        f"---\nlicense: apache-2.0\n---\n{front_gap}# A model\n\nWhat it is.\n\n## More\n\nDetails.\n")
    assert settings.model_card_summary(str(tmp_path)) == "What it is."
    assert settings.model_card_summary(str(tmp_path / "absent")) is None


# -- settings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,value,needle", [
    ("CHATREID_TOP_K", "-1", "CHATREID_TOP_K must be at least 1, got -1"),
    ("CHATREID_TOP_K", "abc", "CHATREID_TOP_K must be a whole number (at least 1), got 'abc'"),
    ("CHATREID_MAX_GALLERY", "0", "CHATREID_MAX_GALLERY must be at least 1, got 0"),
    ("CHATREID_IDLE_MINUTES", "1.5", "CHATREID_IDLE_MINUTES must be a whole number"),
    ("CHATREID_MEMORY_MB", "", "CHATREID_MEMORY_MB must be a whole number"),
    ("CHATREID_MODEL", " ", "CHATREID_MODEL is set but empty"),
])
def test_every_setting_is_validated_with_one_line(monkeypatch, name, value, needle):
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.SettingsError) as err:
        Limits.from_env()
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_setting_reaches_its_limit(monkeypatch):
    for name, (attr, default, least, _) in settings.SETTINGS.items():
        monkeypatch.setenv(name, str(least + 3))
    lim = Limits.from_env()
    for name, (attr, default, least, _) in settings.SETTINGS.items():
        assert getattr(lim, attr) == least + 3, name
    monkeypatch.setenv("CHATREID_TOPK", "5")  # a typo is named, not silently used
    assert Limits.unknown_settings() == ["CHATREID_TOPK"]


def test_app_refuses_a_bad_setting_at_start_in_one_line(monkeypatch, capsys):
    import app

    monkeypatch.setenv("CHATREID_TOP_K", "-1")
    monkeypatch.setattr(app, "load_engine", lambda choice: pytest.fail("the model was loaded"))
    with pytest.raises(SystemExit) as exit_:
        app.main([])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "app.py: error: CHATREID_TOP_K must be at least 1, got -1\n"


# -- images are reduced on arrival ------------------------------------------------------------------

def test_images_are_reduced_on_arrival(tmp_path):
    lim = Limits(model_pixels=2048)  # a model that reads 2048 pixels: the thumbnail size rules
    assert lim.keep_pixels == settings.THUMB_PIXELS
    big = _png(tmp_path / "big.png", (3000, 1500), (10, 200, 30))
    im = open_image(str(big), "big.png", lim)
    assert im.mode == "RGB" and im.width * im.height <= lim.keep_pixels
    assert abs(im.width / im.height - 2.0) < 0.02 and im.width * im.height > 0.95 * lim.keep_pixels
    assert im.getpixel((im.width // 2, im.height // 2)) == (10, 200, 30)
    jpg = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 3200), (200, 40, 40)).save(jpg, quality=90)
    im = open_image(str(jpg), "big.jpg", lim)
    assert im.width * im.height <= lim.keep_pixels and abs(im.width / im.height - 0.75) < 0.02
    small = open_image(str(_png(tmp_path / "s.png", (64, 128))), "s.png", lim)
    assert small.size == (64, 128)  # smaller than needed: untouched
    # a model that reads more keeps more, up to what it reads
    lim = Limits(model_pixels=1_000_000)
    assert open_image(str(big), "big.png", lim).size == uploads.reduced_size(3000, 1500, 1_000_000)
    # the session bound in docs/app.md follows from it
    assert Limits(max_gallery=200, max_query_images=4, model_pixels=2048).session_image_bytes == \
        204 * settings.THUMB_PIXELS * 3


def test_reduced_size_keeps_aspect_and_bound():
    for w, h, keep in [(4096, 4096, 131072), (5000, 7, 1000), (7, 5000, 1000), (100, 100, 99)]:
        tw, th = uploads.reduced_size(w, h, keep)
        assert 1 <= tw <= w and 1 <= th <= h and tw * th <= keep
    assert uploads.reduced_size(10, 20, 200) == (10, 20)


# -- zip limits -------------------------------------------------------------------------------------

def test_zip_sizes_are_checked_before_decompressing(tmp_path, monkeypatch):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(30):  # 30 MB of zeros, a few KB on disk
            zf.writestr(f"{i:02d}.png", b"\0" * (1024 * 1024))
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    with pytest.raises(UploadError, match="30 MB once unpacked.*nothing was unpacked"):
        load_gallery([z], Limits(max_zip_mb=10))
    assert opened == []


def test_zip_member_that_declares_less_than_it_holds_is_not_trusted(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(buf, "BMP")  # 270 KB
    real = buf.getvalue()
    z = tmp_path / "liar.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("liar.bmp", real)
        zf.writestr("ok.png", (_png(tmp_path / "ok.png")).read_bytes())
    data = bytearray(z.read_bytes())
    # the central directory (what is checked up front) claims 100 bytes for liar.bmp
    cd = data.index(b"PK\x01\x02")
    assert int.from_bytes(data[cd + 24:cd + 28], "little") == len(real)
    data[cd + 24:cd + 28] = (100).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    items, problems = load_gallery([z], Limits())
    assert [i.name for i in items] == ["ok.png"]
    assert len(problems) == 1 and "liar.bmp" in problems[0] and "skipped" in problems[0]


def test_read_capped_stops_at_the_cap():
    assert uploads._read_capped(io.BytesIO(b"x" * 10), 10, chunk=3) == b"x" * 10
    assert uploads._read_capped(io.BytesIO(b"x" * 11), 10, chunk=3) is None


def test_many_files_are_refused_before_any_is_opened(tmp_path):
    paths = [tmp_path / f"missing{i}.png" for i in range(6)]  # never opened: they do not exist
    with pytest.raises(UploadError, match="Too many files: 6"):
        load_gallery(paths, Limits(max_gallery=5))


# -- message length -----------------------------------------------------------------------------

def test_message_length_is_checked_in_characters_then_tokens():
    calls = []

    def count(text):
        calls.append(len(text))
        return len(text.split())

    lim = Limits(max_message_chars=50, max_message_tokens=5)
    uploads.check_message("a woman in red", lim, count)
    with pytest.raises(UploadError, match="100,000 characters long; the limit is 50"):
        uploads.check_message("x" * 100_000, lim, count)
    assert calls == [14]  # the tokenizer never saw the long one
    with pytest.raises(UploadError, match="6 tokens long; the limit is 5"):
        uploads.check_message("one two three four five six", lim, count)
    uploads.check_message("", lim, count)


# -- sessions ---------------------------------------------------------------------------------------

class _Sess:
    def __init__(self, nbytes=0):
        self.bytes, self.dropped = nbytes, ""

    def nbytes(self):
        return self.bytes

    def drop(self, reason):
        self.bytes, self.dropped = 0, reason


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_idle_sessions_are_dropped_after_the_idle_time():
    clock = _Clock()
    store = sessions.SessionStore(budget_bytes=1000, idle_seconds=60, max_sessions=10, clock=clock)
    a, b = _Sess(100), _Sess(100)
    for s in (a, b):
        store.begin(s)
        store.end(s)
    clock.t = 50
    store.begin(b)  # b is busy for a long time
    clock.t = 200
    store.begin(_Sess())  # anyone's request sweeps
    assert "idle for more than 1 minutes" in a.dropped and a.bytes == 0
    assert b.dropped == "" and b.bytes == 100  # in the middle of a request: kept
    assert len(store) == 2


def test_budget_drops_the_longest_idle_then_says_busy():
    clock = _Clock()
    store = sessions.SessionStore(budget_bytes=1000, idle_seconds=3600, max_sessions=3, clock=clock)
    old, newer, me = _Sess(400), _Sess(400), _Sess(0)
    for t, s in ((1, old), (2, newer), (3, me)):
        clock.t = t
        store.begin(s)
        store.end(s)
    store.begin(me)
    store.admit(me, 300)  # 800 + 300 > 1000: the longest idle goes, and only it
    assert old.dropped and "other people's galleries" in old.dropped and not newer.dropped
    me.bytes = 300
    store.begin(newer)  # now every other session is active
    with pytest.raises(sessions.Busy, match="busy"):
        store.admit(me, 400)
    assert not newer.dropped and me.bytes == 300  # nothing taken, nothing lost
    with pytest.raises(sessions.Busy, match="whole budget"):
        store.admit(me, 5000)
    store.end(newer)
    store.admit(me, 400, replaces_bytes=300)  # replacing its own gallery: fits
    # the session limit (3): old was dropped, so a third session fits; a fourth drops the
    # longest idle one (newer, idle since t=3; me since t=5)
    clock.t = 5
    store.end(me)
    clock.t = 10
    store.begin(_Sess())
    assert len(store) == 3 and not newer.dropped
    store.begin(_Sess())
    assert len(store) == 3 and newer.dropped and not me.dropped


def test_malloc_arenas_are_capped_unless_the_person_chose(monkeypatch):
    import platform

    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert sessions.limit_malloc_arenas() is False  # the environment's choice wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    glibc = platform.libc_ver()[0] == "glibc"
    assert sessions.limit_malloc_arenas() is glibc
    sessions.release_freed_memory()  # never raises, glibc or not


# -- issue 24: what the model cannot read, and zip entries that are not photos -----------------------

def _processor_refusal():
    """What ReIDEngine.image_refusal asks: Qwen2-VL's own image processor (no model needed)."""
    from transformers import Qwen2VLImageProcessorPil

    from chatreid.retrieval.scorer import processor_refusal

    ip = Qwen2VLImageProcessorPil()
    return lambda im: processor_refusal(ip, im.width, im.height)


def test_images_the_model_cannot_read_are_refused_on_arrival_by_name(tmp_path):
    """(5) A 1x250, 1x1000 or 1000x1 image is refused at upload with the processor's reason; the
    rest of the gallery loads, and a query photo like it is refused by name."""
    refusal = _processor_refusal()
    ok = _png(tmp_path / "ok.png")
    thin = [_png(tmp_path / f"thin{w}x{h}.png", size=(w, h)) for w, h in
            ((1, 250), (1, 1000), (1000, 1))]
    z = tmp_path / "more.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(thin[0], "inside.png")
        zf.write(ok, "fine.png")
    items, problems = load_gallery([ok, *thin, z], Limits(), refusal)
    assert [i.name for i in items] == ["ok.png", "fine.png"]
    assert problems == [
        "thin1x250.png: the model cannot read a 1x250 image (absolute aspect ratio must be "
        "smaller than 200, got 250.0), skipped",
        "thin1x1000.png: the model cannot read a 1x1000 image (absolute aspect ratio must be "
        "smaller than 200, got 1000.0), skipped",
        "thin1000x1.png: the model cannot read a 1000x1 image (absolute aspect ratio must be "
        "smaller than 200, got 1000.0), skipped",
        "more.zip/inside.png: the model cannot read a 1x250 image (absolute aspect ratio must be "
        "smaller than 200, got 250.0), skipped"]
    with pytest.raises(UploadError, match=r"thin1x250.png: the model cannot read a 1x250 image"):
        load_query_images([thin[0]], Limits(), refusal)
    assert load_gallery([thin[0]], Limits())[0]  # without the model's rule it would be taken
    with pytest.raises(UploadError, match="No readable image was uploaded"):
        load_gallery([thin[0]], Limits(), refusal)


def test_zip_entries_that_are_not_photos_are_named(tmp_path):
    """(7) Entries named ".x", "..\\x" or under __MACOSX are never dropped without a note."""
    photo = _png(tmp_path / "p.png").read_bytes()
    z = tmp_path / "mac.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.png", photo)
        zf.writestr(".DS_Store", "junk")
        zf.writestr("people/.hidden.png", photo)
        zf.writestr("..\\windows.png", photo)  # a Windows folder separator: read as windows.png
        zf.writestr("__MACOSX/._a.png", "junk")
    items, problems = load_gallery([z], Limits())
    assert [i.name for i in items] == ["windows.png", "a.png"]
    assert problems == [
        "mac.zip: hidden entries (names starting with “.”): .DS_Store, people/.hidden.png, skipped",
        "mac.zip: macOS metadata (__MACOSX): __MACOSX/._a.png, skipped"]


def test_the_session_store_hands_freed_memory_back_once_no_request_runs(monkeypatch):
    """Issue 24 item 9: after a load, RSS follows what the sessions hold (malloc_trim once the
    last running request ends, not while others still run)."""
    import chatreid.chat.sessions as S

    trims = []
    monkeypatch.setattr(S, "release_freed_memory", lambda: trims.append(1))
    store = S.SessionStore(budget_bytes=10**9, idle_seconds=60, max_sessions=10)

    class Sess:
        def nbytes(self):
            return 0

        def drop(self, reason):
            pass

    a, b = Sess(), Sess()
    store.begin(a)
    store.begin(b)
    store.end(a)
    assert trims == []  # b still runs
    store.end(b)
    assert trims == [1]
    store.begin(a)
    store.forget(a)
    assert trims == [1, 1]


def test_client_cookie_is_set_once_and_read_back():
    import asyncio

    from chatreid.chat.sessions import CLIENT_COOKIE, ClientCookie, client_of

    sent = []

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message):
        sent.append(message)

    mw = ClientCookie(inner)
    asyncio.run(mw({"type": "http", "headers": []}, None, send))
    set_cookie = dict(sent[0]["headers"])[b"set-cookie"].decode()
    value = set_cookie.split(";")[0].split("=", 1)[1]
    assert set_cookie.startswith(CLIENT_COOKIE + "=") and "HttpOnly" in set_cookie and len(value) == 43
    sent.clear()  # a client that has one keeps it
    asyncio.run(mw({"type": "http", "headers": [(b"cookie", f"x=1; {CLIENT_COOKIE}={value}".encode())]},
                   None, send))
    assert b"set-cookie" not in dict(sent[0]["headers"])
    sent.clear()  # a malformed one is replaced
    asyncio.run(mw({"type": "http", "headers": [(b"cookie", f"{CLIENT_COOKIE}=short".encode())]},
                   None, send))
    assert b"set-cookie" in dict(sent[0]["headers"])

    class Req:
        headers = {"cookie": f"{CLIENT_COOKIE}={value}"}

    assert client_of(Req()) == value and client_of(None) is None
    Req.headers = {"cookie": f"{CLIENT_COOKIE}=short"}
    assert client_of(Req()) is None


def test_the_queue_outlasts_the_session_limit():
    """Issue 24 item 9: 80 clients at once got Gradio's "Queue is full" from a 64-place queue.
    The queue now holds more requests than the sessions the app keeps: every session held can
    have a request waiting."""
    from chatreid.chat.settings import Limits

    limits = Limits()
    assert limits.queue_size > limits.max_sessions >= 80
