"""Evaluation: scoring translations (``eval.scoring.score``), significance between systems
(``eval.significance.paired_bootstrap``), test sets (``eval.data.load_testset``) and the ``marco-eval``
command line (``eval.cli``)."""
