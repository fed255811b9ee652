"""Start llama-cpp-python's OpenAI-compatible server on a local GGUF file, for the tests and the speed
benchmark: a real server on 127.0.0.1 that the HTTP backend can be pointed at.

Needs ``pip install 'llama-cpp-python[server]'`` (builds llama.cpp from source). Its server keeps
``logits_all`` on, which ``logprobs=5`` requires there, and serves one request at a time; the native
``llama-server`` binary (parallel slots, last-position log-probs) is faster, but is not built by the pip package.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from translator.errors import ModelLoadError

HOST = "127.0.0.1"


def use_backend_model_params() -> None:
    """Make ``llama_cpp.Llama`` (``create_completion``, the server) load models with the llama.cpp backend's
    parameters (``llama_cpp_backend.model_params``: without them its first multi-token decode dies on this
    machine), so comparisons run the same kernels."""
    import llama_cpp.llama_cpp as low

    from translator.backends.llama_cpp_backend import model_params

    if not getattr(low.llama_model_default_params, "adjusted", False):
        original = low.llama_model_default_params

        def adjusted():
            return model_params(original())

        adjusted.adjusted = True
        low.llama_model_default_params = adjusted


_SERVER = ("import runpy; from eval.llama_server import use_backend_model_params; use_backend_model_params(); "
           "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)")


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class LlamaServer:
    process: subprocess.Popen
    url: str  # the /v1 base, as ``--model openai:URL`` takes it
    alias: str  # the served model name
    log: IO[bytes]  # the server's stderr

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()

    def __enter__(self) -> "LlamaServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_llama_server(gguf: Path, alias: str, *, n_ctx: int = 2048, threads: int = 1,
                       timeout: float = 180.0) -> LlamaServer:
    """Launch the server and wait until it lists its model; its stderr goes to a temporary file (a pipe
    that nobody reads would block a chatty server) and is quoted if it dies during start-up."""
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, "--model", str(gguf), "--host", HOST, "--port", str(port),
         "--model_alias", alias, "--n_ctx", str(n_ctx), "--n_threads", str(threads),
         "--n_threads_batch", str(threads), "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=log)
    server = LlamaServer(process, f"http://{HOST}:{port}/v1", alias, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")[-2000:]
            log.close()
            raise ModelLoadError(f"llama_cpp.server exited with {process.returncode}: {err}")
        try:
            if httpx.get(f"{server.url}/models", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.stop()
    raise ModelLoadError(f"llama_cpp.server not ready on {server.url} within {timeout:.0f}s")
