"""MCTS on the small model: the search is the paper's, accounted for, and reproducible."""

import json
import math

import pytest

from translator.api import Translator
from translator.backends.transformers_backend import TransformersBackend
from translator.mcts import Node
from translator.result import TranslationResult
from translator.strategies.mcts import REFLECTION

TEXT = "我今天太累了，只想躺平。"
SMALL = dict(rollouts=6, children=3, max_new_tokens=72, seed=5)


@pytest.fixture()
def translator(small_backend):
    return Translator(backend=small_backend)


def _search(translator, **options):
    return translator.translate(TEXT, "zh", "en", strategy="mcts", **{**SMALL, **options})


@pytest.fixture()
def mini32(translator):
    return _search(translator, granularity="mini-32")


def test_reward_equals_recomputation_from_logprobs(mini32):
    tokens = mini32.tokens
    expected = sum(math.exp(t.logprob) / sum(math.exp(lp) for lp in t.top_logprobs) for t in tokens) / len(tokens)
    assert mini32.reward["name"] == "confidence"
    assert mini32.reward["value"] == pytest.approx(expected, rel=1e-9)
    # ... and the chosen terminal node records the same value among its rollout rewards.
    leaf = mini32.tree.node(mini32.tree.chosen_path[-1])
    assert leaf.rewards[0] == pytest.approx(expected, rel=1e-9)


def test_mini_step_nodes_hold_exact_token_counts(mini32):
    for node in mini32.tree.nodes[1:]:
        assert node.kind == "mini-32"
        if not node.terminal:
            assert node.n_tokens == 32
        else:
            assert 0 <= node.n_tokens <= 32


def test_visits_add_up(mini32):
    tree = mini32.tree
    root = tree.node(0)
    assert root.visits == SMALL["rollouts"] == mini32.stats["rollouts"]
    for node in tree.nodes:
        if node.children and not node.terminal:
            assert node.visits == sum(tree.node(c).visits for c in node.children)
        assert len(node.rewards) == node.visits
        assert node.total_value == pytest.approx(sum(node.rewards))


def test_chosen_path_is_most_visited_chain(mini32):
    tree = mini32.tree
    path = tree.chosen_path
    assert path[0] == 0 and tree.node(path[-1]).terminal
    for parent, child in zip(path, path[1:]):
        siblings = [tree.node(c) for c in tree.node(parent).children]
        best = max(siblings, key=lambda n: (n.visits, n.mean_value))
        assert child == best.id
    assert [s.node_id for s in mini32.steps] == path[1:]
    assert all(n.on_path == (n.id in path) for n in tree.nodes)


def test_same_seed_same_tree(translator):
    a = _search(translator, granularity="mini-32", rollouts=3)
    b = _search(translator, granularity="mini-32", rollouts=3)
    c = _search(translator, granularity="mini-32", rollouts=3, seed=6)
    texts = lambda r: [(n.parent, n.text, n.visits) for n in r.tree.nodes]
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)


def test_step_granularity_cuts_at_line_ends(translator):
    result = _search(translator, granularity="step", rollouts=3)
    for node in result.tree.nodes[1:]:
        if not node.terminal and node.n_tokens < 192:
            assert node.text.endswith("\n") or node.text.rstrip().lower().endswith(("</thought>", "</output>")), node.text


def test_reflection_on_and_off(translator, small_backend):
    # A prompt-level nudge is not possible with a 135M model; instead the search is given a short budget
    # and we look for the injected sentence wherever a path closed its thought.
    on = _search(translator, granularity="step", rollouts=3, reflection=True, max_new_tokens=160)
    off = _search(translator, granularity="step", rollouts=3, reflection=False, max_new_tokens=160)
    reflections = [n for n in on.tree.nodes if n.kind == "reflection"]
    closed_off = [n for n in off.tree.nodes if "</thought>" in n.text.lower()]
    assert not any(n.kind == "reflection" or REFLECTION.strip() in n.text for n in off.tree.nodes)
    if closed_off:  # the model closes its thought within budget: then reflection must have fired
        assert reflections
        for node in reflections:
            assert node.text == REFLECTION and node.n_tokens > 0
            assert "</thought>" not in on.tree.node(node.parent).text.lower()
    else:
        pytest.skip("the small model never closed its thought within the budget")


def test_cache_reuse_off_computes_the_same(small_model):
    """Turning cache reuse and batching off changes cost, not results (fp32: log-probs within 1e-4)."""
    fast = Translator(backend=TransformersBackend(small_model))
    naive = Translator(backend=TransformersBackend(small_model, reuse_cache=False, batch=False))
    for text in (TEXT, "这双鞋给人一种踩屎感。"):
        opts = dict(strategy="mcts", granularity="mini-32", rollouts=4, children=2, max_new_tokens=48, seed=1)
        a = fast.translate(text, "zh", "en", **opts)
        b = naive.translate(text, "zh", "en", **opts)
        assert a.translation == b.translation
        assert [n.text for n in a.tree.nodes] == [n.text for n in b.tree.nodes]
        for x, y in zip(a.tokens, b.tokens):
            assert x.token_id == y.token_id and abs(x.logprob - y.logprob) < 1e-4
        assert a.stats["recomputed_tokens"] == 0 < b.stats["recomputed_tokens"]
        assert a.stats["forwarded_tokens"] < b.stats["forwarded_tokens"]


def test_result_round_trips_through_json(mini32):
    loaded = TranslationResult.from_json(mini32.to_json())
    assert loaded == mini32
    assert json.loads(mini32.to_json())["tree"]["nodes"][0]["kind"] == "root"


def test_invalid_options_are_clear_errors(translator):
    from translator.errors import InputError

    with pytest.raises(InputError, match="granularity"):
        _search(translator, granularity="mini-16")
    with pytest.raises(InputError, match="rollouts"):
        _search(translator, rollouts=0)
    with pytest.raises(InputError, match="do not apply"):
        translator.translate(TEXT, "zh", "en", strategy="cot", rollouts=4)
