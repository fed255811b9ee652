"""The llama.cpp backend: the transformers backend's invariants, on one multi-sequence KV cache.

llama.cpp runs the Q4_1 GGUF as it is (quantized matmuls) while the transformers backend runs it
dequantized to float32, and llama.cpp's kernels change with the number of rows in a step, so "the same
computation" is checked with tolerances stated per test instead of the 1e-4 of the float32 tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("llama_cpp")

from translator.api import Translator, make_request  # noqa: E402
from translator.backends import choose_backend, open_backend  # noqa: E402
from translator.backends.base import GenRequest, Sampling  # noqa: E402
from translator.backends.llama_cpp_backend import LlamaCppBackend, open_llama_cpp  # noqa: E402
from translator.errors import InputError, ModelLoadError  # noqa: E402
from translator.strategies import Hooks  # noqa: E402
from translator.strategies.mcts import REFLECTION, Mcts, MctsConfig, _Search  # noqa: E402
from backend_checks import (check_a_shared_prompt_head_is_run_once, check_an_answer_ban_changes_the_pick_not_the_log_probs,
                            check_min_p_keeps_only_tokens_near_the_best, check_no_prefix_is_encoded_twice)  # noqa: E402

PROMPT_TEXT = "Write one sentence about the sea."
TEXT = "我今天太累了，只想躺平。"
MCTS = dict(strategy="mcts", granularity="mini-32", rollouts=4, children=2, max_new_tokens=48, seed=1,
            reward="confidence")  # the paper's reward: the value is checked against the token log-probs


@pytest.fixture(scope="module")
def llama() -> LlamaCppBackend:
    return open_llama_cpp("smollm2-135m", n_ctx=4096, threads=1)


@pytest.fixture()
def prompt(llama):
    return llama.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT_TEXT}], tokenize=False,
                                               add_generation_prompt=True)


def _small(n_ctx: int) -> LlamaCppBackend:
    return LlamaCppBackend(llama_gguf(), *_tokenizer(), n_ctx=n_ctx, threads=1)


def llama_gguf():
    from translator.registry import gguf_of

    return gguf_of("smollm2-135m")


def _tokenizer():
    from translator.tokenizer import load_tokenizer

    return load_tokenizer("smollm2-135m")


def test_greedy_matches_llama_cpp_own_generation(llama, prompt):
    """Our stepping of llama.cpp decodes what llama-cpp-python's own greedy generation decodes, up to a
    near-tie (its context has another KV layout, so the float sums differ in the last bits)."""
    from itertools import islice

    from llama_cpp import Llama

    from eval.llama_server import use_backend_model_params

    use_backend_model_params()
    ids = llama.tokenizer.encode(prompt, add_special_tokens=False)
    own = Llama(str(llama_gguf()), n_ctx=512, n_threads=1, verbose=False)
    try:
        ref = list(islice(own.generate(ids, top_k=1, temp=0.0, reset=True), 24))
    finally:
        own.close()
    cont = llama.generate([GenRequest(llama.start(prompt), 24)])[0]
    got = [t.token_id for t in cont.tokens]
    k = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)
    if k is not None:  # only where the two best candidates were (nearly) tied
        step = cont.tokens[k]
        assert ref[k] in step.top_ids and step.top_logprobs[0] - step.top_logprobs[step.top_ids.index(ref[k])] < 0.1
        assert k >= 4
    assert len(got) >= 12


def test_logprobs_are_raw_and_top5_sorted(llama, prompt):
    cont = llama.generate([GenRequest(llama.start(prompt), 12, Sampling(temperature=1.5), seed=3)])[0]
    assert len(cont.tokens) == 12
    for t in cont.tokens:
        assert len(t.top_ids) == 5 and t.top_logprobs == sorted(t.top_logprobs, reverse=True)
        assert t.logprob <= t.top_logprobs[0] + 1e-6
        assert sum(math.exp(lp) for lp in t.top_logprobs) <= 1.0 + 1e-4  # normalised over the vocabulary
        assert 0.0 < t.confidence <= 1.0 + 1e-9


def test_batched_and_unbatched_agree(llama, prompt):
    """The same requests in one batch and one at a time: same seeds, same tokens; log-probs within 0.05
    (llama.cpp uses other kernels for other row counts)."""
    root = llama.start(prompt)
    kids = llama.generate([GenRequest(root, n, Sampling(temperature=0.9), seed=n) for n in (3, 7, 12)])
    states = [k.chunks[-1].state for k in kids]

    def run(batch):
        reqs = [GenRequest(s, 16) for s in states]  # greedy: a sampled token cannot hide a difference
        return llama.generate(reqs) if batch else [llama.generate([r])[0] for r in reqs]

    batched, single = run(True), run(False)
    agree = total = 0
    for a, b in zip(batched, single):
        ids_a, ids_b = [t.token_id for t in a.tokens], [t.token_id for t in b.tokens]
        same = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
        assert same >= min(4, len(ids_a), len(ids_b)), (ids_a, ids_b)  # a row may end early, both alike
        for x, y in zip(a.tokens[:same], b.tokens[:same]):
            assert abs(x.logprob - y.logprob) < 0.05
        agree, total = agree + same, total + max(len(ids_a), len(ids_b))
    assert agree / total >= 0.8


def test_sampling_depends_on_the_seed_not_the_batch(llama, prompt):
    root = llama.start(prompt)
    alone = llama.generate([GenRequest(root, 10, Sampling(0.9), seed=7)])[0]
    crowd = llama.generate([GenRequest(root, 10, Sampling(0.9), seed=s) for s in (1, 7, 2, 3)])[1]
    other = llama.generate([GenRequest(root, 10, Sampling(0.9), seed=8)])[0]
    ids = lambda c: [t.token_id for t in c.tokens]  # noqa: E731
    assert ids(alone)[:3] == ids(crowd)[:3]
    assert ids(alone) != ids(other)


def test_no_prefix_is_encoded_twice(prompt):
    backend = _small(4096)
    check_no_prefix_is_encoded_twice(backend, prompt)


def test_an_answer_ban_changes_the_pick_not_the_log_probs(prompt):
    check_an_answer_ban_changes_the_pick_not_the_log_probs(_small(4096), prompt)


def test_min_p_keeps_only_tokens_near_the_best(prompt):
    check_min_p_keeps_only_tokens_near_the_best(_small(4096), prompt)


def test_a_shared_prompt_head_is_run_once():
    check_a_shared_prompt_head_is_run_once(_small(4096), lambda: _small(4096))


def test_mcts_search_recomputes_nothing_and_is_reproducible(llama):
    tr = Translator(backend=llama)
    a = tr.translate(TEXT, "zh", "en", **MCTS)
    b = tr.translate(TEXT, "zh", "en", **MCTS)
    c = tr.translate(TEXT, "zh", "en", **{**MCTS, "seed": 2})
    tree = lambda r: [(n.parent, n.text, n.visits) for n in r.tree.nodes]  # noqa: E731
    assert a.stats["recomputed_tokens"] == 0 and a.stats["rollouts"] == 4
    assert tree(a) == tree(b)
    assert tree(a) != tree(c)
    assert a.tree.node(0).visits == 4
    for node in a.tree.nodes[1:]:
        forced = any(a.tree.node(c).kind == "force" for c in node.children)  # cut at the thought budget
        assert node.kind == "force" or node.n_tokens == 32 or node.terminal or forced
    expected = sum(math.exp(t.logprob) / sum(math.exp(lp) for lp in t.top_logprobs) for t in a.tokens) / len(a.tokens)
    assert a.reward["details"].get("raw_value", a.reward["value"]) == pytest.approx(expected, rel=1e-9)


def test_reflection_is_injected_where_a_thought_ends(llama):
    tok = llama.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Repeat this text exactly:\nIt means hello.</Thought>\n<Output>Hello</Output>"}],
        tokenize=False, add_generation_prompt=True)
    found = 0
    for seed in range(1, 6):  # the 135M model writes the tag in some samples only (which, depends on the CPU)
        config = MctsConfig(granularity="step", rollouts=3, children=3, max_new_tokens=60, reflection=True, seed=seed)
        result = _Search(Mcts(llama, config), make_request("你好", "zh", "en"), Hooks(), prompt).run()
        reflections = [n for n in result.tree.nodes if n.kind == "reflection"]
        found += len(reflections)
        for node in reflections:
            assert node.text == REFLECTION and node.n_tokens > 0 and node.confidence is None
            assert "</thought>" not in result.tree.node(node.parent).text.lower()
            assert all(n.kind != "reflection" for n in result.tree.nodes if n.parent == node.id)
        assert result.tree.node(0).visits == 3 and result.stats["recomputed_tokens"] == 0
        if found >= 2:
            break
    assert found, "the prompt no longer makes the model end a thought"


SEGMENTS = ["老板又在给我们画饼了，说明年一定涨工资。", "他最近很佛系，什么事都不争不抢。", "别卷了，大家都躺平吧。",
            "这部电影的结局有点虎头蛇尾。", "我给你安利一本书，超级好看。", "今天的会议开得我一脸懵逼。"]


def _direct(tr: Translator, texts: list[str], src: str = "zh", tgt: str = "en") -> list[tuple]:
    results = tr.strategy("direct", max_new_tokens=32).translate([make_request(t, src, tgt) for t in texts])
    return [(r.translation, [t.logprob for t in r.tokens]) for r in results]


def test_a_batch_decodes_the_same_whatever_ran_before_it():
    """llama.cpp's numbers depend on where a batch's cells lie in the cache: before the backend emptied
    the cache when the kind of prompt changed, 6 of 10 such translations came out differently after a
    batch in the other direction (whose prompt head stayed in the cache) than in a fresh backend."""
    fresh = _direct(Translator(backend=_small(4096), lexicon=False), SEGMENTS)
    tr = Translator(backend=_small(4096), lexicon=False)
    _direct(tr, ["I woke up late this morning.", "Let's go hiking this weekend, it will be fun."], "en", "zh")
    stats = tr.backend.stats
    before = stats.forwarded_tokens
    assert _direct(tr, SEGMENTS) == fresh  # after the other kind: its head is computed again, into an empty cache
    middle = stats.forwarded_tokens
    assert _direct(tr, SEGMENTS) == fresh  # the same kind again: its head is kept
    head = list(tr.backend._heads)[-1]  # the zh-en head (used last)
    assert (middle - before) - (stats.forwarded_tokens - middle) == len(head)
    assert stats.recomputed_tokens == 0  # the search's own count: a head run again on purpose is not in it


def test_a_stored_prompt_head_is_read_back_and_decodes_bitwise_the_same(tmp_path):
    """A new process reads its prompt head from the head store instead of prefilling it; what follows is
    exactly what a computed head gives, in either direction (a switch empties the cache: read into it
    again); a torn or foreign file is computed again and rewritten."""
    def backend(store):
        return LlamaCppBackend(llama_gguf(), *_tokenizer(), n_ctx=4096, threads=1, head_store=store)

    computed = Translator(backend=backend(None), lexicon=False)
    want = {d: _direct(computed, SEGMENTS[:3] if d == "zh" else ["I woke up late this morning."], d,
                       "en" if d == "zh" else "zh") for d in ("zh", "en")}
    assert computed.backend.stats.restored_tokens == 0 and not list(tmp_path.iterdir())

    first = Translator(backend=backend(tmp_path), lexicon=False)  # stores each head it computes alone
    assert _direct(first, SEGMENTS[:3]) == want["zh"]
    assert _direct(first, ["I woke up late this morning."], "en", "zh") == want["en"]
    files = sorted(tmp_path.glob("*.kv"))
    assert len(files) == 2 and first.backend.stats.restored_tokens == 0

    again = Translator(backend=backend(tmp_path), lexicon=False)
    stats = again.backend.stats
    assert _direct(again, SEGMENTS[:3]) == want["zh"]
    zh_head = len(list(again.backend._heads)[-1])
    assert stats.restored_tokens == zh_head
    assert _direct(again, ["I woke up late this morning."], "en", "zh") == want["en"]
    en_head = len(list(again.backend._heads)[-1])
    assert stats.restored_tokens == zh_head + en_head
    assert stats.forwarded_tokens == first.backend.stats.forwarded_tokens - zh_head - en_head

    for f in files:  # torn files: nothing is read, the heads are computed and the files made whole again
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    torn = Translator(backend=backend(tmp_path), lexicon=False)
    assert _direct(torn, SEGMENTS[:3]) == want["zh"] and torn.backend.stats.restored_tokens == 0
    mended = Translator(backend=backend(tmp_path), lexicon=False)
    assert _direct(mended, SEGMENTS[:3]) == want["zh"] and mended.backend.stats.restored_tokens == zh_head
    assert sorted(tmp_path.glob("*.kv")) == files  # rewritten in place, no temporary left


def test_released_states_give_their_cells_and_sequences_back(prompt):
    """Ten rounds of up to 3 x 60 tokens in a 256-cell context: only possible if each round's cells come back."""
    backend = _small(256)
    free = backend.free_sequences
    root = backend.start(prompt)
    total = 0
    for round_ in range(10):
        conts = backend.generate([GenRequest(root, 60, Sampling(1.2), seed=round_ * 3 + i) for i in range(3)])
        assert all(c.reason == "" for c in conts)
        total += sum(len(c.tokens) for c in conts)
        for cont in conts:
            for chunk in cont.chunks:
                backend.release(chunk.state)
    assert total > 2 * 256
    del conts, cont, chunk
    assert backend.free_sequences == free - 1  # the root's own sequence is still held by ``root``
    del root
    assert backend.free_sequences == free


