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
