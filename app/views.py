"""Pure view builders: a TranslationResult (or a piece of one) in, an HTML/SVG string or plain data out.

Nothing here imports gradio or touches a model, so every view can be unit-tested on a saved result and
reused outside the app (the downloadable tree is :func:`tree_document`). Model text is untrusted: every
string that came from the model or the user goes through :func:`esc` before it reaches markup.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from translator.languages import direction_warning, resolve_language
from translator.result import PathStep, SearchTree, TokenScore, TranslationResult, TreeNode

# One scale for token confidence c_i, step confidence and node value: all three live in [0, 1]
# (rewards are normalised to [0, 1]), so a colour means the same thing in every panel.
SCALE_STOPS: tuple[tuple[float, str], ...] = ((0.0, "#d73027"), (0.5, "#fee08b"), (1.0, "#66bd63"))
NO_SCORE = "#c8c8c8"  # injected text (reflection) and the root carry no log-probs

# Tree geometry (px): horizontal step per depth level, vertical step per leaf, node radius range.
_DX, _DY, _MARGIN = 56.0, 26.0, 22.0
_R_MIN, _R_MAX = 5.0, 14.0
_LABEL_W = 34.0  # room right of the deepest terminal for its reward label
_MAX_REWARDS_SHOWN = 12


def esc(text: str) -> str:
    """Escape model/user text for HTML and SVG (quotes too: some of it lands in attributes)."""
    return html.escape(text, quote=True)


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def score_colour(score: float | None) -> str:
    """Red (0) through yellow (0.5) to green (1); grey when there is no score. Out-of-range is clamped,
    so a reward slightly outside [0, 1] still gets an end colour instead of an error."""
    if score is None or math.isnan(score):
        return NO_SCORE
    x = min(1.0, max(0.0, score))
    for (x0, c0), (x1, c1) in zip(SCALE_STOPS, SCALE_STOPS[1:]):
        if x <= x1:
            t = (x - x0) / (x1 - x0)
            return _hex([a + (b - a) * t for a, b in zip(_rgb(c0), _rgb(c1))])
    return SCALE_STOPS[-1][1]


def scale_legend(label: str) -> str:
    """A small gradient bar so a reader can map a colour back to a number."""
    gradient = ", ".join(f"{c} {x * 100:.0f}%" for x, c in SCALE_STOPS)
    return (f'<span class="mt-legend"><span>{esc(label)}</span><span>0</span>'
            f'<span class="mt-legend-bar" style="background: linear-gradient(to right, {gradient})"></span>'
            f'<span>1</span></span>')


# --- status line -----------------------------------------------------------------------------------


def progress_html(done: int, budget: int, elapsed_s: float, best: str, best_value: float | None) -> str:
    """The live line under the translation (which shows ``best``) while a search runs."""
    if best_value is None:
        best_part = " · no finished rollout yet"
    else:
        best_part = (f' · best reward so far <span class="mt-chip" style="background:{score_colour(best_value)}">'
                     f'{fmt(best_value)}</span>' + ("" if best else " (no translation could be read from it)"))
    return (f'<div class="mt-status mt-running"><progress max="{max(budget, 1)}" value="{done}"></progress> '
            f'Searching: <b>{done}/{budget}</b> rollouts · {elapsed_s:.0f} s{best_part}</div>')


def waiting_html(elapsed_s: float) -> str:
    return (f'<div class="mt-status mt-running">Waiting for the model: another translation is using it '
            f'({elapsed_s:.0f} s)…</div>')


def message_html(text: str, kind: str = "info") -> str:
    return f'<div class="mt-status mt-{esc(kind)}">{esc(text)}</div>'


def summary_html(result: TranslationResult, *, stopped: bool = False) -> str:
    """One line of facts about a finished run, and a warning when the answer is not trustworthy."""
    parts = [f"<b>{esc(result.strategy)}</b>", esc(result.model)]
    if result.strategy == "mcts":
        rollouts = result.stats.get("rollouts", 0)
        budget = result.params.get("rollouts", rollouts)
        stopped_early = stopped and rollouts < budget
        parts.append(f"{rollouts}/{budget} rollouts" + (" (stopped: best so far)" if stopped_early else ""))
        parts.append(f"{result.stats.get('nodes', 0)} nodes")
        if (result.reward or {}).get("chosen") == "direct" and not result.stats.get("fallback"):
            parts.append(f"the direct translation won the selection ({esc(str(result.reward.get('select')))}) "
                         "over the tree's answers")
    parts.append(f"{result.wall_time_s:.1f} s")
    parts.append(f"{result.tokens_generated} tokens")
    parts.append(f'confidence <span class="mt-chip" style="background:{score_colour(result.confidence)}">'
                 f"{fmt(result.confidence)}</span>")
    if result.reward and result.reward.get("value") is not None:
        reason = (result.reward.get("details") or {}).get("reason")  # e.g. why an answerless path scores 0
        parts.append(f"reward {esc(str(result.reward['name']))} {fmt(result.reward['value'])}"
                     + (f" ({esc(str(reason))})" if reason else ""))
    if result.strategy != "mcts" and result.stats.get("finish") == "stopped":
        parts.append("stopped: what was generated so far")
    parts.append("answered" if result.answered else "<b>no answer</b>")
    warnings = []
    direction = direction_warning(result.source, resolve_language(result.src_lang))
    if direction:
        warnings.append(direction)
    if result.stats.get("fallback"):
        warnings.append("the reasoning reached no translation: this is the direct translation")
    if not result.answered:
        warnings.append("no translation could be read from the model's answer; see the reasoning path")
    elif not result.format_ok and cut_off(result):
        warnings.append("the answer was cut off by the token limit before its <Output> block closed: the "
                        "translation may be incomplete (raise Max new tokens)")
    warn = "".join(f'<div class="mt-warn">{esc(w)}</div>' for w in warnings)
    return f'<div class="mt-status mt-done">{" · ".join(parts)}{warn}</div>'


def cut_off(result: TranslationResult) -> bool:
    """The answer ended because the token budget ran out (not at end-of-sequence or a closing tag): the
    one case where an unclosed Output block says the translation may be missing its end."""
    if result.tree is not None and result.tree.chosen_path:
        return result.tree.node(result.tree.chosen_path[-1]).truncated
    return result.stats.get("finish") in ("length", "stopped")


def alternative_choices(result: TranslationResult) -> list[tuple[str, str]]:
    """(label, translation) pairs for picking: the search's choice first (and the rule that chose it), then
    the other candidates in that rule's order, each with its reward (and, under mbr, its agreement with the
    others), so a translator can prefer one the rule ranked lower."""
    choices = []
    reward = result.reward or {}
    rule = reward.get("select")
    if result.translation:
        how = f"chosen by {rule}" if rule else "chosen"
        if reward.get("chosen") == "direct":
            how += ", the direct translation"
        choices.append((f"{result.translation}  ·  {how} (reward {fmt(reward.get('value'))})", result.translation))
    for alt in result.alternatives:
        origin = "the direct translation" if alt.node_id < 0 else f"{alt.visits} visit{'s' if alt.visits != 1 else ''}"
        agreement = f", agreement {fmt(alt.score)}" if rule == "mbr" and alt.score is not None else ""
        choices.append((f"{alt.translation}  ·  reward {fmt(alt.reward)}{agreement}, {origin}", alt.translation))
    return choices


def live_html(text: str, tokens: int, tokens_per_s: float, elapsed_s: float) -> str:
    """The raw output as it is generated (direct and cot), for the path panel while the model writes."""
    return (f'<div class="mt-path"><div class="mt-path-head">Generating: {tokens} tokens · {tokens_per_s:.1f} '
            f'tokens/s · {elapsed_s:.0f} s</div><div class="mt-live">{esc(text)}</div></div>')


def generating_html(strategy: str, tokens: int, tokens_per_s: float, elapsed_s: float) -> str:
    """The status line while a direct or cot answer is being written."""
    return (f'<div class="mt-status mt-running">Translating with {esc(strategy)}: <b>{tokens}</b> tokens · '
            f'{tokens_per_s:.1f} tokens/s · {elapsed_s:.0f} s</div>')


# --- dictionary notes ------------------------------------------------------------------------------

EMPTY_HINTS = '<div class="mt-empty">Dictionary notes the prompt used appear here.</div>'


def hints_html(hints: Sequence[dict], why_none: str = "") -> str:
    """The dictionary notes a translation's prompt carried (term, senses, where they come from); with none,
    ``why_none`` says why, when it is not just that the text has no noted term."""
    if not hints:
        return f'<div class="mt-empty">{html.escape(why_none or "No dictionary notes for this text.")}</div>'
    items = []
    for h in hints:
        senses = "; ".join(str(s) for s in h.get("senses", ()))
        note = f' <span class="mt-hint-note">{esc(str(h["note"]))}</span>' if h.get("note") else ""
        source = f' <span class="mt-hint-source">({esc(str(h["source"]))})</span>' if h.get("source") else ""
        items.append(f'<li class="mt-hint"><span class="mt-hint-term">{esc(str(h.get("term", "")))}</span>: '
                     f'{esc(senses)}{note}{source}</li>')
    return f'<ul class="mt-hints">{"".join(items)}</ul>'


# --- the chosen reasoning path ---------------------------------------------------------------------


def _chip(label: str, score: float | None) -> str:
    return f'<span class="mt-chip" style="background:{score_colour(score)}">{esc(label)} {fmt(score, 2)}</span>'


# Text the search injected rather than sampled (no log-probs): the paper's reflection sentence, the
# closing of a thought at its budget (budget forcing) and the reopening of a draft for revision (refine),
# with the badge each gets.
INJECTED = {"reflection": "reflection", "force": "forced answer", "refine": "refine", "sense": "sense"}


def _step_html(number: int, step: PathStep, text: str) -> str:
    reflection = step.kind in INJECTED
    badge = f'<span class="mt-badge mt-badge-reflection">{INJECTED[step.kind]}</span>' if reflection else ""
    conf = (f'<span class="mt-chip" style="background:{NO_SCORE}">injected, no score</span>'
            if reflection else _chip("confidence", step.confidence))
    figures = [f"{step.n_tokens} tokens"]
    if step.visits is not None:
        figures.append(f"visits {step.visits}")
    if step.value is not None:
        figures.append(f"value {fmt(step.value)}")
    node = f' data-node="{step.node_id}"' if step.node_id is not None else ""
    return (f'<li class="mt-step{" mt-step-reflection" if reflection else ""}"{node}>'
            f'<div class="mt-step-head"><span class="mt-step-no">{number}</span>'
            f'<span class="mt-kind">{esc(step.kind)}</span>{badge}{conf}'
            f'<span class="mt-figures">{" · ".join(figures)}</span></div>'
            f'<div class="mt-text">{esc(text) or "<i>(empty)</i>"}</div></li>')


def step_texts(result: TranslationResult, decode: Callable[[list[int]], str] | None = None) -> list[str]:
    """Each step's text with whole characters. A mini-N action ends after exactly N tokens, which can cut a
    CJK character's bytes in two, and each half then reads as U+FFFD; with ``decode`` the character is shown
    in the step that holds its last byte (the token view still shows the exact cut)."""
    texts = [s.text for s in result.steps]
    generated = [i for i, s in enumerate(result.steps) if s.kind not in INJECTED]  # injected text has no scores
    if (decode is None or not any("\ufffd" in t for t in texts)
            or sum(result.steps[i].n_tokens for i in generated) != len(result.tokens)):
        return texts
    owner = [i for i in generated for _ in range(result.steps[i].n_tokens)]
    rebuilt = {i: "" for i in generated}
    end = 0
    for group in group_tokens(result.tokens, decode):
        end += len(group.tokens)
        rebuilt[owner[end - 1]] += group.text
    return [rebuilt.get(i, text) for i, text in enumerate(texts)]


def path_html(result: TranslationResult, decode: Callable[[list[int]], str] | None = None) -> str:
    """The chosen path, step by step in order, each with its confidence colour, visits and value."""
    if not result.steps:
        return '<div class="mt-empty">No reasoning steps.</div>'
    head = (f'<div class="mt-path-head">{len(result.steps)} step(s) on the chosen path '
            f'{scale_legend("confidence")}</div>')
    steps = "".join(_step_html(i, s, text)
                    for i, (s, text) in enumerate(zip(result.steps, step_texts(result, decode)), 1))
    return f'<div class="mt-path">{head}<ol class="mt-steps">{steps}</ol></div>'


# --- tokens ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenGroup:
    """Tokens shown as one unit: whole characters, even when the tokenizer split one into bytes."""

    text: str
    tokens: tuple[TokenScore, ...]

    @property
    def confidence(self) -> float:
        # The least confident token decides: in a byte-split character the first byte carries the
        # choice and the rest are near 1, so a mean would hide exactly the hesitation worth seeing.
        return min(t.confidence for t in self.tokens)


def group_tokens(tokens: Sequence[TokenScore], decode: Callable[[list[int]], str] | None = None) -> list[TokenGroup]:
    """Merge byte-level tokens that only decode together (a CJK character is often 2-3 tokens, each of
    which decodes alone to U+FFFD). Without ``decode`` every token stands alone, as stored."""
    if decode is None:
        return [TokenGroup(t.text, (t,)) for t in tokens]
    groups: list[TokenGroup] = []
    pending: list[TokenScore] = []
    for token in tokens:
        pending.append(token)
        text = decode([t.token_id for t in pending])
        if not text.endswith("\ufffd") or len(pending) >= 4:  # a UTF-8 character has at most 4 bytes
            groups.append(TokenGroup(text, tuple(pending)))
            pending = []
    if pending:
        groups.append(TokenGroup(decode([t.token_id for t in pending]), tuple(pending)))
    return groups


def _visible(text: str) -> str:
    """Make a line break inside a coloured token visible before it breaks the line."""
    return esc(text).replace("\n", "↵\n")


def tokens_html(tokens: Sequence[TokenScore], decode: Callable[[list[int]], str] | None = None) -> str:
    """The generated text of the chosen path with each token's background coloured by its c_i."""
    if not tokens:
        return '<div class="mt-empty">No generated tokens.</div>'
    spans = []
    for group in group_tokens(tokens, decode):
        detail = "; ".join(f"c={t.confidence:.3f} logprob={t.logprob:.3f}" for t in group.tokens)
        spans.append(f'<span class="mt-tok" style="background:{score_colour(group.confidence)}" '
                     f'title="{esc(detail)}">{_visible(group.text)}</span>')
    return (f'<div class="mt-tokens-head">{len(tokens)} tokens; hover one for its c_i '
            f'{scale_legend("token confidence")}</div><div class="mt-tokens">{"".join(spans)}</div>')