def test_a_context_overflow_ends_the_path_cleanly(prompt):
    backend = _small(128)  # llama.cpp rounds the context up (to 256 here); ``n_ctx`` is what it made
    n = backend.n_ctx
    root = backend.start(prompt)
    cont = backend.generate([GenRequest(root, 2 * n, Sampling(1.5), seed=1)])[0]
    if cont.finish != "eos":  # the sampled text may end on its own before the context is full
        assert cont.finish == "length" and f"n_ctx={n}" in cont.reason
        assert len(root.tokens) + len(cont.tokens) == n
    # A prompt longer than the context: no tokens, the same clean end.
    long = backend.start(prompt * 20)
    cont = backend.generate([GenRequest(long, 10)])[0]
    assert cont.finish == "length" and cont.tokens == [] and f"n_ctx={n}" in cont.reason
    # A whole search in a context too small for its tree: truncated paths, a result, no exception.
    from translator.prompt import build_prompt

    request = make_request(TEXT, "zh", "en")
    prompt_len = len(backend.start(build_prompt(backend.tokenizer, request, reasoning=True)).tokens)
    result = Translator(backend=_small(prompt_len + 100)).translate(TEXT, "zh", "en", **{**MCTS, "max_new_tokens": 200})
    assert result.stats["rollouts"] == 4
    assert any(n.truncated for n in result.tree.nodes)


