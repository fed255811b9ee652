"""In-process backend: a Hugging Face causal LM with KV caches kept along the search tree.

Each state owns the KV of its own tokens only; a prefix's cache is the concatenation of its ancestors'
segments. Continuing a state therefore never re-encodes a token the model has already processed, and a
tree costs memory once per token, not once per path. Requests are decoded together in one left-padded
batch (explicit position ids keep every row's positions exact), which is where a CPU gets its throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from translator.backends.base import Backend, BackendStats, Continuation, GenRequest, PrefixState, Sampling
from translator.backends.cutter import TokenCutter
from translator.script_guard import without
from translator.models import LoadedModel
from translator.result import TOP_K, TokenScore


class KVState(PrefixState):
    """A token prefix with the KV of this state's own tokens once computed."""

    __slots__ = ("kv", "kv_len", "computed", "next_logprobs")

    def __init__(self, parent: "KVState | None", tokens: list[int]):
        super().__init__(parent, tokens)
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # per layer, [1, heads, kv_len, dim]
        self.kv_len = 0
        self.computed = 0  # own tokens whose KV was computed at some time (to count recomputation)
        self.next_logprobs: torch.Tensor | None = None  # distribution of the token after this prefix

    @property
    def ready(self) -> bool:
        return self.next_logprobs is not None and all(s.kv_len == len(s.tokens) for s in self.path())


@dataclass
class _Row:
    request: GenRequest
    generator: torch.Generator | None
    cut: TokenCutter  # the row's tokens and where its actions end
    fed: int = 0  # tokens of this row already run through the model
    boundary_pending: bool = False  # the last token closed a chunk: keep the next distribution for it
    chunk_logprobs: dict[int, torch.Tensor] = field(default_factory=dict)  # chunk index -> next distribution
    states: list[KVState] = field(default_factory=list)


