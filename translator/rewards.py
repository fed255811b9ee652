"""Rewards for a finished translation: a value in [0, 1] plus the details behind it, by name.

Each reward is a small class with a name and a ``Config`` dataclass (its options, checked in
``__post_init__``), registered in ``REGISTRY``; ``make_reward("a+b", ...)`` builds one, or the equal-weight
mean of several. Every reward scores a ``RolloutPath``: an mcts rollout (generated tokens, answer text,
translation) or a bare (source, hypothesis) pair (no tokens), which is how ``eval/reward_eval.py`` checks
them against human judgements.

- ``confidence`` is Marco-o1's: the mean over the path's generated tokens of
  ``c_i = exp(p(t_i)) / sum_{k<=5} exp(p(t_k))``, from the log-probs the generating forward pass already
  produced (prompt and injected text excluded). It needs a generated path; a bare pair scores 0.
- ``forced-confidence``, ``logprob`` and ``boostedprob`` are teacher-forced: the model reads the
  translation (plus its end token) after the ``direct`` translation prompt, in one forward pass
  (``Backend.score_forced``), and the score is read from those log-probs. They judge the translation alone,
  not the reasoning that led to it, and cost one forward over the translation per candidate.
- ``channel`` is the noisy channel: teacher-forced, how probable the model finds the *source* as the
  translation of the candidate back into the source language (one forward pass per candidate, no
  generation). A candidate that drops or invents content explains the source badly.
- ``consensus`` is MBR: mean chrF (or another ``mbr_utility``, ``translator.utility``) of the candidate
  against the other candidates for the same source.
- ``backtranslation`` (a generation per candidate) and ``comet-qe`` (a CometKiwi model) as before.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar

from translator.errors import InputError
from translator.prompt import TranslationRequest, start_prompt
from translator.result import TokenScore, mean_confidence
from translator.utility import check_utility, consensus, sentence_chrf, utility


@dataclass
class RolloutPath:
    """A finished path as a reward sees it (for a bare pair: no tokens, and text = translation)."""

    request: TranslationRequest
    tokens: list[TokenScore]  # generated tokens from the root to the terminal node
    text: str  # the whole answer (thought and output)
    translation: str


@dataclass
class RewardValue:
    value: float
    details: dict[str, Any] = field(default_factory=dict)


BackTranslate = Callable[[list[str], TranslationRequest], list[str]]


class ForcedScorer:
    """Teacher-forced token scores of a text after a request's ``direct`` prompt (a translation after its
    source's prompt, or the source after the prompt to translate a candidate back), shared by the rewards that
    read them (several of them on one candidate cost one forward pass). The prompt state of the last few
    sources is kept, so the prompt is encoded once per source, not once per candidate."""

    def __init__(self, backend, *, prompts_kept: int = 4, scores_kept: int = 4096):
        self.backend = backend
        self._states: OrderedDict[TranslationRequest, Any] = OrderedDict()
        self._scores: OrderedDict[tuple[TranslationRequest, str], list[TokenScore]] = OrderedDict()
        self._prompts_kept, self._scores_kept = prompts_kept, scores_kept
        tok = backend.tokenizer
        self.end_id = tok.eos_token_id if tok.eos_token_id is not None else tok.convert_tokens_to_ids("<|im_end|>")

    def token_scores(self, request: TranslationRequest, translation: str) -> list[TokenScore]:
        """The translation's tokens, then the end-of-turn token (a cut-off translation scores low on it)."""
        key = (request, translation)
        if key in self._scores:
            self._scores.move_to_end(key)
            return self._scores[key]
        ids = self.backend.tokenizer.encode(translation, add_special_tokens=False) + [self.end_id]
        scores = self.backend.score_forced(self._state(request), ids)
        self._scores[key] = scores
        if len(self._scores) > self._scores_kept:
            self._scores.popitem(last=False)
        return scores

    def _state(self, request: TranslationRequest):
        if request in self._states:
            self._states.move_to_end(request)
            return self._states[request]
        state = start_prompt(self.backend, request, reasoning=False)
        self._states[request] = state
        if len(self._states) > self._prompts_kept:
            self.backend.release(self._states.popitem(last=False)[1])
        return state


