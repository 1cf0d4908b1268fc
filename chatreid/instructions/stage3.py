"""Stage 3, multi-modal task reasoning: the four Re-ID tasks of section 3.1.3, attribute-based
retrieval and adaptive multi-modal retrieval (section 3.3).

Every gallery has a variable length (``reid_gallery``, Uniform{a..b}) and at least one true match.
A Re-ID row answers either all at once (``prompts.answer_reid``) or, with probability
``best_choice_prob``, in the multi-turn best-choice format inference uses: each turn names one
best remaining image, and the last turn answers "None" once every match has been named. A share
``best_choice_none_prob`` of the best-choice rows are pages without any match, answered "None" at
once, as most pages of a pre-filter's head are at inference. A page's images are shuffled, so the
first match named sits at every position of a page of N images with probability 1/N.
"""

from __future__ import annotations

import numpy as np

from chatreid import prompts as P
from chatreid.instructions import sampling as S
from chatreid.instructions.pool import ATTR_KEYS
from chatreid.instructions.rows import make_row
from chatreid.instructions import stage2
from chatreid.instructions.stage2 import Context, _gallery


def reid_turns(ctx: Context, rng, prompt: str, matches: list[int], best_choice: bool):
    """The assistant side of a Re-ID question: one answer, or best-choice turns (a page without
    a match: one turn, "None")."""
    if not best_choice:
        return [(prompt, P.answer_reid(matches))]
    if not matches:
        return [(prompt, P.answer_best_choice(None))]
    order = [matches[i] for i in rng.permutation(len(matches))]
    turns = [(prompt, P.answer_best_choice(order[0]))]
    for idx in order[1:] + [None]:
        turns.append((ctx.render("best_choice_next", rng), P.answer_best_choice(idx)))
    return turns


