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
