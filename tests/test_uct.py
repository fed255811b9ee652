"""The search algorithm on its own (``translator.mcts``): parallel UCT with virtual visits, the budget, the
release of spent nodes, driven by a fake expander that needs no model."""

from __future__ import annotations

import pytest

from translator.errors import InputError
from translator.mcts import Expansion, Node, UctConfig, chosen_path, iter_nodes, parallel_uct, plan_expansions


class FakeExpander:
    """Each planned child is one action node; its rollout is one terminal node below it. A rollout's reward
    is fixed by the root child it passes through, so a search that exploits should favour the best one."""

    def __init__(self, rewards: dict[int, float], fail_on: int | None = None):
        self.rewards, self.fail_on = rewards, fail_on
        self.plans: list[list[tuple[int, int, int]]] = []  # (leaf id, first, count) per iteration
        self.released: list[tuple[int, bool]] = []
        self.ids = 1

    def _node(self, parent: Node, terminal: bool = False) -> Node:
        node = Node(id=self.ids, parent=parent, kind="step", state=f"s{self.ids}", token_ids=[], scores=[], text="",
                    depth=parent.depth + 1, terminal=terminal)
        self.ids += 1
        parent.children.append(node)
        return node

    def expand(self, plan: list[Expansion]) -> list[tuple[Node, float]]:
        self.plans.append([(e.leaf.id, e.first, e.count) for e in plan])
        if self.fail_on is not None and len(self.plans) == self.fail_on:
            raise RuntimeError("the model failed")
        finished = []
        for e in plan:
            for i in range(e.count):
                assert len(e.leaf.children) == e.first + i  # the index the plan promised
                child = self._node(e.leaf)
                leaf = self._node(child, terminal=True)
                top = child.path()[1]
                finished.append((leaf, self.rewards[top.parent.children.index(top)]))
        return finished

    def release(self, node: Node, *, keep_kv: bool) -> None:
        self.released.append((node.id, keep_kv))
        if not keep_kv:
            node.state = None


def _root() -> Node:
    return Node(id=0, parent=None, kind="root", state="s0", token_ids=[], scores=[], text="")


def test_the_budget_is_the_number_of_rollouts_and_every_reward_is_backpropagated():
    root = _root()
    expander = FakeExpander({0: 0.9, 1: 0.1, 2: 0.5})
    run = parallel_uct(root, expander, UctConfig(rollouts=7, width=3, exploration=1.0, parallel=2))
    assert run.rollouts == 7 == root.visits
    assert run.iterations == len(expander.plans)
    terminals = [n for n in iter_nodes(root) if n.terminal]
    assert len(terminals) == 7
    assert root.total == pytest.approx(sum(t.total for t in terminals))
    assert all(n.pending == 0 and n.virtual == 0 for n in iter_nodes(root))  # nothing left in flight


def test_parallel_picks_are_spread_apart_by_virtual_visits():
    root = _root()
    expander = FakeExpander({0: 0.5, 1: 0.5})
    parallel_uct(root, expander, UctConfig(rollouts=6, width=2, exploration=1.0, parallel=2))
    assert expander.plans[0] == [(0, 0, 2)]  # the root takes both its children at once
    second = expander.plans[1]
    assert len(second) == 2 and len({leaf for leaf, _, _ in second}) == 2  # two different leaves, not one twice


def test_virtual_visits_are_taken_back_when_the_expander_fails():
    root = _root()
    expander = FakeExpander({0: 0.5, 1: 0.5}, fail_on=2)
    with pytest.raises(RuntimeError):
        parallel_uct(root, expander, UctConfig(rollouts=6, width=2, parallel=2))
    assert all(n.pending == 0 and n.virtual == 0 for n in iter_nodes(root))


def test_exploitation_follows_the_better_branch():
    root = _root()
    parallel_uct(root, FakeExpander({0: 0.9, 1: 0.1}), UctConfig(rollouts=12, width=2, exploration=0.3))
    good, bad = root.children
    assert good.visits > bad.visits
    assert chosen_path(root)[1] is good


def test_a_search_stops_when_asked_but_only_once_it_has_an_answer():
    root = _root()
    asked = []

    def should_stop() -> bool:
        asked.append(root.visits)
        return True

    run = parallel_uct(root, FakeExpander({0: 0.5, 1: 0.5}), UctConfig(rollouts=8, width=2),
                       should_stop=should_stop)
    assert run.iterations == 1 and run.rollouts == 2  # the first iteration: both children of the root
    assert asked == [2]  # not consulted before the first rollout


def test_an_exhausted_tree_ends_the_search_early():
    """A root that takes one child, and a rollout that ends at once: after one rollout nothing can grow, so
    the search ends short of its budget instead of spinning."""

    class OneStep(FakeExpander):
        def expand(self, plan):
            self.plans.append([(e.leaf.id, e.first, e.count) for e in plan])
            return [(self._node(e.leaf, terminal=True), 0.5) for e in plan for _ in range(e.count)]

    root = _root()
    root.max_children = 1
    expander = OneStep({})
    run = parallel_uct(root, expander, UctConfig(rollouts=5, width=3))
    assert run.rollouts == 1 and expander.plans == [[(0, 0, 1)]]


def test_spent_nodes_are_released_and_growing_ones_kept():
    root = _root()
    expander = FakeExpander({0: 0.5, 1: 0.5})
    parallel_uct(root, expander, UctConfig(rollouts=2, width=2))
    # root -> a -> a', root -> b -> b': root is full (keeps its KV for a and b), a and b can still grow,
    # the terminals are spent.
    released = dict(expander.released)
    terminals = [n.id for n in iter_nodes(root) if n.terminal]
    assert all(released[t] is False for t in terminals)
    assert released[0] is True
    assert all(c.id not in released for c in root.children)


def test_plan_respects_the_budget_left():
    root = _root()
    plan = plan_expansions(root, UctConfig(rollouts=10, width=3, parallel=4), left=2)
    assert [(e.leaf.id, e.first, e.count) for e in plan] == [(0, 0, 2)]


@pytest.mark.parametrize("field,value", [("rollouts", 0), ("width", 0), ("parallel", 0), ("exploration", -1)])
def test_invalid_settings_are_refused(field, value):
    settings = {"rollouts": 4, "width": 2, "exploration": 1.0, "parallel": 1, field: value}
    with pytest.raises(InputError, match=field):
        UctConfig(**settings)
