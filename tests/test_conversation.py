"""Follow-ups: rewritten into standalone questions, then answered from the real briefing index."""

from __future__ import annotations

from bot.answering.conversation import standalone
from bot.answering.conversation import Turn
from conftest import UMEROV_SENTENCE_START, assert_verbatim


def converse(engine, *questions):
    """Ask ``questions`` in one conversation, as the chat surfaces do; returns every answer."""
    history, answers = [], []
    for q in questions:
        answer = engine.ask(q, history)
        answers.append(answer)
        history.append(Turn(q, answer.answer))
    return answers


# --------------------------------------------------------------------------- rewriting alone


def test_pronoun_takes_the_name_of_the_last_question():
    history = [Turn("When was Umerov informed?", "November 12th. \u201c...\u201d [1]")]
    assert standalone("Who informed him?", history) == "Who informed Umerov?"


def test_elliptical_question_takes_the_last_questions_body():
    history = [Turn("When was Umerov informed?", "November 12th. \u201c...\u201d [1]")]
    assert standalone("and where?", history) == "Where was Umerov informed?"
    assert standalone("How many?", [Turn("Which North Korean soldiers were in Kursk?", "\u201c...\u201d [1]")]) \
        == "How many North Korean soldiers were in Kursk?"


def test_the_answer_to_a_who_question_is_the_next_he():
    history = [Turn("Who told reporters about the soldiers?", "John Kirby. \u201c...\u201d [1]")]
    assert standalone("What else did he say?", history) == "What else did John Kirby say?"
    assert standalone("What is his job?", history) == "What is John Kirby's job?"


def test_a_question_that_stands_on_its_own_is_left_alone():
    history = [Turn("When was Umerov informed?", "November 12th. \u201c...\u201d [1]")]
    for q in ("Which British weapons were fired into Russia?", "What range do the rockets have?",
              "When did North Korean soldiers board ships?"):
        assert standalone(q, history) == q
    assert standalone("Who informed him?", []) == "Who informed him?"


# --------------------------------------------------------------------------- real conversations


def test_when_then_who_informed_him(briefing_engine):
    first, second = converse(briefing_engine, "When was Umerov informed?", "Who informed him?")
    assert first.answer.startswith("November 12th")
    assert second.understood_as == "Who informed Umerov?"
    assert second.to_json()["understood_as"] == "Who informed Umerov?"
    assert not second.abstained
    assert second.citations[0].text.startswith(UMEROV_SENTENCE_START)
    assert "Lloyd J Austin" in second.citations[0].text
    # no short answer rather than a wrong one; the role before the name is welcome
    assert second.short_answer in ("", "Lloyd J Austin", "secretary of defence Lloyd J Austin")
    assert_verbatim(briefing_engine, second)


def test_and_where_after_a_where_free_question(briefing_engine):
    first, second = converse(briefing_engine, "When did North Korean soldiers board ships?", "and where?")
    assert first.short_answer.endswith("October")  # the span head reads "October"; the quote says "early-to-mid"
    assert second.understood_as == "Where did North Korean soldiers board ships?"
    assert not second.abstained
    assert "Wonsan" in second.citations[0].text or "Vladivostok" in second.citations[0].text
    assert_verbatim(briefing_engine, second)


def test_three_turns_keep_the_thread(briefing_engine):
    answers = converse(briefing_engine, "When was Umerov informed?", "Who informed him?", "and when?")
    assert answers[2].understood_as.startswith("When ")
    assert "Umerov" in answers[2].understood_as
    assert answers[2].answer.startswith("November 12th")


def test_a_topic_switch_is_not_a_follow_up(briefing_engine):
    first, second = converse(briefing_engine, "When was Umerov informed?",
                             "Which British weapons were fired into Russia?")
    assert second.understood_as == ""
    assert "understood_as" not in second.to_json()
    assert "Storm Shadow" in second.citations[0].text


def test_surfaces_show_what_a_follow_up_was_understood_as(briefing_engine):
    from bot.surfaces.cli import format_answer
    from bot.surfaces.discord.render import render_answer

    _first, second = converse(briefing_engine, "When was Umerov informed?", "Who informed him?")
    assert format_answer(second).startswith("(understood as: Who informed Umerov?)\n")
    [main, *_rest] = render_answer(second, answer_id="a1")[0].embeds
    assert any(f.name == "Understood as" and f.value == "Who informed Umerov?" for f in main.fields)
