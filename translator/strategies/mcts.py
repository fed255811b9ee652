"""``mcts``: Marco-o1's Monte Carlo Tree Search, over reasoning actions (``thought``, the paper's) or over
drafts of the translation (the default: measured better with a 1.5B model), scored by a reward.

The algorithm (parallel UCT, virtual visits, budget, release) is ``translator.mcts.parallel_uct``; this
module is its model side, the ``Expander``: it turns the planned children of up to ``parallel`` leaves into
one batched generation (the child is the first action of that generation, the rollout the rest, and all of
it stays in the tree), handles thought tags, budget forcing and reflection, and scores each rollout with
the reward. Then it picks the final answer (``translator.selection``).
With ``reflection`` on, the first time a path closes its thought the closing tag is cut and the paper's
sentence is injected; the model then goes on thinking from there.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from translator.actions import GRANULARITIES, THOUGHT_END, Chunking, answer_opened, thought_ended
from translator.backends.base import Chunk, Continuation, GenRequest, Sampling
from translator.errors import InputError, at_least, check_options
from translator.mcts import Expansion, Node, UctConfig, UctRun, chosen_path, parallel_uct, to_search_tree
from translator.lexicon.markup import strip_markup
from translator.parse import ParsedAnswer, parse_answer
from translator.prompt import FORCE_ANSWER, THOUGHT_OPEN, Hint, TranslationRequest, build_prompt, prompt_head
from translator.result import Alternative, PathStep, TranslationResult, mean_confidence
from translator.script_guard import answer_ban
from translator.rewards import (Reward, RewardContext, RolloutPath, direct_back_translator, make_reward,
                                reward_configs)
from translator.selection import SELECT_RULES, Candidate, rank
from translator.utility import check_utility, utility
from translator.strategies.base import Hooks, Progress, Strategy, TokenProgress, continued, resolve_thought_budget

REFLECTION = "\n\nWait! Maybe I made some mistakes! I need to rethink from scratch.\n\n"
# The refine action reopens a finished draft: the paper's sentence, what to check, then a new Output.
REFINE = ("\n<Thought>\nWait! Maybe I made some mistakes! I need to rethink from scratch.\n"
          "Check the translation above against the source: the meaning of each tricky term here, anything "
          "left out or added, the tone. Then write the corrected translation.\n")
REFINE_ROOM = 32  # tokens a path must have left for a revision to be worth starting
# The sense action: the thought's first line (the prompt's "Terms:" part) commits to one sense of a noted term.
SENSE = 'Terms: {term} here means "{sense}".'
_TAG_TAIL = 16  # characters of a parent's text that may hold the start of a tag its child completes


class PathNode(Protocol):
    """What parsing a path needs of a node: the search's live nodes and a saved tree's both qualify."""

    kind: str


def parse_path(nodes: Sequence[PathNode], decode: Callable[[Sequence[PathNode]], str],
               hints: Sequence[Hint], *, chinese_target: bool) -> tuple[str, ParsedAnswer, list[str]]:
    """A path's raw text, its parsed answer (a revision left empty: the draft before it stands) and the
    dictionary markup removed from the translation. ``decode`` turns nodes into text: the search decodes
    their tokens together (a character may straddle two nodes), a saved tree joins its nodes' texts."""
    text = decode(nodes)
    parsed = parse_answer(THOUGHT_OPEN + text)
    refine = next((i for i, n in enumerate(nodes) if n.kind == "refine"), None)
    if not parsed.translation and refine is not None:
        parsed = replace(parse_answer(THOUGHT_OPEN + decode(nodes[:refine])), thought=parsed.thought)
    translation, cleanup = strip_markup(parsed.translation, hints, chinese_target=chinese_target)
    return text, replace(parsed, translation=translation), cleanup


