"""The app's view builders on real results: a tiny mcts search and a cot pass with smollm2-135m.

Hostile or unusual content (a <script> in model text, a reflection step) is put into copies of those real
results, so the markup is checked against the shapes the search really produces.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from app import views
from translator.api import Translator
from translator.backends.transformers_backend import TransformersBackend
from translator.result import Alternative, PathStep, TranslationResult
from translator.strategies.mcts import REFLECTION

SENTENCE = "我今天太累了，只想躺平。"  # smollm2 echoes it: CJK characters of several byte-tokens
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a CPU shared with other jobs, two threads per process oversubscribe the cores and
    a tiny search takes ten times longer. Restored afterwards for the rest of the session."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def backend(small_model):
    return TransformersBackend(small_model)


@pytest.fixture(scope="module")
def mcts_result(backend) -> TranslationResult:
    result = Translator(backend=backend).translate(SENTENCE, "zh", "en", strategy="mcts", granularity="mini-32",
                                                   rollouts=4, children=2, max_new_tokens=40, thought_budget=0,
                                                   fallback=False, select="visits")  # a path through the tree
    return TranslationResult.from_json(result.to_json())  # the views must work on a loaded trace too


@pytest.fixture(scope="module")
def cot_result(backend) -> TranslationResult:
    """One plain greedy pass (no thought budget): the shape most of these tests take apart."""
    return Translator(backend=backend).translate(SENTENCE, "zh", "en", strategy="cot", max_new_tokens=24,
                                                 thought_budget=0, fallback=False)


def test_forced_answer_is_marked_as_injected(backend):
    result = Translator(backend=backend).translate(SENTENCE, "zh", "en", strategy="cot", max_new_tokens=24,
                                                   thought_budget=8)
    page = views.path_html(result)
    assert [s.kind for s in result.steps] == ["thought", "force", "answer"]
    assert page.count('<li class="mt-step') == 3 and page.count("mt-step-reflection") == 1
    assert "forced answer" in page and "injected, no score" in page


def _classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def test_colour_scale_endpoints_and_clamping():
    low, mid, high = (c for _, c in views.SCALE_STOPS)
    assert views.score_colour(0.0) == low
    assert views.score_colour(0.5) == mid
    assert views.score_colour(1.0) == high
    assert views.score_colour(-3.0) == low and views.score_colour(7.0) == high
    assert views.score_colour(None) == views.NO_SCORE == views.score_colour(float("nan"))
    reds = [int(views.score_colour(x)[1:3], 16) for x in (0.5, 0.75, 1.0)]
    assert reds == sorted(reds, reverse=True)  # towards green, red fades
    assert re.fullmatch(r"#[0-9a-f]{6}", views.score_colour(0.123))


def test_path_lists_steps_in_order_with_figures(mcts_result):
    page = views.path_html(mcts_result)
    items = re.findall(r'<li class="mt-step[^"]*" data-node="(\d+)"', page)
    assert [int(i) for i in items] == [s.node_id for s in mcts_result.steps]
    assert [int(i) for i in items] == mcts_result.tree.chosen_path[1:]
    for step in mcts_result.steps:
        assert f"visits {step.visits}" in page and f"value {step.value:.3f}" in page
        if step.kind in views.INJECTED:
            continue  # the forced answer's opening: injected, no score (checked below)
        assert f"background:{views.score_colour(step.confidence)}\">confidence {step.confidence:.2f}" in page
    if any(step.kind == "force" for step in mcts_result.steps):
        assert "forced answer" in page and "injected, no score" in page


def test_path_repairs_characters_cut_between_steps(cot_result, mcts_result, backend):
    # Cut the greedy pass (which starts by echoing the Chinese source) in two inside a character, as a
    # mini-32 boundary does: each half of the character then decodes to U+FFFD on its own.
    ids = [t.token_id for t in cot_result.tokens]
    cut = next(i for i in range(1, len(ids)) if backend.decode(ids[:i]).endswith("\ufffd"))
    result = copy.deepcopy(cot_result)
    result.steps = [PathStep(1, "mini-32", backend.decode(ids[:cut]), cut, None),
                    PathStep(2, "mini-32", backend.decode(ids[cut:]), len(ids) - cut, None)]
    assert "\ufffd" in result.steps[0].text
    fixed = views.step_texts(result, backend.decode)
    assert not any("\ufffd" in t for t in fixed)
    assert "".join(fixed) == backend.decode(ids)
    assert views.step_texts(result) == [s.text for s in result.steps]  # no tokenizer: shown as stored
    assert "".join(views.step_texts(mcts_result, backend.decode)) == backend.decode(
        [t.token_id for t in mcts_result.tokens])  # the real search path reads the same, cut or not


def test_path_marks_reflection_steps(mcts_result):
    result = copy.deepcopy(mcts_result)
    result.steps[0] = dataclasses.replace(result.steps[0], kind="reflection", confidence=None, text=REFLECTION)
    page = views.path_html(result)
    assert page.count("mt-step-reflection") == 1
    assert "mt-badge-reflection" in page and "injected, no score" in page
    assert "Wait! Maybe I made some mistakes!" in page


def test_cot_path_is_one_step(cot_result):
    page = views.path_html(cot_result)
    assert page.count('<li class="mt-step') == 1
    assert "visits" not in page  # a greedy pass has no search figures


def test_tokens_grouped_into_whole_characters(cot_result, backend):
    tokens = cot_result.tokens
    groups = views.group_tokens(tokens, backend.decode)
    assert sum(len(g.tokens) for g in groups) == len(tokens)
    assert any(len(g.tokens) > 1 for g in groups)  # the echoed Chinese has characters of 2-3 byte-tokens
    assert not any("\ufffd" in g.text for g in groups[:-1])  # only a cut at the very end can stay partial
    page = views.tokens_html(tokens, backend.decode)
    assert page.count('class="mt-tok"') == len(groups)
    assert views.tokens_html(tokens).count('class="mt-tok"') == len(tokens)
    colours = re.findall(r'<span class="mt-tok" style="background:(#[0-9a-f]{6})"', page)
    assert colours == [views.score_colour(min(t.confidence for t in g.tokens)) for g in groups]  # weakest decides
    assert f"c={tokens[0].confidence:.3f}" in page


def test_tree_svg_has_every_node_and_highlights_the_chosen_path(mcts_result):
    tree = mcts_result.tree
    svg = ET.fromstring(views.tree_svg(tree))  # well-formed XML, so also valid inline in HTML
    nodes = [g for g in svg.iter(f"{SVG}g") if "mt-node" in _classes(g)]
    assert len(nodes) == len(tree.nodes) == mcts_result.stats["nodes"]
    on_path = [int(g.get("data-node")) for g in nodes if "mt-on-path" in _classes(g)]
    assert sorted(on_path) == sorted(tree.chosen_path)
    path_edges = [p for p in svg.iter(f"{SVG}path") if "mt-edge-path" in _classes(p)]
    assert len(path_edges) == len(tree.chosen_path) - 1
    assert len(list(svg.iter(f"{SVG}path"))) == len(tree.nodes) - 1
    terminals = [g for g in nodes if "mt-terminal" in _classes(g)]
    assert len(terminals) == sum(n.terminal for n in tree.nodes) and all(g.find(f"{SVG}rect") is not None
                                                                       for g in terminals)


def test_tree_layout_sizes_by_visits_and_nests_children(mcts_result):
    tree = mcts_result.tree
    placed = views.layout_tree(tree)
    assert set(placed) == {n.id for n in tree.nodes}
    root = tree.nodes[0]
    assert placed[root.id].r == max(p.r for p in placed.values())  # the root has every visit
    for node in tree.nodes:
        for child in node.children:
            assert placed[child].x > placed[node.id].x
            assert placed[child].r <= placed[node.id].r
        if node.children:
            ys = [placed[c].y for c in node.children]
            assert min(ys) <= placed[node.id].y <= max(ys)
    leaves = [placed[n.id].y for n in tree.nodes if not n.children]
    assert len(set(leaves)) == len(leaves)


def test_tree_html_has_details_for_every_node(mcts_result):
    page = views.tree_html(mcts_result)
    tree = mcts_result.tree
    for node in tree.nodes:
        info = re.search(rf'<div class="mt-node-info" data-for="{node.id}" hidden>(.*?)</div></div>', page, re.S)
        assert info, node.id
        assert f"Node {node.id} · {node.kind}" in info.group(1)
        assert f"<th>visits</th><td>{node.visits}</td>" in info.group(1)
    assert f"{len(tree.nodes)} nodes" in page
    assert "mt-tree-detail" in page


def test_model_text_is_escaped_everywhere(mcts_result):
    result = copy.deepcopy(mcts_result)
    result.source = HOSTILE
    result.translation = HOSTILE
    result.tree.nodes[1].text = HOSTILE
    result.steps[0] = dataclasses.replace(result.steps[0], text=HOSTILE)
    result.tokens[0] = dataclasses.replace(result.tokens[0], text=HOSTILE)
    result.alternatives = [Alternative(HOSTILE, 0.5, 1, result.tree.nodes[-1].id)]
    pages = [views.path_html(result), views.tokens_html(result.tokens), views.tree_html(result),
             views.tree_document(result), views.summary_html(result),
             views.progress_html(1, 4, 2.0, HOSTILE, 0.5)]
    for page in pages:
        assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in views.tree_html(result)
    ET.fromstring(views.tree_svg(result.tree))  # hostile text in aria-label/title keeps the SVG well-formed
    document = views.tree_document(result)
    assert document.count("<script") == 1  # ours, and nothing the model wrote


def test_tree_document_is_self_contained(mcts_result):
    document = views.tree_document(mcts_result)
    assert document.startswith("<!doctype html>")
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", document)
    assert re.findall(r"https?://[^\"' ]+", document) == ["http://www.w3.org/2000/svg"]  # a namespace, not a fetch
    assert views.TREE_JS.strip() in document


def test_no_tree_for_cot(cot_result):
    assert "No search tree" in views.tree_html(cot_result)
    assert views.alternative_choices(cot_result) == ([(f"{cot_result.translation}  ·  chosen (reward —)",
                                                       cot_result.translation)] if cot_result.translation else [])


def test_alternatives_follow_the_chosen_translation(mcts_result):
    result = copy.deepcopy(mcts_result)
    result.translation = "I'm so tired today, I just want to lie flat."
    result.alternatives = [Alternative("I'm beat; I just want to chill.", 0.61, 1, 2),
                           Alternative("Too tired, lying flat.", 0.55, 2, 4)]
    choices = views.alternative_choices(result)
    assert [value for _, value in choices] == [result.translation] + [a.translation for a in result.alternatives]
    assert "chosen" in choices[0][0] and "reward 0.610, 1 visit" in choices[1][0] and "2 visits" in choices[2][0]


def test_a_direct_translation_chosen_over_the_tree_says_so(mcts_result):
    result = copy.deepcopy(mcts_result)
    result.translation, result.reward = "So tired.", {**result.reward, "select": "mbr", "chosen": "direct"}
    result.alternatives = [Alternative("I'm beat.", 0.61, 1, 2, 0.42), Alternative("Too tired.", 0.55, 0, -1, 0.40)]
    choices = views.alternative_choices(result)
    assert "chosen by mbr, the direct translation" in choices[0][0]
    assert "agreement 0.420, 1 visit" in choices[1][0] and "agreement 0.400, the direct translation" in choices[2][0]
    assert "the direct translation won the selection (mbr)" in views.summary_html(result)
    result.stats = {**result.stats, "fallback": "direct"}  # no rollout answered: said by the warning instead
    summary = views.summary_html(result)
    assert "won the selection" not in summary and "the reasoning reached no translation" in summary


def test_summary_warns_when_no_translation_was_parsed(mcts_result):
    result = copy.deepcopy(mcts_result)
    result.translation, result.answered, result.format_ok = "", False, False
    assert "no translation could be read" in views.summary_html(result)
    assert "no answer" in views.summary_html(result)
    result.translation, result.answered = "Tired.", True
    leaf = result.tree.node(result.tree.chosen_path[-1])
    leaf.truncated = False  # ended at end-of-sequence without </Output>: answered, nothing to warn about
    assert "answered" in views.summary_html(result) and "mt-warn" not in views.summary_html(result)
    leaf.truncated = True  # cut by the token budget: the translation may be incomplete
    assert "cut off by the token limit before its &lt;Output&gt; block closed" in views.summary_html(result)
    assert "stopped" not in views.summary_html(result, stopped=True)  # the whole budget ran anyway
    result.stats = {**result.stats, "rollouts": 2}
    assert "2/4 rollouts (stopped: best so far)" in views.summary_html(result, stopped=True)
    result.format_ok = True
    assert "mt-warn" not in views.summary_html(result)
    result.reward = {"name": "confidence", "value": 0.0, "details": {"reason": "no translation: reward 0"}}
    assert "reward confidence 0.000 (no translation: reward 0)" in views.summary_html(result)


def test_summary_warns_of_a_source_in_the_wrong_script_and_of_the_fallback(cot_result):
    result = copy.deepcopy(cot_result)
    assert "check the direction" not in views.summary_html(result)
    result.src_lang = "en"  # Chinese text sent from English: the pickers were left the other way round
    assert "the source looks like Chinese, but the source language is English" in views.summary_html(result)
    result.stats = {**result.stats, "fallback": "direct"}
    assert "the reasoning reached no translation: this is the direct translation" in views.summary_html(result)


def test_the_notes_panel_says_why_a_translation_got_none():
    assert "No dictionary notes for this text" in views.hints_html([])
    why = "Dictionary notes are given for Chinese sources only (--lexicon auto)."
    assert views.hints_html([], why) == f'<div class="mt-empty">{why}</div>'
    from app.ui import _why_no_notes
    from translator.lexicon import load_lexicon

    class _Translator:
        def __init__(self, lexicon):
            self.lexicon = lexicon

    auto = _Translator(load_lexicon(directions=("zh-*", "en-zh"), cedict=False))
    assert "into Chinese only" in _why_no_notes(auto, "en", "fr")
    assert _why_no_notes(auto, "zh", "en") == _why_no_notes(auto, "en", "zh") == ""
    assert "off on this server" in _why_no_notes(_Translator(None), "zh", "en")
