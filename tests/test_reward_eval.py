"""The reward meta-evaluation: its statistics equal scipy's, and a run resumes from its journal.

The fixture is made up here (not from the shared data): three systems' scores on four segments.
"""

import json

import pytest
from scipy.stats import kendalltau

from eval.reward_eval import (Journal, Plan, Segment, correlate, grouped_tau, kendall_tau_b, pairwise_accuracy,
                              score_all)
from translator.errors import InputError
from translator.rewards import RewardContext

METRIC = [[0.9, 0.5, 0.1], [0.2, 0.2, 0.7], [0.3, 0.6, 0.6], [0.1, 0.4, 0.8]]
HUMAN = [[-1.0, -5.0, -5.0], [0.0, -1.0, -6.0], [-2.0, -2.0, -2.0], [-10.0, -5.0, 0.0]]


@pytest.mark.parametrize("x,y", [
    ([1, 2, 3, 4], [1, 3, 2, 4]),
    ([0.9, 0.5, 0.1], [-1.0, -5.0, -5.0]),  # ties in one side
    ([0.2, 0.2, 0.7, 0.1], [0.0, -1.0, -6.0, -6.0]),  # ties in both
    ([3, 1, 2, 2, 5, 0], [1, 1, 2, 3, 3, 0]),
])
def test_tau_b_equals_scipy(x, y):
    assert kendall_tau_b(x, y) == pytest.approx(kendalltau(x, y).statistic)


def test_tau_b_is_undefined_for_a_constant_side():
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None


def test_grouped_tau_averages_segments_and_skips_all_tied_human_scores():
    tau, used = grouped_tau(METRIC, HUMAN)
    expected = [kendalltau(m, h).statistic for m, h in zip(METRIC, HUMAN) if len(set(h)) > 1]
    assert used == 3  # segment 3's human scores all tie
    assert tau == pytest.approx(sum(expected) / 3)


def test_grouped_tau_counts_a_constant_metric_as_zero():
    tau, used = grouped_tau([[0.5, 0.5, 0.5], [1, 2, 3]], [[1, 2, 3], [1, 2, 3]])
    assert used == 2 and tau == pytest.approx(0.5)


def test_pairwise_accuracy_by_hand():
    human = {"a": -1.0, "b": -2.0, "c": -3.0, "d": -3.0}
    metric = {"a": 0.9, "b": 0.95, "c": 0.5, "d": 0.1}
    # pairs with distinct human means: ab (wrong), ac, ad, bc, bd (right); cd tied in human: left out.
    assert pairwise_accuracy(metric, human) == (pytest.approx(4 / 5), 5)
    assert pairwise_accuracy({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": -1.0}) == (0.5, 1)


class LengthReward:
    """A fake reward: longer hypotheses score higher (counts its calls)."""

    name = "len"

    def __init__(self):
        self.calls = 0

    def score(self, paths):
        from translator.rewards import RewardValue

        self.calls += 1
        return [RewardValue(float(len(p.translation))) for p in paths]


def _segments():
    return {"toy": [Segment("toy", i, f"源{i}", "ref", {"s1": "a" * (i + 1), "s2": "bb" * (i + 1)},
                            {"s1": -5.0, "s2": -1.0}) for i in range(3)]}


def test_a_killed_run_resumes_from_its_journal(tmp_path, monkeypatch):
    import eval.reward_eval as reward_eval

    fake = LengthReward()
    monkeypatch.setattr(reward_eval, "make_reward", lambda name, context: fake)
    path = tmp_path / "journal.jsonl"
    settings = {"schema": 1, "model": "toy"}
    plan = Plan(_segments(), ["len"], [], 0, progress=False)
    journal = Journal(path, settings)
    journal.add("toy", 0, "len", {"s1": 1.0, "s2": 2.0})
    with path.open("a") as f:
        f.write('{"dataset": "toy", "seg')  # torn by a kill
    resumed = Journal(path, settings)
    score_all(plan, RewardContext(), resumed)
    assert fake.calls == 2  # segment 0 was not scored again
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["seg_id"] for e in lines[1:]] == [0, 1, 2]
    report = correlate(plan, resumed)["toy"]["len"]
    assert report["seg_kendall_tau_b"] == pytest.approx(1.0) and report["sys_pairwise_accuracy"] == 1.0
    with pytest.raises(InputError, match="other settings"):
        Journal(path, {"schema": 1, "model": "other"})
