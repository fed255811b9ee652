"""Translation prompts in Marco-o1's reasoning format.

Marco-o1 thinks inside ``<Thought>...</Thought>`` and answers inside ``<Output>...</Output>``. We ask any
chat model for that format and open the assistant turn with ``<Thought>`` ourselves, which keeps small
models on format and makes the search's first action a reasoning step rather than a preamble.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from translator.languages import Language

THOUGHT_OPEN = "<Thought>\n"
# Budget forcing (s1, Muennighoff et al. 2025): a thought that reaches its token budget is closed for the
# model and the answer opened, so a model that would think forever still answers.
FORCE_ANSWER = "\n</Thought>\n<Output>\n"

REASONING_SYSTEM = """You are an expert translator of informal, colloquial writing: internet slang, memes, idioms, \
jokes, puns and social-media posts.
Think briefly before you translate, inside <Thought>...</Thought>, in two parts:
Terms: each slang term, idiom, meme, pun or cultural reference in the source, and what the writer means by it \
here (when dictionary notes are given, choose the sense that fits this context).
Draft: a first translation, as a native {tgt} speaker would say it, in the same tone and register.
Then give only the final translation inside <Output>...</Output>: natural, fluent {tgt}, faithful to the \
meaning and the tone. No notes, no explanations, no dictionary labels and no source text inside <Output>."""

DIRECT_SYSTEM = """You are an expert translator of informal, colloquial writing: internet slang, memes, idioms, \
jokes and puns. Translate what the writer means, not the literal words, into natural {tgt} in the same tone. \
Reply with the translation only: no notes, no quotes, no explanations, no dictionary labels."""


@dataclass(frozen=True)
class GlossaryEntry:
    source: str
    target: str


@dataclass(frozen=True)
class Hint:
    """A dictionary note for a term found in the source: every sense, so the model chooses in context."""

    term: str  # as written in the source
    senses: tuple[str, ...]  # short meanings or renderings, most colloquial first
    source: str  # "cc-cedict", "zh-slang", "en-slang", "cc-cedict-reverse" or a user file's name
    note: str = ""  # the kind of term: slang, idiom, neologism...

    def to_dict(self) -> dict[str, object]:
        """As results record it (JSON has no tuples)."""
        return {"term": self.term, "senses": list(self.senses), "source": self.source, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Hint":
        """Back from a saved result, to rebuild the request a search ran on."""
        return cls(data["term"], tuple(data["senses"]), data["source"], data.get("note", ""))


@dataclass(frozen=True)
class TranslationRequest:
    """What the user asked for, before any model-specific formatting."""

    text: str
    src: Language
    tgt: Language
    context: str | None = None  # surrounding text or a note from the translator
    glossary: tuple[GlossaryEntry, ...] = field(default_factory=tuple)
    hints: tuple[Hint, ...] = field(default_factory=tuple)  # lexicon notes (see translator.lexicon)


INSTRUCTION = "Translate the following {src} text into {tgt}."  # the user turn's first line


def prompt_head(prompt: str) -> int:
    """How many leading characters of a built prompt every prompt of its kind (strategy, language pair)
    shares: all up to the end of the instruction line. What follows (context, glossary, notes, the text)
    is the segment's own. 0 for a prompt built otherwise. Backends keep the head's KV (``Backend.start``)."""
    start = prompt.find(INSTRUCTION.split("{", 1)[0])
    end = prompt.find("\n", start) if start >= 0 else -1
    return end + 1 if end >= 0 else 0


def start_prompt(backend, request: "TranslationRequest", *, reasoning: bool):
    """The backend state of a request's prompt (see ``build_prompt``), its shared head kept by the backend."""
    prompt = build_prompt(backend.tokenizer, request, reasoning=reasoning)
    return backend.start(prompt, head=prompt_head(prompt))


HINTS_HEADER = ("Dictionary notes (a sense may not fit this context; they explain the source, "
                "do not copy them into the translation):")


# Between a note's senses: a separator no translation needs, so the notes guard can keep it out of the
# answer (translator.script_guard)
SENSE_SEPARATOR = " | "


def format_hint(hint: Hint) -> str:
    """One compact line per term, its senses separated by ``SENSE_SEPARATOR``."""
    kind = f" ({hint.note})" if hint.note else ""
    return f"- {hint.term}{kind}: {SENSE_SEPARATOR.join(hint.senses)}"


# Target languages whose prompts give the notes after the text, not before it. Into Chinese the notes are
# renderings in the target language, and placed before the text they made the default model translate
# a note's term alone and drop the rest of the text (a two-sentence post came back as one of the note's
# renderings, and 4 of 40 slang en-zh answers were under half the reference's length); after the text it
# translates the whole sentence and still uses them: +5.8 BLEU and +4.0 chrF on slang en-zh against the
# notes before the text, +4.6 BLEU against no notes, both significant (README, "Where the notes go").
# From Chinese, notes after the text lost 3.2 BLEU on slang zh-en (the model used them less), so there
# they stay before it.
NOTES_AFTER_TEXT = frozenset({"zh"})


def notes_after_text(tgt: Language) -> bool:
    """Do a request's dictionary notes follow its text in the prompt (``NOTES_AFTER_TEXT``)?"""
    return tgt.code in NOTES_AFTER_TEXT


def build_messages(request: TranslationRequest, *, reasoning: bool) -> list[dict[str, str]]:
    system = (REASONING_SYSTEM if reasoning else DIRECT_SYSTEM).format(tgt=request.tgt.name)
    lines = [INSTRUCTION.format(src=request.src.name, tgt=request.tgt.name)]
    if request.context:
        lines.append(f"Context (do not translate): {request.context}")
    if request.glossary:
        lines.append("Use these term translations:")
        lines.extend(f"- {entry.source} => {entry.target}" for entry in request.glossary)
    notes = [HINTS_HEADER, *map(format_hint, request.hints)] if request.hints else []
    after = notes_after_text(request.tgt)
    if not after:
        lines.extend(notes)
    lines.append("")
    lines.append(request.text)
    if after and notes:
        lines.append("")
        lines.extend(notes)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def build_prompt(tokenizer, request: TranslationRequest, *, reasoning: bool) -> str:
    """The full prompt text: the model's own chat template, then the opened assistant turn."""
    messages = build_messages(request, reasoning=reasoning)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (THOUGHT_OPEN if reasoning else "")
