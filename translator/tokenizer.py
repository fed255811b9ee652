"""The tokenizer of a model spec, without its weights, and the special-token fix every backend needs.

Every backend (transformers, llama.cpp, HTTP) encodes prompts and decodes tokens with the same Hugging Face
tokenizer, so prompts, token ids and chunk texts mean the same whichever engine runs. For a GGUF (a
registry name or a ``.gguf`` path) the tokenizer is built from the file's vocabulary once (a few seconds for
a 150k vocabulary) and kept as ``tokenizer.json`` in the cache, keyed by the GGUF's sha256. Every later start
reads that cache with the ``tokenizers`` library and jinja2 alone (``CachedTokenizer``): importing
transformers (and the torch and scikit-learn it pulls in) cost about 5 of the 8 seconds to a first token.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from translator.durable_files import publish_dir
from translator.errors import ModelLoadError
from translator.registry import REGISTRY, cache_dir, classify_spec, file_sha256, registry_gguf

logger = logging.getLogger("translator.models")

# Used only when a ChatML tokenizer carries no template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def fix_tokenizer(tokenizer: Any) -> list[int]:
    """Make eos, pad and the chat template agree; return the ids that end generation.

    transformers' GGUF loader swaps bos/eos (SmolLM2 comes out with eos ``<|im_start|>``), and llama.cpp's
    GGUF metadata can name another eos too, so a ChatML model gets ``<|im_end|>`` as its eos explicitly,
    and ``<|endoftext|>`` also stops generation.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)  # a fast tokenizer: no 150k-entry dict to build
    lookup = backend.token_to_id if backend is not None else tokenizer.get_vocab().get
    vocab = {t: i for t in ("<|im_end|>", "<|im_start|>", "<|endoftext|>") if (i := lookup(t)) is not None}
    if "<|im_end|>" in vocab:
        tokenizer.eos_token = "<|im_end|>"
        if not tokenizer.chat_template and "<|im_start|>" in vocab:
            logger.warning("the tokenizer has no chat template; using plain ChatML")
            tokenizer.chat_template = CHATML_TEMPLATE
    if not tokenizer.chat_template:
        logger.warning("the tokenizer has no chat template; chat prompts cannot be built for this model")
    candidates = [vocab.get("<|im_end|>"), vocab.get("<|endoftext|>"), tokenizer.eos_token_id]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return list(dict.fromkeys(i for i in candidates if i is not None))


def _tokenizer_dir(sha256: str) -> Path:
    return cache_dir() / "tokenizers" / sha256[:16]


# transformers' ``clean_up_tokenization``, in its order: what ``decode`` does when a config asks for it.
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class CachedTokenizer:
    """A saved fast tokenizer (``tokenizer.json``, its config, its chat template) read without transformers.

    It answers what the backends, prompts and script guard ask of a tokenizer (``encode``, ``decode``,
    ``apply_chat_template``, the vocabulary, eos/pad), with the results of transformers' fast tokenizer
    for the same files: the same ``tokenizers`` engine, the same jinja2 settings for the template, and the
    config's ``clean_up_tokenization_spaces``; tests compare the two on the project's models. It serves
    the llama.cpp and HTTP backends; the transformers backend keeps its own (it imports transformers anyway).
    """

    _SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self.directory = directory  # where derived tables may be saved beside it (the script guard's ids)
        self.backend_tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        template = directory / "chat_template.jinja"
        self.chat_template: str | None = (template.read_text(encoding="utf-8") if template.is_file()
                                          else config.get("chat_template"))
        self._cleanup = bool(config.get("clean_up_tokenization_spaces", False))
        for name in self._SPECIAL:
            token = config.get(name)
            setattr(self, name, token.get("content") if isinstance(token, dict) else token)
        self._compiled: tuple[str, Any] | None = None

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._id(self.pad_token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, token_ids: list[int], skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        text = self.backend_tokenizer.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
        if self._cleanup if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces:
            for old, new in _CLEANUP:
                text = text.replace(old, new)
        return text

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        return [self.backend_tokenizer.id_to_token(i) for i in ids]

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str | list[int]:
        """Rendered as transformers renders it: a sandboxed jinja2 environment with trimmed blocks, its
        ``tojson``, ``raise_exception`` and ``strftime_now``, and the special tokens as variables."""
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        if self._compiled is None or self._compiled[0] != self.chat_template:
            self._compiled = self.chat_template, _compile(self.chat_template)
        specials = {name: getattr(self, name) for name in self._SPECIAL if getattr(self, name) is not None}
        text = self._compiled[1].render(messages=messages, tools=None, documents=None,
                                        add_generation_prompt=add_generation_prompt, **specials)
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _compile(template: str) -> Any:
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _load_cached(directories: list[Path]) -> Any | None:
    for directory in directories:
        try:
            return CachedTokenizer(directory)
        except Exception:  # noqa: BLE001 - a damaged or partial cache: try the next, else rebuild from the GGUF
            logger.debug("tokenizer cache %s unreadable", directory, exc_info=True)
            continue
    return None


def _save(tokenizer: Any, dest: Path) -> None:
    """The cache dir exists only once complete (a damaged copy is replaced); failing costs a rebuild."""
    # legacy_format=False: only tokenizer.json; the slow format would copy the whole GGUF as its vocab.
    error = publish_dir(dest, lambda tmp: tokenizer.save_pretrained(tmp, legacy_format=False), replace=True)
    if error is not None:
        logger.warning("could not cache the tokenizer (%s); the next start rebuilds it", error)


def load_tokenizer(spec: str) -> tuple[Any, list[int]]:
    """The (fixed) tokenizer of a model spec and its stop token ids; never loads weights. A GGUF's comes from
    the cache without importing transformers once it has been built."""
    try:
        kind, target = classify_spec(spec)
        if kind in ("registry", "gguf"):
            if kind == "registry":
                entry = REGISTRY[target]
                sha, locate = entry.sha256, lambda: registry_gguf(entry)
            else:
                sha, locate = file_sha256(Path(target)), lambda: Path(target)
            # Our own cache, else a dequantized model's (it holds the same tokenizer.json), else the GGUF.
            cached = [_tokenizer_dir(sha), *sorted((cache_dir() / "dequantized").glob(f"{sha[:16]}-*"))]
            tokenizer = _load_cached([d for d in cached if d.is_dir()])
            if tokenizer is None:
                from transformers import AutoTokenizer

                gguf = locate()
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                _save(tokenizer, _tokenizer_dir(sha))  # then read back, so a first run tokenizes as later ones
                tokenizer = _load_cached([_tokenizer_dir(sha)]) or tokenizer
        else:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(target)
    except ModelLoadError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"tokenizer {spec!r} could not be loaded: {exc}") from exc
    return tokenizer, fix_tokenizer(tokenizer)
