"""In-process llama.cpp backend: a GGUF model, the whole search tree in one multi-sequence KV cache.

One llama.cpp context holds every path of the tree in one unified KV cache (``kv_unified``: a cell holds
one token of a prefix and belongs to every sequence that shares that prefix). A state is a token prefix
and the sequence whose first ``kv_len`` positions hold it. A child forks its parent's prefix with
``llama_memory_seq_cp`` (cells are shared, not copied: no token is run twice), a rollout continues its
child's sequence, and ``llama_memory_seq_rm`` frees a sequence once no state refers to it. All the rows of
a ``generate`` call (siblings, rollouts, segments) go through ``llama_decode`` together, one token per row
per step, and each row's logits are read with ``llama_get_logits_ith``: the log-probs and top-5 of a token
come from the very step that produced it (``logits_all`` is never needed).

The tokenizer is the Hugging Face one built from the same GGUF (``translator.tokenizer``), as for the other
backends, so prompts, ids and the rules that cut actions (``TokenCutter``) are the same.

Limits of llama.cpp, handled here:

* at most ``MAX_SEQUENCES`` (256) sequence ids per context: ids are recycled as soon as the states that
  use them are released or garbage-collected;
* the KV capacity (``n_ctx`` cells, shared by the whole tree) is fixed when the context is made: a row
  that would overflow it ends with finish ``"length"`` and a ``reason`` that says so, never an exception;
* logits depend a little on how many rows share a step (other kernels), like batched bf16 in transformers;
  sampling uses a per-request seeded generator, so the tokens drawn do not depend on the batch otherwise.

Threads: ``threads`` (default: the physical cores this process may use, ``translator.cpu_cores``). When
other busy jobs share the cores, fewer are faster: on this project's 2-core machine, 2 threads made both
engines 5-10x slower while another job ran, and 1.4-1.7x faster than 1 thread when nothing else did.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from translator.backends.base import Backend, BackendStats, Continuation, GenRequest, PrefixState, Sampling
from translator.backends.cutter import TokenCutter
from translator.backends.head_store import HeadStore, identity_of
from translator.cpu_cores import physical_cores
from translator.script_guard import without
from translator.errors import ModelLoadError, TranslatorError
from translator.result import TOP_K, TokenScore

logger = logging.getLogger(__name__)

MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ
DEFAULT_N_CTX = 8192  # KV cells for the whole tree: 16 rollouts of 768-token paths fit with room to spare
_N_BATCH = 512  # tokens per llama_decode call when prefilling
_FEW = 8  # up to this many best ids are found by repeated argmax (see _best)


def model_params(params=None):
    """llama.cpp's model parameters as used here (``params``: defaults to adjust): weights mmapped from the
    GGUF, no extra buffer types.

    Extra buffer types repack the weights for special kernels; on this machine (a VM whose CPU advertises
    AMX tiles that the guest cannot use) the AMX one dies with SIGILL in the first multi-token decode, in
    ``create_completion`` as well, so they are off. The benchmark's ``create_completion`` baseline uses
    these same parameters."""
    import llama_cpp

    params = params if params is not None else llama_cpp.llama_model_default_params()
    params.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
    params.use_extra_bufts = False
    return params


class _Seq:
    """One llama.cpp sequence id; positions [0, length) of it are in the KV cache."""

    __slots__ = ("pool", "id", "length")

    def __init__(self, pool: "_SeqPool", seq_id: int):
        self.pool, self.id, self.length = pool, seq_id, 0

    def __del__(self):
        # No llama.cpp call here (a finalizer can run anywhere): the id is freed at the next safe point.
        self.pool.dead.append(self.id)


class _SeqPool:
    """Sequence ids: handed out, and taken back (with their cells) once no state holds them."""

    def __init__(self, memory, size: int):
        import llama_cpp

        self._rm = llama_cpp.llama_memory_seq_rm
        self.memory = memory
        self.size = size
        self.free = list(range(size - 1, -1, -1))
        self.dead: list[int] = []

    def collect(self) -> None:
        while self.dead and self.memory is not None:
            seq_id = self.dead.pop()
            self._rm(self.memory, seq_id, -1, -1)
            self.free.append(seq_id)

    @property
    def in_use(self) -> int:
        """Ids handed out and not yet taken back (call ``collect`` first for an up-to-date count)."""
        return self.size - len(self.free)

    def take(self) -> _Seq | None:
        self.collect()
        if not self.free:
            import gc

            gc.collect()  # states in reference cycles may still hold ids
            self.collect()
        return _Seq(self, self.free.pop()) if self.free else None


class LlamaState(PrefixState):
    """A token prefix whose first ``kv_len`` tokens the llama.cpp sequence ``seq`` holds."""

    __slots__ = ("seq", "kv_len", "computed", "next_logprobs")

    def __init__(self, parent: "LlamaState | None", tokens: list[int]):
        super().__init__(parent, tokens)
        self.seq: _Seq | None = None
        self.kv_len = 0  # prefix tokens (from position 0) that ``seq`` holds; never more than ``end``
        self.computed = 0  # own tokens whose KV was computed at some time (to count recomputation)
        self.next_logprobs: np.ndarray | None = None  # distribution of the token after this prefix


@dataclass
class _Row:
    request: GenRequest
    cut: TokenCutter
    seq: _Seq | None = None
    logprobs: np.ndarray | None = None  # distribution of the row's next token
    rng: np.random.Generator | None = None
    fed: int = 0  # generated tokens run through the model
    chunk_logprobs: dict[int, np.ndarray] = field(default_factory=dict)  # chunk index -> next distribution


@dataclass
class _Feed:
    """Tokens to run into a sequence from position ``pos`` on; the last one's logits are wanted."""

    seq: _Seq
    tokens: list[int]
    pos: int
    logprobs: np.ndarray | None = None
    all_logprobs: list[np.ndarray] | None = None  # every position's, for teacher forcing


