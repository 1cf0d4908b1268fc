"""The chat's request understanding and multi-turn state, driven with a recording fake engine.

The fake engine ranks the gallery by a fixed key and records every call, so these tests check what
the conversation asks the engine (task, images, text, attributes) and how it answers the person.
"""

from __future__ import annotations

import pytest
from PIL import Image

from chatreid import prompts
from chatreid.data.attributes import VOCAB
from chatreid.retrieval import SearchResult
from chatreid.chat.answers import name_images
from chatreid.chat.conversation import Conversation, GalleryItem
from chatreid.chat.engine import ChatEngine
from chatreid.chat.intents import attributes_in_request, infer_task, interpret


class FakeEngine(ChatEngine):
    """Ranks by the red channel of the gallery image (highest first); records calls."""

    def __init__(self):
        self.searches, self.compares, self.describes = [], [], []

    def search(self, query, gallery, strategy="pairwise", top_k=None, tau=None, batch_size=16,
               progress=None):
        query.validate()
        self.searches.append(query)
        reds = [img.getpixel((0, 0))[0] for img in gallery]
        ranking = sorted(range(len(gallery)), key=lambda i: -reds[i])
        if progress:
            for k in range(len(gallery)):
                progress(k + 1, len(gallery))
        return SearchResult(ranking=ranking, scores=[reds[i] / 255 for i in ranking],
                            num_scored=len(gallery), answer="The best match is image 1.",
                            prefilter_scores=[0.0] * len(gallery))

    @staticmethod
    def attributes_of(image) -> dict:
        """What this fake model 'sees': red above 150 is a woman in red with a backpack."""
        if image.getpixel((0, 0))[0] > 150:
            return {"gender": "female", "upper_color": "red", "backpack": True}
        return {"gender": "female", "upper_color": "blue", "backpack": False}

    def compare(self, a, b):
        self.compares.append((a.getpixel((0, 0)), b.getpixel((0, 0))))
        return prompts.answer_attr_compare(self.attributes_of(a), self.attributes_of(b))

    def predict_attributes(self, image):
        return prompts.answer_attributes(self.attributes_of(image))

    def describe(self, image):
        self.describes.append(image.getpixel((0, 0)))
        return "A woman with a red top."


def _img(red):
    return Image.new("RGB", (16, 32), (red, 10, 10))


@pytest.fixture
def conv():
    c = Conversation()
    c.set_gallery([GalleryItem(f"g{r}.png", _img(r)) for r in (40, 200, 120, 250)])
    return c


# -- attribute phrases ---------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("a woman in a red top with a black backpack",
     {"gender": "female", "upper_color": "red", "backpack": True}),
    ("man in a grey hoodie and blue jeans, no hat",
     {"gender": "male", "upper_color": "gray", "lower_color": "blue", "lower_type": "pants",
      "lower_length": "long", "hat": False}),
    ("a girl with long hair in a short pink skirt",
     {"gender": "female", "age": "young", "hair": "long", "lower_color": "pink",
      "lower_type": "dress", "lower_length": "short"}),
    ("an elderly man in shorts carrying a handbag",
     {"gender": "male", "age": "old", "lower_type": "pants", "lower_length": "short",
      "handbag": True}),
    ("she is not carrying a bag", {"gender": "female", "bag": False}),
    ("long-sleeved white shirt", {"sleeve": "long", "upper_color": "white"}),
])
def test_attributes_in_request_maps_phrases_into_vocab(text, expected):
    attrs, notes = attributes_in_request(text)
    assert attrs == expected
    assert notes == []
    for key, value in attrs.items():  # every value the parser produces is in the vocabulary
        assert value in VOCAB[key]


def test_attributes_in_request_notes_what_the_vocabulary_lacks():
    attrs, notes = attributes_in_request("a man in an orange jacket and a red skirt")
    assert "upper_color" not in attrs and "lower_color" not in attrs  # neither colour is in VOCAB
    assert any("orange" in n for n in notes) and any("red" in n for n in notes)


def test_pronoun_alone_is_not_an_attribute_query():
    assert attributes_in_request("find him")[0] == {}
    assert attributes_in_request("he carries a backpack")[0] == {"gender": "male", "backpack": True}


