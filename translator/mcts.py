"""The tree and the Monte Carlo Tree Search algorithm, independent of any model.

As llm-reasoners splits a search into three roles, this module is the algorithm: selection by UCT,
parallel expansion with virtual visits, backpropagation of the rollout reward, the budget, the release of
what no expansion can use again, and the final choice (the most-visited chain, ties to the higher mean
value). What an action is and how a rollout is scored (the world model and the search config) come from an
``Expander``: ``translator.strategies.mcts`` is the one that drives a language model.

Every rollout is kept in the tree as a chain of actions, so no generated token is thrown away: a later
expansion of any node on that chain continues from what is already there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from translator.errors import at_least, check_options

from translator.result import SearchTree, TokenScore, TreeNode, mean_confidence


@dataclass(eq=False)
class Node:
    id: int
    parent: "Node | None"
    # "root", a granularity ("step", "mini-32", "mini-64"), "reflection", "force" (budget forcing) or
    # "refine" (a finished draft reopened for revision) or "sense" (a thought begun with one sense of a term)
    kind: str
    state: Any  # backend state after this node's tokens (None once released)
    token_ids: list[int]
    scores: list[TokenScore]  # log-probs of generated tokens; empty for the root and injected text
    text: str
    depth: int = 0
    path_tokens: int = 0  # tokens generated or injected from the root to here
    terminal: bool = False
    truncated: bool = False
    reflected: bool = False  # a reflection is on the path to this node
    thought_ended: bool = False  # the current thought ended on the path (closed, or the Output opened)
    thought_from: int = 0  # path_tokens where the current thought began (a refine opens a new one)
    refined: bool = False  # a refine is on the path to this node
    in_answer: bool = False  # the path's Output is open after this node (the target-script guard applies)
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    total: float = 0.0
    rewards: list[float] = field(default_factory=list)
    pending: int = 0  # children of this node being generated in the current iteration
    virtual: int = 0  # rollouts in flight through this node: virtual visits that spread parallel selection
    max_children: int | None = None  # fewer children than the search's width (a thought forced to answer: 1)

    @property
    def mean(self) -> float:
        return self.total / self.visits if self.visits else 0.0

    def path(self) -> list["Node"]:
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]


def can_expand(node: Node, width: int) -> bool:
    limit = width if node.max_children is None else min(width, node.max_children)
    return not node.terminal and len(node.children) + node.pending < limit


def exhausted(node: Node, width: int) -> bool:
    """Nothing at or below this node can grow any more."""
    return not can_expand(node, width) and all(exhausted(c, width) for c in node.children)


def uct(child: Node, parent_visits: int, exploration: float) -> float:
    visits = child.visits + child.virtual
    if visits == 0:
        return math.inf
    return child.mean + exploration * math.sqrt(math.log(max(parent_visits, 1)) / visits)


def select(root: Node, width: int, exploration: float) -> Node | None:
    """Walk down by UCT to the first node that can take another child; None if the tree is exhausted."""
    node = root
    while True:
        if can_expand(node, width):
            return node
        candidates = [c for c in node.children if not exhausted(c, width)]
        if not candidates:
            return None
        parent_visits = node.visits + node.virtual
        node = max(candidates, key=lambda c: uct(c, parent_visits, exploration))


def backpropagate(leaf: Node, value: float) -> None:
    for node in leaf.path():
        node.visits += 1
        node.total += value
        node.rewards.append(value)


def chosen_path(root: Node) -> list[Node]:
    """Most-visited child at each level (ties: higher mean value) down to a terminal node."""
    path = [root]
    while path[-1].children:
        path.append(max(path[-1].children, key=lambda c: (c.visits, c.mean)))
    return path


@dataclass
class Expansion:
    """New children of one leaf in one iteration: ``count`` of them, the first at index ``first``."""

    leaf: Node
    first: int
    count: int


class Expander(Protocol):
    """What the algorithm needs from the model side of the search."""

    def expand(self, plan: list[Expansion]) -> list[tuple[Node, float]]:
        """Create the planned children and roll each out to a terminal node (all of them in one batch, if
        the model can); return every new terminal node with its reward."""

    def release(self, node: Node, *, keep_kv: bool) -> None:
        """Free what ``node`` holds: its next-token distribution only (``keep_kv``: nodes below it still
        continue from its prefix), or everything."""


@dataclass
class UctConfig:
    rollouts: int  # budget: rollouts to terminal answers (= root visits)
    width: int  # K: children per node
    exploration: float = math.sqrt(2)  # UCT constant
    parallel: int = 1  # leaves expanded per iteration

    def __post_init__(self) -> None:
        check_options("uct", [at_least("rollouts", self.rollouts, 1), at_least("width", self.width, 1),
                              at_least("exploration", self.exploration, 0), at_least("parallel", self.parallel, 1)])


@dataclass
class UctRun:
    """What one search did."""

    rollouts: int = 0
    iterations: int = 0


def plan_expansions(root: Node, config: UctConfig, left: int) -> list[Expansion]:
    """Pick up to ``config.parallel`` leaves for one iteration, at most ``left`` new children in all.

    Each pick counts its children as in flight (``pending`` on the leaf, ``virtual`` visits on its path), so
    the next pick's UCT sees them and goes elsewhere; ``finish_expansions`` takes them back."""
    plan: list[Expansion] = []
    for _ in range(config.parallel):
        if left <= 0:
            break
        leaf = select(root, config.width, config.exploration)
        if leaf is None:
            break
        limit = config.width if leaf.max_children is None else min(config.width, leaf.max_children)
        n = min(limit - len(leaf.children) - leaf.pending, left)
        plan.append(Expansion(leaf, len(leaf.children) + leaf.pending, n))
        leaf.pending += n
        for node in leaf.path():
            node.virtual += n
        left -= n
    return plan