def _pages(ctx: Context, rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(best-choice rows, the best-choice rows meant to hold no match)."""
    best = rng.random(n) < ctx.config.best_choice_prob
    return best, best & (rng.random(n) < ctx.config.best_choice_none_prob)


def _no_match_pages(ctx: Context, rng, q: np.ndarray, none: np.ndarray, valid=None) -> np.ndarray:
    """``none`` less the rows whose benchmark has no image that could fill a page without a match
    (``valid`` as for ``sampling.distractors``); only tiny splits lose any."""
    if not none.any():
        return none
    _, failed = S.distractors(ctx.pool, rng, q, 1, valid=valid, counts=none.astype(np.int64),
                              strict=False)
    return none & ~failed


def _reid(task: str, ctx: Context, rng, n: int, eligible, none: np.ndarray,
          positives_allowed=None, distractor_valid=None, hard=None, supply=None) -> tuple:
    """Queries, gallery sizes, match counts and galleries for an image-query Re-ID task; the rows
    of ``none`` (where their benchmark allows) get a gallery without a match.

    ``hard(q, cand)``: at least one positive must satisfy it (a different outfit for CC).
    """
    pool, cfg = ctx.pool, ctx.config
    q = ctx.queries(rng, n, eligible, task)
    if positives_allowed is not None:
        avail = ctx.other_modality[q]
    else:
        avail = pool.id_count[pool.ident[q]] - 1
    n_gallery = S.gallery_sizes(rng, n, *cfg.reid_gallery)
    n_match = ctx.match_counts(rng, n_gallery, avail)
    none = _no_match_pages(ctx, rng, q, none, distractor_valid)
    n_match[none] = 0
    n_gallery = np.maximum(n_gallery, n_match)
    if hard is not None:
        first = S.same_identity(pool, rng, q, (n_match > 0).astype(np.int64), allowed=hard)
        rest = S.same_identity(pool, rng, q, np.maximum(n_match - 1, 0), exclude=first) \
            if (n_match > 1).any() else np.zeros((n, 0), dtype=np.int64)
        pos = np.concatenate([first, rest], 1)
    else:
        pos = S.same_identity(pool, rng, q, n_match, allowed=positives_allowed)
    g, n_gallery = _gallery(ctx, rng, q, n_gallery, n_match, pos, distractor_valid=distractor_valid,
                            supply=None if supply is None else supply(q),
                            min_distractors=none.astype(np.int64))
    return q, n_gallery, g


def _image_reid(task: str, ctx: Context, rng, n: int, **kw) -> list[dict]:
    pool = ctx.pool
    best, none = _pages(ctx, rng, n)
    q, n_gallery, g = _reid(task, ctx, rng, n, none=none, **kw)
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        matches = np.flatnonzero(pool.ident[gi] == pool.ident[q[i]]).tolist()
        prompt = ctx.render(task, rng, gallery=P.gallery_block(len(gi)))
        rows.append(make_row(task, reid_turns(ctx, rng, prompt, matches, bool(best[i])),
                             ctx.ids(np.concatenate([[q[i]], gi])),
                             {"matches": matches, "best_choice": bool(best[i])}))
    return rows


def reid_standard(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    return _image_reid("reid_standard", ctx, rng, n, eligible=pool.id_count[pool.ident] >= 2)


def reid_cc(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool

    def other_outfit(q, c):
        return (pool.clothes[c] >= 0) & (pool.clothes[c] != pool.clothes[q][:, None])

    return _image_reid("reid_cc", ctx, rng, n, eligible=ctx.other_clothes > 0, hard=other_outfit)


def reid_vi(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool

    def other_modality(q, c):
        return pool.infrared[c] != pool.infrared[q][:, None]

    # Images of the other modality in the query's dataset, minus the query identity's own.
    per_ds = np.zeros((len(pool.dataset_names), 2), dtype=np.int64)
    np.add.at(per_ds, (pool.ds, pool.infrared.astype(int)), 1)

    def supply(q):
        return per_ds[pool.ds[q], 1 - pool.infrared[q].astype(int)] - ctx.other_modality[q]

    return _image_reid("reid_vi", ctx, rng, n, eligible=ctx.other_modality > 0,
                       positives_allowed=other_modality, distractor_valid=other_modality,
                       supply=supply)


def reid_t2i(ctx: Context, rng, n: int) -> list[dict]:
    """The description of one image queries a gallery holding it, maybe more images of the same
    person, and distractors the description does not fit (``sampling.describes``)."""
    pool, cfg = ctx.pool, ctx.config
    q = ctx.queries(rng, n, pool.text_count > 0, "reid_t2i")
    tpos = S.pick_text(pool, rng, q)
    best, none = _pages(ctx, rng, n)

    def valid(qq, c):
        return ~S.describes(pool, ctx.text_keys, np.broadcast_to(tpos[:, None], c.shape),
                            np.broadcast_to(qq[:, None], c.shape), c)

    n_gallery = S.gallery_sizes(rng, n, *cfg.reid_gallery)
    n_match = ctx.match_counts(rng, n_gallery + 1, pool.id_count[pool.ident[q]])
    none = _no_match_pages(ctx, rng, q, none, valid)
    n_match[none] = 0  # a page without the described person
    n_gallery = np.maximum(n_gallery, n_match)
    others = S.same_identity(pool, rng, q, np.maximum(n_match - 1, 0)) if (n_match > 1).any() else \
        np.zeros((n, 0), dtype=np.int64)
    pos = np.concatenate([q[:, None], others], 1)
    g, n_gallery = _gallery(ctx, rng, q, n_gallery, n_match, pos, distractor_valid=valid,
                            min_distractors=none.astype(np.int64))
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        matches = np.flatnonzero(pool.ident[gi] == pool.ident[q[i]]).tolist()
        text = pool.texts[pool.text_code[tpos[i]]]
        prompt = ctx.render("reid_t2i", rng, text=text, gallery=P.gallery_block(len(gi)))
        rows.append(make_row("reid_t2i", reid_turns(ctx, rng, prompt, matches, bool(best[i])),
                             ctx.ids(gi),
                             {"matches": matches, "best_choice": bool(best[i]),
                              "text": {"image_id": pool.image_id[q[i]],
                                       "caption": int(pool.text_src[tpos[i]])}}))
    return rows


# --- attribute-based and multi-modal retrieval ------------------------------------------------
def _attribute_gallery(ctx: Context, rng, n: int, task: str, min_own: int = 1,
                       none: np.ndarray | None = None):
    """Targets, their partial attribute queries (bool key masks), galleries and matches.

    The gallery holds the target, with ``min_own >= 2`` also ``own - 1`` more images of the
    target's identity (``own >= min_own``), and distractors of other identities annotated for
    every queried key; whether a distractor matches is read from its attributes, so several people
    may match a generic query. (Other images of the target's identity may lack an annotation the
    query uses, so they join only conversations, whose later turns match by identity.) The rows
    of ``none`` (where their benchmark allows) get neither the target nor anyone with the
    queried attributes: a page without a match.
    """
    pool, cfg = ctx.pool, ctx.config
    annotated = pool.attrs >= 0
    if min_own > 1:
        # Conversations: query only keys annotated on every image of the identity, so whether
        # any of its images matches the query is known.
        queryable = np.logical_and.reduceat(annotated, pool.id_start, axis=0)[pool.ident]
    else:
        queryable = annotated
    eligible = queryable.any(1) & (pool.id_count[pool.ident] >= min_own)
    t = ctx.queries(rng, n, eligible, task)
    n_keys = queryable[t].sum(1)
    size = 1 + (rng.random(n) * np.minimum(n_keys, cfg.max_query_attributes)).astype(int)
    keys = np.where(queryable[t], rng.random(queryable[t].shape), np.inf)
    rank = np.argsort(np.argsort(keys, 1), 1)
    mask = rank < size[:, None]                               # the queried keys
    n_gallery = np.maximum(S.gallery_sizes(rng, n, *cfg.reid_gallery), min_own + 1)
    if min_own > 1:
        own = ctx.match_counts(rng, n_gallery + 1, pool.id_count[pool.ident[t]])
        own = np.maximum(own, min_own)
    else:
        own = np.ones(n, dtype=np.int64)
    none = np.zeros(n, dtype=bool) if none is None else none

    def valid(tt, c):
        ok = (annotated[c] | ~mask[:, None, :]).all(-1)
        fits = ((pool.attrs[c] == pool.attrs[tt][:, None, :]) | ~mask[:, None, :]).all(-1)
        return ok & ~(none[:, None] & fits)

    none = _no_match_pages(ctx, rng, t, none, valid)
    own[none] = 0
    others = S.same_identity(pool, rng, t, np.maximum(own - 1, 0)) if (own > 1).any() else \
        np.zeros((n, 0), dtype=np.int64)
    pos = np.concatenate([t[:, None], others], 1)
    g, n_gallery = _gallery(ctx, rng, t, n_gallery, own, pos, distractor_valid=valid,
                            min_distractors=none.astype(np.int64))
    return t, mask, n_gallery, g


def _satisfies(pool, images: np.ndarray, target: int, mask_row: np.ndarray) -> np.ndarray:
    a = pool.attrs[images][:, mask_row]
    return (a == pool.attrs[target][mask_row]).all(1)


def attr_retrieval(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    best, none = _pages(ctx, rng, n)
    t, mask, n_gallery, g = _attribute_gallery(ctx, rng, n, "attr_retrieval", none=none)
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        query = {k: v for k, v in pool.attributes(t[i]).items() if mask[i, ATTR_KEYS.index(k)]}
        matches = np.flatnonzero(_satisfies(pool, gi, t[i], mask[i])).tolist()
        prompt = ctx.render("attr_retrieval", rng, attributes=P.attribute_query(query),
                            gallery=P.gallery_block(len(gi)))
        rows.append(make_row("attr_retrieval", reid_turns(ctx, rng, prompt, matches, bool(best[i])),
                             ctx.ids(gi), {"query_attributes": query, "matches": matches,
                                           "best_choice": bool(best[i])}))
    return rows


def multimodal_retrieval(ctx: Context, rng, n: int) -> list[dict]:
    conv = rng.random(n) < ctx.config.conversation_prob
    rows: list = [None] * n
    for flag, builder in ((True, _conversation), (False, _image_and_text)):
        idx = np.flatnonzero(conv == flag)
        if len(idx):
            for i, row in zip(idx, builder(ctx, rng, len(idx))):
                rows[i] = row
    return rows


def _conversation(ctx: Context, rng, n: int) -> list[dict]:
    """Turn 1: attribute-based retrieval, one best image (the target). Turn 2: that image becomes
    the query; the answer names the other images of its identity."""
    pool = ctx.pool
    t, mask, n_gallery, g = _attribute_gallery(ctx, rng, n, "multimodal_retrieval", min_own=2)
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        query = {k: v for k, v in pool.attributes(t[i]).items() if mask[i, ATTR_KEYS.index(k)]}
        k = int(np.flatnonzero(gi == t[i])[0])
        same = [j for j in np.flatnonzero(pool.ident[gi] == pool.ident[t[i]]).tolist() if j != k]
        first = ctx.render("attr_retrieval", rng, attributes=P.attribute_query(query),
                           gallery=P.gallery_block(len(gi)))
        second = ctx.render("multimodal_followup", rng, index=k + 1)
        rows.append(make_row("multimodal_retrieval",
                             [(first, P.answer_best_choice(k)), (second, P.answer_reid(same))],
                             ctx.ids(gi),
                             {"variant": "conversation", "query_attributes": query,
                              "picked": k, "matches": same}))
    return rows


def _image_and_text(ctx: Context, rng, n: int) -> list[dict]:
    """An image query plus a description of another image of the same person (e.g. in other
    clothes, or in the other modality), for "he may have changed clothes" style requests."""
    pool, cfg = ctx.pool, ctx.config
    has_text = pool.text_count > 0
    # Queries whose identity has another image with a description.
    n_text = np.bincount(pool.ident, weights=has_text, minlength=len(pool.id_count))
    q = ctx.queries(rng, n, (n_text[pool.ident] - has_text) > 0, "multimodal_retrieval")
    target = S.same_identity(pool, rng, q, np.ones(n, dtype=int),
                             allowed=lambda qq, c: has_text[c])[:, 0]
    tpos = S.pick_text(pool, rng, target)
    best, none = _pages(ctx, rng, n)

    def valid(qq, c):
        return ~S.describes(pool, ctx.text_keys, np.broadcast_to(tpos[:, None], c.shape),
                            np.broadcast_to(target[:, None], c.shape), c)

    n_gallery = S.gallery_sizes(rng, n, *cfg.reid_gallery)
    n_match = ctx.match_counts(rng, n_gallery, pool.id_count[pool.ident[q]] - 1)
    none = _no_match_pages(ctx, rng, q, none, valid)
    n_match[none] = 0
    n_gallery = np.maximum(n_gallery, n_match)
    rest = S.same_identity(pool, rng, q, np.maximum(n_match - 1, 0), exclude=target[:, None]) \
        if (n_match > 1).any() else np.zeros((n, 0), dtype=np.int64)
    pos = np.concatenate([target[:, None], rest], 1)
    g, n_gallery = _gallery(ctx, rng, q, n_gallery, n_match, pos, distractor_valid=valid,
                            min_distractors=none.astype(np.int64))
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        matches = np.flatnonzero(pool.ident[gi] == pool.ident[q[i]]).tolist()
        prompt = ctx.render("multimodal_retrieval", rng, text=pool.texts[pool.text_code[tpos[i]]],
                            gallery=P.gallery_block(len(gi)))
        rows.append(make_row("multimodal_retrieval",
                             reid_turns(ctx, rng, prompt, matches, bool(best[i])),
                             ctx.ids(np.concatenate([[q[i]], gi])),
                             {"variant": "image_text", "matches": matches,
                              "best_choice": bool(best[i]),
                              "text": {"image_id": pool.image_id[target[i]],
                                       "caption": int(pool.text_src[tpos[i]])}}))
    return rows


BUILDERS = {f.__name__: f for f in (reid_standard, reid_cc, reid_vi, reid_t2i, attr_retrieval,
                                    multimodal_retrieval)}
# The scorer's Yes/No formats, replayed from stage 2 (config.DEFAULT_MIX explains why).
BUILDERS.update({name: stage2.BUILDERS[name] for name in P.SCORING_TASKS})
