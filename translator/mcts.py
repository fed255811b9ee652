"""The tree and the Monte Carlo Tree Search rules, independent of any model.

Selection by UCT, backpropagation of the rollout reward, and the final choice (the most-visited chain,
ties to the higher mean value). Every rollout is kept in the tree as a chain of actions, so no generated
token is thrown away: a later expansion of any node on that chain continues from what is already there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from translator.result import SearchTree, TokenScore, TreeNode, mean_confidence


@dataclass(eq=False)
class Node:
    id: int
    parent: "Node | None"
    kind: str  # "root", a granularity ("step", "mini-32", "mini-64") or "reflection"
    state: Any  # backend state after this node's tokens (None once released)
    token_ids: list[int]
    scores: list[TokenScore]  # log-probs of generated tokens; empty for the root and injected text
    text: str
    depth: int = 0
    path_tokens: int = 0  # tokens generated or injected from the root to here
    terminal: bool = False
    truncated: bool = False
    reflected: bool = False  # a reflection is on the path to this node
    thought_ended: bool = False  # the thought ended on the path (closed, or the Output opened)
    children: list["Node"] = field(default_factory=list)
    visits: int = 0
    total: float = 0.0
    rewards: list[float] = field(default_factory=list)
    pending: int = 0  # children of this node being generated in the current iteration
    virtual: int = 0  # rollouts in flight through this node: virtual visits that spread parallel selection

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
    return not node.terminal and len(node.children) + node.pending < width


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
