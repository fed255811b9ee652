"""marco-translate: reasoning-augmented translation (Marco-o1 style MCTS over an LLM's reasoning)."""

from translator.api import MAX_INPUT_CHARS, Translator, make_request
from translator.result import TranslationResult

__all__ = ["MAX_INPUT_CHARS", "Translator", "TranslationResult", "make_request"]
