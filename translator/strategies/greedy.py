"""``direct`` and ``cot``: one greedy pass per segment, batched across segments.

They are the baselines the search must beat, and the cheap modes for bulk work: ``direct`` asks for the
translation alone, ``cot`` for a Marco-o1 style Thought then Output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from translator.backends.base import GenRequest
from translator.parse import parse_answer, parse_direct
from translator.prompt import THOUGHT_OPEN, TranslationRequest, build_prompt
from translator.result import PathStep, TranslationResult, mean_confidence
from translator.strategies.base import Hooks, Strategy


@dataclass
class DirectConfig:
    max_new_tokens: int = 256


@dataclass
class CotConfig:
    max_new_tokens: int = 768


class _Greedy(Strategy):
    reasoning: bool
    batches_segments = True

    def translate(self, requests: list[TranslationRequest], hooks: Hooks | None = None) -> list[TranslationResult]:
        return greedy_translate(self, requests)


def greedy_translate(strategy: _Greedy, requests: list[TranslationRequest]) -> list[TranslationResult]:
    """Decode all requests in one batch; wall time is shared evenly (they ran together)."""
    backend = strategy.backend
    start = time.perf_counter()
    gen = [GenRequest(backend.start(build_prompt(backend.tokenizer, r, reasoning=strategy.reasoning)),
                      strategy.config.max_new_tokens) for r in requests]
    continuations = backend.generate(gen)
    wall = (time.perf_counter() - start) / max(1, len(requests))
    results = []
    for request, cont in zip(requests, continuations):
        tokens = cont.tokens
        text = backend.decode([t.token_id for t in tokens])
        if strategy.reasoning:
            parsed = parse_answer(THOUGHT_OPEN + text)
            translation, thought, format_ok = parsed.translation, parsed.thought, parsed.format_ok
        else:
            translation, thought, format_ok = parse_direct(text), "", True
        results.append(TranslationResult(
            source=request.text, src_lang=request.src.code, tgt_lang=request.tgt.code,
            translation=translation, thought=thought, raw_output=text, strategy=strategy.name,
            model=backend.name, params=strategy.params(), tokens_generated=len(tokens), wall_time_s=wall,
            format_ok=format_ok, confidence=mean_confidence(tokens), logprobs_source=backend.logprobs_source,
            tokens=tokens,
            steps=[PathStep(None, "answer", text, len(tokens), mean_confidence(tokens))],
            stats={"finish": cont.finish},
        ))
    return results


class Direct(_Greedy):
    name = "direct"
    Config = DirectConfig
    reasoning = False


class Cot(_Greedy):
    name = "cot"
    Config = CotConfig
    reasoning = True
