"""The sessions the app holds images for: what one holds (``Session``), idle expiry and one memory
budget for all of them (``SessionStore``), what a session may take (``Admission``: its images and
the VLM encodings the engine will keep of them, admitted against the budget), the process's own
memory (glibc's malloc arenas) kept in line with what the sessions hold, and the browser cookie a
session is bound to (``claim``: its id alone does not open it).
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import logging
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

from chatreid.chat.answers import HELP_TEXT
from chatreid.chat.conversation import Conversation
from chatreid.chat.engine import ChatEngine, keeps_encodings
from chatreid.chat.settings import Limits
from chatreid.chat.uploads import UploadError, image_bytes

log = logging.getLogger("chatreid.app")

_MB = 1024 * 1024


class Busy(UploadError):
    """The server's session budget is used up by sessions that are all active."""


MAX_HISTORY = 200  # chat messages a session keeps (the oldest go first)


def images_bytes(images) -> int:
    return sum(image_bytes(im) for im in images)


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
        return (images_bytes(g.image for g in self.conv.gallery) + images_bytes(self.conv.query_images)
                + int(getattr(feats, "nbytes", 0)) + self.encodings_reserved)

    def drop(self, reason: str) -> None:
        """Forget the images (the SessionStore's idle expiry or budget); keep the transcript."""
        self.conv.set_gallery([])
        self.conv.reset()
        self.ranked = []
        self.encodings_reserved = 0
        self.dropped = reason


class SessionStore:
    """The sessions the app holds images for, with an idle time and a global budget.

    A session is anything with ``nbytes()`` (the memory of the images it holds) and
    ``drop(reason)`` (forget those images and remember to tell the person why). The app calls
    :meth:`begin` at the start of every request and :meth:`end` after it; :meth:`admit` before a
    session takes more images. Sessions idle longer than ``idle_seconds`` are dropped at the next
    request of anyone; when the budget (bytes or number of sessions) would be passed, the sessions
    idle longest are dropped first; if that is not enough (every other session is in the middle of
    a request), :class:`Busy` is raised and nothing is taken.
    """

    def __init__(self, budget_bytes: int, idle_seconds: float, max_sessions: int,
                 clock=time.monotonic):
        self.budget_bytes, self.idle_seconds, self.max_sessions = budget_bytes, idle_seconds, max_sessions
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, dict] = {}  # id(session) -> {"session", "last", "active"}

    @classmethod
    def from_limits(cls, limits: Limits, clock=time.monotonic) -> "SessionStore":
        return cls(limits.memory_mb * _MB, limits.idle_minutes * 60, limits.max_sessions, clock)

    def __len__(self) -> int:
        return len(self._entries)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(e["session"].nbytes() for e in self._entries.values())

    def _drop(self, key: int, reason: str) -> None:
        entry = self._entries.pop(key)
        entry["session"].drop(reason)

    def _sweep(self, now: float) -> None:
        for key, e in list(self._entries.items()):
            if not e["active"] and now - e["last"] > self.idle_seconds:
                self._drop(key, f"it was idle for more than {self.idle_seconds / 60:g} minutes")

    def begin(self, session) -> None:
        """A request of ``session`` starts: expire idle sessions, then register this one (which
        may drop the longest-idle session, or raise Busy, at the session limit)."""
        with self._lock:
            now = self.clock()
            self._sweep(now)
            key = id(session)
            if key not in self._entries:
                self._make_room(key, 0, sessions=1)
                self._entries[key] = {"session": session, "last": now, "active": 0}
            e = self._entries[key]
            e["active"] += 1
            e["last"] = now

    def forget(self, session) -> None:
        """Stop tracking ``session`` (a one-off request's session, once answered)."""
        with self._lock:
            self._entries.pop(id(session), None)
            idle = self._idle()
        if idle:
            release_freed_memory()

    def end(self, session) -> None:
        with self._lock:
            e = self._entries.get(id(session))
            if e is not None:
                e["active"] = max(0, e["active"] - 1)
                e["last"] = self.clock()
            idle = self._idle()
        if idle:
            # No request is running: what the finished ones allocated (decoded uploads, the
            # model's activations) is free, so hand it back; RSS then follows what sessions hold.
            release_freed_memory()

    def _idle(self) -> bool:
        return not any(e["active"] for e in self._entries.values())

    def admit(self, session, new_bytes: int, replaces_bytes: int = 0) -> None:
        """``session`` is about to hold ``new_bytes`` more image memory (``replaces_bytes`` of its
        current images go): make room by dropping the longest-idle other sessions, or raise Busy."""
        with self._lock:
            self._make_room(id(session), new_bytes - replaces_bytes, sessions=0)

    def _make_room(self, key: int, extra_bytes: int, sessions: int) -> None:
        if extra_bytes > self.budget_bytes:
            raise Busy(f"This needs {extra_bytes / _MB:,.0f} MB of image memory, more than the "
                       f"server's whole budget ({self.budget_bytes / _MB:,.0f} MB, "
                       "CHATREID_MEMORY_MB). Nothing was loaded; upload fewer images.")
        def over() -> bool:
            held = sum(e["session"].nbytes() for e in self._entries.values())
            return (held + extra_bytes > self.budget_bytes
                    or len(self._entries) + sessions > self.max_sessions)
        while over():
            idle = [(e["last"], k) for k, e in self._entries.items() if not e["active"] and k != key]
            if not idle:
                raise Busy("The server is busy: its memory for galleries is in use by other people's "
                           "searches right now. Nothing was loaded; please try again in a minute.")
            self._drop(min(idle)[1], "the server needed the memory for other people's galleries "
                                     "(it drops the sessions idle longest first)")


