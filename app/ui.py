"""The Gradio app: layout, and the handlers that run a translation in a worker thread and stream it.

A translation takes seconds to minutes on a CPU, so the translate handler is a generator: the strategy runs
in a :class:`Job` thread whose hooks feed a queue (``on_progress`` after each search iteration, ``on_tokens``
as tokens are generated), and the handler turns each report into a status line, the best translation so
far (mcts) or the answer as it is being written (direct, cot). Stop sets the job's event, which every
strategy polls (``Hooks.should_stop``: mcts between iterations, direct and cot at every token) and answers
with what it has.

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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr

from app import views
from translator.actions import GRANULARITIES
from translator.api import MAX_INPUT_CHARS, Translator, make_request
from translator.batch_glossary import parse_glossary
from translator.errors import InputError, TranslatorError
from translator.languages import LANGUAGES
from translator.parse import parse_answer, parse_direct
from translator.prompt import THOUGHT_OPEN, TranslationRequest
from translator.result import TranslationResult
from translator.rewards import REWARDS
from translator.strategies import DEFAULT_STRATEGY, STRATEGIES, Hooks, Progress, Strategy, TokenProgress, make_config

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


# The knobs the settings panel offers; each applies to the strategies whose Config has the field.
KNOBS = ("granularity", "rollouts", "children", "reflection", "reward", "max_new_tokens", "seed", "refine",
         "senses", "thought")


def strategy_defaults(strategy: str, limits: Limits) -> dict[str, Any]:
    """The strategy's own defaults for the offered knobs (the CLI's: both read its Config), within the
    launch limits."""
    config = make_config(strategy)
    # a default the Config resolves from other options (mcts thought: on for refine) stays None until then
    later = {f.name for f in fields(config) if "default" in f.metadata}
    values = {k: None if k in later else getattr(config, k) for k in KNOBS if hasattr(config, k)}
    if "max_new_tokens" in values:
        values["max_new_tokens"] = min(values["max_new_tokens"], limits.max_new_tokens)
    if "rollouts" in values:
        values["rollouts"] = min(values["rollouts"], limits.max_rollouts)
    return values


@dataclass(frozen=True)
class Settings:
    """What one request asks for. The strategy defaults to the CLI's (``DEFAULT_STRATEGY``), and a knob
    left None takes the strategy's own default, so the app and the CLI never disagree on a default."""

    strategy: str = DEFAULT_STRATEGY
    granularity: str | None = None
    rollouts: int | None = None
    children: int | None = None
    reflection: bool | None = None
    reward: str | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    refine: bool | None = None
    senses: bool | None = None
    thought: bool | None = None

    def options(self, limits: Limits) -> dict[str, Any]:
        """Strategy options within the launch limits (enforced here too: API callers skip the sliders),
        validated by the strategy's Config."""
        if self.strategy not in STRATEGIES:
            raise InputError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        options = strategy_defaults(self.strategy, limits)
        options.update({k: getattr(self, k) for k in options if getattr(self, k) is not None})
        if options["max_new_tokens"] > limits.max_new_tokens:
            raise InputError(f"max_new_tokens is limited to {limits.max_new_tokens} on this server")
        if options.get("rollouts", 0) > limits.max_rollouts:
            raise InputError(f"rollouts are limited to {limits.max_rollouts} on this server")
        config = make_config(self.strategy, options)  # every bound (max_new_tokens >= 1, ...) checked before queuing
        return {k: getattr(config, k) for k in options}

    def clamped(self, limits: Limits) -> "Settings":
        """The values the UI shows at first: the search knobs' defaults and this strategy's token budget."""
        shown = {**strategy_defaults("mcts", limits), **strategy_defaults(self.strategy, limits)}
        return Settings(self.strategy, **{k: getattr(self, k) if getattr(self, k) is not None else shown[k]
                                          for k in KNOBS})


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
    """One translation in a worker thread; events (Progress, TokenProgress, WAITING, the result or an
    exception) arrive on a queue so the handler can stream them, and ``stop`` reaches every strategy."""

    def __init__(self, strategy: Strategy, request: TranslationRequest, lock: threading.Lock):
        self.request = request
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
                hooks = Hooks(on_progress=self._report, should_stop=self.stop.is_set, on_tokens=self._report)
                self.events.put(strategy.translate([request], hooks)[0])
            finally:
                lock.release()
        except BaseException as exc:  # handed to the handler, which shows a message, never a traceback
            self.events.put(exc)

    def _report(self, event: Progress | TokenProgress) -> None:
        """Called in the worker thread by the strategy's hooks."""
        self.events.put(event)

    def stream(self) -> Iterator[Progress | TokenProgress | TranslationResult | BaseException | str | None]:
        """Events until the result or an error; None every TICK_S without news, to refresh the clock.
        Token reports that queued up while the handler was busy are merged: only the latest is yielded."""
        pending = None
        while True:
            if pending is not None:
                event, pending = pending, None
            else:
                try:
                    event = self.events.get(timeout=TICK_S)
                except queue.Empty:
                    yield None
                    continue
            while isinstance(event, TokenProgress):
                try:
                    newer = self.events.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(newer, TokenProgress):
                    pending = newer
                    break
                event = newer
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
OUTPUTS = ("translation", "status", "path", "tokens", "tree", "hints", "alternatives", "result_file", "tree_file",
           "stop")


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

    def start(self, text: str, src: str, tgt: str, model: str | None, settings: Settings, *,
              context: str = "", glossary: str = "") -> tuple[Job, Translator]:
        """Validate everything a user can get wrong before queuing for the model, then start the job.
        Over-long input is refused, never cut: a translation of a fragment would pass for the whole."""
        if isinstance(text, str) and len(text.strip()) > self.limits.max_input_chars:
            raise InputError(f"input is {len(text.strip())} characters; "
                             f"the limit here is {self.limits.max_input_chars}: shorten it, or split it")
        entries = parse_glossary(glossary or "", "glossary", ("\t", "=>", "=")).matching(text or "")
        translator, lock = self.models.get(model)
        request = make_request(text, src, tgt, context=(context or "").strip() or None, glossary=entries,
                               lexicon=translator.lexicon)
        strategy = translator.strategy(settings.strategy, **settings.options(self.limits))
        return Job(strategy, request, lock), translator

    def translate_ui(self, text: str, src: str, tgt: str, model: str, strategy: str, granularity: str,
                     rollouts: float, children: float, reflection: bool, refine: bool, senses: bool, thought: bool,
                     reward: str, max_new_tokens: float, seed: float | None, context: str, glossary: str,
                     request: gr.Request) -> Iterator[tuple]:
        settings = Settings(strategy, granularity, int(rollouts), int(children), bool(reflection), reward,
                            int(max_new_tokens), int(seed or 0), bool(refine), bool(senses), bool(thought))
        try:
            job, translator = self.start(text, src, tgt, model, settings, context=context, glossary=glossary)
        except TranslatorError as exc:
            yield _failed(str(exc))
            return
        key = request.session_hash or uuid.uuid4().hex
        self._stops[key] = job.stop
        try:
            yield outputs(**{**_cleared(), "status": views.message_html(f"Translating with {strategy}…", "running"),
                             "path": _PENDING, "tokens": _PENDING, "tree": _PENDING,
                             "stop": gr.update(interactive=True)})
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
                yield _failed(_error_message(event))
            elif isinstance(event, Progress):
                last, waiting = event, False
                yield outputs(translation=event.best_translation, status=_progress(event, job))
            elif isinstance(event, TokenProgress):
                waiting = False
                if strategy != "mcts":  # mcts shows its best finished answer, not a rollout being written
                    yield _writing(event, strategy, job)
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
            hints=views.hints_html(result.hints, _why_no_notes(translator, result.src_lang, result.tgt_lang)),
            alternatives=gr.update(choices=choices, value=result.translation if result.translation else None,
                                   visible=len(choices) > 1),
            result_file=gr.update(value=str(trace), interactive=True),
            tree_file=gr.update(value=str(tree) if tree else None, interactive=tree is not None),
            stop=gr.update(interactive=False),
        )

    def stop(self, request: gr.Request) -> None:
        """Ask this session's translation to return what it has: mcts its best result so far, direct and
        cot the text generated so far."""
        event = self._stops.get(request.session_hash or "")
        if event is None:
            gr.Info("Nothing is running.")
        else:
            event.set()
            gr.Info("Stopping: you get what has been translated so far.")

    def translate_api(self, text: str, src: str = "zh", tgt: str = "en", strategy: str = Settings.strategy,
                      model: str = "", granularity: str | None = None, rollouts: int | None = None,
                      children: int | None = None, reflection: bool | None = None, reward: str | None = None,
                      max_new_tokens: int | None = None, seed: int | None = None, context: str = "",
                      glossary: str = "", refine: bool | None = None, senses: bool | None = None,
                      thought: bool | None = None) -> tuple[str, str]:
        """Translate ``text``; returns the translation and the whole result (path, tree, tokens) as JSON.
        Knobs left out take the strategy's defaults (the CLI's); ``glossary``: "term = translation" lines."""
        settings = Settings(strategy, granularity, rollouts, children, reflection, reward, max_new_tokens, seed,
                            refine, senses, thought)
        try:
            job, _ = self.start(text, src, tgt, model or None, settings, context=context, glossary=glossary)
        except TranslatorError as exc:
            raise gr.Error(str(exc)) from None
        for event in job.stream():
            if isinstance(event, TranslationResult):
                return event.translation, event.to_json()
            if isinstance(event, BaseException):
                raise gr.Error(_error_message(event))
        raise gr.Error("the translation ended without a result")  # stream() always ends with one of the above


