"""Stage 2, fine-grained image retrieval: the seven tasks of Figure 4.

Each builder takes (context, rng, n) and returns n rows. Sampling is vectorised over the n rows
(``sampling.py``); only the final rendering of text is a Python loop. Answers come from ground
truth only: identity (``ident``) for image matching, the owner of a description for text matching
(see ``sampling.describes`` for when a description counts as describing another image), and the
annotated attributes for the attribute tasks.
"""

from __future__ import annotations

import numpy as np

from chatreid import prompts as P
from chatreid.instructions import sampling as S
from chatreid.instructions.pool import ATTR_KEYS
from chatreid.instructions.rows import make_row


class Context:
    """A pool plus the config and the lookups the builders share (computed once per process)."""

    def __init__(self, pool, config):
        self.pool = pool
        self.config = config
        self.text_keys = pool.text_keys()
        ds_w = np.array([config.dataset_weights.get(d, 1.0) for d in pool.dataset_names])
        self.ds_weight = ds_w[pool.ds] if len(pool) else np.zeros(0)
        ident = pool.ident
        n_ir = np.bincount(ident, weights=pool.infrared, minlength=len(pool.id_count))
        self.other_modality = np.where(pool.infrared, (pool.id_count[ident] - n_ir[ident]),
                                       n_ir[ident]).astype(np.int64)
        # Images of the same identity in other (known) clothes.
        same = np.zeros(len(pool), dtype=np.int64)
        known = pool.clothes >= 0
        if known.any():
            cnt = np.bincount(pool.clothes[known])
            known_per_id = np.bincount(ident[known], minlength=len(pool.id_count))
            same[known] = known_per_id[ident[known]] - cnt[pool.clothes[known]]
        self.other_clothes = same
        # Datasets with a single identity cannot supply distractors.
        ids_per_ds = np.bincount(pool.ds[pool.id_start], minlength=len(pool.dataset_names)) \
            if len(pool) else np.zeros(0, dtype=int)
        self.has_others = ids_per_ds[pool.ds] >= 2 if len(pool) else np.zeros(0, dtype=bool)

    def render(self, name: str, rng, **fields) -> str:
        return P.render(name, rng, self.config.paraphrase_prob, **fields)

    def queries(self, rng, n: int, eligible: np.ndarray, task: str,
                needs_others: bool = True) -> np.ndarray:
        w = eligible * self.ds_weight * (self.has_others if needs_others else 1)
        if not len(w) or w.sum() <= 0:
            raise ValueError(f"task {task}: no image in the store qualifies as a query "
                             "(docs/instructions.md says what each task needs; leave it out with "
                             f"--mix {task}=0)")
        return S.weighted_choice(rng, w, n)

    def match_counts(self, rng, gallery: np.ndarray, available: np.ndarray) -> np.ndarray:
        """Eq. 1 as configured (``sampling.match_counts``)."""
        return S.match_counts(rng, gallery, available, self.config.eq1_reading, self.config.match_power)

    def ids(self, idx) -> list[str]:
        return self.pool.image_id[np.asarray(idx)].tolist()

    def foreign_texts(self, rng, q: np.ndarray, k: int, counts: np.ndarray | None = None,
                      shrink: bool = False):
        """(images, text positions, counts): (rows, k) descriptions of other people that do not
        describe ``q``, distinct within a row; only the first ``counts[r]`` columns of row r
        are constrained (the rest are filler). With ``shrink``, a row that cannot get
        ``counts[r]`` gets fewer (at least one) and the returned counts say how many."""
        pool = self.pool
        counts = np.full(len(q), k) if counts is None else np.array(counts)
        out_d = np.zeros((len(q), k), dtype=np.int64)
        out_t = np.zeros((len(q), k), dtype=np.int64)
        todo = np.arange(len(q))
        col = np.arange(k)[None, :]
        for _ in range(S.MAX_TRIES):
            if not len(todo):
                return out_d, out_t, counts
            qs, used = q[todo], col < counts[todo][:, None]
            d = S.distractors(pool, rng, qs, k, what="described person", counts=counts[todo],
                              valid=lambda qq, c: (pool.text_count[c] > 0)
                              & ((pool.attr_sig[c] != pool.attr_sig[qq][:, None]) | (pool.attr_sig[c] < 0)))
            t = S.pick_text(pool, rng, d)
            bad = S.describes(pool, self.text_keys, t, d, np.broadcast_to(qs[:, None], d.shape))
            bad |= S._duplicates(np.where(used, pool.text_code[t], -1 - col))
            out_d[todo], out_t[todo] = d, t
            todo = todo[(bad & used).any(1)]
        if not shrink or (counts[todo] <= 1).any():
            r = todo[0]
            raise ValueError(f"cannot find {counts[r]} distinct descriptions of other people for "
                             f"{pool.image_id[q[r]]!r}")
        # Fewer options where the benchmark has too few distinct descriptions (tiny splits).
        d, t, c = self.foreign_texts(rng, q[todo], k, counts[todo] - 1, shrink=True)
        out_d[todo], out_t[todo], counts[todo] = d, t, c
        return out_d, out_t, counts


