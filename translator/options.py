"""Command-line options derived from the strategies' Config dataclasses, so a new knob needs no CLI code."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from translator.backends import BACKENDS, choose_backend
from translator.backends.llama_cpp_backend import DEFAULT_N_CTX
from translator.registry import DEFAULT_MODEL
from translator.strategies import DEFAULT_STRATEGY, STRATEGIES


def base_type(hint: Any) -> Any:
    """``X | None`` -> ``X``: the type a command-line value is parsed as."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def positive_int(text: str) -> int:
    """An argparse type for counts (batch sizes, limits): refused at parse time, before any work."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MODEL_SPEC_HELP = ("registry name, GGUF path, local directory, Hugging Face id, or openai:http://HOST:PORT/v1 "
                   "for an OpenAI-compatible server (with --served-model)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How a model spec is loaded: the same flags for the CLI, batch, app and bench."""
    parser.add_argument("--served-model", default=None, metavar="NAME",
                        help="with --model openai:http://HOST:PORT/v1: the model name the server serves, also "
                             "the tokenizer to load (registry name, GGUF path or HF id; MARCO_TOKENIZER overrides); "
                             "API key from MARCO_API_KEY or OPENAI_API_KEY")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="the engine that runs the model: llama-cpp reads GGUF files (registry names, .gguf "
                             "paths) on a CPU, transformers runs Hugging Face models and GPUs; auto (default) "
                             "picks llama-cpp for a GGUF on a CPU, transformers otherwise")
    parser.add_argument("--n-ctx", type=positive_int, default=None, metavar="TOKENS",
                        help=f"llama-cpp: KV cells for all paths of a search together (default: {DEFAULT_N_CTX}); "
                             "a path that would overflow it ends as truncated, with the reason")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for the model (llama-cpp default: one per physical core this process "
                             "may use; transformers: torch's own, about the same); fewer when other busy jobs "
                             "share the cores: engines that fight for cores slow down many times over")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="transformers: bf16, fp16, fp32 or auto (default: bf16)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")


def build_translator(args: argparse.Namespace, model: str | None = None, *, lexicon=True):
    """The one way from parsed options (``add_model_options``) to a loaded ``Translator``, for the CLI,
    batch, the benchmark and the app; ``model`` overrides ``args.model`` (the app loads several);
    ``lexicon`` as ``Translator`` takes it."""
    from translator.api import Translator

    return Translator(model or args.model, backend=getattr(args, "backend", None) or "auto", device=args.device,
                      dtype=args.dtype, trust_remote_code=args.trust_remote_code, served_model=args.served_model,
                      n_ctx=getattr(args, "n_ctx", None), threads=getattr(args, "threads", None), lexicon=lexicon)


def model_settings(args: argparse.Namespace, default_model: str) -> dict[str, Any]:
    """What identifies the model in a resume journal: a served model joins the spec only when given, so
    journals written before servers were supported still match."""
    settings: dict[str, Any] = {"model": args.model or default_model, "dtype": args.dtype}
    if args.served_model:
        settings["served_model"] = args.served_model
    elif (engine := choose_backend(args.model or default_model, getattr(args, "backend", None) or "auto",
                                   args.device)) != "transformers":
        settings["backend"] = engine  # another engine decodes other tokens; transformers journals predate the key
    return settings


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Languages, strategy and model loading: the same flags for sentences and files."""
    parser.add_argument("--model", default=None, metavar="SPEC", help=f"{MODEL_SPEC_HELP} (default: {DEFAULT_MODEL})")
    parser.add_argument("--src", default="zh", help="source language, code or name (default: zh)")
    parser.add_argument("--tgt", default="en", help="target language, code or name (default: en)")
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=sorted(STRATEGIES),
                        help=f"decoding strategy (default: {DEFAULT_STRATEGY})")
    add_model_options(parser)
    add_lexicon_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress or loading messages on stderr")


def add_lexicon_options(parser: argparse.ArgumentParser) -> None:
    """Dictionary hints: the same flags for the CLI, batch, app and bench."""
    from translator.lexicon import DEFAULT_MAX_HINTS

    parser.add_argument("--lexicon", choices=("auto", "on", "off"), default="auto",
                        help="dictionary and slang-lexicon notes in the prompt; auto (default): from Chinese "
                             "into any language and from English into Chinese, where they were measured to help "
                             "with the default model (on: every direction)")
    parser.add_argument("--lexicon-file", action="append", default=[], metavar="FILE.tsv",
                        help="your own terms, in the format of translator/lexicon/data (repeatable; wins over "
                             "the built-in lists)")
    parser.add_argument("--max-hints", type=int, default=DEFAULT_MAX_HINTS, metavar="N",
                        help=f"at most N notes per segment (default: {DEFAULT_MAX_HINTS})")


def lexicon_from_args(args: argparse.Namespace):
    """The lexicon the options ask for, or None (``--lexicon off``); bad files are an InputError now."""
    from translator.errors import InputError
    from translator.lexicon import AUTO_DIRECTIONS, load_lexicon

    if args.lexicon == "off":
        return None
    if args.max_hints < 0:
        raise InputError(f"--max-hints must be >= 0, got {args.max_hints}")
    directions = AUTO_DIRECTIONS if args.lexicon == "auto" else None
    return load_lexicon(tuple(args.lexicon_file), max_hints=args.max_hints, directions=directions)


def lexicon_settings(args: argparse.Namespace, src: str, tgt: str) -> dict[str, Any]:
    """What identifies the lexicon in a resume journal or cache key, for a direction: ``auto`` is recorded
    as what it does there (on or off), so journals written before ``auto`` existed resume."""
    from translator.lexicon import AUTO_DIRECTIONS, covers

    if args.lexicon == "off" or (args.lexicon == "auto" and not covers(AUTO_DIRECTIONS, src, tgt)):
        return {}  # as in journals made before the lexicon existed
    return {"lexicon": "on", "lexicon_files": list(args.lexicon_file), "max_hints": args.max_hints}


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per Config field of any strategy; all default to None (= the strategy's default)."""
    seen: dict[str, list[str]] = {}
    fields: dict[str, tuple[Any, Any]] = {}
    for name, cls in STRATEGIES.items():
        hints = typing.get_type_hints(cls.Config)
        for f in dataclasses.fields(cls.Config):
            shown = f.metadata.get("default", f.default)  # metadata: a default resolved later, in words
            seen.setdefault(f.name, []).append(f"{name}={shown}")
            fields.setdefault(f.name, (hints[f.name], f.default))
    group = parser.add_argument_group("strategy options (each applies to the strategies named in its help)")
    for field_name, (hint, _) in fields.items():
        flag = "--" + field_name.replace("_", "-")
        kind = base_type(hint)
        help_text = "default: " + ", ".join(seen[field_name])
        if kind is bool:
            group.add_argument(flag, dest=field_name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(flag, dest=field_name, type=kind, default=None, metavar=kind.__name__.upper(),
                               help=help_text)


def strategy_options(args: argparse.Namespace) -> dict[str, Any]:
    """The strategy options the user actually gave."""
    names = {f.name for cls in STRATEGIES.values() for f in dataclasses.fields(cls.Config)}
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
