"""What every decoding strategy shares: a Config dataclass (its options), a name, and one method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from translator.backends.base import Backend
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
class Hooks:
    on_progress: Callable[[Progress], None] | None = None
    should_stop: Callable[[], bool] | None = None  # polled between search iterations; True returns best so far


class Strategy(ABC):
    name: ClassVar[str]
    Config: ClassVar[type]
    # True when several segments can be decoded in one batch (the batch tool then groups them).
    batches_segments: ClassVar[bool] = False

    def __init__(self, backend: Backend, config: Any):
        self.backend = backend
        self.config = config

    @abstractmethod
    def translate(self, requests: list[TranslationRequest], hooks: Hooks | None = None) -> list[TranslationResult]:
        """Translate each request; results in request order."""

    def params(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self.config)
