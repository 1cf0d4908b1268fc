"""The tiny byte-level BPE tokenizer of the Qwen families' random test checkpoints: trained here on
a small corpus in the register of the paper's prompts and pedestrian captions, wrapped as the
real ``Qwen2Tokenizer`` class, with Qwen2-VL's 14 special tokens in Qwen's order. The family sets
its chat template (``Family.build_tiny``)."""

from __future__ import annotations

# Qwen2-VL's added tokens, in the order (and so the relative ids) of the real vocabulary.
QWEN2_VL_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Words the retrieval engine reads a probability from: each must be one token, with and
# without the leading space, or the one-forward-pass Yes-probability is wrong.
SINGLE_TOKEN_WORDS = ["Yes", "No", "yes", "no"]

# A small English corpus in the register of the paper's prompts and pedestrian captions, so the
# tiny vocabulary tokenises realistic rows into realistic lengths.
_COLOURS = ["black", "white", "red", "blue", "green", "yellow", "gray", "brown", "pink", "purple", "orange"]
_UPPER = ["jacket", "coat", "shirt", "T-shirt", "sweater", "hoodie", "dress", "blouse", "vest"]
_LOWER = ["trousers", "jeans", "shorts", "skirt", "pants", "leggings"]
_SHOES = ["sneakers", "boots", "sandals", "shoes", "heels"]
_BAGS = ["backpack", "handbag", "shoulder bag", "suitcase", "umbrella", "hat", "glasses"]
_PEOPLE = [("man", "He", "his"), ("woman", "She", "her"), ("boy", "He", "his"), ("girl", "She", "her")]
_AGES = ["young", "middle-aged", "elderly", "teenage", "adult"]
_HAIR = ["short", "long", "curly", "dark", "blond", "tied-back"]
_POSES = ["walking", "standing", "running", "carrying", "looking down", "facing the camera", "riding a bicycle"]

_BUILTIN_PROMPTS = [
    "In the <image> provided, can you give a detailed description of the pedestrian, including their "
    "gender, age range, hair, type and color of clothing, footwear type and color, posture or gait, any "
    "patterns or accessories, and any distinguishing features?",
    "Do these two images contain the same pedestrian identity?",
    "Given the query image of a pedestrian and a gallery set, find all images that match the identity "
    "of the pedestrian in the query image.",
    "These two images match the identity of the pedestrian in the query image.",
    "Does the image of the pedestrian match the following caption:",
    "Given the following image, which of the captions accurately describes it? The first caption: "
    "The second caption: The third caption:",
    "Select the image that best matches the following description of the pedestrian's appearance:",
    "This image matches the following description.",
    "Common Attributes: Unique Attributes of the First Image: Unique Attributes of the Second Image:",
    "Examine the image below and select the correct attribute annotations for the pedestrian.",
    "The pedestrian attributes of this image are:",
    "Given the person image provided, identify which of the following images show the same pedestrian "
    "as in the first image.",
    "Given the person image provided, select which of the gallery shows the same person, who may be "
    "wearing different clothing.",
    "Using the given person image, choose the corresponding gallery that matches the same pedestrian, "
    "considering both infrared and visible light images for reidentification.",
    "Select the person image that best matches the following description of the pedestrian's appearance:",
    "You are a helpful assistant.",
    "Is this the same person? Answer Yes or No.",
]


def _prompt_texts() -> list[str]:
    """The paper's prompts: from chatreid.prompts when that module is present, else a built-in copy."""
    texts = list(_BUILTIN_PROMPTS)
    try:  # the prompts module belongs to another layer; use whatever string constants it has
        import chatreid.prompts as prompts

        def walk(obj, depth=0):
            if isinstance(obj, str):
                texts.append(obj)
            elif depth < 3 and isinstance(obj, (list, tuple, set)):
                for item in obj:
                    walk(item, depth + 1)
            elif depth < 3 and isinstance(obj, dict):
                for item in obj.values():
                    walk(item, depth + 1)

        for name in dir(prompts):
            if name.isupper():
                walk(getattr(prompts, name))
    except Exception:  # noqa: BLE001 - absent or half-written module: the built-in copy suffices
        pass
    return texts


def corpus(n_captions: int = 400, seed: int = 0) -> list[str]:
    """Deterministic training text for the tiny tokenizer: captions, prompts, answers."""
    import random

    rng = random.Random(seed)
    lines = _prompt_texts() * 3  # repeated so their words become whole tokens
    for _ in range(n_captions):
        person, pron, poss = rng.choice(_PEOPLE)
        lines.append(
            f"A {rng.choice(_AGES)} {person} with {rng.choice(_HAIR)} hair, wearing a {rng.choice(_COLOURS)} "
            f"{rng.choice(_UPPER)} and {rng.choice(_COLOURS)} {rng.choice(_LOWER)}, with "
            f"{rng.choice(_COLOURS)} {rng.choice(_SHOES)}. {pron} is {rng.choice(_POSES)} and has "
            f"{poss} {rng.choice(_BAGS)}. Gender: {person}; upper body: {rng.choice(_COLOURS)}; "
            f"lower body: {rng.choice(_COLOURS)}; age: {rng.choice(_AGES)}."
        )
    # Answers, often enough that the trainer merges the words into single tokens.
    for word in SINGLE_TOKEN_WORDS:
        lines += [f"{word}", f"Answer: {word}", f"{word}."] * 40
    lines += ["user", "assistant", "system", "Picture", "Image"] * 20  # chat-template words
    lines += [f"Image {i} and image {i + 1}. The {o} caption." for i in range(1, 20)
              for o in ("first", "second", "third", "fourth")]
    return lines


def build_tiny_tokenizer(vocab_size: int = 2048, seed: int = 0):
    """A byte-level BPE trained here, wrapped as the real ``Qwen2Tokenizer`` class."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(QWEN2_VL_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknowns
        min_frequency=2,
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(seed=seed), trainer=trainer)
    state = __import__("json").loads(bpe.to_str())["model"]
    vocab = dict(state["vocab"])
    for token in QWEN2_VL_SPECIAL_TOKENS:  # appended in Qwen's order, like the real vocabulary
        vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         errors="replace", model_max_length=32768)
    tok.add_special_tokens({"additional_special_tokens": QWEN2_VL_SPECIAL_TOKENS[1:]})
    for word in SINGLE_TOKEN_WORDS:
        for form in (word, " " + word):
            if len(tok.encode(form, add_special_tokens=False)) != 1:
                raise RuntimeError(f"tiny tokenizer splits {form!r}; the corpus must repeat it more")
    return tok
