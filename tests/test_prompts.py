"""chatreid.prompts: fidelity to the paper's words, paraphrase slots, answers and their parsers."""

import re
import string
from pathlib import Path

import numpy as np
import pytest

from chatreid import prompts as P

PAPER_MD = Path(__file__).resolve().parents[2] / "shared" / "paper" / "chatreid.md"

FIELDS = dict(gallery=P.gallery_block(3), caption="a man in a red coat",
              options=P.caption_options(["a", "b", "c"]), text="a woman with a bag",
              attributes="male, carrying a backpack", index=2)


def _back_to_paper(name: str) -> str:
    """Undo the slot filling of a verbatim template, giving the paper's printed text."""
    t = P.TEMPLATES[name].replace("\n{gallery}", "")
    if name.startswith("reid_"):
        t = t.replace('"{text}"', "{text}").replace("gallery images", "{gallery}")
        t = t.replace("person image <image>" if "<image>" in t else "person image", "{person image}")
    elif name == "caption":
        t = t.replace("person image <image>", "{person image}")
    else:
        t = t.replace("<image><image>", "< >").replace("<image>", "< >")
    return t


@pytest.mark.parametrize("name", ["caption", "reid_standard", "reid_cc", "reid_vi", "reid_t2i",
                                  "i2i_one_to_one", "attr_predict"])
def test_verbatim_templates_are_the_papers_words(name):
    assert _back_to_paper(name) == P.PAPER[name]


def test_paper_quotes_match_the_paper_text():
    if not PAPER_MD.exists():
        pytest.skip(f"{PAPER_MD} not present")
    text = " ".join(PAPER_MD.read_text().split())
    for name in ("caption", "reid_standard", "reid_cc", "reid_vi", "i2i_one_to_one",
                 "attr_predict", "t2i_one_to_many", "i2i_many_to_many/response"):
        assert P.PAPER[name] in text, name


def test_reconstructed_figure4_templates_keep_the_printed_words():
    # Every printed (ungarbled) phrase of Figure 4 survives in the reconstruction.
    assert "of the pedestrian in the query image." in P.TEMPLATES["i2i_many_to_many"]
    assert P.TEMPLATES["i2i_many_to_many"].startswith("Given the query image <image> of a pedestrian and a gallery set")
    assert P.TEMPLATES["t2i_one_to_one"].startswith("Does the image <image> of the pedestrian match the following caption:")
    assert P.TEMPLATES["t2i_many_to_one"].startswith(
        "Given the following image <image>, which of the captions accurately describes it?")
    assert P.caption_options(["x", "y", "z"]) == 'The first caption: "x". The second caption: "y". The third caption: "z".'
    assert P.answer_caption_choice(1) == P.PAPER["t2i_many_to_one/response"]


def test_every_task_has_a_template_and_paraphrases_keep_slots_and_images():
    assert set(P.INSTRUCTION_TASKS) <= set(P.TEMPLATES)
    fmt = string.Formatter()
    for name, options in P.PARAPHRASES.items():
        slots = {f for _, f, _, _ in fmt.parse(P.TEMPLATES[name]) if f}
        for alt in options:
            assert {f for _, f, _, _ in fmt.parse(alt) if f} == slots, (name, alt)
            assert P.count_images(alt) == P.count_images(P.TEMPLATES[name]), (name, alt)


def test_render_paraphrase_probability_and_determinism():
    rng = np.random.default_rng(0)
    outs = [P.render("i2i_one_to_one", rng, paraphrase_prob=0.3) for _ in range(2000)]
    frac = np.mean([o != P.TEMPLATES["i2i_one_to_one"] for o in outs])
    assert 0.25 < frac < 0.35
    assert P.render("i2i_one_to_one", paraphrase_prob=0.0) == P.TEMPLATES["i2i_one_to_one"]
    again = [P.render("i2i_one_to_one", np.random.default_rng(0), paraphrase_prob=0.3)]
    assert again[0] == outs[0]


def test_render_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown prompt"):
        P.render("nope")
    with pytest.raises(KeyError, match="gallery"):
        P.render("reid_standard")
    with pytest.raises(ValueError, match="rng"):
        P.render("caption", paraphrase_prob=0.5)


def test_to_content_puts_images_in_reading_order():
    text = P.render("reid_standard", gallery=P.gallery_block(2))
    content = P.to_content(text)
    assert [c["type"] for c in content].count("image") == 3
    assert content[0]["type"] == "text" and content[1]["type"] == "image"
    assert "".join(c["text"] if c["type"] == "text" else P.IMAGE for c in content) == text


def test_image_answers_round_trip():
    for idx in ([0], [1, 4], [2, 0, 7]):
        assert P.parse_image_refs(P.answer_matches(idx)) == idx
        assert P.parse_image_refs(P.answer_reid(idx)) == idx
    assert P.answer_matches([1, 4]).startswith("These two images (Image 2, Image 5) match")
    assert P.parse_image_refs(P.answer_description_match(3)) == [3]
    assert P.parse_best_choice(P.answer_best_choice(5)) == 5
    assert P.parse_best_choice(P.answer_best_choice(None)) is None
    with pytest.raises(ValueError):
        P.parse_best_choice("Image 1 and Image 2")
    with pytest.raises(ValueError):
        P.answer_matches([])


def test_yes_no_and_caption_parsers():
    assert P.parse_yes_no("Yes") is True and P.parse_yes_no("no.") is False
    with pytest.raises(ValueError):
        P.parse_yes_no("maybe")
    for i in range(5):
        assert P.parse_caption_choice(P.answer_caption_choice(i)) == i
    with pytest.raises(ValueError):
        P.parse_caption_choice("The zeroth caption")


def test_attribute_answers_round_trip():
    rng = np.random.default_rng(1)
    from chatreid.data.attributes import VOCAB
    for _ in range(200):
        keys = [k for k in VOCAB if rng.random() < 0.7] or ["gender"]
        a = {k: VOCAB[k][int(rng.integers(len(VOCAB[k])))] for k in keys}
        b = {k: VOCAB[k][int(rng.integers(len(VOCAB[k])))] for k in VOCAB if rng.random() < 0.7}
        assert P.parse_attributes(P.answer_attributes(a)) == a
        common, first, second = P.parse_attr_compare(P.answer_attr_compare(a, b))
        shared = set(a) & set(b)
        for k in shared:
            lower = k.startswith("lower_")
            if not lower:
                if a[k] == b[k]:
                    assert common[k] == a[k]
                else:
                    assert first[k] == a[k] and second[k] == b[k]
        assert not (set(common) | set(first) | set(second)) - shared - {
            "lower_type", "lower_length", "lower_color"}
    with pytest.raises(ValueError, match="unknown attribute phrase"):
        P.parse_attributes("The pedestrian attributes of this image are: wearing a cape.")


def test_attr_compare_format_is_the_figures():
    text = P.answer_attr_compare({"gender": "male", "hat": True}, {"gender": "male", "hat": False})
    assert text.splitlines() == ["Common Attributes: male",
                                 "Unique Attributes of the First Image: wearing a hat",
                                 "Unique Attributes of the Second Image: not wearing a hat"]
    assert re.sub(r"\s+", " ", P.PAPER["attr_compare/response"]).replace("Attributesof", "Attributes of") == \
        " ".join(h for h in ("Common Attributes:", "Unique Attributes of the First Image:",
                             "Unique Attributes of the Second Image:"))