# --- the search tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedNode:
    """A tree node's place in the drawing: x by depth, y between its first and last leaf."""

    id: int
    x: float
    y: float
    r: float


def layout_tree(tree: SearchTree) -> dict[int, PlacedNode]:
    """Place nodes left to right by depth, leaves one row each in search order, parents centred on their
    children. Iterative: a step-granularity tree can be deeper than Python's recursion limit."""
    by_id = {n.id: n for n in tree.nodes}
    root = next(n for n in tree.nodes if n.parent is None)
    max_visits = max((n.visits for n in tree.nodes), default=0) or 1
    ys: dict[int, float] = {}
    next_row = 0
    stack: list[tuple[TreeNode, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not node.children:
            ys[node.id] = _MARGIN + next_row * _DY
            next_row += 1
        elif children_done:
            ys[node.id] = (ys[node.children[0]] + ys[node.children[-1]]) / 2
        else:
            stack.append((node, True))
            stack.extend((by_id[c], False) for c in reversed(node.children))
    min_depth = root.depth
    return {
        n.id: PlacedNode(n.id, _MARGIN + (n.depth - min_depth) * _DX, ys[n.id],
                         _R_MIN + (_R_MAX - _R_MIN) * math.sqrt(n.visits / max_visits))
        for n in tree.nodes
    }


def _edge(a: PlacedNode, b: PlacedNode, on_path: bool) -> str:
    """A horizontal S-curve from parent to child: siblings fan out without crossing each other."""
    mid = (a.x + b.x) / 2
    cls = "mt-edge mt-edge-path" if on_path else "mt-edge"
    curve = f"M{a.x:.1f},{a.y:.1f} C{mid:.1f},{a.y:.1f} {mid:.1f},{b.y:.1f} {b.x:.1f},{b.y:.1f}"
    return f'<path class="{cls}" d="{curve}"/>'


def _node_label(node: TreeNode) -> str:
    """Short tooltip/aria text; the full text is in the details panel."""
    snippet = " ".join(node.text.split())[:80]
    return (f"node {node.id} ({node.kind}), visits {node.visits}, value {fmt(node.mean_value)}"
            + (f": {snippet}" if snippet else ""))


def _node_svg(node: TreeNode, p: PlacedNode) -> str:
    classes = ["mt-node"]
    if node.on_path:
        classes.append("mt-on-path")
    if node.terminal:
        classes.append("mt-terminal")
    if node.truncated:
        classes.append("mt-truncated")
    if node.kind in INJECTED:
        classes.append("mt-reflection")
    fill = score_colour(node.mean_value if node.visits else None)
    if node.terminal:  # squares end a rollout, so finished answers stand out from reasoning steps
        shape = (f'<rect x="{p.x - p.r:.1f}" y="{p.y - p.r:.1f}" width="{2 * p.r:.1f}" height="{2 * p.r:.1f}" '
                 f'rx="2" fill="{fill}"/>')
    else:
        shape = f'<circle cx="{p.x:.1f}" cy="{p.y:.1f}" r="{p.r:.1f}" fill="{fill}"/>'
    label = esc(_node_label(node))
    return (f'<g class="{" ".join(classes)}" data-node="{node.id}" tabindex="0" role="button" '
            f'aria-label="{label}">{shape}<title>{label}</title></g>')


def tree_svg(tree: SearchTree) -> str:
    """The tree as standalone SVG: size = visits, fill = mean value, chosen path drawn in blue on top."""
    placed = layout_tree(tree)
    width = max(p.x for p in placed.values()) + _MARGIN + _R_MAX + _LABEL_W
    height = max(p.y for p in placed.values()) + _MARGIN + _R_MAX
    path_edges = set(zip(tree.chosen_path, tree.chosen_path[1:]))
    edges = [(n.parent, n.id) for n in tree.nodes if n.parent is not None]
    # Off-path edges first, so the chosen path is never hidden under them.
    edge_svg = [_edge(placed[a], placed[b], False) for a, b in edges if (a, b) not in path_edges]
    edge_svg += [_edge(placed[a], placed[b], True) for a, b in edges if (a, b) in path_edges]
    nodes = sorted(tree.nodes, key=lambda n: n.on_path)
    node_svg = [_node_svg(n, placed[n.id]) for n in nodes]
    # A finished answer's reward, readable without a click. Kept out of the node's <g>, so that a node's
    # clickable area is its shape alone.
    values = [f'<text x="{placed[n.id].x + placed[n.id].r + 3:.1f}" y="{placed[n.id].y + 4:.1f}">'
              f"{n.mean_value:.2f}</text>" for n in tree.nodes if n.terminal and n.visits]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="mt-tree-svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="group" '
            f'aria-label="search tree, {len(tree.nodes)} nodes">'
            f'<g class="mt-edges">{"".join(edge_svg)}</g><g class="mt-nodes">{"".join(node_svg)}</g>'
            f'<g class="mt-node-values">{"".join(values)}</g></svg>')


def _node_info(node: TreeNode, answer: str | None) -> str:
    """The hidden details block the click handler copies into the panel."""
    flags = [f for f, on in (("on chosen path", node.on_path), ("terminal", node.terminal),
                             ("truncated by the token budget", node.truncated)) if on]
    rewards = ", ".join(fmt(r) for r in node.rewards[:_MAX_REWARDS_SHOWN])
    if len(node.rewards) > _MAX_REWARDS_SHOWN:
        rewards += f", … ({len(node.rewards)} in all)"
    rows = [("visits", str(node.visits)), ("mean value", fmt(node.mean_value if node.visits else None)),
            ("confidence", fmt(node.confidence)), ("tokens", str(node.n_tokens)), ("depth", str(node.depth)),
            ("rewards", rewards or "—")]
    if answer is not None:
        rows.append(("translation", answer or "(none parsed)"))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    if node.text:
        text = esc(node.text)
    else:
        text = "<i>(the root: the prompt, no generated text)</i>" if node.kind == "root" else "<i>(empty)</i>"
    return (f'<div class="mt-node-info" data-for="{node.id}" hidden>'
            f'<div class="mt-info-head">Node {node.id} · {esc(node.kind)}'
            f'{"".join(f" · {esc(f)}" for f in flags)}</div>'
            f'<table class="mt-info-table">{table}</table><div class="mt-text">{text}</div></div>')


def tree_html(result: TranslationResult) -> str:
    """Tree, legend, details panel and the per-node details the click handler (TREE_JS) shows. The panel
    sits beside the canvas and sticks to the top while the page scrolls, so a clicked node's details are
    in view wherever the node is."""
    tree = result.tree
    if tree is None or not tree.nodes:
        return '<div class="mt-empty">No search tree: only the mcts strategy builds one.</div>'
    answers = {a.node_id: a.translation for a in result.alternatives}
    if tree.chosen_path:
        answers[tree.chosen_path[-1]] = result.translation
    legend = (f'<div class="mt-tree-legend">{len(tree.nodes)} nodes · size = visits · '
              f'{scale_legend("fill = mean value")} · <span class="mt-key-path">chosen path</span> · '
              f'■ terminal (dashed: truncated) · <span class="mt-key-reflection">○</span> reflection · '
              f'click a node for its text</div>')
    infos = "".join(_node_info(n, answers.get(n.id) if n.terminal else None) for n in tree.nodes)
    return (f'<div class="mt-tree">{legend}<div class="mt-tree-canvas">{tree_svg(tree)}</div>'
            f'<div class="mt-tree-detail" aria-live="polite"><i>Click a node to see its text and figures.</i>'
            f'</div><div class="mt-node-infos">{infos}</div></div>')


# Runs with ``element`` bound to the tree's container: gradio's gr.HTML(js_on_load=...) provides it,
# the downloaded document binds it to ``document``. Delegated listeners survive re-rendered values.
TREE_JS = """
const mtShow = (g) => {
  const id = g.getAttribute('data-node');
  const root = g.closest('.mt-tree') || element;
  const info = root.querySelector('.mt-node-info[data-for="' + id + '"]');
  const panel = root.querySelector('.mt-tree-detail');
  if (!info || !panel) return;
  panel.innerHTML = info.innerHTML;
  root.querySelectorAll('.mt-node.mt-selected').forEach((n) => n.classList.remove('mt-selected'));
  g.classList.add('mt-selected');
  // A node low on the screen puts the top of its panel near the fold: bring the details into view.
  if (panel.scrollIntoView) panel.scrollIntoView({block: 'nearest'});
};
element.addEventListener('click', (e) => {
  const g = e.target.closest && e.target.closest('.mt-node');
  if (g) mtShow(g);
});
element.addEventListener('keydown', (e) => {
  const g = (e.key === 'Enter' || e.key === ' ') && e.target.closest && e.target.closest('.mt-node');
  if (g) { e.preventDefault(); mtShow(g); }
});
"""

CSS = """
.mt-chip { display: inline-block; padding: 0 .45em; border-radius: .6em; color: #111; font-size: .85em;
  white-space: nowrap; }
.mt-legend { display: inline-flex; align-items: center; gap: .3em; font-size: .8em; opacity: .85;
  margin-left: .6em; }
.mt-legend-bar { display: inline-block; width: 6em; height: .7em; border-radius: .35em; }
.mt-status { padding: .35em .1em; font-size: .95em; }
.mt-status progress { vertical-align: middle; width: 8em; }
.mt-warn { color: #b45309; margin-top: .2em; }
.mt-error { color: #b91c1c; }
.mt-empty { opacity: .7; font-style: italic; padding: .5em 0; }
.mt-path-head, .mt-tokens-head { font-size: .85em; opacity: .9; margin-bottom: .4em; }
.mt-steps { list-style: none; padding: 0; margin: 0; }
.mt-step { border-left: 4px solid #9ca3af; padding: .3em .6em; margin: 0 0 .5em 0; }
.mt-step-reflection { border-left-color: #7c3aed; background: rgba(124, 58, 237, .08); }
.mt-step-head { display: flex; flex-wrap: wrap; gap: .45em; align-items: center; font-size: .85em; }
.mt-step-no { font-weight: 700; min-width: 1.4em; }
.mt-kind { font-family: ui-monospace, monospace; opacity: .8; }
.mt-badge-reflection { background: #7c3aed; color: #fff; border-radius: .5em; padding: 0 .45em; }
.mt-figures { opacity: .8; }
.mt-text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
  font-size: .85em; margin-top: .25em; }
.mt-tokens { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
  font-size: .9em; line-height: 1.7; }
.mt-tok { color: #111; border-radius: 2px; padding: 0 1px; margin: 0 1px 0 0; }
.mt-tree-legend { font-size: .85em; }
.mt-key-path { color: #2563eb; font-weight: 700; }
.mt-key-reflection { color: #7c3aed; font-weight: 700; }
.mt-tree-canvas { overflow: auto; max-height: 560px; border: 1px solid rgba(128, 128, 128, .3);
  border-radius: 6px; }
.mt-tree-svg { display: block; }
.mt-edge { fill: none; stroke: #9ca3af; stroke-width: 1.2; }
.mt-edge-path { stroke: #2563eb; stroke-width: 3; }
.mt-node { cursor: pointer; }
.mt-node circle, .mt-node rect { stroke: #4b5563; stroke-width: 1; }
.mt-node.mt-on-path circle, .mt-node.mt-on-path rect { stroke: #2563eb; stroke-width: 2.5; }
.mt-node.mt-reflection circle, .mt-node.mt-reflection rect { stroke: #7c3aed; stroke-width: 2.5; }
.mt-node.mt-truncated rect { stroke-dasharray: 3 2; }
.mt-node:hover circle, .mt-node:hover rect, .mt-node:focus circle, .mt-node:focus rect { stroke: #111;
  stroke-width: 2.5; }
.mt-node.mt-selected circle, .mt-node.mt-selected rect { stroke: #f97316; stroke-width: 3.5; }
.mt-node:focus { outline: none; }
.mt-tree { display: grid; grid-template-columns: minmax(0, 1fr) minmax(16em, 24em); gap: .4em .8em;
  align-items: start; }
.mt-tree-legend { grid-column: 1 / -1; }
.mt-tree-detail { padding: .5em .7em; border: 1px solid rgba(128, 128, 128, .3); border-radius: 6px;
  min-height: 3em; position: sticky; top: .5em; max-height: 560px; overflow: auto; }
@media (max-width: 900px) { .mt-tree { grid-template-columns: minmax(0, 1fr); } }
.mt-hints { list-style: none; padding: 0; margin: 0; font-size: .9em; }
.mt-hint { margin: 0 0 .45em 0; }
.mt-hint-term { font-weight: 700; }
.mt-hint-source { opacity: .7; font-size: .85em; }
.mt-live { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace; font-size: .85em; }
.mt-info-head { font-weight: 700; margin-bottom: .3em; }
.mt-info-table { border-collapse: collapse; font-size: .85em; margin-bottom: .3em; }
.mt-tree .mt-info-table, .mt-tree .mt-info-table tr { border: 0; background: none; margin: 0 0 .3em 0; }
.mt-tree .mt-info-table th, .mt-tree .mt-info-table td { border: 0; background: none; padding: 0 1em 0 0;
  text-align: left; vertical-align: top; }
.mt-tree .mt-info-table th { font-weight: 600; }
.mt-node-values { font-size: 10px; fill: currentColor; opacity: .8; pointer-events: none; }
"""


def tree_document(result: TranslationResult) -> str:
    """The tree as one self-contained HTML file (no external scripts), for download and offline viewing."""
    title = f"Search tree: {result.source[:60]}"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}{CSS}</style></head><body>"
            f"<h1>Search tree</h1><p><b>Source</b> ({esc(result.src_lang)}): {esc(result.source)}<br>"
            f"<b>Translation</b> ({esc(result.tgt_lang)}): {esc(result.translation) or '<i>(none)</i>'}<br>"
            f"<b>Model</b>: {esc(result.model)} · <b>strategy</b>: {esc(result.strategy)}</p>"
            f"{tree_html(result)}<script>(function (element) {{{TREE_JS}}})(document);</script></body></html>")
