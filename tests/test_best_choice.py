"""Best-choice ranking (chatreid/retrieval/best_choice.py) against fake readers whose answers are
known: the confidence ranking of sec. 4.1 on a hand-worked case, non-overlapping pages, and the
position-bias counter on a reader that prefers "Image 1"."""

import re

import numpy as np
import pytest

from chatreid.retrieval import best_choice as bc


@pytest.fixture(scope="module")
def tiny_processor(tiny_model_dir):
    from chatreid.model import load_model_and_processor

    return load_model_and_processor(str(tiny_model_dir))[1]


class _Img:
    def __init__(self, value: float, match: bool = False):
        self.value, self.match = value, match


class _Builder:
    """Keeps the chat text as the item's "ids", so the fake reader can see the picks made so far."""

    @staticmethod
    def build(chat, images):
        return chat


class _Fake:
    """A model whose label distribution is softmax(log value + bias[position]) over the images
    shown, and whose P(None) is 0.05 while a match remains unpicked, else 0.9."""

    def __init__(self, n_query: int = 1, bias=None):
        self.n_query, self.bias, self.shown = n_query, bias, []

    def read(self, items, reads):
        (item,) = items
        shown = item.images[self.n_query:]
        picked = {int(k) - 1 for k in re.findall(r"assistant\nImage (\d)<\|im_end\|>", item.ids)}
        self.shown.append((tuple(id(im) for im in shown), len(picked)))
        logits = np.log([im.value for im in shown])
        if self.bias is not None:
            logits = logits + np.asarray(self.bias[:len(shown)])
        p_none = 0.05 if any(im.match for j, im in enumerate(shown) if j not in picked) else 0.9
        return [logits[None].astype(np.float32),
                np.array([[np.log(p_none), np.log(1 - p_none)]], dtype=np.float32)]


def _rank(processor, cands, **kw):
    reader = _Fake()
    res = bc.rank(reader, _Builder(), processor, lambda g: "Which? " + g, [_Img(1.0)], cands, **kw)
    return res, reader


def test_confidence_ranking_of_a_hand_worked_case(tiny_processor):
    # page 1: A (value 4, the match), B (1); page 2: C (1), D (2); window 2.
    # page 1, turn 1: a match remains, P(None) .05: A .95 * 4/5 = .76, B .19 -> A picked (.76);
    #         turn 2: only B, no match left, P(None) .9: B .1 * 1 = .1.
    # page 2, turn 1: no match, P(None) .9: C .1/3, D .2/3 -> D picked (.0667); turn 2: C .1.
    # final list by confidence: A .76, B .1, C .1 (tie: page order), D .0667.
    A, B, C, D = _Img(4, True), _Img(1), _Img(1), _Img(2)
    res, reader = _rank(tiny_processor, [A, B, C, D], window=2, debias="none")
    assert res.order == [0, 1, 2, 3]
    np.testing.assert_allclose(res.confidence, [0.76, 0.1, 0.1, 0.2 / 3], atol=1e-6)
    np.testing.assert_allclose(res.p_none, [0.05, 0.9, 0.9, 0.9], atol=1e-6)
    assert res.matched == [True, False, False, False]  # named before the model said "None"
    assert len(reader.shown) == bc.passes(4, 2, "confidence", "none") == 4
    # the merge (ours) orders by picks only: A, then the merge of (B) and (D, C) by value
    merged, _ = _rank(tiny_processor, [A, B, C, D], window=2, debias="none", ranking="merge")
    assert merged.order == [0, 3, 1, 2]


def test_pages_do_not_overlap_and_cover_the_head(tiny_processor):
    rng = np.random.default_rng(0)
    cands = [_Img(v) for v in rng.uniform(0.5, 2, size=11)]
    res, reader = _rank(tiny_processor, cands, window=4)
    pages = {}
    for ids, n_picked in reader.shown:
        pages.setdefault(frozenset(ids), []).append(n_picked)
    sets = list(pages)
    assert sorted(len(s) for s in sets) == [3, 4, 4]
    assert frozenset().union(*sets) == {id(c) for c in cands}
    assert sum(len(s) for s in sets) == len(cands)  # disjoint
    # each page: every turn (0..len-1 picks made) read once per rotation
    for s, turns in pages.items():
        assert sorted(turns) == sorted(t for t in range(len(s)) for _ in range(len(s)))
    assert sorted(res.order) == list(range(len(cands)))


def _first_pick_shares(processor, debias: str, window: int = 4, pages: int = 200):
    """Per position, the share of one-match pages whose first pick sits there (match at random)."""
    rng = np.random.default_rng(1)
    reader = _Fake(bias=[2.0, 0.0, 0.0, 0.0])  # "Image 1" is 7 times likelier than its content says
    counts, right = np.zeros(window), 0
    for _ in range(pages):
        at = int(rng.integers(window))
        page = [_Img(3.0 if k == at else 1.0, match=k == at) for k in range(window)]
        picker = bc.Picker(reader, _Builder(), processor, lambda g: g, [_Img(1.0)], window, debias=debias)
        probs, _ = picker.turn(page)
        pick = int(np.argmax(probs))
        counts[pick] += 1
        right += pick == at
    return counts / pages, right / pages


def test_rotation_counters_position_bias(tiny_processor):
    before, right_before = _first_pick_shares(tiny_processor, "none")
    after, right_after = _first_pick_shares(tiny_processor, "rotate")
    assert before[0] == 1.0 and right_before < 0.4  # the biased reader always says "Image 1"
    assert right_after == 1.0  # rotated, the content decides
    assert after.max() <= 1.5 / 4


def test_bad_options_are_refused(tiny_processor):
    with pytest.raises(ValueError, match="ranking"):
        _rank(tiny_processor, [_Img(1.0), _Img(2.0)], ranking="sorted")
    with pytest.raises(ValueError, match="debias"):
        _rank(tiny_processor, [_Img(1.0), _Img(2.0)], debias="calibrate")
