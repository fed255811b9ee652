"""``direct`` and ``cot``: one greedy pass per segment, batched across segments.

They are the baselines the search must beat, and the cheap modes for bulk work: ``direct`` asks for the
translation alone, ``cot`` for a Marco-o1 style Thought then Output.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from translator.backends.base import STOP, GenRequest
from translator.errors import at_least, check_options
from translator.lexicon.markup import strip_markup
from translator.parse import parse_answer, parse_direct
from translator.prompt import FORCE_ANSWER, THOUGHT_OPEN, TranslationRequest, start_prompt
from translator.result import PathStep, TokenScore, TranslationResult, mean_confidence
from translator.script_guard import answer_ban
from translator.strategies.base import Hooks, Strategy, TokenProgress, continued, resolve_thought_budget

if TYPE_CHECKING:  # mcts imports this module
    from translator.strategies.mcts import MctsConfig


@dataclass
class DirectConfig:
    max_new_tokens: int = 256
    script_guard: bool = True  # an answer into English etc. never writes Chinese characters (translator.script_guard)
    notes_guard: bool = True  # an answer given notes never writes their sense separator "|" (the same module)

    def __post_init__(self) -> None:
        check_options("direct", [at_least("max_new_tokens", self.max_new_tokens, 1)])


@dataclass
class CotConfig:
    max_new_tokens: int = 768  # the whole answer: thought and output
    thought_budget: int | None = None  # thought tokens before the answer is forced; 0 = none; None = auto
    fallback: bool = True  # an answer that reached no translation gets the direct one (see answer_fallback)
    script_guard: bool = True  # the Output into English etc. never writes Chinese characters (translator.script_guard)
    notes_guard: bool = True  # the Output given notes never writes their sense separator "|" (the same module)

    def __post_init__(self) -> None:
        check_options("cot", [at_least("max_new_tokens", self.max_new_tokens, 1)])
        self.thought_budget = resolve_thought_budget(self.thought_budget, self.max_new_tokens, "cot")


class _Greedy(Strategy):
    batches_segments = True

    def translate(self, requests: list[TranslationRequest], hooks: Hooks | None = None) -> list[TranslationResult]:
        return greedy_translate(self, requests, hooks or Hooks())


class _LiveRow:
    """One segment's ``on_tokens`` callback: feeds ``hooks.on_tokens`` (one running count for the whole
    batch, the segment's text so far, forced text included) and returns STOP once ``hooks.should_stop``
    says so."""

    def __init__(self, backend, hooks: Hooks, start: float, segment: int, total: list[int], lock: threading.Lock):
        self.backend, self.hooks, self.start, self.segment = backend, hooks, start, segment
        self.total, self.lock = total, lock  # shared by the batch's rows (an HTTP backend's report from threads)
        self.parts: list[list[int] | str] = [[]]  # generated ids, and text injected between passes

    def __call__(self, new: list[TokenScore]) -> str | None:
        with self.lock:
            self.parts[-1].extend(t.token_id for t in new)
            self.total[0] += len(new)
            tokens = self.total[0]
        if self.hooks.on_tokens is not None:
            self.hooks.on_tokens(TokenProgress(tokens, time.perf_counter() - self.start, self.segment, self.text))
        return STOP if self.hooks.should_stop is not None and self.hooks.should_stop() else None

    def inject(self, text: str) -> None:
        self.parts += [text, []]

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else self.backend.decode(list(p)) for p in self.parts)


def _live_rows(backend, hooks: Hooks, start: float, n: int) -> list[_LiveRow | None]:
    if hooks.on_tokens is None and hooks.should_stop is None:
        return [None] * n
    total, lock = [0], threading.Lock()
    return [_LiveRow(backend, hooks, start, i, total, lock) for i in range(n)]


@dataclass
class _Answer:
    """One segment's greedy answer: its generated parts (one per pass) and whether the answer was forced."""

    parts: list[list[TokenScore]]
    finish: str
    forced: bool = False


def greedy_translate(strategy: _Greedy, requests: list[TranslationRequest], hooks: Hooks) -> list[TranslationResult]:
    """Decode all requests in one batch; wall time is shared evenly (they ran together).

    With a thought budget (cot), the first pass pauses where the thought ends or reaches its budget; a thought
    at its budget gets ``FORCE_ANSWER`` injected, and every unfinished answer goes on in a second batched pass,
    up to ``max_new_tokens`` in all. No prefix is re-encoded: the second pass continues the first's states.
    Both passes report to ``hooks.on_tokens`` and stop at ``hooks.should_stop`` (a stopped answer is not
    continued).
    """
    backend, config = strategy.backend, strategy.config
    start = time.perf_counter()
    budget = config.thought_budget if strategy.reasoning else 0
    on_tokens = _live_rows(backend, hooks, start, len(requests))
    states = [start_prompt(backend, r, reasoning=strategy.reasoning) for r in requests]
    bans = [answer_ban(backend, r, config.script_guard, config.notes_guard) for r in requests]
    first = backend.generate([GenRequest(s, budget or config.max_new_tokens, stop_at_thought_end=bool(budget),
                                         on_tokens=report, answer_ban=ban, in_answer=not strategy.reasoning)
                              for s, report, ban in zip(states, on_tokens, bans)])
    answers = [_Answer([c.tokens], c.finish) for c in first]
    follow: list[tuple[_Answer, GenRequest]] = []
    for answer, state, cont, report, ban in zip(answers, states, first, on_tokens, bans):
        left = config.max_new_tokens - len(cont.tokens)
        if not budget or left <= 0 or cont.finish in ("eos", "output_closed", "stopped"):
            continue
        after = cont.chunks[-1].state if cont.chunks else state
        if cont.finish == "length":  # the thought reached its budget without closing: force the answer
            answer.forced = True
            after = backend.extend(after, FORCE_ANSWER)
            if report is not None:
                report.inject(FORCE_ANSWER)
        follow.append((answer, GenRequest(after, left, on_tokens=report, answer_ban=ban,
                                          in_answer=answer.forced or cont.in_answer)))
    if follow:
        for (answer, _), cont in zip(follow, backend.generate([g for _, g in follow])):
            answer.parts.append(cont.tokens)
            answer.finish = cont.finish
    wall = (time.perf_counter() - start) / max(1, len(requests))
    results = [_result(strategy, request, answer, wall) for request, answer in zip(requests, answers)]
    if strategy.reasoning and config.fallback:
        results = answer_fallback(backend, requests, results, config, hooks, start)
    return results


