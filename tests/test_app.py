"""The chat app as a person and a script use it: launched once, driven by gradio_client and by a
real headless browser (Debian's chromium through Playwright).

The engine is the real one on the tiny random model, so rankings carry no meaning; the tests check
behaviour: every gallery image ranked exactly once with non-increasing scores, refinements change
the query, mistakes are answered in the chat and the app keeps serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from chatreid.chat.examples import EXAMPLES_DIR
from chatreid.chat.engine import ChatEngine
from chatreid.chat.settings import Limits, ModelChoice, model_name

CAPTION = re.compile(r"^#(\d+) · (-?\d+\.\d+) · (.+)$")
MARKET = EXAMPLES_DIR / "market"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """The app on the tiny model, launched once for this module, with small limits to test."""
    import app
    from chatreid.retrieval import ReIDEngine

    engine = ReIDEngine.from_pretrained(str(tiny_model_dir))
    limits = Limits(max_gallery=40, max_query_images=2, max_file_mb=2, request_seconds=120)
    demo = app.build_app(engine, ModelChoice(str(tiny_model_dir), "--model"), limits)
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    files = tmp_path_factory.mktemp("app-files")
    yield SimpleNamespace(url=url, limits=limits, files=files, demo=demo, engine=engine)
    demo.close()


@pytest.fixture
def client(served):
    from gradio_client import Client

    # One client = one session (its own state). Results are checked by caption, so the client need
    # not download every ranked image (that alone costs seconds on a busy machine).
    return Client(served.url, verbose=False, download_files=False)


def _files(paths):
    from gradio_client import handle_file

    return [handle_file(str(p)) for p in paths]


def _last_text(history) -> str:
    content = history[-1]["content"]
    parts = content if isinstance(content, list) else [content]
    return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts)


def _ranking(results) -> list[tuple[int, float, str]]:
    out = []
    for item in results:
        m = CAPTION.match(item["caption"])
        assert m, item["caption"]
        out.append((int(m.group(1)), float(m.group(2)), m.group(3)))
    return out


def _chat(client, text, files=(), task="auto"):
    history, results, _box = client.predict({"text": text, "files": _files(files)}, task,
                                            api_name="/chat")
    return _last_text(history), results


def _zip(paths, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in paths:
            zf.write(p, Path(p).name)
    return out


def _upload(client, paths):
    history, results = client.predict(_files(paths), api_name="/upload_gallery")
    return _last_text(history)


# -- gradio_client ---------------------------------------------------------------------------------

def test_api_is_named(served, client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/upload_gallery", "/example_gallery", "/chat", "/reset", "/search"} <= set(api)


def test_upload_ask_rank_refine(served, client):
    gallery = sorted((MARKET / "gallery").glob("*.jpg"))
    said = _upload(client, [_zip(gallery, served.files / "market.zip")])  # one upload, a zip
    assert f"Gallery ready: {len(gallery)} images" in said

    said, results = _chat(client, "Find this person in the gallery.",
                          [MARKET / "query" / "q_001_visible.jpg"])
    ranking = _ranking(results)
    assert [r for r, _, _ in ranking] == list(range(1, len(gallery) + 1))
    assert sorted(name for _, _, name in ranking) == [p.name for p in gallery]  # each once
    scores = [s for _, s, _ in ranking]
    assert scores == sorted(scores, reverse=True)
    assert "same person (standard Re-ID)" in said and f"#1 {ranking[0][2]}" in said

    # pick result #2 as the new query: the answer names it, and the ranking is recomputed
    said, results = _chat(client, "use #2 as the query")
    assert f"Using result #2 ({ranking[1][2]}) as the query" in said
    assert "Query:** 1 photo (" + ranking[1][2] in said
    # and that image is not ranked against itself
    assert ranking[1][2] not in [n for _, _, n in _ranking(results)]
    assert len(_ranking(results)) == len(gallery) - 1
    assert f"Left out of the ranking: {ranking[1][2]}, an exact duplicate" in said

    # add a sentence -> adaptive (photo + words)
    said, _ = _chat(client, "she carries a black backpack")
    assert "adaptive" in said and "carrying a backpack" in said

    # why do they match -> the attribute comparison, and the shown ranking stays
    said, results_after = _chat(client, "why do the query and #1 match?")
    assert said.startswith("Comparing the query (")
    assert len(results_after) == len(gallery) - 1

    client.predict(api_name="/reset")
    said, results = _chat(client, "describe #1")
    assert "no results yet" in said.lower() and results == []


def test_text_query_on_an_example_gallery(served, client):
    manifest = json.loads((EXAMPLES_DIR / "manifest.json").read_text())
    pedes = next(g for g in manifest["galleries"] if g["name"] == "pedes")
    history, _ = client.predict("pedes", api_name="/example_gallery")
    assert "Gallery ready" in _last_text(history)
    said, results = _chat(client, pedes["prompts"][0]["text"])
    assert "text description to image" in said
    assert len(results) == len(list((EXAMPLES_DIR / "pedes" / "gallery").glob("*.jpg")))
    said, _ = _chat(client, pedes["prompts"][1]["text"])
    assert "partial attributes" in said


def test_preset_overrides_the_words(served, client):
    _upload(client, sorted((MARKET / "gallery").glob("*.jpg"))[:6])
    said, _ = _chat(client, "find him", [MARKET / "query" / "q_002_visible.jpg"],
                    task="visible_infrared")
    assert "infrared to visible" in said and "you chose it" in said


def test_bad_inputs_are_answered_and_the_session_keeps_working(served, client):
    d = served.files
    good = [Image.new("RGB", (32, 64), (i * 5, 90, 40)) for i in range(41)]
    paths = []
    for i, im in enumerate(good):
        im.save(d / f"p{i:02d}.png")
        paths.append(d / f"p{i:02d}.png")
    (d / "notes.png").write_text("this is not a photo")
    (d / "cut.jpg").write_bytes((MARKET / "gallery" / "g01_001.jpg").read_bytes()[:300])

    assert "at most 40" in _upload(client, [_zip(paths, d / "41.zip")])  # too many images
    said = _upload(client, [d / "notes.png"])                           # nothing readable
    assert "No readable image was uploaded" in said and "No gallery is loaded." in said
    said = _upload(client, paths[:5] + [d / "cut.jpg"])                 # damaged file skipped
    assert "Gallery ready: 5 images" in said and "cut.jpg" in said and "damaged" in said
    said, _ = _chat(client, "find this person", [d / "notes.png"])     # non-image query
    assert "notes.png: not an image" in said
    said, _ = _chat(client, "find them", [d / "p00.png"] * 3)          # too many query photos
    assert "at most 2" in said
    said, _ = _chat(client, "use #9 as the query")
    assert "no results yet" in said.lower()

    # a file over the upload limit is refused by the server itself
    big = d / "big.png"
    Image.frombytes("RGB", (1000, 1000), os.urandom(3_000_000)).save(big)
    with pytest.raises(Exception):
        _upload(client, [big])

    # a search past the time limit is stopped and said so
    served.limits.request_seconds = -1
    try:
        said, _ = _chat(client, "find this person", [d / "p01.png"])
    finally:
        served.limits.request_seconds = 120
    assert "time limit" in said

    # and after all that, the same session still answers (p01.png itself is left out)
    said, results = _chat(client, "find this person", [d / "p01.png"])
    assert "Best matches" in said and len(results) == 4


def test_stateless_search_endpoint(served, client):
    gallery = sorted((MARKET / "gallery").glob("*.jpg"))[:8]
    out = client.predict(_files([MARKET / "query" / "q_001_visible.jpg"]), _files(gallery),
                         "find this person", "auto", api_name="/search")
    assert out["ok"] and out["task"] == "standard"
    assert sorted(r["name"] for r in out["ranking"]) == [p.name for p in gallery]
    assert [r["rank"] for r in out["ranking"]] == list(range(1, 9))
    out = client.predict([], _files(gallery), "", "auto", api_name="/search")
    assert not out["ok"] and "query" in out["error"]
    store = served.demo.chatreid_sessions
    held = (len(store), store.held_bytes())
    out = client.predict([], _files(gallery), "a man in red " * 1000, "auto", api_name="/search")
    assert not out["ok"] and "13,000 characters long; the limit is 2,000" in out["error"]
    out = client.predict(_files([MARKET / "query" / "q_001_visible.jpg"]), _files(gallery),
                         "find this person", "auto", api_name="/search")
    assert out["ok"] and (len(store), store.held_bytes()) == held  # a stateless call keeps nothing


# -- bounded memory and time ----------------------------------------------------------------------

def _user_texts(history) -> list[str]:
    return [str(p) for m in history if m["role"] == "user"
            for p in (m["content"] if isinstance(m["content"], list) else [m["content"]])]


def test_long_message_is_refused_at_once_and_never_kept(served, client):
    import time

    _upload(client, sorted((MARKET / "gallery").glob("*.jpg"))[:6])
    said, _ = _chat(client, "find this person", [MARKET / "query" / "q_001_visible.jpg"])
    assert "Best matches" in said
    long = "she wears a red coat " * 4999 + "she wears a red coat"  # 104,999 characters
    t = time.perf_counter()
    history, results, _ = client.predict({"text": long, "files": []}, "auto", api_name="/chat")
    elapsed = time.perf_counter() - t
    said = _last_text(history)
    assert "104,999 characters long; the limit is 2,000" in said and "not used" in said
    assert elapsed < 5, elapsed  # no model call (the server-side figure is in docs/benchmarks.md)
    assert not any("red coat" in u for u in _user_texts(history))  # not even in the transcript
    assert len(results) == 6  # the ranking shown before stays
    said, results = _chat(client, "search again")
    assert "Best matches" in said and "red coat" not in said and len(results) == 6
    assert "same person (standard Re-ID)" in said  # the refused words did not make it adaptive


def test_typed_html_is_shown_as_text(served, client):
    _upload(client, sorted((MARKET / "gallery").glob("*.jpg"))[:4])
    history, _, _ = client.predict({"text": "find a man <img src=x onerror=alert(1)>", "files": []},
                                   "auto", api_name="/chat")
    shown = json.dumps(history)
    assert "<img" not in shown and "&lt;img src=x onerror=alert\\\\(1\\\\)&gt;" in shown


def test_images_are_reduced_on_arrival_and_counted(served, client):
    store = served.demo.chatreid_sessions
    keep = served.limits.keep_pixels
    d = served.files
    paths = []
    for i in range(3):  # 3 x 2000x2000 single-colour PNGs: small files, 12 MB decoded each
        Image.new("RGB", (2000, 2000), (i * 60, 20, 20)).save(d / f"huge{i}.png")
        paths.append(d / f"huge{i}.png")
    before = store.held_bytes()
    said = _upload(client, [_zip(paths, d / "huge.zip")])
    assert "Gallery ready: 3 images" in said
    # the reduced images (with their pre-filter features, a few kB, and the VLM encodings the
    # searches will keep, budgeted at upload from the reduced size), not 3 x 12 MB
    from chatreid.chat.uploads import reduced_size

    encodings = served.engine.encoding_bytes([Image.new("RGB", reduced_size(2000, 2000, keep))] * 3)
    assert 0 < encodings < 3 * keep * 3
    assert keep < 2000 * 2000 and 0 < store.held_bytes() - before <= 3 * keep * 3 + encodings + 64_000
    said, results = _chat(client, "find this person", [paths[0]])
    assert "Best matches" in said and len(results) == 2  # huge0 itself is left out


def test_busy_and_idle_sessions_are_told_and_go_on(served, client):
    store = served.demo.chatreid_sessions
    gallery = sorted((MARKET / "gallery").glob("*.jpg"))[:5]
    budget = store.budget_bytes
    store.budget_bytes = 1000  # less than this one upload needs
    try:
        said = _upload(client, gallery)
    finally:
        store.budget_bytes = budget
    assert "Nothing was loaded" in said and "upload fewer images" in said
    assert "Gallery ready" in _upload(client, gallery)
    idle = store.idle_seconds
    store.idle_seconds = 0  # every session is now idle too long
    try:
        history, results, _ = client.predict(
            {"text": "find this person", "files": _files([MARKET / "query" / "q_001_visible.jpg"])},
            "auto", api_name="/chat")
    finally:
        store.idle_seconds = idle
    told = [json.dumps(m["content"]) for m in history if m["role"] == "assistant"][-2:]
    assert "were dropped because it was idle for more than" in told[0]
    assert "no gallery yet" in told[1] and results == []
    assert "Gallery ready: 5 images" in _upload(client, gallery)
    said, results = _chat(client, "find this person", [MARKET / "query" / "q_001_visible.jpg"])
    assert "Best matches" in said and len(results) == 5


def test_engine_takes_the_gallery_features_a_session_keeps(served):
    from chatreid.retrieval import Query

    engine = served.engine
    gallery = [Image.open(p).convert("RGB") for p in sorted((MARKET / "gallery").glob("*.jpg"))[:8]]
    query = Query(images=[Image.open(MARKET / "query" / "q_001_visible.jpg").convert("RGB")],
                  task="standard")
    feats = engine.prefilter_features(gallery)
    assert feats.shape[0] == 8
    kept = engine.search(query, gallery, gallery_features=feats)
    fresh = engine.search(query, gallery)
    assert kept.ranking == fresh.ranking and kept.prefilter_scores == fresh.prefilter_scores
    with pytest.raises(ValueError, match="7 rows for a gallery of 8"):
        engine.search(query, gallery, gallery_features=feats[:7])


def test_each_session_keeps_its_gallery_encodings(served, monkeypatch):
    """A session's later searches on its gallery encode no gallery image again, whatever another
    session searches in between; the encodings are the session's own and counted in its memory."""
    import chatreid.retrieval.engine as E
    from gradio_client import Client

    encoded = []
    real = E.encode
    monkeypatch.setattr(E, "encode", lambda m, p, ims, bs=16: (encoded.append(len(ims)), real(m, p, ims, bs))[1])
    a, b = (Client(served.url, verbose=False, download_files=False) for _ in range(2))
    market = sorted((MARKET / "gallery").glob("*.jpg"))[:12]
    ltcc = sorted((EXAMPLES_DIR / "ltcc" / "gallery").glob("*.jpg"))[:10]
    queries = sorted((MARKET / "query").glob("*.jpg"))
    assert "Gallery ready: 12 images" in _upload(a, market)
    assert "Gallery ready: 10 images" in _upload(b, ltcc)
    assert encoded == []  # uploads compute pre-filter features only; the model queue encodes
    assert "Best matches" in _chat(a, "find this person", [queries[0]])[0]
    assert "Best matches" in _chat(b, "find this person", [queries[1]])[0]
    assert encoded == [1 + 12, 1 + 10]  # the query photo and each gallery image, once
    said, results = _chat(a, "find this person", [queries[1]])  # after b's search: a new photo
    assert "Best matches" in said and len(results) == 12
    assert encoded[-1] == 1  # only the new query photo; a's gallery encodings survived b's search
    said, results = _chat(b, "use #2 as the query")  # a gallery image: its encoding is reused
    assert "Using result #2" in said and len(results) == 9 and len(encoded) == 3
    said, _ = _chat(b, "she carries a black backpack")  # the same query, now with words
    assert "adaptive" in said and len(encoded) == 3
    store = served.demo.chatreid_sessions
    by_size = {len(e["session"].conv.gallery): e["session"] for e in store._entries.values()
               if [g.name for g in e["session"].conv.gallery] in ([p.name for p in market],
                                                                   [p.name for p in ltcc])}
    sa, sb = by_size[12], by_size[10]
    ea, eb = sa.conv.gallery_encodings, sb.conv.gallery_encodings
    assert sorted(ea) == list(range(12)) and sorted(eb) == list(range(10))
    assert not {id(e.embeds) for e in ea.values()} & {id(e.embeds) for e in eb.values()}
    # counted in the session's memory from the upload on (reserved in full), exactly
    held = sum(e.embeds.numel() * e.embeds.element_size() for e in ea.values())
    assert sa.encodings_reserved == served.engine.encoding_bytes([g.image for g in sa.conv.gallery]) == held
    assert sa.nbytes() >= held + sum(g.image.width * g.image.height * 3 for g in sa.conv.gallery)
    # a new gallery starts afresh: its images are encoded by its first search
    assert "Gallery ready: 10 images" in _upload(a, ltcc)
    assert sa.conv.gallery_encodings == {}
    _chat(a, "find this person", [queries[0]])
    assert encoded[-1] == 1 + 10 and sb.conv.gallery_encodings is eb and len(eb) == 10


