"""Vectorised sampling over a ``Pool``: queries, same-identity images, distractors, gallery sizes
and the number of true matches (Eq. 1).

Every function takes a ``numpy.random.Generator`` and works on whole arrays of rows at once, so a
shard of 50,000 rows costs a few numpy calls rather than 50,000 Python loops.

Eq. 1, as printed: ``P(n = k) = 1 / (k - 1) for k in 2, 3, ..., N``. Read as a distribution it
does not sum to 1 (the sum is the harmonic number H(N-1)); the sentence before it says what it is
for: "ensuring that the probability of recording any number eventually is uniform across all
numbers". We read it as a per-step acceptance probability (``reading="per_step"``, the default):
walk k = 2, ..., N and record k with probability 1 / (k - 1), replacing the number recorded so far
(reservoir sampling). The last number recorded is n = k with probability
``1/(k-1) * prod_{j=k+1}^{N} (1 - 1/(j-1)) = 1/(N-1)``: uniform on 2..N, as the sentence says.

``k`` counts the query together with its true matches in the prompt, so the gallery of N images
holds ``m = n - 1`` matches, ``m = 1 .. N-1`` (at least one match and at least one distractor, as
Figure 4's example has). The walk stops at ``M + 1``, ``M = min(N - 1, matches available)``: an
identity with 3 other images cannot give 5 matches. Queries are drawn first, so this cut only
bites for identities with few images.

The earlier reading (``reading="inverse"``) takes 1/(k-1) as weights over m = k - 1 and
normalises them: ``P(m) = m ** -power / sum_{j=1}^{M} j ** -power`` (``power = 1``: Eq. 1 as
weights, which gives m = 1 to 56% of stage-2 many-to-many rows, N ~ Uniform{2..8}; ``power = 0``:
uniform, as the per-step reading).
"""

from __future__ import annotations

import numpy as np

from chatreid.instructions.pool import Pool

MAX_TRIES = 200


