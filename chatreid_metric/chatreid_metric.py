"""ChatReID metric: CMC, mAP and mINP for person re-identification under each benchmark's protocol.

An `evaluate` module around `chatreid.metrics.evaluate_reid` (one implementation for the module and
the evaluation harness). Per-query inputs are streamed with `add_batch`; gallery inputs and the
protocol go to `compute`.
"""

import datasets
import evaluate
import numpy as np

from chatreid.metrics import PROTOCOLS, evaluate_reid

_CITATION = """\
@misc{niu2025chatreid,
  title={ChatReID: Open-ended Interactive Person Retrieval via Hierarchical Progressive Tuning for Vision Language Models},
  author={Niu, Ke and Yu, Haiyang and Fu, Teng and Yi, Siyang and Li, Bin and Qian, Xuelin and others},
  year={2025}
}
"""

_DESCRIPTION = """\
Person re-identification retrieval metrics: CMC at chosen ranks, mAP and mINP, computed the way each
benchmark's standard public code computes them (protocols: """ + ", ".join(PROTOCOLS) + """).
Input is a distance matrix, a similarity matrix, or per-query rankings from a re-ranker.
"""

_KWARGS_DESCRIPTION = """
Per-query inputs (one entry per query; stream them with `add_batch`, or pass them to `compute`):
    distmat (`list` of `float` rows): the query's distance to every gallery item (similarity with
        `similarity=True`). Optional with `rankings`, where it orders the items a ranking leaves out.
    rankings (`list` of `int` lists): the query's gallery indices, best first; may cover part of
        the gallery (the rest follows by `distmat` when given, else by gallery index).
    q_pids (`int`): the query's identity.
    q_camids (`int`, optional): the query's camera, numbered as the benchmark does (SYSU-MM01: 1-6).
    q_clothes (`str` or `int`, optional): the query's clothes id (`cc`, `sc`); stored as text.
Gallery inputs and options (to `compute` only):
    g_pids, g_camids, g_clothes: one entry per gallery item.
    protocol (`str`, default "market"): one of """ + ", ".join(PROTOCOLS) + """.
    ranks (`list` of `int`, default [1, 5, 10, 20]).
    similarity (`bool`, default False).
    num_repeats, seed (cuhk03_classic); search_mode, dedup_cmc (sysu).
Returns:
    rank1, rank5, ... (`float`), cmc (`list` of `float`, max(ranks) long), mAP, mINP (`float`, 0-1),
    num_valid_queries (`int`).
Examples:
    >>> import evaluate
    >>> metric = evaluate.load("chatreid_metric")
    >>> metric.compute(distmat=[[0.1, 0.9], [0.8, 0.2]], q_pids=[1, 2], q_camids=[1, 1],
    ...                g_pids=[1, 2], g_camids=[2, 2], ranks=[1])
    {'rank1': 1.0, 'cmc': [1.0], 'mAP': 1.0, 'mINP': 1.0, 'num_valid_queries': 2}
"""

_FEATURES = datasets.Features(
    {
        "distmat": datasets.List(datasets.Value("float64")),  # float64 holds float32 scores exactly
        "rankings": datasets.List(datasets.Value("int64")),
        "q_pids": datasets.Value("int64"),
        "q_camids": datasets.Value("int64"),
        "q_clothes": datasets.Value("string"),
    }
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ChatreidMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES,
            reference_urls=[
                "https://github.com/KaiyangZhou/deep-person-reid/blob/master/torchreid/metrics/rank.py",
                "https://github.com/guxinqian/Simple-CCReID/blob/main/tools/eval_metrics.py",
                "https://github.com/mangye16/ReID-Survey/blob/master/eval_metrics.py",
                "https://github.com/anosorae/IRRA/blob/main/utils/metrics.py",
            ],
        )

    # evaluate stores every feature column; the optional ones (cameras, clothes, one of
    # distmat/rankings) become null columns when left out, so callers need not pass them.
    def add_batch(self, **inputs):
        """Add a batch of queries: distmat or rankings rows, q_pids, and q_camids/q_clothes if used."""
        super().add_batch(**_fill_optional(inputs))

    def add(self, **inputs):
        """Add one query: its distmat or rankings row, q_pids, and q_camids/q_clothes if used."""
        batch = _fill_optional({k: None if v is None else [v] for k, v in inputs.items()})
        super().add(**{k: v[0] for k, v in batch.items()})

    def _compute(
        self,
        distmat,
        rankings,
        q_pids,
        q_camids,
        q_clothes,
        g_pids=None,
        g_camids=None,
        g_clothes=None,
        protocol="market",
        ranks=(1, 5, 10, 20),
        similarity=False,
        **protocol_options,
    ):
        distmat = _column("distmat", distmat)
        if distmat is not None:
            if len({len(row) for row in distmat}) != 1:
                raise ValueError("distmat: every query row must have one score per gallery item")
            distmat = np.asarray(distmat, dtype=np.float64)
        q_clothes = _column("q_clothes", [c or None for c in q_clothes])
        if q_clothes is not None and g_clothes is not None:
            g_clothes = np.asarray(g_clothes).astype(str)  # q_clothes are stored as text
        return evaluate_reid(
            distmat,
            _column("q_pids", q_pids),
            g_pids,
            _column("q_camids", q_camids),
            g_camids,
            q_clothes,
            g_clothes,
            protocol=protocol,
            ranks=ranks,
            similarity=similarity,
            rankings=_column("rankings", rankings),
            **protocol_options,
        )


def _fill_optional(inputs: dict) -> dict:
    given = {k: v for k, v in inputs.items() if v is not None}
    if "distmat" not in given and "rankings" not in given:
        raise ValueError("pass distmat rows or rankings for each query")
    n = len(given.get("distmat", given.get("rankings")))
    filled = {name: [None] * n for name in _FEATURES} | given
    # evaluate refuses null or non-text values in a string column: clothes ids are stored as text,
    # "" standing for "not given".
    clothes = filled["q_clothes"]
    if any(c is not None and str(c) == "" for c in clothes):
        raise ValueError("q_clothes: a clothes id is empty")
    filled["q_clothes"] = ["" if c is None else str(c) for c in clothes]
    return filled


def _column(name, values):
    """A stored column as given, None when it was left out; a partly missing column is an error."""
    missing = [v is None for v in values]
    if all(missing):
        return None
    if any(missing):
        raise ValueError(f"{name} is missing for query {missing.index(True)} but given for others")
    return values