def _gallery(ctx: Context, rng, q: np.ndarray, n_gallery: np.ndarray, n_match: np.ndarray,
             positives: np.ndarray, distractor_valid=None, supply: np.ndarray | None = None,
             min_distractors=1):
    """((rows, max N) gallery matrix, N per row): the positives and N - m distractors, shuffled;
    -1 pads. N is cut where the query's benchmark cannot supply N - m suitable images of other
    people (``supply`` bounds it up front; rows that still fail lose one distractor at a time,
    down to ``min_distractors``, a number or one per row). Only tiny stores, e.g. a validation
    split of two identities, ever hit this."""
    pool = ctx.pool
    others = (pool.ds_end - pool.ds_start)[pool.ds[q]] - pool.id_count[pool.ident[q]]
    if supply is not None:
        others = np.minimum(others, supply)
    need = np.minimum(n_gallery - n_match, others)
    floor = np.broadcast_to(np.asarray(min_distractors), need.shape)
    while True:
        k = int(need.max()) if len(need) else 0
        neg, failed = S.distractors(pool, rng, q, k, valid=distractor_valid, counts=need,
                                    strict=False)
        if not failed.any():
            break
        if (need[failed] <= floor[failed]).any():
            r = np.flatnonzero(failed & (need <= floor))[0]
            raise ValueError(f"dataset {pool.dataset_names[pool.ds[q[r]]]!r} cannot supply "
                             f"{need[r]} suitable distractor(s) for {pool.image_id[q[r]]!r}")
        need[failed] -= 1
    if (need < floor).any():
        r = np.flatnonzero(need < floor)[0]
        raise ValueError(f"dataset {pool.dataset_names[pool.ds[q[r]]]!r} has too few other "
                         f"people for a gallery around {pool.image_id[q[r]]!r}")
    n_gallery = n_match + need
    width = int(n_gallery.max())
    j = np.arange(width)[None, :]
    m = n_match[:, None]
    if positives.shape[1]:
        pos_part = np.take_along_axis(positives, np.clip(j, 0, positives.shape[1] - 1).repeat(len(q), 0), 1)
    else:  # every row a page without a match
        pos_part = np.full((len(q), width), -1)
    if k:
        neg_part = np.take_along_axis(neg, np.clip(j - m, 0, k - 1), 1)
    else:
        neg_part = np.full((len(q), width), -1)
    g = np.where(j < m, pos_part, neg_part)
    g[j >= n_gallery[:, None]] = -1
    return S.shuffle_rows(rng, g, n_gallery), n_gallery