# -- refinement turns, with a model whose outputs are known -----------------------------------------

class StubEngine(ChatEngine):
    """The engine boundary with known outputs: ranks by the red channel; a red person (red > 150)
    is 'a woman in red with a backpack', any other 'a woman in blue'; ``degenerate`` makes every
    generated text repeat itself, as the demo model's did."""

    max_pixels = 2048
    model_info = {"name_or_path": "stub", "origin": "local", "architecture": "Stub"}
    degenerate = False

    def count_tokens(self, text):
        return len(text.split())

    def search(self, query, gallery, strategy="pairwise", top_k=None, tau=None, batch_size=16,
               progress=None):
        from chatreid.retrieval import SearchResult

        query.validate()
        self.last_query = query
        reds = [im.getpixel((0, 0))[0] for im in gallery]
        order = sorted(range(len(gallery)), key=lambda i: -reds[i])
        return SearchResult(order, [reds[i] / 255 for i in order], len(order),
                            "The match match match matching images are: Image 2."
                            if self.degenerate else "The matching images are: Image 1.",
                            [reds[i] / 255 for i in range(len(gallery))])

    def _attrs(self, image):
        red = image.getpixel((0, 0))[0] > 150
        return {"gender": "female", "upper_color": "red" if red else "blue", "backpack": red}

    def predict_attributes(self, image):
        from chatreid import prompts
        return "match match match" if self.degenerate else prompts.answer_attributes(self._attrs(image))

    def compare(self, a, b):
        from chatreid import prompts
        return "" if self.degenerate else prompts.answer_attr_compare(self._attrs(a), self._attrs(b))

    def describe(self, image):
        return "None" if self.degenerate else "A woman in a red coat, walking."


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    import app

    engine = StubEngine()
    demo = app.build_app(engine, ModelChoice("stub", "--model"), Limits(max_gallery=40))
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    d = tmp_path_factory.mktemp("stub-files")
    paths = []
    for red in (40, 200, 120, 250):
        Image.new("RGB", (32, 64), (red, 10, 10)).save(d / f"person_{red:03d}.png")
        paths.append(d / f"person_{red:03d}.png")
    yield SimpleNamespace(url=url, engine=engine, paths=paths, demo=demo)
    demo.close()