class Admission:
    """What a session may take, admitted against the store's budget before it takes it: images,
    and the VLM encodings ``engine`` will keep of a gallery (counted from the image sizes alone
    and reserved in full when the gallery arrives). ``Busy`` when there is no room."""

    def __init__(self, store: SessionStore, engine: ChatEngine):
        self.store, self.engine = store, engine
        self.keeps_encodings = keeps_encodings(engine)

    def encodings_of(self, images) -> int:
        """Memory of the VLM encodings of ``images`` once the searches have made them; 0 for an
        engine that keeps none."""
        return self.engine.encoding_bytes(images) if self.keeps_encodings else 0

    def gallery(self, session: Session, images) -> int:
        """Room for ``images`` as the session's new gallery (its old one goes); returns the
        encodings reserved for them, which the caller records once the gallery is set."""
        old = images_bytes(g.image for g in session.conv.gallery) + session.encodings_reserved
        reserve = self.encodings_of(images)
        self.store.admit(session, images_bytes(images) + reserve, replaces_bytes=old)
        return reserve

    def query(self, session: Session, images) -> None:
        """Room for ``images`` as the session's new query photos (the old ones go)."""
        if images:
            self.store.admit(session, images_bytes(images), replaces_bytes=images_bytes(session.conv.query_images))

    def request(self, session: Session, gallery, images) -> None:
        """Room for a one-off request's gallery and query photos together (a fresh session);
        the gallery's encodings are reserved on the session once admitted (not before: the
        session's own ``nbytes`` would count them twice)."""
        reserve = self.encodings_of(gallery)
        self.store.admit(session, images_bytes([*gallery, *images]) + reserve)
        session.encodings_reserved = reserve


class ForeignSession(PermissionError):
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
                             "(or make a new Client) to start your own session.")
    return session


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``), as ``MALLOC_ARENA_MAX`` would.

    Each server thread that decodes an upload or runs the model otherwise gets its own arena, which
    keeps the memory it freed: the process's RSS then grows by tens to hundreds of MB per busy
    thread, whatever the sessions hold (docs/benchmarks.md). Not applied when ``MALLOC_ARENA_MAX``
    is set (the person's choice wins) or outside glibc; returns whether it was applied.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-8, int(arenas)))  # M_ARENA_MAX is -8 in glibc's malloc.h
    except (OSError, AttributeError):
        return False


def release_freed_memory() -> None:
    """Hand memory that is already free back to the system (glibc ``malloc_trim``), after an
    upload decoded large images; a few milliseconds, nothing outside glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---- the client a session belongs to ---------------------------------------------------------

CLIENT_COOKIE = "chatreid_client"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")  # what secrets.token_urlsafe(32) makes


def _cookie(headers, name: str) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed Cookie header carries no id
                return None
            if name in jar and _CLIENT_ID.match(jar[name].value):
                return jar[name].value
    return None


class ClientCookie:
    """ASGI middleware: every response to a client without a (well-formed) ``chatreid_client``
    cookie sets one, a random 256-bit id, HttpOnly and SameSite=Lax. Browsers and gradio_client
    (which keeps the cookies of the app's ``/config``) then send it with every request, and the
    app binds each session to it (:func:`client_of`): a session id alone, which travels in URLs
    and request bodies, no longer opens another client's conversation."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _cookie(scope["headers"], CLIENT_COOKIE):
            return await self.app(scope, receive, send)
        header = (f"{CLIENT_COOKIE}={secrets.token_urlsafe(32)}; Path=/; HttpOnly; "
                  "SameSite=Lax").encode("latin-1")

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", header)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def client_of(request) -> str | None:
    """The ``chatreid_client`` cookie of a Gradio request (None without one: a client that keeps
    no cookies, or no request at all, as in a direct call)."""
    if request is None:
        return None
    try:
        headers = dict(request.headers)
    except Exception:  # noqa: BLE001 - a request without headers carries no id
        return None
    raw = headers.get("cookie")
    return _cookie([(b"cookie", raw.encode("latin-1"))], CLIENT_COOKIE) if raw else None
