"""MCTS on the small model: the search is the paper's, accounted for, and reproducible."""

import json
import math
import re

import pytest

from translator.api import Translator, make_request
from translator.backends.transformers_backend import TransformersBackend
from translator.result import TranslationResult
from translator.strategies import Hooks
from translator.strategies.mcts import REFLECTION, Mcts, MctsConfig, _Search

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
    raw = mini32.reward["details"].get("raw_value", mini32.reward["value"])
    assert raw == pytest.approx(expected, rel=1e-9)
    # A rollout without a translation is worth 0 to the search, however confident the model was.
    assert mini32.reward["value"] == (pytest.approx(expected, rel=1e-9) if mini32.translation else 0.0)
    # ... and the chosen terminal node records the same value among its rollout rewards.
    leaf = mini32.tree.node(mini32.tree.chosen_path[-1])
    assert leaf.rewards[0] == pytest.approx(mini32.reward["value"], rel=1e-9)


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


def test_reflection_on_and_off(small_backend):
    """The paper's sentence is injected where a thought ends, only when reflection is on.

    The 135M model does not follow the Thought/Output format by itself, so this search starts from a
    prompt that makes it write the tags (the search machinery is the real one)."""
    tok = small_backend.tokenizer
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Repeat this text exactly:\nIt means hello.</Thought>\n<Output>Hello</Output>"}],
        tokenize=False, add_generation_prompt=True)
    request = make_request("你好", "zh", "en")

    def search(reflection: bool):
        config = MctsConfig(granularity="step", rollouts=3, children=3, max_new_tokens=60, reflection=reflection, seed=1)
        return _Search(Mcts(small_backend, config), request, Hooks(), prompt).run()

    off, on = search(False), search(True)
    ends = re.compile(r"</thought>|<output>", re.IGNORECASE)
    assert any(ends.search(n.text) for n in off.tree.nodes), "the prompt no longer makes the model end a thought"
    assert not any(n.kind == "reflection" or "Wait! Maybe" in n.text for n in off.tree.nodes)
    reflections = [n for n in on.tree.nodes if n.kind == "reflection"]
    assert reflections
    for node in reflections:
        assert node.text == REFLECTION and node.n_tokens > 0 and node.confidence is None  # injected, not generated
        assert not ends.search(on.tree.node(node.parent).text)  # the tag that ended the thought was cut
        below = [n for n in on.tree.nodes if n.parent == node.id]
        assert all(not n.kind == "reflection" for n in below)  # one reflection per path
    assert on.tree.node(0).visits == 3


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


def test_backtranslation_reward_scores_round_trip(translator):
    result = _search(translator, granularity="mini-32", rollouts=2, children=2, max_new_tokens=40,
                     reward="confidence+backtranslation")
    details = result.reward["details"]
    assert {"confidence", "backtranslation", "translation"} <= set(details)
    back = details["backtranslation"]
    assert 0.0 <= back["value"] <= 1.0 and back["value"] == pytest.approx(back["chrf"] / 100)
    raw = details.get("raw_value", result.reward["value"])
    assert raw == pytest.approx((details["confidence"]["value"] + back["value"]) / 2)


def test_comet_qe_reward_without_a_model_is_a_clear_error(small_backend, tmp_path, monkeypatch):
    from translator.errors import InputError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="comet-qe"):
        Mcts(small_backend, MctsConfig(reward="comet-qe", comet_model=str(tmp_path / "missing")))