class LlamaCppBackend(Backend):
    logprobs_source = "raw"
    masks_tokens = True
    state_class = LlamaState

    def __init__(self, gguf: str | Path, tokenizer, stop_token_ids: list[int], *, name: str | None = None,
                 n_ctx: int = DEFAULT_N_CTX, threads: int | None = None, head_store: Path | None = None):
        """``head_store``: a folder where prompt heads' cells are kept between processes
        (``translator.backends.head_store``); None computes every head (and counts it in the stats)."""
        import llama_cpp

        if n_ctx < 64:
            raise ModelLoadError(f"n_ctx must be at least 64 (got {n_ctx})")
        threads = threads or physical_cores()
        if threads < 1:
            raise ModelLoadError(f"threads must be at least 1 (got {threads})")
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's load chatter
        self._lc = llama_cpp
        self._tokenizer = tokenizer
        self.stop_ids = set(stop_token_ids)
        self.name = name or Path(gguf).stem
        self.gguf = Path(gguf)
        self.n_ctx = n_ctx
        self.threads = threads
        self._stats = BackendStats()
        llama_cpp.llama_backend_init()
        mparams = model_params()
        self._model = llama_cpp.llama_model_load_from_file(str(self.gguf).encode(), mparams)
        if not self._model:
            raise ModelLoadError(f"llama.cpp could not load {self.gguf}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        self._n_batch = min(_N_BATCH, n_ctx)  # llama.cpp asserts when a batch could outgrow the context
        cparams.n_batch = self._n_batch
        cparams.n_ubatch = self._n_batch
        cparams.n_seq_max = min(MAX_SEQUENCES, self._n_batch)  # llama.cpp reserves an output per sequence
        cparams.kv_unified = True
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise ModelLoadError(f"llama.cpp could not make a context of {n_ctx} tokens for {self.gguf}")
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self._model))
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._seqs = _SeqPool(self._memory, min(MAX_SEQUENCES, llama_cpp.llama_n_seq_max(self._ctx)))
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._fresh_heads: set[tuple[int, ...]] = set()  # the heads computed into an empty cache (_settle)
        self.head_store = HeadStore(head_store, identity_of(self.gguf, cparams)) if head_store else None
        self._stats.peak_cache_bytes = self._kv_bytes()

    def close(self) -> None:
        """Free the context and the model (also done when the backend is garbage-collected)."""
        lc = self._lc
        if getattr(self, "_ctx", None):
            self._seqs.memory = None
            lc.llama_batch_free(self._batch)
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            self._ctx = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _kv_bytes(self) -> int:
        """The KV buffer llama.cpp allocated for ``n_ctx`` cells (f16 K and V)."""
        lc = self._lc
        n_layer = lc.llama_model_n_layer(self._model)
        n_head, n_head_kv = lc.llama_model_n_head(self._model), lc.llama_model_n_head_kv(self._model)
        head_dim = lc.llama_model_n_embd(self._model) // max(1, n_head)
        return self.n_ctx * n_layer * n_head_kv * head_dim * 2 * 2

    @property
    def tokenizer(self):
        return self._tokenizer


    @property
    def free_sequences(self) -> int:
        """Sequence ids not in use (after freeing those no state holds any more)."""
        self._seqs.collect()
        return len(self._seqs.free)

    # ----- states -------------------------------------------------------------------------------------
    def truncate(self, state: LlamaState, keep_tokens: int) -> LlamaState:
        cut = LlamaState(state.parent, state.tokens[:keep_tokens])
        if state.seq is not None:
            cut.seq, cut.kv_len = state.seq, min(state.kv_len, cut.end)
        cut.computed = min(state.computed, keep_tokens)
        return cut

    def release(self, state: LlamaState, *, keep_kv: bool = False) -> None:
        state.next_logprobs = None
        if not keep_kv:
            state.seq, state.kv_len = None, 0
            self._seqs.collect()

    # ----- model calls ---------------------------------------------------------------------------------
    def _decode(self, items: list[tuple[int, int, int, bool]]) -> int:
        """One ``llama_decode`` of (token, position, sequence id, want logits) items; its return code."""
        b = self._batch
        for i, (token, pos, seq_id, logits) in enumerate(items):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq_id
            b.logits[i] = logits
        b.n_tokens = len(items)
        code = self._lc.llama_decode(self._ctx, b)
        if code == 0:
            self._stats.forward_calls += 1
            self._stats.forwarded_tokens += len(items)
        elif code not in (1,):
            raise TranslatorError(f"llama.cpp failed to decode a batch of {len(items)} tokens (code {code})")
        return code

    def _logprobs(self, i: int) -> np.ndarray:
        """log_softmax of the raw logits of the last decode's batch item ``i`` (a new array)."""
        ptr = self._lc.llama_get_logits_ith(self._ctx, i)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        shifted = logits - logits.max()
        return shifted - np.log(np.exp(shifted).sum())

    def _run(self, feeds: list[_Feed]) -> bool:
        """Run every feed's tokens (several sequences per call, ``_N_BATCH`` tokens at most per call);
        False when the KV cache had no room (what was run so far stays in the cache)."""
        queue = [(f, k) for f in feeds for k in range(len(f.tokens))]
        for at in range(0, len(queue), self._n_batch):
            part = queue[at : at + self._n_batch]
            wanted = [f.all_logprobs is not None or k == len(f.tokens) - 1 for f, k in part]
            if any(f.pos + k >= self.n_ctx for f, k in part):
                return False
            if self._decode([(f.tokens[k], f.pos + k, f.seq.id, w) for (f, k), w in zip(part, wanted)]) == 1:
                return False
            for i, ((f, k), w) in enumerate(zip(part, wanted)):
                f.seq.length = f.pos + k + 1
                if w:
                    lp = self._logprobs(i)
                    if f.all_logprobs is not None:
                        f.all_logprobs.append(lp)
                    if k == len(f.tokens) - 1:
                        f.logprobs = lp
        return True

    def _fork(self, seq: _Seq | None, length: int) -> _Seq | None:
        """A new sequence holding the first ``length`` positions of ``seq`` (shared cells, no compute)."""
        new = self._seqs.take()
        if new is not None and seq is not None and length:
            self._lc.llama_memory_seq_cp(self._memory, seq.id, new.id, 0, length)
            new.length = length
        return new

    def _plan(self, state: LlamaState, claimed: set[int]) -> tuple[_Feed | None, str]:
        """How to make ``state``'s prefix complete in a sequence: the feed to run (None when it already is,
        with its distribution kept), or a reason why there is no room."""
        path = state.path()
        holder = next((s for s in reversed(path) if s.seq is not None), None)
        seq, kv_len = (holder.seq, holder.kv_len) if holder is not None else (None, 0)
        if kv_len == state.end and state.next_logprobs is not None:
            return None, ""
        if kv_len == state.end:  # complete KV but no kept distribution: run the last token again
            kv_len -= 1
        if state.end > self.n_ctx:
            return None, f"the prompt and path ({state.end} tokens) do not fit the context (n_ctx={self.n_ctx})"
        if seq is not None and seq.length == kv_len and seq.id not in claimed and id(holder) not in self._head_ids():
            target = seq  # nothing in the sequence beyond this prefix: carry on in it (never in a shared head's)
        else:
            target = self._fork(seq, kv_len)
            if target is None:
                return None, f"all {MAX_SEQUENCES} llama.cpp sequences are in use"
        claimed.add(target.id)
        tokens = state.all_tokens()[kv_len:]
        pos = kv_len
        for s in path:  # count tokens run again that had been computed before
            lo, hi = max(s.start, kv_len), s.end
            if hi > lo:
                self._stats.recomputed_tokens += max(0, min(s.computed, len(s.tokens)) - (lo - s.start))
        return _Feed(target, tokens, pos), ""

    def _head_ids(self) -> set[int]:
        """``id`` of each shared prompt head (see ``Backend.start``) the backend keeps."""
        return {id(head) for head in self.__dict__.get("_heads", {}).values()}

    def _settle(self, states: list[LlamaState]) -> None:
        """Make a new batch of prompts start from the same cache layout whatever ran before it.

        llama.cpp's results depend a little on where in the cache a batch's cells lie (the attention runs
        over the cells up to the highest one in use, padded), so a segment decoded after another strategy
        or language pair, whose prompt head still held cells, could come out differently from the same
        segment in a fresh process (measured: 36-38 of 97 greedy slang translations). So when the states
        hold no cells of their own (fresh prompts) and nothing but kept prompt heads holds any, and those
        heads are not exactly the ones these states descend from, computed into an empty cache, the cache
        is emptied and the heads the states need are computed again (one head's prefill, only when the
        kind of prompt changes; a run of one kind keeps its head). Such a head starts over as a state never
        computed, so ``recomputed_tokens`` (what a search re-encodes) does not count it; ``forwarded_tokens``
        does."""
        heads = self.__dict__.get("_heads", {})  # key (token ids) -> head state
        key_of = {id(head): key for key, head in heads.items()}
        if any(s.seq is not None for st in states for s in st.path() if id(s) not in key_of):
            return  # the states continue cells of their own (a search, a forced answer): nothing to settle
        needed = {key_of[id(s)] for st in states for s in st.path()[:-1] if id(s) in key_of}
        resident = {key for key, head in heads.items() if head.seq is not None}
        self._seqs.collect()
        if self._seqs.in_use > len(resident):
            import gc

            gc.collect()  # a finished search tree (reference cycles) may still hold sequences
            self._seqs.collect()
            if self._seqs.in_use > len(resident):
                return  # other states still hold cells: leave the layout alone
        if resident == needed == self._fresh_heads:
            return
        for head in heads.values():
            head.seq, head.kv_len, head.computed, head.next_logprobs = None, 0, 0, None
        self._seqs.collect()
        if not self._seqs.in_use:
            self._lc.llama_memory_clear(self._memory, False)
            self._fresh_heads = needed

    def _prepare(self, states: list[LlamaState]) -> dict[int, str]:
        """Make each state's prefix complete in the KV cache with its next-token distribution, all
        prefills in shared decode calls; returns, by ``id(state)``, why a state could not be (no room).
        A shared prompt head the states descend from is prepared first, on its own, so they all fork it
        rather than each running it."""
        heads = self._head_ids()
        unready = {id(s): s for st in states for s in st.path()[:-1]
                   if id(s) in heads and (s.seq is None or s.kv_len < s.end)}
        self._seqs.collect()
        alone = self.head_store is not None and len(unready) == 1 and not self._seqs.in_use
        if alone and self._restore_head(next(iter(unready.values()))):
            unready = {}
        failed: dict[int, str] = self._prepare(list(unready.values())) if unready else {}
        for head in unready.values():
            head.next_logprobs = None  # only its children's distributions are wanted
            if alone and id(head) not in failed:  # computed alone into an empty cache: as a restored one lies
                self.head_store.save(self._ctx, head.seq.id, head.tokens)
        self._seqs.collect()
        claimed: set[int] = set()
        plans: list[tuple[LlamaState, _Feed]] = []
        for state in states:
            feed, why = self._plan(state, claimed)
            if why:
                failed[id(state)] = why
            elif feed is not None:
                plans.append((state, feed))
        if plans and not self._run([f for _, f in plans]):
            for state, feed in plans:
                if feed.logprobs is None:
                    failed[id(state)] = f"the KV cache is full (n_ctx={self.n_ctx} cells); raise --n-ctx"
        for state, feed in plans:
            if id(state) in failed:
                continue
            for s in state.path():
                s.computed = len(s.tokens)
                if s.seq is None or s.kv_len < s.end:
                    s.seq, s.kv_len = feed.seq, s.end
            state.next_logprobs = feed.logprobs
        return failed

    def _restore_head(self, head: LlamaState) -> bool:
        """Read a prompt head's cells from the head store into a new sequence (the cache is empty, so they
        lie where computing them would put them); False when the store has none for it."""
        seq = self._seqs.take()
        if seq is None or not self.head_store.load(self._ctx, seq.id, head.tokens):
            return False  # the sequence (and whatever a refused load left in it) is freed with ``seq``
        seq.length = head.end
        head.seq, head.kv_len, head.computed, head.next_logprobs = seq, head.end, len(head.tokens), None
        self._stats.restored_tokens += len(head.tokens)
        return True

    # ----- generation ----------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Continuation]:
        unique = list({id(r.state): r.state for r in requests}.values())
        self._settle(unique)
        failed = self._prepare(unique)
        rows = [_Row(r, TokenCutter(r, self.stop_ids, self.decode)) for r in requests]
        for row in rows:
            state = row.request.state
            if id(state) in failed:
                row.cut.end("length", failed[id(state)])
                continue
            # Every row gets its own sequence (a fork shares the prefix's cells): tokens appended to the
            # state's own sequence would stay in the cache for as long as the state does, after the row's
            # states are released.
            row.seq = self._fork(state.seq, state.end)
            if row.seq is None:
                row.cut.end("length", f"all {MAX_SEQUENCES} llama.cpp sequences are in use")
                continue
            row.logprobs = state.next_logprobs
            if not row.request.sampling.greedy:
                row.rng = np.random.default_rng(row.request.seed)
        active = [row for row in rows if row.cut.finish is None]
        while active:
            chosen = []
            for row in active:
                lp = row.logprobs
                top = _best(lp, TOP_K)
                token = _sample(without(lp, row.cut.banned()), row.request.sampling, row.rng)
                row.cut.feed(token, float(lp[token]), [int(t) for t in top], [float(lp[t]) for t in top])
                chosen.append(token)
            keep = [(row, tok) for row, tok in zip(active, chosen) if row.cut.finish is None]
            for row, _ in keep:
                if row.seq.length + 1 >= self.n_ctx:  # the token just drawn took the last position
                    row.cut.end("length", f"the path reached the context size (n_ctx={self.n_ctx})")
            keep = [(row, tok) for row, tok in keep if row.cut.finish is None]
            if not keep:
                break
            code = self._decode([(tok, row.seq.length, row.seq.id, True) for row, tok in keep])
            if code == 1:
                for row, _ in keep:
                    row.cut.end("length", f"the KV cache is full (n_ctx={self.n_ctx} cells in use by the "
                                          "tree); raise --n-ctx")
                break
            for j, (row, _) in enumerate(keep):
                row.seq.length += 1
                row.fed += 1
                row.logprobs = self._logprobs(j)
                if row.cut.boundary:
                    row.chunk_logprobs[len(row.cut.starts) - 2] = row.logprobs
            active = [row for row, _ in keep]
        out = []
        for row in rows:
            if row.cut.reason:
                logger.warning("a path ended early: %s", row.cut.reason)
            out.append(row.cut.continuation(self._chunk_states(row)))
            self._stats.generated_tokens += len(row.cut.tokens)
        return out

    def _chunk_states(self, row: _Row) -> list[LlamaState]:
        """One state per action of a finished row, all in the row's sequence."""
        parent, states = row.request.state, []
        for c, (s, e) in enumerate(row.cut.spans()):
            state = LlamaState(parent, [t.token_id for t in row.cut.tokens[s:e]])
            fed = max(0, min(e, row.fed) - s)
            state.computed = fed
            if row.seq is not None:
                state.seq, state.kv_len = row.seq, state.start + fed
            if c in row.chunk_logprobs and fed == e - s:
                state.next_logprobs = row.chunk_logprobs[c]
            states.append(state)
            parent = state
        return states

    # ----- teacher forcing -----------------------------------------------------------------------------
    def score_forced(self, state: LlamaState, token_ids: list[int]) -> list[TokenScore]:
        """The raw log-prob and top-5 of each given token after ``state``'s prefix, in one pass over them
        (the prefix is not run again when its KV is kept); the cache is left as it was."""
        token_ids = [int(t) for t in token_ids]
        if not token_ids:
            return []
        self._settle([state])
        failed = self._prepare([state])
        if failed:
            raise TranslatorError(f"cannot score {len(token_ids)} forced tokens: {failed[id(state)]}")
        distributions = [state.next_logprobs]
        if len(token_ids) > 1:
            scratch = self._fork(state.seq, state.end)
            if scratch is None:
                raise TranslatorError(f"cannot score forced tokens: all {MAX_SEQUENCES} sequences are in use")
            feed = _Feed(scratch, token_ids[:-1], state.end, all_logprobs=[])
            if not self._run([feed]):
                raise TranslatorError(f"cannot score {len(token_ids)} forced tokens after {state.end}: the "
                                      f"KV cache is full (n_ctx={self.n_ctx}); raise --n-ctx")
            distributions += feed.all_logprobs
            del scratch, feed  # the scratch sequence and its cells go back to the pool
            self._seqs.collect()
        scores = []
        for token, lp in zip(token_ids, distributions):
            top = _best(lp, TOP_K)
            scores.append(TokenScore(token, self.decode([token]), float(lp[token]), [int(t) for t in top],
                                     [float(lp[t]) for t in top]))
        return scores


