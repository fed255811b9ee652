"""MCTS on the small model: the search is the paper's, accounted for, and reproducible."""

import json
import math
import re

import pytest

from translator.api import Translator, make_request
from translator.backends.transformers_backend import TransformersBackend
from translator.result import TranslationResult
from translator.strategies import Hooks
from translator.errors import InputError
from translator.prompt import FORCE_ANSWER, Hint
from translator.strategies.mcts import REFINE, REFLECTION, SENSE, Mcts, MctsConfig, _Search, parse_path

TEXT = "我今天太累了，只想躺平。"
SMALL = dict(rollouts=6, children=3, max_new_tokens=72, seed=5, select="visits")  # the paper's algorithm


@pytest.fixture()
def translator(small_backend):
    return Translator(backend=small_backend)


def _search(translator, **options):
    return translator.translate(TEXT, "zh", "en", strategy="mcts", **{**SMALL, **options})


@pytest.fixture()
def mini32(translator):
    return _search(translator, granularity="mini-32", reward="confidence")


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


def _cut_by_thought_budget(tree, node, budget: int) -> bool:
    """The thought budget cut this node, wherever its action was: the path reaches the budget exactly here
    (then the answer is forced, or goes on from a thought that had just closed)."""
    total, current = 0, node
    while current is not None:
        total += current.n_tokens
        current = tree.node(current.parent) if current.parent is not None else None
    return [tree.node(c).kind for c in node.children] == ["force"] or total == budget


def test_mini_step_nodes_hold_exact_token_counts(mini32):
    tree = mini32.tree
    actions = [n for n in tree.nodes[1:] if n.kind != "force"]
    assert any(not n.terminal and n.n_tokens == 32 for n in actions)
    for node in actions:
        assert node.kind == "mini-32"
        if node.terminal or _cut_by_thought_budget(tree, node, mini32.params["thought_budget"]):
            assert 0 <= node.n_tokens <= 32
        else:
            assert node.n_tokens == 32


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
    cut = [node for node in result.tree.nodes[1:] if not node.terminal and node.n_tokens < 192
           and node.kind != "force"
           and not _cut_by_thought_budget(result.tree, node, result.params["thought_budget"])]
    assert cut, "no step ended before its path did, so nothing here was checked"
    for node in cut:
        assert node.text.endswith("\n") or node.text.rstrip().lower().endswith(("</thought>", "</output>")), node.text


def _tagged_prompt(backend) -> str:
    """A prompt under which the 135M model writes the Thought/Output tags (it does not follow the format by
    itself), for the tests of what the search does where a thought or an Output ends."""
    return backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Repeat this text exactly:\nIt means hello.</Thought>\n<Output>Hello</Output>"}],
        tokenize=False, add_generation_prompt=True)


def test_reflection_on_and_off(small_backend):
    """The paper's sentence is injected where a thought ends, only when reflection is on.

    The 135M model does not follow the Thought/Output format by itself, so this search starts from a
    prompt that makes it write the tags (the search machinery is the real one)."""
    prompt, request = _tagged_prompt(small_backend), make_request("你好", "zh", "en")

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


def test_refine_reopens_each_finished_draft_once(small_backend):
    """With ``refine``, a path whose Output closed with a translation gets the revision text injected and
    goes on to a new answer; the draft takes no other child, and no path is refined twice. Same prompt trick
    as above, so the 135M model closes its Output."""
    prompt, request = _tagged_prompt(small_backend), make_request("你好", "zh", "en")

    def search(refine: bool):
        config = MctsConfig(granularity="step", rollouts=3, children=2, max_new_tokens=160, thought_budget=40,
                            refine=refine, seed=1)
        return _Search(Mcts(small_backend, config), request, Hooks(), prompt).run()

    off, on = search(False), search(True)
    assert off.stats["refines"] == 0 and not any(n.kind == "refine" for n in off.tree.nodes)
    refines = [n for n in on.tree.nodes if n.kind == "refine"]
    assert refines and on.stats["refines"] == len(refines)
    for node in refines:
        assert node.text == REFINE and node.confidence is None  # injected, not sampled
        draft = on.tree.node(node.parent)
        assert re.search(r"</output>", draft.text, re.IGNORECASE) and not draft.terminal
        assert draft.children == [node.id]  # only the revision follows a draft
        below, stack = [], list(node.children)
        while stack:
            below.append(on.tree.node(stack.pop()))
            stack.extend(below[-1].children)
        assert below and not any(n.kind == "refine" for n in below)  # once per path
        assert any(n.terminal for n in below)  # the revision reaches an end
    assert on.tree.node(0).visits == 3
    assert on.translation  # a revision left empty would leave the draft standing
    # The saved tree alone gives back every candidate the search weighed, revisions included.
    hints, revised = [Hint.from_dict(h) for h in on.hints], 0
    searched = [a for a in on.alternatives if a.node_id >= 0]  # -1: the direct translation, not in the tree
    for alternative in searched:
        chain = on.tree.path(alternative.node_id)
        assert chain[0].parent == 0 and chain[-1].id == alternative.node_id and chain[-1].terminal
        saved = parse_path(chain, lambda part: "".join(n.text for n in part), hints, chinese_target=False)
        assert saved[1].translation == alternative.translation
        revised += any(n.kind == "refine" for n in chain)
    assert searched and revised
    with pytest.raises(IndexError):
        on.tree.node(-1)