# -- task inference ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,has_images,task", [
    ("which of these show the person in the first photo?", True, "standard"),
    ("find him", True, "standard"),
    ("same person, but he may have changed clothes", True, "cloth_changing"),
    ("she could be wearing different clothes", True, "cloth_changing"),
    ("this is an infrared shot; find him in the daylight cameras", True, "visible_infrared"),
    ("IR camera at night", True, "visible_infrared"),
    ("find this person, he carries a black backpack", True, "adaptive"),
    ("find a woman in a red top with a black backpack", False, "attribute"),
    ("person with attributes: male, blue pants", False, "attribute"),
    ("The woman has long black hair and wears a red shirt, blue jeans and white sneakers. "
     "She is holding a phone.", False, "text_to_image"),
])
def test_infer_task(text, has_images, task):
    assert infer_task(text, has_images)[0] == task


@pytest.mark.parametrize("text,action,indices", [
    ("use #2 as the query", "pick", [2]),
    ("number 3 is him", "pick", [3]),
    ("more like the second one", "pick", [2]),
    ("why do the query and #1 match?", "compare", [0, 1]),
    ("compare #1 and #3", "compare", [1, 3]),
    ("why is result 2 different from result 4?", "compare", [2, 4]),
    ("describe #2", "describe", [2]),
    ("start over", "reset", []),
    ("she has a backpack", "search", []),
    ("", "help", []),
])
def test_interpret_actions(text, action, indices):
    intent = interpret(text, has_query=True, has_results=True)
    assert intent.action == action
    assert intent.indices == indices


def test_request_wording_adds_nothing_to_the_query(conv):
    eng = FakeEngine()
    conv.respond("find him", eng, images=[_img(7)])
    conv.respond("search again please", eng)
    assert conv.description == "" and eng.searches[-1].task == "standard"
    assert len(eng.searches) == 2


def test_result_references_without_results_are_still_references():
    # Recognised as a pick (answered "no results yet"), not searched for as a description.
    assert interpret("use #2 as the query", has_query=True, has_results=False).action == "pick"
    # With new photos attached, the message describes them.
    assert interpret("use #2 as the query", has_new_images=True).action == "search"


# -- the conversation ----------------------------------------------------------------------------

def test_image_query_then_refinements(conv):
    eng = FakeEngine()
    r = conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    assert r.ok and r.task == "standard"
    assert [gi for gi, _ in r.ranked] == [3, 1, 2, 0]  # the fake's order, passed through
    assert eng.searches[-1].task == "standard" and eng.searches[-1].text is None
    assert "g250.png" in r.text and "#1" in r.text

    # add a sentence: same photo, now with words -> adaptive, attributes merged
    r = conv.respond("he carries a black backpack", eng)
    q = eng.searches[-1]
    assert r.task == "adaptive" and len(q.images) == 1
    assert q.attributes == {"gender": "male", "backpack": True}
    assert "backpack" in q.text

    # pick result #2 (gallery index 1) as the new query
    r = conv.respond("use #2 as the query", eng)
    assert r.ok
    assert eng.searches[-1].images[0].getpixel((0, 0))[0] == 200
    assert "g200.png" in r.text

    # why do the query and #1 match -> engine.compare(query photo, gallery[ranking[0]])
    r = conv.respond("why do the query and #1 match?", eng)
    assert r.ok and "| gender | female | female | agree |" in r.text
    assert eng.compares[-1] == ((200, 10, 10), (250, 10, 10))
    assert r.ranked is None  # the shown ranking stays

    r = conv.respond("describe #2", eng)  # the ranking no longer holds the query (g200) itself
    assert eng.describes[-1] == (120, 10, 10) and "g120.png" in r.text
    assert "**The model's description:** A woman with a red top." in r.text

    r = conv.respond("start over", eng)
    assert not conv.has_query and conv.last is None and conv.gallery and r.ranked == []


def test_text_query_and_fresh_text_search(conv):
    eng = FakeEngine()
    r = conv.respond("find a woman in a red top with a black backpack", eng)
    assert r.task == "attribute" and eng.searches[-1].images == []
    assert eng.searches[-1].attributes == {"gender": "female", "upper_color": "red", "backpack": True}
    conv.respond("find a man in blue jeans", eng)  # a new text search replaces the old one
    assert eng.searches[-1].attributes == {"gender": "male", "lower_color": "blue",
                                           "lower_type": "pants", "lower_length": "long"}


def test_setting_named_earlier_survives_refinement(conv):
    eng = FakeEngine()
    conv.respond("same person, he changed clothes", eng, images=[_img(1)])
    assert eng.searches[-1].task == "cloth_changing"
    conv.respond("he has short hair", eng)
    assert eng.searches[-1].task == "cloth_changing"
    assert conv.attributes["hair"] == "short"


