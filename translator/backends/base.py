"""The one thing the search needs from a model: continue a prefix, sampled or greedy, with log-probs.

A ``State`` is an opaque handle on a token prefix. The in-process backend keeps the prefix's KV cache in
it (so a child continues from its parent without re-encoding anything); an HTTP backend keeps only the
tokens and lets the server's prefix cache do the same job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from translator.actions import Chunking
from translator.result import TokenScore


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0 means greedy (argmax)
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenRequest:
    state: Any  # a State from the same backend
    max_new_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0  # per-request seed: results do not depend on what else shares the batch
    chunking: Chunking = field(default_factory=Chunking)
    stop_at_thought_end: bool = False  # pause when the thought closes (so reflection can be injected)


@dataclass
class Chunk:
    """One action: a run of generated tokens, and the state after them."""

    tokens: list[TokenScore]
    text: str
    state: Any


@dataclass
class Continuation:
    chunks: list[Chunk]
    finish: str  # "eos", "output_closed", "thought_ended" or "length"

    @property
    def tokens(self) -> list[TokenScore]:
        return [t for c in self.chunks for t in c.tokens]

    @property
    def terminal(self) -> bool:
        return self.finish in ("eos", "output_closed", "length")


@dataclass
class BackendStats:
    """Accounting of model work, to check the search wastes nothing."""

    forwarded_tokens: int = 0  # token positions run through the model
    recomputed_tokens: int = 0  # of those, positions whose KV had been computed before
    generated_tokens: int = 0
    forward_calls: int = 0
    peak_cache_bytes: int = 0

    def reset(self) -> None:
        self.__init__()


class Backend(ABC):
    name: str
    logprobs_source: str  # where log-probs come from ("raw" = the model's own distribution)

    @property
    @abstractmethod
    def tokenizer(self) -> Any: ...

    @property
    @abstractmethod
    def stats(self) -> BackendStats: ...

    @abstractmethod
    def start(self, prompt: str) -> Any:
        """A state for a prompt; nothing is computed until it is continued."""

    @abstractmethod
    def extend(self, state: Any, text: str) -> Any:
        """A state with forced text appended (not sampled: it carries no log-probs)."""

    @abstractmethod
    def truncate(self, state: Any, keep_tokens: int) -> Any:
        """The state's own last action cut to its first ``keep_tokens`` tokens."""

    @abstractmethod
    def generate(self, requests: list[GenRequest]) -> list[Continuation]:
        """Continue every request, batched as the backend sees fit; results in request order."""

    def release(self, state: Any, *, keep_kv: bool = False) -> None:
        """Drop what the state holds that the search will not need again: its next-token distribution once
        the node is fully expanded (``keep_kv``: descendants still continue from its prefix), everything
        once no node below it can grow."""

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=False)
