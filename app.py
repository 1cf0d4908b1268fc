"""ChatReID chat: find a person in a gallery by talking to a Re-ID vision-language model.

    python app.py [--model PATH_OR_HUB_ID] [--host 0.0.0.0] [--port 7860] [--share]

A Gradio 6 multimodal chat over ``chatreid.retrieval`` (the engine does all Re-ID; this file is the
page's widgets and their wiring): upload a gallery, attach the person's photo or describe them, get
the answer and the ranked gallery, refine turn by turn. What each request does is the chat layer's
(``chatreid.chat``: handlers, the words, the conversation, limits, uploads, sessions, the default
model). The API is documented in ``docs/app.md``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import dataclass

# Before gradio is imported: no analytics or version look-ups leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from chatreid.chat import handlers, sessions  # noqa: E402
from chatreid.chat.answers import HELP_TEXT, task_choices  # noqa: E402
from chatreid.chat.engine import ChatEngine  # noqa: E402
from chatreid.chat.examples import EXAMPLES_DIR, example_rows  # noqa: E402
from chatreid.chat.handlers import Handlers, fit_limits  # noqa: E402
from chatreid.chat.sessions import ClientCookie, Session, client_of  # noqa: E402
from chatreid.chat.style import CSS  # noqa: E402
from chatreid.chat.settings import (Limits, ModelChoice, SettingsError, banner_markdown,  # noqa: E402
                                    check_start, load_engine, model_markdown)
from chatreid.tasks import AUTO, TASK_NAMES  # noqa: E402

log = logging.getLogger("chatreid.app")

# The one model-bound call of a chat turn runs inside @spaces.GPU on a ZeroGPU Space (the GPU is
# attached only for its duration); elsewhere ``spaces`` is absent or this repository's own folder.
try:
    import spaces  # type: ignore
except ImportError:  # not on a Space
    spaces = None
run_turn = spaces.GPU(duration=120)(handlers.run_turn) if getattr(spaces, "GPU", None) else handlers.run_turn

# Gallery uploads (decoding and the pre-filter's features) run one at a time, in their own lane
# beside the model's: on 2 cores, two or four at once took 1.5x and 2x as long in all as one by
# one (docs/benchmarks.md), so the last of 8 simultaneous uploads waited longest that way.
GALLERY_CALLS = dict(concurrency_id="gallery", concurrency_limit=1)


@dataclass
class Page:
    """The page's components that events connect: made by ``_page``, wired by ``_connect``."""

    state: gr.State
    gallery_files: gr.File
    example_pick: gr.Dropdown
    task: gr.Dropdown
    reset_btn: gr.Button
    chatbot: gr.Chatbot
    box: gr.MultimodalTextbox
    results: gr.Gallery
    api: dict  # API-only components (hidden) of the /search and /chat endpoints
    sent: gr.State  # the message the page just sent, between echo and the turn
    examples: gr.Examples | None = None  # the examples table (its click starts a new query)


def _setup_column(limits: Limits, examples) -> tuple:
    """The left column: 1 · the gallery (upload or example), 2 · the task preset, start over."""
    gr.Markdown("### 1 · Gallery")
    # No file_types: Gradio would refuse a whole upload over one other file; load_gallery skips
    # and names what is not an image (as /search does).
    gallery_files = gr.File(file_count="multiple",
                            label=f"Upload photos or a zip (max {limits.max_gallery} "
                                  f"images, {limits.max_file_mb} MB a file)",
                            elem_id="gallery-upload", height=160)
    example_pick = gr.Dropdown(
        choices=[(e.title, e.name) for e in examples.values()], value=None,
        label="…or a built-in example gallery", elem_id="example-gallery")
    gr.Markdown("### 2 · Task")
    task = gr.Dropdown(choices=task_choices(), value=AUTO, label="Re-ID setting",
                       elem_id="task")
    reset_btn = gr.Button("Start over", variant="secondary")
    return gallery_files, example_pick, task, reset_btn


def _chat_column() -> tuple:
    """The right column: the chat, the message box (3 · ask) and the help, which stays there
    whatever the chat shows."""
    chatbot = gr.Chatbot(value=[{"role": "assistant", "content": HELP_TEXT}], label="ChatReID", height=420,
                         elem_id="chat", feedback_options=None)
    box = gr.MultimodalTextbox(
        file_types=["image"], file_count="multiple", sources=["upload"],
        placeholder="3 · Attach the person's photo and ask, or describe them "
                    "(e.g. a woman in a red top with a black backpack)",
        label="Message", show_label=False, elem_id="ask")
    with gr.Accordion("Help: what you can ask", open=False, elem_id="help"):
        gr.Markdown(HELP_TEXT)
    return chatbot, box


