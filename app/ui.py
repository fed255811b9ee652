"""The Gradio app: layout, and the handlers that run a translation in a worker thread and stream it.

A search takes seconds to minutes on a CPU, so the translate handler is a generator: the search runs in a
:class:`Job` thread whose ``Hooks.on_progress`` feeds a queue, and the handler turns each report into a
status line and the best translation so far. Stop sets the job's event, which the search polls between
iterations (``Hooks.should_stop``) and answers with the best result so far.

Concurrency: a backend keeps one model and its KV caches and is not thread-safe, so each model has a lock
and runs one translation at a time. The translate events share one concurrency group sized to the number
of models; requests beyond that wait in Gradio's queue (and see their position there).
"""

from __future__ import annotations

import logging
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app import views
from translator.actions import GRANULARITIES
from translator.api import MAX_INPUT_CHARS, Translator, make_request
from translator.errors import InputError, TranslatorError
from translator.languages import LANGUAGES
from translator.prompt import TranslationRequest
from translator.result import TranslationResult
from translator.rewards import REWARDS
from translator.strategies import STRATEGIES, Hooks, Progress, Strategy

logger = logging.getLogger("app")

# Colloquial sentences from eval/data/slang.jsonl, both directions: the cases a literal translation gets wrong.
EXAMPLES = [
    ["这双鞋穿起来有一种踩屎感，太舒服了。", "zh", "en"],
    ["房价这么高，我干脆躺平了，不买房也不结婚。", "zh", "en"],
    ["反正考不过了，他直接摆烂，一页书都不看。", "zh", "en"],
    ["This is the best pizza in the city, no cap.", "en", "zh"],
    ["I lowkey want to skip the party and stay home.", "en", "zh"],
    ["We went on three dates and then he just ghosted me.", "en", "zh"],
]

# comet-qe needs a CometKiwi checkpoint the app is not given, so it is not offered.
UI_REWARDS = tuple(r for r in REWARDS if r != "comet-qe")
TICK_S = 1.0  # how often the status line refreshes when the search has nothing new to report
FILES_KEEP_S = 3600.0


@dataclass(frozen=True)
class Limits:
    """Per-request caps set at launch: the model is shared, so no one request may hold it for long."""

    max_input_chars: int = MAX_INPUT_CHARS
    max_rollouts: int = 64
    max_new_tokens: int = 1024
    queue_size: int | None = 32

    def __post_init__(self) -> None:
        if not 1 <= self.max_input_chars <= MAX_INPUT_CHARS:
            raise ValueError(f"max_input_chars must be between 1 and {MAX_INPUT_CHARS}")
        if self.max_rollouts < 1 or self.max_new_tokens < 8:
            raise ValueError("max_rollouts must be at least 1 and max_new_tokens at least 8")


@dataclass(frozen=True)
class Settings:
    """What one request asks for. The defaults keep an interactive search on a CPU under a minute or two
    with the 1.5B model; the CLI's larger defaults (16 rollouts, 768 tokens) suit batch runs."""

    strategy: str = "mcts"
    granularity: str = "step"
    rollouts: int = 8
    children: int = 3
    reflection: bool = False
    reward: str = "confidence"
    max_new_tokens: int = 512
    seed: int = 0

    def options(self, limits: Limits) -> dict[str, Any]:
        """Strategy options within the launch limits (enforced here too: API callers skip the sliders)."""
        if self.max_new_tokens > limits.max_new_tokens:
            raise InputError(f"max_new_tokens is limited to {limits.max_new_tokens} on this server")
        if self.strategy != "mcts":
            return {"max_new_tokens": int(self.max_new_tokens)}
        if self.rollouts > limits.max_rollouts:
            raise InputError(f"rollouts are limited to {limits.max_rollouts} on this server")
        return {"granularity": self.granularity, "rollouts": int(self.rollouts), "children": int(self.children),
                "reflection": bool(self.reflection), "reward": self.reward,
                "max_new_tokens": int(self.max_new_tokens), "seed": int(self.seed)}

    def clamped(self, limits: Limits) -> "Settings":
        """The defaults as the UI shows them: never beyond what the server accepts."""
        return Settings(self.strategy, self.granularity, min(self.rollouts, limits.max_rollouts), self.children,
                        self.reflection, self.reward, min(self.max_new_tokens, limits.max_new_tokens), self.seed)


