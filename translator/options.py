"""Command-line options derived from the strategies' Config dataclasses, so a new knob needs no CLI code."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from translator.strategies import STRATEGIES


def base_type(hint: Any) -> Any:
    """``X | None`` -> ``X``: the type a command-line value is parsed as."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


MODEL_SPEC_HELP = ("registry name, GGUF path, local directory, Hugging Face id, or openai:http://HOST:PORT/v1 "
                   "for an OpenAI-compatible server (with --served-model)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How a model spec is loaded: the same flags for the CLI, batch, app and bench."""
    parser.add_argument("--served-model", default=None, metavar="NAME",
                        help="with --model openai:http://HOST:PORT/v1: the model name the server serves, also "
                             "the tokenizer to load (registry name, GGUF path or HF id; MARCO_TOKENIZER overrides); "
                             "API key from MARCO_API_KEY or OPENAI_API_KEY")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, help="bf16, fp16, fp32 or auto (default: bf16)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")


def model_settings(args: argparse.Namespace, default_model: str) -> dict[str, Any]:
    """What identifies the model in a resume journal: a served model joins the spec only when given, so
    journals written before servers were supported still match."""
    settings: dict[str, Any] = {"model": args.model or default_model, "dtype": args.dtype}
    if args.served_model:
        settings["served_model"] = args.served_model
    return settings


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Languages, strategy and model loading: the same flags for sentences and files."""
    from translator.models import DEFAULT_MODEL  # imports torch, which both commands load anyway

    parser.add_argument("--model", default=None, metavar="SPEC", help=f"{MODEL_SPEC_HELP} (default: {DEFAULT_MODEL})")
    parser.add_argument("--src", default="zh", help="source language, code or name (default: zh)")
    parser.add_argument("--tgt", default="en", help="target language, code or name (default: en)")
    parser.add_argument("--strategy", default="cot", choices=sorted(STRATEGIES), help="decoding strategy (default: cot)")
    add_model_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress or loading messages on stderr")


def add_strategy_options(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per Config field of any strategy; all default to None (= the strategy's default)."""
    seen: dict[str, list[str]] = {}
    fields: dict[str, tuple[Any, Any]] = {}
    for name, cls in STRATEGIES.items():
        hints = typing.get_type_hints(cls.Config)
        for f in dataclasses.fields(cls.Config):
            seen.setdefault(f.name, []).append(f"{name}={f.default}")
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
