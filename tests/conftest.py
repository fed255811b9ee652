"""Shared fixtures: the small packaged model, loaded once per test session.

Mechanics are tested on ``smollm2-135m`` in float32, where batched and unbatched decoding agree to ~1e-5,
so "same computation" checks can use tight tolerances.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def small_model():
    from translator.models import load_model

    return load_model("smollm2-135m", dtype="fp32")


@pytest.fixture()
def small_backend(small_model):
    from translator.backends.transformers_backend import TransformersBackend

    return TransformersBackend(small_model)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA
