"""What each request of the chat app does (``Handlers``), around the engine: the gallery, the chat
turn, starting over and the stateless search. No Gradio here: ``app.py`` makes the page and wires
its events to these handlers; each returns the session and what the page shows.
"""

from __future__ import annotations

import logging
import time

from chatreid.chat.answers import HELP_TEXT, as_text, name_text
from chatreid.chat.conversation import ChatError, Conversation, Reply
from chatreid.chat.engine import ChatEngine
from chatreid.chat.examples import example_galleries, load_example_gallery
from chatreid.chat.sessions import Admission, Session, SessionStore, limit_malloc_arenas, release_freed_memory
from chatreid.chat.settings import Limits
from chatreid.chat.uploads import UploadError, check_message, load_gallery, load_query_images
from chatreid.tasks import AUTO

log = logging.getLogger("chatreid.app")

MAX_SHOWN = 100  # ranked images sent to the page; the rest are summarised in words
EMPTY_MESSAGE = {"text": "", "files": []}  # the message box's value once a message is taken


class RequestTimeout(ChatError):
    """Raised from the engine's progress callback when a search passes the time limit."""



def run_turn(conv: Conversation, engine: ChatEngine, text: str, images, names, task: str, top_k, progress,
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


def ranked_gallery(session: Session) -> list:
    """(image or file, caption) for the results gallery, best first."""
    out = []
    for k, (gi, score) in enumerate(session.ranked[:MAX_SHOWN]):
        item = session.conv.gallery[gi]
        out.append((item.path or item.image, f"#{k + 1} · {score:.3f} · {item.name}"))
    return out


def fit_limits(engine: ChatEngine, limits: Limits | None = None) -> Limits:
    """The app's limits (from the environment unless given), applied to this process and fitted
    to ``engine``: Pillow refuses bombs at the pixel limit, malloc's arenas are capped, and images
    are reduced on arrival to what the model's processor reads at most."""
    limits = limits or Limits.from_env()
    limits.apply_to_pillow()
    limit_malloc_arenas()  # before the server's threads start: RSS follows what sessions hold
    model_max = engine.max_pixels
    if model_max:  # images are reduced on arrival to what this model's processor reads at most
        limits.model_pixels = min(limits.model_pixels, int(model_max))
    return limits


class Handlers:
    """What each request does, around ``engine``.

    One per app: it holds the sessions' store (idle expiry and the memory budget, with the
    ``Admission`` of what each session takes) and the example galleries. Each handler answers in
    the chat; none lets an exception end the session. ``turn`` runs the model-bound part of a chat
    turn (``run_turn``, which the app may wrap, e.g. to run on a Space's GPU). A ``progress``
    argument is the page's progress bar (None: none).
    """

    def __init__(self, engine: ChatEngine, limits: Limits, turn=run_turn):
        self.engine, self.limits, self.turn = engine, limits, turn
        self.count_tokens = engine.count_tokens
        self.store = SessionStore.from_limits(limits)
        self.admission = Admission(self.store, engine)
        self.examples = example_galleries()
        # Why the model's processor cannot read an image (None: it reads all): asked on arrival,
        # so such an image is refused by name, never kept to fail every search.
        self.refusal = engine.image_refusal

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

    def use_gallery(self, items, problems, session: Session, origin: str,
                    example_click: bool = False) -> Session:
        reserve = self.admission.gallery(session, [g.image for g in items])
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
            self.admission.request(session, [g.image for g in gallery_items], images)
            session.conv.set_gallery(gallery_items, "this request")
        else:
            self.admission.query(session, images)
        deadline = time.monotonic() + self.limits.request_seconds
        session.conv, reply = self.turn(session.conv, self.engine, text, images, names,
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
        return session, session.history, ranked_gallery(session)

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
            return session, session.history, ranked_gallery(session)
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
        return session, session.history, ranked_gallery(session)

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
        return session, session.history, ranked_gallery(session)

    # ---- the chat ------------------------------------------------------------------------------
    def chat(self, message, task: str, session: Session, progress=None):
        """One chat turn: ``message`` is {"text", "files"}; files are the query photos."""
        message = message or {}
        text = (message.get("text") or "").strip()
        files = [_path(f) for f in message.get("files") or []]
        cleared = dict(EMPTY_MESSAGE)
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
            return session, session.history, ranked_gallery(session), cleared
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
        return session, session.history, ranked_gallery(session), cleared

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
        return shown, message, dict(EMPTY_MESSAGE)

    def chat_sent(self, message, task: str, session: Session, progress=None):
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
    def search(self, query_images, gallery_files, text: str, task: str, progress=None):
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


def _refused(session: Session | None, err: Exception):
    """The answer to a request that could not even start (the server is busy)."""
    session = session or Session()
    session.say(f"⚠️ {err}")
    return session, session.history, ranked_gallery(session)


def _path(f) -> str:
    """A file value from Gradio (a path string, or a dict/FileData with a path)."""
    if isinstance(f, dict):
        return f.get("path") or f.get("name")
    return getattr(f, "path", None) or str(f)
