"""The sec. 4.2 evaluations: attribute-based retrieval over N sampled images and adaptive
multi-modal retrieval (image plus text against image alone); figures checked by hand on small
cases with fixed rankers, then both tasks run through eval/run.py on a SynthPeds world."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "eval"))

import run  # noqa: E402  (the eval/run.py script)
from layouts import make_market, write_market_attributes  # noqa: E402

from chatreid.data import read  # noqa: E402
from chatreid.data.record import Record  # noqa: E402
from chatreid.evaluation import benchmarks  # noqa: E402
from chatreid.evaluation import retrieval_tasks as rt  # noqa: E402
from chatreid.evaluation import tables as table  # noqa: E402
from chatreid.metrics import evaluate_reid  # noqa: E402


class Metric:
    compute = staticmethod(evaluate_reid)


def _rec(path, pid, camid=1, split="gallery", **attrs):
    return Record(path=path, pid=pid, camid=camid, split=split, dataset="x", attributes=attrs)


def test_attribute_retrieval_by_hand():
    sample = [_rec("a", 1, upper_color="red", backpack=True), _rec("b", 2, upper_color="blue", backpack=True),
              _rec("c", 3, upper_color="red", backpack=False), _rec("d", 4, upper_color="blue", backpack=False)]
    queries = rt.attribute_queries(sample, 1)
    assert sorted(map(json.dumps, queries)) == sorted(map(json.dumps, [
        {"upper_color": "red"}, {"upper_color": "blue"}, {"backpack": True}, {"backpack": False}]))
    res = rt.attribute_eval(lambda q: [0, 1, 2, 3], sample, queries)  # every query: a, b, c, d
    # red: a, c at 1, 3 -> AP (1 + 2/3)/2; blue: b, d at 2, 4 -> (1/2 + 2/4)/2; backpack: a, b at 1, 2 -> 1;
    # no backpack: c, d at 3, 4 -> (1/3 + 2/4)/2
    ap = {"red": 5 / 6, "blue": 0.5, True: 1.0, False: 5 / 12}
    assert res["mean"]["mAP"] == pytest.approx(sum(ap.values()) / 4)
    assert res["mean"]["rank1"] == 0.5  # red and backpack start with a match
    assert res["mean"]["r_precision"] == pytest.approx((0.5 + 0.5 + 1 + 0) / 4)
    assert res["mean"]["chance"] == 0.5
    # two attributes per query: only the combinations some image holds, one match each
    pairs = rt.attribute_queries(sample, 2)
    assert len(pairs) == 4 and all(len(q) == 2 for q in pairs)
    assert rt.attribute_eval(lambda q: [0, 1, 2, 3], sample, pairs)["mean"]["mAP"] == pytest.approx(
        (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    with pytest.raises(ValueError, match="not a permutation"):
        rt.attribute_eval(lambda q: [0, 1], sample, queries)
    with pytest.raises(ValueError, match="--sample 5: the set holds 4"):
        rt.sample_annotated(sample, 5, 0)


def test_multimodal_retrieval_by_hand():
    gallery = [_rec("g0", 1, 2), _rec("g1", 2, 2), _rec("g2", 1, 2), _rec("g3", 2, 2)]
    queries = [benchmarks.QueryItem("q1", 1, 1, None, path="q1"), benchmarks.QueryItem("q2", 2, 1, None, path="q2")]
    trial = benchmarks.Trial("0", queries, gallery)
    image = {"q1": [1, 0, 3, 2], "q2": [1, 3, 0, 2]}  # q1: matches at 2, 4 -> AP 0.5; q2: at 1, 2 -> 1
    with_text = {"q1": [0, 2, 1, 3], "q2": [3, 1, 2, 0]}  # both: matches first -> AP 1
    texts = {"q1": "a man in red", "q2": "a woman in blue"}
    seen = []

    def rank(q, text):
        seen.append((q.qid, text))
        return (with_text if text else image)[q.qid]

    res = rt.multimodal_eval(rank, [trial], texts, Metric, "market")
    assert res["image"]["mAP"] == pytest.approx(0.75) and res["image"]["rank1"] == 0.5
    assert res["image_text"]["mAP"] == 1.0 and res["image_text"]["rank1"] == 1.0
    assert seen == [("q1", None), ("q2", None), ("q1", "a man in red"), ("q2", "a woman in blue")]
    # what is added: the image's own caption, else its attributes in words
    cap = Record(path="p", pid=1, camid=1, split="query", dataset="x", captions=["a man in red"])
    assert rt.added_text(cap) == ("a man in red", "caption")
    text, source = rt.added_text(_rec("p", 1, upper_color="red"))
    assert source == "attributes" and "red" in text
    with pytest.raises(ValueError, match="no caption or attributes"):
        rt.added_text(_rec("p", 1))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from chatreid.data.synthpeds.layouts import generate

    return generate("market", tmp_path_factory.mktemp("w") / "market", 6, seed=7)["out"]


def test_attribute_retrieval_on_synthpeds_and_market(world, tmp_path):
    sample = rt.sample_annotated(read("synthpeds", world), 12, seed=1)
    assert len({r.path for r in sample}) == 12 and all(r.split != "train" for r in sample)
    assert [r.path for r in rt.sample_annotated(read("synthpeds", world), 12, seed=1)] == [r.path for r in sample]
    queries = rt.attribute_queries(sample, 1, limit=10, seed=1)
    assert len(queries) == 10
    oracle = rt.attribute_eval(lambda q: sorted(range(12), key=lambda i: not rt.holds(sample[i].attributes, q)),
                               sample, queries)
    assert oracle["mean"]["mAP"] == 1.0 and oracle["mean"]["r_precision"] == 1.0
    # Market-1501 with its attribute annotations: the test identities' images are the set
    root = make_market(tmp_path / "Market")
    write_market_attributes(root, {"0002": {"gender": 2}}, {"0001": {"gender": 1, "hat": 2}, "0003": {"gender": 2}})
    market = rt.sample_annotated(read("market1501", root), 5, seed=0)
    assert sorted(r.pid for r in market) == [1, 1, 1, 3, 3]
    gender = [q for q in rt.attribute_queries(market, 1) if set(q) == {"gender"}]
    assert sorted(q["gender"] for q in gender) == ["female", "male"]


def test_both_tasks_run_on_a_synthpeds_world_with_the_tiny_model(tiny_model_dir, world, tmp_path, capsys):
    out = tmp_path / "attr"
    rc = run.main(["--task", "attribute", "--model", str(tiny_model_dir), "--label", "tiny", "--dataset",
                   f"synthpeds:{world}", "--sample", "8", "--queries", "3", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads((out / "tiny" / "results.json").read_text())
    assert res["task"] == "attribute" and res["num_queries"] == 3 and len(res["per_query"]) == 3
    assert 0 < res["mean"]["mAP"] <= 1 and 0 < res["mean"]["chance"] <= 1
    assert "**Attribute-based person retrieval**" in cap.out and "| tiny | SynthPeds | 8 | 1 | 3 |" in cap.out
    out = tmp_path / "mm"
    rc = run.main(["--task", "multimodal", "--model", str(tiny_model_dir), "--label", "tiny", "--dataset",
                   f"synthpeds:{world}", "--prefilter", "color_histogram", "--top-k", "3", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads((out / "tiny" / "results.json").read_text())
    assert set(res["mean"]) == {"image", "image_text"} and res["text"] == ["caption"]
    assert "| tiny | SynthPeds | market | image + text | caption |" in table.task_tables([res])
    # text queries have nothing to add text to
    rc = run.main(["--task", "multimodal", "--model", str(tiny_model_dir), "--dataset", f"synthpeds:{_pedes(tmp_path)}",
                   "--out", str(tmp_path / "x")])
    assert rc == 2 and "has text queries" in capsys.readouterr().err


def _pedes(tmp_path):
    from chatreid.data.synthpeds.layouts import generate

    return generate("pedes", tmp_path / "pedes", 4, seed=1)["out"]
