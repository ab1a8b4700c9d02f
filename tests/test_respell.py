"""Chat-typed questions: slips, short forms and missing apostrophes are mended against the real
index's vocabulary before the question is searched, and nothing else is changed."""

from __future__ import annotations

import pytest

from bot.answering.language import english_words
from bot.answering.respell import one_slip, respell
from conftest import assert_verbatim


@pytest.fixture(scope="module")
def frequency(briefing_engine):
    return briefing_engine._current()[1].frequency


def test_the_english_vocabulary_is_the_packaged_tokenizers():
    words = english_words()
    assert len(words) > 20_000
    assert {"informed", "purpose", "were"} <= words and "informd" not in words


def test_one_slip_is_damerau_distance_one():
    slips = one_slip("wehn")
    assert {"when", "weh", "wehnn", "wern"} <= slips  # swapped, dropped, doubled, changed
    assert "wehn" not in slips and "nhew" not in slips


@pytest.mark.parametrize("typed, meant", [
    ("wen was umerov informd", "when was umerov informed?"),  # short form, slip, question mark
    ("Waht missiles did Ukraine fire?", "What missiles did Ukraine fire?"),  # question word, case kept
    ("whats the range of the rockets", "what is the range of the rockets?"),
    ("hows the weather in kyiv", "how is the weather in kyiv?"),
    ("how deos the policy work", "how does the policy work?"),  # one slip from one function word
    ("hoos the rockets range", "how is the rockets range?"),  # one slip from "hows"
    ("what r the mines for", "what are the mines for?"),
    ("who did blinken infrom abt the decision?", "who did blinken inform about the decision?"),
    ("which britsh missiles were fired", "which british missiles were fired?"),
    ("Who is Zelenskyy's chief of staff?", "Who is Zelenskiy's chief of staff?"),  # the briefing's spelling
    ("WEN WAS UMEROV INFORMD", "WHEN WAS UMEROV INFORMED?"),
])
def test_slips_and_short_forms_are_mended(frequency, typed, meant):
    assert respell(typed, frequency) == meant


@pytest.mark.parametrize("question", [
    "When was Umerov informed?",
    "Were North Korean troops in Kursk?",  # "were" is English, not a slip of "where"
    "What is U.S. policy on R&D?",  # capital short forms are abbreviations
    "Is it true that it's within the powers of Nato?",  # an apostrophe was typed with care
    "Who is Rutte?",  # a name the index knows
    "hwo told nato?",  # one slip from both "who" and "how": left alone
    "Is the xqzvbw policy new?",  # nothing one slip away
])
def test_questions_typed_with_care_are_left_alone(frequency, question):
    assert respell(question, frequency) == question


def test_junk_is_bounded_and_never_breaks(frequency):
    junk = " ".join(["qwertyuiopasdfghjk"] * 200)
    assert respell(junk, frequency) == junk + "?"
    assert respell("", frequency) == ""
    assert respell("🙂 ?", frequency) == "🙂 ?"


@pytest.mark.parametrize("typed", [
    "wen was umerov informd",
    "when was umerov informd",
    "WEN WAS UMEROV INFORMED",
])
def test_a_chat_typed_question_is_answered_and_says_how_it_was_read(briefing_engine, typed):
    answer = briefing_engine.ask(typed)
    assert answer.answer.startswith("November 12th"), answer.answer
    assert answer.question == typed
    assert answer.understood_as.lower() == "when was umerov informed?"
    assert_verbatim(briefing_engine, answer)


def test_an_added_question_mark_is_not_shown_as_a_rewrite(briefing_engine):
    answer = briefing_engine.ask("When was Umerov informed")
    assert answer.answer.startswith("November 12th")
    assert answer.understood_as == ""
