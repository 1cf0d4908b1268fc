"""The retrieval tasks: the one home of their names and of what each is called and needs.

A *retrieval task* is the kind of search a ``Query`` asks for (paper sec. 3.1.3 and 3.3): the
engine, the evaluation harness, the chat app and the demo report all speak these names and import
them from here. They are not the *instruction tasks* of ``chatreid.prompts.INSTRUCTION_TASKS``
(``reid_cc``, ``t2i_one_to_one``, ...): those name the prompt formats of the training rows; a
retrieval task is read with one of them (``REID_PROMPT`` here, the rest in the engine).

Plain Python, no imports: every layer (the demo configuration included) can import it cheaply.
"""

from __future__ import annotations

# The Re-ID tasks whose query is one or more photos and nothing else.
REID_TASKS: tuple[str, ...] = ("standard", "cloth_changing", "visible_infrared")
TASKS: tuple[str, ...] = (*REID_TASKS, "text_to_image", "attribute", "adaptive")
# Tasks whose query is an image (the pre-filter can compare it with the gallery).
IMAGE_TASKS: tuple[str, ...] = (*REID_TASKS, "adaptive")

# Tasks whose query reads a description in words.
TEXT_TASKS: tuple[str, ...] = ("text_to_image", "adaptive")
# Tasks whose query reads attributes (given ones, or ones found in a description).
ATTRIBUTE_TASKS: tuple[str, ...] = ("text_to_image", "attribute", "adaptive")

# The task preset that lets a person's words decide the task (the chat infers it).
AUTO = "auto"

# What each task is called in answers and in the app's preset menu.
TASK_NAMES: dict[str, str] = {
    "standard": "same person (standard Re-ID)",
    "cloth_changing": "same person in other clothes (cloth-changing Re-ID)",
    "visible_infrared": "infrared to visible (cross-modality Re-ID)",
    "text_to_image": "text description to image",
    "attribute": "partial attributes to image",
    "adaptive": "photo plus description (adaptive multi-modal retrieval)",
}

# What a query needs under each task, in a person's terms (``Query.validate`` enforces it).
TASK_NEEDS: dict[str, str] = {
    "standard": "a photo of the person (attach one to your message)",
    "cloth_changing": "a photo of the person (attach one to your message)",
    "visible_infrared": "an infrared photo of the person (attach one to your message)",
    "text_to_image": "a description in words",
    "attribute": "attributes such as *a woman in a red top with a backpack*",
    "adaptive": "a photo, a description, or both",
}

# The stage-3 instruction task (``chatreid.prompts`` name) each photo-only Re-ID task is read with.
REID_PROMPT: dict[str, str] = {"standard": "reid_standard", "cloth_changing": "reid_cc",
                               "visible_infrared": "reid_vi"}

# Evaluation protocol (``chatreid.metrics.PROTOCOLS``) -> the task its queries are searched with.
PROTOCOL_TASK: dict[str, str] = {
    "market": "standard", "cuhk03_classic": "standard", "general": "standard",
    "cc": "cloth_changing", "sc": "cloth_changing",
    "sysu": "visible_infrared", "regdb": "visible_infrared",
    "t2i": "text_to_image",
}


def setting_name(task: str) -> str:
    """The task as a reader's word for the setting (``cloth_changing`` -> ``cloth-changing``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return task.replace("_", "-")
