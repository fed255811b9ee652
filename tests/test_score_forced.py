"""Teacher forcing (``Backend.score_forced``) scores given tokens exactly as generation scored them."""

from translator.backends.base import GenRequest
from translator.backends.transformers_backend import TransformersBackend

TOL = 1e-4  # float32 on CPU: one forward over a continuation vs token-by-token decoding differ by ~1e-5


def _prompt(model) -> str:
    return model.tokenizer.apply_chat_template([{"role": "user", "content": "Say something about rivers."}],
                                               tokenize=False, add_generation_prompt=True)


def test_forced_scores_equal_greedy_generation(small_model):
    backend = TransformersBackend(small_model)
    prompt = _prompt(small_model)
    generated = backend.generate([GenRequest(backend.start(prompt), 20)])[0].tokens
    ids = [t.token_id for t in generated]
    forced = TransformersBackend(small_model).score_forced(TransformersBackend(small_model).start(prompt), ids)
    assert [t.token_id for t in forced] == ids
    for g, f in zip(generated, forced):
        assert abs(g.logprob - f.logprob) < TOL
        assert f.top_ids == g.top_ids
        assert max(abs(a - b) for a, b in zip(f.top_logprobs, g.top_logprobs)) < TOL


def test_forced_scoring_reuses_the_cached_prefix_and_leaves_the_state_unchanged(small_model):
    backend = TransformersBackend(small_model)
    state = backend.start(_prompt(small_model))
    ids = small_model.tokenizer.encode("Rivers run to the sea.", add_special_tokens=False)
    first = backend.score_forced(state, ids)
    after_first = backend.stats.forwarded_tokens
    assert after_first == len(state.tokens) + len(ids) - 1
    second = backend.score_forced(state, ids)
    # The prompt is not encoded again: only the continuation (less its last token) is run.
    assert backend.stats.forwarded_tokens - after_first == len(ids) - 1
    assert backend.stats.recomputed_tokens == 0
    assert [t.logprob for t in first] == [t.logprob for t in second]
    # The state still generates from its prompt as if nothing had been scored.
    fresh = TransformersBackend(small_model)
    a = backend.generate([GenRequest(state, 6)])[0].tokens
    b = fresh.generate([GenRequest(fresh.start(_prompt(small_model)), 6)])[0].tokens
    assert [t.token_id for t in a] == [t.token_id for t in b]


def test_empty_continuation_scores_nothing(small_backend, small_model):
    assert small_backend.score_forced(small_backend.start(_prompt(small_model)), []) == []
