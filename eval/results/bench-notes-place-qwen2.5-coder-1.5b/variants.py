"""Run ``marco-eval`` with the dictionary notes given another way (the runs of README, "Where the notes go").

    python variants.py VARIANT bench --data ... (marco-eval's own arguments)

VARIANT: ``h0`` the prompt as it is (folder ``before``; these runs were made on the code before commit 737b45c,
when the notes always came before the text), ``h1`` a header asking to use the fitting sense (``use``),
``after`` the notes after the text (``after``), ``label`` the text labelled "Text to translate:"
(``labelled``); ``before`` the notes before the text in every direction, on the code since 737b45c (the
SlangDIT check). The prompt is changed in-process, nothing else.
"""
import sys
import translator.prompt as P

variant = sys.argv[1]
if variant == "h1":
    P.HINTS_HEADER = "Dictionary notes (pick the sense that fits this context and use it, in natural words):"
elif variant == "after":
    orig = P.build_messages
    def build_messages(request, *, reasoning):
        msgs = orig(request, reasoning=reasoning)
        if request.hints:
            user = msgs[1]["content"].split("\n")
            k = user.index(P.HINTS_HEADER)
            notes = user[k:k + 1 + len(request.hints)]
            rest = user[:k] + user[k + 1 + len(request.hints):]
            msgs[1]["content"] = "\n".join(rest + [""] + notes)
        return msgs
    P.build_messages = build_messages
elif variant == "label":
    orig = P.build_messages
    def build_messages(request, *, reasoning):
        msgs = orig(request, reasoning=reasoning)
        if request.hints:
            c = msgs[1]["content"]
            assert c.endswith("\n" + request.text)
            msgs[1]["content"] = c[: -len(request.text)] + "Text to translate:\n" + request.text
        return msgs
    P.build_messages = build_messages
elif variant == "before":
    P.NOTES_AFTER_TEXT = frozenset()
elif variant != "h0":
    sys.exit("unknown variant")
from eval.cli import main
sys.exit(main(sys.argv[2:]))
