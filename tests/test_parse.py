import pytest

from translator.parse import parse_answer, parse_direct

WELL_FORMED = "<Thought>\n踩屎感 is slang for soft shoes.\n</Thought>\n<Output>\nThese shoes feel soft and cushy.\n</Output>"


def test_well_formed():
    parsed = parse_answer(WELL_FORMED)
    assert parsed.translation == "These shoes feel soft and cushy."
    assert parsed.thought == "踩屎感 is slang for soft shoes."
    assert parsed.format_ok


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<thought>x</thought><output>Hello there</output>", "Hello there"),  # lower case
        ("<THOUGHT>x</THOUGHT>\n<OUTPUT>Hello there</OUTPUT>", "Hello there"),  # upper case
        ("< Thought >x</ Thought >< Output >Hello there</ Output >", "Hello there"),  # spaces in tags
        ("<Thought>x</Thought>\n<Output>\nHello there", "Hello there"),  # unclosed output
        ("<Thought>x\n<Output>Hello there</Output>", "Hello there"),  # unclosed thought
        ("Sure! Here you go.\n<Thought>x</Thought><Output>Hello there</Output>\nHope this helps!", "Hello there"),
        ("<Thought>x</Thought><Output>draft</Output><Output>Hello there</Output>", "Hello there"),  # last output wins
        ("<Thought>x</Thought><Output>Translation: Hello there</Output>", "Hello there"),  # label stripped
        ("<Thought>x</Thought><Output>Hello there</Output><|im_end|>junk", "Hello there"),
        ("<Thought>x</Thought>\nHello there", "Hello there"),  # answer after the thought, no output tag
        ("<Thought>x</Thought>\nnote\n\nHello there", "Hello there"),  # last paragraph after the thought
        ("Hello there", "Hello there"),  # no format at all
        ("The source means hi.\n\nHello there\n\n", "Hello there"),  # last non-empty paragraph
        ("<Output>\n第一行\n第二行\n</Output>", "第一行\n第二行"),  # multi-line output kept
    ],
)
def test_malformed_outputs(text, expected):
    assert parse_answer(text).translation == expected


def test_thought_never_returned_as_translation():
    # An unclosed thought with no output: the model never answered.
    parsed = parse_answer("<Thought>\nThe phrase 踩屎感 means comfortable shoes, so I should")
    assert parsed.translation == ""
    assert "踩屎感" in parsed.thought
    # Output exists but is empty: do not fall back to the thought.
    assert parse_answer("<Thought>long reasoning</Thought><Output></Output>").translation == ""


def test_format_ok_only_when_output_closed():
    assert not parse_answer("<Thought>x</Thought><Output>Hi").format_ok
    assert not parse_answer("Hi").format_ok


def test_thought_text_excludes_tags():
    parsed = parse_answer("<Thought>step 1\n\nstep 2</Thought><Output>Hi</Output>")
    assert parsed.thought == "step 1\n\nstep 2"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello there", "Hello there"),
        ("  Translation: Hello there \n", "Hello there"),
        ("<Output>Hello there</Output>", "Hello there"),
        ("Hello there<|im_end|>", "Hello there"),
    ],
)
def test_parse_direct(text, expected):
    assert parse_direct(text) == expected


# Direct replies in the shape instruction-tuned models give them (written for these tests, modelled on
# what the default model and smollm2 print: a lead-in line, the answer, sometimes quotes or a closing note).
@pytest.mark.parametrize(
    "reply, expected",
    [
        ("当然，以下是将给定的英文文本翻译成中文的版本：\n\n说实话，这部电影真的很一般。", "说实话，这部电影真的很一般。"),
        ("以下是翻译：\n「他直接摆烂了。」", "他直接摆烂了。"),
        ("翻译如下：\n“我今天不想上班。”", "我今天不想上班。"),
        ("好的，这是翻译后的文本：我今天不想上班。", "我今天不想上班。"),
        ("Sure, here is the translation:\n\nThese shoes feel soft and cushy.", "These shoes feel soft and cushy."),
        ("Here's the translation: \"I'm totally beat today.\"", "I'm totally beat today."),
        ("Sure! Here's the English translation of the sentence:\n\n\"No cap, this pizza slaps.\"\n\n"
         "Note: \"no cap\" means \"no lie\".", "No cap, this pizza slaps."),
        ("I'm exhausted today.\n\nI hope this helps! Let me know if you need anything else.", "I'm exhausted today."),
        ("我太累了，只想躺平。\n\n希望这个翻译对您有帮助！", "我太累了，只想躺平。"),
        ("“I'm so done with work today.”", "I'm so done with work today."),
        ("The translation is:\nHe ghosted me after three dates.", "He ghosted me after three dates."),
    ],
)
def test_direct_chatter_is_dropped_in_both_languages(reply, expected):
    assert parse_direct(reply) == expected


@pytest.mark.parametrize(
    "answer",
    [
        "Sure, I'll be there tomorrow.",  # starts like chatter, is the answer
        "好的，我明天来。",
        "The translation of the contract states: pay now.",  # a colon, but no lead-in
        "“躺平”是一种生活态度。",  # quotes around a part only
        "\"Mid\" means average, and \"no cap\" means no lie.",
        "Note to self: buy milk.",  # a one-paragraph answer is never dropped as a note
    ],
)
def test_answers_that_only_look_like_chatter_are_kept(answer):
    assert parse_direct(answer) == answer


def test_chatter_inside_an_output_block_and_after_an_untagged_answer():
    assert parse_answer("<Thought>x</Thought>\n<Output>\nHere is the translation:\n\"I'm beat.\"\n</Output>"
                        ).translation == "I'm beat."
    # No tags: the last paragraph is the answer, but not a closing note.
    assert parse_answer("Sure, here is the translation:\n\nI'm beat.\n\nI hope this helps!").translation == "I'm beat."