class Models:
    """The translators configured at launch, by spec, each with the lock that serialises its use."""

    def __init__(self, translators: Sequence[tuple[str, Translator]]):
        if not translators:
            raise ValueError("at least one model is needed")
        self._entries = {spec: (tr, threading.Lock()) for spec, tr in translators}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def default(self) -> str:
        return next(iter(self._entries))

    def choices(self) -> list[tuple[str, str]]:
        return [(tr.model_name, spec) for spec, (tr, _) in self._entries.items()]

    def get(self, spec: str | None) -> tuple[Translator, threading.Lock]:
        try:
            return self._entries[spec or self.default]
        except KeyError:
            raise InputError(f"model {spec!r} is not loaded here; choose one of {', '.join(self._entries)}") from None


class Cancelled(TranslatorError):
    """Stop was pressed before the model was free: nothing was translated."""


WAITING = "waiting"  # job event: another request holds the model


class Job:
    """One translation in a worker thread; events (Progress, WAITING, the result or an exception) arrive
    on a queue so the handler can stream them, and ``stop`` reaches the search between iterations."""

    def __init__(self, strategy: Strategy, request: TranslationRequest, lock: threading.Lock):
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, args=(strategy, request, lock), daemon=True)
        self._thread.start()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def _run(self, strategy: Strategy, request: TranslationRequest, lock: threading.Lock) -> None:
        try:
            if not lock.acquire(blocking=False):
                self.events.put(WAITING)
                while not lock.acquire(timeout=0.25):
                    if self.stop.is_set():
                        raise Cancelled("stopped while waiting for the model: nothing was translated")
            try:
                hooks = Hooks(on_progress=self.events.put, should_stop=self.stop.is_set)
                self.events.put(strategy.translate([request], hooks)[0])
            finally:
                lock.release()
        except BaseException as exc:  # handed to the handler, which shows a message, never a traceback
            self.events.put(exc)

    def stream(self) -> Iterator[Progress | TranslationResult | BaseException | str | None]:
        """Events until the result or an error; None every TICK_S without news, to refresh the clock."""
        while True:
            try:
                event = self.events.get(timeout=TICK_S)
            except queue.Empty:
                yield None
                continue
            yield event
            if isinstance(event, (TranslationResult, BaseException)):
                return


class ResultFiles:
    """Writes each result's downloads into a directory the app owns; Gradio copies returned files into
    its own cache, so ours are pruned after an hour instead of piling up for the server's lifetime."""

    def __init__(self, root: Path | None = None):
        self.root = root or Path(tempfile.mkdtemp(prefix="marco-app-"))

    def write(self, result: TranslationResult) -> tuple[Path, Path | None]:
        self._prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir(parents=True)
        trace = folder / f"translation-{result.strategy}.json"
        trace.write_text(result.to_json(indent=1), encoding="utf-8")
        if result.tree is None:
            return trace, None
        tree = folder / "search-tree.html"
        tree.write_text(views.tree_document(result), encoding="utf-8")
        return trace, tree

    def _prune(self) -> None:
        cutoff = time.time() - FILES_KEEP_S
        for folder in self.root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


# The translate handler's outputs, by name; a handler step that changes only some of them skips the rest.
OUTPUTS = ("translation", "status", "path", "tokens", "tree", "alternatives", "result_file", "tree_file", "stop")


def outputs(**values: Any) -> tuple:
    unknown = set(values) - set(OUTPUTS)
    if unknown:
        raise KeyError(f"not an output: {', '.join(sorted(unknown))}")
    return tuple(values.get(name, gr.skip()) for name in OUTPUTS)


