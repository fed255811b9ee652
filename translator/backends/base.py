"""The one thing the search needs from a model: continue a prefix, sampled or greedy, with log-probs.

A ``State`` is an opaque handle on a token prefix. The in-process backend keeps the prefix's KV cache in
it (so a child continues from its parent without re-encoding anything); an HTTP backend keeps only the
tokens and lets the server's prefix cache do the same job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from translator.actions import Chunking
from translator.result import TokenScore


class PrefixState:
    """A token prefix as a chain: the parent's prefix plus this state's own tokens. Each backend's State
    extends it with what it keeps for the prefix (KV tensors, a llama.cpp sequence, nothing)."""

    __slots__ = ("parent", "tokens", "start")

    def __init__(self, parent: "PrefixState | None", tokens: list[int]):
        self.parent = parent
        self.tokens = list(tokens)
        self.start = parent.end if parent is not None else 0

    @property
    def end(self) -> int:
        return self.start + len(self.tokens)

    def path(self) -> list:
        """The states from the root to this one."""
        states, node = [], self
        while node is not None:
            states.append(node)
            node = node.parent
        return states[::-1]

    def all_tokens(self) -> list[int]:
        return [t for s in self.path() for t in s.tokens]


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0  # 0 means greedy (argmax)
    top_p: float = 1.0
    top_k: int = 0  # 0 means no top-k cut
    # 0 means no cut; else drop the tokens whose raw (pre-temperature) probability is below min_p times the
    # most probable token's (Nguyen et al. 2024), within what top-k and top-p kept: it removes the tail that
    # derails a sampled draft while keeping the choices the model weighs (a plateau keeps many, a peak few)
    min_p: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


STOP = "stop"  # what an ``on_tokens`` callback returns to end its row at once

# Progress and stop for one row of a generation. Every backend feeds its tokens to the row's TokenCutter
# (translator/backends/cutter.py), which calls this with each token it accepts (never the end-of-sequence
# token), in order: as they are sampled in process (transformers, llama.cpp), as a reply is read over HTTP
# (openai). Returning STOP ends the row there: its Continuation keeps every token accepted so far and has
# finish "stopped" (over HTTP the rest of that reply is dropped). Rows may run in threads (the HTTP backend
# sends siblings at once), so a callback shared by rows must be thread-safe. None: no calls.
OnTokens = Callable[[list[TokenScore]], "str | None"]


@dataclass
class GenRequest:
    state: Any  # a State from the same backend
    max_new_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0  # per-request seed: results do not depend on what else shares the batch
    chunking: Chunking = field(default_factory=Chunking)
    stop_at_thought_end: bool = False  # pause when the thought closes (so reflection can be injected)
    on_tokens: OnTokens | None = None  # progress of this row, and a way to stop it (see OnTokens)
    # Token ids never chosen inside the answer (``translator.script_guard``; sorted), and whether the state
    # already ends inside it (direct; after a forced or opened Output). Otherwise the answer begins where
    # the model opens its Output. Backends whose ``masks_tokens`` is False (HTTP) cannot apply it.
    answer_ban: Any = None
    in_answer: bool = False


@dataclass
class Chunk:
    """One action: a run of generated tokens, and the state after them."""

    tokens: list[TokenScore]
    text: str
    state: Any


@dataclass
class Continuation:
    chunks: list[Chunk]
    finish: str  # "eos", "output_closed", "thought_ended", "length" or "stopped" (on_tokens returned STOP)
    reason: str = ""  # set when the engine, not a rule, ended it (e.g. the context is full)
    in_answer: bool = False  # it ended inside the answer (its Output open): a continuation stays there

    @property
    def tokens(self) -> list[TokenScore]:
        return [t for c in self.chunks for t in c.tokens]

    @property
    def terminal(self) -> bool:
        return self.finish in ("eos", "output_closed", "length", "stopped")


@dataclass
class BackendStats:
    """Accounting of model work, to check the search wastes nothing."""

    forwarded_tokens: int = 0  # token positions run through the model
    recomputed_tokens: int = 0  # of those, positions whose KV had been computed before
    restored_tokens: int = 0  # prompt-head positions read from disk instead (llama.cpp's head store)
    generated_tokens: int = 0
    forward_calls: int = 0
    peak_cache_bytes: int = 0


MIN_SHARED_HEAD = 16  # tokens: a shorter prompt head is not worth a shared state
MAX_HEADS = 8  # prompt heads a backend keeps (one per kind: strategy, language pair)


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Backend(ABC):
    name: str
    logprobs_source: str  # where log-probs come from ("raw" = the model's own distribution)
    state_class: type[PrefixState] = PrefixState  # what ``start`` and ``extend`` make
    masks_tokens: bool = False  # picks tokens itself, so a request's ``answer_ban`` is applied
    _stats: BackendStats

    @property
    @abstractmethod
    def tokenizer(self) -> Any: ...

    @property
    def stats(self) -> BackendStats:
        return self._stats

    def start(self, prompt: str, *, head: int = 0) -> Any:
        """A state for a prompt; nothing is computed until it is continued.

        ``head``: how many leading characters of the prompt every prompt of its kind shares (chat template,
        system prompt, instructions; ``translator.prompt.prompt_head``). That head is one parent state the
        backend keeps, so its KV is computed once for a whole run rather than once per segment. The head is
        fixed by the prompt alone, never by what ran before, so a prompt is computed the same way whether it
        comes first or later."""
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        if head > 0:
            n = min(_common_length(self.tokenizer.encode(prompt[:head], add_special_tokens=False), ids),
                    len(ids) - 1)  # the prompt's own state keeps at least one token
            if n >= MIN_SHARED_HEAD:
                return self.state_class(self._shared_head(ids[:n]), ids[n:])
        return self.state_class(None, ids)

    def _shared_head(self, ids: list[int]) -> Any:
        """The kept state of a prompt head (made at its first use); the ``MAX_HEADS`` used last are kept."""
        heads: dict[tuple[int, ...], Any] = self.__dict__.setdefault("_heads", {})  # last used last
        key = tuple(ids)
        state = heads.pop(key, None) or self.state_class(None, ids)
        heads[key] = state
        for old in list(heads)[:-MAX_HEADS]:
            del heads[old]
        return state

    def extend(self, state: Any, text: str) -> Any:
        """A state with forced text appended (not sampled: it carries no log-probs)."""
        return self.state_class(state, self.tokenizer.encode(text, add_special_tokens=False))

    @abstractmethod
    def truncate(self, state: Any, keep_tokens: int) -> Any:
        """The state's own last action cut to its first ``keep_tokens`` tokens."""

    @abstractmethod
    def generate(self, requests: list[GenRequest]) -> list[Continuation]:
        """Continue every request, batched as the backend sees fit; results in request order."""

    @abstractmethod
    def score_forced(self, state: Any, token_ids: list[int]) -> list[TokenScore]:
        """Teacher forcing: the raw log-prob of each of ``token_ids`` after the state's prefix (token i given
        the prefix and tokens 0..i-1), with the raw top-5 ids and log-probs at each position, in one forward
        pass over the continuation. Rewards use it to ask how the model rates a given translation without
        generating one. A prefix whose KV the state holds is not re-encoded; the state is left as it was."""

    def release(self, state: Any, *, keep_kv: bool = False) -> None:
        """Drop what the state holds that the search will not need again: its next-token distribution once
        the node is fully expanded (``keep_kv``: descendants still continue from its prefix), everything
        once no node below it can grow."""

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=False)
