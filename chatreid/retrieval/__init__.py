"""The retrieval engine: pre-filter -> VLM scoring (pairwise or multi-turn best-choice) -> ranking.

    from chatreid.retrieval import ReIDEngine, Query
    engine = ReIDEngine.from_pretrained("Qwen/Qwen2-VL-2B-Instruct")
    result = engine.search(Query(images=[photo]), gallery, top_k=50)
"""

from chatreid.retrieval.query import Query, SearchResult
from chatreid.tasks import IMAGE_TASKS, TASKS
from chatreid.retrieval.engine import ReIDEngine

__all__ = ["ReIDEngine", "Query", "SearchResult", "TASKS", "IMAGE_TASKS"]