def _sample(logprobs: np.ndarray, sampling: Sampling, rng: np.random.Generator | None) -> int:
    """Greedy, or temperature / top-k / top-p / min-p sampling with the transformers backend's rules (top-p
    within what top-k kept, min-p on the raw distribution within what both kept); the log-probs reported stay
    the raw ones."""
    if sampling.greedy:
        return int(logprobs.argmax())
    z = logprobs.astype(np.float64) / sampling.temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    n = probs.size
    cand: np.ndarray | None = None  # candidate ids, most probable first after top-k/top-p (None: all)
    if sampling.top_k > 0:
        cand = _best(probs, min(n, sampling.top_k))
        p = probs[cand] / probs[cand].sum()
    elif sampling.top_p < 1.0:
        # Only the tokens that can be in the nucleus are sorted (sorting the 150k vocabulary per token would
        # cost more than the model step): those below (1 - top_p) / n hold less than 1 - top_p together, so
        # the most probable tokens reach top_p before any of them.
        cand = np.flatnonzero(probs >= (1.0 - sampling.top_p) / n)
        cand = cand[np.argsort(-probs[cand], kind="stable")]
        p = probs[cand]
    elif sampling.min_p > 0.0:  # only what the min-p cut below keeps, in id order
        cand = np.flatnonzero(logprobs >= logprobs.max() + math.log(sampling.min_p))
        p = probs[cand]
    else:
        p = probs
    if sampling.top_p < 1.0:
        keep = np.cumsum(p) - p <= sampling.top_p
        cand, p = cand[keep], p[keep]
    if sampling.min_p > 0.0:
        keep = logprobs[cand] >= logprobs.max() + math.log(sampling.min_p)
        cand, p = cand[keep], p[keep]
    cumulative = np.cumsum(p)
    i = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), len(p) - 1)
    return int(cand[i]) if cand is not None else i


