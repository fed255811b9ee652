"""``marco-translate``: translate a sentence (or stdin) from the command line.

``marco-translate batch ...`` translates files (see translator.batch).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from translator.errors import EXIT_FAILED, EXIT_OK, InputError, TranslatorError, exit_code, quiet_broken_pipe
from translator.strategies.base import Hooks, Progress, TokenProgress

PROG = "marco-translate"


def build_parser() -> argparse.ArgumentParser:
    from translator.api import MAX_INPUT_CHARS
    from translator.languages import accepted_languages
    from translator.options import add_common_options, add_strategy_options

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reasoning-augmented translation of colloquial text (Marco-o1 style search). "
                    "Use `marco-translate batch --help` to translate files.",
        epilog=f"Languages: {accepted_languages()}. Input limit: {MAX_INPUT_CHARS} characters.")
    parser.add_argument("text", nargs="?", help="text to translate; read from stdin when omitted")
    parser.add_argument("--context", default=None, help="a note or surrounding text that helps the translation")
    parser.add_argument("--show-thought", action="store_true", help="print the reasoning before the translation")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--no-token-logprobs", action="store_true",
                        help="leave per-token log-probs out of --json (smaller output)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="tokens so far, tokens/s and elapsed time on stderr while it runs "
                             "(default: only when stderr is a terminal, and not with --quiet)")
    add_common_options(parser)
    add_strategy_options(parser)
    return parser


def read_input(text: str | None) -> str:
    """The text from the argument or stdin, refused with a clear message when it is not valid UTF-8."""
    if text is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no text given: pass it as an argument or pipe it on stdin")
        raw = sys.stdin.buffer.read()
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"stdin is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("the text argument contains undecodable bytes; is it UTF-8?") from None
    return text


class ProgressLine:
    """One self-rewriting line on stderr while a translation runs, for every strategy: tokens so far,
    tokens/s and elapsed time, plus rollouts and the best answer so far for mcts."""

    REFRESH_S = 0.2  # a redraw per token would flood a slow terminal

    def __init__(self, strategy: str, stream=None):
        self.strategy = strategy
        self.stream = stream or sys.stderr
        self.search: Progress | None = None
        self.tokens: TokenProgress | None = None
        self._drawn_at = float("-inf")
        self._width = 0

    def hooks(self) -> Hooks:
        return Hooks(on_progress=self.on_progress, on_tokens=self.on_tokens)

    def on_progress(self, progress: Progress) -> None:
        self.search = progress
        self._draw(force=True)

    def on_tokens(self, progress: TokenProgress) -> None:
        self.tokens = progress
        self._draw()

    def line(self) -> str:
        parts = [self.strategy + ":"]
        if self.search is not None:
            parts.append(f"{self.search.done}/{self.search.budget} rollouts,")
        if self.tokens is not None:
            parts.append(f"{self.tokens.tokens} tokens, {self.tokens.tokens_per_s:.1f} tok/s,")
        elapsed = max(p.elapsed_s for p in (self.search, self.tokens) if p is not None)
        parts.append(f"{elapsed:.0f} s")
        if self.search is not None and self.search.best_translation:
            parts.append(f"| best so far: {self.search.best_translation[:60]}")
        return " ".join(parts)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < self.REFRESH_S:
            return
        self._drawn_at = now
        text = self.line()
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """The final figures (the last redraw may have been skipped), then end the line."""
        if self.search is not None or self.tokens is not None:
            self._draw(force=True)
        if self._width:
            self.stream.write("\n")
            self.stream.flush()


def show_progress(args: argparse.Namespace) -> bool:
    """On a terminal unless --quiet; in a pipe only when --progress asks."""
    if args.progress is not None:
        return args.progress
    return not args.quiet and sys.stderr.isatty()


@quiet_broken_pipe
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:
        from translator.batch import main as batch_main

        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    progress = ProgressLine(args.strategy) if show_progress(args) else None
    try:
        from translator.api import make_request
        from translator.languages import direction_warning
        from translator.options import build_translator, lexicon_from_args, strategy_options
        from translator.strategies import make_config

        lexicon = lexicon_from_args(args)
        request = make_request(read_input(args.text), args.src, args.tgt, context=args.context, lexicon=lexicon)
        warning = direction_warning(request.text, request.src)
        if warning:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        options = strategy_options(args)
        make_config(args.strategy, options)  # refuse bad options before loading a model
        translator = build_translator(args, lexicon=lexicon or False)
        hooks = progress.hooks() if progress else None
        result = translator.strategy(args.strategy, **options).translate([request], hooks)[0]
    except (TranslatorError, KeyboardInterrupt) as exc:
        return exit_code(PROG, exc)
    finally:
        if progress:
            progress.close()
    status = EXIT_OK
    if not result.answered:
        from translator.batch_run import NO_ANSWER

        print(f"{PROG}: {NO_ANSWER}", file=sys.stderr)
        status = EXIT_FAILED
    if args.json:
        print(result.to_json(with_tokens=not args.no_token_logprobs))
        return status
    if args.show_thought:
        print("[thought]")
        print(result.thought or "(none)")
        print("[translation]")
    print(result.translation)
    return status
