"""The app's model resolution, limits and upload handling, without launching Gradio."""

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

from chatreid import app_support
from chatreid.app_support import (Limits, UploadError, app_default_model, example_galleries,
                                  load_gallery, load_query_images, open_image)


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
    monkeypatch.setattr(app_support, "DEMO_MODEL_DIR", demo)
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
    monkeypatch.setattr(app_support, "DEMO_MODEL_DIR", tmp_path / "absent")
    calls = []

    def fake_build(out, seed=0):
        calls.append(Path(out))
        Path(out, "config.json").write_text("{}")
        return Path(out)

    # a stand-in module, so this test does not pay for importing torch and transformers
    monkeypatch.setitem(sys.modules, "chatreid.model.tiny",
                        types.SimpleNamespace(build_tiny_qwen2vl=fake_build))
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
        open_image(str(_png(tmp_path / "big.png", (100, 100))), "big.png", Limits(max_pixels=5000))


def test_pillow_limit_is_applied():
    old = Image.MAX_IMAGE_PIXELS
    try:
        Limits(max_pixels=1234).apply_to_pillow()
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
    assert len(problems) == 2
    assert any("readme.txt" in p for p in problems) and any("broken.jpg" in p for p in problems)


def test_gallery_refusals(tmp_path):
    files = [_png(tmp_path / f"p{i}.png") for i in range(5)]
    with pytest.raises(UploadError, match="at most 4"):
        load_gallery(files, Limits(max_gallery=4))
    junk = tmp_path / "junk.txt"
    junk.write_text("x")
    with pytest.raises(UploadError, match="empty"):
        load_gallery([junk], Limits())
    with pytest.raises(UploadError, match="empty"):
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
                assert (app_support.EXAMPLES_DIR / e.name / "query" / p["query"]).is_file()
        total += sum(f.stat().st_size for f in e.gallery + e.queries)
    assert total < 2_000_000
    assert not ex["pedes"].queries  # the text example has no query photo


@pytest.mark.parametrize("front_gap", ["", "\n"])
def test_model_card_summary_skips_front_matter_and_headings(tmp_path, front_gap):
    (tmp_path / "README.md").write_text(
        f"---\nlicense: apache-2.0\n---\n{front_gap}# A model\n\nWhat it is.\n\n## More\n\nDetails.\n")
    assert app_support.model_card_summary(str(tmp_path)) == "What it is."
    assert app_support.model_card_summary(str(tmp_path / "absent")) is None
