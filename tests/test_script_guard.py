"""The answer guards: no Chinese characters in an answer into English, whatever the tokenizer, and no copy of
the notes' sense separator in an answer given notes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from translator.api import Translator
from translator.backends.base import GenRequest
from translator.backends.cutter import TokenCutter
from translator.languages import resolve_language
from translator.prompt import SENSE_SEPARATOR, Hint, TranslationRequest
from translator.script_guard import answer_ban, applies, banned_token_ids, keeps_notes_out, separator_token_ids

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


NOTE = (Hint("摸鱼", ("slack off", "goof off at work"), "zh-slang", "slang"),)


def _request(text: str = "他今天又在摸鱼。", tgt: str = "en", hints=NOTE) -> TranslationRequest:
    return TranslationRequest(text, resolve_language("zh"), resolve_language(tgt), hints=hints)


def test_backends_that_pick_no_tokens_and_switched_off_guards_get_no_ban():
    assert answer_ban(_Backend(), _request(), True, True) is None  # an HTTP server picks its own tokens
    assert answer_ban(_Backend(), _request(), False, False) is None


def test_the_separator_ban_covers_every_token_that_writes_it_and_nothing_else(tokenizer):
    banned = set(separator_token_ids(tokenizer).tolist())
    assert set(tokenizer.encode(SENSE_SEPARATOR, add_special_tokens=False)) & banned
    for i in range(len(tokenizer)):
        assert ("|" in tokenizer.convert_ids_to_tokens([i])[0]) == (i in banned)
    for text in ("Hello, world!", "slack off; goof off / loaf", "<Output>It is fine.</Output>"):
        assert not set(tokenizer.encode(text, add_special_tokens=False)) & banned, text


def test_the_notes_guard_applies_to_requests_with_notes_whose_text_needs_no_separator(tokenizer):
    class Masking:
        masks_tokens = True
        stop_ids = {tokenizer.get_vocab()["<|im_end|>"]}

    Masking.tokenizer = tokenizer
    separator, script = set(separator_token_ids(tokenizer).tolist()), set(banned_token_ids(tokenizer).tolist())
    assert Masking.stop_ids <= separator  # the chat marker holds the character, and must stay choosable
    both = set(answer_ban(Masking(), _request(), True, True).tolist())
    assert both == script | (separator - Masking.stop_ids)
    assert set(answer_ban(Masking(), _request(tgt="zh"), True, True).tolist()) == separator - Masking.stop_ids
    assert set(answer_ban(Masking(), _request(), True, False).tolist()) == script
    assert set(answer_ban(Masking(), _request(hints=()), True, True).tolist()) == script  # no notes to copy
    assert answer_ban(Masking(), _request(hints=(), tgt="zh"), True, True) is None
    piped = _request("表格写成 A | B 两列，他在摸鱼。")  # a text that needs the character keeps it
    assert not keeps_notes_out(piped) and set(answer_ban(Masking(), piped, True, True).tolist()) == script


@pytest.mark.parametrize("strategy, options", [("direct", {}), ("cot", {"fallback": False}),
                                               ("mcts", {"rollouts": 1, "children": 2})])
def test_every_strategy_keeps_the_separator_out_of_an_answer_given_notes(strategy, options):
    from translator.backends.llama_cpp_backend import open_llama_cpp

    backend = open_llama_cpp("smollm2-135m", n_ctx=4096, threads=1)
    separator = set(separator_token_ids(backend.tokenizer).tolist()) - backend.stop_ids
    bans: list = []
    generate = backend.generate
    backend.generate = lambda requests, **kw: (bans.extend(r.answer_ban for r in requests), generate(requests, **kw))[1]
    translator = Translator(backend=backend)
    for guard in (True, False):
        bans.clear()
        result = translator.translate("他今天上班又在摸鱼。", "zh", "en", strategy=strategy, max_new_tokens=24,
                                      notes_guard=guard, **options)
        assert result.hints and result.params["notes_guard"] is guard
        assert bans and all((separator <= set(b.tolist())) is guard for b in bans)


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