@pytest.fixture
def stub_client(stub):
    from gradio_client import Client

    stub.engine.degenerate = False
    return Client(stub.url, verbose=False, download_files=False)


def test_compare_turn_shows_the_models_attribute_answers_side_by_side(stub, stub_client):
    _upload(stub_client, stub.paths)
    said, results = _chat(stub_client, "find this person", [stub.paths[0]])  # red 40: blue
    assert [name for _, _, name in _ranking(results)] == ["person_250.png", "person_200.png",
                                                          "person_120.png"]
    assert "Left out of the ranking: person_040.png, an exact duplicate of the query" in said
    # the engine's answer named it (gallery Image 1) as a match: not any more
    assert "Image 1" not in said and "**Model:** The matching images are: none." in said
    said, results = _chat(stub_client, "why do the query and #1 match?")
    assert said.startswith("Comparing the query (person_040.png) with #1 (person_250.png).")
    assert "| upper garment colour | blue | red | **differ** |" in said
    assert "| gender | female | female | agree |" in said
    assert "They agree on 1 of the 3 attributes both answers name (gender)" in said
    assert "**The model's direct comparison:** in common: female;" in said
    assert len(results) == 3  # the ranking stays
    said, _ = _chat(stub_client, "describe #2")
    assert "Result #2 (person_200.png):" in said
    assert "**The model's description:** A woman in a red coat, walking." in said


