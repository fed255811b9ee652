"""Translation prompts in Marco-o1's reasoning format.

Marco-o1 thinks inside ``<Thought>...</Thought>`` and answers inside ``<Output>...</Output>``. We ask any
chat model for that format and open the assistant turn with ``<Thought>`` ourselves, which keeps small
models on format and makes the search's first action a reasoning step rather than a preamble.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from translator.languages import Language

THOUGHT_OPEN = "<Thought>\n"

REASONING_SYSTEM = """You are an expert translator of informal, colloquial writing: internet slang, memes, idioms, \
jokes, puns and social-media posts.
Think before you translate, inside <Thought>...</Thought>:
1. Point out every slang term, idiom, meme, pun or cultural reference in the source text and say what the \
writer actually means by it (the intended meaning, not the literal words).
2. Decide how a native {tgt} speaker would say the same thing, in the same tone and register.
Then give only the final translation inside <Output>...</Output>: natural, fluent {tgt}, faithful to the \
meaning and the tone. No notes, no explanations and no source text inside <Output>."""

DIRECT_SYSTEM = """You are an expert translator of informal, colloquial writing: internet slang, memes, idioms, \
jokes and puns. Translate what the writer means, not the literal words, into natural {tgt} in the same tone. \
Reply with the translation only: no notes, no quotes, no explanations."""


@dataclass(frozen=True)
class GlossaryEntry:
    source: str
    target: str


@dataclass(frozen=True)
class TranslationRequest:
    """What the user asked for, before any model-specific formatting."""

    text: str
    src: Language
    tgt: Language
    context: str | None = None  # surrounding text or a note from the translator
    glossary: tuple[GlossaryEntry, ...] = field(default_factory=tuple)


def build_messages(request: TranslationRequest, *, reasoning: bool) -> list[dict[str, str]]:
    system = (REASONING_SYSTEM if reasoning else DIRECT_SYSTEM).format(tgt=request.tgt.name)
    lines = [f"Translate the following {request.src.name} text into {request.tgt.name}."]
    if request.context:
        lines.append(f"Context (do not translate): {request.context}")
    if request.glossary:
        lines.append("Use these term translations:")
        lines.extend(f"- {entry.source} => {entry.target}" for entry in request.glossary)
    lines.append("")
    lines.append(request.text)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def build_prompt(tokenizer, request: TranslationRequest, *, reasoning: bool) -> str:
    """The full prompt text: the model's own chat template, then the opened assistant turn."""
    messages = build_messages(request, reasoning=reasoning)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (THOUGHT_OPEN if reasoning else "")