def test_preset_overrides_words(conv):
    eng = FakeEngine()
    r = conv.respond("find him", eng, images=[_img(1)], task="visible_infrared")
    assert r.task == "visible_infrared" and "you chose it" in r.text


@pytest.mark.parametrize("setup,message,needle", [
    ([], "why do the query and #1 match?", "no results yet"),
    (["find a man"], "use #9 as the query", "no result #9"),
    ([], "", "Upload a gallery"),
])
def test_mistakes_are_answered_not_raised(conv, setup, message, needle):
    eng = FakeEngine()
    for m in setup:
        conv.respond(m, eng)
    r = conv.respond(message, eng)
    assert needle.lower() in r.text.lower()
    # and the session keeps working
    assert conv.respond("find him", eng, images=[_img(3)]).ok


def test_no_gallery_and_bad_preset(conv):
    eng = FakeEngine()
    empty = Conversation()
    r = empty.respond("find him", eng, images=[_img(3)])
    assert not r.ok and "no gallery" in r.text.lower() and not eng.searches
    r = conv.respond("find him", eng, images=[_img(3)], task="telepathy")
    assert not r.ok and "unknown task" in r.text.lower()
    r = conv.respond("find someone tall", eng, task="attribute")
    assert not r.ok and "attribute" in r.text.lower() and not eng.searches
    r = conv.respond("find someone", eng)
    assert not r.ok and "need a query" in r.text.lower() and not eng.searches


def test_compare_needs_a_query_photo_for_text_queries(conv):
    eng = FakeEngine()
    conv.respond("a woman in a red top", eng)
    r = conv.respond("why does #1 match?", eng)
    assert not r.ok and "compare #1 and #2" in r.text
    r = conv.respond("compare #1 and #2", eng)
    assert r.ok and eng.compares[-1] == ((250, 10, 10), (200, 10, 10))


def test_engine_image_positions_become_file_names():
    gallery = [GalleryItem(f"p{i}.jpg", None) for i in range(1, 13)]
    assert name_images("The matching images are: Image 3, Image 1.", gallery) == \
        "The matching images are: Image 3 (p3.jpg), Image 1 (p1.jpg)."
    long = "The matching images are: " + ", ".join(f"Image {i}" for i in range(1, 13)) + "."
    out = name_images(long, gallery, max_listed=8)
    assert "Image 8 (p8.jpg), … (4 more)." in out and "Image 9" not in out
    assert name_images("Image 40", gallery) == "Image 40"  # no such image: left alone


def test_progress_is_forwarded(conv):
    seen = []
    conv.respond("find him", FakeEngine(), images=[_img(3)], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (4, 4)


# -- a refused or failed turn leaves the state as it was ---------------------------------------------

def test_refused_or_failed_message_never_enters_the_query(conv):
    eng = FakeEngine()
    conv.max_description_chars = 60
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    conv.respond("she carries a black backpack", eng)
    before = (conv.description, dict(conv.attributes), conv.task, conv.last)
    r = conv.respond("she wears a long red coat and " + "very " * 20 + "big boots", eng)
    assert not r.ok and "over the limit of 60" in r.text and "start over" in r.text
    assert (conv.description, conv.attributes, conv.task, conv.last) == before

    class Broken(FakeEngine):
        def search(self, *a, **k):
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        conv.respond("she has long hair", Broken())
    assert (conv.description, conv.attributes, conv.task, conv.last) == before
    n = len(eng.searches)
    r = conv.respond("search again", eng)  # the next turn costs what the kept query costs
    assert r.ok and len(eng.searches) == n + 1
    assert eng.searches[-1].text == "she carries a black backpack"


def test_typed_text_is_shown_as_text(conv):
    eng = FakeEngine()
    r = conv.respond("find a person <img src=x onerror=alert(1)> ![t](http://e.x/t.png)", eng)
    assert r.ok and "<img" not in r.text and "![" not in r.text
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in r.text


# -- refinement turns with a model whose outputs are known ------------------------------------------

def test_compare_shows_both_attribute_answers_side_by_side(conv):
    eng = FakeEngine()
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])  # blue, no bag
    r = conv.respond("why do the query and #1 match?", eng)  # #1 is g250: red, backpack
    assert r.ok and r.text.startswith("Comparing the query (q.png) with #1 (g250.png).")
    assert "The search gave #1 a score of 0.980 (scored by the model)" in r.text
    assert "| attribute | the query | #1 | |" in r.text
    assert "| gender | female | female | agree |" in r.text
    assert "| upper garment colour | blue | red | **differ** |" in r.text
    assert "| backpack | no | yes | **differ** |" in r.text
    assert "They agree on 1 of the 3 attributes both answers name (gender); they differ on " \
           "backpack, upper garment colour." in r.text
    assert "**The model's direct comparison:** in common: female; only the query: a blue upper " \
           "garment, not carrying a backpack; only #1: a red upper garment, carrying a backpack." in r.text
    r = conv.respond("compare #1 and #2", eng)  # g250 and g200: both red
    assert "They agree on 3 of the 3 attributes" in r.text and "| backpack | yes | yes | agree |" in r.text