def test_score_forced_matches_generation_and_transformers(llama, small_model, prompt):
    """Teacher forcing a greedy continuation gives back the log-probs generation saw (same engine, other row
    counts: within 0.05), and agrees with the float32 transformers model: mean |dc| < 0.05 over the tokens
    and the same top-1 token at >= 90% of the positions (the engines quantize differently)."""
    cont = llama.generate([GenRequest(llama.start(prompt), 32)])[0]
    ids = [t.token_id for t in cont.tokens]
    forced = llama.score_forced(llama.start(prompt), ids)
    assert [s.token_id for s in forced] == ids
    assert max(abs(a.logprob - b.logprob) for a, b in zip(forced, cont.tokens)) < 0.05

    prompt_ids = small_model.tokenizer.encode(prompt, add_special_tokens=False)
    with torch.inference_mode():
        logits = small_model.model(torch.tensor([prompt_ids + ids])).logits[0].float()
    ref = logits[len(prompt_ids) - 1 : -1].log_softmax(-1)
    top_lp, top_ids = ref.topk(5, dim=-1)
    dc, top1 = [], []
    for k, score in enumerate(forced):
        ref_c = math.exp(float(ref[k, ids[k]])) / float(top_lp[k].exp().sum())
        dc.append(abs(score.confidence - ref_c))
        top1.append(score.top_ids[0] == int(top_ids[k, 0]))
    assert float(np.mean(dc)) < 0.05 and float(np.mean(top1)) >= 0.9, (np.mean(dc), np.mean(top1))


