"""The cached tokenizer read without transformers must tokenize, decode and build prompts exactly as
transformers' fast tokenizer does for the same files: prompts, token ids and chunk texts may not depend on
which of the two a backend got. And a warm start must not import transformers at all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from translator.api import make_request
from translator.lexicon import load_lexicon
from translator.prompt import build_prompt
from translator.registry import REGISTRY
from translator.script_guard import banned_token_ids
from translator.tokenizer import CachedTokenizer, _tokenizer_dir, fix_tokenizer, load_tokenizer

TEXTS = [
    "这双鞋给人一种踩屎感。", "Hello , world ! Isn 't it ? I 'm here , you 're there , we 've won .",
    "He said ' yes ' .", "  leading and trailing spaces  ", "emoji 🙂👍🏽 and café déjà vu", "tabs\tand\nnewlines\n\n",
    "<|im_start|>user\n你好<|im_end|>\n", "<Thought>想一想</Thought>\n<Output>yes</Output>", "yyds，绝绝子！", "",
]


@pytest.fixture(scope="module", params=["smollm2-135m", "qwen2.5-coder-1.5b"])
def pair(request):
    """(cached, transformers) tokenizers of one model, both after the special-token fix."""
    from transformers import AutoTokenizer

    spec = request.param
    try:
        cached, stops = load_tokenizer(spec)  # builds the cache on a first run
    except Exception as exc:  # noqa: BLE001 - the default model's packages may be absent in a small checkout
        pytest.skip(f"{spec} is not installed here: {exc}")
    # the directory the cached tokenizer was read from: its own, or a dequantized model's copy
    reference = AutoTokenizer.from_pretrained(cached.directory, fix_mistral_regex=False)
    return cached, stops, reference, fix_tokenizer(reference)


def test_a_gguf_tokenizer_comes_from_the_cache_without_transformers(pair):
    cached, stops, reference, reference_stops = pair
    assert isinstance(cached, CachedTokenizer)
    assert stops == reference_stops
    assert (cached.eos_token, cached.eos_token_id, cached.pad_token, cached.pad_token_id) == (
        reference.eos_token, reference.eos_token_id, reference.pad_token, reference.pad_token_id)
    assert len(cached) == len(reference) and cached.get_vocab() == reference.get_vocab()


def test_encode_decode_and_pieces_match_transformers(pair):
    cached, _, reference, _ = pair
    for text in TEXTS:
        ids = reference.encode(text, add_special_tokens=False)
        assert cached.encode(text, add_special_tokens=False) == ids, text
        assert cached.decode(ids, skip_special_tokens=False) == reference.decode(ids, skip_special_tokens=False)
        assert cached.decode(ids, clean_up_tokenization_spaces=False) == reference.decode(
            ids, clean_up_tokenization_spaces=False)
        assert cached.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    size = len(reference)
    assert cached.convert_ids_to_tokens(list(range(size))) == reference.convert_ids_to_tokens(list(range(size)))
    for i in range(0, size, 97):  # single-token decodes: what the cutter and the token view show
        assert cached.decode([i]) == reference.decode([i]), i
    assert banned_token_ids(cached).tolist() == banned_token_ids(reference).tolist()


def test_prompts_match_transformers(pair):
    cached, _, reference, _ = pair
    lexicon = load_lexicon()
    for src, tgt, text in (("zh", "en", "我今天太累了，只想躺平。"), ("en", "zh", "no cap, it's mid")):
        request = make_request(text, src, tgt, context="a tweet", lexicon=lexicon)
        assert request.hints  # the notes block is part of what must match
        for reasoning in (False, True):
            assert build_prompt(cached, request, reasoning=reasoning) == build_prompt(reference, request,
                                                                                      reasoning=reasoning)
    messages = [{"role": "user", "content": "hi"}]
    assert cached.apply_chat_template(messages, tokenize=True, add_generation_prompt=True) == \
        reference.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)


def test_a_warm_start_does_not_import_transformers():
    load_tokenizer("smollm2-135m")  # the cache exists after this
    code = ("import sys; from translator.tokenizer import load_tokenizer; t, s = load_tokenizer('smollm2-135m'); "
            "assert t.encode('hi', add_special_tokens=False); print(sorted(m for m in ('transformers', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_a_damaged_cache_is_rebuilt_from_the_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("MARCO_TRANSLATE_CACHE", str(tmp_path))
    directory = _tokenizer_dir(REGISTRY["smollm2-135m"].sha256)
    assert str(directory).startswith(str(tmp_path))
    directory.mkdir(parents=True)
    (directory / "tokenizer.json").write_text("{not json", encoding="utf-8")
    tokenizer, stops = load_tokenizer("smollm2-135m")
    assert isinstance(tokenizer, CachedTokenizer) and stops
    assert tokenizer.decode(tokenizer.encode("你好", add_special_tokens=False)) == "你好"