@pytest.mark.parametrize("attr_out,compare_out,why", [
    ("", "", "it generated no text"),
    ("The match match match matching images are: Image 2.",
     "The match match match matching images are: Image 2.", "it repeated itself"),
    ("None", "None", "it names no attribute in the model's vocabulary"),
])
def test_degenerate_model_output_is_reported_never_shown(conv, attr_out, compare_out, why):
    class Degenerate(FakeEngine):
        def predict_attributes(self, image):
            return attr_out

        def compare(self, a, b):
            return compare_out

        def describe(self, image):
            return attr_out

    eng = Degenerate()
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    r = conv.respond("why do the query and #1 match?", eng)
    assert r.ok and "match match" not in r.text and "Image 2" not in r.text
    assert f"The model's attribute answer could not be used for the query ({why}) and for #1 " \
           f"({why})" in r.text
    assert "What can be trusted is the ranking and the scores above." in r.text
    assert "The search gave #1 a score of 0.980" in r.text  # the trusted part is there
    assert "direct comparison of the two images could not be read" in r.text
    r = conv.respond("describe #2", eng)
    assert "match match" not in r.text and "None" not in r.text.replace("None)", "")
    assert "The model's description could not be used (" in r.text
    assert "The search gave #2 a score of 0.784" in r.text


def test_description_of_one_word_is_not_a_description(conv):
    class Terse(FakeEngine):
        def describe(self, image):
            return "None"

    eng = Terse()
    conv.respond("find this person", eng, images=[_img(5)])
    r = conv.respond("describe #2", eng)
    assert "Result #2 (g200.png):" in r.text and ": None" not in r.text
    assert "could not be used (its answer was too short to be a description)" in r.text
    # what can still be trusted: the model's attribute answer, and the ranking
    assert "**The model's attribute answer:** female, a red upper garment, carrying a backpack." in r.text


def test_a_query_image_is_never_its_own_match(conv):
    eng = FakeEngine()
    same = _img(200)  # pixel-identical to gallery g200.png, a different object
    r = conv.respond("find this person", eng, images=[same], image_names=["upload.png"])
    names = [conv.gallery[gi].name for gi, _ in r.ranked]
    assert names == ["g250.png", "g120.png", "g40.png"]
    assert "Left out of the ranking: g200.png, an exact duplicate of the query photo" in r.text
    assert conv.last.num_scored == 3 and len(conv.last.scores) == 3
    # "use #2 as the query": result #2 (g120) is not ranked against itself either
    r = conv.respond("use #2 as the query", eng)
    names = [conv.gallery[gi].name for gi, _ in r.ranked]
    assert "g120.png" not in names and len(names) == 3
    assert "Left out of the ranking: g120.png" in r.text


def test_words_after_a_cloth_changing_request_are_used_or_said_why_not(conv):
    eng = FakeEngine()
    conv.respond("same person, he may have changed clothes", eng, images=[_img(1)])
    r = conv.respond("he carries a black backpack", eng)
    q = eng.searches[-1]
    assert r.task == "cloth_changing" and q.task == "cloth_changing" and len(q.images) == 1
    assert q.attributes == {"gender": "male", "backpack": True}  # kept, scored with the photo
    assert "**Your words, used with the photo:** male, carrying a backpack" in r.text
    r = conv.respond("he wears a red jacket and a tall hat", eng)
    q = eng.searches[-1]
    assert q.attributes == {"gender": "male", "backpack": True}  # clothes do not survive a change
    assert "(Not used, since the person may have changed clothes: a red upper garment, " \
           "wearing a hat.)" in r.text
    assert "Words outside the attribute vocabulary are not used in this setting: tall" in r.text
    # infrared: colour is what an infrared photo lacks
    conv.respond("start over", eng)
    r = conv.respond("this is an infrared shot of a woman in a red top", eng, images=[_img(1)])
    q = eng.searches[-1]
    assert q.task == "visible_infrared" and q.attributes == {"gender": "female"}
    assert "(Not used, since an infrared photo shows no colour: a red upper garment.)" in r.text


