"""ChatReID chat: find a person in a gallery by talking to a Re-ID vision-language model.

    python app.py [--model PATH_OR_HUB_ID] [--host 0.0.0.0] [--port 7860] [--share]

A Gradio 6 multimodal chat over ``chatreid.retrieval`` (the engine does all Re-ID; this file is UI
only): upload a gallery, attach the person's photo or describe them, get the answer and the ranked
gallery, refine turn by turn (the chat layer, ``chatreid.chat``: the words, the conversation, the
limits, uploads, sessions and the default model). The API is documented in ``docs/app.md``.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

# Before gradio is imported: no analytics or version look-ups leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from chatreid.chat.answers import HELP_TEXT, as_text, name_text  # noqa: E402
from chatreid.tasks import TASK_NAMES  # noqa: E402
from chatreid.chat.conversation import AUTO, ChatError, Conversation, Reply  # noqa: E402
from chatreid.chat.examples import (EXAMPLES_DIR, example_galleries,  # noqa: E402
                                    load_example_gallery)
from chatreid.chat.sessions import (ClientCookie, SessionStore, client_of,  # noqa: E402
                                    limit_malloc_arenas, release_freed_memory)
from chatreid.chat.settings import (Limits, ModelChoice, SettingsError, app_prefilter,  # noqa: E402
                                    app_default_model, model_card_summary)
from chatreid.chat.uploads import (UploadError, check_message, image_bytes,  # noqa: E402
                                   load_gallery, load_query_images)

log = logging.getLogger("chatreid.app")

# On a ZeroGPU Space the model-bound call must run inside @spaces.GPU (the GPU is attached only
# for its duration); everywhere else the package is absent and the call runs unchanged.
# (The repository's own ``spaces/`` folder imports as an empty namespace package, hence the
# check for ``GPU`` rather than only for ImportError.)
try:
    import spaces  # type: ignore
except ImportError:  # not on a Space
    spaces = None
if getattr(spaces, "GPU", None) is not None:
    _on_gpu = spaces.GPU(duration=120)
else:
    def _on_gpu(fn):
        return fn

MAX_SHOWN = 100  # ranked images sent to the page; the rest are summarised in words
MAX_HISTORY = 200  # chat messages a session keeps (the oldest go first)
# Gallery uploads (decoding and the pre-filter's features) run one at a time, in their own lane
# beside the model's: on 2 cores, two or four at once took 1.5x and 2x as long in all as one by
# one (docs/benchmarks.md), so the last of 8 simultaneous uploads waited longest that way.
GALLERY_CALLS = dict(concurrency_id="gallery", concurrency_limit=1)
# Result captions are shown whole (wrapped), never cut: the person id is at the end of the file
# name, and that is how a person checks a match by eye. The ranked gallery's columns follow the
# width (Gradio's ``columns`` is one number for every width, and its 100 px column minimum made
# 6 columns overflow a phone): 3 on a phone, 4 on a tablet, 6 on a desktop. The example cells
# are Gradio's max-content boxes at least 200 px wide; here they wrap inside their column.
CSS = """
#results .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; }
@media (max-width: 900px) {
    #results .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)) !important; } }
@media (max-width: 540px) {
    #results .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; } }
#results .caption-label { white-space: normal; overflow-wrap: anywhere; max-width: 100%;
                          text-overflow: clip; opacity: 0.9; }
#examples table { width: 100%; table-layout: fixed; }
#examples th, #examples th *, #examples td, #examples td * {
    white-space: normal !important; overflow-wrap: anywhere; text-overflow: clip !important; }
#examples td .container { min-width: 0 !important; width: auto !important; max-width: 100%; }
#examples td .container p { font-size: var(--text-md); }
#examples td .container img { max-width: 100%; }
"""


class RequestTimeout(ChatError):
    """Raised from the engine's progress callback when a search passes the time limit."""