def gallery_sizes(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """N ~ Uniform{low, ..., high} (both ends included), the paper's gallery-size law."""
    if not 1 <= low <= high:
        raise ValueError(f"gallery size range needs 1 <= a <= b, got ({low}, {high})")
    return rng.integers(low, high + 1, size=n)


EQ1_READINGS = ("per_step", "inverse")


def match_counts(rng: np.random.Generator, gallery: np.ndarray, available: np.ndarray,
                 reading: str = "per_step", power: float = 1.0) -> np.ndarray:
    """Number of true matches per row, on 1..min(N-1, available), by Eq. 1 read as ``reading``
    (module docstring): "per_step" walks k = 2..M+1 keeping k with probability 1/(k-1);
    "inverse" draws m with P(m) proportional to m ** -power.

    Rows with ``gallery == 1`` get one match and no distractor (only used for stage 3 where the
    gallery may hold a single image); ``available`` must be >= 1.
    """
    gallery = np.asarray(gallery)
    available = np.asarray(available)
    if (available < 1).any():
        raise ValueError("match_counts: a query without any other image of its identity")
    if reading not in EQ1_READINGS:
        raise ValueError(f"Eq. 1 reading must be one of {EQ1_READINGS}, got {reading!r}")
    top = np.maximum(np.minimum(gallery - 1, available), 1)
    if not len(top):
        return top.astype(np.int64)
    if reading == "per_step":
        k = np.arange(2, int(top.max()) + 2)                       # the walk's steps
        keep = rng.random((len(top), len(k))) < 1.0 / (k - 1)      # k = 2 is always kept
        keep &= k[None, :] <= top[:, None] + 1                     # the walk ends at M + 1
        last = len(k) - 1 - np.argmax(keep[:, ::-1], axis=1)       # the last k recorded
        return (k[last] - 1).astype(np.int64)
    cum = np.cumsum(np.arange(1, int(top.max()) + 1, dtype=np.float64) ** -power)
    target = rng.random(len(top)) * cum[top - 1]
    m = np.searchsorted(cum, target, side="right") + 1
    return np.minimum(m, top)


def weighted_choice(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with probability proportional to ``weights`` (with replacement)."""
    cum = np.cumsum(weights, dtype=np.float64)
    if not len(cum) or cum[-1] <= 0:
        raise ValueError("no eligible image to sample from")
    return np.minimum(np.searchsorted(cum, rng.random(n) * cum[-1], side="right"), len(cum) - 1)


def _duplicates(mat: np.ndarray) -> np.ndarray:
    """Mask of entries equal to an earlier entry of the same row."""
    order = np.argsort(mat, axis=1, kind="stable")
    s = np.take_along_axis(mat, order, axis=1)
    dup_sorted = np.zeros_like(mat, dtype=bool)
    dup_sorted[:, 1:] = s[:, 1:] == s[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return dup


def same_identity(pool: Pool, rng: np.random.Generator, q: np.ndarray, k: np.ndarray,
                  allowed=None, exclude: np.ndarray | None = None) -> np.ndarray:
    """(rows, max k) matrix of distinct other images of each query's identity; -1 pads rows
    whose k is smaller. ``allowed(q_rows, candidates)`` may restrict candidates (bool matrix);
    ``exclude`` (rows, j) lists images that must not be picked (-1 = none).

    Raises ValueError if a row has fewer allowed candidates than its k.
    """
    q = np.asarray(q)
    k = np.asarray(k)
    out = np.full((len(q), int(k.max()) if len(k) else 0), -1, dtype=np.int64)
    for lo in range(0, len(q), 4096):  # bounded memory: rows x (largest identity)
        qs, ks = q[lo:lo + 4096], k[lo:lo + 4096]
        ident = pool.ident[qs]
        start, count = pool.id_start[ident], pool.id_count[ident]
        width = int(count.max())
        cand = start[:, None] + np.arange(width)[None, :]
        ok = np.arange(width)[None, :] < count[:, None]
        cand = np.where(ok, cand, 0)
        ok &= cand != qs[:, None]
        if allowed is not None:
            ok &= allowed(qs, cand)
        if exclude is not None:
            for col in exclude[lo:lo + 4096].T:
                ok &= cand != col[:, None]
        short = ok.sum(axis=1) < ks
        if short.any():
            bad = qs[np.flatnonzero(short)[0]]
            raise ValueError(f"identity of {pool.image_id[bad]!r} has too few suitable images")
        keys = np.where(ok, rng.random(ok.shape), np.inf)
        order = np.argsort(keys, axis=1)[:, :out.shape[1]]
        picked = np.take_along_axis(cand, order, axis=1)
        picked[np.arange(out.shape[1])[None, :] >= ks[:, None]] = -1
        out[lo:lo + len(qs)] = picked
    return out


def distractors(pool: Pool, rng: np.random.Generator, q: np.ndarray, k: int,
                valid=None, what: str = "distractor", counts: np.ndarray | None = None,
                strict: bool = True):
    """(rows, k) distinct images of the query's dataset, none of the query's identity.

    ``counts`` (per row, <= k) limits the columns that matter; the others are filled but
    unconstrained. ``valid(q_rows, candidates) -> bool matrix`` adds conditions (other modality,
    a description that must not fit...). Drawn uniformly and redrawn where a condition fails; a
    dataset that cannot supply them raises ValueError naming it; with ``strict=False`` the
    result is (matrix, mask of the rows that failed) instead.
    """
    q = np.asarray(q)
    if k == 0 or len(q) == 0:
        out = np.zeros((len(q), k), dtype=np.int64)
        return out if strict else (out, np.zeros(len(q), dtype=bool))
    d = pool.ds[q]
    lo, span = pool.ds_start[d], pool.ds_end[d] - pool.ds_start[d]
    out = lo[:, None] + (rng.random((len(q), k)) * span[:, None]).astype(np.int64)
    col = np.arange(k)[None, :]
    used = col < (np.asarray(counts)[:, None] if counts is not None else k)
    for _ in range(MAX_TRIES):
        bad = pool.ident[out] == pool.ident[q][:, None]
        if valid is not None:
            bad |= ~valid(q, out)
        bad |= _duplicates(np.where(used, out, -1 - col))
        bad &= used
        if not bad.any():
            return out if strict else (out, np.zeros(len(q), dtype=bool))
        r, c = np.nonzero(bad)
        out[r, c] = lo[r] + (rng.random(len(r)) * span[r]).astype(np.int64)
    if not strict:
        return out, bad.any(1)
    r = np.nonzero(bad)[0][0]
    raise ValueError(f"dataset {pool.dataset_names[d[r]]!r} cannot supply {int(used[r].sum())} "
                     f"{what}(s) for {pool.image_id[q[r]]!r} (too few other identities or "
                     "suitable images)")


def pick_text(pool: Pool, rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    """One description (index into ``pool.text_code``) per image; images must have text."""
    images = np.asarray(images)
    return pool.text_start[images] + (rng.random(images.shape) * pool.text_count[images]).astype(np.int64)


def describes(pool: Pool, text_keys: np.ndarray, text_pos: np.ndarray, owner: np.ndarray,
              images: np.ndarray) -> np.ndarray:
    """True where the description at ``text_pos`` (of image ``owner``) may describe ``images``.

    A different identity alone is not enough to call a description wrong for an image: the same
    sentence (typically an attribute rendering) may be carried by both, or the two images may
    carry the very same attributes. Either counts as "describes"; all arguments share one shape.
    """
    n_t = max(len(pool.texts), 1)
    key = images.astype(np.int64) * n_t + pool.text_code[text_pos].astype(np.int64)
    pos = np.minimum(np.searchsorted(text_keys, key), max(len(text_keys) - 1, 0))
    has = (text_keys[pos] == key) if len(text_keys) else np.zeros(key.shape, dtype=bool)
    sig = pool.attr_sig[owner]
    return has | ((pool.attr_sig[images] == sig) & (sig >= 0))


def shuffle_rows(rng: np.random.Generator, mat: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Shuffle the first ``width[r]`` entries of each row independently (padding stays last)."""
    keys = rng.random(mat.shape)
    keys[np.arange(mat.shape[1])[None, :] >= np.asarray(width)[:, None]] = np.inf
    return np.take_along_axis(mat, np.argsort(keys, axis=1), axis=1)
