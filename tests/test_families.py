"""Every VLM family (chatreid/model/families) passes the same tests on its tiny random model:
stock and fast image preprocessing agree, positions equal the model's ``get_rope_index``, the
scorer's P(Yes) equals the stock forward and ``generate`` logits, best-choice with the kept cache
equals recomputing, the three stages through train/sft.py freeze and transplant the right tensors,
and the app builds and ranks on it. Also: no module outside chatreid/model/ names a family's
classes, image token or module paths."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chatreid import prompts
from chatreid.model import family_for, load_model_and_processor
from chatreid.model.families import supported_model_types
from chatreid.retrieval import best_choice
from chatreid.retrieval import scorer as S

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


def test_every_family_is_registered():
    assert set(FAMILIES) <= set(supported_model_types())


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request, tmp_path_factory):
    family = family_for(request.param)
    folder = family.build_tiny(tmp_path_factory.mktemp(request.param), seed=0)
    model, processor = load_model_and_processor(str(folder), dtype="float32")
    return family, folder, model.eval(), processor


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (int(rng.integers(60, 140)), int(rng.integers(30, 80)), 3),
                                        dtype=np.uint8)) for _ in range(n)]


def test_loads_as_its_family(tiny):
    family, _, model, processor = tiny
    assert model.config.model_type == family.model_type
    assert type(processor) is family.processor_class()
    assert processor.image_token == family.image_token


def test_fast_pixels_equal_the_stock_image_processor(tiny):
    family, _, _, processor = tiny
    ip = processor.image_processor
    ims = _images(4, seed=1) + _images(1, seed=1)  # mixed sizes, one size twice
    fast, grid = family.pixel_values(ip, ims)
    stock, stock_grid = family.stock_pixel_values(ip, ims)
    assert grid.tolist() == stock_grid.tolist()
    np.testing.assert_allclose(fast.numpy(), stock.numpy(), atol=1e-5)
    # the collator's path: a resize target instead of the image's size equals the stock path on
    # the image resized there first
    targets = [(256, 128)] * len(ims)
    fast_t, grid_t = family.pixel_values(ip, ims, targets)
    h, w = family.processed_size(ip, 128, 256)
    resized = [im.resize((w, h), Image.Resampling(int(ip.resample))) for im in ims]
    stock_t, stock_grid_t = family.stock_pixel_values(ip, resized)
    assert grid_t.tolist() == stock_grid_t.tolist()
    np.testing.assert_allclose(fast_t.numpy(), stock_t.numpy(), atol=1e-5)


def test_positions_equal_get_rope_index(tiny):
    _, _, model, processor = tiny
    enc = S.encode(model, processor, _images(4, seed=2))
    sc = S.PairScorer(model, processor)
    chat = S.chat_prompt(processor, S.yes_no_prompt("standard")[0])
    rows = [[enc[0], c] for c in enc[1:]]
    ids = [sc.builder.build(chat, r) for r in rows]
    width = max(map(len, ids))
    full, mask = torch.zeros(len(ids), width, dtype=torch.long), torch.zeros(len(ids), width, dtype=torch.long)
    for i, row in enumerate(ids):
        full[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    mine = sc.reader._positions(full, mask, rows)
    grid = torch.stack([im.grid_thw for r in rows for im in r])
    ref, _ = model.model.get_rope_index(full, mm_token_type_ids=(full == sc.tokens["image"]).int(),
                                        image_grid_thw=grid, attention_mask=mask)
    assert torch.equal(mine[:, mask.bool()], ref[:, mask.bool()])


def test_encode_equals_the_towers_own_features(tiny):
    family, _, model, processor = tiny
    ims = _images(3, seed=3)
    enc = S.encode(model, processor, ims)
    pixels, grid = family.stock_pixel_values(processor.image_processor, ims)
    ref = model.model.get_image_features(pixels, grid, return_dict=True)
    for i, (e, p) in enumerate(zip(enc, ref.pooler_output)):
        np.testing.assert_allclose(e.embeds.numpy(), p.detach().numpy(), atol=1e-5)
        if family.model_type == "qwen3_vl":  # the DeepStack features travel with the image
            for mine, theirs in zip(e.extras, ref.deepstack_features):
                np.testing.assert_allclose(mine.numpy(), theirs[i].detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_scorer_equals_the_stock_forward(tiny, share_prefix):
    _, _, model, processor = tiny
    ims = _images(5, seed=4)
    sc = S.PairScorer(model, processor)
    enc = S.encode(model, processor, ims)
    fast = sc.score(enc[1:], query_image=enc[0], batch_size=3, share_prefix=share_prefix)
    naive = [S.naive_yes_probability(model, processor, [ims[0], c]) for c in ims[1:]]
    np.testing.assert_allclose(fast, naive, atol=1e-4)
    text = "A man in a red jacket."
    fast_t = sc.score(enc, text=text)
    naive_t = [S.naive_yes_probability(model, processor, [c], text=text) for c in ims]
    np.testing.assert_allclose(fast_t, naive_t, atol=1e-4)


def test_scorer_equals_generate_logits(tiny):
    _, _, model, processor = tiny
    ims = _images(2, seed=5)
    chat = S.chat_prompt(processor, S.yes_no_prompt("standard")[0])
    inputs = processor(text=[chat], images=ims, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True)
    sc = S.PairScorer(model, processor)
    logits = out.logits[0][0]
    want = S.yes_probability(np.array([[float(logits[sc.tokens["yes"]]), float(logits[sc.tokens["no"]])]]))[0]
    enc = S.encode(model, processor, ims)
    assert sc.score([enc[1]], query_image=enc[0])[0] == pytest.approx(want, abs=1e-4)


def test_best_choice_with_the_kept_cache_equals_recomputing(tiny):
    _, _, model, processor = tiny
    sc = S.PairScorer(model, processor)
    enc = S.encode(model, processor, _images(6, seed=6))
    first_turn = lambda gallery: prompts.render("reid_standard", gallery=gallery)  # noqa: E731
    runs = [best_choice.rank(sc.reader, sc.builder, processor, first_turn, [enc[0]], enc[1:], window=3,
                             reuse_cache=reuse) for reuse in (True, False)]
    assert runs[0].order == runs[1].order and sorted(runs[0].order) == list(range(5))
    np.testing.assert_allclose(runs[0].confidence, runs[1].confidence, atol=1e-4)
    np.testing.assert_allclose(runs[0].p_none, runs[1].p_none, atol=1e-4)


def test_lora_targets_name_existing_linear_layers(tiny):
    family, _, model, _ = tiny
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for frozen, parts in [(set(), {"vision_encoder", "merger", "decoder"}), ({"vision_encoder"}, {"merger", "decoder"})]:
        hit = {family.part_of(n + ".weight") for n in names if re.fullmatch(family.lora_targets(frozen), n)}
        assert hit == parts


# -- the three stages through train/sft.py -----------------------------------------------------

def _load_sft():
    spec = importlib.util.spec_from_file_location("chatreid_train_sft_families", ROOT / "train" / "sft.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tests"))
    from training_data import instructions, synthpeds_store

    root = tmp_path_factory.mktemp("data")
    store = synthpeds_store(root / "synth")
    return {"store": store, **{s: instructions(store, root / f"stage{s}", s, size=6) for s in (1, 2, 3)}}


def _args(stage, data, base, out, *extra):
    return ["--config", str(ROOT / f"train/configs/stage{stage}.yaml"), "--stage", str(stage),
            "--base_model", str(base), "--dataset_name", str(data[stage]), "--image_store", str(data["store"]),
            "--output_dir", str(out), "--use_cpu", "true", "--bf16", "false", "--dtype", "float32",
            "--max_steps", "1", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
            "--logging_steps", "1", "--save_steps", "1000", "--dataloader_num_workers", "0",
            "--dataloader_persistent_workers", "false", "--learning_rate", "1e-2", "--warmup_steps", "0",
            "--report_to", "none", *extra]


def test_three_stages_through_sft_freeze_and_transplant_tensor_by_tensor(tiny, data, tmp_path):
    from safetensors.torch import load_file

    family, folder, _, _ = tiny
    sft = _load_sft()

    def parts(path):
        out = {}
        for k, v in load_file(Path(path) / "model.safetensors").items():
            out.setdefault(family.part_of(k), {})[k] = v
        return out

    assert sft.cli(_args(1, data, folder, tmp_path / "s1")) == 0
    # stage 2 at learning rate 0 exports exactly the tensors it starts from: the surgery is visible
    assert sft.cli(_args(2, data, folder, tmp_path / "s2", "--previous_stage_checkpoint", str(tmp_path / "s1"),
                         "--learning_rate", "0")) == 0
    assert sft.cli(_args(3, data, folder, tmp_path / "s3", "--previous_stage_checkpoint", str(tmp_path / "s2"))) == 0
    base = parts(folder)
    s1, s2, s3 = (parts(tmp_path / s / "final") for s in ("s1", "s2", "s3"))
    assert set(base) == {"vision_encoder", "merger", "decoder"}
    for part in base:  # stage 1 trained every part
        assert any(not torch.equal(s1[part][k], base[part][k]) for k in base[part]), part
    for part, source in (("vision_encoder", s1), ("merger", s1), ("decoder", base)):  # stage 2's surgery
        assert s2[part].keys() == source[part].keys()
        for k in source[part]:
            assert torch.equal(s2[part][k], source[part][k]), k
    for k in s2["vision_encoder"]:  # stage 3: the encoder frozen, tensor by tensor
        assert torch.equal(s3["vision_encoder"][k], s2["vision_encoder"][k]), k
    assert any(not torch.equal(s3["decoder"][k], s2["decoder"][k]) for k in s2["decoder"])
    assert any(not torch.equal(s3["merger"][k], s2["merger"][k]) for k in s2["merger"])


# -- the app on each family --------------------------------------------------------------------

def test_app_builds_and_ranks(tiny):
    import app
    from chatreid.chat.settings import Limits, ModelChoice
    from chatreid.retrieval import ReIDEngine
    from chatreid.retrieval.query import Query

    _, folder, _, _ = tiny
    engine = ReIDEngine.from_pretrained(str(folder), prefilter="none")
    demo = app.build_app(engine, ModelChoice(str(folder), "--model"), Limits(max_gallery=10))
    assert demo is not None
    gallery = _images(4, seed=7)
    for strategy in ("pairwise", "best_choice"):
        result = engine.search(Query(images=[_images(1, seed=8)[0]]), gallery, strategy=strategy)
        assert sorted(result.ranking) == list(range(4))


# -- one home for each family's facts ----------------------------------------------------------

FAMILY_NAMES = re.compile(
    r"Qwen[23](_5)?VL\w*|Qwen[23]VL\w*|<\|image_pad\|>|<\|vision_start\|>|qwen[23](_5)?_vl\b"
    r"|model\.visual\b|\.visual\.|language_model\.layers|deepstack")


def test_no_module_outside_the_model_layer_names_a_family():
    """Family classes, image tokens, module paths and model types live in chatreid/model/ only."""
    files = [p for p in (ROOT / "chatreid").rglob("*.py") if "model" not in p.relative_to(ROOT / "chatreid").parts[:1]]
    files += [ROOT / "app.py", *sorted((ROOT / "train").glob("*.py"))]
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if FAMILY_NAMES.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("folder,hub_id", [("qwen3_vl_2b", "Qwen/Qwen3-VL-2B-Instruct"),
                                           ("qwen2_5_vl_3b", "Qwen/Qwen2.5-VL-3B-Instruct")])
def test_family_stage_configs_differ_from_qwen2_vl_only_in_the_model_and_paths(folder, hub_id):
    import yaml

    for stage in (1, 2, 3):
        mine = yaml.safe_load((ROOT / "train" / "configs" / folder / f"stage{stage}.yaml").read_text())
        paper = yaml.safe_load((ROOT / "train" / "configs" / f"stage{stage}.yaml").read_text())
        assert mine["base_model"] == hub_id and mine["output_dir"] == f"runs/{folder}/stage{stage}"
        for key in set(paper) | set(mine):
            if key in ("base_model", "output_dir", "previous_stage_checkpoint"):
                continue
            assert mine.get(key) == paper.get(key), (folder, stage, key)
        if "previous_stage_checkpoint" in paper:
            assert mine["previous_stage_checkpoint"] == f"runs/{folder}/stage{stage - 1}"



def test_fast_vision_attention_changes_no_output(tiny, tmp_path):
    family, folder, model, processor = tiny
    ims = _images(3, seed=9) + _images(2, seed=9)  # two sizes twice: batched groups
    pixels, grid = family.stock_pixel_values(processor.image_processor, ims)
    before = model.model.get_image_features(pixels, grid, return_dict=True).pooler_output
    fresh, _ = load_model_and_processor(str(folder), dtype="float32")
    assert family.enable_fast_attention(fresh.eval()) == fresh.config.vision_config.depth
    after = fresh.model.get_image_features(pixels, grid, return_dict=True).pooler_output
    for a, b in zip(before, after):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