@_on_gpu
def run_turn(conv: Conversation, engine, text: str, images, names, task: str, top_k, progress,
             deadline: float) -> tuple[Conversation, Reply]:
    """The one model-bound call of a chat turn. It returns the conversation because on ZeroGPU it
    runs in a forked worker, where changes to ``conv`` would otherwise be lost."""
    def on_progress(done: int, total: int) -> None:
        # The engine calls this between batches: the cooperative point to enforce the time limit.
        if time.monotonic() > deadline:
            raise RequestTimeout(f"The search passed the time limit and was stopped after {done} of "
                                 f"{total} images. Try a smaller gallery, or set CHATREID_TOP_K so "
                                 "the model scores only the pre-filter's best candidates.")
        if progress is not None:
            progress((done, total), desc="Scoring gallery images with the model", unit="images")

    reply = conv.respond(text, engine, images=images, image_names=names, task=task,
                         progress=on_progress, top_k=top_k)
    return conv, reply


@dataclass
class Session:
    """One browser tab (or one gradio_client): its conversation and the chat transcript."""

    conv: Conversation = field(default_factory=Conversation)
    # The chat starts with the help, which stays at the top as the chat goes on.
    history: list = field(default_factory=lambda: [{"role": "assistant", "content": HELP_TEXT}])
    ranked: list = field(default_factory=list)  # what the results gallery shows
    dropped: str = ""  # why the session's images were dropped, told at its next request
    # The client cookie (``chatreid_client``) of the session's first request (None for a client
    # that keeps no cookies): later requests must carry the same (``claim``).
    bound: bool = False
    owner: str | None = None
    # The memory of the gallery's VLM encodings once all are computed (``engine.encoding_bytes``):
    # budgeted in full when the gallery arrives, though the searches fill them in as they go.
    encodings_reserved: int = 0

    def say(self, text: str) -> None:
        self.history.append({"role": "assistant", "content": text})
        del self.history[:-MAX_HISTORY]

    def nbytes(self) -> int:
        """Memory of the images this session holds (gallery and query photos), with the gallery's
        pre-filter features and its VLM encodings (reserved in full)."""
        feats = self.conv.gallery_features
        return (sum(image_bytes(g.image) for g in self.conv.gallery)
                + sum(image_bytes(im) for im in self.conv.query_images)
                + int(getattr(feats, "nbytes", 0)) + self.encodings_reserved)

    def drop(self, reason: str) -> None:
        """Forget the images (the SessionStore's idle expiry or budget); keep the transcript."""
        self.conv.set_gallery([])
        self.conv.reset()
        self.ranked = []
        self.encodings_reserved = 0
        self.dropped = reason


def _ranked_gallery(session: Session) -> list:
    """(image or file, caption) for the results gallery, best first."""
    out = []
    for k, (gi, score) in enumerate(session.ranked[:MAX_SHOWN]):
        item = session.conv.gallery[gi]
        out.append((item.path or item.image, f"#{k + 1} · {score:.3f} · {item.name}"))
    return out


def _task_choices() -> list[tuple[str, str]]:
    return [("Let the assistant decide from my words", AUTO)] + [
        (name[0].upper() + name[1:], key) for key, name in TASK_NAMES.items()]


def model_name(name_or_path: str, origin: str) -> str:
    """What the page calls the model: a Hub id as it is, a local checkpoint by its folder's name
    (the server's own paths are not shown to visitors)."""
    return Path(name_or_path).name if origin != "hub" else name_or_path


def _model_markdown(engine, choice: ModelChoice) -> str:
    info = getattr(engine, "model_info", {}) or {}
    where = {"--model": "chosen with --model", "CHATREID_MODEL": "chosen with CHATREID_MODEL",
             "demo": "the embedded demo model", "tiny": "the tiny test model"}.get(choice.source, "")
    name = model_name(info.get("name_or_path", choice.name_or_path), info.get("origin", "local"))
    line = (f"**Model:** `{name}` — origin: "
            f"{info.get('origin', 'unknown')}, architecture: {info.get('architecture', 'unknown')}"
            f" ({where}).")
    return line + (f"\n\n> {choice.notice}" if choice.notice else "")


def _banner_markdown(choice: ModelChoice) -> str:
    """The model's own description: the first paragraph of its model card (README.md) when it is
    a local folder. This is where the embedded demo model introduces itself."""
    summary = model_card_summary(choice.name_or_path)
    if summary:
        return summary
    return ("*About the model: the embedded ChatReID demo model will describe itself here "
            "(first paragraph of its model card).*")


