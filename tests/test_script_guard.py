"""The target-script guard: no Chinese characters in an answer into English, whatever the tokenizer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from translator.api import Translator
from translator.backends.base import GenRequest
from translator.backends.cutter import TokenCutter
from translator.languages import resolve_language
from translator.script_guard import answer_ban, applies, banned_token_ids

HAN = re.compile(r"[\u3000-\u9fff]")


@pytest.fixture(scope="module")
def tokenizer():
    from translator.tokenizer import load_tokenizer

    return load_tokenizer("smollm2-135m")[0]


def test_the_ban_covers_every_token_that_writes_chinese_and_nothing_else(tokenizer):
    banned = set(banned_token_ids(tokenizer).tolist())
    # Chinese text, as one token or as byte pieces, cannot be written without a banned token...
    for text in ("你好", "踩屎感", "。", "、"):
        assert set(tokenizer.encode(text, add_special_tokens=False)) & banned
    # ...and every token that decodes to a Chinese character is banned, while Latin, accented letters,
    # curly quotes and emoji are not.
    for i in range(len(tokenizer)):
        if HAN.search(tokenizer.decode([i])):
            assert i in banned
    for text in ("Hello, world!", "café déjà vu", "“quoted” — dash", "🙂 ok", "naïve Zoë"):
        assert not set(tokenizer.encode(text, add_special_tokens=False)) & banned, text
    assert banned_token_ids(tokenizer) is banned_token_ids(tokenizer)  # scanned once


def test_a_cached_tokenizer_saves_the_scan_and_later_starts_read_it(tokenizer, tmp_path, monkeypatch):
    import shutil

    from translator import script_guard
    from translator.tokenizer import CachedTokenizer

    copy = tmp_path / "tok"
    shutil.copytree(tokenizer.directory, copy, ignore=shutil.ignore_patterns("script-guard-*"))
    scanned = banned_token_ids(CachedTokenizer(copy))  # no saved ids yet: scanned, then saved
    saved = copy / script_guard._SAVED_IDS
    assert np.array_equal(np.load(saved), scanned)

    def no_scan(_tokenizer):
        raise AssertionError("scanned although the ids were saved")

    monkeypatch.setattr(script_guard, "_scan", no_scan)
    assert np.array_equal(banned_token_ids(CachedTokenizer(copy)), scanned)  # a fresh start reads them
    saved.write_bytes(b"not an array")
    monkeypatch.undo()
    assert np.array_equal(banned_token_ids(CachedTokenizer(copy)), scanned)  # damaged: scanned again
    assert np.array_equal(np.load(saved), scanned)  # and saved again


def test_it_applies_to_targets_not_written_with_han_characters():
    assert applies(resolve_language("en")) and applies(resolve_language("fr"))
    assert not any(applies(resolve_language(c)) for c in ("zh", "ja", "ko"))


class _Backend:
    masks_tokens = False
    tokenizer = None


def test_backends_that_pick_no_tokens_and_switched_off_guards_get_no_ban():
    en = resolve_language("en")
    assert answer_ban(_Backend(), en, True) is None  # an HTTP server picks its own tokens
    assert answer_ban(_Backend(), en, False) is None


def test_the_answer_starts_where_the_output_opens():
    pieces = ["I think", " it means X.", "</Thought>", "\n<Out", "put>", "It"]
    request = GenRequest(None, 50, answer_ban=np.array([7]))
    cut = TokenCutter(request, [], lambda ids: "".join(pieces[i] for i in ids))
    seen = []
    for token in range(len(pieces)):
        seen.append(cut.banned() is not None)
        cut.feed(token, 0.0, [], [])
    assert seen == [False, False, False, False, False, True]  # after "<Output>", split over two tokens
    assert cut.continuation([None]).in_answer


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_a_translation_into_english_holds_no_chinese_characters(strategy):
    from translator.backends.llama_cpp_backend import open_llama_cpp

    translator = Translator(backend=open_llama_cpp("smollm2-135m", n_ctx=4096, threads=1))
    text = "他说这家店的奶茶绝绝子，我们都被种草了。"
    options = dict(max_new_tokens=48, **({"fallback": False} if strategy == "cot" else {}))
    guarded = translator.translate(text, "zh", "en", strategy=strategy, **options)
    assert guarded.params["script_guard"] is True
    answer = guarded.raw_output.split("<Output>")[-1] if strategy == "cot" else guarded.raw_output
    assert not HAN.search(answer)
    free = translator.translate(text, "zh", "en", strategy=strategy, script_guard=False, **options)
    assert free.params["script_guard"] is False
