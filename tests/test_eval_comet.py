"""COMET plumbing, offline: a small but real COMET checkpoint is built here from the local
all-MiniLM-L6-v2 weights (comet's BERT encoder accepts a local folder), saved in the layout comet saves
(``checkpoints/model.ckpt`` + ``hparams.yaml``), loaded back through ``comet.load_from_checkpoint`` and
scored through ``score()``. Its head is untrained, so only shapes and bookkeeping are asserted, never
values.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.metrics.semsim import minilm_dir
from eval.scoring import score
from translator.comet import load_model

SRCS = ["这双鞋穿起来有一种踩屎感。", "他又把我鸽了。", "我们公司内卷太严重了。"]
HYPS = ["These shoes feel like stepping on poop.", "He stood me up again.", "My company is very competitive."]
REF_A = ["These shoes are so soft and cushy.", "He bailed on me again.", "The rat race at my company is brutal."]
REF_B = ["Walking in these is like walking on clouds.", "He flaked on me again.", "My office is toxically competitive."]


def build_checkpoint(root: Path, class_name: str) -> Path:
    """Save an untrained COMET model of ``class_name`` as comet lays out a downloaded model."""
    import pytorch_lightning
    import torch
    import yaml
    from comet.models import str2model

    torch.manual_seed(0)
    model = str2model[class_name](
        encoder_model="BERT",
        pretrained_model=str(minilm_dir()),
        hidden_sizes=[32],
        load_pretrained_weights=True,
        local_files_only=True,
    )
    hparams = dict(model.hparams)
    (root / "checkpoints").mkdir(parents=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": pytorch_lightning.__version__,
        },
        root / "checkpoints" / "model.ckpt",
    )
    (root / "hparams.yaml").write_text(yaml.safe_dump(hparams), encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def comet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("comet-da"), "regression_metric")


@pytest.fixture(scope="module")
def kiwi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("comet-qe"), "referenceless_regression_metric")


def comet(refs, srcs=SRCS, model: Path | str = "", metrics=("comet",)):
    return score(HYPS, refs, srcs, "en", list(metrics), comet_model=str(model), segments=True)


def test_checkpoint_loads_back_through_comet(comet_dir: Path) -> None:
    from comet import load_from_checkpoint
    from comet.models import RegressionMetric

    model = load_from_checkpoint(str(comet_dir / "checkpoints" / "model.ckpt"), local_files_only=True)
    assert isinstance(model, RegressionMetric) and model.requires_references()


def test_scores_through_our_code_path(comet_dir: Path) -> None:
    first = comet([REF_A], model=comet_dir)["comet"]
    assert first.skipped is None
    assert len(first.segments) == len(HYPS) and all(isinstance(s, float) for s in first.segments)
    assert first.score == pytest.approx(sum(first.segments) / len(first.segments))
    assert f"model:{comet_dir}" in first.signature and "nrefs:1" in first.signature
    hits = load_model.cache_info().hits
    second = comet([REF_A], model=comet_dir)["comet"]
    assert second.segments == first.segments  # deterministic (eval mode, no dropout)
    assert load_model.cache_info().hits == hits + 1  # loaded once per process
    by_file = comet([REF_A], model=comet_dir / "checkpoints" / "model.ckpt")["comet"]
    assert by_file.segments == pytest.approx(first.segments)


def test_several_references_average_per_segment(comet_dir: Path) -> None:
    a = comet([REF_A], model=comet_dir)["comet"].segments
    b = comet([REF_B], model=comet_dir)["comet"].segments
    both = comet([REF_A, REF_B], model=comet_dir)["comet"]
    assert both.segments == pytest.approx([(x + y) / 2 for x, y in zip(a, b)], abs=1e-5)
    assert "nrefs:2" in both.signature


def test_reference_free_qe_model_needs_no_refs(kiwi_dir: Path) -> None:
    report = comet([], model=kiwi_dir, metrics=("comet", "bleu"))
    qe = report["comet"]
    assert qe.skipped is None and len(qe.segments) == len(HYPS) and "nrefs:0(qe)" in qe.signature
    assert "needs at least one reference" in report["bleu"].skipped


def test_missing_sources_skip_comet(comet_dir: Path) -> None:
    report = comet([REF_A], srcs=None, model=comet_dir, metrics=("comet", "chrf"))
    assert report["comet"].skipped == "COMET needs the source sentences (--src)"
    assert report["chrf"].score is not None


def test_unavailable_model_offline_is_skipped_with_reason() -> None:
    report = comet([REF_A], model="Unbabel/wmt22-comet-da", metrics=("bleu", "comet", "chrf"))
    reason = report["comet"].skipped
    assert reason and "could not be fetched" in reason and "HF_HUB_OFFLINE" in reason
    assert report["comet"].score is None and report["comet"].segments is None
    assert report["bleu"].score is not None and report["chrf"].score is not None
    assert f"COMET skipped: {reason}" in report.summary()


def test_bad_local_model_folder_is_skipped_with_reason(tmp_path: Path) -> None:
    reason = comet([REF_A], model=tmp_path)["comet"].skipped
    assert reason == f"{tmp_path} is not a COMET model directory (no checkpoints/model.ckpt)"


def test_the_comet_qe_reward_scores_as_the_metric_does(kiwi_dir: Path, comet_dir: Path) -> None:
    """The search's reward and the evaluator share one loader and one scoring call (``translator.comet``)."""
    from translator.api import make_request
    from translator.errors import InputError
    from translator.rewards import CometQEReward, RolloutPath

    paths = [RolloutPath(make_request(s, "zh", "en"), [], h, h) for s, h in zip(SRCS, HYPS)]
    values = CometQEReward(CometQEReward.Config(comet_model=str(kiwi_dir))).score(paths)
    assert [v.value for v in values] == pytest.approx(comet([], model=kiwi_dir)["comet"].segments)
    assert values[0].details == {"model": str(kiwi_dir)}
    with pytest.raises(InputError, match="needs a reference-free"):
        CometQEReward(CometQEReward.Config(comet_model=str(comet_dir)))
