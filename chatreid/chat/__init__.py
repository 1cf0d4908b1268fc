"""The chat layer: what ``app.py`` needs besides its widgets, with no Gradio in it.

- ``intents``: a person's words -> an ``Intent`` (task, result numbers, attributes); rule-based.
- ``conversation``: one chat's state (gallery, query, last ranking) and its turn (``respond``).
- ``answers``: what the assistant says, and the model's generated text checked before it is shown.
- ``settings``: the model the app loads and its ``CHATREID_*`` limits.
- ``uploads``: images, zips and messages read safely within the limits.
- ``sessions``: the sessions' idle expiry and shared memory budget.
- ``examples``: the built-in example galleries.

It sits on the retrieval engine (``chatreid.retrieval``), which knows nothing of it.
"""
