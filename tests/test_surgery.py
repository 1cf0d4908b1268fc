"""Stage surgery: each stage starts from exactly the tensors the paper says it should."""

import pytest
import torch
from PIL import Image

from chatreid.model import load_model, load_model_and_processor
from chatreid.model.surgery import (
    frozen_parts,
    prepare_stage_model,
    stage1_model,
    stage2_model,
    stage3_model,
    state_dict_of,
    trainable_summary,
)
from chatreid.model.tiny import build_tiny_qwen2vl


@pytest.fixture(scope="module")
def stage1_dir(tiny_model_dir, tmp_path_factory):
    """A stand-in stage-1 checkpoint: the base with every tensor moved (as full tuning would)."""
    model, processor = load_model_and_processor(str(tiny_model_dir))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    out = tmp_path_factory.mktemp("stage1")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _assert_all_differ(a: dict, b: dict):
    assert a.keys() == b.keys() and a
    for k in a:
        assert not torch.equal(a[k], b[k]), k


def test_stage1_is_the_pretrained_vlm_fully_trainable(tiny_model_dir):
    base = load_model(str(tiny_model_dir))
    model = stage1_model(str(tiny_model_dir))
    for part in ("vision_encoder", "merger", "decoder"):
        _assert_same(state_dict_of(model, part), state_dict_of(base, part))
        trainable, total = trainable_summary(model)[part]
        assert trainable == total > 0
    assert frozen_parts(1) == frozen_parts(2) == set()


def test_stage2_takes_stage1_encoder_and_merger_and_a_fresh_decoder(tiny_model_dir, stage1_dir):
    base, s1 = load_model(str(tiny_model_dir)), load_model(str(stage1_dir))
    model = stage2_model(str(stage1_dir), str(tiny_model_dir))
    _assert_same(state_dict_of(model, "vision_encoder"), state_dict_of(s1, "vision_encoder"))
    _assert_same(state_dict_of(model, "merger"), state_dict_of(s1, "merger"))
    _assert_same(state_dict_of(model, "decoder"), state_dict_of(base, "decoder"))
    _assert_all_differ(state_dict_of(model, "decoder"), state_dict_of(s1, "decoder"))
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight  # ties survive
    assert all(t == n for t, n in trainable_summary(model).values())


def test_stage2_merger_from_base(tiny_model_dir, stage1_dir):
    base, s1 = load_model(str(tiny_model_dir)), load_model(str(stage1_dir))
    model = stage2_model(str(stage1_dir), str(tiny_model_dir), merger_from="base")
    _assert_same(state_dict_of(model, "vision_encoder"), state_dict_of(s1, "vision_encoder"))
    _assert_same(state_dict_of(model, "merger"), state_dict_of(base, "merger"))
    with pytest.raises(ValueError, match="merger_from"):
        stage2_model(str(stage1_dir), str(tiny_model_dir), merger_from="decoder")


def test_stage2_refuses_an_incompatible_stage1(tiny_model_dir, tmp_path):
    from chatreid.model.tiny import tiny_qwen2vl_config, build_tiny_tokenizer
    from transformers import Qwen2VLForConditionalGeneration

    other = Qwen2VLForConditionalGeneration(tiny_qwen2vl_config(build_tiny_tokenizer(), vision_depth=3))
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="depth"):
        stage2_model(str(tmp_path / "other"), str(tiny_model_dir))


def test_stage_dispatch_needs_previous_checkpoint(tiny_model_dir):
    for stage in (2, 3):
        with pytest.raises(ValueError, match=f"stage-{stage - 1} checkpoint"):
            prepare_stage_model(stage, base=str(tiny_model_dir), previous=None)


@pytest.mark.parametrize("freeze_merger", [False, True])
def test_stage3_keeps_stage2_weights_and_a_training_step_leaves_the_encoder_alone(stage1_dir, freeze_merger):
    s2 = load_model(str(stage1_dir))  # any full checkpoint serves as "stage 2"
    model = stage3_model(str(stage1_dir), freeze_merger=freeze_merger)
    for part in ("vision_encoder", "merger", "decoder"):
        _assert_same(state_dict_of(model, part), state_dict_of(s2, part))
    summary = trainable_summary(model)
    assert summary["vision_encoder"][0] == 0
    assert summary["merger"][0] == (0 if freeze_merger else summary["merger"][1])
    assert summary["decoder"][0] == summary["decoder"][1]
    assert frozen_parts(3, freeze_merger=freeze_merger) == ({"vision_encoder", "merger"} if freeze_merger
                                                           else {"vision_encoder"})

    # one optimiser step on a real image batch: frozen tensors do not move, trainable ones do
    _, processor = load_model_and_processor(str(stage1_dir))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "A man in a red coat."}]}]
    text = processor.apply_chat_template(messages, tokenize=False)
    batch = processor(text=[text], images=[Image.new("RGB", (64, 128), (10, 200, 40))], return_tensors="pt")
    before = {p: state_dict_of(model, p) for p in ("vision_encoder", "merger", "decoder")}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    opt.step()
    _assert_same(state_dict_of(model, "vision_encoder"), before["vision_encoder"])
    if freeze_merger:
        _assert_same(state_dict_of(model, "merger"), before["merger"])
    else:
        assert any(not torch.equal(a, b) for a, b in zip(state_dict_of(model, "merger").values(),
                                                         before["merger"].values()))
    assert any(not torch.equal(a, b) for a, b in zip(state_dict_of(model, "decoder").values(),
                                                     before["decoder"].values()))