_PENDING = '<div class="mt-empty">Running…</div>'


def _cleared() -> dict[str, Any]:
    """Every output back to empty: a new request, or a failed one, must not leave the last result on show."""
    return dict(translation="", path=_EMPTY_PATH, tokens=_EMPTY_TOKENS, tree=_EMPTY_TREE, hints=views.EMPTY_HINTS,
                # Choices only: Gradio 6.17 never shows a component again that got visible=False while
                # already hidden, so visibility is set once, with the result.
                alternatives=gr.update(choices=[], value=None),
                result_file=gr.update(value=None, interactive=False),
                tree_file=gr.update(value=None, interactive=False), stop=gr.update(interactive=False))


def _failed(message: str) -> tuple:
    """The error on the status line and as a toast, with the outputs cleared. Not raised as gr.Error: that
    would also log a traceback on the server for what is only a user's mistake."""
    gr.Warning(message)
    return outputs(**{**_cleared(), "status": views.message_html(message, "error")})


def _writing(p: TokenProgress, strategy: str, job: Job) -> tuple:
    """A direct or cot answer while it is written: the raw text in the path panel, the translation as far
    as it can be read yet (cot: once its Output has begun)."""
    text = p.text
    translation = parse_direct(text) if strategy == "direct" else _partial_output(text)
    return outputs(translation=translation, path=views.live_html(text, p.tokens, p.tokens_per_s, p.elapsed_s),
                   status=views.generating_html(strategy, p.tokens, p.tokens_per_s, job.elapsed_s))