class Service:
    """The handlers, with what they share: the models, the limits, the downloads and the stop events."""

    def __init__(self, models: Models, limits: Limits, files: ResultFiles | None = None):
        self.models = models
        self.limits = limits
        self.files = files or ResultFiles()
        self._stops: dict[str, threading.Event] = {}

    def start(self, text: str, src: str, tgt: str, model: str | None, settings: Settings) -> tuple[Job, Translator]:
        """Validate everything a user can get wrong before queuing for the model, then start the job."""
        if isinstance(text, str) and len(text.strip()) > self.limits.max_input_chars:
            raise InputError(f"input is {len(text.strip())} characters; "
                             f"the limit here is {self.limits.max_input_chars}")
        request = make_request(text, src, tgt)
        translator, lock = self.models.get(model)
        strategy = translator.strategy(settings.strategy, **settings.options(self.limits))
        return Job(strategy, request, lock), translator

    def translate_ui(self, text: str, src: str, tgt: str, model: str, strategy: str, granularity: str,
                     rollouts: float, children: float, reflection: bool, reward: str, max_new_tokens: float,
                     seed: float | None, request: gr.Request) -> Iterator[tuple]:
        settings = Settings(strategy, granularity, int(rollouts), int(children), bool(reflection), reward,
                            int(max_new_tokens), int(seed or 0))
        try:
            job, translator = self.start(text, src, tgt, model, settings)
        except TranslatorError as exc:
            yield _failed(str(exc))
            return
        key = request.session_hash or uuid.uuid4().hex
        self._stops[key] = job.stop
        try:
            yield outputs(translation="", status=views.message_html(f"Translating with {strategy}…", "running"),
                          path=_PENDING, tokens=_PENDING, tree=_PENDING,
                          # Choices only: Gradio 6.17 never shows a component again that got visible=False
                          # while already hidden, so visibility is set once, with the result.
                          alternatives=gr.update(choices=[], value=None),
                          result_file=gr.update(value=None, interactive=False),
                          tree_file=gr.update(value=None, interactive=False),
                          stop=gr.update(interactive=strategy == "mcts"))
            yield from self._follow(job, translator, strategy)
        finally:
            job.stop.set()  # a client that went away must not keep the model busy
            if self._stops.get(key) is job.stop:
                del self._stops[key]

    def _follow(self, job: Job, translator: Translator, strategy: str) -> Iterator[tuple]:
        last: Progress | None = None
        waiting = False
        for event in job.stream():
            if isinstance(event, TranslationResult):
                yield self._final(event, translator, stopped=job.stop.is_set())
            elif isinstance(event, BaseException):
                yield _failed(_error_message(event), path="", tokens="", tree="", stop=gr.update(interactive=False))
            elif isinstance(event, Progress):
                last, waiting = event, False
                yield outputs(translation=event.best_translation, status=_progress(event, job))
            elif event == WAITING:
                waiting = True
                yield outputs(status=views.waiting_html(job.elapsed_s))
            elif waiting:
                yield outputs(status=views.waiting_html(job.elapsed_s))
            elif last is not None:
                yield outputs(status=_progress(last, job))
            else:
                clock = f"Translating with {strategy}… {job.elapsed_s:.0f} s"
                yield outputs(status=views.message_html(clock, "running"))

    def _final(self, result: TranslationResult, translator: Translator, *, stopped: bool) -> tuple:
        trace, tree = self.files.write(result)
        choices = views.alternative_choices(result)
        return outputs(
            translation=result.translation,
            status=views.summary_html(result, stopped=stopped),
            path=views.path_html(result, translator.backend.decode),
            tokens=views.tokens_html(result.tokens, translator.backend.decode),
            tree=views.tree_html(result),
            alternatives=gr.update(choices=choices, value=result.translation if result.translation else None,
                                   visible=len(choices) > 1),
            result_file=gr.update(value=str(trace), interactive=True),
            tree_file=gr.update(value=str(tree) if tree else None, interactive=tree is not None),
            stop=gr.update(interactive=False),
        )

    def stop(self, request: gr.Request) -> None:
        """Ask this session's search to return its best result so far."""
        event = self._stops.get(request.session_hash or "")
        if event is None:
            gr.Info("Nothing is running.")
        else:
            event.set()
            gr.Info("Stopping: the search returns its best translation so far.")

    def translate_api(self, text: str, src: str = "zh", tgt: str = "en", strategy: str = Settings.strategy,
                      model: str = "", granularity: str = Settings.granularity, rollouts: int = Settings.rollouts,
                      children: int = Settings.children, reflection: bool = Settings.reflection,
                      reward: str = Settings.reward, max_new_tokens: int = Settings.max_new_tokens,
                      seed: int = Settings.seed) -> tuple[str, str]:
        """Translate ``text``; returns the translation and the whole result (path, tree, tokens) as JSON."""
        settings = Settings(strategy, granularity, rollouts, children, reflection, reward, max_new_tokens, seed)
        try:
            job, _ = self.start(text, src, tgt, model or None, settings)
        except TranslatorError as exc:
            raise gr.Error(str(exc)) from None
        for event in job.stream():
            if isinstance(event, TranslationResult):
                return event.translation, event.to_json()
            if isinstance(event, BaseException):
                raise gr.Error(_error_message(event))
        raise gr.Error("the translation ended without a result")  # stream() always ends with one of the above


_PENDING = '<div class="mt-empty">Running…</div>'