@dataclass
class MctsConfig:
    granularity: str = "step"  # step, mini-32 or mini-64
    # budget: rollouts to terminal answers (= root visits). 8 rollouts of 8 children: without a thought that is
    # 8 drafts, the measured best (README, "Which search by default")
    rollouts: int = 8
    children: int = 8  # K: children sampled per node
    exploration: float = math.sqrt(2)  # UCT constant
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    min_p: float = 0.0  # drop tokens below min_p x the most probable's raw probability (0 = off)
    max_new_tokens: int = 768  # per path, prompt excluded
    thought_budget: int | None = None  # per path: thought tokens before the answer is forced; 0 = none; None = auto
    reflection: bool = False
    refine: bool = False  # reopen each path's finished draft once for revision (a new thought, then a new Output)
    senses: bool = False  # the root's children each start the thought with another sense of the first noted term
    # False: no thought; the root's one child opens the Output, so the tree branches over the translation itself
    # and the search samples drafts and selects among them (quality-aware decoding). None: off unless reflection,
    # refine or senses (which act in a thought) or a thought_budget ask for one. Off by default: with a thought
    # the search lost to direct on slang zh-en and WMT22, without one it beat direct on PETCI and WMT22 (README)
    thought: bool | None = field(default=None,
                                 metadata={"default": "off unless reflection, refine, senses or thought_budget"})
    reward: str = "consensus"  # the best of the rewards against human MQM judgements (README); "confidence" is the paper's
    comet_model: str | None = None  # for reward=comet-qe: a CometKiwi name or local checkpoint
    seed: int = 0
    parallel: int = 3  # leaves expanded per iteration: more rows per batched forward pass
    max_seconds: float | None = None  # optional extra budget
    max_tree_tokens: int | None = None  # optional extra budget
    select: str = "mbr"  # the final choice: mbr (measured best: README), visits (the paper's) or reward
    # how alike two candidates are, for the consensus reward and the mbr rule: bleu (measured better than
    # chrf, whose recall weight picks the longest candidate: README, "The utility of consensus") or chrf
    mbr_utility: str = "bleu"
    # add the direct translation (one greedy decode) as a candidate; None = on for reward and mbr (in the
    # README grid mbr picks it back on 10-30% of the segments)
    select_with_direct: bool | None = field(default=None, metadata={"default": "on unless select=visits"})
    fallback: bool = True  # a search none of whose rollouts reached a translation answers as direct
    script_guard: bool = True  # Outputs into English etc. never write Chinese characters (translator.script_guard)
    notes_guard: bool = True  # Outputs given notes never write their sense separator "|" (the same module)

    def __post_init__(self) -> None:
        thinking = self.senses or self.reflection or self.refine  # options that act in a thought
        check_options("mcts", [
            None if self.granularity in GRANULARITIES else f"granularity must be one of {', '.join(GRANULARITIES)}",
            at_least("rollouts", self.rollouts, 1),
            at_least("children", self.children, 1),
            at_least("parallel", self.parallel, 1),
            None if self.temperature > 0 else "temperature must be > 0: the search samples its children",
            None if 0 < self.top_p <= 1 else "top_p must be in (0, 1]",
            at_least("top_k", self.top_k, 0),
            None if 0 <= self.min_p < 1 else "min_p must be in [0, 1)",
            at_least("exploration", self.exploration, 0),
            at_least("max_new_tokens", self.max_new_tokens, 8),
            None if self.max_seconds is None or self.max_seconds > 0 else "max_seconds must be > 0",
            at_least("max_tree_tokens", self.max_tree_tokens, 1),
            None if self.select in SELECT_RULES else f"select must be one of {', '.join(SELECT_RULES)}",
            check_utility(self.mbr_utility),
            "select_with_direct needs select reward or mbr: the tree never visits the direct candidate"
            if self.select_with_direct and self.select == "visits" else None,
            self._reward_problem(),
            None if self.thought is not False or not thinking
            else "thought=false leaves no thought for senses, reflection or refine to act in",
        ])
        if self.thought is None:  # asking for what acts in a thought, or for its budget, asks for a thought
            self.thought = thinking or self.thought_budget is not None
        self.thought_budget = resolve_thought_budget(self.thought_budget, self.max_new_tokens, "mcts")
        if self.select_with_direct is None:
            self.select_with_direct = self.select != "visits"

    def _reward_problem(self) -> str | None:
        try:
            reward_configs(self.reward, self.reward_options())
        except InputError as exc:
            return str(exc)
        return None

    def reward_options(self) -> dict:
        return {"comet_model": self.comet_model, "mbr_utility": self.mbr_utility}


