"""The model layer: the tiny Qwen2-VL factory and loading without torchvision."""

import json
import shutil
import time

import pytest
import torch
from PIL import Image

from chatreid.model import ChatReIDQwen2VLProcessor, build_tiny_qwen2vl, load_model_and_processor, load_processor
from chatreid.model.tiny import QWEN2_VL_SPECIAL_TOKENS, build_tiny_tokenizer

MESSAGES = [
    {"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                 {"type": "text", "text": "Do these two images contain the same pedestrian identity?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]},
]


def _images():
    return [Image.new("RGB", (128, 256), (200, 30, 30)), Image.new("RGB", (64, 128), (30, 30, 200))]


def test_tiny_checkpoint_has_the_files_of_a_real_one(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    for required in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                     "preprocessor_config.json", "chat_template.jinja", "generation_config.json"]:
        assert required in names
    assert not any(n.endswith(".bin") for n in names)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_vl"
    # mrope sections must cover half the head dimension (the default assumes 128-dim heads)
    text = config["text_config"]
    assert sum(text["rope_parameters"]["mrope_section"]) == text["hidden_size"] // text["num_attention_heads"] // 2
    assert config["vision_config"]["hidden_size"] == text["hidden_size"]


def test_tiny_tokenizer_special_tokens_and_answers(tiny_model_dir):
    model, processor = load_model_and_processor(str(tiny_model_dir))
    tok = processor.tokenizer
    ids = [tok.convert_tokens_to_ids(t) for t in QWEN2_VL_SPECIAL_TOKENS]
    # appended consecutively in Qwen's order, after the BPE vocabulary
    assert ids == list(range(ids[0], ids[0] + 14)) and ids[-1] == len(tok) - 1
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    for word in ["Yes", " Yes", "No", " No"]:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
    # the paper's words are whole tokens, so rows have realistic lengths
    sentence = "Do these two images contain the same pedestrian identity?"
    assert len(tok.encode(sentence, add_special_tokens=False)) <= 12
    assert tok.decode(tok.encode(sentence)) == sentence


def test_real_chat_template_and_processor_outputs(tiny_model_dir):
    model, processor = load_model_and_processor(str(tiny_model_dir))
    assert isinstance(processor, ChatReIDQwen2VLProcessor)
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    text = processor.apply_chat_template(MESSAGES, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
        "Do these two images contain the same pedestrian identity?<|im_end|>\n<|im_start|>assistant\nYes<|im_end|>\n"
    )
    batch = processor(text=[text], images=_images(), return_tensors="pt")
    n_pad = int((batch["input_ids"] == model.config.image_token_id).sum())
    assert n_pad == int(batch["image_grid_thw"].prod(-1).sum()) // 4
    assert torch.equal(batch["mm_token_type_ids"].bool(), batch["input_ids"] == model.config.image_token_id)
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)


def test_auto_classes_load_saved_checkpoint_and_roundtrip(tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert isinstance(processor, ChatReIDQwen2VLProcessor)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    batch = processor(text=[processor.apply_chat_template(MESSAGES, tokenize=False)], images=_images(),
                      return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    model2, processor2 = load_model_and_processor(str(tmp_path / "copy"))
    batch2 = processor2(text=[processor2.apply_chat_template(MESSAGES, tokenize=False)], images=_images(),
                        return_tensors="pt")
    assert torch.equal(batch["input_ids"], batch2["input_ids"])
    with torch.no_grad():
        assert torch.equal(model2(**batch2).logits, logits)


def test_loads_a_checkpoint_in_the_hub_layout(tiny_model_dir, tmp_path):
    """Real Qwen2-VL repos name the stock processor (which needs torchvision) and have no processor_config.json."""
    hub = tmp_path / "hub-layout"
    shutil.copytree(tiny_model_dir, hub)
    (hub / "processor_config.json").unlink()
    pre = json.loads((hub / "preprocessor_config.json").read_text())
    pre["processor_class"] = "Qwen2VLProcessor"
    (hub / "preprocessor_config.json").write_text(json.dumps(pre))
    processor = load_processor(str(hub), max_pixels=128 * 256)
    assert isinstance(processor, ChatReIDQwen2VLProcessor)
    assert processor.chat_template is not None
    big = Image.new("RGB", (512, 1024))
    grid = processor.image_processor(images=[big], return_tensors="pt")["image_grid_thw"]
    assert int(grid.prod()) * 14 * 14 <= 128 * 256


def test_tiny_build_is_deterministic_and_fast(tmp_path):
    build_tiny_tokenizer()  # warm imports
    start = time.perf_counter()
    a = build_tiny_qwen2vl(tmp_path / "a", seed=0)
    elapsed = time.perf_counter() - start
    b = build_tiny_qwen2vl(tmp_path / "b", seed=0)
    c = build_tiny_qwen2vl(tmp_path / "c", seed=1)
    assert elapsed < 5.0, f"tiny model build took {elapsed:.1f}s"
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_offline_hub_id_fails_in_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"):
        load_model_and_processor("nobody-here/not-a-cached-model")


def test_refuses_unsupported_architectures_and_pickles(tiny_model_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "llava"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="supports qwen2_vl"):
        load_model_and_processor(str(other))

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    from safetensors.torch import load_file

    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(OSError):
        load_model_and_processor(str(pickled))