def _failed(message: str, **updates: Any) -> tuple:
    """The error on the status line and as a toast. Not raised as gr.Error: that would also log a
    traceback on the server for what is only a user's mistake."""
    gr.Warning(message)
    return outputs(status=views.message_html(message, "error"), **updates)


def _progress(p: Progress, job: Job) -> str:
    return views.progress_html(p.done, p.budget, job.elapsed_s, p.best_translation, p.best_value)


def _error_message(exc: BaseException) -> str:
    """A message for the user; unexpected errors are logged with their traceback, shown without it."""
    if isinstance(exc, TranslatorError):
        return str(exc)
    logger.error("translation failed", exc_info=exc)
    return f"translation failed ({type(exc).__name__}: {exc}); the server log has the details"


def swap_languages(src: str, tgt: str, text: str, translation: str) -> tuple[str, str, str]:
    """Swap directions; the current translation becomes the source, as a back-translation check."""
    return tgt, src, translation if translation.strip() else text


def build_app(models: Models, limits: Limits = Limits(), files: ResultFiles | None = None) -> gr.Blocks:
    """The Blocks app with its queue configured; launch it with ``css=CSS``."""
    service = Service(models, limits, files)
    with gr.Blocks(title="marco-translate", analytics_enabled=False) as demo:
        gr.Markdown("## marco-translate\nReasoning-augmented translation of colloquial text: the model reasons "
                    "in *Thought*, answers in *Output*; **mcts** searches over its reasoning steps and keeps the "
                    "path the model is most confident about.", elem_id="mt-header")
        c = _input_panel(models, limits) | _settings_panel(limits) | _output_panel()
        _wire(c, service, len(models))
    demo.queue(default_concurrency_limit=1, max_size=limits.queue_size)
    return demo


def _input_panel(models: Models, limits: Limits) -> dict[str, Any]:
    """Source text and examples on the left; languages, strategy, model and the buttons on the right."""
    languages = [(f"{lang.name} ({lang.code})", lang.code) for lang in LANGUAGES]
    defaults = Settings()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            source = gr.Textbox(label="Source text", lines=4, max_length=limits.max_input_chars,
                                placeholder="A sentence with slang, an idiom, a meme… (Shift+Enter translates)",
                                elem_id="mt-source")
            # The pickers are rendered in the next column; created here so the examples can fill them.
            src = gr.Dropdown(languages, value="zh", label="From", scale=4, elem_id="mt-src", render=False)
            tgt = gr.Dropdown(languages, value="en", label="To", scale=4, elem_id="mt-tgt", render=False)
            gr.Examples(EXAMPLES, inputs=[source, src, tgt], label="Colloquial examples (click one)",
                        examples_per_page=len(EXAMPLES))
        with gr.Column(scale=2):
            with gr.Row(equal_height=True):
                src.render()
                swap = gr.Button("⇄", scale=1, min_width=48, size="sm", elem_id="mt-swap")
                tgt.render()
            strategy = gr.Radio(list(STRATEGIES), value=defaults.strategy, label="Strategy",
                                info="direct: answer only · cot: one reasoning pass · mcts: search",
                                elem_id="mt-strategy")
            model = gr.Dropdown(models.choices(), value=models.default, label="Model",
                                interactive=len(models) > 1, elem_id="mt-model")
            with gr.Row():
                run = gr.Button("Translate", variant="primary", elem_id="mt-run")
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="mt-stop")
    return {"source": source, "src": src, "tgt": tgt, "swap": swap, "strategy": strategy, "model": model,
            "run": run, "stop": stop}


def _settings_panel(limits: Limits) -> dict[str, Any]:
    """The token budget, and the search knobs (shown for mcts only), folded away by default."""
    defaults = Settings().clamped(limits)
    with gr.Accordion("Settings: token budget and search", open=False, elem_id="mt-settings"):
        max_new_tokens = gr.Slider(8, limits.max_new_tokens, value=defaults.max_new_tokens, step=8,
                                   label="Max new tokens (per path)", elem_id="mt-max-new-tokens")
        with gr.Column(visible=defaults.strategy == "mcts") as mcts_knobs:
            with gr.Row():
                granularity = gr.Radio(list(GRANULARITIES), value=defaults.granularity, scale=2, min_width=300,
                                       label="Action granularity", info="step: one line of reasoning · "
                                       "mini-N: N tokens", elem_id="mt-granularity")
                rollouts = gr.Slider(1, limits.max_rollouts, value=defaults.rollouts, step=1,
                                     label="Rollouts (budget)", elem_id="mt-rollouts")
                children = gr.Slider(1, 8, value=defaults.children, step=1, label="Children per node",
                                     elem_id="mt-children")
            with gr.Row():
                reward = gr.Dropdown(list(UI_REWARDS), value=defaults.reward, label="Reward", elem_id="mt-reward")
                reflection = gr.Checkbox(defaults.reflection, label="Reflection", elem_id="mt-reflection",
                                         info="inject 'Wait! Maybe I made some mistakes!' once per path")
                seed = gr.Number(defaults.seed, precision=0, label="Seed", elem_id="mt-seed",
                                 info="same seed and settings, same search")
    return {"max_new_tokens": max_new_tokens, "mcts_knobs": mcts_knobs, "granularity": granularity,
            "rollouts": rollouts, "children": children, "reward": reward, "reflection": reflection, "seed": seed}


