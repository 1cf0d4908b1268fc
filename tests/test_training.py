"""Collation, resolution policies, answer-only labels, pre-flight checks, batched vision attention."""

import pickle

import pytest
import torch
from PIL import Image

from chatreid.data.store import ImageStore
from chatreid.model import load_model_and_processor, load_processor
from chatreid.model.fast import enable_batched_vision_attention
from chatreid.training import IGNORE_INDEX, ReIDCollator, ResolutionPolicy, policy_for_stage
from chatreid.training import checks
from training_data import SIZES, image_store, instructions, rows_of, synthpeds_store


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    """A SynthPeds store whose image files are below, at, between and above the stage thresholds."""
    return synthpeds_store(tmp_path_factory.mktemp("synth"), sizes=SIZES)


@pytest.fixture(scope="module")
def store(store_dir):
    return ImageStore.load(str(store_dir))


@pytest.fixture(scope="module")
def built(store_dir, tmp_path_factory):
    """Stage 1, 2 and 3 instruction datasets built from the store by the instruction engine."""
    root = tmp_path_factory.mktemp("instructions")
    return {stage: instructions(store_dir, root / f"stage{stage}", stage, size=40) for stage in (1, 2, 3)}


def _yes_no_rows(built, n):
    return rows_of(built[2], n, tasks={"i2i_one_to_one"})


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(str(tiny_model_dir))


@pytest.mark.parametrize("stage,size,expected", [
    (1, (128, 64), (256, 128)), (1, (300, 100), (256, 128)), (1, (256, 128), (256, 128)), (1, (420, 210), (420, 210)),
    (2, (420, 210), (384, 192)), (2, (300, 250), (384, 192)), (2, (384, 192), (384, 192)), (2, (128, 64), (128, 64)),
    (3, (128, 64), (128, 64)), (3, (1000, 500), (1000, 500)),
])
def test_stage_resolution_policies(stage, size, expected):
    image = Image.new("RGB", (size[1], size[0]))
    out = policy_for_stage(stage)(image)
    assert (out.height, out.width) == expected
    if expected == size:
        assert out is image  # untouched, not re-sampled


def test_policy_validation():
    with pytest.raises(ValueError):
        ResolutionPolicy("shrink", (1, 1))
    with pytest.raises(ValueError):
        policy_for_stage(4)


def _answer_texts(processor, batch):
    out = []
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        keep = labels != IGNORE_INDEX
        assert torch.equal(labels[keep], ids[keep])
        out.append(processor.tokenizer.decode(ids[keep]))
    return out


def _rows_of_every_size(store, path):
    """Single-turn rows of a built dataset, few, whose images between them have every size of SIZES."""
    chosen, seen = [], set()
    for row in rows_of(path, 10**9, single_turn=True, partial=True):
        sizes = {store.image(iid).size[::-1] for iid in row["image_ids"]}
        if sizes - seen:
            chosen.append(row)
            seen |= sizes
        if seen >= set(SIZES):
            break
    assert seen == set(SIZES), seen
    return chosen


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_collator_resolves_ids_and_trains_only_answers(processor, store, built, stage):
    rows = _rows_of_every_size(store, built[stage])
    batch = ReIDCollator(processor, store, stage)(rows)
    answers = [r["messages"][1]["content"][0]["text"] for r in rows]
    assert _answer_texts(processor, batch) == [a + "<|im_end|>" for a in answers]
    # the images are the store's, resized by the stage's policy, in placeholder order
    policy = policy_for_stage(stage)
    expected = []
    for r in rows:
        for iid in r["image_ids"]:
            img = policy(store.image(iid))
            expected.append(processor.image_processor(images=[img], return_tensors="pt")["image_grid_thw"][0])
    assert torch.equal(batch["image_grid_thw"], torch.stack(expected))
    image_tok = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["labels"][batch["input_ids"] == image_tok] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_multi_turn_rows_train_every_answer_and_nothing_else(processor, store):
    ids = store.ids()[:2]
    row = {"messages": [
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Describe him."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A man in a red coat."}]},
        {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Same person?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": " No"}]},
    ], "image_ids": ids}
    batch = ReIDCollator(processor, store, 3)([row])
    n_answer_tokens = sum(len(processor.tokenizer.encode(t, add_special_tokens=False)) + 1
                          for t in ["A man in a red coat.", " No"])
    assert int((batch["labels"] != IGNORE_INDEX).sum()) == n_answer_tokens
    assert processor.tokenizer.decode(batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]) == \
        "A man in a red coat.<|im_end|> No<|im_end|>"


def test_loss_ignores_prompt_and_images(tiny_model_dir, processor, store, built):
    """Changing only the prompt text leaves the label set intact; the loss is the answers' mean NLL."""
    model, _ = load_model_and_processor(str(tiny_model_dir))
    rows = _yes_no_rows(built, 2)
    batch = ReIDCollator(processor, store, 2)(rows)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        out = model(**inputs)
    logits = out.logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    manual = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    with torch.no_grad():
        auto = model(**batch).loss
    assert torch.allclose(manual, auto, atol=1e-6)
    assert int(mask.sum()) == 4  # "Yes"/"No" + <|im_end|> for two rows


