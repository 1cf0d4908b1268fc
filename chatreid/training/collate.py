"""Collation: instruction rows (messages + image ids) -> a model batch with answer-only labels.

Rows follow docs/architecture.md: ``messages`` in TRL's conversational vision format, and
``image_ids`` naming images in the image store in placeholder order. Images are never in the
rows; the collator fetches them by id (so 8M prompts do not carry 8M copies of the pixels),
applies the stage's :mod:`resolution <chatreid.training.resolution>` policy, renders the chat
template and runs the processor.

Labels: only the assistant's answers and the ``<|im_end|>`` that closes each (so the model learns
to stop) are trained; the system prompt, user turns, image tokens and padding are ``-100``. We
mask ourselves rather than with TRL's ``assistant_only_loss`` because the collator owns image
resolution anyway, and a token scan over ``<|im_start|>assistant\\n ... <|im_end|>`` is exact for
Qwen's template (verified token by token in tests/test_training.py).

The collator is a plain picklable object, so ``dataloader_num_workers > 0`` runs it in workers.
"""

from __future__ import annotations

import torch

from chatreid.model.families import family_of
from chatreid.training.resolution import ResolutionPolicy, policy_for_stage

IGNORE_INDEX = -100


def count_image_placeholders(messages) -> int:
    """Number of ``{"type": "image"}`` items over all turns (the i-th is ``image_ids[i]``)."""
    n = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            n += sum(1 for item in content if item.get("type") == "image")
    return n


def _clean(messages):
    """Arrow stores every content item with every key (``text: None`` on images); drop the Nones
    so the chat template sees exactly TRL's format."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in item.items() if v is not None} for item in content]
        out.append({"role": m["role"], "content": content})
    return out


class AssistantMasker:
    """Finds the assistant answers in token ids of Qwen's chat template."""

    def __init__(self, tokenizer):
        self.im_start = tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.header = tokenizer.encode("assistant\n", add_special_tokens=False)

    def labels(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` (batch, seq) -> labels with everything but answers set to -100."""
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        h = len(self.header)
        for row, ids in enumerate(input_ids.tolist()):
            i, n = 0, len(ids)
            while i < n:
                if ids[i] == self.im_start and ids[i + 1:i + 1 + h] == self.header:
                    start = i + 1 + h
                    end = start
                    while end < n and ids[end] != self.im_end:
                        end += 1
                    stop = min(end + 1, n)  # the closing <|im_end|> is trained too
                    labels[row, start:stop] = input_ids[row, start:stop]
                    i = stop
                else:
                    i += 1
        return labels


class ReIDCollator:
    """``collator(rows) -> dict`` of tensors for the processor's model family.

    Args:
        processor: a processor of a supported family (``chatreid.model.load_processor``).
        store: an ``ImageStore`` (anything with ``.image(image_id) -> PIL.Image``).
        policy: a :class:`ResolutionPolicy` or a stage number (1, 2, 3).
        max_length: refuse (rather than truncate) samples longer than this many tokens; ``None``
            for no limit. Truncation could cut image tokens and break the image/feature alignment.
        fast_images: preprocess images with the family's fast path (``Family.pixel_values``: the
            processor's arithmetic, one resize per image, ~4x faster) instead of the processor's.
    """

    def __init__(self, processor, store, policy: ResolutionPolicy | int = 3, max_length: int | None = None,
                 fast_images: bool = True):
        self.processor = processor
        self.store = store
        self.policy = policy_for_stage(policy) if isinstance(policy, int) else policy
        self.max_length = max_length
        self.masker = AssistantMasker(processor.tokenizer)
        self.family = family_of(processor)
        self.image_token = self.family.image_token
        self.image_token_id = self.family.image_token_id(processor.tokenizer)
        self.fast = fast_images

    def images_of(self, row) -> list:
        """The row's images from the store, resized by the stage policy (stock-processor path)."""
        self._check(row)
        return [self.policy(self.store.image(i)) for i in row["image_ids"]]

    def _check(self, row) -> None:
        if count_image_placeholders(row["messages"]) != len(row["image_ids"]):
            raise ValueError(f"row has {count_image_placeholders(row['messages'])} image placeholders but "
                             f"{len(row['image_ids'])} image_ids")

    def _encode_fast(self, rows, texts):
        images, targets = [], []
        for row in rows:
            self._check(row)
            for iid in row["image_ids"]:
                img = self.store.image(iid)
                images.append(img)
                targets.append(self.policy.target(img.height, img.width))
        ip = self.processor.image_processor
        pixels, grids = self.family.pixel_values(ip, images, targets) if images else (None, None)
        tokens = (grids.prod(-1) // ip.merge_size ** 2).tolist() if images else []
        expanded, k = [], 0
        for text in texts:
            pieces = text.split(self.image_token)
            out = [pieces[0]]
            for piece in pieces[1:]:
                out += [self.image_token * tokens[k], piece]
                k += 1
            expanded.append("".join(out))
        batch = dict(self.processor.tokenizer(expanded, padding=True, padding_side="right", return_tensors="pt"))
        batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_token_id).long()
        if images:
            batch["pixel_values"] = pixels
            batch["image_grid_thw"] = grids
        return batch

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        texts = [self.processor.apply_chat_template(_clean(row["messages"]), tokenize=False) for row in rows]
        if self.fast:
            batch = self._encode_fast(rows, texts)
        else:
            images = [img for row in rows for img in self.images_of(row)]
            batch = dict(self.processor(text=texts, images=images or None, padding=True, padding_side="right",
                                        return_tensors="pt"))
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            raise ValueError(f"a sample has {batch['input_ids'].shape[1]} tokens, over max_length="
                             f"{self.max_length}; raise max_length or use fewer/smaller images")
        labels = self.masker.labels(batch["input_ids"])
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        labels[batch["input_ids"] == self.image_token_id] = IGNORE_INDEX  # an image inside an answer
        batch["labels"] = labels
        return batch