def _output_panel() -> dict[str, Any]:
    """Translation, status, alternatives and downloads beside the chosen path; tree and tokens in tabs."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            translation = gr.Textbox(label="Translation", lines=3, interactive=False, buttons=["copy"],
                                     elem_id="mt-translation")
            status = gr.HTML(views.message_html("Type a sentence or pick an example, then Translate."),
                             elem_id="mt-status")
            alternatives = gr.Radio([], label="Translations the search found: pick one", visible=False,
                                    elem_id="mt-alternatives")
            with gr.Row():
                result_file = gr.DownloadButton("Download result (JSON)", interactive=False, size="sm",
                                                elem_id="mt-download-json")
                tree_file = gr.DownloadButton("Download tree (HTML)", interactive=False, size="sm",
                                              elem_id="mt-download-tree")
        with gr.Column(scale=2):
            gr.Markdown("#### Chosen reasoning path")
            path = gr.HTML(_EMPTY_PATH, elem_id="mt-path", max_height=620)
    with gr.Tabs():
        with gr.Tab("Search tree", elem_id="mt-tab-tree"):
            tree = gr.HTML(_EMPTY_TREE, js_on_load=views.TREE_JS, elem_id="mt-tree")
        with gr.Tab("Token confidence", elem_id="mt-tab-tokens"):
            tokens = gr.HTML(_EMPTY_TOKENS, elem_id="mt-tokens")
    return {"translation": translation, "status": status, "alternatives": alternatives, "result_file": result_file,
            "tree_file": tree_file, "path": path, "tree": tree, "tokens": tokens}


def _wire(c: dict[str, Any], service: Service, n_models: int) -> None:
    """Events. Translations (UI and API) share one concurrency group, one slot per model; the cheap UI
    events skip the queue, so Stop and the pickers never wait behind a search."""
    inputs = [c[name] for name in ("source", "src", "tgt", "model", "strategy", "granularity", "rollouts",
                                   "children", "reflection", "reward", "max_new_tokens", "seed")]
    for trigger in (c["run"].click, c["source"].submit):
        # The queue's position and timer show on the status line only, so the live output stays readable.
        trigger(service.translate_ui, inputs, [c[name] for name in OUTPUTS], api_visibility="private",
                concurrency_id="model", concurrency_limit=n_models, show_progress="minimal",
                show_progress_on=c["status"])
    c["stop"].click(service.stop, None, None, api_visibility="private", queue=False)
    c["swap"].click(swap_languages, [c["src"], c["tgt"], c["source"], c["translation"]],
                    [c["src"], c["tgt"], c["source"]], api_visibility="private", queue=False)
    c["strategy"].change(lambda s: gr.update(visible=s == "mcts"), c["strategy"], c["mcts_knobs"],
                         api_visibility="private", queue=False)
    c["alternatives"].input(lambda choice: choice, c["alternatives"], c["translation"], api_visibility="private",
                            queue=False)
    gr.api(service.translate_api, api_name="translate", concurrency_id="model", concurrency_limit=n_models)


_EMPTY_PATH = '<div class="mt-empty">Each step of the chosen path appears here, with its confidence.</div>'
_EMPTY_TREE = '<div class="mt-empty">The search tree appears here after an mcts translation.</div>'
_EMPTY_TOKENS = '<div class="mt-empty">The chosen path\'s tokens, coloured by their confidence.</div>'

CSS = views.CSS + """
#mt-translation textarea { font-size: 1.35rem; line-height: 1.5; }
#mt-swap { align-self: end; margin-bottom: .3em; }
#mt-header p { margin-top: 0; opacity: .85; }
"""