@dataclass
class RewardContext:
    """What a reward may call on: the policy's backend (teacher forcing) and a back-translator."""

    backend: Any = None
    back_translate: BackTranslate | None = None
    _forced: ForcedScorer | None = field(default=None, repr=False)

    @property
    def forced(self) -> ForcedScorer:
        if self._forced is None:
            if self.backend is None:
                raise InputError("teacher-forced rewards need a model backend")
            self._forced = ForcedScorer(self.backend)
        return self._forced


@dataclass
class NoOptions:
    pass


class Reward(ABC):
    name: ClassVar[str]
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None, context: RewardContext | None = None):
        self.config = config if config is not None else self.Config()
        self.context = context or RewardContext()

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


def _empty(reason: str = "empty translation") -> RewardValue:
    return RewardValue(0.0, {"reason": reason})


class _ForcedReward(Reward):
    """A value read from teacher-forced token scores (by default, of the translation alone)."""

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        out = []
        for path in paths:
            if not path.translation.strip():
                out.append(_empty())
                continue
            tokens = self.forced_tokens(path)
            value, details = self.from_tokens(tokens)
            out.append(RewardValue(value, {"tokens": len(tokens), **details}))
        return out

    def forced_tokens(self, path: RolloutPath) -> list[TokenScore]:
        """The token scores the value is read from: the translation after its source's prompt."""
        return self.context.forced.token_scores(path.request, path.translation)

    @abstractmethod
    def from_tokens(self, tokens: list[TokenScore]) -> tuple[float, dict[str, Any]]:
        """The value of a non-empty list of token scores."""


class ForcedConfidenceReward(_ForcedReward):
    """Marco-o1's confidence formula on the translation as the model reads it, not as it generated it."""

    name = "forced-confidence"

    def from_tokens(self, tokens: list[TokenScore]) -> tuple[float, dict[str, Any]]:
        return mean_confidence(tokens), {}


class LogProbReward(_ForcedReward):
    """Length-normalised log-likelihood: exp of the mean token log-prob (the geometric mean probability,
    in [0, 1] and monotone in the mean log-prob)."""

    name = "logprob"

    def from_tokens(self, tokens: list[TokenScore]) -> tuple[float, dict[str, Any]]:
        mean_lp = sum(t.logprob for t in tokens) / len(tokens)
        return math.exp(mean_lp), {"mean_logprob": mean_lp}


class ChannelReward(LogProbReward):
    """Noisy-channel reranking (Yee et al. 2019), the model as its own channel: the geometric mean
    probability of the source's tokens (and its end token) after the ``direct`` prompt that asks to
    translate the candidate back, in one teacher-forced pass. Unlike back-translation it generates nothing
    and has no sampling noise; each candidate needs a prompt of its own, so it costs about twice ``logprob``.
    Every candidate of a source is scored on the same tokens, so there is no length bias between them."""

    name = "channel"

    def forced_tokens(self, path: RolloutPath) -> list[TokenScore]:
        request = path.request
        reverse = TranslationRequest(path.translation, request.tgt, request.src)
        return self.context.forced.token_scores(reverse, request.text)


@dataclass
class BoostedProbConfig:
    p_jump: float = 0.3  # a gap of more than this fraction of the higher probability ends the dominant set
    min_gap: float = 0.005  # ... and the gap must be at least this much probability

    def __post_init__(self):
        if not 0 < self.p_jump < 1:
            raise InputError(f"boostedprob p_jump must be in (0, 1), got {self.p_jump}")
        if not 0 <= self.min_gap < 1:
            raise InputError(f"boostedprob min_gap must be in [0, 1), got {self.min_gap}")


