"""Best-choice keeps a page's key/value cache across its turns (scorer.TurnReader): the same
logits and picks as re-reading every turn, fewer tokens through the language model."""

import numpy as np
import pytest
from PIL import Image

from chatreid import prompts
from chatreid.model import load_model_and_processor
from chatreid.retrieval import best_choice
from chatreid.retrieval import scorer as S

TOL = 1e-4  # float32 on CPU


@pytest.fixture(scope="module")
def mp(tiny_model_dir):
    model, processor = load_model_and_processor(str(tiny_model_dir))
    return model.eval(), processor


def _encoded(mp, n, seed=0):
    model, processor = mp
    rng = np.random.default_rng(seed)
    ims = [Image.fromarray(rng.integers(0, 255, (int(rng.integers(56, 100)), int(rng.integers(28, 64)), 3),
                                        dtype=np.uint8)) for _ in range(n)]
    return S.encode(model, processor, ims)


def _first_turn(gallery):
    return prompts.render("reid_standard", gallery=gallery)


def test_turns_read_on_the_kept_cache_equal_whole_reads(mp):
    model, processor = mp
    sc = S.PairScorer(model, processor)
    enc = _encoded(mp, 4)
    images = [enc[0]] + enc[1:]
    labels, start = best_choice.label_tokens(processor, 3)
    reads = [(1, labels), (3, start)]
    history, user = [], None
    turns = S.TurnReader(sc.reader)
    lengths = []
    for pick in ("Image 2", "Image 1", "Image 3"):
        user = user or _first_turn(prompts.gallery_block(3))
        chat = S.chat_prompt(processor, user, answer_prefix=best_choice.ANSWER_PREFIX, history=history)
        item = S.Item(sc.builder.build(chat, images), images)
        kept, whole = turns.read(item, reads), sc.reader.read([item], reads)
        for a, b in zip(kept, whole):
            np.testing.assert_allclose(a, b, atol=TOL)
        lengths.append(len(item.ids))
        history.append((user, pick))
        user = prompts.render("best_choice_next")
    # the first turn ran whole, each later one only what it added
    assert turns.tokens_run == lengths[-1] < sum(lengths)


def test_a_turn_with_other_image_objects_starts_over(mp):
    model, processor = mp
    sc = S.PairScorer(model, processor)
    enc, again = _encoded(mp, 3, seed=1), _encoded(mp, 3, seed=1)  # same pictures, new encodings
    labels, start = best_choice.label_tokens(processor, 2)
    reads = [(1, labels), (3, start)]
    chat = S.chat_prompt(processor, _first_turn(prompts.gallery_block(2)), answer_prefix=best_choice.ANSWER_PREFIX)
    a, b = (S.Item(sc.builder.build(chat, list(e)), list(e)) for e in (enc, again))
    assert a.ids == b.ids  # equal ids are not equal embeddings: the cache is kept only for the same objects
    turns = S.TurnReader(sc.reader)
    turns.read(a, reads)
    got = turns.read(b, reads)
    assert turns.tokens_run == len(a.ids) + len(b.ids)
    for x, y in zip(got, sc.reader.read([b], reads)):
        np.testing.assert_allclose(x, y, atol=TOL)


@pytest.mark.parametrize("n,window", [(7, 3), (9, 4), (4, 4)])
def test_best_choice_with_the_kept_cache_equals_recomputing(mp, n, window):
    model, processor = mp
    sc = S.PairScorer(model, processor)
    enc = _encoded(mp, n + 1, seed=n)
    runs = [best_choice.rank(sc.reader, sc.builder, processor, _first_turn, [enc[0]], enc[1:], window=window,
                             reuse_cache=reuse) for reuse in (True, False)]
    assert runs[0].order == runs[1].order and sorted(runs[0].order) == list(range(n))
    np.testing.assert_allclose(runs[0].confidence, runs[1].confidence, atol=TOL)
    np.testing.assert_allclose(runs[0].p_none, runs[1].p_none, atol=TOL)
