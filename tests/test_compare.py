"""Comparison pretraining (chatreid.training.compare): the curriculum's images and pairs, the loss
and patch-embedding shortcuts against the stock model, the held-out probe, and the loop's levels."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from chatreid import prompts
from chatreid.training import compare
from chatreid.training.collate import ReIDCollator
from tests.training_data import synthpeds_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from chatreid.data.store import ImageStore

    return ImageStore.load(str(synthpeds_store(tmp_path_factory.mktemp("compare"), n_ids=10, images_per_id=4)))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from chatreid.model import load_model_and_processor

    return load_model_and_processor(str(tiny_model_dir), dtype=torch.float32)


def _pixels(im):
    return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_edits_keep_the_size_change_the_pixels_and_are_reproducible_from_the_id(store):
    iid = store.ids()[0]
    original = store.image(iid)
    images = compare.CurriculumImages(store)
    for level in ("jitter", "augment"):
        a, b, other = (images.image(f"{iid}#{level}:{s}") for s in (7, 7, 8))
        assert a.size == original.size
        assert np.array_equal(_pixels(a), _pixels(b))  # the seed in the id fixes the edit
        assert not np.array_equal(_pixels(a), _pixels(original)) and not np.array_equal(_pixels(a), _pixels(other))
    assert np.array_equal(_pixels(images.image(iid)), _pixels(original))
    with pytest.raises(ValueError, match="unknown curriculum level 'blur'"):
        images.image(f"{iid}#blur:1")


def test_jitter_is_mild_and_augment_is_not(store):
    """Mean absolute pixel change: the jitter level stays close to the image, the augment level
    moves much further (the curriculum's steps are steps)."""
    iid = store.ids()[3]
    original = _pixels(store.image(iid))
    images = compare.CurriculumImages(store)
    change = {level: np.mean([np.abs(_pixels(images.image(f"{iid}#{level}:{s}")) - original).mean() for s in range(8)])
              for level in ("jitter", "augment")}
    assert change["augment"] > 1.5 * change["jitter"]


def test_pairs_follow_the_level_and_identities(store):
    meta = store.metadata()
    pid = dict(zip(meta["image_id"], meta["pid"]))
    cam = dict(zip(meta["image_id"], meta["camid"]))
    split = dict(zip(meta["image_id"], meta["split"]))
    sampler = compare.PairSampler(store)
    rng = random.Random(0)
    for _ in range(20):
        a, b = sampler.positive(rng, "duplicate")
        assert a == b and split[a] == "train"
        a, b = sampler.positive(rng, "augment")
        assert b.startswith(a + "#augment:")
        a, b = sampler.positive(rng, "camera")
        assert a != b and pid[a] == pid[b] and cam[a] != cam[b]  # every identity here has two cameras
        for level in ("duplicate", "camera", "jitter"):
            a, b = sampler.negative(rng, level)
            assert pid[a] != pid[b.split("#")[0]]
            assert ("#" in b) == (level == "jitter")  # a negative's second image is edited as the positives'


def test_a_batch_is_stage_2_one_to_one_rows_with_replay_of_easier_levels(store):
    sampler = compare.PairSampler(store)
    cfg = compare.CompareConfig(replay=0.5, positive_prob=1.0)
    rows = sampler.batch(random.Random(1), 200, 3, cfg)  # level 3: camera
    assert {r["task"] for r in rows} == {"i2i_one_to_one"}
    assert all(r["messages"][0]["content"][-1]["text"] in prompts.render("i2i_one_to_one") for r in rows)
    assert all(r["messages"][1]["content"][0]["text"] == prompts.YES for r in rows)
    easier = sum(r["image_ids"][0] == r["image_ids"][1] or "#" in "".join(r["image_ids"]) for r in rows)
    assert 60 <= easier <= 140  # about half replay duplicate/jitter/augment
    rows = sampler.batch(random.Random(1), 200, 3, compare.CompareConfig(replay=0.0))
    assert all("#" not in "".join(r["image_ids"]) and r["image_ids"][0] != r["image_ids"][1] for r in rows)
    assert 70 <= sum(json.loads(r["meta"])["same"] for r in rows) <= 130


def test_a_store_without_pairs_is_refused_with_the_reason(store):
    with pytest.raises(ValueError, match="at least two identities"):
        compare.PairSampler(store, splits=("nope",))
    with pytest.raises(ValueError, match="describe must be"):
        compare.CompareConfig(describe=32, batch=32)


def test_answer_loss_and_the_linear_patch_embedding_equal_the_stock_model(store, tiny):
    model, processor = tiny
    rows = compare.PairSampler(store).batch(random.Random(2), 4, 2, compare.CompareConfig())
    batch = ReIDCollator(processor, compare.CurriculumImages(store), 2)(rows)
    with torch.no_grad():
        stock = model(**batch).loss
        ours = compare.answer_loss(model, batch)
        pe = model.model.visual.patch_embed
        x = batch["pixel_values"]
        before = pe(x)
        import copy

        patched = copy.deepcopy(model)
        compare.linear_patch_embedding(patched)
        after = patched.model.visual.patch_embed(x)
    assert torch.allclose(stock, ours, atol=1e-5)
    assert torch.allclose(before, after, atol=1e-5)


def test_probe_scores_are_probabilities_and_auc_reads_them_per_group(store, tiny):
    model, processor = tiny
    probe = compare.PairProbe.sample(store, {"market": "synthpeds"}, n=6, split="train")
    assert len(probe.pairs) == 12 and sum(p[3] for p in probe.pairs) == 6
    scores = probe.scores(model, processor)
    assert all(0.0 < s < 1.0 for s in scores)
    assert set(probe.aucs(model, processor)) == {"market"}
    assert compare.auc([0.9, 0.8], [0.1, 0.8]) == pytest.approx(0.875)


def test_pretrain_advances_levels_on_its_loss_and_records_a_curve(store, tiny_model_dir):
    """A loss threshold above chance makes every level end at its minimum length; the curve has a
    point at the start and every eval_every steps; the model's weights change."""
    from chatreid.model import load_model_and_processor

    model, processor = load_model_and_processor(str(tiny_model_dir), dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = compare.PairProbe.sample(store, {"market": "synthpeds"}, n=4, split="train")
    cfg = compare.CompareConfig(steps=8, batch=4, min_level_steps=2, advance_loss=10.0, eval_every=4, warmup=1)
    result = compare.pretrain(model, processor, store, cfg, probe, log=lambda *_: None)
    assert [lv["level"] for lv in result["levels"]] == list(compare.LEVELS)
    assert [lv["steps"] for lv in result["levels"]] == [2, 2, 2, 2]
    assert [p["step"] for p in result["curve"]] == [0, 4, 8]
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    cfg = compare.CompareConfig(steps=6, batch=4, min_level_steps=1, max_level_steps=3, advance_loss=0.0,
                                eval_every=6, warmup=1)
    result = compare.pretrain(model, processor, store, cfg, None, log=lambda *_: None)
    assert [lv["steps"] for lv in result["levels"]] == [3, 3] and result["curve"] == []


def test_each_row_weighs_the_same_whatever_its_answer_length(store, tiny):
    """A caption row (dozens of answer tokens) beside Yes/No rows: each row's loss equals the stock
    loss of that row alone, and the batch loss is their plain mean."""
    model, processor = tiny
    sampler = compare.PairSampler(store)
    rng = random.Random(3)
    rows = sampler.batch(rng, 2, 0, compare.CompareConfig()) + [sampler.caption_row(rng)]
    collator = ReIDCollator(processor, compare.CurriculumImages(store), 2)
    with torch.no_grad():
        per_row = compare.row_losses(model, collator(rows))
        alone = torch.stack([model(**collator([r])).loss for r in rows])
        assert torch.allclose(per_row, alone, atol=1e-4)
        assert torch.allclose(compare.answer_loss(model, collator(rows)), alone.mean(), atol=1e-4)


def test_hard_negatives_are_people_dressed_in_the_same_colours(tmp_path):
    from chatreid.data.store import ImageStore

    store = ImageStore.load(str(synthpeds_store(tmp_path, n_ids=80, images_per_id=4)))
    meta = store.metadata()
    colours = {}
    for iid, pid, attrs in zip(meta["image_id"], meta["pid"], meta["attributes"]):
        a = json.loads(attrs)
        colours.setdefault(pid, (a["upper_color"], a["lower_color"]))
    pid = dict(zip(meta["image_id"], meta["pid"]))
    sampler = compare.PairSampler(store)
    assert any(sampler.lookalikes.values())  # this little world has people dressed alike
    rng = random.Random(4)
    for _ in range(30):
        a, b = sampler.negative(rng, "camera", hard=True)
        if sampler.lookalikes[("synthpeds", pid[a])]:
            assert pid[a] != pid[b] and colours[pid[a]] == colours[pid[b]]


def _picture(image_id: str) -> str:
    """The store image an edited id was made from ("ID#augment:17#grey:0" -> "ID")."""
    return image_id.split("#", 1)[0]


def test_generic_mode_never_pairs_two_pictures_of_one_identity(store):
    """Positives are one picture against (an edited or grey copy of) itself; negatives are two
    people; the curriculum never reaches the camera level."""
    meta = store.metadata()
    pid = dict(zip(meta["image_id"], meta["pid"]))
    cfg = compare.CompareConfig(mode="generic", grey=0.5, replay=0.5, hard_negatives=1.0)
    assert cfg.levels == ("duplicate", "jitter", "augment")
    sampler = compare.PairSampler(store)
    rng = random.Random(5)
    rows = [r for level in range(len(cfg.levels)) for r in sampler.batch(rng, 300, level, cfg)]
    grey = 0
    for r in rows:
        a, b = r["image_ids"]
        same = json.loads(r["meta"])["same"]
        assert (r["messages"][1]["content"][0]["text"] == prompts.YES) == same
        if same:
            assert _picture(a) == _picture(b)
        else:
            assert pid[_picture(a)] != pid[_picture(b)]
        grey += "#grey" in a + b
    assert 0.4 * len(rows) < grey < 0.6 * len(rows)
    assert 0.4 * len(rows) < sum(json.loads(r["meta"])["same"] for r in rows) < 0.6 * len(rows)
    with pytest.raises(ValueError, match="mode must be one of"):
        compare.CompareConfig(mode="camera")


def test_grey_edit_is_grey_scale_and_chains_after_another_edit(store):
    images = compare.CurriculumImages(store)
    iid = store.ids()[0]
    px = _pixels(images.image(f"{iid}#augment:3#grey:0"))
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all()
    assert not np.array_equal(px, _pixels(images.image(f"{iid}#grey:0")))  # the augment edit is kept


def test_caption_matching_rows_answer_yes_only_for_the_pictures_own_caption(store):
    from chatreid.instructions.rows import turns_of

    meta = store.metadata()
    pid = dict(zip(meta["image_id"], meta["pid"]))
    captions = dict(zip(meta["image_id"], meta["captions"]))
    sampler = compare.PairSampler(store)
    rng = random.Random(6)
    rows = [sampler.match_row(rng) for _ in range(200)]
    for r in rows:
        assert r["task"] == "t2i_one_to_one" and len(r["image_ids"]) == 1
        (prompt, answer), = turns_of(r)
        image, owner = r["image_ids"][0], json.loads(r["meta"])["caption_of"]
        # the sentence asked about is one of the owner image's captions, in the stage-2 prompt
        assert prompt in {prompts.render("t2i_one_to_one", caption=c)
                          for c in captions[owner]}
        if answer == prompts.YES:
            assert owner == image
        else:
            assert answer == prompts.NO and pid[owner] != pid[image]
    assert 70 <= sum(turns_of(r)[0][1] == prompts.YES for r in rows) <= 130


def test_generic_pretraining_runs_only_the_generic_levels_with_text_rows(store, tiny_model_dir):
    from chatreid.model import load_model_and_processor

    model, processor = load_model_and_processor(str(tiny_model_dir), dtype=torch.float32)
    cfg = compare.CompareConfig(mode="generic", steps=8, batch=6, describe=1, match=2, grey=0.3,
                                min_level_steps=2, advance_loss=10.0, eval_every=8, warmup=1)
    result = compare.pretrain(model, processor, store, cfg, None, log=lambda *_: None)
    assert [lv["level"] for lv in result["levels"]] == ["duplicate", "jitter", "augment"]
    assert [lv["steps"] for lv in result["levels"]] == [2, 2, 4]
    with pytest.raises(ValueError, match="describe must be"):
        compare.CompareConfig(describe=3, match=3, batch=6)


def test_hard_positives_show_the_person_in_other_clothes_where_they_have_them(tmp_path):
    """hard_positives=1: every camera-level positive of a person with two outfits is in the other
    outfit; at 0 most positives keep the clothes (another camera, same outfit)."""
    from chatreid.data.builder import build
    from chatreid.data.store import ImageStore
    from chatreid.data.synthpeds.layouts import generate

    generate("ltcc", tmp_path / "ltcc", 12, seed=5, images_per_id=8, overwrite=True)
    build([("synthpeds", str(tmp_path / "ltcc"), {})], tmp_path / "store", overwrite=True)
    sampler = compare.PairSampler(ImageStore.load(str(tmp_path / "store")))
    clothes = dict(zip(sampler.image_id, sampler.clothes))
    outfits = {ident: {sampler.clothes[i] for i in images} for ident, images in sampler.by_id.items()}
    assert any(len(v) > 1 for v in outfits.values()) and any(len(v) == 1 for v in outfits.values())

    def changed_share(hard: float) -> float:
        rng, changed, eligible = random.Random(0), 0, 0
        for _ in range(300):
            ident = rng.choice(sampler.ids)
            first = rng.choice(sampler.by_id[ident])
            other = sampler.other_view(rng, ident, first, hard)
            assert other != first and other in sampler.by_id[ident]
            if len(outfits[ident]) > 1:
                eligible += 1
                changed += clothes[sampler.image_id[other]] != clothes[sampler.image_id[first]]
        return changed / eligible

    assert changed_share(1.0) == 1.0
    assert changed_share(0.0) < 0.8
    with pytest.raises(ValueError, match="hard_positives"):
        compare.CompareConfig(hard_positives=1.5)
