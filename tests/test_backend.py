"""The in-process backend: exact greedy decoding, batching and cache reuse change nothing computed."""

import pytest
import torch

from translator.actions import Chunking
from translator.backends.base import GenRequest, Sampling
from translator.backends.transformers_backend import TransformersBackend
from backend_checks import (check_a_shared_prompt_head_is_run_once, check_an_answer_ban_changes_the_pick_not_the_log_probs,
                            check_min_p_keeps_only_tokens_near_the_best, check_no_prefix_is_encoded_twice)

PROMPT_TEXT = "Write one sentence about the sea."
TOL = 1e-4  # float32 on CPU: batched (left-padded) vs single-row logits differ by ~1e-5


@pytest.fixture()
def prompt(small_model):
    return small_model.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT_TEXT}], tokenize=False,
                                                     add_generation_prompt=True)


def test_greedy_matches_transformers_generate(small_model, small_backend, prompt):
    tok, model = small_model.tokenizer, small_model.model
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.inference_mode():
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
    expected = ref[0, ids.shape[1]:].tolist()
    cont = small_backend.generate([GenRequest(small_backend.start(prompt), 24)])[0]
    got = [t.token_id for t in cont.tokens]
    stop = set(small_model.stop_token_ids)
    expected = expected[: next((i for i, t in enumerate(expected) if t in stop), len(expected))]
    assert got == expected


def test_logprobs_are_raw_and_top5_sorted(small_backend, prompt):
    cont = small_backend.generate([GenRequest(small_backend.start(prompt), 12, Sampling(temperature=1.5), seed=3)])[0]
    for t in cont.tokens:
        assert len(t.top_ids) == 5 and t.top_logprobs == sorted(t.top_logprobs, reverse=True)
        assert t.logprob <= t.top_logprobs[0] + 1e-6
        assert 0.0 < t.confidence <= 1.0 + 1e-9


def _run(backend, states, seeds):
    reqs = [GenRequest(s, 20, Sampling(temperature=0.9), seed=seed) for s, seed in zip(states, seeds)]
    return backend.generate(reqs)


def test_batched_and_unbatched_and_uncached_agree(small_model, prompt):
    fast = TransformersBackend(small_model)
    root = fast.start(prompt)
    # Children of different lengths, so the batch needs left padding.
    kids = fast.generate([GenRequest(root, n, Sampling(temperature=0.9), seed=n) for n in (3, 7, 12)])
    states = [k.chunks[-1].state for k in kids]
    batched = _run(fast, states, [1, 2, 3])
    single = _run(TransformersBackend(small_model, batch=False), states, [1, 2, 3])
    naive = _run(TransformersBackend(small_model, reuse_cache=False, batch=False), states, [1, 2, 3])
    for a, b, c in zip(batched, single, naive):
        assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens] == [t.token_id for t in c.tokens]
        for x, y in zip(a.tokens, c.tokens):
            assert abs(x.logprob - y.logprob) < TOL


def test_no_prefix_is_encoded_twice(small_model, prompt):
    backend = TransformersBackend(small_model)
    check_no_prefix_is_encoded_twice(backend, prompt)


def test_an_answer_ban_changes_the_pick_not_the_log_probs(small_model, prompt):
    check_an_answer_ban_changes_the_pick_not_the_log_probs(TransformersBackend(small_model), prompt)


def test_min_p_keeps_only_tokens_near_the_best(small_model, prompt):
    check_min_p_keeps_only_tokens_near_the_best(TransformersBackend(small_model), prompt)


def test_a_shared_prompt_head_is_run_once(small_model):
    check_a_shared_prompt_head_is_run_once(TransformersBackend(small_model), lambda: TransformersBackend(small_model))


def test_uncached_backend_counts_recomputation(small_model, prompt):
    naive = TransformersBackend(small_model, reuse_cache=False, batch=False)
    root = naive.start(prompt)
    cont = naive.generate([GenRequest(root, 6)])[0]
    naive.generate([GenRequest(cont.chunks[-1].state, 4)])
    assert naive.stats.recomputed_tokens == len(root.tokens) + 5


def test_mini_chunks_hold_exact_token_counts(small_backend, prompt):
    cont = small_backend.generate([GenRequest(small_backend.start(prompt), 80, Sampling(0.9), seed=1,
                                              chunking=Chunking("mini-32"))])[0]
    sizes = [len(c.tokens) for c in cont.chunks]
    assert all(s == 32 for s in sizes[:-1]) and 0 < sizes[-1] <= 32
    assert sum(sizes) == len(cont.tokens)
