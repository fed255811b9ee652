"""What every decoding strategy shares: a Config dataclass (its options), a name, and one method."""

from __future__ import annotations

from abc import ABC, abstractmethod
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

from translator.backends.base import Backend
from translator.errors import InputError
from translator.prompt import TranslationRequest
from translator.result import TranslationResult


@dataclass
class Progress:
    """A snapshot of a running search, for progress bars and the app's live view."""

    done: int
    budget: int
    best_translation: str
    best_value: float | None
    elapsed_s: float


@dataclass
class TokenProgress:
    """Tokens generated so far by one ``translate`` call, reported as they come (every token in process,
    every server reply over HTTP), for progress lines and the app's live text."""

    tokens: int  # generated so far by this call, all its segments together
    elapsed_s: float
    segment: int  # index of the request whose text just grew
    _text: Callable[[], str] = field(repr=False, default=lambda: "")

    @property
    def text(self) -> str:
        """That segment's raw output so far, decoded when read (decoding every token would cost)."""
        return self._text()

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class Hooks:
    """Optional callbacks into a running translation; all strategies honour all of them."""

    on_progress: Callable[[Progress], None] | None = None  # mcts: after every search iteration
    # True stops the run and returns what is there: mcts checks between iterations and returns the best so
    # far, direct and cot at every token and return the text they have (finish "stopped").
    should_stop: Callable[[], bool] | None = None
    on_tokens: Callable[[TokenProgress], None] | None = None


def continued(hooks: Hooks, tokens: int, started: float, segments: list[int] | None = None) -> Hooks:
    """Hooks for a decode that continues a translation under way (the direct candidate or fallback that cot
    and mcts add): its token counts and times go on from the ``tokens`` generated since ``started``, and its
    segment ``i`` is the caller's ``segments[i]``, so a progress line counts those tokens too instead of
    starting again from zero. Stopping is the caller's."""
    if hooks.on_tokens is None:
        return Hooks(should_stop=hooks.should_stop)
    report = hooks.on_tokens

    def on_tokens(p: TokenProgress) -> None:
        report(replace(p, tokens=tokens + p.tokens, elapsed_s=time.perf_counter() - started,
                       segment=segments[p.segment] if segments is not None else p.segment))

    return Hooks(should_stop=hooks.should_stop, on_tokens=on_tokens)


class Strategy(ABC):
    name: ClassVar[str]
    Config: ClassVar[type]
    # True when several segments can be decoded in one batch (the batch tool then groups them).
    batches_segments: ClassVar[bool] = False
    # True when the model is asked for the Thought/Output format, so whether it closed it is worth reporting.
    reasoning: ClassVar[bool] = True

    def __init__(self, backend: Backend, config: Any):
        self.backend = backend
        self.config = config

    @abstractmethod
    def translate(self, requests: list[TranslationRequest], hooks: Hooks | None = None) -> list[TranslationResult]:
        """Translate each request; results in request order."""

    def params(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self.config)


DEFAULT_THOUGHT_BUDGET = 256


def resolve_thought_budget(budget: int | None, max_new_tokens: int, strategy: str) -> int:
    """The budget to use: None means the default, capped at half of max_new_tokens so the forced answer has
    room; a given budget must leave room too."""
    if budget is None:
        return min(DEFAULT_THOUGHT_BUDGET, max(1, max_new_tokens // 2))
    if budget < 0 or (budget and budget >= max_new_tokens):
        raise InputError(f"invalid {strategy} options: thought_budget must be 0 (no budget) or between 1 and "
                         f"max_new_tokens - 1 ({max_new_tokens - 1}), got {budget}")
    return budget
