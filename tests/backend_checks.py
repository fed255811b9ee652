"""Invariants every in-process backend must keep, checked the same way for each (shared by the test files)."""

from __future__ import annotations

import math

import numpy as np

from translator.actions import Chunking
from translator.backends.base import GenRequest, Sampling


def check_no_prefix_is_encoded_twice(backend, prompt: str) -> None:
    """Three sampled children of one prompt, then each continued: only never-seen tokens are run."""
    root = backend.start(prompt)
    first = backend.generate([GenRequest(root, 16, Sampling(0.9), seed=s, chunking=Chunking("mini-32"))
                              for s in range(3)])
    prompt_len = len(root.tokens)
    assert backend.stats.forwarded_tokens == prompt_len + sum(_run_after(c) - 1 for c in first)
    before = backend.stats.forwarded_tokens
    second = backend.generate([GenRequest(c.chunks[-1].state, 8, Sampling(0.9), seed=9) for c in first])
    # Continuing each child runs only its one pending token plus the new ones.
    assert backend.stats.forwarded_tokens - before == sum(_run_after(c) for c in second)
    assert backend.stats.recomputed_tokens == 0


def _run_after(cont) -> int:
    """Tokens a continuation ran through the model, counting the one sampled before it: its kept tokens,
    the last one run too when an end-of-sequence token (sampled, not kept) ended it."""
    return len(cont.tokens) + (cont.finish == "eos")


def assert_same_greedy(batched, single, tol: float = 0.25) -> None:
    """Greedy tokens decoded in a batch and alone agree, but for kernel noise at a near tie: llama.cpp's (and
    bf16's) kernels depend on the batch size, so their log-probs differ slightly. Where the picks first differ,
    each must score within ``tol`` of the other in the lone run's distribution; the paths part there."""
    assert batched and single
    for a, b in zip(batched, single):
        assert abs(a.logprob - b.logprob) <= tol
        if a.token_id != b.token_id:
            alone = dict(zip(b.top_ids, b.top_logprobs))
            assert a.token_id in alone and alone[b.token_id] - alone[a.token_id] <= tol
            return


def check_a_shared_prompt_head_is_run_once(backend, fresh) -> None:
    """Prompts of one kind share their head (chat template, system prompt, instructions): it is one kept
    parent state, run once; each prompt's tokens are the same as unshared, and greedy decoding makes the
    same of them (up to near ties: ``assert_same_greedy``) whether the head was computed before or not (``fresh()``: a backend with nothing kept)."""
    from translator.api import make_request
    from translator.prompt import build_prompt, prompt_head, start_prompt

    requests = [make_request(t, "zh", "en") for t in ("你好", "我今天太累了，只想躺平。", "这双鞋给人一种踩屎感。")]
    prompts = [build_prompt(backend.tokenizer, r, reasoning=True) for r in requests]
    states = [start_prompt(backend, r, reasoning=True) for r in requests]
    head = states[0].parent
    assert head is not None and all(s.parent is head for s in states)
    assert backend.decode(head.tokens) == prompts[0][: prompt_head(prompts[0])]  # up to the instruction line
    for prompt, state in zip(prompts, states):
        assert state.all_tokens() == backend.tokenizer.encode(prompt, add_special_tokens=False)
    before = backend.stats.forwarded_tokens
    out = backend.generate([GenRequest(s, 4) for s in states])
    run = head.end + sum(len(s.tokens) for s in states)
    assert backend.stats.forwarded_tokens - before == run + sum(_run_after(c) - 1 for c in out)
    assert backend.stats.recomputed_tokens == 0
    again = backend.generate([GenRequest(start_prompt(backend, requests[1], reasoning=True), 4)])[0]
    assert backend.stats.forwarded_tokens - before == run + sum(_run_after(c) - 1 for c in out) + \
        len(states[1].tokens) + _run_after(again) - 1  # the head is not run again
    for request, cont in zip(requests, out):
        alone = fresh()
        single = alone.generate([GenRequest(alone.start(build_prompt(alone.tokenizer, request, reasoning=True)), 4)])
        assert_same_greedy(cont.tokens, single[0].tokens)
    # A prompt of another kind (direct: another system prompt) has a head of its own.
    direct = start_prompt(backend, requests[0], reasoning=False)
    assert direct.parent is not None and direct.parent is not head


def check_an_answer_ban_changes_the_pick_not_the_log_probs(backend, prompt: str) -> None:
    """A banned id is never chosen inside the answer, is chosen as before outside it, and the log-probs
    reported stay the raw ones (the banned id is still the raw top-1)."""
    root = backend.start(prompt)
    free = backend.generate([GenRequest(root, 6)])[0]
    first = free.tokens[0].token_id
    ban = np.array([first], dtype=np.int64)
    outside = backend.generate([GenRequest(root, 6, answer_ban=ban)])[0]  # no Output opened: no ban yet
    assert [t.token_id for t in outside.tokens] == [t.token_id for t in free.tokens]
    inside = backend.generate([GenRequest(root, 6, answer_ban=ban, in_answer=True)])[0]
    picked = inside.tokens[0]
    assert picked.token_id != first and picked.token_id == picked.top_ids[1]  # greedy: the best allowed
    assert picked.top_ids[0] == first and picked.top_logprobs[0] == free.tokens[0].logprob
    assert picked.logprob == picked.top_logprobs[1]  # the raw log-prob of what was picked
    assert all(t.token_id != first for t in inside.tokens)


def check_min_p_keeps_only_tokens_near_the_best(backend, prompt: str) -> None:
    """With min-p, every sampled token's raw probability is at least min_p times the step's best (read from
    the top-5 the backend reports); at the same hot temperature without it, some token falls below."""
    root = backend.start(prompt)

    def below(sampling: Sampling) -> int:
        conts = backend.generate([GenRequest(root, 24, sampling, seed=s) for s in range(4)])
        tokens = [t for c in conts for t in c.tokens]
        assert len(tokens) >= 24
        return sum(t.logprob < t.top_logprobs[0] + math.log(0.2) - 1e-5 for t in tokens)

    assert below(Sampling(2.0, 1.0, 0, 0.2)) == 0
    assert below(Sampling(2.0)) > 0
