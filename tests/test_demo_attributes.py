"""The attribute check of the demo model (chatreid/demo/attributes.py) and the demo command's
one-line errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chatreid.data.synthpeds.layouts import generate
from chatreid.demo.attributes import ASKED, attribute_accuracy, attributes_table, check_description, stated
from chatreid.demo.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("attrs") / "w"
    generate("sysu", root, 5, seed=2, size=(64, 32), images_per_id=4)  # visible and infrared
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from chatreid.model.tiny import build_tiny_qwen2vl

    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny") / "m")


def test_accuracy_in_range_and_majority_equals_a_hand_count(world, tiny):
    rows = [json.loads(line) for line in (world / "synthpeds.jsonl").read_text().splitlines()]
    n = len(rows)  # every image: the majority is then counted on the very images asked
    r = attribute_accuracy(tiny, world, n_images=n, describe=True, max_new_tokens=8)
    assert r["images"] == n and set(r["per_attribute"]) <= set(ASKED)
    for key, d in r["per_attribute"].items():
        values = [row["attributes"][key] for row in rows if key in row["attributes"]]
        top, count = Counter(values).most_common(1)[0]
        assert d["n"] == len(values)
        assert d["majority"] == pytest.approx(count / len(values))
        assert Counter(values)[d["majority_value"]] == count  # ties: any commonest value
        assert 0.0 <= d["accuracy"] <= 1.0
    # colours are never asked of infrared images, glasses never from behind
    ir = sum(row["modality"] == "infrared" for row in rows)
    assert ir and r["per_attribute"]["skin"]["n"] == n - ir
    assert r["per_attribute"]["glasses"]["n"] == sum(row["view"] != "back" for row in rows)
    d = r["descriptions"]
    assert d["images"] == n and 0 <= d["right"] <= d["stated"]
    table = attributes_table(r)
    assert "| skin |" in table and "**mean**" in table and "Descriptions:" in table


def test_description_parser_right_wrong_and_unstated():
    truth = {"gender": "female", "age": "adult", "hair": "long", "hair_color": "black", "skin": "tan",
             "build": "slim", "height": "short", "glasses": False, "upper_color": "blue",
             "lower_color": "black", "lower_type": "pants"}
    text = ("A short, slender woman with long black hair walks towards the camera. She wears a blue "
            "and white striped tee and black trousers. She has tan skin.")
    assert stated(text) == {k: v for k, v in truth.items() if k != "glasses"}  # glasses unstated
    assert check_description(text, truth) == (10, 10)
    wrong = "The old man is wearing a grey hoodie and blue jeans. He has short brown hair and dark skin, and is tall and stocky."
    said = stated(wrong)
    assert said == {"gender": "male", "age": "old", "hair": "short", "hair_color": "brown", "skin": "dark",
                    "height": "tall", "build": "heavy", "upper_color": "gray", "lower_color": "blue",
                    "lower_type": "pants"}
    assert check_description(wrong, truth) == (10, 1)  # only "pants" is right
    assert stated("") == {} and check_description("A person.", truth) == (0, 0)
    # infrared ground truth has no colour keys: a colour said is not counted
    ir = {k: v for k, v in truth.items() if k not in ("skin", "hair_color", "upper_color", "lower_color")}
    assert check_description(text, ir) == (6, 6)


@pytest.mark.parametrize("argv, names", [
    (["build", "--set", "nonsense_field=1", "--work", "{tmp}/w"], "nonsense_field"),
    (["report", "--work", "{tmp}/nowhere"], "summary.json"),
    (["ceilings", "--world", "{tmp}/no-world"], "no-world"),
    (["attributes", "--model", "{tmp}/no-model", "--world", "{tmp}/w"], "no-model"),
    (["attributes", "--model", "{tiny}", "--world", "{tmp}/no-world"], "no-world"),
    (["frobnicate"], "frobnicate"),
])
def test_every_demo_error_is_one_line_and_exit_2(argv, names, tmp_path, tiny, capsys):
    argv = [a.format(tmp=tmp_path, tiny=tiny) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and names in err, err


def test_parser_reads_every_ground_truth_caption_right(world):
    rows = [json.loads(line) for line in (world / "synthpeds.jsonl").read_text().splitlines()]
    for row in rows:
        for caption in row["captions"]:
            n, right = check_description(caption, row["attributes"])
            # every caption states at least gender, age, hair, build and height
            assert n >= 5 and right == n, caption
