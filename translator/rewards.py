"""Rewards for a finished reasoning path: a value in [0, 1] plus the details behind it.

``confidence`` is Marco-o1's: the mean over the path's generated tokens of
``c_i = exp(p(t_i)) / sum_{k<=5} exp(p(t_k))``, read from the log-probs the generating forward pass
already produced. Prompt tokens and injected text (the reflection sentence) are not generated and are
not counted. The others go beyond the paper and are opt-in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from translator.errors import InputError
from translator.prompt import TranslationRequest
from translator.result import TokenScore, mean_confidence


@dataclass
class RolloutPath:
    """A finished path as a reward sees it."""

    request: TranslationRequest
    tokens: list[TokenScore]  # generated tokens from the root to the terminal node
    text: str  # the whole answer (thought and output)
    translation: str


@dataclass
class RewardValue:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


class Reward(ABC):
    name: str

    @abstractmethod
    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        """Score several finished paths at once (rewards that call a model batch them)."""


class ConfidenceReward(Reward):
    name = "confidence"

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        out = []
        for path in paths:
            value = mean_confidence(path.tokens)
            out.append(RewardValue(value if value is not None else 0.0, {"tokens": len(path.tokens)}))
        return out


class BackTranslationReward(Reward):
    """Round-trip consistency: the same model translates the candidate back; chrF against the source.

    A confident but wrong rendering of a slang term often fails to come back to the source meaning.
    ``back_translate`` is a batch function (texts, src, tgt) -> texts supplied by the translator.
    """

    name = "backtranslation"

    def __init__(self, back_translate: Callable[[list[str], TranslationRequest], list[str]]):
        self.back_translate = back_translate

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        from sacrebleu.metrics import CHRF

        chrf = CHRF()
        out: list[RewardValue | None] = [None] * len(paths)
        todo = [i for i, p in enumerate(paths) if p.translation.strip()]
        for i in set(range(len(paths))) - set(todo):
            out[i] = RewardValue(0.0, {"back_translation": "", "chrf": 0.0, "reason": "empty translation"})
        if todo:
            backs = self.back_translate([paths[i].translation for i in todo], paths[todo[0]].request)
            for i, back in zip(todo, backs):
                score = chrf.sentence_score(back, [paths[i].request.text]).score
                out[i] = RewardValue(score / 100.0, {"back_translation": back, "chrf": score})
        return out  # type: ignore[return-value]


class CombinedReward(Reward):
    """A weighted mean of other rewards, keeping each part's details."""

    def __init__(self, parts: list[tuple[Reward, float]]):
        self.parts = parts
        self.name = "+".join(r.name for r, _ in parts)

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        total = sum(w for _, w in self.parts)
        scored = [(reward.score(paths), w, reward.name) for reward, w in self.parts]
        out = []
        for i in range(len(paths)):
            value = sum(values[i].value * w for values, w, _ in scored) / total
            out.append(RewardValue(value, {name: {"value": values[i].value, **values[i].details}
                                           for values, _, name in scored}))
        return out


class CometQEReward(Reward):
    """Reference-free COMET (e.g. CometKiwi) on (source, translation), when such a model is available."""

    name = "comet-qe"

    def __init__(self, model: str):
        # The evaluator owns COMET loading and its messages; load now so a missing model fails before searching.
        from eval.metrics.base import MetricUnavailable
        from eval.metrics.comet_metric import Comet, load_model, resolve_checkpoint

        try:
            if load_model(resolve_checkpoint(model)).requires_references():
                raise InputError(f"reward comet-qe needs a reference-free (QE) COMET model; {model} needs references")
        except MetricUnavailable as exc:
            raise InputError(f"reward comet-qe unavailable: {exc}") from None
        self.metric = Comet(model, batch_size=8)

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        values = self.metric.segment_scores([p.translation for p in paths], [], [p.request.text for p in paths])
        return [RewardValue(float(v), {"model": self.metric.model}) for v in values]


REWARDS = ("confidence", "backtranslation", "confidence+backtranslation", "comet-qe")