class TransformersBackend(Backend):
    logprobs_source = "raw"
    masks_tokens = True
    state_class = KVState

    def __init__(self, loaded: LoadedModel, *, reuse_cache: bool = True, batch: bool = True, max_batch: int = 16):
        self.loaded = loaded
        self.model = loaded.model
        self.name = loaded.name
        self.reuse_cache = reuse_cache
        self.batch = batch
        self.max_batch = max_batch
        self.stop_ids = set(loaded.stop_token_ids)
        self._stats = BackendStats()
        self._live_bytes = 0

    @property
    def tokenizer(self):
        return self.loaded.tokenizer


    # ----- states -------------------------------------------------------------------------------------
    def truncate(self, state: KVState, keep_tokens: int) -> KVState:
        cut = KVState(state.parent, state.tokens[:keep_tokens])
        n = min(state.kv_len, keep_tokens)
        if state.kv is not None and n:
            cut.kv = [(k[:, :, :n].clone(), v[:, :, :n].clone()) for k, v in state.kv]
            cut.kv_len = n
            self._track(cut.kv, +1)
        cut.computed = min(state.computed, keep_tokens)
        return cut

    def release(self, state: KVState, *, keep_kv: bool = False) -> None:
        state.next_logprobs = None
        if keep_kv:
            return
        if state.kv is not None:
            self._track(state.kv, -1)
        state.kv, state.kv_len = None, 0

    def _crop_last(self, state: KVState) -> None:
        kv, n = state.kv, state.kv_len - 1
        self.release(state)
        if n:
            self._store(state, [(k[:, :, :n], v[:, :, :n]) for k, v in kv], n)

    def _track(self, kv, sign: int) -> None:
        self._live_bytes += sign * sum(k.numel() * k.element_size() * 2 for k, _ in kv)
        self._stats.peak_cache_bytes = max(self._stats.peak_cache_bytes, self._live_bytes)

    def _store(self, state: KVState, kv: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> None:
        """Append KV for the next ``n`` of the state's own tokens."""
        if state.kv is not None:
            self._track(state.kv, -1)
            kv = [(torch.cat([k0, k], dim=2), torch.cat([v0, v], dim=2)) for (k0, v0), (k, v) in zip(state.kv, kv)]
        state.kv = kv
        state.kv_len += n
        self._track(state.kv, +1)

    # ----- model calls ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def _forward(self, input_ids: torch.Tensor, past: DynamicCache | None, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor):
        out = self.model(input_ids=input_ids, past_key_values=past if past is not None else DynamicCache(),
                         attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
        self._stats.forward_calls += 1
        self._stats.forwarded_tokens += int(input_ids.numel())
        return out.logits[:, -1, :].float().log_softmax(-1), out.past_key_values

    def _path_kv(self, path: list[KVState]) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        parts = [s.kv for s in path if s.kv_len]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return [(torch.cat([p[i][0] for p in parts], dim=2), torch.cat([p[i][1] for p in parts], dim=2))
                for i in range(len(parts[0]))]

    def _prepare(self, state: KVState) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """The full-prefix KV of ``state`` and the distribution of its next token.

        With cache reuse, only tokens never kept are run (normally none, or the one sampled last); without
        it, the whole prefix is run again, as a plain generate() call would.
        """
        path = state.path()
        if self.reuse_cache and state.ready:
            return self._path_kv(path), state.next_logprobs
        if self.reuse_cache:
            if all(s.kv_len == len(s.tokens) for s in path):
                # Complete KV but no kept distribution: run the last token again (counted as recomputed).
                self._crop_last(state)
            first = next(i for i, s in enumerate(path) if s.kv_len < len(s.tokens))
            for later in path[first + 1 :]:
                self.release(later)
            past_kv = self._path_kv(path[: first + 1])
            offsets = [(s, s.kv_len if i == 0 else 0) for i, s in enumerate(path[first:])]
        else:
            past_kv = None
            offsets = [(s, 0) for s in path]
        new_ids = [t for s, off in offsets for t in s.tokens[off:]]
        self._stats.recomputed_tokens += sum(max(0, min(s.computed, len(s.tokens)) - off) for s, off in offsets)
        past_len = state.end - len(new_ids)
        device = self.model.device
        cache = DynamicCache.from_legacy_cache(tuple(past_kv)) if past_kv is not None else None
        logprobs, cache = self._forward(
            torch.tensor([new_ids], device=device), cache,
            torch.ones(1, state.end, dtype=torch.long, device=device),
            torch.arange(past_len, state.end, device=device).unsqueeze(0))
        full = _legacy(cache)
        pos = past_len
        for s, off in offsets:
            n = len(s.tokens) - off
            s.computed = max(s.computed, len(s.tokens))
            if self.reuse_cache and n:
                self._store(s, [(k[:, :, pos : pos + n].clone(), v[:, :, pos : pos + n].clone()) for k, v in full], n)
            pos += n
        if self.reuse_cache:
            state.next_logprobs = logprobs[0]
        return full, logprobs[0]

    # ----- generation ----------------------------------------------------------------------------------
    def generate(self, requests: list[GenRequest]) -> list[Continuation]:
        size = self.max_batch if self.batch else 1
        results: list[Continuation] = []
        for i in range(0, len(requests), size):
            results.extend(self._generate_batch(requests[i : i + size]))
        return results

    @torch.inference_mode()
    def _generate_batch(self, requests: list[GenRequest]) -> list[Continuation]:
        device = self.model.device
        prepared: dict[int, tuple] = {}
        for req in requests:
            if id(req.state) not in prepared:
                prepared[id(req.state)] = self._prepare(req.state)
        lengths = [req.state.end for req in requests]
        width = max(lengths)
        cache = _left_padded_cache([prepared[id(r.state)][0] for r in requests], lengths, width)
        mask = torch.zeros(len(requests), width, dtype=torch.long, device=device)
        for b, n in enumerate(lengths):
            mask[b, width - n :] = 1
        rows = [_Row(r, _generator(r), TokenCutter(r, self.stop_ids, self.decode)) for r in requests]
        logprobs = torch.stack([prepared[id(r.state)][1] for r in requests])
        active = list(range(len(rows)))  # rows still in the batch, in cache order
        step = 0
        while active:
            top_lp, top_ids = logprobs.topk(TOP_K, dim=-1)
            chosen = [_sample(without(logprobs[j], rows[b].cut.banned()), rows[b].request.sampling, rows[b].generator)
                      for j, b in enumerate(active)]
            for j, b in enumerate(active):
                row = rows[b]
                row.cut.feed(chosen[j], float(logprobs[j, chosen[j]]), top_ids[j].tolist(), top_lp[j].tolist())
                row.boundary_pending = row.cut.boundary
            keep = [j for j, b in enumerate(active) if rows[b].cut.finish is None]
            for j, b in enumerate(active):
                if rows[b].cut.finish is not None:
                    self._finish_row(rows[b], cache, j, width)
            if not keep:
                break
            if len(keep) < len(active):
                cache.batch_select_indices(torch.tensor(keep, device=device))
                mask = mask[keep]
                active = [active[j] for j in keep]
                chosen = [chosen[j] for j in keep]
            mask = torch.cat([mask, torch.ones(len(active), 1, dtype=torch.long, device=device)], dim=1)
            positions = torch.tensor([[lengths[b] + step] for b in active], device=device)
            logprobs, cache = self._forward(torch.tensor([[c] for c in chosen], device=device), cache, mask, positions)
            step += 1
            for j, b in enumerate(active):
                row = rows[b]
                row.fed += 1
                if row.boundary_pending and self.reuse_cache:
                    row.chunk_logprobs[len(row.cut.starts) - 2] = logprobs[j].clone()
                row.boundary_pending = False
        self._stats.generated_tokens += sum(len(r.cut.tokens) for r in rows)
        return [r.cut.continuation(r.states) for r in rows]

    @torch.inference_mode()
    def score_forced(self, state: KVState, token_ids: list[int]) -> list[TokenScore]:
        """Teacher forcing on top of the state's cached prefix: the first token's distribution is the one the
        prefix already yields (kept, or computed once by ``_prepare``), the others come from one forward over
        ``token_ids[:-1]``. The continuation's KV is not kept: the state is left as it was."""
        if not token_ids:
            return []
        past_kv, first = self._prepare(state)
        device = self.model.device
        dists = [first.unsqueeze(0)]
        rest = token_ids[:-1]
        if rest:
            out = self.model(input_ids=torch.tensor([rest], device=device),
                             past_key_values=DynamicCache.from_legacy_cache(tuple(past_kv)),
                             attention_mask=torch.ones(1, state.end + len(rest), dtype=torch.long, device=device),
                             position_ids=torch.arange(state.end, state.end + len(rest), device=device).unsqueeze(0),
                             use_cache=True)
            self._stats.forward_calls += 1
            self._stats.forwarded_tokens += len(rest)
            dists.append(out.logits[0].float().log_softmax(-1))
        logprobs = torch.cat(dists)
        top_lp, top_ids = logprobs.topk(TOP_K, dim=-1)
        chosen = logprobs.gather(1, torch.tensor(token_ids, device=device).unsqueeze(1))[:, 0].tolist()
        return [TokenScore(t, self.tokenizer.decode([t]), lp, ids, lps)
                for t, lp, ids, lps in zip(token_ids, chosen, top_ids.tolist(), top_lp.tolist())]

    def _finish_row(self, row: _Row, cache: DynamicCache, j: int, width: int) -> None:
        """Cut the finished row's KV out of the batch cache into its chunk states."""
        parent = row.request.state
        layers = _legacy(cache) if self.reuse_cache else None
        row.states = []
        for c, (s, e) in enumerate(row.cut.spans()):
            state = KVState(parent, [t.token_id for t in row.cut.tokens[s:e]])
            fed = max(0, min(e, row.fed) - s)
            state.computed = fed
            if layers is not None and fed:
                self._store(state, [(k[j : j + 1, :, width + s : width + s + fed].clone(),
                                     v[j : j + 1, :, width + s : width + s + fed].clone()) for k, v in layers], fed)
            if c in row.chunk_logprobs and fed == e - s:
                state.next_logprobs = row.chunk_logprobs[c]
            row.states.append(state)
            parent = state


def _legacy(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _left_padded_cache(kvs: list, lengths: list[int], width: int) -> DynamicCache:
    """Stack per-row prefix caches into one batch cache, shorter rows padded on the left (masked out)."""
    if len(kvs) == 1 or all(kv is kvs[0] for kv in kvs):
        layers = [(k.expand(len(kvs), -1, -1, -1).contiguous(), v.expand(len(kvs), -1, -1, -1).contiguous())
                  for k, v in kvs[0]]
        return DynamicCache.from_legacy_cache(tuple(layers))
    layers = []
    for i in range(len(kvs[0])):
        k0 = kvs[0][i][0]
        keys = k0.new_zeros(len(kvs), k0.shape[1], width, k0.shape[3])
        values = keys.clone()
        for b, (kv, n) in enumerate(zip(kvs, lengths)):
            keys[b, :, width - n :] = kv[i][0][0]
            values[b, :, width - n :] = kv[i][1][0]
        layers.append((keys, values))
    return DynamicCache.from_legacy_cache(tuple(layers))


def _generator(req: GenRequest) -> torch.Generator | None:
    if req.sampling.greedy:
        return None
    return torch.Generator().manual_seed(req.seed)


def _sample(logprobs: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    """Greedy, or temperature / top-k / top-p / min-p sampling (top-p within what top-k kept, min-p on the raw
    distribution); the log-probs we report stay the raw ones."""
    if sampling.greedy:
        return int(logprobs.argmax())
    logits = logprobs.detach().float().cpu() / sampling.temperature
    if sampling.top_k > 0:
        kth = logits.topk(min(sampling.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = logits.sort(descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > sampling.top_p
        logits[order[drop]] = float("-inf")
    if sampling.min_p > 0.0:
        raw = logprobs.detach().float().cpu()
        logits = logits.masked_fill(raw < raw.max() + math.log(sampling.min_p), float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))