def fallback_direct(backend, config: "CotConfig | MctsConfig") -> "Direct":
    """The ``direct`` decode a reasoning strategy adds (a fallback, or a candidate for selection): direct's
    own token default, or the reasoning's cap if lower, with the reasoning's guards. One rule for cot and
    mcts."""
    tokens = min(config.max_new_tokens, DirectConfig.max_new_tokens)
    return Direct(backend, DirectConfig(tokens, config.script_guard, config.notes_guard))


def answer_fallback(backend, requests: list[TranslationRequest], results: list[TranslationResult],
                    config: "CotConfig | MctsConfig", hooks: Hooks, started: float) -> list[TranslationResult]:
    """Reasoning answers that reached no translation (a forced Output the model left empty, a closed
    thought followed by end-of-sequence) get the ``direct`` translation instead, decoded in one batch, so
    every segment is answered (see ``fallback_direct``). The thought is kept; ``stats["fallback"]`` says
    where the answer came from and a "fallback" step holds the direct reply. An answer the user stopped is
    left as it is."""
    todo = [i for i, r in enumerate(results) if not r.answered and r.stats.get("finish") != "stopped"]
    if not todo or (hooks.should_stop is not None and hooks.should_stop()):
        return results
    so_far = sum(r.tokens_generated for r in results)  # the batch's count goes on (``continued``)
    fixed = fallback_direct(backend, config).translate([requests[i] for i in todo],
                                                       continued(hooks, so_far, started, todo))
    out = list(results)
    for i, res in zip(todo, fixed):
        old = results[i]
        out[i] = replace(
            old, translation=res.translation, tokens_generated=old.tokens_generated + res.tokens_generated,
            wall_time_s=old.wall_time_s + res.wall_time_s, tokens=old.tokens + res.tokens, confidence=res.confidence,
            steps=old.steps + [replace(step, kind="fallback") for step in res.steps], cleanup=old.cleanup + res.cleanup,
            stats={**old.stats, "fallback": "direct"}, answered=res.answered)
    return out


def _result(strategy: _Greedy, request: TranslationRequest, answer: _Answer, wall: float) -> TranslationResult:
    backend = strategy.backend
    tokens = [t for part in answer.parts for t in part]
    texts = [backend.decode([t.token_id for t in part]) for part in answer.parts]
    if answer.forced:
        text = texts[0] + FORCE_ANSWER + "".join(texts[1:])
        steps = [PathStep(None, "thought", texts[0], len(answer.parts[0]), mean_confidence(answer.parts[0])),
                 PathStep(None, "force", FORCE_ANSWER, 0, None)]
        steps += [PathStep(None, "answer", t, len(p), mean_confidence(p)) for t, p in zip(texts[1:], answer.parts[1:])]
    else:
        text = backend.decode([t.token_id for t in tokens])  # decoded whole: no character split at a pass edge
        steps = [PathStep(None, "answer", text, len(tokens), mean_confidence(tokens))]
    if strategy.reasoning:
        parsed = parse_answer(THOUGHT_OPEN + text)
        translation, thought, format_ok = parsed.translation, parsed.thought, parsed.format_ok
    else:
        translation, thought, format_ok = parse_direct(text), "", True
    translation, cleanup = strip_markup(translation, request.hints, chinese_target=request.tgt.code == "zh")
    return TranslationResult(
        source=request.text, src_lang=request.src.code, tgt_lang=request.tgt.code,
        translation=translation, thought=thought, raw_output=text, strategy=strategy.name,
        model=backend.name, params=strategy.params(), tokens_generated=len(tokens), wall_time_s=wall,
        format_ok=format_ok, confidence=mean_confidence(tokens), logprobs_source=backend.logprobs_source,
        tokens=tokens, steps=steps, stats={"finish": answer.finish, "thought_forced": answer.forced},
        hints=[h.to_dict() for h in request.hints], cleanup=cleanup,
    )


class Direct(_Greedy):
    name = "direct"
    Config = DirectConfig
    reasoning = False


class Cot(_Greedy):
    name = "cot"
    Config = CotConfig
    reasoning = True
