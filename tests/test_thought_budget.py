"""Budget forcing: a model that never closes its thought (SmolLM2-135M) still answers, in cot and in every
mcts path, and no thought runs past its budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from translator.api import Translator
from translator.errors import InputError
from translator.prompt import FORCE_ANSWER, THOUGHT_OPEN

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def translator(small_backend):
    return Translator(backend=small_backend, lexicon=False)


def test_cot_forces_the_answer_at_the_budget(translator):
    result = translator.translate("你好，世界", "zh", "en", strategy="cot", max_new_tokens=48, thought_budget=16)
    assert result.stats["thought_forced"] is True
    assert [s.kind for s in result.steps][:2] == ["thought", "force"]
    assert result.steps[0].n_tokens == 16
    assert FORCE_ANSWER in result.raw_output
    assert result.translation  # the model answered, though it never closes a thought itself
    assert result.tokens_generated <= 48
    assert result.params["thought_budget"] == 16


def test_cot_without_a_budget_is_the_plain_pass(translator):
    result = translator.translate("你好，世界", "zh", "en", strategy="cot", max_new_tokens=24, thought_budget=0)
    assert result.stats["thought_forced"] is False
    assert FORCE_ANSWER not in result.raw_output
    kinds = [s.kind for s in result.steps]
    assert kinds[0] == "answer" and "force" not in kinds
    # SmolLM2's unbounded thought never answers: the direct fallback does, after the whole pass.
    assert result.translation and result.stats["fallback"] == "direct" and kinds[1:] == ["fallback"]


def test_default_budget_leaves_room_for_the_answer(translator):
    strategy = translator.strategy("cot", max_new_tokens=100)
    assert strategy.config.thought_budget == 50
    assert translator.strategy("cot").config.thought_budget == 256


@pytest.mark.parametrize("budget", [-1, 48, 100])
def test_a_budget_that_leaves_no_room_is_refused(translator, budget):
    with pytest.raises(InputError, match="thought_budget"):
        translator.strategy("cot", max_new_tokens=48, thought_budget=budget)


def _path_nodes(tree, node_id):
    nodes = []
    while node_id is not None:
        nodes.append(tree.node(node_id))
        node_id = nodes[-1].parent
    return nodes[::-1]


@pytest.mark.parametrize("granularity,reflection", [("mini-32", False), ("step", True)])
def test_every_mcts_path_answers_within_its_thought_budget(translator, granularity, reflection):
    result = translator.translate("你好，世界", "zh", "en", strategy="mcts", granularity=granularity, rollouts=4,
                                  children=2, parallel=2, max_new_tokens=96, thought_budget=40,
                                  reflection=reflection, seed=3)
    tree = result.tree
    forced = [n for n in tree.nodes if n.kind == "force"]
    assert forced, "SmolLM2 never closes its thought: every path should have been forced"
    assert result.stats["forced_answers"] == len(forced)
    for node in forced:
        before = _path_nodes(tree, node.parent)
        assert sum(n.n_tokens for n in before) <= 40  # the thought stopped at its budget
        assert len(tree.node(node.parent).children) == 1  # nothing else may follow a thought at its budget
    terminals = [n for n in tree.nodes if n.terminal]
    assert len(terminals) == 4
    for leaf in terminals:
        kinds = [n.kind for n in _path_nodes(tree, leaf.id)]
        assert "force" in kinds
    assert result.translation
    assert result.stats["recomputed_tokens"] == 0


def test_cli_cot_with_a_model_that_never_closes_its_thought_answers():
    proc = subprocess.run([sys.executable, "-m", "translator", "--model", "smollm2-135m", "--strategy", "cot",
                           "--lexicon", "off", "--max-new-tokens", "96", "--json", "你好"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["translation"].strip() and result["stats"]["thought_forced"] is True


class _Silent:
    """The small backend, except that some answers end at once, empty: those forced open at the budget (the
    case a real model, Qwen2.5-Coder on slang, produced), or with ``reasoning`` every continuation of a
    reasoning prompt. Budget forcing alone then leaves no translation."""

    def __init__(self, backend, *, reasoning: bool = False):
        self._backend, self._reasoning, self._silent = backend, reasoning, set()

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def start(self, prompt, *, head=0):
        state = self._backend.start(prompt, head=head)
        if self._reasoning and prompt.endswith(THOUGHT_OPEN):
            self._silent.add(id(state))
        return state

    def extend(self, state, text):
        new = self._backend.extend(state, text)
        if text == FORCE_ANSWER:
            self._silent.add(id(new))
        return new

    def _silenced(self, state) -> bool:
        return any(id(s) in self._silent for s in state.path())

    def generate(self, requests):
        from translator.backends.base import Continuation

        live = [r for r in requests if not self._silenced(r.state)]
        done = iter(self._backend.generate(live) if live else [])
        return [Continuation([], "eos") if self._silenced(r.state) else next(done) for r in requests]


def test_cot_whose_forced_answer_is_empty_falls_back_to_direct(small_backend):
    translator = Translator(backend=_Silent(small_backend), lexicon=False)
    result = translator.translate("你好，世界", "zh", "en", strategy="cot", max_new_tokens=48, thought_budget=16)
    assert result.stats["thought_forced"] is True and result.stats["fallback"] == "direct"
    direct = Translator(backend=small_backend, lexicon=False).translate("你好，世界", "zh", "en", strategy="direct",
                                                                         max_new_tokens=48)
    assert result.answered and result.translation == direct.translation
    assert [s.kind for s in result.steps][:2] == ["thought", "force"] and result.steps[-1].kind == "fallback"
    assert result.thought  # the reasoning is kept for the reader
    assert result.format_ok is False  # the reasoning still did not close an Output
    assert result.tokens_generated == 16 + direct.tokens_generated


def test_the_fallback_decode_goes_on_counting_the_tokens_of_the_batch(small_backend):
    """A progress line hears the fallback's tokens too, counted and timed on from the reasoning's."""
    from translator.api import make_request
    from translator.strategies.base import Hooks

    heard = []
    cot = Translator(backend=_Silent(small_backend), lexicon=False).strategy("cot", max_new_tokens=48, thought_budget=16)
    results = cot.translate([make_request(t, "zh", "en") for t in ("你好，世界", "我今天太累了")],
                            Hooks(on_tokens=heard.append))
    assert [r.stats.get("fallback") for r in results] == ["direct", "direct"]
    counts, times = [p.tokens for p in heard], [p.elapsed_s for p in heard]
    assert counts == sorted(counts) and times == sorted(times)
    assert counts[-1] == sum(r.tokens_generated for r in results) > 2 * 16  # the thoughts, then the fallbacks
    assert {p.segment for p in heard} == {0, 1}


def test_a_cot_answer_that_answered_takes_no_fallback(translator):
    result = translator.translate("你好，世界", "zh", "en", strategy="cot", max_new_tokens=48, thought_budget=16)
    assert result.answered and "fallback" not in result.stats
    assert "fallback" not in [s.kind for s in result.steps]


def test_mcts_whose_every_rollout_is_empty_answers_as_direct(small_backend):
    translator = Translator(backend=_Silent(small_backend, reasoning=True), lexicon=False)
    result = translator.translate("你好，世界", "zh", "en", strategy="mcts", granularity="mini-32", rollouts=3,
                                  children=2, max_new_tokens=64, thought_budget=20, seed=1)
    terminals = [n for n in result.tree.nodes if n.terminal]
    assert terminals and all(n.rewards == [0.0] for n in terminals)  # no rollout answered
    assert result.stats["fallback"] == "direct" and result.reward["chosen"] == "direct"
    direct = Translator(backend=small_backend, lexicon=False).translate("你好，世界", "zh", "en", strategy="direct",
                                                                         max_new_tokens=64)
    assert result.answered and result.translation == direct.translation
    assert [s.kind for s in result.steps] == ["fallback"]
    assert result.tree is not None  # the search is still there to inspect


def test_the_fallback_can_be_switched_off_to_measure_the_reasoning_alone(small_backend):
    translator = Translator(backend=_Silent(small_backend), lexicon=False)
    result = translator.translate("你好，世界", "zh", "en", strategy="cot", max_new_tokens=48, thought_budget=16,
                                  fallback=False)
    assert not result.answered and result.translation == "" and "fallback" not in result.stats
