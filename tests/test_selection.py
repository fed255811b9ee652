"""The final choice among a search's candidates: each rule picks what it claims on a hand-built tree."""

import pytest
from sacrebleu.metrics import BLEU, CHRF

from translator.errors import InputError
from translator.mcts import Node, backpropagate, chosen_path
from translator.selection import Candidate, rank
from translator.strategies.mcts import MctsConfig
from translator.utility import utility


def _node(nid, parent, terminal=False):
    node = Node(id=nid, parent=parent, kind="step", state=None, token_ids=[], scores=[], text="", terminal=terminal)
    if parent is not None:
        parent.children.append(node)
    return node


def _tree():
    """root -> a (3 rollouts: a1 0.2, a2 0.3, a3 0.1) and b (1 rollout: b1 0.9, the best single reward)."""
    root = _node(0, None)
    a, b = _node(1, root), _node(2, root)
    leaves = {"a1": _node(3, a, True), "a2": _node(4, a, True), "a3": _node(5, a, True), "b1": _node(6, b, True)}
    for name, value in (("a1", 0.2), ("a2", 0.3), ("a3", 0.1), ("b1", 0.9)):
        backpropagate(leaves[name], value)
    translations = {"a1": "He is slacking off at work.", "a2": "He slacks off at work.",
                    "a3": "He is slacking off at work today.", "b1": "He touched the fish."}
    rewards = {"a1": 0.2, "a2": 0.3, "a3": 0.1, "b1": 0.9}
    return root, leaves, [Candidate(translations[k], rewards[k], leaves[k]) for k in ("a1", "a2", "a3", "b1")]


def test_visits_follows_the_most_visited_chain():
    root, leaves, candidates = _tree()
    ranked = rank(candidates, "visits")
    # a has 3 visits against b's 1; under a, all leaves have 1 visit, so the higher mean (a2) wins.
    assert ranked[0].node is leaves["a2"] is chosen_path(root)[-1]
    assert ranked[-1].node is leaves["b1"]


def test_reward_takes_the_best_terminal():
    _, leaves, candidates = _tree()
    ranked = rank(candidates, "reward")
    assert [c.node for c in ranked] == [leaves["b1"], leaves["a2"], leaves["a1"], leaves["a3"]]
    assert [c.score for c in ranked] == [0.9, 0.3, 0.2, 0.1]


def test_mbr_takes_the_candidate_the_others_agree_with():
    _, leaves, candidates = _tree()
    ranked = rank(candidates, "mbr")
    chrf = CHRF()
    texts = [c.translation for c in candidates]
    expected = {t: sum(chrf.sentence_score(t, [o]).score for o in texts if o != t) / 3 / 100 for t in texts}
    assert ranked[0].translation == max(expected, key=expected.get)
    assert ranked[-1].node is leaves["b1"]  # the outlier, although its reward is the best
    for c in ranked:
        assert c.score == pytest.approx(expected[c.translation])


def test_mbr_utility_chrf_favours_the_longest_candidate_and_bleu_does_not():
    """chrF weighs recall twice (beta 2), so the long candidate that contains what the others say wins its
    consensus; BLEU's precision and brevity penalty make it the short ones' outlier. Scores as sacrebleu's
    sentence BLEU (effective order) computes them, in [0, 1]."""
    texts = ["He slacks off at work.", "He is goofing off at work.",
             "He is slacking off at work again today, as he always does.", "He is slacking."]
    candidates = [Candidate(t, 0.0) for t in texts]
    assert rank(candidates, "mbr", utility("chrf", "en"))[0].translation == texts[2]
    by_bleu = rank(candidates, "mbr", utility("bleu", "en"))
    bleu = BLEU(effective_order=True)
    expected = {t: sum(bleu.sentence_score(t, [o]).score for o in texts if o != t) / 3 / 100 for t in texts}
    assert by_bleu[0].translation == max(expected, key=expected.get) != texts[2]
    for c in by_bleu:
        assert c.score == pytest.approx(expected[c.translation])