def fit_limits(engine, limits: Limits | None = None) -> Limits:
    """The app's limits (from the environment unless given), applied to this process and fitted
    to ``engine``: Pillow refuses bombs at the pixel limit, malloc's arenas are capped, and images
    are reduced on arrival to what the model's processor reads at most."""
    limits = limits or Limits.from_env()
    limits.apply_to_pillow()
    limit_malloc_arenas()  # before the server's threads start: RSS follows what sessions hold
    model_max = getattr(engine, "max_pixels", None)
    if model_max:  # images are reduced on arrival to what this model's processor reads at most
        limits.model_pixels = min(limits.model_pixels, int(model_max))
    return limits


def _images_bytes(images) -> int:
    return sum(image_bytes(im) for im in images)


class Handlers:
    """What each request does, around ``engine`` (anything with ``search``/``compare``/``describe``).

    One per app: it holds the sessions' store (idle expiry and the memory budget) and the example
    galleries. Each handler answers in the chat; none lets an exception end the session.
    """

    def __init__(self, engine, limits: Limits):
        self.engine, self.limits = engine, limits
        self.count_tokens = getattr(engine, "count_tokens", None)
        # Engines that keep no encodings: None.
        self.encoding_bytes = getattr(engine, "encoding_bytes", None)
        self.store = SessionStore.from_limits(limits)
        self.examples = example_galleries()
        # Why the model's processor cannot read an image (None: it reads all): asked on arrival,
        # so such an image is refused by name, never kept to fail every search.
        self.refusal = getattr(engine, "image_refusal", None)

    # ---- what every request shares ------------------------------------------------------------
    def begin(self, session: Session | None) -> Session:
        """Every request starts here: idle sessions expire, this one is registered (or Busy)."""
        session = session or Session()
        self.store.begin(session)
        if session.dropped:
            session.say(f"This session's gallery and query were dropped because {session.dropped}. "
                        "Upload the gallery again (or pick an example) to go on.")
            session.dropped = ""
        return session

    def encodings_of(self, images) -> int:
        """Memory of the VLM encodings of ``images`` once the searches have made them (kept with
        the session; counted from the image sizes alone). 0 for an engine that keeps none."""
        return self.encoding_bytes(images) if self.encoding_bytes is not None else 0

    def use_gallery(self, items, problems, session: Session, origin: str,
                    example_click: bool = False) -> Session:
        old = _images_bytes(g.image for g in session.conv.gallery) + session.encodings_reserved
        images = [g.image for g in items]
        reserve = self.encodings_of(images)
        self.store.admit(session, _images_bytes(images) + reserve, replaces_bytes=old)
        had_query = session.conv.has_query
        session.conv.set_gallery(items, origin)  # a new gallery starts a new query
        session.encodings_reserved = reserve
        session.ranked = []
        # The pre-filter's features now, in the upload (up to 4 at once, outside the model
        # queue), kept with the session: its searches then only run the model. The VLM's
        # encodings are made by the first search that scores each image (in the model queue)
        # and kept with the session too.
        session.conv.prepare(self.engine)
        text = f"Gallery ready: {len(items)} images from {origin}."
        if problems:
            text += "\n\nSkipped: " + "; ".join(name_text(p) for p in problems) + "."
        if had_query:
            text += "\n\nA new gallery starts a new query: the earlier one was cleared."
        session.say(text + ("\n\nPress Enter to send the example's request." if example_click else
                            " Now attach a photo of the person or describe them."))
        return session

    def run_message(self, session: Session, text: str, files: list[str], task: str, progress,
                    gallery_items=None) -> Reply:
        """One message's turn, for ``chat`` and ``search`` alike: load its photos, make room for
        them (and for ``gallery_items``, a stateless search's gallery, set before the turn), and
        run the turn under the time limit. ``UploadError`` for photos or memory refused."""
        images, names = load_query_images(files, self.limits, self.refusal)
        if gallery_items is not None:
            gallery = [g.image for g in gallery_items]
            session.encodings_reserved = self.encodings_of(gallery)
            self.store.admit(session, _images_bytes(gallery + images) + session.encodings_reserved)
            session.conv.set_gallery(gallery_items, "this request")
        elif images:
            self.store.admit(session, _images_bytes(images),
                             replaces_bytes=_images_bytes(session.conv.query_images))
        deadline = time.monotonic() + self.limits.request_seconds
        session.conv, reply = run_turn(session.conv, self.engine, text, images, names,
                                       task or AUTO, self.limits.top_k, progress, deadline)
        return reply

    # ---- the gallery ---------------------------------------------------------------------------
    def upload_gallery(self, files, session: Session):
        """Load the uploaded images and/or zips as the gallery."""
        if not files:  # every file was removed from the box
            return self.clear_gallery(session)
        try:
            session = self.begin(session)
        except UploadError as err:  # Busy: this session could not even be registered
            return _refused(session, err)
        try:
            items, problems = load_gallery([_path(f) for f in files or []], self.limits,
                                           self.refusal)
            session = self.use_gallery(items, problems, session, "your upload")
        except UploadError as err:  # refused: the gallery in use is what it was, and said so
            session.say(f"⚠️ {name_text(str(err))} {session.conv.gallery_line()}")
        finally:
            self.store.end(session)
            release_freed_memory()  # what decoding the full-size files used is free again
        return session, session.history, _ranked_gallery(session)

    def clear_gallery(self, session: Session):
        """The upload box was emptied: forget the gallery, and the query and ranking with it."""
        session = session or Session()
        had_query = session.conv.has_query
        session.conv.set_gallery([])
        session.ranked = []
        session.encodings_reserved = 0
        session.say("Gallery cleared" + (", with the query" if had_query else "")
                    + ". Upload photos or a zip, or pick an example gallery.")
        return session, session.history, []

    def _example_origin(self, name: str) -> str:
        return f"the example “{self.examples[name].title}”" if name in self.examples else name

    def example_gallery(self, name: str, session: Session, example_click: bool = False):
        """Load a built-in example gallery by name (a new gallery: a new query)."""
        if not name:
            session = session or Session()
            return session, session.history, _ranked_gallery(session)
        try:
            session = self.begin(session)
        except UploadError as err:
            return _refused(session, err)
        try:
            items = load_example_gallery(name, self.limits, refusal=self.refusal)
            session = self.use_gallery(items, [], session, self._example_origin(name),
                                       example_click)
        except UploadError as err:
            session.say(f"⚠️ {name_text(str(err))} {session.conv.gallery_line()}")
        finally:
            self.store.end(session)
        return session, session.history, _ranked_gallery(session)

    def example_clicked(self, name: str, session: Session):
        """An example of the table was clicked (it filled the message and names its gallery): a
        new example starts a new query, on its gallery (loaded unless it already is)."""
        session = session or Session()
        if not name or session.conv.gallery_origin != self._example_origin(name):
            return self.example_gallery(name, session, example_click=True)
        if session.conv.has_query:
            session.conv.reset()
            session.ranked = []
            session.say("A new example starts a new query: the earlier one was cleared. Press "
                        "Enter to send the example's request.")
        return session, session.history, _ranked_gallery(session)

    # ---- the chat ------------------------------------------------------------------------------
    def chat(self, message, task: str, session: Session, progress=gr.Progress()):
        """One chat turn: ``message`` is {"text", "files"}; files are the query photos."""
        message = message or {}
        text = (message.get("text") or "").strip()
        files = [_path(f) for f in message.get("files") or []]
        cleared = gr.MultimodalTextbox(value={"text": "", "files": []})
        try:
            session = self.begin(session)
        except UploadError as err:
            return (*_refused(session, err), cleared)
        try:
            # Checked before anything else: an over-long message is neither run nor kept (the
            # transcript shows its length, not its text).
            check_message(text, self.limits, self.count_tokens)
        except UploadError as err:
            session.history.append({"role": "user", "content": [
                f"*(a message of {len(text):,} characters, not shown)*"]})
            session.say(f"⚠️ {err}")
            self.store.end(session)
            return session, session.history, _ranked_gallery(session), cleared
        user = [as_text(text)] if text else []
        user += [{"path": f} for f in files]
        if user:
            session.history.append({"role": "user", "content": user})
        try:
            reply = self.run_message(session, text, files, task, progress)
        except UploadError as err:
            reply = Reply(f"⚠️ {name_text(str(err))}", ok=False)
        except Exception as err:  # the model failed: say so, keep the session
            log.exception("chat turn failed")
            reply = Reply(f"⚠️ Something went wrong while answering ({type(err).__name__}: "
                          f"{name_text(str(err))}). The session is still open; try again or start "
                          "over.", ok=False)
        finally:
            self.store.end(session)
        session.say(reply.text if reply.ok else (reply.text if reply.text.startswith("⚠️")
                                                  else "⚠️ " + reply.text))
        if reply.ranked is not None:
            session.ranked = reply.ranked
        return session, session.history, _ranked_gallery(session), cleared

    def echo(self, message, session: Session):
        """Shown at once, before the turn waits for the model: the person's message (or its
        length, if too long to be used) and a line saying the work has started."""
        session = session or Session()
        message = message or {}
        text = (message.get("text") or "").strip()
        files = [_path(f) for f in message.get("files") or []]
        if len(text) > self.limits.max_message_chars:
            user = [f"*(a message of {len(text):,} characters, not shown)*"]
        else:
            user = ([as_text(text)] if text else []) + [{"path": f} for f in files]
        shown = list(session.history) + ([{"role": "user", "content": user}] if user else [])
        shown.append({"role": "assistant", "content": "⏳ Working on it…"})
        return shown, message, gr.MultimodalTextbox(value={"text": "", "files": []})

    def chat_sent(self, message, task: str, session: Session, progress=gr.Progress()):
        """The page's chat turn: the message echoed by ``echo``, answered as ``/chat`` does."""
        session, history, ranked, _ = self.chat(message, task, session, progress)
        return session, history, ranked

    def reset(self, session: Session):
        """Start over: clear the query, the ranking and the transcript; keep the gallery."""
        session = session or Session()
        session.conv.reset()
        session.ranked, session.history = [], []
        session.say("Starting over. " + HELP_TEXT)
        return session, session.history, []

    # ---- scripts -------------------------------------------------------------------------------
    def search(self, query_images, gallery_files, text: str, task: str, progress=gr.Progress()):
        """Stateless search for scripts: returns {"task", "answer", "ranking": [{rank, name, score}]}."""
        if not query_images and not (text or "").strip():
            return {"ok": False, "error": "Nothing to search for: give query images, a request "
                                          "text, or both."}
        session = Session()
        try:
            check_message(text or "", self.limits, self.count_tokens)
            self.store.begin(session)
            items, problems = load_gallery([_path(f) for f in gallery_files or []], self.limits,
                                           self.refusal)
            reply = self.run_message(session, text or "", [_path(f) for f in query_images or []],
                                     task, progress, gallery_items=items)
        except UploadError as err:
            return {"ok": False, "error": str(err)}
        finally:
            self.store.forget(session)  # nothing of a stateless request is kept
        if not reply.ok or reply.ranked is None:
            return {"ok": False, "error": reply.text}
        return {"ok": True, "task": reply.task, "answer": reply.text, "skipped": problems,
                "ranking": [{"rank": k + 1, "index": gi, "name": session.conv.gallery[gi].name,
                             "score": float(s)} for k, (gi, s) in enumerate(reply.ranked or [])]}


