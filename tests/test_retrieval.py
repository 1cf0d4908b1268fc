"""The engine on SynthPeds galleries: every strategy and pre-filter, the ranking contract, the
best-choice reading against a full forward pass, and clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from chatreid import prompts
from chatreid.model import load_model_and_processor
from chatreid.retrieval import Query, ReIDEngine, SearchResult
from chatreid.retrieval import best_choice as bc
from chatreid.retrieval import scorer as S
from chatreid.retrieval.prefilter import build_prefilter, select_head


@pytest.fixture(scope="module")
def mp(tiny_model_dir):
    model, processor = load_model_and_processor(str(tiny_model_dir))
    return model.eval(), processor


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A small SynthPeds world in the Market layout: (query images, gallery images, gallery pids, query pids)."""
    from chatreid.data import read
    from chatreid.data.synthpeds.layouts import generate

    root = tmp_path_factory.mktemp("sp") / "market"
    generate("market", root, 5, seed=3)
    recs = read("synthpeds", root)
    load = lambda rs: [Image.open(r.path).convert("RGB") for r in rs]  # noqa: E731
    q = [r for r in recs if r.split == "query"]
    g = [r for r in recs if r.split == "gallery"]
    return load(q), load(g), [r.pid for r in g], [r.pid for r in q], recs


def _check_result(res: SearchResult, n: int, num_scored: int):
    assert sorted(res.ranking) == list(range(n))
    assert len(res.scores) == n and len(res.prefilter_scores) == n
    assert res.num_scored == num_scored
    assert all(0.0 <= s <= 1.0 for s in res.scores[:num_scored])
    assert all(s < 0.0 for s in res.scores[num_scored:])  # pre-filter tail sits below every VLM score
    assert isinstance(res.answer, str) and res.answer


# ---- pure parts --------------------------------------------------------------------------------
def test_select_head():
    sim = np.array([0.1, 0.9, 0.5, 0.9, -0.2])
    head, rest = select_head(sim, top_k=2)
    assert head.tolist() == [1, 3] and rest.tolist() == [2, 0, 4]  # ties keep gallery order
    head, rest = select_head(sim, tau=0.3)
    assert head.tolist() == [1, 3, 2] and rest.tolist() == [0, 4]
    head, _ = select_head(sim, top_k=1, tau=0.3)
    assert head.tolist() == [1]
    head, rest = select_head(sim)
    assert len(head) == 5 and len(rest) == 0
    with pytest.raises(ValueError):
        select_head(sim, top_k=0)


@pytest.mark.parametrize("bad, match", [
    (Query(task="standard"), "query image"),
    (Query(text="  ", task="text_to_image"), "text"),
    (Query(task="attribute"), "attributes"),
    (Query(task="adaptive"), "adaptive"),
    (Query(images=[1], task="nope"), "unknown task"),
])
def test_query_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        bad.validate()


def test_efficientnet_prefilter_features(synth):
    qi, gi, gp, qp, _ = synth
    pf = build_prefilter("efficientnet_lite0")
    f = pf.features(gi[:3])
    assert f.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    sim = pf.similarity([gi[1]], f)
    assert int(np.argmax(sim)) == 1 and sim[1] == pytest.approx(1.0, abs=1e-5)


def test_resnet50_prefilter_says_why_without_torchvision():
    from chatreid.model.loading import has_torchvision

    if has_torchvision():
        pytest.skip("torchvision imports here; the refusal path is for machines without it")
    with pytest.raises(ImportError, match="torchvision"):
        build_prefilter("resnet50")
    with pytest.raises(ValueError, match="unknown prefilter"):
        build_prefilter("sift")


# ---- the engine --------------------------------------------------------------------------------
@pytest.mark.parametrize("prefilter", ["efficientnet_lite0", "vlm", "color_histogram"])
def test_pairwise_search_with_each_prefilter(mp, synth, prefilter):
    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter=prefilter)
    calls = []
    res = engine.search(Query(images=[qi[0]]), gi, top_k=5, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    _check_result(res, len(gi), 5)
    assert calls[-1] == (5, 5)
    # the head is the pre-filter's top 5, re-ordered by P(Yes); the tail keeps pre-filter order
    pf = np.array(res.prefilter_scores)
    assert set(res.ranking[:5]) == set(np.argsort(-pf, kind="stable")[:5].tolist())
    tail = res.ranking[5:]
    assert pf[tail].tolist() == sorted(pf[tail].tolist(), reverse=True)
    assert res.scores[:5] == sorted(res.scores[:5], reverse=True)
    # head scores are exactly the naive loop's P(Yes)
    for g, s in zip(res.ranking[:5], res.scores[:5]):
        assert s == pytest.approx(S.naive_yes_probability(model, processor, [qi[0], gi[g]]), abs=1e-4)


def test_no_prefilter_scores_whole_gallery_and_refuses_top_k(mp, synth):
    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter="none")
    res = engine.search(Query(images=[qi[0]]), gi[:6])
    _check_result(res, 6, 6)
    assert res.prefilter_scores == [0.0] * 6
    with pytest.raises(ValueError, match="top_k"):
        engine.search(Query(images=[qi[0]]), gi, top_k=3)


