"""Reading answers from one forward pass: the Yes-probability of "same person?", and the logits of
any answer token at the end of a prompt, for many prompts at once.

The naive way to score a query against N candidates is N full forward passes of the VLM, each
re-encoding the query image and re-reading the same instruction. Here, per query:

1. every distinct image goes through the vision tower once (``encode_images``), and its merged
   patch embeddings are spliced into the token embeddings wherever that image appears;
   its patch embedding is computed straight from the resized RGB bytes (``patch_embeddings``:
   one 2-D convolution, the temporal kernel summed and the normalisation folded in);
2. the longest prefix that all prompts share (system turn, instruction words, the query image) is
   run through the language model once, and its key/value cache is repeated across the batch;
3. only the differing suffixes (candidate image, the rest of the question, the assistant header)
   run per candidate, right-padded into batches;
4. only the few vocabulary rows needed ("Yes", "No", or answer labels) are multiplied with the
   final hidden state, instead of the whole LM head.

The result equals the naive loop (``naive_yes_probability``) up to float rounding: the same
tokens, the same positions (the family's rule, checked against the model's own rope index),
the same causal attention. tests/test_scorer.py checks it to 1e-4 in float32.

P(Yes) is the two-way softmax over the "Yes" and "No" logits at the answer position (the model
is trained to answer exactly one of them; renormalising drops the mass on other tokens, which
would otherwise shrink every score by a query-dependent factor).

Supported: every family of ``chatreid.model.families`` (the model's family supplies the vision
tower, the language model, positions and any extra inputs such as Qwen3-VL's DeepStack features).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from chatreid import prompts
from chatreid.model.families import default_family, family_of


@dataclass
class EncodedImage:
    """One image after the vision tower: merged patch embeddings and its (t, h, w) patch grid."""

    embeds: torch.Tensor  # (n_tokens, hidden)
    grid_thw: torch.Tensor  # (3,) long
    thw: tuple[int, int, int] | None = None  # grid_thw as Python ints (no device sync to read it)
    extras: object = None  # what the family's language model needs besides the embeddings (Qwen3-VL: DeepStack)

    def __post_init__(self):
        if self.thw is None:
            self.thw = tuple(int(v) for v in self.grid_thw.tolist())

    @property
    def num_tokens(self) -> int:
        return int(self.embeds.shape[0])


def single_token(tokenizer, word: str) -> int:
    """The id of ``word`` as the first token of an answer, or ValueError if it is not one token."""
    ids = tokenizer.encode(word, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(
            f"the model's tokenizer splits {word!r} into {len(ids)} tokens {ids}; reading its "
            f"probability from one forward pass needs a single token"
        )
    return ids[0]


def check_model(model, processor) -> dict:
    """Check the model has what scoring needs; return the token ids. Raises ValueError at once.

    Needs: an image placeholder token known to both tokenizer and model config; single tokens for
    the answers "Yes" and "No"; a model of a supported family.
    """
    tok = processor.tokenizer
    family = family_of(model)  # ValueError for a model of no supported family
    image_token = getattr(processor, "image_token", None) or family.image_token
    image_id = tok.convert_tokens_to_ids(image_token)
    if image_id is None or image_id == tok.unk_token_id or image_token not in tok.get_vocab():
        raise ValueError(f"the tokenizer has no image token {image_token!r}; is this a vision-language model?")
    config_id = getattr(model.config, "image_token_id", None)
    if config_id is not None and config_id != image_id:
        raise ValueError(f"image token mismatch: tokenizer says {image_id}, model config says {config_id}")
    return {
        "image": image_id,
        "yes": single_token(tok, prompts.YES),
        "no": single_token(tok, prompts.NO),
    }


@torch.no_grad()
def encode_images(model, processor, images: Sequence, batch_size: int = 16) -> list[torch.Tensor]:
    """Merged patch embeddings of each image (list of (n_tokens_i, hidden)); see ``encode``."""
    return [e.embeds for e in encode(model, processor, images, batch_size)]


def _image_family(processor):
    """The family whose image arithmetic applies: the processor's own (processors made by
    ``chatreid.model`` know it), else the default family's (every registered family shares it)."""
    try:
        return family_of(processor)
    except ValueError:
        return default_family()


