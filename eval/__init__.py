"""Evaluation: scoring translations (``eval.scoring.score``), significance between systems
(``eval.significance.paired_bootstrap``), test sets (``eval.data.load_testset``) and the ``marco-eval``
command line (``eval.cli``)."""

PROG = "marco-eval"  # here, below both eval.cli and eval.bench, so neither imports the other for it