@dataclass
class Page:
    """The page's components that events connect: made by ``_page``, wired by ``_connect``."""

    state: gr.State
    gallery_files: gr.File
    example_pick: gr.Dropdown
    task: gr.Dropdown
    reset_btn: gr.Button
    chatbot: gr.Chatbot
    box: gr.MultimodalTextbox
    results: gr.Gallery
    api: dict  # API-only components (hidden) of the /search and /chat endpoints
    sent: gr.State  # the message the page just sent, between echo and the turn
    examples: gr.Examples | None = None  # the examples table (its click starts a new query)


def _setup_column(limits: Limits, examples) -> tuple:
    """The left column: 1 · the gallery (upload or example), 2 · the task preset, start over."""
    gr.Markdown("### 1 · Gallery")
    # No file_types: Gradio would refuse a whole upload over one other file; load_gallery skips
    # and names what is not an image (as /search does).
    gallery_files = gr.File(file_count="multiple",
                            label=f"Upload photos or a zip (max {limits.max_gallery} "
                                  f"images, {limits.max_file_mb} MB a file)",
                            elem_id="gallery-upload", height=160)
    example_pick = gr.Dropdown(
        choices=[(e.title, e.name) for e in examples.values()], value=None,
        label="…or a built-in example gallery", elem_id="example-gallery")
    gr.Markdown("### 2 · Task")
    task = gr.Dropdown(choices=_task_choices(), value=AUTO, label="Re-ID setting",
                       elem_id="task")
    reset_btn = gr.Button("Start over", variant="secondary")
    return gallery_files, example_pick, task, reset_btn