def test_text_and_attribute_queries_score_everything(mp, synth):
    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter="color_histogram")
    for q in (Query(text="a man in a blue jacket", task="text_to_image"),
              Query(attributes={"gender": "female", "upper_color": "red"}, task="attribute")):
        for strategy in ("pairwise", "best_choice"):
            _check_result(engine.search(q, gi[:6], strategy=strategy), 6, 6)
        with pytest.raises(ValueError, match="pre-filter"):
            engine.search(q, gi, top_k=3)
    # adaptive: image + text, pre-filtered by the image, both questions averaged
    q = Query(images=[qi[0]], text="carries a backpack", task="adaptive")
    res = engine.search(q, gi, top_k=3)
    _check_result(res, len(gi), 3)
    enc = S.encode(model, processor, [qi[0]] + [gi[i] for i in res.ranking[:3]])
    sc = S.PairScorer(model, processor)
    want = (sc.score(enc[1:], query_image=enc[0]) + sc.score(enc[1:], text="carries a backpack")) / 2
    np.testing.assert_allclose(sorted(want, reverse=True), res.scores[:3], atol=1e-6)


@pytest.mark.parametrize("task", ["standard", "cloth_changing", "visible_infrared"])
def test_best_choice_first_pick_is_the_full_forward_argmax(mp, synth, task):
    model, processor = mp
    qi, gi, *_ = synth
    # one page (window = head) in pick order (merge, nothing to merge), read as cut (no rotation):
    # the first pick is read from the page's first turn alone
    engine = ReIDEngine(model, processor, prefilter="color_histogram", window=4, ranking="merge", debias="none")
    res = engine.search(Query(images=[qi[1]], task=task), gi, strategy="best_choice", top_k=4)
    _check_result(res, len(gi), 4)
    head = np.argsort(-np.array(res.prefilter_scores), kind="stable")[:4]
    page = head.tolist()
    assert set(res.ranking[:4]) == set(page)
    name = {"standard": "reid_standard", "cloth_changing": "reid_cc", "visible_infrared": "reid_vi"}[task]
    chat = S.chat_prompt(processor, prompts.render(name, gallery=prompts.gallery_block(4)), answer_prefix=bc.ANSWER_PREFIX)
    inputs = processor(text=[chat], images=[qi[1]] + [gi[i] for i in page], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    labels, _ = bc.label_tokens(processor, 4)
    p = torch.softmax(logits[labels].double(), 0).numpy()
    assert res.ranking[0] == page[int(np.argmax(p))]
    # confidence = P(Image k) = (1 - P(None)) * P(label k among the labels)
    plain = processor(text=[S.chat_prompt(processor, prompts.render(name, gallery=prompts.gallery_block(4)))],
                    images=[qi[1]] + [gi[i] for i in page], return_tensors="pt")
    with torch.no_grad():
        first = model(**plain).logits[0, -1]
    _, start = bc.label_tokens(processor, 4)
    p_image = float(torch.softmax(first[start].double(), 0)[1])
    assert res.scores[0] == pytest.approx(p_image * float(p.max()), abs=1e-4)
    assert res.scores[3] == 1.0  # merge: the last of a page is picked without a pass


class _Consistent:
    """A reader standing in for a model that always prefers the image of higher ``value``: it
    sees through the prompt to the images shown and returns their values as the label logits."""

    def __init__(self, n_query: int):
        self.n_query, self.passes, self.shown = n_query, 0, []

    def read(self, items, reads):
        (item,) = items
        values = [im.value for im in item.images[self.n_query:]]
        self.passes += 1
        self.shown.append(len(values))
        return [np.array([values], dtype=np.float32), np.array([[0.0, 1.0]], dtype=np.float32)]


class _Img:
    def __init__(self, value):
        self.value = value


@pytest.mark.parametrize("n,window", [(1, 4), (4, 4), (5, 4), (10, 4), (17, 3), (30, 2), (40, 9)])
def test_best_choice_orders_the_whole_head_not_only_inside_pages(mp, n, window):
    """``ranking="merge"`` (ours): pages are merged by the model: with a consistent comparator the result is the full sort,
    whatever order the pre-filter gave the head, in at most the announced number of passes."""
    _, processor = mp
    rng = np.random.default_rng(n * 10 + window)
    values = rng.permutation(n).astype(float)
    cands = [_Img(v) for v in values]
    query = [_Img(-1.0)]
    reader = _Consistent(n_query=1)
    builder = type("B", (), {"build": staticmethod(lambda chat, images: [])})()
    ticks = []
    res = bc.rank(reader, builder, processor, lambda g: "Which? " + g, query, cands, window=window,
                  progress=lambda d, t: ticks.append((d, t)), ranking="merge")
    assert res.order == np.argsort(-values, kind="stable").tolist()
    assert len(res.confidence) == len(res.p_none) == n
    assert max(reader.shown, default=0) <= window
    assert reader.passes <= bc.passes(n, min(window, n), "merge")
    if reader.passes:
        assert ticks[-1][0] == ticks[-1][1]  # the bar ends full
    with pytest.raises(ValueError, match="window"):
        bc.rank(reader, builder, processor, lambda g: g, query, cands + [_Img(99.0)], window=1)


def test_bad_input_is_refused_before_work(mp, synth):
    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter="none")
    with pytest.raises(ValueError, match="empty"):
        engine.search(Query(images=[qi[0]]), [])
    with pytest.raises(ValueError, match="strategy"):
        engine.search(Query(images=[qi[0]]), gi, strategy="vote")
    with pytest.raises(TypeError, match="PIL"):
        engine.search(Query(images=[qi[0]]), ["not-an-image.jpg"])
    with pytest.raises(ValueError, match="window"):
        ReIDEngine(model, processor, prefilter="none", window=12)


