"""Rewards by name, each checked on hand-built inputs against a computation done here independently."""

import math

import pytest

from translator.errors import InputError
from translator.languages import resolve_language
from translator.prompt import TranslationRequest
from translator.result import TokenScore
from translator.rewards import (REGISTRY, REWARDS, BoostedProbReward, CombinedReward, RewardContext, RolloutPath,
                                dominant_count, make_reward, reward_configs)
from translator.strategies.mcts import MctsConfig

REQUEST = TranslationRequest("他今天摸鱼了。", resolve_language("zh"), resolve_language("en"))


def _tok(token_id: int, probs: list[float], ids: list[int]) -> TokenScore:
    """A token whose top-5 are ``ids`` with probabilities ``probs`` (sorted high to low)."""
    lps = [math.log(p) for p in probs]
    own = lps[ids.index(token_id)] if token_id in ids else math.log(0.001)
    return TokenScore(token_id, f"t{token_id}", own, ids, lps)


# Three positions: a near-certain token; a token sharing its mass with a synonym (two dominant tokens);
# a token outside the dominant set.
TOKENS = [
    _tok(1, [0.90, 0.04, 0.03, 0.02, 0.01], [1, 2, 3, 4, 5]),
    _tok(7, [0.45, 0.43, 0.05, 0.04, 0.03], [6, 7, 8, 9, 10]),
    _tok(13, [0.50, 0.20, 0.15, 0.10, 0.05], [11, 12, 13, 14, 15]),
]


class FakeForced:
    """Stands in for the teacher-forced scorer: every translation reads as TOKENS."""

    def __init__(self):
        self.calls = 0

    def token_scores(self, request, translation):
        self.calls += 1
        return TOKENS


def _context() -> RewardContext:
    return RewardContext(backend=None, _forced=FakeForced())


def _pair(translation: str, request: TranslationRequest = REQUEST) -> RolloutPath:
    return RolloutPath(request, [], translation, translation)


def test_forced_confidence_is_the_mean_of_c_i():
    value = make_reward("forced-confidence", _context()).score([_pair("He slacked off today.")])[0].value
    # c_i = p(t_i) / (sum of the top-5 probabilities); each top-5 here sums to 1.
    assert value == pytest.approx((0.90 / 1.0 + 0.43 / 1.0 + 0.15 / 1.0) / 3)


def test_logprob_is_the_geometric_mean_probability():
    value = make_reward("logprob", _context()).score([_pair("x")])[0]
    assert value.value == pytest.approx((0.90 * 0.43 * 0.15) ** (1 / 3))
    assert value.details["mean_logprob"] == pytest.approx(math.log(0.90 * 0.43 * 0.15) / 3)


class RecordingForced(FakeForced):
    def __init__(self):
        super().__init__()
        self.asked = []

    def token_scores(self, request, text):
        self.asked.append((request, text))
        return super().token_scores(request, text)


def test_channel_scores_the_source_after_a_prompt_to_translate_the_candidate_back():
    forced = RecordingForced()
    value = make_reward("channel", RewardContext(_forced=forced)).score([_pair("He slacked off today.")])[0]
    (request, text), = forced.asked
    assert (request.text, request.src.code, request.tgt.code) == ("He slacked off today.", "en", "zh")
    assert not request.hints and text == REQUEST.text
    assert value.value == pytest.approx((0.90 * 0.43 * 0.15) ** (1 / 3))
    assert value.details["tokens"] == 3


def test_channel_equals_teacher_forcing_by_hand(small_backend, small_model):
    from translator.prompt import build_prompt

    candidate = "He slacked off at work today."
    value = make_reward("channel", RewardContext(small_backend)).score([_pair(candidate)])[0].value
    # Independently: the reverse prompt built by hand, the source's ids plus the end token, one forward pass.
    reverse = TranslationRequest(candidate, resolve_language("en"), resolve_language("zh"))
    tok = small_model.tokenizer
    ids = tok.encode(REQUEST.text, add_special_tokens=False) + [tok.eos_token_id]
    fresh = type(small_backend)(small_model)
    scores = fresh.score_forced(fresh.start(build_prompt(tok, reverse, reasoning=False)), ids)
    assert [s.token_id for s in scores] == ids
    assert value == pytest.approx(math.exp(sum(s.logprob for s in scores) / len(ids)), rel=1e-4)
    # A candidate that has nothing to do with the source explains it worse.
    unrelated = make_reward("channel", RewardContext(small_backend)).score([_pair("The weather is nice.")])[0]
    assert 0 < unrelated.value < value < 1


def test_dominant_set_ends_at_the_last_big_drop():
    # 0.90 -> 0.04 is a drop; 0.04 -> 0.03 is not (0.01 < 0.012); 0.03 -> 0.02 and 0.02 -> 0.01 are.
    assert dominant_count([0.90, 0.04, 0.03, 0.02, 0.01], 0.3, 0.005) == 4
    assert dominant_count([0.90, 0.04, 0.03, 0.02, 0.01], 0.3, 0.015) == 1  # a larger minimum gap
    assert dominant_count([0.45, 0.43, 0.05, 0.04, 0.03], 0.3, 0.005) == 2
    # 0.50 -> 0.20 is a drop (0.30 > 0.15); 0.20 -> 0.15 is not (0.05 < 0.06); 0.15 -> 0.10 is (0.05 > 0.045);
    # 0.10 -> 0.05 is too (0.05 > 0.03): the last drop is after the 4th token.
    assert dominant_count([0.50, 0.20, 0.15, 0.10, 0.05], 0.3, 0.005) == 4
    assert dominant_count([0.2, 0.2, 0.2, 0.2, 0.2], 0.3, 0.005) == 0