def test_bleu_utility_tokenizes_chinese_targets_by_character():
    """Chinese has no spaces: with the default tokenizer two close sentences would share no token."""
    a, b = "他在上班摸鱼。", "他上班摸鱼。"
    assert utility("bleu", "en")(a, b) == 0.0
    assert utility("bleu", "zh")(a, b) == pytest.approx(BLEU(tokenize="zh", effective_order=True).sentence_score(a, [b]).score / 100)
    assert 0 < utility("bleu", "zh")(a, b) < 1 == utility("bleu", "zh")(a, a)


def test_duplicates_are_offered_once_and_empty_answers_never():
    _, leaves, _ = _tree()
    candidates = [Candidate("Same.", 0.5, leaves["a1"]), Candidate("Same.", 0.7, leaves["a2"]),
                  Candidate("", 0.99, leaves["a3"]), Candidate("Other.", 0.6, None)]
    ranked = rank(candidates, "reward")
    assert [(c.translation, c.reward) for c in ranked] == [("Same.", 0.7), ("Other.", 0.6)]
    # The visits rule ranks a candidate from outside the tree (the direct translation) last.
    assert rank(candidates, "visits")[-1].node is None


def test_select_options_are_checked():
    MctsConfig(select="mbr", select_with_direct=True)
    with pytest.raises(InputError, match="select must be one of"):
        MctsConfig(select="best")
    with pytest.raises(InputError, match="select_with_direct needs"):
        MctsConfig(select="visits", select_with_direct=True)
    with pytest.raises(InputError, match="mbr_utility must be one of bleu, chrf") as bad:
        MctsConfig(mbr_utility="comet")
    assert str(bad.value).count("mbr_utility") == 1  # said once, not again by the consensus reward's check
    assert MctsConfig(mbr_utility="bleu").reward_options()["mbr_utility"] == "bleu"


def test_the_default_choice_is_mbr_with_the_direct_candidate_and_visits_goes_without():
    """The default rule (measured: README grid) competes with the direct translation unless told not to;
    the paper's rule, which never visits that candidate, goes without it unless told otherwise (an error)."""
    default = MctsConfig()
    assert (default.select, default.select_with_direct, default.mbr_utility) == ("mbr", True, "bleu")
    assert default.reward_options()["mbr_utility"] == "bleu"  # the search's consensus reward uses it too
    assert MctsConfig(select="reward").select_with_direct is True
    assert MctsConfig(select="visits").select_with_direct is False
    assert MctsConfig(select_with_direct=False).select_with_direct is False


def test_search_returns_what_its_rule_picks(small_backend):
    """On the small model: ``reward`` returns the best-rewarded terminal, the alternatives follow in rank
    order with their scores, and the direct translation competes when asked for."""
    from translator.api import Translator

    tr = Translator(backend=small_backend)
    options = dict(strategy="mcts", rollouts=4, children=2, max_new_tokens=40, seed=3)
    result = tr.translate("我今天太累了，只想躺平。", "zh", "en", select="reward", select_with_direct=False, **options)
    by_node = {n.id: n for n in result.tree.nodes}
    terminals = [n for n in result.tree.nodes if n.terminal]
    assert terminals and result.reward["select"] == "reward"
    best = max(n.rewards[0] for n in terminals)
    assert result.reward["value"] == pytest.approx(best)
    assert by_node[result.tree.chosen_path[-1]].rewards[0] == pytest.approx(best)
    scores = [a.score for a in result.alternatives]
    assert scores == sorted(scores, reverse=True) and all(s <= best for s in scores)
    with_direct = tr.translate("我今天太累了，只想躺平。", "zh", "en", select="mbr", select_with_direct=True, **options)
    direct = tr.translate("我今天太累了，只想躺平。", "zh", "en", strategy="direct", max_new_tokens=40).translation
    offered = [with_direct.translation] + [a.translation for a in with_direct.alternatives]
    assert direct in offered  # one candidate more, ranked by the same rule