def test_gallery_features_cached_across_queries(mp, synth, monkeypatch):
    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter="color_histogram")
    n = []
    real = engine.prefilter.features
    monkeypatch.setattr(engine.prefilter, "features", lambda ims: (n.append(len(ims)), real(ims))[1])
    engine.search(Query(images=[qi[0]]), gi, top_k=2)
    engine.search(Query(images=[qi[1]]), gi, top_k=2)
    assert n.count(len(gi)) == 1  # the gallery once; each query's own image each time


def test_from_pretrained_describe_compare(tiny_model_dir, synth):
    qi, gi, *_ = synth
    engine = ReIDEngine.from_pretrained(str(tiny_model_dir), prefilter="none", device="cpu")
    assert engine.model_info == {"name_or_path": str(tiny_model_dir), "origin": "local",
                                 "architecture": "Qwen2VLForConditionalGeneration"}
    assert isinstance(engine.describe(qi[0], max_new_tokens=3), str)
    assert isinstance(engine.compare(qi[0], gi[0], max_new_tokens=3), str)
    with pytest.raises(ValueError, match="unknown prefilter"):
        ReIDEngine.from_pretrained(str(tiny_model_dir), prefilter="sift")


def test_gallery_encodings_kept_by_the_caller(mp, synth, monkeypatch):
    """A caller's dict of encodings (one chat session's): the second search of the same gallery
    encodes only the query photo; another session's dict is its own; the scores are the same."""
    import chatreid.retrieval.engine as E

    model, processor = mp
    qi, gi, *_ = synth
    engine = ReIDEngine(model, processor, prefilter="color_histogram")
    encoded = []
    real = E.encode
    monkeypatch.setattr(E, "encode", lambda m, p, ims, bs=16: (encoded.append(list(ims)), real(m, p, ims, bs))[1])
    fresh = engine.search(Query(images=[qi[0]]), gi)
    assert len(encoded[-1]) == 1 + len(gi)
    a, b = {}, {}
    first = engine.search(Query(images=[qi[0]]), gi, gallery_encodings=a)
    assert len(encoded[-1]) == 1 + len(gi) and sorted(a) == list(range(len(gi)))
    assert first.ranking == fresh.ranking
    np.testing.assert_allclose(first.scores, fresh.scores, atol=1e-6)
    kept = dict(a)
    again = engine.search(Query(images=[qi[1]]), gi, gallery_encodings=a)
    assert encoded[-1] == [qi[1]]  # only the new query photo went through the vision tower
    assert all(a[i] is kept[i] for i in kept)
    np.testing.assert_allclose(sorted(again.scores, reverse=True),
                               sorted(engine.search(Query(images=[qi[1]]), gi).scores, reverse=True),
                               atol=1e-6)
    # a result used as the query (the same image object) reuses its encoding: nothing is encoded
    n = len(encoded)
    engine.search(Query(images=[gi[3]]), gi, gallery_encodings=a)
    assert len(encoded) == n
    # another session on another gallery: its own dict, filled by its own search; a's is untouched
    other = gi[:5]
    engine.search(Query(images=[qi[0]]), other, top_k=2, gallery_encodings=b)
    assert len(encoded[-1]) == 1 + 2 and len(b) == 2
    assert all(b[i] is not a[i] for i in b) and all(a[i] is kept[i] for i in kept)
    # a gallery image as the query, not yet encoded: encoded once, as the gallery image it is
    c = {}
    engine.search(Query(images=[gi[0]]), gi, top_k=3, gallery_encodings=c)
    assert len(encoded[-1]) == 3 and 0 in c and len(c) == 3  # it is its own nearest: in the head
    engine.search(Query(images=[gi[7]]), gi, top_k=1, gallery_encodings=c)
    assert 7 in c and len(encoded[-1]) == 1  # its own nearest: the head and the query, once
    # a text query scores (and keeps) the whole gallery without a query photo
    engine.search(Query(text="a man in a blue jacket", task="text_to_image"), other, gallery_encodings=b)
    assert len(encoded[-1]) == 3 and sorted(b) == list(range(5))
    # what the caller budgets is what the encodings take
    assert engine.encoding_bytes(gi) == sum(e.embeds.numel() * e.embeds.element_size() for e in a.values())