def test_use_a_result_as_query_never_ranks_it_against_itself(stub, stub_client):
    _upload(stub_client, stub.paths)
    _chat(stub_client, "find this person", [stub.paths[0]])
    said, results = _chat(stub_client, "use #2 as the query")  # person_200
    names = [name for _, _, name in _ranking(results)]
    assert "person_200.png" not in names and len(names) == 3
    assert "Left out of the ranking: person_200.png" in said


def test_degenerate_output_is_reported_with_what_can_be_trusted(stub, stub_client):
    _upload(stub_client, stub.paths)
    stub.engine.degenerate = True
    said, results = _chat(stub_client, "find this person", [stub.paths[2]])
    assert "match match" not in said and len(results) == 3
    assert "its answer in words could not be used (it repeated itself)" in said
    said, _ = _chat(stub_client, "why do the query and #1 match?")
    assert "match match" not in said
    assert "attribute answer could not be used for the query (it repeated itself)" in said
    assert "The search gave #1 a score of 0.980 (scored by the model)" in said
    said, _ = _chat(stub_client, "describe #2")
    assert ": None" not in said and "The model's description could not be used" in said


def test_sentence_after_cloth_changing_request_is_kept(stub, stub_client):
    _upload(stub_client, stub.paths)
    said, _ = _chat(stub_client, "Same person, but he may have changed clothes.", [stub.paths[1]])
    assert "cloth-changing Re-ID" in said
    said, _ = _chat(stub_client, "he carries a black backpack")
    assert "cloth-changing Re-ID" in said
    assert "**Your words, used with the photo:** male, carrying a backpack" in said
    q = stub.engine.last_query
    assert q.task == "cloth_changing" and q.attributes == {"gender": "male", "backpack": True}


