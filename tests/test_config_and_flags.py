"""Every strategy Config validates itself when built, and a result says separately whether the model
answered and whether it closed the format. No model needed."""

from __future__ import annotations

import json

import pytest

from translator.errors import InputError
from translator.parse import parse_answer
from translator.result import TranslationResult
from translator.strategies import make_config
from translator.strategies.greedy import CotConfig, DirectConfig
from translator.strategies.mcts import MctsConfig


@pytest.mark.parametrize("config, options, message", [
    (DirectConfig, {"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
    (CotConfig, {"max_new_tokens": -5}, "max_new_tokens must be at least 1"),
    (MctsConfig, {"max_new_tokens": 7}, "max_new_tokens must be at least 8"),
    (MctsConfig, {"rollouts": 0}, "rollouts must be at least 1"),
    (MctsConfig, {"children": 0}, "children must be at least 1"),
    (MctsConfig, {"parallel": 0}, "parallel must be at least 1"),
    (MctsConfig, {"top_k": -1}, "top_k must be at least 0"),
    (MctsConfig, {"min_p": 1.0}, "min_p must be in \\[0, 1\\)"),
    (MctsConfig, {"max_seconds": 0}, "max_seconds must be > 0"),
    (MctsConfig, {"max_tree_tokens": 0}, "max_tree_tokens must be at least 1"),
    (MctsConfig, {"temperature": 0}, "temperature must be > 0"),
    (MctsConfig, {"granularity": "mini-16"}, "granularity must be one of"),
])
def test_a_config_refuses_bad_values_when_built(config, options, message):
    with pytest.raises(InputError, match=message):
        config(**options)


def test_make_config_names_every_problem_at_once():
    with pytest.raises(InputError) as info:
        make_config("mcts", {"rollouts": 0, "children": 0})
    assert "rollouts must be at least 1" in str(info.value) and "children must be at least 1" in str(info.value)
    assert make_config("cot", {"max_new_tokens": 1}).max_new_tokens == 1


def _result(**overrides) -> TranslationResult:
    fields = dict(source="躺平", src_lang="zh", tgt_lang="en", translation="lie flat", thought="", raw_output="",
                  strategy="cot", model="m", params={}, tokens_generated=1, wall_time_s=0.1, format_ok=False,
                  confidence=None)
    return TranslationResult(**{**fields, **overrides})


def test_answered_and_format_ok_are_separate_facts():
    # An answer that ends at end-of-sequence right after its translation: answered, not closed.
    parsed = parse_answer("<Thought>躺平 means giving up on striving.</Thought>\n<Output>\nI'm lying flat.")
    assert parsed.translation == "I'm lying flat." and not parsed.format_ok
    assert _result(translation=parsed.translation, format_ok=parsed.format_ok).answered
    assert not _result(translation="", format_ok=False).answered


def test_old_json_without_answered_still_loads():
    data = json.loads(_result().to_json())
    assert data["answered"] is True
    del data["answered"]
    assert TranslationResult.from_dict(data).answered is True
    data["translation"] = ""
    assert TranslationResult.from_dict(data).answered is False