def _partial_output(text: str) -> str:
    """The Output of a reasoning answer being written, or "" while it is still thinking (the parser
    never passes the thought off as the translation)."""
    parsed = parse_answer(THOUGHT_OPEN + text)
    return parsed.translation if "<output>" in text.lower() else ""


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
    """Languages, source text, examples, context and glossary on the left; strategy, model and the buttons
    on the right. The examples are plain buttons: Gradio 6's examples table (gr.Examples) throws in the
    browser ("Cannot read properties of undefined (reading '0')", on most loads) whenever the page also
    holds components it loads lazily: a closed accordion, a tab not shown, one created with render=False."""
    languages = [(f"{lang.name} ({lang.code})", lang.code) for lang in LANGUAGES]
    defaults = Settings()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                src = gr.Dropdown(languages, value="zh", label="From", scale=4, elem_id="mt-src")
                swap = gr.Button("⇄", scale=1, min_width=48, size="sm", elem_id="mt-swap")
                tgt = gr.Dropdown(languages, value="en", label="To", scale=4, elem_id="mt-tgt")
            # No max_length: the browser would cut a pasted text silently; the server refuses it with a message.
            source = gr.Textbox(label="Source text", lines=4,
                                info=f"up to {limits.max_input_chars} characters",
                                placeholder="A sentence with slang, an idiom, a meme… (Shift+Enter translates)",
                                elem_id="mt-source")
            gr.Markdown("Colloquial examples (click one):", elem_id="mt-examples-head")
            with gr.Row(elem_id="mt-examples"):
                examples = [(gr.Button(text, size="sm", variant="secondary", elem_classes=["mt-example"]),
                             (text, s_code, t_code))
                            for text, s_code, t_code in EXAMPLES]
            with gr.Accordion("Context note and glossary", open=False, elem_id="mt-extras"):
                context = gr.Textbox(label="Context note (not translated)", lines=1, elem_id="mt-context",
                                     placeholder="Who speaks, where it was posted, what it answers…")
                glossary = gr.Textbox(label="Glossary: one 'term = translation' a line", lines=2,
                                      elem_id="mt-glossary", placeholder="躺平 = lie flat")
        with gr.Column(scale=2):
            strategy = gr.Radio(list(STRATEGIES), value=defaults.strategy, label="Strategy",
                                info="direct: answer only · cot: one reasoning pass · mcts: search",
                                elem_id="mt-strategy")
            model = gr.Dropdown(models.choices(), value=models.default, label="Model",
                                interactive=len(models) > 1, elem_id="mt-model")
            with gr.Row():
                run = gr.Button("Translate", variant="primary", elem_id="mt-run")
                stop = gr.Button("Stop", variant="stop", interactive=False, elem_id="mt-stop")
    return {"source": source, "context": context, "glossary": glossary, "src": src, "tgt": tgt, "swap": swap,
            "examples": examples, "strategy": strategy, "model": model, "run": run, "stop": stop}