def _chat_column() -> tuple:
    """The right column: the chat, the message box (3 · ask) and the help, which stays there
    whatever the chat shows."""
    chatbot = gr.Chatbot(value=[{"role": "assistant", "content": HELP_TEXT}],
                         label="ChatReID", height=420, elem_id="chat",
                         feedback_options=None)
    box = gr.MultimodalTextbox(
        file_types=["image"], file_count="multiple", sources=["upload"],
        placeholder="3 · Attach the person's photo and ask, or describe them "
                    "(e.g. a woman in a red top with a black backpack)",
        label="Message", show_label=False, elem_id="ask")
    with gr.Accordion("Help: what you can ask", open=False, elem_id="help"):
        gr.Markdown(HELP_TEXT)
    return chatbot, box


def _api_components() -> dict:
    """API-only components (never shown) for the stateless /search endpoint and /chat."""
    with gr.Row(visible=False):
        return {
            "query": gr.File(file_count="multiple", label="query images"),
            "gallery": gr.File(file_count="multiple", label="gallery images or zips"),
            "text": gr.Textbox(label="request"),
            "task": gr.Dropdown(choices=[AUTO, *TASK_NAMES], value=AUTO, label="task"),
            "out": gr.JSON(label="result"),
            "search": gr.Button("search"),
            "box": gr.MultimodalTextbox(file_count="multiple", label="message"),
            "chat": gr.Button("chat"),
        }