# -- issue 24: the first hour ---------------------------------------------------------------------

def test_an_image_the_model_cannot_read_never_poisons_the_session(served, client):
    """(5) A 1x250 image in a gallery is refused at upload, by name and with the processor's
    reason; photo search, text search and /search then work on the rest."""
    d = served.files
    gallery = sorted((MARKET / "gallery").glob("*.jpg"))[:5]
    thin = d / "thin.png"
    Image.new("RGB", (1, 250), (90, 90, 90)).save(thin)
    said = _upload(client, [*gallery, thin])
    assert "Gallery ready: 5 images" in said
    assert ("thin.png: the model cannot read a 1x250 image (absolute aspect ratio must be smaller "
            "than 200, got 250.0), skipped") in said
    said, results = _chat(client, "find this person", [MARKET / "query" / "q_001_visible.jpg"])
    assert "Best matches" in said and len(results) == 5
    said, results = _chat(client, "start over")
    said, results = _chat(client, "a man in a red top with a backpack")
    assert "Best matches" in said and len(results) == 5
    said, _ = _chat(client, "find this person", [thin])  # as a query photo: refused by name
    assert "thin.png: the model cannot read a 1x250 image" in said
    out = client.predict(_files([MARKET / "query" / "q_001_visible.jpg"]), _files([*gallery, thin]),
                         "find this person", "auto", api_name="/search")
    assert out["ok"] and len(out["ranking"]) == 5
    assert any("thin.png: the model cannot read" in p for p in out["skipped"])


def test_upload_gallery_skips_and_names_a_non_image_like_search(served, client):
    """(7) One .txt among the photos no longer refuses the whole /upload_gallery call."""
    notes = served.files / "notes.txt"
    notes.write_text("not a photo")
    said = _upload(client, [*sorted((MARKET / "gallery").glob("*.jpg"))[:3], notes])
    assert "Gallery ready: 3 images" in said and "notes.txt: not an image file" in said


