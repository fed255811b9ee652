"""``marco-translate``: translate a sentence (or stdin) from the command line.

``marco-translate batch ...`` translates files (see translator.batch).
"""

from __future__ import annotations

import argparse
import logging
import sys

from translator.errors import InputError, TranslatorError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from translator.api import MAX_INPUT_CHARS
    from translator.languages import accepted_languages
    from translator.options import add_common_options, add_strategy_options

    parser = argparse.ArgumentParser(
        prog="marco-translate",
        description="Reasoning-augmented translation of colloquial text (Marco-o1 style search). "
                    "Use `marco-translate batch --help` to translate files.",
        epilog=f"Languages: {accepted_languages()}. Input limit: {MAX_INPUT_CHARS} characters.")
    parser.add_argument("text", nargs="?", help="text to translate; read from stdin when omitted")
    parser.add_argument("--context", default=None, help="a note or surrounding text that helps the translation")
    parser.add_argument("--show-thought", action="store_true", help="print the reasoning before the translation")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--no-token-logprobs", action="store_true",
                        help="leave per-token log-probs out of --json (smaller output)")
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


def _progress_hooks(quiet: bool):
    from translator.strategies import Hooks

    if quiet or not sys.stderr.isatty():
        return None

    def show(p) -> None:
        best = f" | best so far: {p.best_translation[:60]}" if p.best_translation else ""
        print(f"\rsearch: {p.done}/{p.budget} rollouts, {p.elapsed_s:.0f}s{best}", end="", file=sys.stderr, flush=True)

    return Hooks(on_progress=show)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:
        from translator.batch import main as batch_main

        return batch_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        from translator.api import Translator, make_request
        from translator.options import strategy_options
        from translator.strategies import make_config

        request = make_request(read_input(args.text), args.src, args.tgt, context=args.context)
        options = strategy_options(args)
        make_config(args.strategy, options)  # refuse bad options before loading a model
        translator = Translator(args.model, device=args.device, dtype=args.dtype,
                                trust_remote_code=args.trust_remote_code, served_model=args.served_model)
        hooks = _progress_hooks(args.quiet)
        result = translator.strategy(args.strategy, **options).translate([request], hooks)[0]
        if hooks:
            print(file=sys.stderr)
    except InputError as exc:
        print(f"marco-translate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TranslatorError as exc:
        print(f"marco-translate: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("marco-translate: interrupted", file=sys.stderr)
        return 130
    status = 0
    if not result.translation:
        from translator.batch_run import NO_ANSWER

        print(f"marco-translate: {NO_ANSWER}", file=sys.stderr)
        status = 1
    if args.json:
        print(result.to_json(with_tokens=not args.no_token_logprobs))
        return status
    if args.show_thought:
        print("[thought]")
        print(result.thought or "(none)")
        print("[translation]")
    print(result.translation)
    return status
