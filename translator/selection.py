"""Which of a search's finished translations to return, and in what order to offer the rest.

- ``visits``: the paper's rule, the chain of most-visited children (ties: higher mean value) from the root;
  candidates are ranked the same way, comparing their paths level by level.
- ``reward``: the terminal with the best reward (a terminal is visited once, so its mean is its reward).
- ``mbr``: consensus: the candidate with the highest mean utility (chrF by default, ``translator.utility``)
  against every other terminal's translation (identical translations support each other), as in minimum
  Bayes risk decoding.

A candidate may come from outside the tree (the ``direct`` translation), with ``node`` None; the visits
rule ranks such a candidate last, as the tree never visited it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from translator.utility import Utility, consensus, utility

SELECT_RULES = ("visits", "reward", "mbr")


@dataclass
class Candidate:
    translation: str
    reward: float
    node: Any = None  # a translator.mcts.Node, or None (not from the tree)
    score: float = 0.0  # the selection rule's score, set by ``rank``


def _visit_key(candidate: Candidate) -> tuple:
    if candidate.node is None:
        return (0, ())
    return (1, tuple((n.visits, n.mean) for n in candidate.node.path()[1:]))


def rank(candidates: list[Candidate], rule: str, similarity: Utility | None = None) -> list[Candidate]:
    """Non-empty candidates best first, each translation once (its best-ranked instance), ``score`` set.
    ``similarity`` is the ``mbr`` rule's utility (None: chrF)."""
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown selection rule {rule!r}")
    pool = [c for c in candidates if c.translation.strip()]
    if rule == "visits":
        for c in pool:
            c.score = float(c.node.visits) if c.node is not None else 0.0
        ordered = sorted(pool, key=_visit_key, reverse=True)
    elif rule == "reward":
        for c in pool:
            c.score = c.reward
        ordered = sorted(pool, key=lambda c: c.reward, reverse=True)
    else:
        similarity = similarity or utility("chrf", "")
        for i, c in enumerate(pool):
            c.score = consensus(c.translation, [o.translation for j, o in enumerate(pool) if j != i], similarity)
        ordered = sorted(pool, key=lambda c: (c.score, c.reward), reverse=True)
    seen: set[str] = set()
    out = []
    for c in ordered:
        if c.translation not in seen:
            seen.add(c.translation)
            out.append(c)
    return out
