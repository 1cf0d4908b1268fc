"""The batched scorer (images encoded once, shared prefix, batched suffixes) against the naive
one-pair-per-forward loop, and its refusals."""

import numpy as np
import pytest
from PIL import Image

from chatreid import prompts
from chatreid.model import load_model_and_processor
from chatreid.model.families import qwen_images as Q
from chatreid.retrieval import scorer as S

TOL = 1e-4  # float32 on CPU: observed differences are ~1e-8


@pytest.fixture(scope="module")
def mp(tiny_model_dir):
    model, processor = load_model_and_processor(str(tiny_model_dir))
    return model.eval(), processor


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    # different sizes: different numbers of image tokens, so batches need padding
    return [Image.fromarray(rng.integers(0, 255, (int(rng.integers(56, 100)), int(rng.integers(28, 64)), 3), dtype=np.uint8))
            for _ in range(n)]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_image_question_matches_naive_loop(mp, batch_size):
    model, processor = mp
    ims = _images(7)
    enc = S.encode(model, processor, ims)
    fast = S.PairScorer(model, processor).score(enc[1:], query_image=enc[0], batch_size=batch_size)
    naive = np.array([S.naive_yes_probability(model, processor, [ims[0], c]) for c in ims[1:]])
    assert fast.shape == (6,)
    np.testing.assert_allclose(fast, naive, atol=TOL)
    assert np.all((fast > 0) & (fast < 1))


def test_caption_question_matches_naive_loop(mp):
    model, processor = mp
    ims = _images(5, seed=1)
    enc = S.encode(model, processor, ims)
    text = "a young woman in a red coat and black trousers"
    fast = S.PairScorer(model, processor).score(enc, text=text, batch_size=2)
    naive = np.array([S.naive_yes_probability(model, processor, [c], text=text) for c in ims])
    np.testing.assert_allclose(fast, naive, atol=TOL)


def test_prefix_sharing_changes_nothing_but_speed(mp):
    model, processor = mp
    enc = S.encode(model, processor, _images(5, seed=2))
    sc = S.PairScorer(model, processor)
    a = sc.score(enc[1:], query_image=enc[0], share_prefix=True)
    b = sc.score(enc[1:], query_image=enc[0], share_prefix=False)
    np.testing.assert_allclose(a, b, atol=TOL)
    # the shared prefix really is used: it reaches past the query image
    chat = S.chat_prompt(processor, S.yes_no_prompt("standard")[0])
    items = [S.Item(sc.builder.build(chat, [enc[0], c]), [enc[0], c]) for c in enc[1:]]
    p = S._common_prefix(items, sc.tokens["image"])
    assert items[0].ids[:p].count(sc.tokens["image"]) == enc[0].num_tokens


def test_sequence_builder_equals_processor(mp):
    model, processor = mp
    ims = _images(2, seed=3)
    enc = S.encode(model, processor, ims)
    sc = S.PairScorer(model, processor)
    chat = S.chat_prompt(processor, prompts.render("reid_standard", gallery=prompts.gallery_block(1)))
    ref = processor(text=[chat], images=ims, return_tensors="pt")["input_ids"][0].tolist()
    assert sc.builder.build(chat, enc) == ref
    with pytest.raises(ValueError, match="image slots"):
        sc.builder.build(chat, enc[:1])


def test_each_image_encoded_once_per_query(mp, monkeypatch):
    from chatreid.retrieval import ReIDEngine, Query

    model, processor = mp
    engine = ReIDEngine(model, processor, prefilter="none")
    seen = []
    real = model.model.get_image_features

    def counting(pixel_values, grid, **kw):
        seen.append(int(grid.shape[0]))
        return real(pixel_values, grid, **kw)

    monkeypatch.setattr(model.model, "get_image_features", counting)
    engine.search(Query(images=_images(1, seed=4)), _images(6, seed=5), batch_size=4)
    assert sum(seen) == 1 + 6


def test_missing_yes_token_is_refused(mp, monkeypatch):
    model, processor = mp
    monkeypatch.setattr(prompts, "YES", "Yesterdayish")
    with pytest.raises(ValueError, match="single token"):
        S.PairScorer(model, processor)


def test_missing_image_token_is_refused(mp, monkeypatch):
    model, processor = mp
    monkeypatch.setattr(processor, "image_token", "<|no_such_token|>")
    with pytest.raises(ValueError, match="image token"):
        S.check_model(model, processor)


