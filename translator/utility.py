"""How alike two translations of one source are: the utility of consensus (MBR) choices.

The ``consensus`` reward and the ``mbr`` selection rule both score a candidate by its mean utility against
the other candidates for the same source, as pseudo-references. Which utility matters: sacrebleu's chrF
weighs recall twice as much as precision (beta 2), so as a utility among candidates it favours the longest
candidate, the one that contains most of what the others say. On the 97 slang zh-en dev segments, 8 drafts
plus the direct translation, chrF consensus picked translations 27% longer than direct's and the
references (16.6 against 13.1 and 13.0 words); BLEU, with its precision and brevity penalty, picked ones
11% longer (README, "The utility of consensus").

- ``bleu``: sentence BLEU with effective order (short sentences still score), tokenized as the evaluation
  tokenizes the target language (``zh`` for Chinese, else ``13a``). The search's default
  (``MctsConfig.mbr_utility``): choosing among 8 drafts it beat chrF on BLEU on slang zh-en, PETCI and
  slang en-zh, significantly, and tied it elsewhere; against MQM the two agree with people alike.
- ``chrf``: sentence chrF (character 6-grams, beta 2), the search's utility before; still the bare
  ``consensus`` reward's default, so ``marco-eval rewards`` figures keep their meaning.

Every utility is in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from translator.errors import InputError

UTILITIES = ("bleu", "chrf")

Utility = Callable[[str, str], float]
"""(hypothesis, pseudo-reference) -> similarity in [0, 1]."""


def sentence_chrf(hypothesis: str, reference: str) -> float:
    """sacrebleu's sentence chrF (0-100), one scorer for every caller."""
    return _chrf().sentence_score(hypothesis, [reference]).score


@lru_cache(maxsize=1)
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


@lru_cache(maxsize=2)
def _bleu(tokenize: str):
    from sacrebleu.metrics import BLEU

    return BLEU(tokenize=tokenize, effective_order=True)


def check_utility(name: str) -> str | None:
    """The problem with a utility's name, or None."""
    return None if name in UTILITIES else f"mbr_utility must be one of {', '.join(UTILITIES)}, got {name!r}"


def utility(name: str, tgt_code: str) -> Utility:
    """The utility of that name for translations into ``tgt_code`` (a language code such as "zh")."""
    if problem := check_utility(name):
        raise InputError(problem)
    if name == "chrf":
        return lambda hypothesis, reference: sentence_chrf(hypothesis, reference) / 100.0
    bleu = _bleu("zh" if tgt_code == "zh" else "13a")
    # min: sacrebleu's floating point can give an identical pair 100.00000000000004
    return lambda hypothesis, reference: min(1.0, bleu.sentence_score(hypothesis, [reference]).score / 100.0)


def consensus(candidate: str, others: list[str], similarity: Utility) -> float:
    """The mean utility of a candidate against the others (each counts, duplicates too); alone, 1."""
    return sum(similarity(candidate, o) for o in others) / len(others) if others else 1.0
