"""Decoding strategies by name: the CLI, app, batch tool and benchmark all pick them from here."""

from __future__ import annotations

import dataclasses
from typing import Any

from translator.errors import InputError
from translator.strategies.base import Hooks, Progress, Strategy, TokenProgress
from translator.strategies.greedy import Cot, Direct
from translator.strategies.mcts import Mcts

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Direct, Cot, Mcts)}
# The one default every entry point uses (CLI, batch, app, Python API); chosen from the benchmark's figures:
# with the default model, direct with dictionary notes beats cot everywhere and ties mcts (drafts) on three
# of the five dev sets, at a twelfth of its time (README, "Which search by default"). mcts, which wins on
# idioms and news, and cot stay one option away.
DEFAULT_STRATEGY = "direct"


def make_config(strategy: str, options: dict[str, Any] | None = None) -> Any:
    """Build a strategy's Config from options, refusing ones that do not apply to it."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    config_cls = STRATEGIES[strategy].Config
    fields = {f.name for f in dataclasses.fields(config_cls)}
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise InputError(f"option(s) {', '.join(unknown)} do not apply to strategy {strategy!r} "
                         f"(its options: {', '.join(sorted(fields))})")
    return config_cls(**options)  # each Config validates itself in __post_init__


def chunk_size(strategy: str, batch_size: int) -> int:
    """How many segments decode together. Batched bf16 decoding can pick other tokens than batch 1, so
    resumable runs decode in fixed chunks of this size, and their journals record it."""
    return batch_size if STRATEGIES[strategy].batches_segments else 1


__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "Hooks", "Progress", "Strategy", "TokenProgress", "chunk_size",
           "make_config"]