def test_backend_choice():
    assert choose_backend("smollm2-135m", "auto", "cpu") == "llama-cpp"
    assert choose_backend("smollm2-135m", "transformers", "cpu") == "transformers"
    assert choose_backend("smollm2-135m", "auto", "cuda") == "transformers"
    assert choose_backend("AIDC-AI/Marco-o1", "auto", "cpu") == "transformers"
    with pytest.raises(InputError, match="unknown backend"):
        choose_backend("smollm2-135m", "vllm")
    with pytest.raises(ModelLoadError, match="GGUF"):
        open_backend("AIDC-AI/Marco-o1", backend="llama-cpp")
    assert isinstance(open_backend("smollm2-135m", device="cpu", n_ctx=256), LlamaCppBackend)


def _distributions():
    rng = np.random.default_rng(7)
    for scale in (1.0, 4.0, 12.0):  # flat to peaky, like an LM's next-token distributions
        x = (rng.standard_normal(3000) * scale).astype(np.float32)
        yield x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_best_ids_are_the_largest_in_order_and_leave_the_values_as_they_were():
    from translator.backends.llama_cpp_backend import _best

    for lp in _distributions():
        before = lp.copy()
        for m in (1, 5, 8, 9, 64, lp.size, lp.size + 3):
            assert list(_best(lp, m)) == list(np.argsort(-lp, kind="stable")[:m])
            assert np.array_equal(lp, before)


