"""Where one action ends and where a whole answer ends, decided on the token stream.

Every backend (transformers, llama.cpp, HTTP) cuts generated text with these same rules, through
``translator.backends.cutter.TokenCutter``, so a tree means the same thing whichever engine produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GRANULARITIES = ("step", "mini-32", "mini-64")
# The tags of Marco-o1's format, spelled once (the regexes below also accept other cases and spacing).
THOUGHT_OPEN_TAG, THOUGHT_CLOSE_TAG = "<Thought>", "</Thought>"
OUTPUT_OPEN_TAG, OUTPUT_CLOSE_TAG = "<Output>", "</Output>"
# Enough tokens to see a closing tag that was split over several tokens.
TAIL_TOKENS = 12
OUTPUT_CLOSE = re.compile(r"<\s*/\s*output\s*>", re.IGNORECASE)
OUTPUT_OPEN = re.compile(r"<\s*output\s*>", re.IGNORECASE)
# The thought ends where it is closed, or where the Output opens in a model that never closes it.
THOUGHT_END = re.compile(r"<\s*/\s*thought\s*>|<\s*output\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class Chunking:
    """How a generated stream is cut into tree actions.

    ``mini-N``: exactly N tokens per action (fewer only at the end of the answer).
    ``step``: one reasoning step: up to and including a newline once the step has content, or the closing
    of a Thought/Output tag; ``max_step_tokens`` bounds a step that never breaks its line.
    ``none``: the whole continuation is one action (greedy decoding, rollouts kept whole).
    """

    kind: str = "none"
    max_step_tokens: int = 192

    @classmethod
    def parse(cls, granularity: str) -> "Chunking":
        if granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
        return cls(kind=granularity)

    @property
    def mini_size(self) -> int | None:
        return int(self.kind.split("-")[1]) if self.kind.startswith("mini-") else None

    def ends_after(self, chunk_text: str, n_tokens: int, token_text: str) -> bool:
        """Does the current action end after the token just added?"""
        if self.kind == "none":
            return False
        size = self.mini_size
        if size is not None:
            return n_tokens >= size
        if n_tokens >= self.max_step_tokens:
            return True
        if THOUGHT_END.search(chunk_text) or OUTPUT_CLOSE.search(chunk_text):
            return True
        return "\n" in token_text and bool(chunk_text.strip())


def answer_closed(text_tail: str) -> bool:
    """The answer is terminal once its Output block is closed."""
    return OUTPUT_CLOSE.search(text_tail) is not None


def thought_ended(text_tail: str) -> bool:
    return THOUGHT_END.search(text_tail) is not None


def answer_opened(text_tail: str) -> bool:
    """The answer (what the target-script guard keeps in the target's script) begins where the Output opens."""
    return OUTPUT_OPEN.search(text_tail) is not None
