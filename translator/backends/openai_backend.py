"""HTTP backend: an OpenAI-compatible ``/v1/completions`` server (llama.cpp, llama-cpp-python, vLLM, SGLang).

States are token-id prefixes only; the server's own prefix cache (vLLM automatic prefix caching, SGLang
RadixAttention, llama.cpp slot cache via ``cache_prompt``) does the job the in-process KV tree does.

What is sent and how the answer is read back:

* The chat template is applied client side by the caller (``build_prompt``) with the model's tokenizer;
  ``start`` tokenizes the prompt once. The prefix goes to the server as a list of token ids when the
  server accepts that (llama.cpp server, vLLM, SGLang), so the prefix is identical to the client's and
  the prefix cache applies. A server that refuses an id prompt with a 4xx (llama-cpp-python's server only
  takes strings) gets the decoded prefix text from then on, which the server re-tokenizes: the server
  then sees the canonical tokenization of the text, which can differ from the sampled ids at a few places.
* Chunk boundaries and finish reasons are decided client side, token by token, with the same rules as the
  in-process backend (``translator.actions``: ``Chunking.ends_after``, ``answer_closed``,
  ``thought_ended``, and the ``max_new_tokens`` cut), so a tree means the same on both.
  The request also carries ``stop`` strings (``</Output>``; plus ``</Thought>`` and ``<Output>`` with
  ``stop_at_thought_end``) so the server stops where the client would. Servers strip the stop text from
  ``text`` but still report the tokens that produced it in ``logprobs`` (llama.cpp, llama-cpp-python,
  vLLM), so the tokens, and therefore the chunk text, keep the closing tag exactly as the in-process
  backend does. Should a server drop those tokens, the continuation ends ``"eos"`` without the tag (the
  only difference from the in-process backend; the answer parser accepts an unclosed Output).
  The end-of-sequence token is never part of the tokens (as in-process).
  The client rules are a little broader than the stop strings (case and whitespace inside the tags): a
  continuation the client closes before the server did is cut there and the rest is dropped.
* Token ids of the generated tokens: where the server returns them (vLLM with
  ``return_tokens_as_token_ids``: ``"token_id:123"``) they are used as they are. Otherwise each
  returned token string is mapped back to the one vocabulary entry that decodes to it; a run of tokens
  that cannot be mapped (an incomplete UTF-8 character decodes to nothing; two ids with the same text) is
  re-tokenized from its text (located with ``text_offset``); if that gives a different number of tokens,
  the server's scores are aligned position by position.
* Top-5 log-probs come from ``logprobs.top_logprobs``; ``top_ids`` are mapped the same way (-1 when a
  candidate's text is not one vocabulary entry). A server that keys candidates by text can merge two
  candidates with the same text; the denominator of the confidence then has fewer than five terms.
* ``logprobs_source``: ``"server:llama.cpp pre-sampling probabilities"`` for the native llama.cpp
  server (it reports the probabilities before its sampler chain), ``"server:raw"`` otherwise (vLLM V1 raw
  log-probs by default; llama-cpp-python reports the log-softmax of the raw logits).
* Sampling: ``temperature`` (0 = greedy), ``top_p``, ``top_k`` and ``min_p`` (llama.cpp/vLLM extensions,
  0 = off; the server applies min-p by its own rule: llama.cpp's default chain before the temperature, as the
  in-process backends do), a per-request ``seed`` (reduced to 31 bits), and the server-side
  penalties turned off so the distribution sampled is the plain one.
* Concurrency: the requests of one ``generate`` call (siblings, rollouts) go out together on a bounded
  thread pool (``concurrency``). Connection errors and 5xx answers are retried ``retries`` times with
  exponential backoff; a request that takes longer than ``timeout`` seconds is not retried (a generation
  that timed out once would time out again) and raises ``TranslatorError``.
* ``stats``: ``forward_calls`` counts HTTP requests; ``forwarded_tokens`` counts prefix + generated
  tokens of every request (an upper bound: the server's prefix cache is invisible from here);
  ``recomputed_tokens`` counts the prefix tokens re-sent, which a prefix-caching server does not recompute.

Tokenizer: ``tokenizer`` is a tokenizer object or a model spec (registry name, GGUF path, local directory or
Hugging Face id). ``open_backend("openai:URL", served_model=NAME)`` loads the tokenizer of ``NAME`` taken as
such a spec (start llama-cpp-python with ``--model_alias smollm2-135m`` so the served name is a registry
name), or of ``MARCO_TOKENIZER`` when that variable is set. Only the tokenizer is loaded, never the weights.
API key: ``MARCO_API_KEY``, else ``OPENAI_API_KEY`` (environment only; never a command-line argument).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from translator.actions import OUTPUT_CLOSE_TAG, OUTPUT_OPEN_TAG, THOUGHT_CLOSE_TAG
from translator.backends.base import Backend, BackendStats, Continuation, GenRequest, PrefixState
from translator.backends.cutter import TokenCutter
from translator.errors import ModelLoadError, TranslatorError
from translator.result import TOP_K, TokenScore
from translator.tokenizer import fix_tokenizer, load_tokenizer

logger = logging.getLogger(__name__)

_OUTPUT_STOP = OUTPUT_CLOSE_TAG
_THOUGHT_STOPS = (THOUGHT_CLOSE_TAG, OUTPUT_OPEN_TAG)


class TokState(PrefixState):
    """A token prefix only (no KV: the server keeps that)."""

    __slots__ = ()


# ----- backend -------------------------------------------------------------------------------------------


class OpenAIBackend(Backend):
    state_class = TokState

    def __init__(self, base_url: str, served_model: str | None, tokenizer: Any, *, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 60, retries: int = 3, stop_token_ids: list[int] | None = None,
                 extra_body: dict[str, Any] | None = None, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        if isinstance(tokenizer, str) or tokenizer is None:
            spec = tokenizer or served_model
            if not spec:
                raise ModelLoadError("an OpenAI-compatible backend needs a tokenizer: give the served model name "
                                     "(a registry name, GGUF path or HF id) or a tokenizer spec")
            tokenizer, stops = load_tokenizer(spec)
            stop_token_ids = stop_token_ids or stops
        elif stop_token_ids is None:
            stop_token_ids = fix_tokenizer(tokenizer)
        self._tokenizer = tokenizer
        self.stop_ids = set(stop_token_ids)
        self.served_model = served_model
        self.name = f"{served_model or 'default'} @ {self.base_url}"
        if api_key is None:
            api_key = os.environ.get("MARCO_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        self._stats = BackendStats()
        self._lock = threading.Lock()
        self._prompt_ids: bool | None = None  # does the server take a token-id prompt? None: not tried yet
        self._flavor: str | None = None
        self.logprobs_source = "server:raw"
        self._text_to_id: dict[str, int] | None = None

    # ----- plumbing ------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        return self._tokenizer


    def close(self) -> None:
        self._client.close()

    def _models(self) -> list[dict[str, Any]]:
        """The server's ``/models`` list; raises httpx.HTTPError or ValueError when there is none."""
        response = self._client.get(f"{self.base_url}/models", timeout=min(self.timeout, 10.0))
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ValueError("no model list")
        return [m for m in data["data"] if isinstance(m, dict)]

    def check(self) -> None:
        """Fail at start-up rather than at the first segment: the server answers and serves the model named."""
        url = f"{self.base_url}/models"
        try:
            models = self._models()
        except httpx.HTTPError as exc:
            raise ModelLoadError(f"cannot reach an OpenAI-compatible server at {url} "
                                 f"({type(exc).__name__}: {exc}); is it running?") from None
        except ValueError:
            raise ModelLoadError(f"{url} did not answer with a model list: is {self.base_url} the /v1 base "
                                 "of an OpenAI-compatible server?") from None
        served = [str(m.get("id")) for m in models]
        if self.served_model and served and self.served_model not in served:
            raise ModelLoadError(f"the server at {self.base_url} serves {', '.join(served)}, not "
                                 f"{self.served_model!r}: pass one of those as --served-model")

    def _detect(self) -> None:
        """Which server this is (``/models``' ``owned_by``), for ``logprobs_source``; failures are not errors."""
        if self._flavor is not None:
            return
        self._flavor = "unknown"
        try:
            owners = {str(m.get("owned_by", "")) for m in self._models()}
        except (httpx.HTTPError, ValueError):
            return
        if "llamacpp" in owners:
            self._flavor = "llama.cpp"
            self.logprobs_source = "server:llama.cpp pre-sampling probabilities"
        elif "vllm" in owners:
            self._flavor = "vllm"
        elif "me" in owners:
            self._flavor = "llama-cpp-python"

    def _post(self, body: dict[str, Any], retries: int | None = None) -> dict[str, Any]:
        url = f"{self.base_url}/completions"
        last: str = ""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1) * (1 + 0.1 * random.random()))
            try:
                response = self._client.post(url, json=body)
            except httpx.TimeoutException as exc:
                raise TranslatorError(f"the server at {url} did not answer within {self.timeout:g}s "
                                      f"({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code >= 400:
                raise _ClientError(response.status_code, response.text[:300])
            try:
                return response.json()
            except ValueError:
                raise TranslatorError(f"the server at {url} answered with something that is not JSON") from None
        raise TranslatorError(f"the server at {url} is unreachable or failing after {retries + 1} "
                              f"attempts ({last})")

    # ----- states --------------------------------------------------------------------------------------
    def truncate(self, state: TokState, keep_tokens: int) -> TokState:
        return TokState(state.parent, state.tokens[:keep_tokens])

    def release(self, state: Any, *, keep_kv: bool = False) -> None:
        """Nothing to free here: the server manages its own cache."""

    def score_forced(self, state: TokState, token_ids: list[int]) -> list[TokenScore]:
        """Not offered: ``/v1/completions`` servers disagree on echoing prompt log-probs (vLLM's
        ``prompt_logprobs``, OpenAI's ``echo``), so teacher-forced rewards need an in-process backend."""
        raise TranslatorError("teacher-forced scoring (the forced-confidence, logprob and boostedprob rewards) "
                              "is not available through an OpenAI-compatible server; use an in-process backend")

    # ----- generation ----------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Continuation]:
        if not requests:
            return []
        self._detect()
        if self._prompt_ids is None:  # find out on one request before sending the rest in parallel
            first = [self._generate_one(requests[0])]
            rest = requests[1:]
        else:
            first, rest = [], requests
        if len(rest) <= 1 or self.concurrency == 1:
            return first + [self._generate_one(r) for r in rest]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(rest))) as pool:
            return first + list(pool.map(self._generate_one, rest))

    def _body(self, req: GenRequest, prefix: list[int], as_ids: bool) -> dict[str, Any]:
        stop = [_OUTPUT_STOP] + (list(_THOUGHT_STOPS) if req.stop_at_thought_end else [])
        s = req.sampling
        body: dict[str, Any] = {
            "prompt": prefix if as_ids else self.decode(prefix),
            "max_tokens": int(req.max_new_tokens),
            "temperature": 0.0 if s.greedy else float(s.temperature),
            "top_p": 1.0 if s.greedy else float(s.top_p),
            "seed": int(req.seed) & 0x7FFFFFFF,
            "logprobs": TOP_K,
            "stop": stop,
            "stream": False,
            # Extensions (ignored by servers that do not know them): plain distribution, ids back, caching.
            "top_k": int(s.top_k) if not s.greedy else 0,
            "min_p": 0.0 if s.greedy else float(s.min_p),
            "repeat_penalty": 1.0,
            "repetition_penalty": 1.0,
            "cache_prompt": True,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
        }
        if self.served_model:
            body["model"] = self.served_model
        body.update(self.extra_body)
        return body

    def _generate_one(self, req: GenRequest) -> Continuation:
        prefix = req.state.all_tokens()
        data = None
        if self._prompt_ids is None:
            # Probe once, without retries: a server that does not take token ids answers 4xx, or 500 with
            # a validation error (llama-cpp-python); it then gets the prefix text from now on.
            try:
                data = self._post(self._body(req, prefix, True), retries=0)
                self._prompt_ids = True
            except (_ClientError, TranslatorError) as exc:
                if "prompt" not in str(exc).lower():
                    data = None  # not about the prompt (busy, transient): the normal retries below decide
                else:
                    logger.info("the server refuses token-id prompts (%s); sending prompt text instead", exc)
                    self._prompt_ids = False
        if data is None:
            try:
                data = self._post(self._body(req, prefix, self._prompt_ids is not False))
            except _ClientError as exc:
                raise TranslatorError(f"the server at {self.base_url}/completions refused the request "
                                      f"(HTTP {exc.status}): {exc.text}") from None
        scores, server_finish = self._read_choice(data)
        cont = self._cut(req, scores, server_finish)
        with self._lock:
            self._stats.forward_calls += 1
            self._stats.forwarded_tokens += len(prefix) + len(scores)
            self._stats.recomputed_tokens += len(prefix)
            self._stats.generated_tokens += len(cont.tokens)
        return cont

    def _read_choice(self, data: dict[str, Any]) -> tuple[list[TokenScore], str | None]:
        url = f"{self.base_url}/completions"
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise TranslatorError(f"the server at {url} returned no completion choice") from None
        lp = choice.get("logprobs")
        if not lp or lp.get("token_logprobs") is None or lp.get("top_logprobs") is None or "tokens" not in lp:
            raise TranslatorError(
                f"the server at {url} returned no log-probs (logprobs={lp!r:.80}); the confidence reward needs "
                "per-token top-5 log-probs: use a server that supports `logprobs` on /v1/completions "
                "(llama.cpp server, llama-cpp-python with logits_all, vLLM, SGLang)")
        texts: list[str] = list(lp["tokens"])
        token_lps: list[float | None] = list(lp["token_logprobs"])
        tops: list[dict[str, float] | None] = list(lp["top_logprobs"])
        offsets: list[int] | None = lp.get("text_offset")
        scores = []
        for tid, src in self._token_ids(texts, offsets, choice.get("text") or ""):
            logprob, top = token_lps[src], tops[src]
            if logprob is None or top is None:
                raise TranslatorError(f"the server at {url} returned a token without log-probs")
            best = sorted(top.items(), key=lambda kv: -kv[1])[:TOP_K]
            scores.append(TokenScore(tid, self._tokenizer.decode([tid]), float(logprob),
                                     [self._id_of(k) for k, _ in best], [float(v) for _, v in best]))
        return scores, choice.get("finish_reason")

    # ----- token ids -----------------------------------------------------------------------------------
    def _vocab_text(self) -> dict[str, int]:
        """Decoded text -> id, for the texts exactly one vocabulary entry decodes to."""
        if self._text_to_id is None:
            seen: dict[str, int] = {}
            dup: set[str] = set()
            for tid in range(len(self._tokenizer)):
                text = self._tokenizer.decode([tid], clean_up_tokenization_spaces=False)
                if not text or "\ufffd" in text:
                    continue
                if text in seen:
                    dup.add(text)
                seen[text] = tid
            self._text_to_id = {t: i for t, i in seen.items() if t not in dup}
        return self._text_to_id

    def _id_of(self, text: str) -> int:
        if text.startswith("token_id:"):
            try:
                return int(text[9:])
            except ValueError:
                return -1
        return self._vocab_text().get(text, -1)

    def _token_ids(self, texts: list[str], offsets: list[int] | None, completion: str) -> list[tuple[int, int]]:
        """(token id, index of the server token whose scores it takes) for every generated token."""
        ids = [self._id_of(text) for text in texts]
        # A token followed by one that decodes to nothing began an incomplete UTF-8 character; its text as
        # the server reports it (the complete bytes only) may be another vocabulary entry: re-tokenize both.
        ids = [-1 if k + 1 < len(texts) and texts[k + 1] == "" else tid for k, tid in enumerate(ids)]
        if all(i >= 0 for i in ids):
            return [(tid, k) for k, tid in enumerate(ids)]
        # Runs of unmapped tokens: re-tokenize their text (located by text_offset). The server's ``text`` is
        # cut at the stop string; the tokens after it are mapped ones (the tags are plain ASCII).
        if offsets:
            full = completion + "".join(texts[_covered(offsets, completion):])
            base = offsets[0]
        out: list[tuple[int, int]] = []
        i = 0
        while i < len(ids):
            if ids[i] >= 0:
                out.append((ids[i], i))
                i += 1
                continue
            j = i
            while j < len(ids) and ids[j] < 0:
                j += 1
            if offsets:
                piece = full[offsets[i] - base : (offsets[j] - base) if j < len(offsets) else len(full)]
            else:
                piece = "".join(texts[i:j])
            new = self._tokenizer.encode(piece, add_special_tokens=False) if piece else []
            # Scores position by position; a longer re-tokenization repeats the run's last score.
            out.extend((tid, i + min(k, j - i - 1)) for k, tid in enumerate(new))
            i = j
        return out

    # ----- cutting, with the in-process rules ----------------------------------------------------------
    def _cut(self, req: GenRequest, scores: list[TokenScore], server_finish: str | None) -> Continuation:
        cut = TokenCutter(req, self.stop_ids, self.decode)
        if not any(cut.feed_score(score) for score in scores):
            # The server stopped first: at the end-of-sequence token (never reported) or at the budget.
            cut.end("length" if server_finish == "length" else "eos")
        states, parent = [], req.state
        for a, b in cut.spans():
            parent = TokState(parent, [t.token_id for t in cut.tokens[a:b]])
            states.append(parent)
        return cut.continuation(states)


def _covered(offsets: list[int] | None, completion: str) -> int:
    """Index of the first token that starts at or past the end of the (stop-stripped) completion text."""
    if not offsets:
        return 0
    base = offsets[0]
    for k, off in enumerate(offsets):
        if off - base >= len(completion):
            return k
    return len(offsets)


class _ClientError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text}")
        self.status, self.text = status, text
