"""Captioners for images that have no text of their own (stage 1's last caption source).

A captioner is any callable ``(image: PIL.Image, prompt: str) -> str``. Two ready ones: a local
transformers VLM (``TransformersCaptioner``) and any OpenAI-compatible chat endpoint
(``OpenAICaptioner``, through ``huggingface_hub.InferenceClient``, which speaks that protocol).
``CachedCaptioner`` wraps one with an append-only JSONL file on disk: an interrupted run resumes
where it stopped and never asks twice for the same (captioner, image).

The file belongs to the image store (``default_cache``: ``STORE.captions.jsonl`` beside a store
folder), so every build from that store, of any stage, draws on the same captions: an image is
captioned once, by stage 1 or by whichever build needs it first (``open_cache``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os

from chatreid.atomic import write_text

log = logging.getLogger(__name__)


class TransformersCaptioner:
    """A transformers image-text-to-text model (Hub id or local path), e.g. Qwen2-VL."""

    def __init__(self, model: str, max_new_tokens: int = 160, **pipeline_kwargs):
        from transformers import pipeline

        self.name = f"transformers:{model}"
        self.max_new_tokens = max_new_tokens
        self.pipe = pipeline("image-text-to-text", model=model, **pipeline_kwargs)

    def __call__(self, image, prompt: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": prompt}]}]
        out = self.pipe(text=messages, max_new_tokens=self.max_new_tokens, return_full_text=False)
        return out[0]["generated_text"].strip()


class OpenAICaptioner:
    """Any OpenAI-compatible chat-completions endpoint (vLLM, TGI, a hosted API)."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None,
                 max_tokens: int = 200):
        from huggingface_hub import InferenceClient

        self.name = f"openai:{model}@{base_url}"
        self.model = model
        self.max_tokens = max_tokens
        self.client = InferenceClient(base_url=base_url,
                                      api_key=api_key or os.environ.get("OPENAI_API_KEY"))

    def __call__(self, image, prompt: str) -> str:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=90)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        out = self.client.chat.completions.create(
            model=self.model, max_tokens=self.max_tokens,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                   {"type": "text", "text": prompt}]}])
        return out.choices[0].message.content.strip()


def from_spec(spec: str):
    """``transformers:MODEL`` or ``openai:MODEL@BASE_URL`` (key from $OPENAI_API_KEY)."""
    kind, sep, rest = spec.partition(":")
    if kind == "transformers" and rest:
        return TransformersCaptioner(rest)
    if kind == "openai" and "@" in rest:
        model, _, url = rest.partition("@")
        return OpenAICaptioner(model, url)
    raise ValueError(f"--captioner {spec!r}: expected transformers:MODEL or openai:MODEL@BASE_URL")


def captioning_prompt() -> str:
    """The text given to a captioner beside the image: the paper's captioning prompt, which only
    names the image ("In the person image provided, ...")."""
    from chatreid.prompts import IMAGE, render

    return render("caption").replace(f" {IMAGE}", "")


def caption_images(cached: "CachedCaptioner", image_ids: list[str], load_image,
                   progress: bool = True) -> dict[str, str]:
    """{image id: caption} for ``image_ids``, from the cache or its captioner ("" where it has none)."""
    from tqdm.auto import tqdm

    prompt = captioning_prompt()
    return {iid: cached(iid, load_image, prompt)
            for iid in tqdm(image_ids, desc="captioning", unit="img", disable=not progress or not image_ids)}


def default_cache(store_source: str, out) -> str:
    """Where captions of ``store_source`` are kept: ``STORE.captions.jsonl`` beside a local store
    folder (shared by every build from it); for a Hub store, ``OUT.captions.jsonl`` beside OUT."""
    from pathlib import Path

    if os.path.isdir(str(store_source)):
        store = Path(store_source).absolute()
        return str(store.parent / f"{store.name}.captions.jsonl")
    out = Path(out).absolute()
    return str(out.parent / f"{out.name}.captions.jsonl")


def captioners_in(path: str) -> list[str]:
    """The captioner names a cache file holds captions of (sorted; [] if there is no file)."""
    if not os.path.exists(path):
        return []
    return sorted(CachedCaptioner(None, path, name="").names)


def open_cache(captioner, path: str) -> "CachedCaptioner | None":
    """The captions to build with: ``captioner`` behind the cache at ``path``; without one, the
    captions already in ``path`` (read-only) if it holds one captioner's; None if it holds none.
    A file holding several captioners' captions needs the captioner named (ValueError)."""
    if captioner is not None:
        return CachedCaptioner(captioner, path)
    names = captioners_in(path)
    if not names:
        return None
    if len(names) > 1:
        raise ValueError(f"{path}: holds captions of several captioners ({', '.join(names)}); "
                         "name the one to use with --captioner")
    return CachedCaptioner(None, path, name=names[0])


class CachedCaptioner:
    """``captioner`` with results in ``path`` (JSONL: {"captioner", "image_id", "caption"}).

    ``captioner=None`` reads the captions of ``name`` already in the file and captions nothing
    new: an image it does not hold gets "" (no text)."""

    def __init__(self, captioner, path: str, name: str | None = None):
        self.captioner = captioner
        self.path = str(path)
        self.name = name or getattr(captioner, "name", None) or getattr(
            captioner, "__name__", type(captioner).__name__)
        self.cache: dict[str, str] = {}
        self.names: set[str] = set()  # every captioner the file holds captions of
        self.calls = 0
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    if n == len(lines):  # the last line of an interrupted write: redo that image
                        log.warning("%s: dropping a truncated last line", self.path)
                        # Cut it off, or the next append would continue the broken line.
                        write_text(self.path, "\n".join(lines[:-1]) + "\n")
                        continue
                    raise ValueError(f"{self.path}: line {n} is not JSON") from None
                self.names.add(item.get("captioner"))
                if item.get("captioner") == self.name:
                    self.cache[item["image_id"]] = item["caption"]

    def __call__(self, image_id: str, load_image, prompt: str) -> str:
        if image_id in self.cache:
            return self.cache[image_id]
        if self.captioner is None:
            return ""
        caption = self.captioner(load_image(image_id), prompt)
        if not isinstance(caption, str):
            raise ValueError(f"captioner {self.name} returned {type(caption).__name__} for {image_id}")
        self.calls += 1
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"captioner": self.name, "image_id": image_id,
                                "caption": caption}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.cache[image_id] = caption
        return caption
