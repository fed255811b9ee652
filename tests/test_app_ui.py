"""The app's plumbing without a browser: limits, the worker job (progress, stop, waiting for a busy
model), the downloads, and the launcher's error paths. Searches are tiny runs of smollm2-135m."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from app import main as app_main
from app.ui import (OUTPUTS, WAITING, Cancelled, Job, Limits, Models, ResultFiles, Service, Settings, outputs,
                    swap_languages)
from translator.strategies import DEFAULT_STRATEGY, TokenProgress
from translator.strategies.mcts import MctsConfig
from translator.api import MAX_INPUT_CHARS, Translator, make_request
from translator.errors import InputError
from translator.result import Alternative, TranslationResult
from translator.strategies import Progress

SENTENCE = "我今天太累了，只想躺平。"


@pytest.fixture(scope="module")
def translator(small_model):
    from translator.backends.transformers_backend import TransformersBackend

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_app_views.one_thread
    yield Translator(backend=TransformersBackend(small_model))
    torch.set_num_threads(before)


@pytest.fixture()
def service(translator, tmp_path):
    return Service(Models([("smollm2-135m", translator)]), Limits(max_rollouts=6, max_new_tokens=64),
                   ResultFiles(tmp_path))


def _drain(job: Job) -> list:
    return [event for event in job.stream() if event is not None]


def test_settings_respect_the_launch_limits():
    limits = Limits(max_rollouts=4, max_new_tokens=64)
    assert Settings("cot", max_new_tokens=32).options(limits) == {"max_new_tokens": 32}
    mcts = Settings("mcts", "mini-32", 4, 2, True, "confidence", 64, 7).options(limits)
    assert mcts == {"granularity": "mini-32", "rollouts": 4, "children": 2, "reflection": True,
                    "reward": "confidence", "max_new_tokens": 64, "seed": 7, "refine": False, "senses": False,
                    "thought": True}
    refine = Settings("mcts", max_new_tokens=64, refine=True).options(limits)
    assert refine["refine"] is True and refine["thought"] is True  # the Config's resolved value, not the default's
    assert Settings("mcts", max_new_tokens=64, thought=False).options(limits)["thought"] is False
    with pytest.raises(InputError, match="rollouts are limited to 4"):
        Settings("mcts", rollouts=5, max_new_tokens=64).options(limits)
    with pytest.raises(InputError, match="max_new_tokens is limited to 64"):
        Settings("direct", max_new_tokens=65).options(limits)
    assert Settings().clamped(limits).rollouts == 4 and Settings().clamped(limits).max_new_tokens == 64
    with pytest.raises(ValueError):
        Limits(max_input_chars=MAX_INPUT_CHARS + 1)


def test_outputs_names_every_component_once():
    assert len(set(OUTPUTS)) == len(OUTPUTS)
    values = outputs(status="s", translation="t")
    assert values[OUTPUTS.index("status")] == "s" and values[OUTPUTS.index("translation")] == "t"
    with pytest.raises(KeyError):
        outputs(nonsense=1)


def test_swap_turns_the_translation_into_the_source():
    assert swap_languages("zh", "en", "你好", "Hello") == ("en", "zh", "Hello")
    assert swap_languages("zh", "en", "你好", "  ") == ("en", "zh", "你好")


def test_input_is_checked_before_queuing_for_the_model(service):
    service.limits = Limits(max_input_chars=10)
    with pytest.raises(InputError, match="the limit here is 10"):
        service.start("x" * 11, "zh", "en", None, Settings("cot"))
    with pytest.raises(InputError, match="not loaded here"):
        service.start("躺平", "zh", "en", "other-model", Settings("cot"))


class StopAtFirstReport(Job):
    """Presses Stop from inside the first report, before the strategy can go on: deterministic, where
    setting the event from the test thread would race the worker."""

    def _report(self, event) -> None:
        self.stop.set()
        super()._report(event)


def _stopped_job(service, settings: Settings) -> Job:
    translator, lock = service.models.get(None)
    strategy = translator.strategy(settings.strategy, **settings.options(service.limits))
    return StopAtFirstReport(strategy, make_request(SENTENCE, "zh", "en"), lock)


def test_job_streams_progress_and_stop_returns_the_best_so_far(service):
    job = _stopped_job(service, Settings("mcts", "mini-32", rollouts=6, children=2, max_new_tokens=16))
    events = _drain(job)
    progress = [e for e in events if isinstance(e, Progress)]
    result = events[-1]
    assert isinstance(result, TranslationResult)
    assert progress and progress[0].budget == 6 and progress[0].done >= 1
    # Stopped at the first iteration's end: its rollouts (2 children of the root), not the budget of 6.
    assert result.stats["rollouts"] == progress[0].done < 6 and result.tree is not None


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_stop_works_for_the_greedy_strategies_too(service, strategy):
    events = _drain(_stopped_job(service, Settings(strategy, max_new_tokens=32)))
    tokens = [e for e in events if isinstance(e, TokenProgress)]
    result = events[-1]
    assert isinstance(result, TranslationResult) and result.stats["finish"] == "stopped"
    assert result.tokens_generated == tokens[-1].tokens == 1  # stopped at its first token: what was there


def test_tokens_stream_as_they_are_generated(service):
    job, _ = service.start(SENTENCE, "zh", "en", None, Settings("direct", max_new_tokens=8))
    events = _drain(job)
    tokens = [e for e in events if isinstance(e, TokenProgress)]
    result = events[-1]
    assert tokens and tokens[-1].tokens == result.tokens_generated and tokens[-1].text == result.raw_output
    assert [e.tokens for e in tokens] == sorted(e.tokens for e in tokens)  # merged reports keep their order


def test_the_app_defaults_are_the_clis():
    from translator.cli import build_parser
    from translator.strategies import make_config

    assert Settings().strategy == DEFAULT_STRATEGY == build_parser().parse_args([]).strategy
    limits = Limits()
    assert Settings().options(limits) == {"max_new_tokens": make_config(DEFAULT_STRATEGY).max_new_tokens}
    assert Settings("mcts").options(limits)["rollouts"] == min(MctsConfig().rollouts, limits.max_rollouts)
    with pytest.raises(InputError, match="max_new_tokens must be at least 1"):
        Settings("cot", max_new_tokens=0).options(limits)


def test_context_and_glossary_reach_the_request(service):
    job, _ = service.start("我今天只想躺平。", "zh", "en", None, Settings("direct", max_new_tokens=4),
                           context="a tweet on a Monday", glossary="躺平 = lie flat\n内卷 = rat race")
    _drain(job)
    assert job.request.context == "a tweet on a Monday"
    assert [(e.source, e.target) for e in job.request.glossary] == [("躺平", "lie flat")]  # only terms in the text
    with pytest.raises(InputError, match="glossary: line 1 is not"):
        service.start("躺平", "zh", "en", None, Settings("direct"), glossary="just a word")


def test_a_busy_model_makes_the_next_job_wait_and_stop_cancels_it(service):
    translator, lock = service.models.get(None)
    strategy = translator.strategy("cot", max_new_tokens=8)
    with lock:  # another request holds the model
        job = Job(strategy, make_request(SENTENCE, "zh", "en"), lock)
        assert job.events.get(timeout=10) == WAITING
        job.stop.set()
        assert isinstance(job.events.get(timeout=10), Cancelled)
    job = Job(strategy, make_request(SENTENCE, "zh", "en"), lock)  # free again: it runs
    assert isinstance(_drain(job)[-1], TranslationResult)


def test_downloads_are_written_and_old_ones_pruned(service, tmp_path):
    job, _ = service.start(SENTENCE, "zh", "en", None, Settings("mcts", "mini-32", 2, 2, max_new_tokens=16))
    result = _drain(job)[-1]
    trace, tree = service.files.write(result)
    assert TranslationResult.from_json(trace.read_text(encoding="utf-8")).tree.chosen_path == result.tree.chosen_path
    assert tree.read_text(encoding="utf-8").startswith("<!doctype html>")
    old = trace.parent
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    cot = TranslationResult.from_json(result.to_json())
    cot.tree = None
    trace2, tree2 = service.files.write(cot)
    assert tree2 is None and trace2.is_file() and not old.exists()


def test_launcher_reports_a_bad_model_without_a_traceback(capsys):
    assert app_main.main(["--model", "/nonexistent/model.gguf", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("marco-app: error: ") and "no such file" in err and "Traceback" not in err


def test_launcher_refuses_bad_limits(capsys):
    with pytest.raises(SystemExit) as exit_info:
        app_main.main(["--max-input-chars", str(MAX_INPUT_CHARS + 1)])
    assert exit_info.value.code == 2
    assert "max_input_chars must be between" in capsys.readouterr().err


def test_launcher_defaults_to_localhost_and_the_default_model():
    args = app_main.build_parser().parse_args([])
    assert (args.host, args.port, args.model, args.max_rollouts, args.max_new_tokens) == \
        ("127.0.0.1", 7860, None, 64, 1024)
    args = app_main.build_parser().parse_args(["--model", "a", "--model", "b"])
    assert args.model == ["a", "b"]


def test_translate_handler_streams_then_offers_the_alternatives(service, translator):
    request = SimpleNamespace(session_hash="session-1")
    steps = service.translate_ui(SENTENCE, "zh", "en", "smollm2-135m", "mcts", "mini-32", 2, 2, False, False,
                                 False, True, "confidence", 16, 0, "", "", request)
    first = next(steps)
    # No visibility in the first update: Gradio 6.17 never shows again a component that got visible=False
    # while already hidden, and the alternatives start hidden.
    assert "visible" not in first[OUTPUTS.index("alternatives")]
    assert service._stops["session-1"] is not None
    *_, final = steps
    assert "session-1" not in service._stops  # the stop event goes with the run
    assert "mt-done" in final[OUTPUTS.index("status")] and "mt-tree" in final[OUTPUTS.index("tree")]
    assert final[OUTPUTS.index("tree_file")]["interactive"] is True

    result = TranslationResult.from_json(Path(final[OUTPUTS.index("result_file")]["value"]).read_text("utf-8"))
    result.translation = "I'm beat; I just want to lie flat."
    result.alternatives = [Alternative("So tired, I'm checking out.", 0.6, 1, result.tree.nodes[-1].id)]
    offered = service._final(result, translator, stopped=False)[OUTPUTS.index("alternatives")]
    assert offered["visible"] is True and offered["value"] == result.translation
    assert [value for _, value in offered["choices"]] == [result.translation, "So tired, I'm checking out."]


def test_an_input_error_is_a_status_message(service):
    request = SimpleNamespace(session_hash="session-2")
    with pytest.warns(UserWarning, match="input is empty"):  # gr.Warning outside a request: a Python warning
        updates = list(service.translate_ui("  ", "zh", "en", "smollm2-135m", "cot", "step", 1, 1, False,
                                            False, False, True, "confidence", 16, 0, "", "", request))
    assert len(updates) == 1 and "input is empty" in updates[0][OUTPUTS.index("status")]
    # The last result does not stay on show beside the error.
    assert updates[0][OUTPUTS.index("translation")] == ""
    assert "mt-empty" in updates[0][OUTPUTS.index("path")] and "mt-empty" in updates[0][OUTPUTS.index("tree")]
    assert updates[0][OUTPUTS.index("result_file")]["value"] is None


def test_over_long_input_is_refused_not_cut(service):
    request = SimpleNamespace(session_hash="session-3")
    text = "躺" * (service.limits.max_input_chars + 1)
    with pytest.warns(UserWarning, match="the limit here is"):
        [update] = service.translate_ui(text, "zh", "en", "smollm2-135m", "direct", "step", 1, 1, False,
                                        False, False, True, "confidence", 16, 0, "", "", request)
    assert f"input is {len(text)} characters" in update[OUTPUTS.index("status")]


def test_dictionary_notes_reach_the_prompt_and_the_panel(service, translator):
    if translator.lexicon is None or translator.lexicon.cedict is None:
        pytest.skip("CC-CEDICT package not installed")
    request = SimpleNamespace(session_hash="session-hints")
    *_, final = service.translate_ui("给大家安利一部剧，别再躺平了。", "zh", "en", "smollm2-135m", "direct", "step", 1, 1,
                                     False, False, False, True, "confidence", 4, 0, "", "躺平 = lie flat", request)
    panel = final[OUTPUTS.index("hints")]
    assert "安利" in panel and "Amway" in panel
    assert "躺平" not in panel  # the user's glossary term wins over the lexicon's note
    result = TranslationResult.from_json(Path(final[OUTPUTS.index("result_file")]["value"]).read_text("utf-8"))
    assert [h["term"] for h in result.hints] == ["安利"]