def _api_components() -> dict:
    """API-only components (never shown) for the stateless /search endpoint and /chat."""
    with gr.Row(visible=False):
        return {
            "query": gr.File(file_count="multiple", label="query images"),
            "gallery": gr.File(file_count="multiple", label="gallery images or zips"),
            "text": gr.Textbox(label="request"),
            "task": gr.Dropdown(choices=[AUTO, *TASK_NAMES], value=AUTO, label="task"),
            "out": gr.JSON(label="result"),
            "search": gr.Button("search"),
            "box": gr.MultimodalTextbox(file_count="multiple", label="message"),
            "chat": gr.Button("chat"),
        }


def _page(engine, choice: ModelChoice, limits: Limits, examples) -> Page:
    """The page, top to bottom: title and model, the gallery and task column beside the chat, the
    ranked gallery, the examples; then the hidden API components."""
    # Our SessionStore drops an idle session's images after CHATREID_IDLE_MINUTES; Gradio
    # forgets the (then small) session object itself an hour later.
    state = gr.State(Session(), time_to_live=limits.idle_minutes * 60 + 3600)
    gr.Markdown("# ChatReID — find a person by talking to a Re-ID model")
    gr.Markdown(model_markdown(engine, choice), elem_id="model-info")
    gr.Markdown(banner_markdown(choice), elem_id="model-banner")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            gallery_files, example_pick, task, reset_btn = _setup_column(limits, examples)
        with gr.Column(scale=2, min_width=400):
            chatbot, box = _chat_column()
    # The gallery's own label would float over its first row (and wrap over two on a phone).
    gr.Markdown("### Ranked gallery\nBest first: rank · score · file. Click an image to open it "
                "large.", elem_id="results-title")
    results = gr.Gallery(label="Ranked gallery", show_label=False, columns=6, height="auto",
                         object_fit="contain", elem_id="results", allow_preview=True,
                         preview=False)
    table = None
    if examples:
        table = gr.Examples(examples=example_rows(examples), inputs=[box, example_pick],
                    label="Examples (pick one: it loads the gallery and fills the message; "
                          "then press Enter)", elem_id="examples")
    api = _api_components()
    return Page(state, gallery_files, example_pick, task, reset_btn, chatbot, box, results, api,
                sent=gr.State(None), examples=table)


def _connect(page: Page, h: Handlers, limits: Limits) -> None:
    """The page's events and the API's endpoints, each to its handler."""
    state, chatbot, results, api = page.state, page.chatbot, page.results, page.api
    model_calls = dict(concurrency_id="model", concurrency_limit=limits.concurrency)
    # New uploads add to the files already in the box; removing one reloads the rest.
    page.gallery_files.upload(_gradio(h.upload_gallery), [page.gallery_files, state],
                              [state, chatbot, results], api_name="upload_gallery",
                              **GALLERY_CALLS)
    page.gallery_files.delete(_gradio(h.upload_gallery), [page.gallery_files, state],
                              [state, chatbot, results], api_visibility="private",
                              **GALLERY_CALLS)
    page.gallery_files.clear(_gradio(h.clear_gallery), [state], [state, chatbot, results],
                             api_visibility="private")
    # A person's pick in the menu (``input``, not ``change``: an example's click sets the menu
    # too, and its own event below loads the gallery, so the two never race).
    page.example_pick.input(_gradio(h.example_gallery), [page.example_pick, state],
                            [state, chatbot, results], api_name="example_gallery",
                            **GALLERY_CALLS)
    if page.examples is not None:
        page.examples.load_input_event.then(_gradio(h.example_clicked), [page.example_pick, state],
                                            [state, chatbot, results], api_visibility="private",
                                            **GALLERY_CALLS)
    # On the page: the message appears at once (not queued), then the turn runs in the model
    # queue with a progress bar. Scripts call /chat, the same turn in one request.
    page.box.submit(_gradio(h.echo), [page.box, state], [chatbot, page.sent, page.box],
                    queue=False, api_visibility="private").then(
        _gradio(h.chat_sent), [page.sent, page.task, state], [state, chatbot, results],
        api_visibility="private", **model_calls)
    api["chat"].click(_gradio(h.chat), [api["box"], page.task, state],
                      [state, chatbot, results, api["box"]], api_name="chat", **model_calls)
    page.reset_btn.click(_gradio(h.reset), [state], [state, chatbot, results], api_name="reset")
    api["search"].click(_gradio(h.search), [api["query"], api["gallery"], api["text"], api["task"]],
                        api["out"], api_name="search", **model_calls)