def test_score_needs_exactly_one_query_kind(mp):
    model, processor = mp
    enc = S.encode(model, processor, _images(2))
    sc = S.PairScorer(model, processor)
    with pytest.raises(ValueError, match="exactly one"):
        sc.score(enc, query_image=enc[0], text="x")
    with pytest.raises(ValueError, match="exactly one"):
        sc.score(enc)


def test_pixel_values_equal_image_processor(mp):
    model, processor = mp
    ims = _images(4, seed=6) + _images(2, seed=6)[:1]  # mixed sizes, one repeated size
    pix, grid = S.pixel_values(processor.image_processor, ims)
    ref = processor.image_processor(images=ims, return_tensors="pt")
    assert grid.tolist() == ref["image_grid_thw"].tolist()
    np.testing.assert_allclose(pix.numpy(), ref["pixel_values"].numpy(), atol=1e-5)


def test_patch_embeddings_equal_the_towers_own(mp):
    """The patch embedding computed from the image bytes (summed temporal kernel, normalisation
    folded in) equals the vision tower's Conv3d over the processor's pixels, and encode() gives the
    tower's output for the processor's pixels."""
    model, processor = mp
    ims = _images(5, seed=8) + [_images(1, seed=8)[0].convert("L")]  # mixed sizes, a grey image
    emb, grid = Q.patch_embeddings(model.model.visual, processor.image_processor, ims)
    ref = processor.image_processor(images=[im.convert("RGB") for im in ims], return_tensors="pt")
    assert grid.tolist() == ref["image_grid_thw"].tolist()
    want = model.model.visual.patch_embed(ref["pixel_values"]).detach()
    np.testing.assert_allclose(emb.numpy(), want.numpy(), atol=1e-4)
    enc = S.encode(model, processor, ims, batch_size=4)
    pooled = model.model.get_image_features(ref["pixel_values"], ref["image_grid_thw"]).pooler_output
    for e, p in zip(enc, pooled):
        np.testing.assert_allclose(e.embeds.numpy(), p.detach().numpy(), atol=1e-5)
    assert [e.thw for e in enc] == [tuple(g) for g in ref["image_grid_thw"].tolist()]
    # afterwards the tower's patch embedding is its own again, for every caller
    again = model.model.visual.patch_embed(ref["pixel_values"]).detach()
    assert np.array_equal(again.numpy(), want.numpy())


def test_encode_falls_back_to_processor_pixels(mp, monkeypatch):
    """A model whose patch embedding is not the Conv3d layout goes the processor's pixel way."""
    model, processor = mp
    ims = _images(3, seed=9)
    fast = S.encode(model, processor, ims)
    monkeypatch.setattr(Q, "patch_conv", lambda visual, ip: None)
    called = []
    real = Q.pixel_values
    monkeypatch.setattr(Q, "pixel_values", lambda ip, images, targets=None: called.append(len(images)) or real(ip, images))
    slow = S.encode(model, processor, ims)
    assert called == [3]
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.embeds.numpy(), b.embeds.numpy(), atol=1e-5)


def test_same_size_candidates_batch_matches_naive_loop(mp):
    """The bench's setting: many equal-size candidates in one batch (positions shared across rows)."""
    model, processor = mp
    rng = np.random.default_rng(10)
    ims = [Image.fromarray(rng.integers(0, 255, (84, 56, 3), dtype=np.uint8)) for _ in range(6)]
    ims.append(Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)))  # one other shape
    enc = S.encode(model, processor, ims)
    fast = S.PairScorer(model, processor).score(enc[1:], query_image=enc[0], batch_size=16)
    naive = np.array([S.naive_yes_probability(model, processor, [ims[0], c]) for c in ims[1:]])
    np.testing.assert_allclose(fast, naive, atol=TOL)


def test_encode_from_several_threads(mp):
    """The patch-embedding hand-over is per thread: concurrent encodes get their own images."""
    from concurrent.futures import ThreadPoolExecutor

    model, processor = mp
    sets = [_images(4, seed=s) for s in (11, 12, 13, 14)]
    alone = [S.encode(model, processor, ims, batch_size=2) for ims in sets]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda ims: S.encode(model, processor, ims, batch_size=2), sets))
    for a, b in zip(alone, together):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.embeds.numpy(), y.embeds.numpy(), atol=1e-5)