def pixel_values(image_processor, images: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` of ``images``, equal to the image processor's (the
    family's fast path, shared with the training collator)."""
    return _image_family(image_processor).pixel_values(image_processor, images)


def processed_size(image_processor, width: int, height: int) -> tuple[int, int]:
    """(height, width) the processor resizes a ``width`` x ``height`` image to; raises the
    processor's own ValueError for an image it cannot read."""
    return _image_family(image_processor).processed_size(image_processor, width, height)


def processor_refusal(image_processor, width: int, height: int) -> str | None:
    """Why the processor cannot read a ``width`` x ``height`` image, in its own words, or None."""
    try:
        processed_size(image_processor, width, height)
    except ValueError as err:
        return str(err)
    return None


def encoded_tokens(image_processor, width: int, height: int) -> int:
    """Tokens the vision tower makes of a ``width`` x ``height`` image; 0 for an image the
    processor refuses, which is never encoded."""
    return _image_family(image_processor).encoded_tokens(image_processor, width, height)


@torch.no_grad()
def encode(model, processor, images: Sequence, batch_size: int = 16) -> list[EncodedImage]:
    """Run the vision tower over ``images`` (PIL), ``batch_size`` images per call (the family's
    ``encode_images``: the patch embedding straight from the image bytes where it can)."""
    out: list[EncodedImage] = []
    family = family_of(model)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        out += [EncodedImage(e, g, t, x) for e, g, t, x in family.encode_images(model, processor.image_processor, chunk)]
    return out


def chat_prompt(processor, text: str, answer_prefix: str = "", history: Sequence[tuple[str, str]] = ()) -> str:
    """The chat-templated prompt for a user ``text`` (with ``<image>`` markers).

    ``history``: earlier (user text, assistant answer) turns, for multi-turn best-choice.
    ``answer_prefix``: text already put in the assistant's mouth (e.g. "Image ").
    """
    messages = []
    for user, assistant in history:
        messages.append({"role": "user", "content": prompts.to_content(user)})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
    messages.append({"role": "user", "content": prompts.to_content(text)})
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + answer_prefix


class SequenceBuilder:
    """Token ids of chat prompts with each image expanded to its number of embedding tokens.

    Equal to the processor's own expansion: the chat text is split at the image placeholder (a
    special token, so tokenisation never crosses it), the pieces are tokenised once and cached,
    and each placeholder becomes ``num_tokens`` copies of the image token.
    """

    def __init__(self, processor, image_token_id: int):
        self.tok = processor.tokenizer
        self.image_token = getattr(processor, "image_token", None) or family_of(processor).image_token
        self.image_token_id = image_token_id
        self._pieces: dict[str, list[list[int]]] = {}

    def pieces(self, chat_text: str) -> list[list[int]]:
        if chat_text not in self._pieces:
            self._pieces[chat_text] = [self.tok.encode(p, add_special_tokens=False) for p in chat_text.split(self.image_token)]
        return self._pieces[chat_text]

    def build(self, chat_text: str, images: Sequence[EncodedImage]) -> list[int]:
        parts = self.pieces(chat_text)
        if len(parts) - 1 != len(images):
            raise ValueError(f"prompt has {len(parts) - 1} image slots but {len(images)} images were given")
        ids = list(parts[0])
        for image, piece in zip(images, parts[1:]):
            ids += [self.image_token_id] * image.num_tokens
            ids += piece
        return ids


@dataclass
class Item:
    """One prompt to score: its token ids and its images (in order), by object identity."""

    ids: list[int]
    images: list[EncodedImage]


def _common_prefix(items: Sequence[Item], image_token_id: int) -> int:
    """Length of the token prefix shared by every item, counting images as equal only if they are
    the same encoded image (the same object): equal ids are not equal embeddings."""
    first = items[0]
    limit = min(len(it.ids) for it in items) - 1  # leave at least the last token to every suffix
    n_img = 0
    for pos in range(max(limit, 0)):
        tid = first.ids[pos]
        for it in items[1:]:
            if it.ids[pos] != tid:
                return pos
        if tid == image_token_id:
            # at the start of an image span, every item must show that same image here
            if pos == 0 or first.ids[pos - 1] != image_token_id:
                img = first.images[n_img]
                if any(len(it.images) <= n_img or it.images[n_img] is not img for it in items[1:]):
                    return pos
                n_img += 1
    return max(limit, 0)


class Reader:
    """Logits of chosen tokens at chosen positions of many prompts, one batched pass each.

    ``read(items, reads)`` with ``reads`` = list of (offset from the end of each sequence, token
    ids) returns, per read, an array (n_items, len(token ids)) of logits. Offset 1 is the last
    token (the next-token distribution after the whole prompt).
    """

    def __init__(self, model, processor, image_token_id: int):
        self.model = model
        self.family = family_of(model)
        self.lm = self.family.language_model(model)
        self.head = model.get_output_embeddings()
        self.image_token_id = image_token_id
        self.pad_id = processor.tokenizer.pad_token_id or 0
        self.merge = model.config.vision_config.spatial_merge_size

    def _embed(self, ids: torch.Tensor, images: list[EncodedImage]) -> torch.Tensor:
        emb = self.lm.get_input_embeddings()(ids)
        if images:
            # kept encodings may live on the CPU (a session's, ``ReIDEngine.search``)
            feats = torch.cat([im.embeds.to(emb.device, emb.dtype) for im in images])
            mask = (ids == self.image_token_id).unsqueeze(-1)
            if int(mask.sum()) != feats.shape[0]:
                raise RuntimeError(f"{int(mask.sum())} image tokens for {feats.shape[0]} image embeddings")
            emb = emb.masked_scatter(mask, feats)
        return emb

    def _positions(self, ids: torch.Tensor, mask: torch.Tensor, rows: Sequence[Sequence[EncodedImage]]) -> torch.Tensor:
        """Position ids of full right-padded sequences (the family's rule; checked against the
        model's own rope index in tests/test_families.py)."""
        return self.family.positions(ids, mask, [[im.thw for im in row] for row in rows], self.merge, self.image_token_id)

    def _lm_inputs(self, ids: torch.Tensor, images: Sequence[EncodedImage]) -> dict:
        """The family's extra language-model inputs for the images of ``ids`` (in order)."""
        extras = [im.extras for im in images]
        if not images or all(x is None for x in extras):
            return {}
        return self.family.lm_inputs(ids, self.image_token_id, extras)

    @torch.no_grad()
    def read(self, items: Sequence[Item], reads: Sequence[tuple[int, Sequence[int]]], batch_size: int = 16,
             progress: Callable[[int, int], None] | None = None, share_prefix: bool = True) -> list[np.ndarray]:
        if not items:
            return [np.zeros((0, len(t)), dtype=np.float32) for _, t in reads]
        device = self.model.device
        min_len = min(len(it.ids) for it in items)
        for offset, _ in reads:
            if not 1 <= offset <= min_len:
                raise ValueError(f"read offset {offset} outside 1..{min_len}")
        prefix_len = _common_prefix(items, self.image_token_id) if share_prefix else 0
        # the prefix must end before the earliest read position of every item
        prefix_len = min(prefix_len, min_len - max(o for o, _ in reads))
        prefix_len = max(prefix_len, 0)
        first = items[0]
        # never split an image's span between prefix and suffix: back off to the span's start
        while 0 < prefix_len < len(first.ids) and first.ids[prefix_len] == self.image_token_id \
                and first.ids[prefix_len - 1] == self.image_token_id:
            prefix_len -= 1
        prefix_images = first.images[:_count_spans(first.ids[:prefix_len], self.image_token_id)]
        cache = None
        if prefix_len:
            ids = torch.tensor([first.ids[:prefix_len]], device=device)
            full = torch.tensor([first.ids], device=device)
            pos = self._positions(full, torch.ones_like(full), [first.images])[:, :, :prefix_len]
            out = self.lm(inputs_embeds=self._embed(ids, prefix_images), position_ids=pos,
                          attention_mask=torch.ones_like(ids), use_cache=True, **self._lm_inputs(ids, prefix_images))
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
        rows = {i: np.zeros((len(items), len(t)), dtype=np.float32) for i, (_, t) in enumerate(reads)}
        weights = [self.head.weight[list(t)] for _, t in reads]
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            lens = [len(it.ids) for it in batch]
            width = max(lens)
            full = torch.tensor([it.ids + [self.pad_id] * (width - n) for it, n in zip(batch, lens)], dtype=torch.long)
            mask = (torch.arange(width)[None, :] < torch.tensor(lens)[:, None]).long()
            full, mask = full.to(device), mask.to(device)
            suffix_images = [im for it in batch for im in it.images[len(prefix_images):]]
            pos = self._positions(full, mask, [it.images for it in batch])[:, :, prefix_len:]
            emb = self._embed(full[:, prefix_len:], suffix_images)
            step_cache = None
            if cache is not None:
                step_cache = copy.deepcopy(cache)
                step_cache.batch_repeat_interleave(len(batch))
            hidden = self.lm(inputs_embeds=emb, position_ids=pos, attention_mask=mask, cache=step_cache,
                             use_cache=cache is not None,
                             **self._lm_inputs(full[:, prefix_len:], suffix_images)).last_hidden_state
            for i, (offset, _) in enumerate(reads):
                at = torch.tensor([n - offset - prefix_len for n in lens], device=device)
                h = hidden[torch.arange(len(batch), device=device), at]
                logits = h @ weights[i].T.to(h.dtype)
                if getattr(self.head, "bias", None) is not None:
                    logits = logits + self.head.bias[list(reads[i][1])]
                rows[i][start:start + len(batch)] = logits.float().cpu().numpy()
            if progress is not None:
                progress(min(start + batch_size, len(items)), len(items))
        return [rows[i] for i in range(len(reads))]


class TurnReader:
    """``Reader.read`` for one conversation read turn after turn, keeping its key/value cache.

    A turn whose tokens extend the previous turn's (the same tokens first, the same encoded images
    as objects) runs only its new tokens through the language model, on top of the kept cache;
    anything else starts over. Best-choice asks this of every page: turn k+1 is turn k's prompt,
    the model's pick ("3<|im_end|>") and the next question. Equal to re-reading the whole prompt
    up to float rounding (the same tokens, positions and causal attention; tests/test_scorer.py).
    """

    def __init__(self, reader: Reader):
        self.reader = reader
        self.ids: list[int] = []
        self.images: list[EncodedImage] = []
        self.cache = None
        self.tokens_run = 0  # language-model tokens computed, for measuring the saving

    def _kept(self, item: Item, last_offset: int) -> int:
        """How many of ``item``'s tokens the cache already holds (0: start over)."""
        n = len(self.ids)
        r = self.reader
        if (self.cache is None or len(item.ids) - last_offset < n or item.ids[:n] != self.ids
                or len(item.images) < len(self.images)
                or any(a is not b for a, b in zip(item.images, self.images))):
            return 0
        if item.ids[n - 1] == r.image_token_id and item.ids[n] == r.image_token_id:
            return 0  # an image span would be cut in two
        return n

    @torch.no_grad()
    def read(self, item: Item, reads: Sequence[tuple[int, Sequence[int]]]) -> list[np.ndarray]:
        r = self.reader
        for offset, _ in reads:
            if not 1 <= offset <= len(item.ids):
                raise ValueError(f"read offset {offset} outside 1..{len(item.ids)}")
        start = self._kept(item, max(o for o, _ in reads))
        if start == 0:
            self.cache = None
        device = r.model.device
        full = torch.tensor([item.ids], device=device)
        pos = r._positions(full, torch.ones_like(full), [item.images])[:, :, start:]
        kept_images = _count_spans(item.ids[:start], r.image_token_id)
        new_images = list(item.images[kept_images:])
        emb = r._embed(full[:, start:], new_images)
        kwargs = {"cache": self.cache} if self.cache is not None else {}
        kwargs.update(r._lm_inputs(full[:, start:], new_images))
        out = r.lm(inputs_embeds=emb, position_ids=pos, attention_mask=torch.ones_like(full), use_cache=True,
                   **kwargs)
        self.cache = out.cache if hasattr(out, "cache") else out.past_key_values
        self.ids, self.images = list(item.ids), list(item.images)
        self.tokens_run += len(item.ids) - start
        hidden = out.last_hidden_state[0]
        results = []
        for offset, tokens in reads:
            h = hidden[len(item.ids) - offset - start]
            logits = h @ r.head.weight[list(tokens)].T.to(h.dtype)
            if getattr(r.head, "bias", None) is not None:
                logits = logits + r.head.bias[list(tokens)]
            results.append(logits.float().cpu().numpy()[None])
        return results


def _count_spans(ids: list[int], token: int) -> int:
    """Number of maximal runs of ``token`` in ``ids`` (= images in a token prefix)."""
    return sum(1 for i, t in enumerate(ids) if t == token and (i == 0 or ids[i - 1] != token))


def yes_no_prompt(task: str, text: str | None = None) -> tuple[str, int]:
    """The Yes/No question for a task and the number of query images it shows before the candidate.

    Image queries (standard, cloth-changing, visible-infrared, and the image part of adaptive):
    the stage-2 one-to-one question "Do these two images <query><candidate> contain the same
    pedestrian identity?" -- the paper prints one image-to-image Yes/No question, used for all
    three settings. Text and attribute queries: the stage-2 text-to-image one-to-one question
    "Does the image <candidate> of the pedestrian match the following caption: "...""; an
    attribute query's caption is its attribute phrases (``prompts.attribute_query``).
    """
    if text is None:
        return prompts.render("i2i_one_to_one"), 1
    return prompts.render("t2i_one_to_one", caption=text), 0


def yes_probability(logits: np.ndarray) -> np.ndarray:
    """Two-way softmax of (Yes, No) logit columns -> P(Yes)."""
    z = logits.astype(np.float64)
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return (e[:, 0] / e.sum(1)).astype(np.float64)


class PairScorer:
    """P(Yes) to "same person?" for one query against many candidates, batched (module docstring)."""

    def __init__(self, model, processor):
        self.model, self.processor = model, processor
        self.tokens = check_model(model, processor)
        self.builder = SequenceBuilder(processor, self.tokens["image"])
        self.reader = Reader(model, processor, self.tokens["image"])
        self._chats: dict[str, str] = {}  # question -> chat-templated prompt (the template is slow to render)

    def score(self, candidates: Sequence[EncodedImage], query_image: EncodedImage | None = None,
              text: str | None = None, batch_size: int = 16, progress=None, share_prefix: bool = True) -> np.ndarray:
        """P(Yes) per candidate. Give ``query_image`` (image question) or ``text`` (caption question)."""
        if (query_image is None) == (text is None):
            raise ValueError("score: give exactly one of query_image and text")
        question, n_query = yes_no_prompt("standard" if text is None else "text_to_image", text)
        if question not in self._chats:
            if len(self._chats) >= 256:
                self._chats.clear()
            self._chats[question] = chat_prompt(self.processor, question)
        chat = self._chats[question]
        lead = [query_image] if n_query else []
        items = [Item(self.builder.build(chat, lead + [c]), lead + [c]) for c in candidates]
        (logits,) = self.reader.read(items, [(1, [self.tokens["yes"], self.tokens["no"]])], batch_size=batch_size,
                                     progress=progress, share_prefix=share_prefix)
        return yes_probability(logits)


@torch.no_grad()
def naive_yes_probability(model, processor, images: Sequence, text: str | None = None) -> float:
    """The reference: one pair, the processor's own path, one full forward pass, full LM head.

    ``images``: [query, candidate] for an image question, [candidate] with ``text`` for a caption
    question. Used by the tests and bench/rerank.py to check the batched scorer.
    """
    tokens = check_model(model, processor)
    question, _ = yes_no_prompt("standard" if text is None else "text_to_image", text)
    chat = chat_prompt(processor, question)
    inputs = processor(text=[chat], images=[im.convert("RGB") for im in images], return_tensors="pt").to(model.device)
    logits = model(**inputs).logits[0, -1]
    pair = torch.stack([logits[tokens["yes"]], logits[tokens["no"]]]).float().cpu().numpy()[None]
    return float(yes_probability(pair)[0])
