"""``marco-app``: serve the translation app, on localhost unless told otherwise.

    marco-app --model smollm2-135m --model qwen2.5-coder-1.5b --host 127.0.0.1 --port 7860
    marco-app --model openai:http://127.0.0.1:8000/v1 --served-model AIDC-AI/Marco-o1
"""

from __future__ import annotations

import argparse
import logging
import sys

from translator.api import MAX_INPUT_CHARS
from translator.errors import EXIT_FAILED, EXIT_OK, TranslatorError, print_error
from translator.options import MODEL_SPEC_HELP, add_lexicon_options, add_model_options
from translator.registry import DEFAULT_MODEL

PROG = "marco-app"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Web app for reasoning-augmented translation of colloquial text (Marco-o1 style search).",
        epilog="Each model runs one translation at a time (it is shared); further requests wait in the queue, "
               "which shows them their position. The translate function is also an API endpoint: "
               "gradio_client.Client(URL).predict(text=..., src='zh', tgt='en', api_name='/translate').")
    parser.add_argument("--model", action="append", default=None, metavar="SPEC",
                        help=f"{MODEL_SPEC_HELP}; give it several times to offer several models "
                             f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    add_model_options(parser)
    add_lexicon_options(parser)
    limits = parser.add_argument_group("per-request limits (the models are shared by all users)")
    limits.add_argument("--max-input-chars", type=int, default=MAX_INPUT_CHARS,
                        help=f"longest source text accepted (default and upper bound: {MAX_INPUT_CHARS})")
    limits.add_argument("--max-rollouts", type=int, default=64, help="largest mcts rollout budget (default: 64)")
    limits.add_argument("--max-new-tokens", type=int, default=1024,
                        help="largest max_new_tokens per path (default: 1024)")
    limits.add_argument("--queue-size", type=int, default=32,
                        help="requests that may wait in the queue before new ones are refused (default: 32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from app.ui import CSS, Limits, build_app  # after parsing: importing gradio takes seconds

    try:
        limits = Limits(args.max_input_chars, args.max_rollouts, args.max_new_tokens, args.queue_size)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        models = load_models(args.model or [DEFAULT_MODEL], args)
    except TranslatorError as exc:
        print_error(PROG, exc)
        return EXIT_FAILED
    demo = build_app(models, limits)
    try:
        demo.launch(server_name=args.host, server_port=args.port, css=CSS, footer_links=["api"])
    except OSError as exc:  # typically the port is taken
        print_error(PROG, f"cannot serve on {args.host}:{args.port}: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def load_models(specs: list[str], args):
    """Load every model at launch (or, for an ``openai:`` server, ask it whether it serves the model), so a
    bad spec fails now rather than on some user's first request."""
    from app.ui import Models
    from translator.options import build_translator, lexicon_from_args

    lexicon = lexicon_from_args(args) or False  # dictionary notes for every request (--lexicon off: none)
    translators = []
    for spec in dict.fromkeys(specs):
        logging.getLogger("app").info("loading %s…", spec)
        translators.append((spec, build_translator(args, spec, lexicon=lexicon)))
    return Models(translators)