def test_collator_errors_and_pickles(processor, store, built):
    collator = ReIDCollator(processor, store, 2)
    bad = _yes_no_rows(built, 1)[0]
    bad = {**bad, "image_ids": bad["image_ids"][:1]}
    with pytest.raises(ValueError, match="placeholders"):
        collator([bad])
    clone = pickle.loads(pickle.dumps(collator))  # dataloader workers get a copy
    row = _yes_no_rows(built, 1)
    a, b = collator(row), clone(row)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dataloader_workers_give_the_same_batches(processor, store, built):
    rows = rows_of(built[3], 4)
    collator = ReIDCollator(processor, store, 3)
    loader = torch.utils.data.DataLoader(rows, batch_size=2, collate_fn=collator, num_workers=1)
    for got, want in zip(loader, [collator(rows[:2]), collator(rows[2:])]):
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_check_rows(store, built, tmp_path):
    data = checks.load_instructions(str(built[3]))
    assert checks.check_rows(data["train"], store) == len(data["train"])
    import datasets

    rows = data["train"].to_list()
    rows[2]["image_ids"] = rows[2]["image_ids"][:-1] + ["synthpeds/nowhere.png"]
    with pytest.raises(ValueError, match="not in image store.*nowhere"):
        checks.check_rows(datasets.Dataset.from_list(rows), store)
    rows = data["train"].to_list()
    rows[1]["image_ids"] = rows[1]["image_ids"][:-1]
    with pytest.raises(ValueError, match="row 1"):
        checks.check_rows(datasets.Dataset.from_list(rows), store)
    rows = data["train"].to_list()
    rows[0]["messages"] = rows[0]["messages"][:1]
    with pytest.raises(ValueError, match="no assistant answer"):
        checks.check_rows(datasets.Dataset.from_list(rows), store)
    with pytest.raises(FileNotFoundError):
        checks.load_instructions(str(tmp_path / "absent"))


def test_batched_vision_attention_matches_stock(tiny_model_dir, processor, monkeypatch):
    model, _ = load_model_and_processor(str(tiny_model_dir))
    images = [Image.new("RGB", (196, 392), (i * 40, 90, 30)) for i in range(3)] + [Image.new("RGB", (64, 128))]
    vis = processor.image_processor(images=images, return_tensors="pt")
    pixels = vis["pixel_values"].requires_grad_(True)

    def run():
        out = model.model.visual(pixels, grid_thw=vis["image_grid_thw"])
        out = getattr(out, "pooler_output", out)
        (grad,) = torch.autograd.grad(out.square().sum(), pixels)
        return out.detach(), grad

    ref_out, ref_grad = run()
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(a[0].shape[0]) or sdpa(*a, **k))
    assert enable_batched_vision_attention(model) == model.config.vision_config.depth
    out, grad = run()
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(grad, ref_grad, atol=1e-5)
    # per block: one call for the three equal images, one for the odd one
    assert sorted(calls) == sorted([3, 1] * model.config.vision_config.depth)


def test_last_complete_checkpoint(tmp_path):
    assert checks.last_complete_checkpoint(str(tmp_path)) is None
    for step, state in [(2, "{}"), (4, "{}"), (6, None), (8, "{trunc")]:
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert checks.last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-4")


def test_fast_image_path_equals_the_processor(processor, tmp_path):
    gen = torch.Generator().manual_seed(0)
    sizes = [(392, 196), (140, 56), (252, 140)]  # already multiples of 28: the processor does not resize
    images = [Image.fromarray((torch.rand(h, w, 3, generator=gen) * 255).to(torch.uint8).numpy()) for h, w in sizes]
    store = ImageStore.load(image_store(tmp_path, images + [Image.new("RGB", (210, 420)), Image.new("RGB", (50, 100))]))
    row = {"messages": [{"role": "user", "content": [{"type": "image", "text": None}] * 3 +
                         [{"type": "text", "text": "Same person?"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]}],
           "image_ids": ["t/0.png", "t/1.png", "t/2.png"]}
    fast = ReIDCollator(processor, store, 3)([row, row])
    slow = ReIDCollator(processor, store, 3, fast_images=False)([row, row])
    assert fast.keys() == slow.keys()
    for k in fast:
        if k == "pixel_values":
            assert torch.allclose(fast[k], slow[k], atol=1e-5), (fast[k] - slow[k]).abs().max()
        else:
            assert torch.equal(fast[k], slow[k]), k
    # other sizes: same grids and tokens under every stage policy (one resize instead of two)
    row2 = {**row, "image_ids": ["t/3.png", "t/4.png", "t/0.png"]}
    for stage in (1, 2, 3):
        fast = ReIDCollator(processor, store, stage)([row2])
        slow = ReIDCollator(processor, store, stage, fast_images=False)([row2])
        assert torch.equal(fast["image_grid_thw"], slow["image_grid_thw"])
        assert torch.equal(fast["input_ids"], slow["input_ids"]) and torch.equal(fast["labels"], slow["labels"])