def test_sampling_draws_what_a_full_sort_of_the_vocabulary_draws():
    """The nucleus is found among the tokens that can be in it, not by sorting the vocabulary: the token drawn
    for a given random number must be the one the plain rule (sort all, cut top-k, then top-p, then min-p on
    the raw distribution) gives."""
    from translator.backends.llama_cpp_backend import _sample

    def plain(lp, s: Sampling, u: float) -> int:
        p = np.exp(lp.astype(np.float64) / s.temperature - (lp.astype(np.float64) / s.temperature).max())
        p /= p.sum()
        order = np.arange(p.size)
        if s.top_k or s.top_p < 1:
            order = np.argsort(-p, kind="stable")
        if s.top_k:
            order = order[: s.top_k]
        q = p[order] / (p[order].sum() if s.top_k else 1.0)
        if s.top_p < 1:
            keep = np.cumsum(q) - q <= s.top_p
            order, q = order[keep], q[keep]
        if s.min_p:
            keep = lp[order] >= lp.max() + np.log(s.min_p)
            order, q = order[keep], q[keep]
        c = np.cumsum(q)
        return int(order[min(int(np.searchsorted(c, u * c[-1], side="right")), len(q) - 1)])

    settings = [Sampling(0.8, 0.95, 0), Sampling(1.0, 0.5, 0), Sampling(0.7, 1.0, 0), Sampling(1.2, 0.9, 40),
                Sampling(0.8, 1.0, 20), Sampling(0.8, 0.95, 0, 0.1), Sampling(1.5, 1.0, 0, 0.05),
                Sampling(1.2, 0.9, 40, 0.2)]
    drawn = 0
    for lp in _distributions():
        for s in settings:
            for seed in range(40):
                u = np.random.default_rng(seed).random()
                token = _sample(lp, s, np.random.default_rng(seed))
                assert token == plain(lp, s, u), (s, seed)
                drawn += token != int(lp.argmax())
    assert drawn > 100  # the draws were not all the argmax