def _page(engine, choice: ModelChoice, limits: Limits, examples) -> Page:
    """The page, top to bottom: title and model, the gallery and task column beside the chat, the
    ranked gallery, the examples; then the hidden API components."""
    # Our SessionStore drops an idle session's images after CHATREID_IDLE_MINUTES; Gradio
    # forgets the (then small) session object itself an hour later.
    state = gr.State(Session(), time_to_live=limits.idle_minutes * 60 + 3600)
    gr.Markdown("# ChatReID — find a person by talking to a Re-ID model")
    gr.Markdown(_model_markdown(engine, choice), elem_id="model-info")
    gr.Markdown(_banner_markdown(choice), elem_id="model-banner")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            gallery_files, example_pick, task, reset_btn = _setup_column(limits, examples)
        with gr.Column(scale=2, min_width=400):
            chatbot, box = _chat_column()
    # The gallery's own label would float over its first row (and wrap over two on a phone).
    gr.Markdown("### Ranked gallery\nBest first: rank · score · file. Click an image to open it "
                "large.", elem_id="results-title")
    results = gr.Gallery(label="Ranked gallery", show_label=False, columns=6, height="auto",
                         object_fit="contain", elem_id="results", allow_preview=True,
                         preview=False)
    table = None
    if examples:
        table = gr.Examples(examples=_example_rows(examples), inputs=[box, example_pick],
                    label="Examples (pick one: it loads the gallery and fills the message; "
                          "then press Enter)", elem_id="examples")
    api = _api_components()
    return Page(state, gallery_files, example_pick, task, reset_btn, chatbot, box, results, api,
                sent=gr.State(None), examples=table)