def test_senses_branch_the_root_on_the_meaning_of_a_noted_term(small_backend):
    """With ``senses``, each child of the root starts its thought with another sense of the first noted term
    with several (in turn); the search below it is the usual one. Without a term of several senses, or with
    the option off, the root's children are sampled."""
    from dataclasses import replace as with_

    hints = (Hint("你好", ("hello",), "test"), Hint("安利", ("to recommend", "Amway"), "test"))
    request = with_(make_request("给你安利一部剧。", "zh", "en"), hints=hints)

    def search(senses: bool, req=request):
        config = MctsConfig(granularity="mini-32", rollouts=3, children=3, max_new_tokens=40, senses=senses, seed=1)
        return Mcts(small_backend, config).translate([req])[0]

    on = search(True)
    root = on.tree.node(0)
    firsts = [on.tree.node(c) for c in root.children]
    assert [n.kind for n in firsts] == ["sense"] * 3 and on.stats["senses"] == 3
    in_turn = ("to recommend", "Amway", "to recommend")
    assert [n.text for n in firsts] == [SENSE.format(term="安利", sense=s) for s in in_turn]
    assert all(n.confidence is None and n.children for n in firsts)  # injected; the rollout goes on below
    assert not any(n.kind == "sense" for n in on.tree.nodes if n.parent not in (None, 0))  # only at the root
    for off in (search(False), search(True, with_(request, hints=hints[:1]))):
        assert off.stats["senses"] == 0 and not any(n.kind == "sense" for n in off.tree.nodes)


def test_without_a_thought_every_path_answers_at_once(small_backend):
    """``thought=False``: the root's only child closes the empty thought and opens the Output (injected, no
    log-probs), every sampled node is below it, so all rollouts are drafts of the translation itself (the
    135M model never closes a thought by itself, so with a thought it would need budget forcing on every
    path); no thought is counted as forced. A thought-only action with it is refused."""
    config = MctsConfig(granularity="mini-32", rollouts=4, children=4, max_new_tokens=24, thought=False, seed=3)
    result = Mcts(small_backend, config).translate([make_request("你好", "zh", "en")])[0]
    root = result.tree.node(0)
    assert len(root.children) == 1
    opening = result.tree.node(root.children[0])
    assert opening.kind == "force" and opening.text == FORCE_ANSWER and opening.confidence is None
    assert len(opening.children) == 4 and result.stats["rollouts"] == 4
    assert not any(n.kind == "force" for n in result.tree.nodes if n.id != opening.id)
    assert result.stats["forced_answers"] == 0 and result.thought == ""
    assert result.answered and result.raw_output.startswith(FORCE_ANSWER)
    for option in ("refine", "senses", "reflection"):
        with pytest.raises(InputError, match="thought=false"):
            MctsConfig(thought=False, **{option: True})


def test_the_search_drafts_unless_a_thought_is_asked_for():
    """By default the search has no thought (the drafts measured better, README "Which search by default");
    the options that act in a thought turn it on, and ``thought=True`` asks for it alone."""
    assert MctsConfig().thought is False and (MctsConfig().rollouts, MctsConfig().children) == (8, 8)
    for option in ("refine", "senses", "reflection"):
        assert MctsConfig(**{option: True}).thought is True
    assert MctsConfig(thought_budget=40).thought is True and MctsConfig(thought_budget=0).thought is True
    assert MctsConfig(thought=True).thought is True


def test_each_selection_rule_is_recorded_as_it_would_have_chosen(small_backend):
    """``stats.selections`` holds what every ``--select`` rule returns from the same tree: a search run
    with that rule (same seed, so the same tree) returns exactly it."""
    from translator.selection import SELECT_RULES

    options = dict(granularity="mini-32", rollouts=4, children=2, max_new_tokens=40, seed=3)
    request = make_request(TEXT, "zh", "en")
    # The direct candidate joins the reward and mbr rules (visits refuses it: the tree never visits it).
    runs = {rule: Mcts(small_backend, MctsConfig(select=rule, select_with_direct=rule != "visits", **options))
            .translate([request])[0] for rule in SELECT_RULES}
    recorded = runs["mbr"].stats["selections"]
    assert set(recorded) == set(SELECT_RULES)
    assert runs["reward"].stats["selections"] == recorded  # one tree, whichever rule picks from it
    for rule, result in runs.items():
        assert result.translation == recorded[rule]


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


def test_channel_reward_selects_the_draft_that_best_explains_the_source(small_backend, small_model):
    from translator.rewards import RewardContext, RolloutPath, make_reward

    result = Translator(backend=small_backend).translate(
        TEXT, "zh", "en", strategy="mcts", rollouts=3, children=3, max_new_tokens=40, seed=2, thought=False,
        reward="channel", select="reward", select_with_direct=False, fallback=False)
    assert result.reward["name"] == "channel" and result.translation
    # Every terminal's value, recomputed on a fresh backend: the chosen one is the best of them.
    fresh = make_reward("channel", RewardContext(TransformersBackend(small_model)))
    request = make_request(TEXT, "zh", "en")  # the channel reads the source alone, not the notes
    options = [result.translation] + [a.translation for a in result.alternatives]
    assert len(options) >= 2  # a choice was made
    values = [v.value for v in fresh.score([RolloutPath(request, [], t, t) for t in options])]
    assert values[0] == pytest.approx(result.reward["value"], rel=1e-4)
    assert values[0] == pytest.approx(max(values), rel=1e-6)