def test_gallery_features_are_kept_with_the_gallery(conv):
    import numpy as np

    class WithPrefilter(FakeEngine):
        def __init__(self):
            super().__init__()
            self.computed, self.passed = [], []

        def prefilter_features(self, images):
            self.computed.append(len(images))
            return np.zeros((len(images), 4), dtype=np.float32)

        def search(self, query, gallery, gallery_features=None, **kw):
            self.passed.append(gallery_features)
            return super().search(query, gallery, **kw)

    eng = WithPrefilter()
    conv.respond("find this person", eng, images=[_img(5)])
    conv.respond("she has long hair", eng)
    conv.respond("use #2 as the query", eng)
    assert eng.computed == [4]  # once for the gallery, not once per search
    assert all(f is conv.gallery_features for f in eng.passed) and len(eng.passed) == 3
    conv.set_gallery([GalleryItem("a.png", _img(9)), GalleryItem("b.png", _img(99))])
    assert conv.gallery_features is None  # a new gallery: the old features are gone
    conv.respond("find this person", eng, images=[_img(5)])
    assert eng.computed == [4, 2] and eng.passed[-1].shape == (2, 4)
    conv.respond("start over", eng)
    conv.respond("a woman in a red top", eng)  # a text query has no pre-filter step
    assert eng.passed[-1] is None and eng.computed == [4, 2]


def test_gallery_encodings_are_kept_with_the_gallery(conv):
    class Encoding(FakeEngine):
        """An engine that keeps encodings: fills the dict it is given, as ReIDEngine does."""

        def __init__(self):
            super().__init__()
            self.passed, self.encoded = [], 0

        def encoding_bytes(self, images):
            return 100 * len(images)

        def search(self, query, gallery, gallery_encodings=None, **kw):
            self.passed.append(gallery_encodings)
            for i in range(len(gallery)):
                if i not in gallery_encodings:
                    gallery_encodings[i], self.encoded = object(), self.encoded + 1
            return super().search(query, gallery, **kw)

    eng = Encoding()
    conv.respond("find this person", eng, images=[_img(5)])
    kept = conv.gallery_encodings
    conv.respond("a woman in a red top", eng)  # a text query keeps them too
    conv.respond("use #2 as the query", eng)
    assert eng.encoded == 4 and all(d is kept for d in eng.passed) and len(kept) == 4
    conv.set_gallery([GalleryItem("a.png", _img(9))])
    assert conv.gallery_encodings == {} and len(kept) == 4  # a new dict; a running search's is its own
    conv.respond("find this person", eng, images=[_img(5)])
    assert eng.encoded == 5 and eng.passed[-1] is conv.gallery_encodings
    # an engine without encodings (FakeEngine) is not given any
    conv.respond("find this person", FakeEngine(), images=[_img(5)])


# -- issue 24: state that outlives its context, and the model's words --------------------------------

def test_a_new_gallery_or_example_starts_a_new_query(conv):
    """(6) A request on another gallery is never merged into the old query."""
    eng = FakeEngine()
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    conv.respond("he carries a black backpack", eng)
    conv.set_gallery([GalleryItem(f"h{r}.png", _img(r)) for r in (30, 90)], "the example “B”")
    assert not conv.has_query and conv.last is None and conv.gallery_origin == "the example “B”"
    r = conv.respond("Find a male person with a gray upper garment, not carrying a backpack.", eng)
    q = eng.searches[-1]
    assert r.ok and q.images == [] and q.attributes == {
        "gender": "male", "upper_color": "gray", "backpack": False}
    assert "black backpack" not in r.text and "q.png" not in r.text
    assert conv.gallery_line() == ("The gallery loaded is still the earlier one: 2 images from "
                                   "the example “B”.")
    conv.set_gallery([])
    assert conv.gallery_line() == "No gallery is loaded." and conv.gallery_origin == ""


