"""Paired bootstrap resampling of system B against baseline A, as ``sacrebleu --paired-bs`` does it
(Koehn 2004, the Moses ``bootstrap-hypothesis-difference-significance.pl`` recipe).

Written over a metric's summable per-segment statistics rather than through sacrebleu's ``PairedTest``,
so the same test covers COMET and the similarity metric, not only sacrebleu's. For sacrebleu metrics it
reproduces sacrebleu's figures exactly: same RNG (numpy ``default_rng``, default seed 12345), same
resample indices for both systems, same 95% interval (the 2.5% / 97.5% order statistics) and the same
p-value (two-sided, null-centred differences, add-one smoothing). One deliberate difference: systems
that score the same on every resample get p = 1, where sacrebleu reports p = 1/(n+1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from eval.metrics.base import Metric, Refs

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 12345  # sacrebleu's default SACREBLEU_SEED


@dataclass
class Estimate:
    """A system's actual corpus score and the bootstrap distribution around it."""

    score: float
    mean: float
    ci_low: float
    ci_high: float

    @property
    def ci(self) -> float:
        """Half-width of the 95% interval: sacrebleu's ``μ ± ci``."""
        return 0.5 * (self.ci_high - self.ci_low)


@dataclass
class PairedBootstrap:
    metric: str
    signature: str
    baseline: Estimate
    system: Estimate
    p_value: float  # probability of a difference this large if the systems were equally good
    n_samples: int
    seed: int | None

    @property
    def delta(self) -> float:
        return self.system.score - self.baseline.score

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def _estimate(score: float, samples: np.ndarray) -> Estimate:
    ordered = np.sort(samples)
    low_idx = len(ordered) // 40
    return Estimate(score, float(ordered.mean()), float(ordered[low_idx]), float(ordered[len(ordered) - low_idx - 1]))


def paired_bootstrap(
    metric: Metric,
    baseline: Sequence[str],
    system: Sequence[str],
    refs: Refs,
    srcs: Sequence[str] | None = None,
    *,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int | None = DEFAULT_SEED,
) -> PairedBootstrap:
    """Is ``system`` better than ``baseline`` on this metric, beyond what test-set sampling explains?
    ``seed=None`` draws fresh entropy. Raises MetricUnavailable if the metric cannot run here."""
    if len(baseline) != len(system):
        raise ValueError(f"baseline has {len(baseline)} segments, system has {len(system)}")
    stats_a = metric.stats(baseline, refs, srcs)
    stats_b = metric.stats(system, refs, srcs)
    real_a = metric.score_from_stats(stats_a.sum(0))
    real_b = metric.score_from_stats(stats_b.sum(0))

    idxs = np.random.default_rng(seed).choice(len(system), size=(n_samples, len(system)), replace=True)
    # Resamples are summed in float32, as sacrebleu does, so its figures are reproduced to the last digit.
    scores_a = np.array([metric.score_from_stats(s.sum(0)) for s in stats_a.astype(np.float32)[idxs]])
    scores_b = np.array([metric.score_from_stats(s.sum(0)) for s in stats_b.astype(np.float32)[idxs]])

    sample_diffs = np.abs(scores_b - scores_a)
    if not sample_diffs.any():
        # Indistinguishable on every resample (e.g. identical outputs). sacrebleu's formula returns its
        # smallest p-value here, calling identical systems significantly different; there is no evidence.
        p_value = 1.0
    else:
        centred = sample_diffs - sample_diffs.mean()
        p_value = (np.sum(centred > abs(real_b - real_a)).item() + 1) / (n_samples + 1)
    return PairedBootstrap(
        metric=metric.name,
        signature=f"{metric.signature()}|bs:{n_samples}|seed:{str(seed).lower()}",
        baseline=_estimate(real_a, scores_a),
        system=_estimate(real_b, scores_b),
        p_value=p_value,
        n_samples=n_samples,
        seed=seed,
    )
