"""Errors a user can act on, the exit codes every command shares, and the one-line way they are reported.

It sits below every entry point (``marco-translate``, ``marco-translate batch``, ``marco-eval``,
``marco-app``) and imports nothing of the project, so none of them has to import another to agree on a
code or a message format.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and some of it failed: no translation, a model that cannot load
EXIT_USAGE = 2  # bad input or options: nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C (finished work is saved where the command keeps a journal)


class TranslatorError(Exception):
    """Base for errors whose message is meant for the user, not a traceback."""


class InputError(TranslatorError, ValueError):
    """The text or an option given to us cannot be translated as asked (empty, too long, bad bytes...)."""


class ModelLoadError(TranslatorError):
    """A model spec could not be resolved or loaded; the message names the spec and what was tried."""


def print_error(prog: str, message: object) -> None:
    """The one line every command prints for an error a user can act on."""
    print(f"{prog}: error: {message}", file=sys.stderr)


def exit_code(prog: str, exc: TranslatorError | KeyboardInterrupt, *, failed: int = EXIT_FAILED) -> int:
    """Report an error a user can act on (or Ctrl-C) in one line; the exit code: 2 for bad input,
    ``failed`` for anything else the user can fix (a model that does not load...), 130 for Ctrl-C."""
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print_error(prog, exc)
    return EXIT_USAGE if isinstance(exc, InputError) else failed


def quiet_broken_pipe(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's ``main`` so that a closed pipe (``... | head -1``) ends it quietly.

    The reader has all it wanted, so this is not an error: no traceback, and stdout is pointed at
    /dev/null so that the interpreter's final flush does not raise again (as the Python docs advise for
    SIGPIPE). The exit code is 141 (128 + SIGPIPE), what a shell reports for a command killed by it."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):  # stdout without a file descriptor (captured by a test)
                pass
            return 141

    return run


def at_least(name: str, value: float | None, minimum: float) -> str | None:
    """A Config check: the problem with ``value`` as a sentence, or None when it is fine (or not given)."""
    if value is None or value >= minimum:
        return None
    return f"{name} must be at least {minimum} (got {value})"


def check_options(what: str, problems: list[str | None]) -> None:
    """Raise one InputError naming every problem found, each once (None entries are checks that passed;
    two checks may find the same problem, as a strategy's and its reward's check of a shared option)."""
    found = list(dict.fromkeys(p for p in problems if p))
    if found:
        raise InputError(f"invalid {what} options: " + "; ".join(found))