def test_a_new_example_or_gallery_starts_a_new_query_and_a_refusal_says_what_is_loaded(tmp_path):
    """(6) Switching example galleries, clicking a second example, and a rejected zip, through
    the app's handlers (the examples table's click has no API endpoint)."""
    import app

    engine = StubEngine()
    h = app.Handlers(engine, Limits(max_gallery=80))
    query = str(EXAMPLES_DIR / "sysu" / "query" / "q_001_infrared.jpg")

    def chat(session, text, files=()):
        session, history, ranked, _ = h.chat({"text": text, "files": list(files)}, "auto",
                                             session, progress=None)
        return session, _last_text(history), ranked

    s, _, _ = h.example_gallery("sysu", None)
    s, said, _ = chat(s, "This is an infrared shot; find them in the daylight cameras.", [query])
    s, said, _ = chat(s, "he carries a black backpack")
    assert "infrared" in said and engine.last_query.images
    # another example gallery: its request is a new query, the old photo and sentence are gone
    s, history, _ = h.example_gallery("pedes", s)
    assert "A new gallery starts a new query: the earlier one was cleared." in _last_text(history)
    s, said, ranked = chat(s, "Find a male person with a gray upper garment, not carrying a backpack.")
    q = engine.last_query
    assert not q.images and q.attributes == {"gender": "male", "upper_color": "gray",
                                             "backpack": False}
    assert "black backpack" not in said and "q_001" not in said

    # a second example of the same gallery (clicked in the table) starts a new query too
    s, said, _ = chat(s, "she has long hair", [query])
    s, history, _ = h.example_clicked("pedes", s)
    assert "A new example starts a new query" in _last_text(history) and not s.conv.has_query
    # clicking an example whose gallery is not loaded loads it
    s, history, _ = h.example_clicked("market", s)
    assert "Gallery ready: " in _last_text(history) and "Press Enter" in _last_text(history)
    n = len(s.conv.gallery)

    # a rejected zip says so, and says which gallery is still loaded; that one is searched
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("notes.txt", "not a photo")
    s, history, _ = h.upload_gallery([str(bad)], s)
    said = _last_text(history)
    assert "No readable image was uploaded" in said and "gallery is empty" not in said
    assert (f"The gallery loaded is still the earlier one: {n} images from the example “"
            in said)
    s, said, ranked = chat(s, "find this person", [query])
    assert len(ranked) == n


# -- a real browser ------------------------------------------------------------------------------

def _browser_or_skip():
    """The browser test needs Debian's chromium. Under CI (``CI`` set, as ``.ci/run`` does) it is
    mandatory; elsewhere (a fresh machine following the README) a missing browser is a skip."""
    if Path(CHROMIUM).exists():
        return
    why = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why + "; the browser test is skipped outside CI")


def _grid_columns(page) -> int:
    return page.eval_on_selector("#results .grid-container",
                                 "e => getComputedStyle(e).gridTemplateColumns.split(' ').length")


def _outside(page, selector) -> list:
    """Elements under ``selector`` that stick out of the window or of their table cell."""
    return page.eval_on_selector_all(selector, """els => els.filter(e => {
        const r = e.getBoundingClientRect(), cell = e.closest('td');
        const c = cell ? cell.getBoundingClientRect() : {left: 0, right: window.innerWidth};
        return r.right > Math.min(window.innerWidth, c.right) + 1 || r.left < c.left - 1;
    }).map(e => e.innerText || e.src)""")


def _not_cut(page, selector) -> list:
    """Elements under ``selector`` whose text does not fit (cut by an ellipsis or overflow)."""
    return page.eval_on_selector_all(selector, """els => els.filter(e =>
        e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > window.innerWidth + 1
    ).map(e => e.innerText)""")