def build_app(engine: ChatEngine, choice: ModelChoice, limits: Limits | None = None) -> gr.Blocks:
    """The chat app: Gradio Blocks around ``engine`` (a ``chatreid.chat.engine.ChatEngine``), its
    limits fitted to the engine, its handlers, page, events and queue."""
    limits = fit_limits(engine, limits)
    h = Handlers(engine, limits, turn=run_turn)
    with gr.Blocks(title="ChatReID", delete_cache=(3600, 3600)) as blocks:
        _connect(_page(engine, choice, limits, h.examples), h, limits)
    blocks.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    blocks.chatreid_limits = limits  # launch() reads max_file_size from here
    blocks.chatreid_sessions = h.store  # for tests and the load benchmark
    return blocks


class ForeignSession(gr.Error):
    """A request carried a session id whose session belongs to another client."""


def claim(session: Session | None, client: str | None) -> Session | None:
    """``sessions.claim``, its refusal shown on the page (a ``gr.Error``)."""
    try:
        return sessions.claim(session, client)
    except sessions.ForeignSession as err:
        raise ForeignSession(str(err), print_exception=False) from None


def _gradio(handler):
    """``handler`` as Gradio calls it: its ``progress`` argument gets the page's progress bar
    (Gradio finds it by a ``gr.Progress()`` default), and its ``session`` argument, if it has one,
    is claimed for the request's client first (``claim``), from the request Gradio passes to the
    ``request: gr.Request`` parameter this adds (found by its type hint)."""
    sig = inspect.signature(handler)
    params = [p.replace(default=gr.Progress()) if p.name == "progress" else p for p in sig.parameters.values()]
    binds = "session" in sig.parameters
    if binds:
        params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                        annotation=gr.Request))
    new_sig = sig.replace(parameters=params)

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        call = new_sig.bind(*args, **kwargs)
        if binds:
            req = call.arguments.pop("request", None)
            call.arguments["session"] = claim(call.arguments.get("session"), client_of(req))
        return handler(*call.args, **call.kwargs)

    wrapper.__signature__ = new_sig
    wrapper.__annotations__ = {**handler.__annotations__, **({"request": gr.Request} if binds else {})}
    return wrapper


def launch(blocks: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False,
           **kwargs):
    """Launch with the app's safety settings: upload size, allowed paths, bounded sessions."""
    from starlette.middleware import Middleware

    limits: Limits = blocks.chatreid_limits
    return blocks.launch(
        server_name=host, server_port=port, share=share,
        max_file_size=f"{limits.max_file_mb}mb",
        allowed_paths=[str(EXAMPLES_DIR)] if EXAMPLES_DIR.is_dir() else [],
        state_session_capacity=limits.max_sessions,  # also enforced by the app's SessionStore
        # every client gets a random cookie, and each session is bound to it (``claim``)
        app_kwargs={"middleware": [Middleware(ClientCookie)]},
        footer_links=["api", "settings"], css=CSS, **kwargs)


def main(argv=None) -> None:
    """Start the app. Bad input (an option, a setting, a model that does not load, a port that is
    taken) ends in one line on stderr and exit status 2, before or instead of the server."""
    import sys

    from chatreid.usage import USAGE_ERROR, ArgumentParser, first_line, port_number

    def fail(message: str):
        print(f"app.py: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(USAGE_ERROR)

    parser = ArgumentParser(prog="app.py", description="ChatReID chat (Gradio).")
    parser.add_argument("--model", help="a ChatReID or Qwen2-VL checkpoint: Hub id or local folder "
                        "(default: $CHATREID_MODEL, else the demo model, else the tiny test model)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME"),
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=port_number, default=None, metavar="1-65535",
                        help="port (default 7860 or the next free)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:  # every setting, the model's path and the pre-filter, checked before the model is loaded
        limits, choice = check_start(args.model)
    except SettingsError as err:
        fail(str(err))
    log.info("loading model %s (%s)", choice.name_or_path, choice.source)
    try:
        engine = load_engine(choice)
    except (ValueError, OSError) as err:  # missing, not a checkpoint, not loadable: one line
        fail(first_line(err))
    try:
        # Gradio's own start-up lines are silenced: they name launch(share=True), not --share
        blocks = build_app(engine, choice, limits)
        launch(blocks, host=args.host, port=args.port, share=args.share, quiet=True, prevent_thread_lock=True)
    except OSError as err:  # the port is taken, the interface does not exist
        first = first_line(err)
        if "empty port" in first:  # Gradio's words name launch(server_port=...), not the app's option
            first = f"port {args.port or 'range 7860-7959'} is taken: pass --port with a free one"
        fail(first)
    print(f"* Running on local URL:  {blocks.local_url}", flush=True)
    if blocks.share_url:
        print(f"* Running on public URL: {blocks.share_url} (temporary; anyone with it can use the app)", flush=True)
    elif not args.share:
        print("* To open a public link too, start the app with --share", flush=True)
    blocks.block_thread()


if __name__ == "__main__":
    main()
