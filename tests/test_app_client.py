"""The ``translate`` API endpoint through gradio_client, against the app launched in this process."""

from __future__ import annotations

import pytest
import torch

from app.ui import Limits, Models, build_app
from translator.api import Translator
from translator.backends.transformers_backend import TransformersBackend
from translator.result import TranslationResult

SENTENCE = "我今天太累了，只想躺平。"


@pytest.fixture(scope="module")
def client(small_model):
    from gradio_client import Client

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_app_views.one_thread: a shared CPU is oversubscribed by two threads
    models = Models([("smollm2-135m", Translator(backend=TransformersBackend(small_model)))])
    demo = build_app(models, Limits(max_rollouts=4, max_new_tokens=64))
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        yield Client(url, verbose=False)
    finally:
        demo.close()
        torch.set_num_threads(before)


def test_translate_endpoint_is_named_and_the_ui_handlers_are_not_public(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/translate" in endpoints
    params = [p["parameter_name"] for p in endpoints["/translate"]["parameters"]]
    assert params[:4] == ["text", "src", "tgt", "strategy"]
    assert set(endpoints) == {"/translate"}


def test_cot_returns_the_translation_and_its_trace(client):
    translation, trace = client.predict(text=SENTENCE, src="zh", tgt="en", strategy="cot", max_new_tokens=24,
                                        api_name="/translate")
    result = TranslationResult.from_json(trace)
    assert result.translation == translation
    assert (result.strategy, result.source, result.src_lang, result.tgt_lang) == ("cot", SENTENCE, "zh", "en")
    assert result.tokens_generated <= 24 and len(result.tokens) == result.tokens_generated


def test_mcts_trace_has_the_tree_and_path(client):
    translation, trace = client.predict(text=SENTENCE, src="Chinese", tgt="english", strategy="mcts",
                                        granularity="mini-32", rollouts=2, children=2, max_new_tokens=24,
                                        api_name="/translate")
    result = TranslationResult.from_json(trace)
    assert result.translation == translation and result.strategy == "mcts"
    assert result.stats["rollouts"] == 2 and result.params["granularity"] == "mini-32"
    assert result.tree is not None and result.tree.chosen_path[0] == 0
    assert [s.node_id for s in result.steps] == result.tree.chosen_path[1:]
    assert result.params["refine"] is False  # the API's knobs default to the CLI's


def test_the_api_takes_the_refine_and_senses_knobs(client):
    _, trace = client.predict(text=SENTENCE, src="zh", tgt="en", strategy="mcts", rollouts=1, children=1,
                              max_new_tokens=24, refine=True, senses=True, api_name="/translate")
    params = TranslationResult.from_json(trace).params
    assert params["refine"] is True and params["senses"] is True
    assert params["thought"] is True  # they act in a thought: asking for them asks for one


def test_the_api_takes_the_thought_knob(client):
    """``thought=False`` reaches the search: its root's one child opens the Output."""
    _, trace = client.predict(text=SENTENCE, src="zh", tgt="en", strategy="mcts", rollouts=2, children=2,
                              max_new_tokens=24, thought=False, api_name="/translate")
    result = TranslationResult.from_json(trace)
    assert result.params["thought"] is False
    assert [result.tree.node(c).kind for c in result.tree.node(0).children] == ["force"]


@pytest.mark.parametrize(("options", "message"), [
    ({"text": "   "}, "input is empty"),
    ({"text": "x" * 2001}, "the limit"),
    ({"src": "zh", "tgt": "zh"}, "both Chinese"),
    ({"tgt": "klingon"}, "unknown language"),
    ({"strategy": "beam"}, "unknown strategy"),
    ({"strategy": "mcts", "rollouts": 5}, "rollouts are limited to 4"),
    ({"strategy": "cot", "max_new_tokens": 65}, "max_new_tokens is limited to 64"),
    ({"strategy": "mcts", "rollouts": 2, "granularity": "word"}, "granularity must be one of"),
    ({"model": "gpt-5"}, "is not loaded here"),
])
def test_bad_requests_get_a_message_not_a_traceback(client, options, message):
    from gradio_client.exceptions import AppError

    request = {"text": SENTENCE, "src": "zh", "tgt": "en", "strategy": "cot", "max_new_tokens": 16, **options}
    with pytest.raises(AppError, match=message) as error:
        client.predict(**request, api_name="/translate")
    assert "Traceback" not in str(error.value)


def test_two_clients_at_once_are_both_served(client):
    """One model, one search at a time: the second request waits in the queue, then runs."""
    jobs = [client.submit(text=text, src="zh", tgt="en", strategy="cot", max_new_tokens=12, api_name="/translate")
            for text in (SENTENCE, "他太卷了。")]
    results = [TranslationResult.from_json(job.result(timeout=300)[1]) for job in jobs]
    assert [r.source for r in results] == [SENTENCE, "他太卷了。"]
