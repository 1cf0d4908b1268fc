"""Training: the stage run that ``train/sft.py`` wires (``chatreid.training.sft``), collation,
resolution policies, pre-flight checks, Hub export."""

from chatreid.training.collate import IGNORE_INDEX, AssistantMasker, ReIDCollator, count_image_placeholders
from chatreid.training.resolution import STAGE_POLICIES, ResolutionPolicy, policy_for_stage

__all__ = [
    "IGNORE_INDEX",
    "STAGE_POLICIES",
    "AssistantMasker",
    "ReIDCollator",
    "ResolutionPolicy",
    "count_image_placeholders",
    "policy_for_stage",
]
