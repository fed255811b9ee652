"""The Python API: load a model once, translate with any strategy.

    from translator import Translator
    tr = Translator("qwen2.5-coder-1.5b")
    result = tr.translate("这双鞋给人一种踩屎感。", src="zh", tgt="en", strategy="mcts", rollouts=8)
    print(result.translation, result.steps)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from translator.backends.base import Backend
from translator.errors import InputError
from translator.languages import Language, UnknownLanguageError, resolve_language
from translator.prompt import GlossaryEntry, TranslationRequest

if TYPE_CHECKING:
    from translator.lexicon import Lexicon
from translator.result import TranslationResult
from translator.strategies import DEFAULT_STRATEGY, STRATEGIES, Hooks, make_config

MAX_INPUT_CHARS = 2000  # longer inputs belong in the batch tool, one segment per line


def validate_text(text: str) -> str:
    """Reject what cannot be translated, with a message a user can act on."""
    if not isinstance(text, str):
        raise InputError("input must be text")
    stripped = text.strip()
    if not stripped:
        raise InputError("input is empty: give a sentence to translate")
    if len(stripped) > MAX_INPUT_CHARS:
        raise InputError(f"input is {len(stripped)} characters; the limit is {MAX_INPUT_CHARS} "
                         "(split it, or use `marco-translate batch` with one segment per line)")
    if "\ufffd" in stripped:
        raise InputError("input contains undecodable bytes (U+FFFD); is it UTF-8?")
    return stripped


def language(value: str | Language) -> Language:
    if isinstance(value, Language):
        return value
    try:
        return resolve_language(value)
    except UnknownLanguageError as exc:
        raise InputError(str(exc)) from None


def make_request(text: str, src: str | Language, tgt: str | Language, *, context: str | None = None,
                 glossary: Sequence[GlossaryEntry] = (), lexicon: "Lexicon | None" = None) -> TranslationRequest:
    """A validated request; with a lexicon, the dictionary notes for its terms (the glossary wins over them)."""
    src_lang, tgt_lang = language(src), language(tgt)
    if src_lang == tgt_lang:
        raise InputError(f"source and target language are both {src_lang.name}")
    text = validate_text(text)
    hints = lexicon.hints(text, src_lang, tgt_lang, glossary) if lexicon is not None else ()
    return TranslationRequest(text, src_lang, tgt_lang, context=context, glossary=tuple(glossary), hints=hints)


class Translator:
    """A loaded model and the strategies that decode with it."""

    def __init__(self, model: str | None = None, *, backend: Backend | str | None = None, device: str | None = None,
                 dtype: str | None = None, trust_remote_code: bool = False, served_model: str | None = None,
                 n_ctx: int | None = None, threads: int | None = None, lexicon: "Lexicon | bool" = True):
        """``backend``: a ready Backend, or which engine loads ``model`` ("auto", "transformers",
        "llama-cpp"; see ``translator.backends.choose_backend``). ``lexicon``: True for the default lexicon
        (the project's lists and CC-CEDICT, in the ``AUTO_DIRECTIONS``, as ``--lexicon auto``), False for
        none, or a ``Lexicon`` (see ``translator.lexicon.load_lexicon`` for user files, the number of hints
        and the directions)."""
        if lexicon is True:
            from translator.lexicon import AUTO_DIRECTIONS, load_lexicon

            lexicon = load_lexicon(directions=AUTO_DIRECTIONS)
        self.lexicon: Lexicon | None = lexicon or None
        if backend is None or isinstance(backend, str):
            from translator.backends import open_backend

            backend = open_backend(model, backend=backend or "auto", device=device, dtype=dtype,
                                   trust_remote_code=trust_remote_code, served_model=served_model, n_ctx=n_ctx,
                                   threads=threads)
        self.backend = backend

    @property
    def model_name(self) -> str:
        return self.backend.name

    def strategy(self, name: str, **options: Any):
        if name not in STRATEGIES:
            raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
        return STRATEGIES[name](self.backend, make_config(name, options))

    def translate(self, text: str, src: str | Language = "zh", tgt: str | Language = "en", *,
                  strategy: str = DEFAULT_STRATEGY, context: str | None = None, glossary: Sequence[GlossaryEntry] = (),
                  hooks: Hooks | None = None, **options: Any) -> TranslationResult:
        request = make_request(text, src, tgt, context=context, glossary=glossary, lexicon=self.lexicon)
        return self.strategy(strategy, **options).translate([request], hooks)[0]