@pytest.mark.browser
def test_browser_examples_upload_ask_and_see_the_ranking(served, tmp_path):
    _browser_or_skip()
    from playwright.sync_api import expect, sync_playwright

    n_market = len(list((MARKET / "gallery").glob("*.jpg")))
    gallery = sorted((EXAMPLES_DIR / "ltcc" / "gallery").glob("*.jpg"))[:12]
    shots = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(served.url)
            expect(page.locator("#model-info")).to_contain_text("Model:", timeout=30_000)
            chat, box = page.locator("#chat"), page.locator("#ask textarea")
            assert _not_cut(page, "#examples th") == []  # the Examples header reads whole

            # a newcomer clicks the first example: its gallery loads and the message is filled
            page.locator("text=Find this person in the gallery.").first.click()
            expect(chat).to_contain_text(f"Gallery ready: {n_market} images", timeout=30_000)
            expect(page.locator("#ask img")).to_have_count(1, timeout=30_000)
            box.press("Enter")
            expect(chat).to_contain_text("Best matches", timeout=60_000)
            expect(page.locator("#results img")).to_have_count(n_market, timeout=30_000)
            # every caption is whole: rank, score and the full file name (the person id at its end)
            captions = page.locator("#results .caption-label").all_inner_texts()
            assert len(captions) == n_market and all(CAPTION.match(c) for c in captions), captions
            assert {CAPTION.match(c).group(3) for c in captions} == \
                {p.name for p in (MARKET / "gallery").glob("*.jpg")}
            assert _not_cut(page, "#results .caption-label") == []
            assert _grid_columns(page) == 6 and _outside(page, "#results .thumbnail-item") == []
            # the long example and its neighbours wrap inside their own column
            assert _outside(page, "#examples td .container, #examples td p") == []
            expect(page.locator("#help")).to_be_visible()  # the help is still there
            expect(chat).to_contain_text("Upload a gallery (several photos")  # and atop the chat
            assert "/" not in page.locator("#model-info code").first.inner_text()
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            shots["app.png"] = tmp_path / "app.png"

            # the ranked gallery opens large
            page.locator("#results button.thumbnail-item").first.click()
            big = page.locator("#results .preview img").first
            expect(big).to_be_visible(timeout=10_000)
            assert big.bounding_box()["height"] > 400
            page.locator("#results").screenshot(path=str(tmp_path / "app-preview.png"))
            shots["app-preview.png"] = tmp_path / "app-preview.png"
            page.keyboard.press("Escape")

            # the message shows at once, with a working line, while the model is still busy
            real_search = served.engine.search

            def slow_search(*a, **k):
                import time
                time.sleep(4)
                return real_search(*a, **k)

            served.engine.search = slow_search
            try:
                box.fill("find a man <img src=x> in a red top")
                box.press("Enter")
                expect(chat).to_contain_text("find a man <img src=x> in a red top", timeout=2_000)
                expect(chat).to_contain_text("Working on it", timeout=2_000)
                assert chat.get_by_text("Best matches:").count() == 1  # the answer is not in yet
                expect(chat.get_by_text("Best matches:")).to_have_count(2, timeout=60_000)
            finally:
                served.engine.search = real_search
            assert page.locator("#chat img[src='x']").count() == 0  # typed HTML stays text
            expect(chat).not_to_contain_text("Working on it")

            # their own files: a gallery of 12 photos, a query photo and a request in words
            page.locator("#gallery-upload input[type=file]").set_input_files([str(p) for p in gallery])
            expect(chat).to_contain_text("Gallery ready: 12 images", timeout=30_000)
            page.locator("#ask input[type=file]").set_input_files(
                [str(EXAMPLES_DIR / "ltcc" / "query" / "q_001_visible.jpg")])
            expect(page.locator("#ask img")).to_have_count(1, timeout=30_000)
            box.fill("Same person, but he may have changed clothes.")
            box.press("Enter")
            expect(chat).to_contain_text("cloth-changing Re-ID", timeout=60_000)
            expect(page.locator("#results img")).to_have_count(12, timeout=30_000)
            captions = page.locator("#results").inner_text()
            assert "#1 · " in captions and "#12 · " in captions

            # a non-image added to the gallery is named and skipped; the session keeps serving
            bad = tmp_path / "notes.png"
            bad.write_text("not a photo")
            page.locator("#gallery-upload input[type=file]").set_input_files([str(bad)])
            expect(chat).to_contain_text("notes.png: not an image file", timeout=30_000)
            expect(chat).to_contain_text("A new gallery starts a new query", timeout=30_000)
            # (a message sent while the last one is still answered is ignored, as Gradio's
            # submit triggers once: so wait for each answer before typing the next; and the
            # file input fires only for another file than the one it last had)
            page.locator("#ask input[type=file]").set_input_files(
                [str(EXAMPLES_DIR / "ltcc" / "query" / "q_002_visible.jpg")])
            expect(page.locator("#ask img")).to_have_count(1, timeout=30_000)
            box.fill("find this person")
            box.press("Enter")
            expect(chat.get_by_text("Best matches:")).to_have_count(4, timeout=60_000)
            box.fill("why?")
            box.press("Enter")
            expect(chat).to_contain_text("Comparing the query (", timeout=60_000)
            page.screenshot(path=str(tmp_path / "after.png"), full_page=True)

            # an example clicked now loads its gallery (a new query); a second example of the
            # same gallery starts a new query too, never merged into the last one
            example = page.locator("#examples").get_by_text("Find this person in the gallery.")
            example.nth(1).click()
            expect(chat.get_by_text("Press Enter to send the example's request")).to_have_count(
                2, timeout=30_000)
            expect(page.locator("#ask img")).to_have_count(1, timeout=30_000)
            box.press("Enter")
            expect(chat.get_by_text("Best matches:")).to_have_count(5, timeout=60_000)
            example.first.click()
            expect(chat).to_contain_text("A new example starts a new query", timeout=30_000)

            # on a phone (375 px): the header and the examples wrap, the results take 3 columns
            # that fit the screen, and the help stays reachable
            phone = browser.new_page(viewport={"width": 375, "height": 800})
            phone.goto(served.url)
            expect(phone.locator("#examples th").first).to_be_visible(timeout=30_000)
            assert _not_cut(phone, "#examples th") == []
            assert _outside(phone, "#examples td .container, #examples td p") == []
            phone.locator("text=Find this person in the gallery.").first.click()
            expect(phone.locator("#chat")).to_contain_text("Gallery ready", timeout=30_000)
            expect(phone.locator("#ask img")).to_have_count(1, timeout=30_000)
            phone.locator("#ask textarea").press("Enter")
            expect(phone.locator("#results img")).to_have_count(n_market, timeout=60_000)
            assert _grid_columns(phone) == 3
            assert _outside(phone, "#results .thumbnail-item") == []
            phone.locator("#help").click()
            expect(phone.locator("#help")).to_contain_text("use #2 as the query")
            phone.screenshot(path=str(tmp_path / "app-phone.png"), full_page=True)
            shots["app-phone.png"] = tmp_path / "app-phone.png"
        finally:
            browser.close()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    if os.environ.get("CHATREID_DOCS_SCREENSHOT"):  # docs/img/app.png; the others beside it
        target = Path(os.environ["CHATREID_DOCS_SCREENSHOT"])
        for name, path in shots.items():
            shutil.copy(path, target if name == "app.png" else target.with_name(name))