class Mcts(Strategy):
    name = "mcts"
    Config = MctsConfig

    def __init__(self, backend, config: MctsConfig):
        super().__init__(backend, config)
        self.chunking = Chunking.parse(config.granularity)
        self.refine_ids = backend.tokenizer.encode(REFINE, add_special_tokens=False)  # once, not per draft
        self.sampling = Sampling(config.temperature, config.top_p, config.top_k, config.min_p)
        self.reward = self._build_reward()

    def _build_reward(self) -> Reward:
        back = direct_back_translator(self.backend, max(16, self.config.max_new_tokens // 2))
        return make_reward(self.config.reward, RewardContext(self.backend, back), self.config.reward_options())

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
        self.terminals: list[tuple[Node, float, dict]] = []
        self.generated = 0  # tokens so far, for Hooks.on_tokens
        self.started = time.perf_counter()
        self._count_lock = threading.Lock()  # an HTTP backend's rows report from threads
        self.ban = answer_ban(self.backend, request, self.cfg.script_guard, self.cfg.notes_guard)
        self._direct_made: tuple[Candidate, TranslationResult, dict] | None = None

    def _new(self, parent: Node | None, kind: str, state, token_ids, scores, text: str) -> Node:
        node = Node(id=len(self.nodes), parent=parent, kind=kind, state=state, token_ids=list(token_ids),
                    scores=list(scores), text=text)
        if parent is not None:
            node.depth = parent.depth + 1
            node.path_tokens = parent.path_tokens + len(node.token_ids)
            node.reflected = parent.reflected or kind in ("reflection", "refine")
            node.refined = parent.refined or kind == "refine"
            if kind == "refine":  # a new thought begins after the injected text, with a budget of its own
                node.thought_ended, node.thought_from = False, node.path_tokens
            else:
                node.thought_ended, node.thought_from = parent.thought_ended or thought_ended(text), parent.thought_from
                # the tag may be split between the parent's last tokens and this node's first
                node.in_answer = parent.in_answer or answer_opened(parent.text[-_TAG_TAIL:] + text)
            parent.children.append(node)
        self.nodes.append(node)
        return node

    def _seed(self, node: Node, index: int) -> int:
        digest = hashlib.sha256(f"{self.cfg.seed}:{node.id}:{index}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def _request(self, node: Node, index: int) -> tuple[GenRequest, bool]:
        """The generation request for a new child of ``node``, and whether the thought budget caps it."""
        left = self.cfg.max_new_tokens - node.path_tokens
        thought_left = self.cfg.thought_budget - (node.path_tokens - node.thought_from)
        capped = bool(self.cfg.thought_budget) and not node.thought_ended and thought_left < left
        if capped:
            left = thought_left
        request = GenRequest(node.state, max(1, left), self.s.sampling, seed=self._seed(node, index),
                             chunking=self.s.chunking,
                             stop_at_thought_end=self.cfg.reflection and not node.reflected and not node.thought_ended,
                             on_tokens=self._count if self.hooks.on_tokens else None,
                             answer_ban=self.ban, in_answer=node.in_answer)
        return request, capped

    def _force_answer(self, node: Node) -> Node:
        """Budget forcing on a path whose thought reached its budget: close it and open the Output. Nothing
        else may follow such a thought, so the node takes no other child."""
        node.max_children = 1
        return self._inject(node, "force", FORCE_ANSWER)

    def _inject(self, parent: Node, kind: str, text: str) -> Node:
        """A child of forced text (reflection, budget forcing, refine, sense): encoded once, by the backend's
        ``extend``, whose state holds its ids; no log-probs."""
        state = self.backend.extend(parent.state, text)
        return self._new(parent, kind, state, state.tokens, [], text)

    def _count(self, tokens: list) -> None:
        with self._count_lock:
            self.generated += len(tokens)
            generated = self.generated
        self.hooks.on_tokens(TokenProgress(generated, time.perf_counter() - self.started, 0))

    def run(self) -> TranslationResult:
        start = time.perf_counter()
        stats0 = (self.backend.stats.forwarded_tokens, self.backend.stats.recomputed_tokens,
                  self.backend.stats.generated_tokens)
        root = self._new(None, "root", self.backend.start(self.prompt, head=prompt_head(self.prompt)), [], [], "")
        if not self.cfg.thought:  # every path answers at once: the root's one child closes the empty thought
            self._force_answer(root)

        def progress(run: UctRun) -> None:
            if self.hooks.on_progress:
                best = self._best()
                self.hooks.on_progress(Progress(run.rollouts, self.cfg.rollouts, best[0], best[1],
                                                time.perf_counter() - start))

        config = UctConfig(self.cfg.rollouts, self.cfg.children, self.cfg.exploration, self.cfg.parallel)
        run = parallel_uct(root, self, config, out_of_budget=lambda: self._out_of_budget(start),
                           should_stop=self.hooks.should_stop, on_iteration=progress)
        return self._result(root, start, run, stats0)

    def _out_of_budget(self, start: float) -> bool:
        if self.cfg.max_seconds is not None and time.perf_counter() - start >= self.cfg.max_seconds:
            return True
        tree_tokens = sum(len(n.token_ids) for n in self.nodes[1:])
        return self.cfg.max_tree_tokens is not None and tree_tokens >= self.cfg.max_tree_tokens

    def expand(self, plan: list[Expansion]) -> list[tuple[Node, float]]:
        """Sample the planned children and roll each out to a terminal answer, all in one batch; the scored
        terminals (the ``Expander`` side of ``translator.mcts.parallel_uct``)."""
        jobs = []
        for e in plan:
            for i in range(e.count):
                sense = self._sense_node(e.leaf, e.first + i)
                node, index = (sense, 0) if sense else (e.leaf, e.first + i)
                jobs.append((node, *self._request(node, index)))
        finished: list[Node] = []
        while jobs:
            continuations = self.backend.generate([req for _, req, _ in jobs])
            next_jobs = []
            for (parent, _, capped), cont in zip(jobs, continuations):
                goes_on = capped and cont.finish == "length"  # stopped by the thought budget, not the path's
                refine = self._refines(parent, cont)
                last = self._attach(parent, cont, goes_on or refine)
                if refine:  # only the revision may follow a finished draft
                    last.max_children = 1
                    node = self._inject(last, "refine", REFINE)
                    next_jobs.append((node, *self._request(node, 0)))
                elif cont.finish == "thought_ended":
                    reflection = self._inject(last, "reflection", REFLECTION)
                    next_jobs.append((reflection, *self._request(reflection, 0)))
                elif goes_on:
                    # A thought that closed inside this continuation goes on as it was; one at its budget is forced.
                    node = last if last.thought_ended else self._force_answer(last)
                    next_jobs.append((node, *self._request(node, 0)))
                else:
                    finished.append(last)
            jobs = next_jobs
        return self._score(finished)

    def release(self, node: Node, *, keep_kv: bool) -> None:
        self.backend.release(node.state, keep_kv=keep_kv)

    def _sense_node(self, leaf: Node, index: int) -> Node | None:
        """With ``senses``, the root's child ``index`` begins its thought with the ``index``-th sense (in
        turn) of the first noted term that has several: the tree branches on what the term means here,
        the decision a translator makes first, rather than on sampling noise. None otherwise."""
        if not self.cfg.senses or leaf.parent is not None:
            return None
        hint = next((h for h in self.request.hints if len(h.senses) > 1), None)
        if hint is None:
            return None
        text = SENSE.format(term=hint.term, sense=hint.senses[index % len(hint.senses)])
        return self._inject(leaf, "sense", text)

    def _refines(self, parent: Node, cont: Continuation) -> bool:
        """Whether the draft this continuation just finished is reopened (``refine``): once per path, when
        the draft has a translation and the path has room left for a revision."""
        if not (self.cfg.refine and cont.finish == "output_closed" and cont.chunks and not parent.refined):
            return False
        room = self.cfg.max_new_tokens - parent.path_tokens - len(cont.tokens) - len(self.s.refine_ids)
        if room < REFINE_ROOM:
            return False
        ids = [t for n in parent.path() for t in n.token_ids] + [t.token_id for t in cont.tokens]
        return bool(parse_answer(THOUGHT_OPEN + self.backend.decode(ids)).translation)

    def _attach(self, parent: Node, cont: Continuation, goes_on: bool = False) -> Node:
        """Hang a continuation under ``parent`` as a chain of action nodes; returns the last one, terminal
        unless the path ``goes_on`` (paused at the thought budget, or a draft to refine)."""
        chunks = cont.chunks
        if cont.finish == "thought_ended":
            chunks = self._cut_thought_end(chunks)
        node = parent
        for chunk in chunks:
            node = self._new(node, self.cfg.granularity, chunk.state, [t.token_id for t in chunk.tokens],
                             chunk.tokens, chunk.text)
        if cont.terminal and not goes_on:
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

    def _parse_path(self, nodes: list[Node]) -> tuple[str, ParsedAnswer, list[str]]:
        return parse_path(nodes, lambda part: self.backend.decode([t for n in part for t in n.token_ids]),
                          self.request.hints, chinese_target=self.request.tgt.code == "zh")

    def _score(self, finished: list[Node]) -> list[tuple[Node, float]]:
        paths = []
        for leaf in finished:
            nodes = leaf.path()
            text, parsed, _ = self._parse_path(nodes)
            paths.append(RolloutPath(self.request, [s for n in nodes for s in n.scores], text, parsed.translation))
        scored = []
        for leaf, path, value in zip(finished, paths, self.s.reward.score(paths)):
            reward, details = value.value, {"translation": path.translation, **value.details}
            if not path.translation:
                # A rollout that never reached an answer is worth nothing, however confident: repetition
                # loops cut by the token budget are exactly what a small model is most confident about.
                reward, details = 0.0, {**details, "raw_value": value.value, "reason": "no translation: reward 0"}
            self.terminals.append((leaf, reward, details))
            scored.append((leaf, reward))
        return scored

    def _best(self) -> tuple[str, float | None]:
        if not self.terminals:
            return "", None
        leaf, value, details = max(self.terminals, key=lambda t: t[1])
        return details["translation"], value

    def _direct(self) -> tuple[Candidate, TranslationResult, dict]:
        """The ``direct`` translation (one greedy decode, made once per search) as a candidate, scored by the
        search's reward; the candidate is a fresh copy each time (ranking sets its score)."""
        if self._direct_made is None:
            from translator.strategies.greedy import fallback_direct

            # counted in the progress line; not stopped: a stop returns the best so far, this candidate whole
            hooks = replace(continued(self.hooks, self.generated, self.started), should_stop=None)
            res = fallback_direct(self.backend, self.cfg).translate([self.request], hooks)[0]
            value = self.s.reward.score([RolloutPath(self.request, res.tokens, res.raw_output, res.translation)])[0]
            self._direct_made = Candidate(res.translation, value.value), res, value.details
        candidate, res, details = self._direct_made
        return replace(candidate), res, details

    def _select(self, root: Node, rule: str):
        """The chosen path (``[root]`` when the direct translation is used), the direct candidate, result and
        details if it is used, every candidate ranked by ``rule``, and whether the direct translation is a
        fallback: no rollout reached a translation, so the search answers as ``direct`` would. Under the
        visits rule, a most-visited chain that ends without a translation gives way to the most-visited
        terminal that has one."""
        direct = self._direct() if self.cfg.select_with_direct else None
        candidates = [Candidate(d["translation"], value, node) for node, value, d in self.terminals]
        similarity = utility(self.cfg.mbr_utility, self.request.tgt.code)
        ranked = rank(candidates + ([direct[0]] if direct else []), rule, similarity)
        if self.cfg.fallback and all(c.node is None for c in ranked):  # no rollout answered: a fallback
            direct = direct or self._direct()
            return [root], direct, rank([direct[0]], rule, similarity), True
        if rule == "visits" or not ranked:
            path = chosen_path(root)
            if not ranked or any(node is path[-1] and d["translation"] for node, _, d in self.terminals):
                return path, None, ranked, False
        if ranked[0].node is None:
            return [root], direct, ranked, False
        return ranked[0].node.path(), None, ranked, False

    def _selections(self, root: Node, chosen: str) -> dict[str, str]:
        """The translation each ``--select`` rule returns from this very tree (with this search's direct
        candidate, if it has one), so one search compares the rules (``eval.bench`` scores each); the
        configured rule's ``chosen`` translation is known already."""
        out = {}
        for rule in SELECT_RULES:
            if rule == self.cfg.select:
                out[rule] = chosen
                continue
            path, direct_won, _, _ = self._select(root, rule)
            out[rule] = direct_won[0].translation if direct_won else self._parse_path(path)[1].translation
        return out

    def _result(self, root: Node, start: float, run: UctRun, stats0) -> TranslationResult:
        path, direct_won, ranked, fallback = self._select(root, self.cfg.select)
        leaf = path[-1]
        text, parsed, cleanup = self._parse_path(path)
        translation = parsed.translation
        tokens = [s for n in path for s in n.scores]
        chosen = next((t for t in self.terminals if t[0] is leaf), None)
        final = direct_won[0].translation if direct_won else translation
        alternatives = [Alternative(c.translation, c.reward, c.node.visits if c.node else 0,
                                    c.node.id if c.node else -1, c.score)
                        for c in ranked if c.translation != final]
        stats = self.backend.stats
        tree = to_search_tree(root, path)
        result = TranslationResult(
            source=self.request.text, src_lang=self.request.src.code, tgt_lang=self.request.tgt.code,
            translation=translation, thought=parsed.thought, raw_output=text, strategy="mcts",
            model=self.backend.name, params=self.s.params(), tokens_generated=stats.generated_tokens - stats0[2],
            wall_time_s=time.perf_counter() - start, format_ok=parsed.format_ok, confidence=mean_confidence(tokens),
            logprobs_source=self.backend.logprobs_source, tokens=tokens,
            steps=[PathStep(n.id, n.kind, n.text, len(n.token_ids), mean_confidence(n.scores), n.visits, n.mean)
                   for n in path[1:]],
            tree=tree, alternatives=alternatives[:5],
            reward={"name": self.s.reward.name, "select": self.cfg.select, "value": chosen[1] if chosen else None,
                    "details": chosen[2] if chosen else {}},
            stats={"rollouts": run.rollouts, "iterations": run.iterations, "nodes": len(self.nodes),
                   "tree_tokens": tree.unique_tokens, "forwarded_tokens": stats.forwarded_tokens - stats0[0],
                   "recomputed_tokens": stats.recomputed_tokens - stats0[1],
                   "peak_cache_mb": round(stats.peak_cache_bytes / 2**20, 1),
                   # thoughts forced at their budget (not the root's own answer opening under thought=false)
                   "forced_answers": sum(1 for n in self.nodes if n.kind == "force" and n.parent is not root),
                   "refines": sum(1 for n in self.nodes if n.kind == "refine"),
                   "senses": sum(1 for n in self.nodes if n.kind == "sense"),
                   "selections": self._selections(root, final)},
            hints=[h.to_dict() for h in self.request.hints], cleanup=cleanup,
        )
        if direct_won:  # the direct translation beat every terminal of the tree, or none had one (fallback)
            candidate, res, details = direct_won
            steps = [replace(step, kind="fallback") for step in res.steps] if fallback else res.steps
            result = replace(result, translation=res.translation, thought="", raw_output=res.raw_output,
                             format_ok=True, confidence=res.confidence, tokens=res.tokens, steps=steps,
                             answered=res.answered,
                             reward={**result.reward, "value": candidate.reward, "details": details,
                                     "chosen": "direct"},
                             stats={**result.stats, **({"fallback": "direct"} if fallback else {})})
        return result