def dominant_count(probs: list[float], p_jump: float, min_gap: float) -> int:
    """How many of the top candidates (probabilities sorted high to low) dominate the rest: everything above
    the last big drop, a drop being a gap larger than ``p_jump`` times the higher probability and larger
    than ``min_gap``. 0 when there is no such drop (a flat distribution has no dominant tokens)."""
    count = 0
    for i in range(len(probs) - 1):
        gap = probs[i] - probs[i + 1]
        if gap > p_jump * probs[i] and gap > min_gap:
            count = i + 1
    return count


def boosted_prob(token: TokenScore, p_jump: float, min_gap: float) -> float:
    """A token's probability, boosted to the mass of the dominant set when it belongs to it: where several
    continuations are about equally right, the model spreads its mass over them, and that spread is not
    doubt (after Dinh and Niehues, EMNLP 2025). Only the top-5 are known, so the dominant set is looked for
    among them."""
    probs = [math.exp(lp) for lp in token.top_logprobs]
    n = dominant_count(probs, p_jump, min_gap)
    if token.token_id in token.top_ids[:n]:
        return sum(probs[:n])
    return math.exp(token.logprob)


class BoostedProbReward(_ForcedReward):
    name = "boostedprob"
    Config = BoostedProbConfig

    def from_tokens(self, tokens: list[TokenScore]) -> tuple[float, dict[str, Any]]:
        boosted = [boosted_prob(t, self.config.p_jump, self.config.min_gap) for t in tokens]
        return sum(boosted) / len(boosted), {}


@dataclass
class ConsensusConfig:
    # how alike two candidates are (translator.utility); the search passes its own (bleu by default), the
    # bare reward keeps chrf so that the reward meta-evaluation's figures keep their meaning
    mbr_utility: str = "chrf"

    def __post_init__(self):
        if problem := check_utility(self.mbr_utility):
            raise InputError(problem)


class ConsensusReward(Reward):
    """MBR: the mean utility (chrF by default, ``translator.utility``) of a candidate against every other
    candidate for the same source, as pseudo-references (what the candidates agree on is probably right).
    Candidates from earlier calls for the same source count too, so in a search each rollout is compared with
    every answer found so far; a candidate alone scores 1 (it agrees with itself). ``forget`` drops a
    source's candidates."""

    name = "consensus"
    Config = ConsensusConfig

    def __init__(self, config: Any = None, context: RewardContext | None = None):
        super().__init__(config, context)
        self._pool: dict[TranslationRequest, list[str]] = {}

    def forget(self, request: TranslationRequest) -> None:
        self._pool.pop(request, None)

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        for path in paths:
            if path.translation.strip():
                self._pool.setdefault(path.request, []).append(path.translation)
        out = []
        for path in paths:
            if not path.translation.strip():
                out.append(_empty())
                continue
            others = list(self._pool[path.request])
            others.remove(path.translation)
            value = consensus(path.translation, others, utility(self.config.mbr_utility, path.request.tgt.code))
            out.append(RewardValue(value, {"pseudo_references": len(others), "utility": self.config.mbr_utility}))
        return out


def direct_back_translator(backend, max_new_tokens: int) -> BackTranslate:
    """Back-translation with the ``direct`` strategy on the same backend, all texts in one batch."""

    def back_translate(texts: list[str], request: TranslationRequest) -> list[str]:
        from translator.strategies.greedy import Direct, DirectConfig

        reverse = [TranslationRequest(t, request.tgt, request.src) for t in texts]
        return [r.translation for r in Direct(backend, DirectConfig(max_new_tokens)).translate(reverse)]

    return back_translate


class BackTranslationReward(Reward):
    """Round-trip consistency: the same model translates the candidate back; chrF against the source.

    A confident but wrong rendering of a slang term often fails to come back to the source meaning.
    The context's ``back_translate`` is a batch function (texts, request) -> texts.
    """

    name = "backtranslation"

    def __init__(self, config: Any = None, context: RewardContext | None = None):
        super().__init__(config, context)
        if self.context.back_translate is None:
            raise InputError("the backtranslation reward needs a back-translator (a model backend)")

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        out: list[RewardValue] = [_empty() for _ in paths]
        todo = [i for i, p in enumerate(paths) if p.translation.strip()]
        if todo:
            backs = self.context.back_translate([paths[i].translation for i in todo], paths[todo[0]].request)
            for i, back in zip(todo, backs):
                score = sentence_chrf(back, paths[i].request.text)
                out[i] = RewardValue(score / 100.0, {"back_translation": back, "chrf": score})
        return out


