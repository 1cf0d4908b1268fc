"""Space for the ChatReID metric: upload a run as .npz, pick the protocol, read the scores.

The .npz holds the arrays `evaluate_reid` takes: `distmat` (or `rankings`, padded with -1),
`q_pids`, `g_pids`, and `q_camids`, `g_camids`, `q_clothes`, `g_clothes` where the protocol needs them.
"""

from pathlib import Path

import evaluate
import numpy as np

# The module beside this app imports it too: the project, or on a Space its vendored metrics.py.
from chatreid.metrics import PROTOCOLS

HERE = Path(__file__).resolve().parent
# The module file beside this app: works offline and on a Space (whose folder is not named after it).
metric = evaluate.load(str(HERE / "chatreid_metric.py"))

ARRAYS = ("q_pids", "g_pids", "q_camids", "g_camids", "q_clothes", "g_clothes")


def score_npz(path, protocol="market", ranks="1, 5, 10, 20", similarity=False):
    """Score the run stored in the .npz file at `path`; returns the metric's dict."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    unknown = set(arrays) - set(ARRAYS) - {"distmat", "rankings"}
    if unknown:
        raise ValueError(f"unexpected arrays in the file: {sorted(unknown)}")
    kwargs = {k: arrays[k] for k in ARRAYS if k in arrays}
    if "rankings" in arrays:  # rows padded with -1 to a rectangle
        kwargs["rankings"] = [row[row >= 0] for row in arrays["rankings"]]
    if "distmat" in arrays:
        kwargs["distmat"] = arrays["distmat"]
    ranks = [int(r) for r in str(ranks).replace(",", " ").split()]
    return metric.compute(protocol=protocol, ranks=ranks, similarity=bool(similarity), **kwargs)


def card() -> str:
    text = (HERE / "README.md").read_text(encoding="utf-8")
    return text.split("---", 2)[2] if text.startswith("---") else text  # drop the YAML front matter


def build_demo():
    import gradio as gr  # imported here so tests of score_npz stay light

    def run(file, protocol, ranks, similarity):
        if file is None:
            raise gr.Error("Upload a .npz file first.")
        try:
            return score_npz(file, protocol, ranks, similarity)
        except ValueError as err:
            raise gr.Error(str(err))

    with gr.Blocks(title="ChatReID metric") as demo:
        gr.Markdown("# ChatReID metric: CMC, mAP and mINP under each Re-ID protocol")
        with gr.Row():
            with gr.Column():
                file = gr.File(label="run (.npz)", file_types=[".npz"], type="filepath")
                protocol = gr.Dropdown(list(PROTOCOLS), value="market", label="protocol")
                ranks = gr.Textbox(value="1, 5, 10, 20", label="CMC ranks")
                similarity = gr.Checkbox(value=False, label="distmat holds similarities (larger is better)")
                button = gr.Button("Compute", variant="primary")
            result = gr.JSON(label="result")
        button.click(run, [file, protocol, ranks, similarity], result)
        gr.Markdown(card())
    return demo


if __name__ == "__main__":
    build_demo().launch()
