"""Where an action ends and where a whole continuation ends, decided token by token for every backend.

The transformers backend and the llama.cpp backend feed it each sampled token as they go; the HTTP backend
feeds it the tokens a server returned. The rules, in order: an end-of-sequence id ends the continuation
(the id itself is not kept); a closed ``</Output>`` ends it; with ``stop_at_thought_end`` a closed thought
pauses it (so reflection can be injected); ``max_new_tokens`` ends it; otherwise ``Chunking`` may close the
current action. Each accepted token then goes to the request's ``on_tokens`` (progress), whose STOP ends
the continuation "stopped". The tags are looked for in the decoded last ``TAIL_TOKENS`` tokens, so a tag split over
several tokens is seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from translator.actions import TAIL_TOKENS, answer_closed, answer_opened, thought_ended
from translator.backends.base import STOP, Chunk, Continuation, GenRequest
from translator.result import TokenScore


class TokenCutter:
    """The token stream of one request, cut into actions as it grows."""

    __slots__ = ("request", "stop_ids", "decode", "tokens", "starts", "chunk_text", "finish", "boundary", "reason",
                 "in_answer")

    def __init__(self, request: GenRequest, stop_ids: Iterable[int], decode: Callable[[list[int]], str]):
        self.request = request
        self.stop_ids = frozenset(stop_ids)
        self.decode = decode
        self.tokens: list[TokenScore] = []
        self.starts = [0]  # index in ``tokens`` where each action starts
        self.chunk_text = ""
        self.finish: str | None = None
        self.boundary = False  # the token just accepted closed an action
        self.reason = ""  # why the continuation ended, when the engine ended it (context full)
        self.in_answer = request.in_answer  # the next token is part of the answer (its Output is open)

    def feed(self, token_id: int, logprob: float, top_ids: list[int], top_logprobs: list[float]) -> bool:
        """Take one generated token; True once the continuation has ended (``finish`` says why)."""
        req = self.request
        self.boundary = False
        if token_id in self.stop_ids:
            self.finish = "eos"
            return True
        text = self.decode([token_id])
        score = TokenScore(token_id, text, logprob, top_ids, top_logprobs)
        self.tokens.append(score)
        self.chunk_text += text
        tail = self.decode([t.token_id for t in self.tokens[-TAIL_TOKENS:]])
        if not self.in_answer and answer_opened(tail):
            self.in_answer = True
        if answer_closed(tail):
            self.finish = "output_closed"
        elif req.stop_at_thought_end and thought_ended(tail):
            self.finish = "thought_ended"
        elif len(self.tokens) >= req.max_new_tokens:
            self.finish = "length"
        elif req.chunking.ends_after(self.chunk_text, len(self.tokens) - self.starts[-1], text):
            self.starts.append(len(self.tokens))
            self.chunk_text = ""
            self.boundary = True
        if req.on_tokens is not None and req.on_tokens([score]) == STOP and self.finish is None:
            self.finish = "stopped"  # the caller has what it needs (Stop pressed): this token is the last
        return self.finish is not None

    def banned(self):
        """The ids the next token may not be (the request's ``answer_ban`` once in the answer), or None."""
        return self.request.answer_ban if self.in_answer else None

    def feed_score(self, score: TokenScore) -> bool:
        return self.feed(score.token_id, score.logprob, score.top_ids, score.top_logprobs)

    def end(self, finish: str, reason: str = "") -> None:
        """The engine stopped the stream before a rule did (a server's own stop, a full context)."""
        if self.finish is None:
            self.finish, self.reason = finish, reason

    def spans(self) -> list[tuple[int, int]]:
        """(start, end) in ``tokens`` of each action; the last may be shorter than its chunking asks."""
        bounds = self.starts + ([len(self.tokens)] if self.starts[-1] < len(self.tokens) else [])
        return list(zip(bounds, bounds[1:]))

    def continuation(self, states: list[Any]) -> Continuation:
        """The actions as chunks, each with the state the backend made for it (one per span)."""
        chunks = [Chunk(self.tokens[a:b], self.decode([t.token_id for t in self.tokens[a:b]]), state)
                  for (a, b), state in zip(self.spans(), states)]
        return Continuation(chunks, self.finish or "length", self.reason, self.in_answer)
