"""What a translation returns: the text, how it was reached, and the evidence for it.

Everything here is plain data so that the CLI (``--json``), the batch trace, the app and the evaluator
share one serialisation, and a saved result loads back into the same objects.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

TOP_K = 5  # the confidence reward compares each token with the top-5 candidates at its position


@dataclass
class TokenScore:
    """One generated token with the raw (pre-temperature) log-probabilities seen when it was chosen."""

    token_id: int
    text: str
    logprob: float
    top_ids: list[int]
    top_logprobs: list[float]

    @property
    def confidence(self) -> float:
        """c_i = exp(p(t_i)) / sum_k exp(p(t_k)) over the top-5; a chosen token outside the top-5 keeps its
        own probability in the numerator, so it scores low instead of being dropped."""
        denom = sum(math.exp(lp) for lp in self.top_logprobs)
        return math.exp(self.logprob) / denom if denom > 0 else 0.0


def mean_confidence(tokens: list[TokenScore]) -> float | None:
    """v = (1/n) sum_i c_i over generated tokens only (prompt and injected text are never in the list)."""
    if not tokens:
        return None
    return sum(t.confidence for t in tokens) / len(tokens)


@dataclass
class TreeNode:
    """A reasoning state in the search tree; ``text`` is the action (LLM output) that led to it."""

    id: int
    parent: int | None
    kind: str  # "root", "step", "mini-32", "mini-64", "reflection", "force", "refine" or "sense"
    text: str
    depth: int
    n_tokens: int
    visits: int = 0
    total_value: float = 0.0
    rewards: list[float] = field(default_factory=list)  # reward of every rollout that passed through
    confidence: float | None = None  # mean c_i of this node's own tokens
    terminal: bool = False
    truncated: bool = False  # terminal only because the token budget ran out
    on_path: bool = False
    children: list[int] = field(default_factory=list)

    @property
    def mean_value(self) -> float:
        return self.total_value / self.visits if self.visits else 0.0


@dataclass
class SearchTree:
    nodes: list[TreeNode]
    chosen_path: list[int]  # node ids from the root to the chosen terminal node

    def node(self, node_id: int) -> TreeNode:
        """The node of that id; a negative id (an alternative from outside the tree) is an error, not the
        last node."""
        if node_id < 0:
            raise IndexError(f"node id {node_id} is not in the tree")
        return self.nodes[node_id]

    def path(self, node_id: int) -> list[TreeNode]:
        """The nodes from the root's child down to that node (the root holds no text of the path)."""
        out = []
        node = self.node(node_id)
        while node.parent is not None:
            out.append(node)
            node = self.node(node.parent)
        return out[::-1]

    @property
    def unique_tokens(self) -> int:
        return sum(n.n_tokens for n in self.nodes if n.kind != "root")


@dataclass
class PathStep:
    """One step of the chosen reasoning path, as the UI lists it."""

    node_id: int | None
    kind: str
    text: str
    n_tokens: int
    confidence: float | None
    visits: int | None = None
    value: float | None = None


@dataclass
class Alternative:
    """Another finished translation the search found, for a translator to pick instead."""

    translation: str
    reward: float
    visits: int
    node_id: int  # -1: not from the tree (the direct translation)
    score: float | None = None  # the selection rule's score (translator.selection), by which it is ranked


@dataclass
class TranslationResult:
    source: str
    src_lang: str
    tgt_lang: str
    translation: str
    thought: str
    raw_output: str
    strategy: str
    model: str
    params: dict[str, Any]
    tokens_generated: int
    wall_time_s: float
    # Two separate facts: ``answered`` (below) says the answer reached a non-empty translation, the
    # headline; ``format_ok`` says the model closed the Output block it was asked for (direct: always True).
    # An answer that ends at end-of-sequence right after its translation is answered but not closed.
    format_ok: bool
    confidence: float | None  # mean token confidence of the chosen output
    logprobs_source: str = "raw"  # the distribution log-probs came from: raw model logits, before sampling
    tokens: list[TokenScore] = field(default_factory=list)
    steps: list[PathStep] = field(default_factory=list)
    tree: SearchTree | None = None
    alternatives: list[Alternative] = field(default_factory=list)
    reward: dict[str, Any] | None = None  # reward name, value and details for the chosen path
    stats: dict[str, Any] = field(default_factory=dict)  # search accounting (rollouts, forwarded tokens...)
    hints: list[dict[str, Any]] = field(default_factory=list)  # lexicon notes in the prompt: term, senses, source
    cleanup: list[str] = field(default_factory=list)  # dictionary markup removed from the translation
    answered: bool | None = None  # None: derived from the translation (results saved before the field)

    def __post_init__(self) -> None:
        if self.answered is None:
            self.answered = bool(self.translation.strip())

    def to_dict(self, *, with_tokens: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_tokens:
            data["tokens"] = []
        return data

    def to_json(self, *, with_tokens: bool = True, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(with_tokens=with_tokens), ensure_ascii=False, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TranslationResult":
        data = dict(data)
        data["tokens"] = [TokenScore(**t) for t in data.get("tokens", [])]
        data["steps"] = [PathStep(**s) for s in data.get("steps", [])]
        data["alternatives"] = [Alternative(**a) for a in data.get("alternatives", [])]
        tree = data.get("tree")
        if tree is not None:
            data["tree"] = SearchTree(nodes=[TreeNode(**n) for n in tree["nodes"]], chosen_path=list(tree["chosen_path"]))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "TranslationResult":
        return cls.from_dict(json.loads(text))
