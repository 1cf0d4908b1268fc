"""The shipped demo model in the chat app, as a person uses it: each example photo query of the
built-in galleries (examples/manifest.json: two standard, two cloth-changing, two infrared) is asked
through gradio_client, and the top-ranked image must be the right person for at least five of the
six. The example worlds are SynthPeds worlds no build trains on (examples/build_examples.py)."""

from __future__ import annotations

import json

import pytest

from chatreid.chat.examples import EXAMPLES_DIR
from chatreid.chat.settings import Limits, ModelChoice
from chatreid.demo import DEFAULT_OUT

MANIFEST = json.loads((EXAMPLES_DIR / "manifest.json").read_text())
PHOTO_QUERIES = [(g["name"], p) for g in MANIFEST["galleries"] for p in g["prompts"] if p.get("query")]


@pytest.fixture(scope="module")
def client():
    import app
    from gradio_client import Client

    choice = ModelChoice(str(DEFAULT_OUT), "demo")
    demo = app.build_app(app.load_engine(choice), choice, Limits())
    _, url, _ = app.launch(demo, host="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield Client(url, verbose=False, download_files=False)
    demo.close()


def test_the_six_example_photo_queries_are_there():
    assert sorted(name for name, _ in PHOTO_QUERIES) == ["ltcc", "ltcc", "market", "market", "sysu", "sysu"]


# The demo model's target. The shipped model puts the right person first for 5 of the 6 (the
# cloth-changing q_001, whose two other photos show other outfits, is the miss; the VLM scores the
# whole 21-30 image gallery here), as docs/demo-learning.md (24) says.
def test_the_demo_model_puts_the_right_person_first_for_five_of_six_example_queries(client):
    from gradio_client import handle_file

    right, seen = 0, []
    for name, prompt in PHOTO_QUERIES:
        history, _ = client.predict(name, api_name="/example_gallery")
        query = EXAMPLES_DIR / name / "query" / prompt["query"]
        _, results, _ = client.predict({"text": prompt["text"], "files": [handle_file(str(query))]}, "auto",
                                       api_name="/chat")
        top = results[0]["caption"]
        hit = any(t in top for t in prompt["truth"])
        right += hit
        seen.append(f"{name}/{prompt['query']}: #1 {top!r} ({'right' if hit else 'wrong'})")
    assert right >= 5, "\n".join(seen)


TEXT_QUERIES = [p for g in MANIFEST["galleries"] if g["name"] == "pedes" for p in g["prompts"]]


# The target of issue 21: both text examples right at the top. The text pre-filter the demo model
# ships ranks the 32 images and the VLM re-ranks its top 20 (the model's caption scoring is at
# chance), which puts the right person at 13-15 (one photo at 30) and 10-31 of 32
# (docs/benchmarks.md, "The demo model's shipped text pre-filter").
@pytest.mark.xfail(strict=True, reason="the demo model's caption scoring is at chance (issue 21)")
def test_the_demo_model_puts_the_right_person_first_for_both_text_examples(client):
    seen = []
    for prompt in TEXT_QUERIES:
        client.predict("pedes", api_name="/example_gallery")
        _, results, _ = client.predict({"text": prompt["text"], "files": []}, "auto", api_name="/chat")
        top = results[0]["caption"]
        seen.append(any(t in top for t in prompt["truth"]))
    assert len(seen) == 2 and all(seen), seen