# --- image-to-image ---------------------------------------------------------------------------
def i2i_one_to_one(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    q = ctx.queries(rng, n, pool.id_count[pool.ident] >= 2, "i2i_one_to_one")
    same = rng.random(n) < ctx.config.positive_prob
    other = np.empty(n, dtype=np.int64)
    if same.any():
        other[same] = S.same_identity(pool, rng, q[same], np.ones(same.sum(), dtype=int))[:, 0]
    if (~same).any():
        other[~same] = S.distractors(pool, rng, q[~same], 1)[:, 0]
    if ctx.config.lookalike_negatives > 0:  # drawn only when asked: default datasets stay byte-identical
        _lookalikes(ctx, rng, q, other, ~same & (rng.random(n) < ctx.config.lookalike_negatives))
    swap = rng.random(n) < 0.5
    a, b = np.where(swap, other, q), np.where(swap, q, other)
    rows = []
    for i in range(n):
        ids = ctx.ids([a[i], b[i]])
        rows.append(make_row("i2i_one_to_one", [(ctx.render("i2i_one_to_one", rng),
                                                 P.answer_yes_no(bool(same[i])))], ids,
                             {"same": bool(same[i]), "pids": [int(pool.pid[a[i]]), int(pool.pid[b[i]])]}))
    return rows


def _lookalikes(ctx: Context, rng, q: np.ndarray, other: np.ndarray, rows: np.ndarray) -> None:
    """Replace ``other[rows]`` by another person dressed like the query (same upper and lower
    colours); rows whose query is not colour-annotated (infrared) or has no such person keep their
    uniform draw."""
    pool = ctx.pool
    up, low = ATTR_KEYS.index("upper_color"), ATTR_KEYS.index("lower_color")
    rows = np.flatnonzero(rows & (pool.attrs[q, up] >= 0) & (pool.attrs[q, low] >= 0))
    if not len(rows):
        return

    def dressed_alike(qq, c):
        return (pool.attrs[c, up] == pool.attrs[qq, up][:, None]) & (pool.attrs[c, low] == pool.attrs[qq, low][:, None])

    drawn, failed = S.distractors(pool, rng, q[rows], 1, valid=dressed_alike, strict=False)
    keep = rows[~failed]
    other[keep] = drawn[~failed, 0]


def i2i_many_to_many(ctx: Context, rng, n: int) -> list[dict]:
    pool, cfg = ctx.pool, ctx.config
    q = ctx.queries(rng, n, pool.id_count[pool.ident] >= 2, "i2i_many_to_many")
    n_gallery = S.gallery_sizes(rng, n, *cfg.gallery)
    n_match = ctx.match_counts(rng, n_gallery, pool.id_count[pool.ident[q]] - 1)
    pos = S.same_identity(pool, rng, q, n_match)
    g, n_gallery = _gallery(ctx, rng, q, n_gallery, n_match, pos)
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        matches = np.flatnonzero(pool.ident[gi] == pool.ident[q[i]]).tolist()
        prompt = ctx.render("i2i_many_to_many", rng, gallery=P.gallery_block(len(gi)))
        rows.append(make_row("i2i_many_to_many", [(prompt, P.answer_matches(matches))],
                             ctx.ids(np.concatenate([[q[i]], gi])),
                             {"matches": matches, "gallery_size": int(len(gi))}))
    return rows


# --- text-to-image ----------------------------------------------------------------------------
def _text_meta(pool, owner: int, pos: int) -> dict:
    """Where a description came from: its image and caption index (-1: attributes rendered)."""
    return {"image_id": pool.image_id[owner], "caption": int(pool.text_src[pos])}


def t2i_one_to_one(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    q = ctx.queries(rng, n, pool.text_count > 0, "t2i_one_to_one")
    same = rng.random(n) < ctx.config.positive_prob
    owner = q.copy()
    tpos = S.pick_text(pool, rng, q)
    if (~same).any():
        d, t, _ = ctx.foreign_texts(rng, q[~same], 1)
        owner[~same], tpos[~same] = d[:, 0], t[:, 0]
    rows = []
    for i in range(n):
        caption = pool.texts[pool.text_code[tpos[i]]]
        prompt = ctx.render("t2i_one_to_one", rng, caption=caption)
        rows.append(make_row("t2i_one_to_one", [(prompt, P.answer_yes_no(bool(same[i])))],
                             ctx.ids([q[i]]),
                             {"same": bool(same[i]), "text": _text_meta(pool, owner[i], tpos[i])}))
    return rows


def t2i_many_to_one(ctx: Context, rng, n: int) -> list[dict]:
    pool, cfg = ctx.pool, ctx.config
    q = ctx.queries(rng, n, pool.text_count > 0, "t2i_many_to_one")
    k = rng.integers(cfg.captions[0], cfg.captions[1] + 1, size=n)
    own = S.pick_text(pool, rng, q)
    kmax = int(k.max())
    d, t, foreign = ctx.foreign_texts(rng, q, kmax - 1, counts=k - 1, shrink=True)
    k = foreign + 1
    owners = np.concatenate([q[:, None], d], 1)
    tpos = np.concatenate([own[:, None], t], 1)
    order = S.shuffle_rows(rng, np.tile(np.arange(kmax), (n, 1)), k)
    rows = []
    for i in range(n):
        o = order[i, :k[i]]
        caps = [pool.texts[pool.text_code[tpos[i, j]]] for j in o]
        answer = int(np.flatnonzero(o == 0)[0])
        prompt = ctx.render("t2i_many_to_one", rng, options=P.caption_options(caps))
        rows.append(make_row("t2i_many_to_one", [(prompt, P.answer_caption_choice(answer))],
                             ctx.ids([q[i]]),
                             {"answer": answer,
                              "texts": [_text_meta(pool, owners[i, j], tpos[i, j]) for j in o]}))
    return rows


def t2i_one_to_many(ctx: Context, rng, n: int) -> list[dict]:
    pool, cfg = ctx.pool, ctx.config
    q = ctx.queries(rng, n, pool.text_count > 0, "t2i_one_to_many")
    tpos = S.pick_text(pool, rng, q)
    n_gallery = S.gallery_sizes(rng, n, *cfg.gallery)
    ones = np.ones(n, dtype=np.int64)

    def valid(qq, c):  # the description must not fit any distractor
        return ~S.describes(pool, ctx.text_keys, np.broadcast_to(tpos[:, None], c.shape),
                            np.broadcast_to(qq[:, None], c.shape), c)

    g, n_gallery = _gallery(ctx, rng, q, n_gallery, ones, q[:, None], distractor_valid=valid)
    rows = []
    for i in range(n):
        gi = g[i, :n_gallery[i]]
        answer = int(np.flatnonzero(gi == q[i])[0])
        caption = pool.texts[pool.text_code[tpos[i]]]
        prompt = ctx.render("t2i_one_to_many", rng, caption=caption, gallery=P.gallery_block(len(gi)))
        rows.append(make_row("t2i_one_to_many", [(prompt, P.answer_description_match(answer))],
                             ctx.ids(gi), {"answer": answer, "text": _text_meta(pool, q[i], tpos[i])}))
    return rows


# --- image-to-attribute -----------------------------------------------------------------------
def attr_compare(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    q = ctx.queries(rng, n, pool.attr_sig >= 0, "attr_compare")
    annotated = pool.attrs >= 0
    same = (rng.random(n) < ctx.config.same_identity_compare) & (pool.id_count[pool.ident[q]] >= 2)
    other = np.empty(n, dtype=np.int64)

    def shares_keys(qq, c):
        return (annotated[c] & annotated[qq][:, None, :]).any(-1)

    if same.any():
        other[same] = S.same_identity(pool, rng, q[same], np.ones(same.sum(), dtype=int),
                                      allowed=shares_keys)[:, 0]
    if (~same).any():
        other[~same] = S.distractors(pool, rng, q[~same], 1, valid=shares_keys)[:, 0]
    rows = []
    for i in range(n):
        answer = P.answer_attr_compare(pool.attributes(q[i]), pool.attributes(other[i]))
        rows.append(make_row("attr_compare", [(ctx.render("attr_compare", rng), answer)],
                             ctx.ids([q[i], other[i]]), {"same_identity": bool(same[i])}))
    return rows


def attr_predict(ctx: Context, rng, n: int) -> list[dict]:
    pool = ctx.pool
    q = ctx.queries(rng, n, pool.attr_sig >= 0, "attr_predict", needs_others=False)
    rows = []
    for i in range(n):
        attrs = pool.attributes(q[i])
        rows.append(make_row("attr_predict", [(ctx.render("attr_predict", rng),
                                               P.answer_attributes(attrs))],
                             ctx.ids([q[i]]), {"attributes": attrs}))
    return rows


BUILDERS = {f.__name__: f for f in (i2i_one_to_one, i2i_many_to_many, t2i_one_to_one,
                                    t2i_many_to_one, t2i_one_to_many, attr_compare, attr_predict)}