def _connect(page: Page, h: Handlers, limits: Limits) -> None:
    """The page's events and the API's endpoints, each to its handler."""
    state, chatbot, results, api = page.state, page.chatbot, page.results, page.api
    model_calls = dict(concurrency_id="model", concurrency_limit=limits.concurrency)
    # New uploads add to the files already in the box; removing one reloads the rest.
    page.gallery_files.upload(_bound(h.upload_gallery), [page.gallery_files, state],
                              [state, chatbot, results], api_name="upload_gallery",
                              **GALLERY_CALLS)
    page.gallery_files.delete(_bound(h.upload_gallery), [page.gallery_files, state],
                              [state, chatbot, results], api_visibility="private",
                              **GALLERY_CALLS)
    page.gallery_files.clear(_bound(h.clear_gallery), [state], [state, chatbot, results],
                             api_visibility="private")
    # A person's pick in the menu (``input``, not ``change``: an example's click sets the menu
    # too, and its own event below loads the gallery, so the two never race).
    page.example_pick.input(_bound(h.example_gallery), [page.example_pick, state],
                            [state, chatbot, results], api_name="example_gallery",
                            **GALLERY_CALLS)
    if page.examples is not None:
        page.examples.load_input_event.then(_bound(h.example_clicked), [page.example_pick, state],
                                            [state, chatbot, results], api_visibility="private",
                                            **GALLERY_CALLS)
    # On the page: the message appears at once (not queued), then the turn runs in the model
    # queue with a progress bar. Scripts call /chat, the same turn in one request.
    page.box.submit(_bound(h.echo), [page.box, state], [chatbot, page.sent, page.box],
                    queue=False, api_visibility="private").then(
        _bound(h.chat_sent), [page.sent, page.task, state], [state, chatbot, results],
        api_visibility="private", **model_calls)
    api["chat"].click(_bound(h.chat), [api["box"], page.task, state],
                      [state, chatbot, results, api["box"]], api_name="chat", **model_calls)
    page.reset_btn.click(_bound(h.reset), [state], [state, chatbot, results], api_name="reset")
    api["search"].click(h.search, [api["query"], api["gallery"], api["text"], api["task"]],
                        api["out"], api_name="search", **model_calls)


def build_app(engine, choice: ModelChoice, limits: Limits | None = None) -> gr.Blocks:
    """The chat app: Gradio Blocks around ``engine`` (anything with ``search``/``compare``/
    ``describe``), its limits fitted to the engine, its handlers, page, events and queue."""
    limits = fit_limits(engine, limits)
    handlers = Handlers(engine, limits)
    with gr.Blocks(title="ChatReID", delete_cache=(3600, 3600)) as blocks:
        _connect(_page(engine, choice, limits, handlers.examples), handlers, limits)
    blocks.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    blocks.chatreid_limits = limits  # launch() reads max_file_size from here
    blocks.chatreid_sessions = handlers.store  # for tests and the load benchmark
    return blocks


class ForeignSession(gr.Error):
    """A request carried a session id whose session belongs to another client."""


def claim(session: Session | None, client: str | None) -> Session | None:
    """``session`` for a request from ``client`` (its ``chatreid_client`` cookie): the first
    request binds the session to it; a later one from another client is refused with
    ForeignSession, and the session is left as it was (not answered, not replaced)."""
    if session is None:
        return session
    if not session.bound:
        session.bound, session.owner = True, client
    elif session.owner != client:
        log.warning("refused a request for a session bound to another client")
        raise ForeignSession("This session belongs to another browser or client. Reload the page "
                             "(or make a new Client) to start your own session.",
                             print_exception=False)
    return session


def _bound(handler):
    """``handler`` (which takes the session state as its ``session`` argument) with that session
    claimed for the request's client first (``claim``). Gradio passes the request to the
    ``request: gr.Request`` parameter this adds; the handler itself is unchanged."""
    sig = inspect.signature(handler)
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=gr.Request)
    bound_sig = sig.replace(parameters=[*sig.parameters.values(), request])

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        call = bound_sig.bind(*args, **kwargs)
        req = call.arguments.pop("request", None)
        call.arguments["session"] = claim(call.arguments.get("session"), client_of(req))
        return handler(*call.args, **call.kwargs)

    wrapper.__signature__ = bound_sig
    # Gradio finds the request parameter by its type hint
    wrapper.__annotations__ = {**handler.__annotations__, "request": gr.Request}
    return wrapper


def _refused(session: Session | None, err: Exception):
    """The answer to a request that could not even start (the server is busy)."""
    session = session or Session()
    session.say(f"⚠️ {err}")
    return session, session.history, _ranked_gallery(session)


def _path(f) -> str:
    """A file value from Gradio (a path string, or a dict/FileData with a path)."""
    if isinstance(f, dict):
        return f.get("path") or f.get("name")
    return getattr(f, "path", None) or str(f)