def _best(values: np.ndarray, m: int) -> np.ndarray:
    """Indices of the ``m`` largest values, largest first. A few (the top-5 of every token) by repeated
    argmax, which is several times faster than a partition of a 150k vocabulary; ``values`` is left as it was."""
    if m >= values.size:
        return np.argsort(-values, kind="stable")
    if m <= _FEW:
        idx = np.empty(m, dtype=np.int64)
        kept = np.empty(m, dtype=values.dtype)
        for j in range(m):
            idx[j] = values.argmax()
            kept[j] = values[idx[j]]
            values[idx[j]] = -np.inf
        values[idx] = kept
        return idx
    idx = np.argpartition(-values, m - 1)[:m]
    return idx[np.argsort(-values[idx], kind="stable")]


def open_llama_cpp(spec: str, *, n_ctx: int | None = None, threads: int | None = None) -> LlamaCppBackend:
    """The llama.cpp backend for a registry name or a ``.gguf`` path: the GGUF is assembled and verified
    (registry), never dequantized; the tokenizer comes from ``translator.tokenizer``."""
    from translator.cache_paths import cache_dir
    from translator.registry import REGISTRY, classify_spec, gguf_of
    from translator.tokenizer import load_tokenizer

    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(f"the llama-cpp backend needs llama-cpp-python ({exc}); "
                             "pip install llama-cpp-python==0.3.36, or use --backend transformers") from None
    kind, target = classify_spec(spec)
    gguf = gguf_of(spec)
    name = REGISTRY[target].display_name if kind == "registry" else Path(target).stem
    tokenizer, stop_ids = load_tokenizer(spec)
    return LlamaCppBackend(gguf, tokenizer, stop_ids, name=name, n_ctx=n_ctx or DEFAULT_N_CTX, threads=threads,
                           head_store=cache_dir() / "kv-heads")
