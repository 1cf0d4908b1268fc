"""The engine's interface the chat uses (``chatreid.chat.engine.ChatEngine``) and the memory
admission of a session (``chatreid.chat.sessions.Admission``)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from PIL import Image

from chatreid.chat.conversation import GalleryItem
from chatreid.chat.engine import ChatEngine, keeps_encodings
from chatreid.chat.sessions import Admission, Busy, Session, SessionStore, images_bytes

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = [n for n in vars(ChatEngine) if not n.startswith("_")] + list(ChatEngine.__annotations__)


def test_the_reid_engine_has_every_member_of_the_interface_with_its_parameters():
    from chatreid.retrieval import ReIDEngine

    assert {"search", "compare", "describe", "encoding_bytes", "max_pixels", "model_info"} <= set(MEMBERS)
    for name in MEMBERS:
        if name == "model_info":  # set per instance in __init__
            assert "self.model_info =" in inspect.getsource(ReIDEngine.__init__)
            continue
        assert hasattr(ReIDEngine, name), name
        theirs, ours = getattr(ReIDEngine, name), getattr(ChatEngine, name)
        if callable(ours):
            wanted = [p for p in inspect.signature(ours).parameters if p not in ("self", "kept")]
            got = inspect.signature(theirs).parameters
            assert all(p in got for p in wanted), (name, wanted, list(got))


def test_nothing_probes_the_engine_with_getattr():
    files = [ROOT / "app.py", *sorted((ROOT / "chatreid" / "chat").glob("*.py"))]
    probes = [f"{p.name}: {m.group(0)}" for p in files
              for m in re.finditer(r"getattr\((self\.)?engine\b[^)]*\)", p.read_text(encoding="utf-8"))]
    assert probes == []


class _Keeps(ChatEngine):
    def encoding_bytes(self, images):
        return 1000 * len(images)


def _gallery(n, size=(10, 10)):
    return [GalleryItem(f"g{i}.png", Image.new("RGB", size)) for i in range(n)]


def test_an_engine_keeps_encodings_only_when_it_says_how_big_they_are():
    class Plain(ChatEngine):
        pass

    assert not keeps_encodings(Plain()) and Admission(SessionStore(1, 1, 1), Plain()).encodings_of([1]) == 0
    assert keeps_encodings(_Keeps())


def test_admission_counts_images_and_reserved_encodings_against_the_budget():
    store = SessionStore(budget_bytes=10_000, idle_seconds=60, max_sessions=4)
    admit = Admission(store, _Keeps())
    s = Session()
    store.begin(s)
    items = _gallery(2)  # 2 x 300 bytes of pixels, 2 x 1000 of encodings
    reserve = admit.gallery(s, [g.image for g in items])
    assert reserve == 2000
    s.conv.set_gallery(items)
    s.encodings_reserved = reserve
    assert s.nbytes() == images_bytes(g.image for g in items) + 2000 == 2600
    # a new gallery replaces the old one: only the difference must fit
    assert admit.gallery(s, [g.image for g in _gallery(7)]) == 7000  # 2100 + 7000 fit in 10000
    with pytest.raises(Busy, match="busy"):  # 2400 + 8000 do not, and no other session can go
        admit.gallery(s, [g.image for g in _gallery(8)])
    with pytest.raises(Busy, match="CHATREID_MEMORY_MB"):
        admit.gallery(s, [g.image for g in _gallery(11)])  # more than the whole budget
    other = Session()
    store.begin(other)
    store.end(s)  # s is idle now: the other session's request drops it to make room
    admit.request(other, [g.image for g in _gallery(6)], [])  # 7800 more, beside s's 2600
    assert other.encodings_reserved == 6000 and s.dropped and s.nbytes() == 0