def test_missing_browser_is_a_skip_outside_ci_and_a_failure_under_ci(monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="skipped outside CI"):
        _browser_or_skip()
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        _browser_or_skip()


def test_file_names_are_shown_as_text(served, client):
    d = served.files
    z = d / "names.zip"  # names inside a zip reach the app as they are
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("<img src=x>.png", "not a photo")
        zf.write(sorted((MARKET / "gallery").glob("*.jpg"))[0], "ok.jpg")
    said = _upload(client, [z])
    assert "Gallery ready: 1 images" in said
    assert "<img" not in said and "names.zip/&lt;img src=x&gt;.png: not an image file" in said


# -- sessions belong to their client; the page names the model, not the server's path -----------

def test_a_session_id_alone_does_not_open_another_clients_session(served, client):
    """Issue 24 item 10: a client given another session's id gets a refusal, not the
    conversation; the owner's session goes on as it was."""
    from gradio_client import Client

    _upload(client, sorted((MARKET / "gallery").glob("*.jpg"))[:5])
    said, results = _chat(client, "find this person", [MARKET / "query" / "q_001_visible.jpg"])
    assert "Best matches" in said and len(results) == 5
    assert len(client.cookies.get("chatreid_client", "")) == 43  # from the app's /config

    thief = Client(served.url, verbose=False, download_files=False)
    assert thief.cookies["chatreid_client"] != client.cookies["chatreid_client"]
    thief.session_hash = client.session_hash
    for call in (lambda: thief.predict({"text": "why?", "files": []}, "auto", api_name="/chat"),
                 lambda: thief.predict(api_name="/reset")):
        with pytest.raises(Exception, match="belongs to another browser or client") as err:
            call()
        assert "find this person" not in str(err.value) and "Best matches" not in str(err.value)
    # the owner's conversation is untouched: the refused /reset did not clear it
    said, results = _chat(client, "use #2 as the query")
    assert "Using result #2" in said and len(results) == 4

    # a result image is served from an unguessable path: sha256 of a per-server secret and the
    # file's content (docs/app.md "Security")
    assert re.search(r"/gradio_api/file=.*/[0-9a-f]{64}/[^/]+$", results[0]["image"]["url"])


def test_the_page_names_the_model_not_the_servers_path(served):
    import httpx

    import app

    assert model_name("/srv/x/models/chatreid-demo", "local") == "chatreid-demo"
    assert model_name("org/chatreid-2b", "hub") == "org/chatreid-2b"
    config = httpx.get(served.url + "config").text
    name = Path(served.engine.model_info["name_or_path"])
    assert f"`{name.name}`" in config and str(name) not in config and str(name.parent) not in config


def test_the_help_stays_at_the_top_of_the_chat(served, client):
    from chatreid.chat.answers import HELP_TEXT

    history, _ = client.predict(_files(sorted((MARKET / "gallery").glob("*.jpg"))[:3]),
                                api_name="/upload_gallery")
    assert history[0]["role"] == "assistant" and _last_text(history[:1]) == HELP_TEXT
    assert "Gallery ready: 3 images" in _last_text(history)


def test_claim_binds_a_session_to_its_first_client():
    import gradio as gr

    import app

    s = app.Session()
    assert app.claim(s, "a" * 43) is s and s.owner == "a" * 43
    assert app.claim(s, "a" * 43) is s
    for other in ("b" * 43, None):
        with pytest.raises(gr.Error, match="belongs to another"):
            app.claim(s, other)
    cookieless = app.Session()
    assert app.claim(cookieless, None) is cookieless and app.claim(cookieless, None) is cookieless
    with pytest.raises(gr.Error):
        app.claim(cookieless, "a" * 43)