def finish_expansions(plan: list[Expansion]) -> None:
    """The planned children are no longer in flight: their real visits (if any) replace the virtual ones."""
    for step in plan:
        step.leaf.pending -= step.count
        for node in step.leaf.path():
            node.virtual -= step.count


def release_spent(root: Node, expander: Expander, width: int) -> None:
    """Free what no future expansion can use: everything under exhausted subtrees (terminals included), the
    next-token distribution of nodes that take no more children."""
    for node in iter_nodes(root):
        if node.state is None:
            continue
        if exhausted(node, width):
            expander.release(node, keep_kv=False)
        elif not can_expand(node, width):
            expander.release(node, keep_kv=True)


def parallel_uct(root: Node, expander: Expander, config: UctConfig, *,
                 out_of_budget: Callable[[], bool] = lambda: False,
                 should_stop: Callable[[], bool] | None = None,
                 on_iteration: Callable[[UctRun], None] | None = None) -> UctRun:
    """Run the search from ``root`` until ``config.rollouts`` rollouts, the tree is exhausted,
    ``out_of_budget()`` or ``should_stop()`` (checked once a rollout exists, so a stopped search still
    has an answer). Every iteration plans, expands, backpropagates each reward along its path and releases
    what is spent; ``on_iteration`` sees the running figures after each."""
    run = UctRun()
    while run.rollouts < config.rollouts and not out_of_budget():
        if should_stop is not None and run.rollouts and should_stop():
            break
        plan = plan_expansions(root, config, config.rollouts - run.rollouts)
        if not plan:
            break
        try:
            finished = expander.expand(plan)
        finally:
            finish_expansions(plan)
        for leaf, value in finished:
            backpropagate(leaf, value)
            run.rollouts += 1
        release_spent(root, expander, config.width)
        run.iterations += 1
        if on_iteration is not None:
            on_iteration(run)
    return run


def iter_nodes(root: Node):
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def to_search_tree(root: Node, path: list[Node]) -> SearchTree:
    nodes = sorted(iter_nodes(root), key=lambda n: n.id)
    on_path = {n.id for n in path}
    out = [
        TreeNode(id=n.id, parent=n.parent.id if n.parent else None, kind=n.kind, text=n.text, depth=n.depth,
                 n_tokens=len(n.token_ids) if n.kind != "root" else 0, visits=n.visits, total_value=n.total,
                 rewards=list(n.rewards), confidence=mean_confidence(n.scores), terminal=n.terminal,
                 truncated=n.truncated, on_path=n.id in on_path, children=[c.id for c in n.children])
        for n in nodes
    ]
    return SearchTree(nodes=out, chosen_path=[n.id for n in path])