def _settings_panel(limits: Limits) -> dict[str, Any]:
    """The token budget, and the search knobs (used by mcts only), folded away by default. The knobs stay
    on show: a Gradio 6 column created hidden never showed its children when mcts was picked."""
    defaults = Settings().clamped(limits)
    with gr.Accordion("Settings: token budget and search", open=False, elem_id="mt-settings"):
        max_new_tokens = gr.Slider(8, limits.max_new_tokens, value=defaults.max_new_tokens, step=8,
                                   label="Max new tokens (per path)", elem_id="mt-max-new-tokens")
        gr.Markdown("Search (mcts only)", elem_id="mt-search-head")
        with gr.Column():
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
                refine = gr.Checkbox(defaults.refine, label="Refine", elem_id="mt-refine",
                                     info="reopen each finished draft once to revise it")
                senses = gr.Checkbox(defaults.senses, label="Senses", elem_id="mt-senses",
                                     info="branch the root on the senses of the first noted term")
                thought = gr.Checkbox(bool(defaults.thought), label="Thought", elem_id="mt-thought",
                                      info="off: the search samples drafts and picks one (measured best); "
                                           "on: it reasons first, as in the paper")
                for box in (reflection, refine, senses):  # they act in a thought: ticking one ticks Thought
                    box.input(lambda on, shown: shown or on, [box, thought], thought, api_visibility="private",
                              queue=False)
                seed = gr.Number(defaults.seed, precision=0, label="Seed", elem_id="mt-seed",
                                 info="same seed and settings, same search")
    return {"max_new_tokens": max_new_tokens, "granularity": granularity,
            "rollouts": rollouts, "children": children, "reward": reward, "reflection": reflection,
            "refine": refine, "senses": senses, "thought": thought, "seed": seed}


def _why_no_notes(translator: Translator, src: str, tgt: str) -> str:
    """Why a translation got no dictionary notes, when the cause is the server's setting, not the text."""
    lexicon = translator.lexicon
    if lexicon is None:
        return "Dictionary notes are off on this server (--lexicon off)."
    if not lexicon.gives_notes(src, tgt):
        return ("Dictionary notes are given from Chinese and from English into Chinese only (--lexicon auto: "
                "other directions were not measured to gain with this model; --lexicon on gives them "
                "everywhere).")
    return ""


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
            gr.Markdown("#### Dictionary notes")
            hints = gr.HTML(views.EMPTY_HINTS, elem_id="mt-hints")
    with gr.Tabs():
        with gr.Tab("Search tree", elem_id="mt-tab-tree"):
            tree = gr.HTML(_EMPTY_TREE, js_on_load=views.TREE_JS, elem_id="mt-tree")
        with gr.Tab("Token confidence", elem_id="mt-tab-tokens"):
            tokens = gr.HTML(_EMPTY_TOKENS, elem_id="mt-tokens")
    return {"translation": translation, "status": status, "alternatives": alternatives, "result_file": result_file,
            "tree_file": tree_file, "path": path, "hints": hints, "tree": tree, "tokens": tokens}


def _wire(c: dict[str, Any], service: Service, n_models: int) -> None:
    """Events. Translations (UI and API) share one concurrency group, one slot per model; the cheap UI
    events skip the queue, so Stop and the pickers never wait behind a search."""
    inputs = [c[name] for name in ("source", "src", "tgt", "model", "strategy", "granularity", "rollouts",
                                   "children", "reflection", "refine", "senses", "thought", "reward", "max_new_tokens",
                                   "seed", "context", "glossary")]
    for trigger in (c["run"].click, c["source"].submit):
        # The queue's position and timer show on the status line only, so the live output stays readable.
        trigger(service.translate_ui, inputs, [c[name] for name in OUTPUTS], api_visibility="private",
                concurrency_id="model", concurrency_limit=n_models, show_progress="minimal",
                show_progress_on=c["status"])
    c["stop"].click(service.stop, None, None, api_visibility="private", queue=False)
    for button, example in c["examples"]:
        button.click(lambda example=example: example, None, [c["source"], c["src"], c["tgt"]],
                     api_visibility="private", queue=False)
    c["swap"].click(swap_languages, [c["src"], c["tgt"], c["source"], c["translation"]],
                    [c["src"], c["tgt"], c["source"]], api_visibility="private", queue=False)
    c["strategy"].change(lambda s: gr.update(value=strategy_defaults(s, service.limits)["max_new_tokens"]),
                         c["strategy"], c["max_new_tokens"], api_visibility="private", queue=False)
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
#mt-examples { flex-wrap: wrap; gap: .35em; }
#mt-examples > .mt-example { flex: 0 1 auto !important; min-width: 0 !important; width: auto !important;
  font-weight: 400; white-space: normal; text-align: left; }
#mt-examples-head p { margin: .2em 0 0 0; font-size: .9em; opacity: .85; }
"""