@dataclass
class CometQEConfig:
    comet_model: str | None = None  # a CometKiwi name or a local checkpoint

    def __post_init__(self):
        if not self.comet_model:
            raise InputError("reward comet-qe needs comet_model (a CometKiwi name or a local checkpoint)")


class CometQEReward(Reward):
    """Reference-free COMET (e.g. CometKiwi) on (source, translation), when such a model is available."""

    name = "comet-qe"
    Config = CometQEConfig

    def __init__(self, config: Any = None, context: RewardContext | None = None):
        super().__init__(config, context)
        # Loaded now, so a missing model fails before searching.
        from translator import comet

        model = self.config.comet_model
        try:
            self.comet = comet.load(model)
        except comet.CometUnavailable as exc:
            raise InputError(f"reward comet-qe unavailable: {exc}") from None
        if self.comet.requires_references():
            raise InputError(f"reward comet-qe needs a reference-free (QE) COMET model; {model} needs references")
        self.model = model

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        from translator.comet import predict

        values = predict(self.comet, [{"src": p.request.text, "mt": p.translation} for p in paths], batch_size=8)
        return [RewardValue(float(v), {"model": self.model}) for v in values]


def combine(parts: list[tuple[str, RewardValue]]) -> RewardValue:
    """The equal-weight mean of several rewards' values, keeping each part's details under its name."""
    value = sum(v.value for _, v in parts) / len(parts)
    return RewardValue(value, {name: {"value": v.value, **v.details} for name, v in parts})


class CombinedReward(Reward):
    """The mean of other rewards (``a+b`` by name), keeping each part's details."""

    def __init__(self, parts: list[Reward]):
        super().__init__()
        self.parts = parts
        self.name = "+".join(r.name for r in parts)

    def score(self, paths: list[RolloutPath]) -> list[RewardValue]:
        scored = [(reward.name, reward.score(paths)) for reward in self.parts]
        return [combine([(name, values[i]) for name, values in scored]) for i in range(len(paths))]


REGISTRY: dict[str, type[Reward]] = {cls.name: cls for cls in (
    ConfidenceReward, ForcedConfidenceReward, LogProbReward, BoostedProbReward, ChannelReward, ConsensusReward,
    BackTranslationReward, CometQEReward)}

REWARDS: tuple[str, ...] = (*REGISTRY, "confidence+backtranslation")
"""Names offered to users; any ``+``-joined list of registered names is accepted too."""


def reward_configs(name: str, options: dict[str, Any] | None = None) -> list[tuple[type[Reward], Any]]:
    """Each part of ``name`` (``a`` or ``a+b+...``) with its Config built from the options that apply to it
    (which validates it): cheap, so a strategy's config can be checked before any model is loaded."""
    parts = [p.strip() for p in name.split("+")]
    unknown = [p for p in parts if p not in REGISTRY]
    if unknown or not parts:
        raise InputError(f"unknown reward {name!r}; choose one of {', '.join(REGISTRY)} or join several with '+'")
    if len(set(parts)) < len(parts):
        raise InputError(f"reward {name!r} names a part twice")
    options = {k: v for k, v in (options or {}).items() if v is not None}
    out = []
    for part in parts:
        cls = REGISTRY[part]
        names = {f.name for f in fields(cls.Config)}
        out.append((cls, cls.Config(**{k: v for k, v in options.items() if k in names})))
    return out


def make_reward(name: str, context: RewardContext | None = None, options: dict[str, Any] | None = None) -> Reward:
    """A reward by name; ``a+b`` is the mean of both, sharing one context (one teacher-forced pass)."""
    context = context or RewardContext()
    built = [cls(config, context) for cls, config in reward_configs(name, options)]
    return built[0] if len(built) == 1 else CombinedReward(built)
