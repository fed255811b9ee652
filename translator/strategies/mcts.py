"""``mcts``: Marco-o1's Monte Carlo Tree Search over reasoning actions, with the confidence reward.

One iteration selects up to ``parallel`` leaves by UCT, samples new children for each (K per node in all),
and rolls every new child out to a terminal answer in the same batched generation: the child is the first
action of that generation, the rollout the rest. All of it stays in the tree (see ``translator.mcts``).
With ``reflection`` on, the first time a path closes its thought the closing tag is cut and the paper's
sentence is injected; the model then goes on thinking from there.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from translator.actions import GRANULARITIES, THOUGHT_END, Chunking, thought_ended
from translator.backends.base import Chunk, Continuation, GenRequest, Sampling
from translator.errors import InputError
from translator.mcts import Node, backpropagate, can_expand, chosen_path, exhausted, iter_nodes, select, to_search_tree
from translator.parse import parse_answer
from translator.prompt import THOUGHT_OPEN, TranslationRequest, build_prompt
from translator.result import Alternative, PathStep, TranslationResult, mean_confidence
from translator.rewards import (REWARDS, BackTranslationReward, CombinedReward, CometQEReward, ConfidenceReward,
                                Reward, RolloutPath)
from translator.strategies.base import Hooks, Progress, Strategy

REFLECTION = "\n\nWait! Maybe I made some mistakes! I need to rethink from scratch.\n\n"


@dataclass
class MctsConfig:
    granularity: str = "step"  # step, mini-32 or mini-64
    rollouts: int = 16  # budget: rollouts to terminal answers (= root visits)
    children: int = 3  # K: children sampled per node
    exploration: float = math.sqrt(2)  # UCT constant
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 768  # per path, prompt excluded
    reflection: bool = False
    reward: str = "confidence"
    comet_model: str | None = None  # for reward=comet-qe: a CometKiwi name or local checkpoint
    seed: int = 0
    parallel: int = 3  # leaves expanded per iteration: more rows per batched forward pass
    max_seconds: float | None = None  # optional extra budget
    max_tree_tokens: int | None = None  # optional extra budget

    def validate(self) -> None:
        problems = []
        if self.granularity not in GRANULARITIES:
            problems.append(f"granularity must be one of {', '.join(GRANULARITIES)}")
        if self.rollouts < 1:
            problems.append("rollouts must be at least 1")
        if self.children < 1:
            problems.append("children must be at least 1")
        if self.parallel < 1:
            problems.append("parallel must be at least 1")
        if self.temperature <= 0:
            problems.append("temperature must be > 0: the search samples its children")
        if not 0 < self.top_p <= 1:
            problems.append("top_p must be in (0, 1]")
        if self.exploration < 0:
            problems.append("exploration must be >= 0")
        if self.max_new_tokens < 8:
            problems.append("max_new_tokens must be at least 8")
        if self.reward not in REWARDS:
            problems.append(f"reward must be one of {', '.join(REWARDS)}")
        if self.reward == "comet-qe" and not self.comet_model:
            problems.append("reward comet-qe needs comet_model (a CometKiwi name or a local checkpoint)")
        if problems:
            raise InputError("invalid mcts options: " + "; ".join(problems))


class Mcts(Strategy):
    name = "mcts"
    Config = MctsConfig

    def __init__(self, backend, config: MctsConfig):
        config.validate()
        super().__init__(backend, config)
        self.chunking = Chunking.parse(config.granularity)
        self.sampling = Sampling(config.temperature, config.top_p, config.top_k)
        self.reward = self._build_reward()

    def _build_reward(self) -> Reward:
        name = self.config.reward
        if name == "confidence":
            return ConfidenceReward()
        if name == "comet-qe":
            return CometQEReward(self.config.comet_model)
        back = BackTranslationReward(self._back_translate)
        return back if name == "backtranslation" else CombinedReward([(ConfidenceReward(), 1.0), (back, 1.0)])

    def _back_translate(self, texts: list[str], request: TranslationRequest) -> list[str]:
        from translator.strategies.greedy import Direct, DirectConfig

        reverse = [TranslationRequest(t, request.tgt, request.src) for t in texts]
        config = DirectConfig(max_new_tokens=max(16, self.config.max_new_tokens // 2))
        return [r.translation for r in Direct(self.backend, config).translate(reverse)]

    def translate(self, requests: list[TranslationRequest], hooks: Hooks | None = None) -> list[TranslationResult]:
        tokenizer = self.backend.tokenizer
        return [_Search(self, r, hooks or Hooks(), build_prompt(tokenizer, r, reasoning=True)).run() for r in requests]


class _Search:
    """One search for one segment: the tree, its budget and its accounting."""

    def __init__(self, strategy: Mcts, request: TranslationRequest, hooks: Hooks, prompt: str):
        self.s = strategy
        self.prompt = prompt
        self.cfg: MctsConfig = strategy.config
        self.backend = strategy.backend
        self.request = request
        self.hooks = hooks
        self.nodes: list[Node] = []
        self.rollouts = 0
        self.terminals: list[tuple[Node, float, dict]] = []

    def _new(self, parent: Node | None, kind: str, state, token_ids, scores, text: str) -> Node:
        node = Node(id=len(self.nodes), parent=parent, kind=kind, state=state, token_ids=list(token_ids),
                    scores=list(scores), text=text)
        if parent is not None:
            node.depth = parent.depth + 1
            node.path_tokens = parent.path_tokens + len(node.token_ids)
            node.reflected = parent.reflected or kind == "reflection"
            node.thought_ended = parent.thought_ended or thought_ended(text)
            parent.children.append(node)
        self.nodes.append(node)
        return node

    def _seed(self, node: Node, index: int) -> int:
        digest = hashlib.sha256(f"{self.cfg.seed}:{node.id}:{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def _request(self, node: Node, index: int) -> GenRequest:
        return GenRequest(node.state, max(1, self.cfg.max_new_tokens - node.path_tokens), self.s.sampling,
                          seed=self._seed(node, index), chunking=self.s.chunking,
                          stop_at_thought_end=self.cfg.reflection and not node.reflected and not node.thought_ended)

    def run(self) -> TranslationResult:
        start = time.perf_counter()
        stats0 = (self.backend.stats.forwarded_tokens, self.backend.stats.recomputed_tokens,
                  self.backend.stats.generated_tokens)
        root = self._new(None, "root", self.backend.start(self.prompt), [], [], "")
        iterations = 0
        while self.rollouts < self.cfg.rollouts and not self._out_of_budget(start):
            if self.hooks.should_stop and self.rollouts and self.hooks.should_stop():
                break
            plan = self._plan(root)
            if not plan:
                break
            self._expand(plan)
            self._release(root)
            iterations += 1
            if self.hooks.on_progress:
                best = self._best()
                self.hooks.on_progress(Progress(self.rollouts, self.cfg.rollouts, best[0], best[1],
                                                time.perf_counter() - start))
        return self._result(root, start, iterations, stats0)

    def _out_of_budget(self, start: float) -> bool:
        if self.cfg.max_seconds is not None and time.perf_counter() - start >= self.cfg.max_seconds:
            return True
        tree_tokens = sum(len(n.token_ids) for n in self.nodes[1:])
        return self.cfg.max_tree_tokens is not None and tree_tokens >= self.cfg.max_tree_tokens

    def _plan(self, root: Node) -> list[tuple[Node, int, int]]:
        """Pick leaves for this iteration: (leaf, index of its first new child, how many).

        Children in flight count as virtual visits, which spreads parallel picks apart."""
        plan: list[tuple[Node, int, int]] = []
        left = self.cfg.rollouts - self.rollouts
        for _ in range(self.cfg.parallel):
            if left <= 0:
                break
            leaf = select(root, self.cfg.children, self.cfg.exploration)
            if leaf is None:
                break
            n = min(self.cfg.children - len(leaf.children) - leaf.pending, left)
            plan.append((leaf, len(leaf.children) + leaf.pending, n))
            leaf.pending += n
            for node in leaf.path():
                node.virtual += n
            left -= n
        return plan

    def _expand(self, plan: list[tuple[Node, int, int]]) -> None:
        """Sample the planned children and roll each out to a terminal answer, all in one batch."""
        jobs = [(leaf, self._request(leaf, first + i)) for leaf, first, n in plan for i in range(n)]
        finished: list[Node] = []
        while jobs:
            continuations = self.backend.generate([req for _, req in jobs])
            next_jobs = []
            for (parent, _), cont in zip(jobs, continuations):
                last = self._attach(parent, cont)
                if cont.finish == "thought_ended":
                    reflection = self._new(last, "reflection", self.backend.extend(last.state, REFLECTION),
                                           self.backend.tokenizer.encode(REFLECTION, add_special_tokens=False),
                                           [], REFLECTION)
                    next_jobs.append((reflection, self._request(reflection, 0)))
                else:
                    finished.append(last)
            jobs = next_jobs
        for leaf, _, n in plan:
            leaf.pending -= n
            for node in leaf.path():
                node.virtual -= n
        self._score(finished)

    def _attach(self, parent: Node, cont: Continuation) -> Node:
        """Hang a continuation under ``parent`` as a chain of action nodes; returns the last one."""
        chunks = cont.chunks
        if cont.finish == "thought_ended":
            chunks = self._cut_thought_end(chunks)
        node = parent
        for chunk in chunks:
            node = self._new(node, self.cfg.granularity, chunk.state, [t.token_id for t in chunk.tokens],
                             chunk.tokens, chunk.text)
        if cont.terminal:
            if node is parent:  # the model ended the answer at once: an empty terminal action
                node = self._new(parent, self.cfg.granularity, None, [], [], "")
            node.terminal = True
            node.truncated = cont.finish == "length"
        return node

    def _cut_thought_end(self, chunks: list[Chunk]) -> list[Chunk]:
        """Drop the tokens that close the thought, so the reflection continues the thought itself."""
        ids = [t.token_id for c in chunks for t in c.tokens]
        tag_start = THOUGHT_END.search(self.backend.decode(ids)).start()
        keep = len(ids)
        while keep > 0 and len(self.backend.decode(ids[:keep])) > tag_start:
            keep -= 1
        out, seen = [], 0
        for chunk in chunks:
            n = min(len(chunk.tokens), keep - seen)
            if n == len(chunk.tokens):
                out.append(chunk)
            else:
                if n > 0:
                    kept_ids = ids[seen : seen + n]
                    out.append(Chunk(chunk.tokens[:n], self.backend.decode(kept_ids),
                                     self.backend.truncate(chunk.state, n)))
                self.backend.release(chunk.state)
            seen += len(chunk.tokens)
        return out

    def _score(self, finished: list[Node]) -> None:
        paths = []
        for leaf in finished:
            nodes = leaf.path()
            text = self.backend.decode([t for n in nodes for t in n.token_ids])
            parsed = parse_answer(THOUGHT_OPEN + text)
            paths.append(RolloutPath(self.request, [s for n in nodes for s in n.scores], text, parsed.translation))
        for leaf, path, value in zip(finished, paths, self.s.reward.score(paths)):
            reward, details = value.value, {"translation": path.translation, **value.details}
            if not path.translation:
                # A rollout that never reached an answer is worth nothing, however confident: repetition
                # loops cut by the token budget are exactly what a small model is most confident about.
                reward, details = 0.0, {**details, "raw_value": value.value, "reason": "no translation: reward 0"}
            backpropagate(leaf, reward)
            self.terminals.append((leaf, reward, details))
            self.rollouts += 1
            if leaf.state is not None:
                self.backend.release(leaf.state)

    def _release(self, root: Node) -> None:
        """Free what no future expansion can use: KV under exhausted subtrees, distributions of full nodes."""
        for node in iter_nodes(root):
            if node.state is None:
                continue
            if exhausted(node, self.cfg.children):
                self.backend.release(node.state)
            elif not can_expand(node, self.cfg.children):
                self.backend.release(node.state, keep_kv=True)

    def _best(self) -> tuple[str, float | None]:
        if not self.terminals:
            return "", None
        leaf, value, details = max(self.terminals, key=lambda t: t[1])
        return details["translation"], value

    def _result(self, root: Node, start: float, iterations: int, stats0) -> TranslationResult:
        path = chosen_path(root)
        leaf = path[-1]
        text = self.backend.decode([t for n in path for t in n.token_ids])
        parsed = parse_answer(THOUGHT_OPEN + text)
        tokens = [s for n in path for s in n.scores]
        chosen = next((t for t in self.terminals if t[0] is leaf), None)
        alternatives = {}
        for node, value, details in sorted(self.terminals, key=lambda t: -t[1]):
            tr = details["translation"]
            if tr and tr != parsed.translation and tr not in alternatives:
                alternatives[tr] = Alternative(tr, value, node.visits, node.id)
        stats = self.backend.stats
        tree = to_search_tree(root, path)
        return TranslationResult(
            source=self.request.text, src_lang=self.request.src.code, tgt_lang=self.request.tgt.code,
            translation=parsed.translation, thought=parsed.thought, raw_output=text, strategy="mcts",
            model=self.backend.name, params=self.s.params(), tokens_generated=stats.generated_tokens - stats0[2],
            wall_time_s=time.perf_counter() - start, format_ok=parsed.format_ok, confidence=mean_confidence(tokens),
            logprobs_source=self.backend.logprobs_source, tokens=tokens,
            steps=[PathStep(n.id, n.kind, n.text, len(n.token_ids), mean_confidence(n.scores), n.visits, n.mean)
                   for n in path[1:]],
            tree=tree, alternatives=list(alternatives.values())[:5],
            reward={"name": self.s.reward.name, "value": chosen[1] if chosen else None,
                    "details": chosen[2] if chosen else {}},
            stats={"rollouts": self.rollouts, "iterations": iterations, "nodes": len(self.nodes),
                   "tree_tokens": tree.unique_tokens, "forwarded_tokens": stats.forwarded_tokens - stats0[0],
                   "recomputed_tokens": stats.recomputed_tokens - stats0[1],
                   "peak_cache_mb": round(stats.peak_cache_bytes / 2**20, 1)},
        )