def _example_rows(examples) -> list:
    rows = []
    for e in examples.values():
        for p in e.prompts:
            files = [str(EXAMPLES_DIR / e.name / "query" / p["query"])] if p.get("query") else []
            rows.append([{"text": p["text"], "files": files}, e.name])
    return rows


def launch(blocks: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False,
           **kwargs):
    """Launch with the app's safety settings: upload size, allowed paths, bounded sessions."""
    from starlette.middleware import Middleware

    limits: Limits = blocks.chatreid_limits
    return blocks.launch(
        server_name=host, server_port=port, share=share,
        max_file_size=f"{limits.max_file_mb}mb",
        allowed_paths=[str(EXAMPLES_DIR)] if EXAMPLES_DIR.is_dir() else [],
        state_session_capacity=limits.max_sessions,  # also enforced by the app's SessionStore
        # every client gets a random cookie, and each session is bound to it (``claim``)
        app_kwargs={"middleware": [Middleware(ClientCookie)]},
        footer_links=["api", "settings"], css=CSS, **kwargs)


def load_engine(choice: ModelChoice):
    from chatreid.retrieval import ReIDEngine

    # ReIDEngine loads safetensors only and never passes trust_remote_code.
    return ReIDEngine.from_pretrained(choice.name_or_path, prefilter=app_prefilter(choice.name_or_path))


def _port(text: str) -> int:
    """``--port``: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, not {text!r}")
    return port


def main(argv=None) -> None:
    """Start the app. Bad input (an option, a setting, a model that does not load, a port that is
    taken) ends in one line on stderr and exit status 2, before or instead of the server."""
    import sys

    from chatreid.usage import USAGE_ERROR, ArgumentParser

    def fail(message: str):
        print(f"app.py: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_ERROR)

    parser = ArgumentParser(prog="app.py", description="ChatReID chat (Gradio).")
    parser.add_argument("--model", help="a ChatReID or Qwen2-VL checkpoint: Hub id or local folder "
                        "(default: $CHATREID_MODEL, else the demo model, else the tiny test model)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME"),
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=_port, default=None, metavar="1-65535",
                        help="port (default 7860 or the next free)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:  # every CHATREID_* setting, checked before the model is loaded
        limits = Limits.from_env()
    except SettingsError as err:
        fail(str(err))
    from chatreid.hub import check_local
    from chatreid.retrieval.prefilter import check_prefilter

    for name in Limits.unknown_settings():
        log.warning("%s is not a setting the app knows (see docs/app.md); it is ignored", name)
    choice = app_default_model(args.model)
    if choice.notice:
        log.warning(re.sub(r"[*`]", "", choice.notice))
    try:  # a mistyped path is named at once, with no Hub request
        check_local(choice.name_or_path, choice.source if choice.source in ("--model", "CHATREID_MODEL") else "model")
    except FileNotFoundError as err:
        fail(str(err))
    try:
        check_prefilter(app_prefilter(choice.name_or_path))
    except ValueError as err:
        fail(f"CHATREID_PREFILTER: {err}")
    log.info("loading model %s (%s)", choice.name_or_path, choice.source)
    try:
        engine = load_engine(choice)
    except (ValueError, OSError) as err:  # missing, not a checkpoint, not loadable: one line
        fail((str(err).strip().splitlines() or [type(err).__name__])[0])
    try:
        # Gradio's own start-up lines are silenced: they name launch(share=True), not --share
        blocks = build_app(engine, choice, limits)
        launch(blocks, host=args.host, port=args.port, share=args.share, quiet=True, prevent_thread_lock=True)
    except OSError as err:  # the port is taken, the interface does not exist
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if "empty port" in first:  # Gradio's words name launch(server_port=...), not the app's option
            first = f"port {args.port or 'range 7860-7959'} is taken: pass --port with a free one"
        fail(first)
    print(f"* Running on local URL:  {blocks.local_url}", flush=True)
    if blocks.share_url:
        print(f"* Running on public URL: {blocks.share_url} (temporary; anyone with it can use the app)", flush=True)
    elif not args.share:
        print("* To open a public link too, start the app with --share", flush=True)
    blocks.block_thread()


if __name__ == "__main__":
    main()