def test_boostedprob_boosts_dominant_tokens_to_their_mass():
    value = make_reward("boostedprob", _context()).score([_pair("x")])[0].value
    # token 1 is among four dominant tokens: 0.90 + 0.04 + 0.03 + 0.02; token 7 is one of two: 0.45 + 0.43;
    # token 13 is among four: 0.50 + 0.20 + 0.15 + 0.10.
    assert value == pytest.approx((0.99 + 0.88 + 0.95) / 3)


def test_boostedprob_keeps_the_raw_probability_outside_the_dominant_set():
    outsider = _tok(5, [0.90, 0.04, 0.03, 0.02, 0.01], [1, 2, 3, 4, 5])
    reward = BoostedProbReward(BoostedProbReward.Config(), _context())
    assert reward.from_tokens([outsider])[0] == pytest.approx(0.01)


def test_teacher_forced_parts_of_a_combination_share_one_pass():
    context = _context()
    reward = make_reward("forced-confidence+logprob", context)
    assert isinstance(reward, CombinedReward) and reward.name == "forced-confidence+logprob"
    value = reward.score([_pair("x")])[0]
    parts = [make_reward(n, _context()).score([_pair("x")])[0].value for n in ("forced-confidence", "logprob")]
    assert value.value == pytest.approx(sum(parts) / 2)
    assert set(value.details) == {"forced-confidence", "logprob"}


def test_consensus_is_mean_chrf_against_the_other_candidates():
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    cands = ["He slacked off today.", "He was slacking off today.", "Today he touched fish."]
    values = make_reward("consensus").score([_pair(c) for c in cands])
    for i, c in enumerate(cands):
        others = [o for j, o in enumerate(cands) if j != i]
        expected = sum(chrf.sentence_score(c, [o]).score for o in others) / len(others) / 100
        assert values[i].value == pytest.approx(expected)
    assert values[2].value < min(values[0].value, values[1].value)  # the literal outlier agrees least


def test_consensus_with_the_bleu_utility_is_mean_sentence_bleu():
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)
    cands = ["He slacked off today.", "He was slacking off today.", "Today he touched fish."]
    values = make_reward("consensus", options={"mbr_utility": "bleu"}).score([_pair(c) for c in cands])
    for i, c in enumerate(cands):
        expected = sum(bleu.sentence_score(c, [o]).score for j, o in enumerate(cands) if j != i) / 2 / 100
        assert values[i].value == pytest.approx(expected) and values[i].details["utility"] == "bleu"
    with pytest.raises(InputError, match="mbr_utility"):
        make_reward("consensus", options={"mbr_utility": "ter"})


def test_consensus_remembers_earlier_candidates_of_the_same_source_only():
    reward = make_reward("consensus")
    assert reward.score([_pair("He slacked off.")])[0].value == 1.0  # alone: agrees with itself
    other = TranslationRequest("别的句子。", resolve_language("zh"), resolve_language("en"))
    assert reward.score([_pair("Another sentence.", other)])[0].details["pseudo_references"] == 0
    second = reward.score([_pair("He slacked off today.")])[0]
    assert second.details["pseudo_references"] == 1 and second.value < 1.0
    reward.forget(REQUEST)
    assert reward.score([_pair("He slacked off today.")])[0].details["pseudo_references"] == 0


def test_empty_translation_scores_zero_without_a_model_call():
    context = _context()
    for name in ("forced-confidence", "logprob", "boostedprob", "consensus"):
        assert make_reward(name, context).score([_pair("  ")])[0].value == 0.0
    assert context.forced.calls == 0


def test_backtranslation_is_chrf_of_the_round_trip_against_the_source():
    from sacrebleu.metrics import CHRF

    calls = []

    def back(texts, request):
        calls.append(texts)
        return ["他今天摸鱼。" for _ in texts]

    values = make_reward("backtranslation", RewardContext(back_translate=back)).score([_pair("a"), _pair("")])
    assert calls == [["a"]]  # the empty candidate is not sent
    assert values[0].value == pytest.approx(CHRF().sentence_score("他今天摸鱼。", [REQUEST.text]).score / 100)
    assert 0 < values[0].value < 1
    assert values[1].value == 0.0


def test_names_and_configs_are_checked_before_any_model_is_loaded():
    assert set(REGISTRY) >= {"confidence", "backtranslation", "comet-qe", "forced-confidence", "logprob",
                             "boostedprob", "consensus"}
    assert "confidence+backtranslation" in REWARDS
    with pytest.raises(InputError, match="unknown reward"):
        reward_configs("confidence+nonsense")
    with pytest.raises(InputError, match="comet_model"):
        reward_configs("comet-qe")
    with pytest.raises(InputError, match="p_jump"):
        BoostedProbReward.Config(p_jump=1.5)
    with pytest.raises(InputError, match="invalid mcts options: unknown reward"):
        MctsConfig(reward="nonsense")
    MctsConfig(reward="logprob+consensus")


def test_marco_confidence_reads_the_generated_tokens():
    path = RolloutPath(REQUEST, TOKENS[:2], "<Output>x</Output>", "x")
    value = make_reward("confidence").score([path])[0].value
    assert value == pytest.approx((TOKENS[0].confidence + TOKENS[1].confidence) / 2)