def test_use_a_result_replaces_the_photo_and_drops_what_was_said_of_it(conv):
    """(6) "use #k" drops the sentence written about the old photo, and says what it kept."""
    eng = FakeEngine()
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    conv.respond("he carries a black backpack", eng)
    r = conv.respond("use #2 as the query", eng)
    q = eng.searches[-1]
    assert q.images[0].getpixel((0, 0))[0] == 200 and len(q.images) == 1
    assert q.text is None and not q.attributes and r.task == "standard"
    assert "in place of q.png. Dropped what was said about it (“he carries a black backpack”)." \
        in r.text and "Kept: nothing else of the earlier query." in r.text

    # a setting asked for earlier is kept, and said so; words in the same message are used
    conv.respond("same person, he changed clothes", eng, images=[_img(5)], image_names=["q.png"])
    r = conv.respond("use #1 as the query, he has short hair", eng)
    assert r.task == "cloth_changing" and conv.description == "he has short hair"
    assert "Dropped what was said about it (“same person, he changed clothes”)" in r.text
    assert "Kept: the setting you asked for (same person in other clothes" in r.text

    # "add #k" keeps the old photo, so what was said of it stays
    conv.respond("find this person", eng, images=[_img(5)], image_names=["q.png"])
    conv.respond("he carries a black backpack", eng)
    conv.respond("also use #2", eng)
    assert len(eng.searches[-1].images) == 2 and conv.description == "he carries a black backpack"

    # a text query's words describe the person sought: kept, and said so
    conv.respond("start over", eng)
    conv.respond("a woman in a red top", eng)
    r = conv.respond("use #1", eng)
    assert "Kept: your description (“a woman in a red top”)." in r.text


class Describer(FakeEngine):
    """Says ``self.says[red]`` describing the gallery image of that red value."""

    def __init__(self, says):
        super().__init__()
        self.says = says

    def describe(self, image):
        return self.says[image.getpixel((0, 0))[0]]


def test_descriptions_cut_off_or_the_same_for_different_people_are_not_shown(conv):
    """(7) "describe #k" never shows a fragment, nor the same words for different people."""
    cut = "A woman in a white open jacket over"
    eng = Describer({250: cut, 200: cut, 120: "A man in a gray coat.", 40: "A man in a gray coat."})
    conv.respond("find a woman in red", eng)  # ranking: g250, g200, g120, g40
    for k in (1, 2):
        r = conv.respond(f"describe #{k}", eng)
        assert cut not in r.text and "it stops mid-sentence, so it was cut off" in r.text
        assert "it is not shown" in r.text and "**The model's attribute answer:**" in r.text
    for _ in range(2):  # the same image described again says the same: fine
        r = conv.respond("describe #3", eng)
        assert "**The model's description:** A man in a gray coat." in r.text
    r = conv.respond("describe #4", eng)
    assert "**The model's description:**" not in r.text
    assert "it said word for word the same of g120.png, a different image" in r.text
    # and once that is known, #3's description is not shown any more either
    assert "the same of g40.png" in conv.respond("describe #3", eng).text
    eng.says[120] = "A man walking with a."  # closed, but on a word that opens a phrase
    assert "stops mid-sentence" in conv.respond("describe #3", eng).text
    # a new gallery forgets what was said of the old one
    conv.set_gallery([GalleryItem("x.png", _img(40))])
    conv.respond("find a man", eng)
    assert "A man in a gray coat." in conv.respond("describe #1", eng).text


def test_words_outside_the_vocabulary_leave_out_function_words(conv):
    """(7) "... not used in this setting: but." never lists a function word."""
    eng = FakeEngine()
    r = conv.respond("Same person, but they may have changed clothes.", eng, images=[_img(5)])
    assert r.task == "cloth_changing" and "Words outside the attribute vocabulary" not in r.text
    r = conv.respond("she is very tall but walks with a limp", eng)
    line = next(x for x in r.text.split("\n\n") if "Words outside" in x)
    assert line.endswith("tall, walks, limp.)"), line


def test_progress_counts_images_whatever_steps_the_engine_counts(conv):
    """(7) The progress bar labelled "images" never counts past the gallery (an adaptive search
    scores each image twice; best-choice counts forward passes)."""
    class TwoPasses(FakeEngine):
        def search(self, query, gallery, progress=None, **kw):
            for done in (2, 4, 6, 8):
                progress(done, 2 * len(gallery))
            return super().search(query, gallery, **kw)

    seen = []
    conv.respond("find her, she has a backpack", TwoPasses(), images=[_img(3)],
                 progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    seen.clear()
    conv.respond("search again", TwoPasses(), top_k=2,
                 progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (2, 2) and all(d <= t == 2 for d, t in seen)
