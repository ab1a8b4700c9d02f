"""Any Unicode string as a question (and as conversation history) gets an Answer: a normal
answer, an abstention or a clear message, never an exception; and every citation in it is
verbatim."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.answering.engine import MAX_QUESTION_CHARS
from bot.answering.types import Answer, Turn
from conftest import assert_verbatim

FRAGMENTS = [
    # right-to-left text and direction controls
    "متى تم إبلاغ أوميروف؟", "מתי הודיעו לאומרוב?", "\u202eWhen was Umerov informed?\u202c", "\u200f\u200e",
    # Discord markdown
    "**When**", "__was__", "||spoiler||", "`code`", "```py\nprint(1)\n```", "> quoted", "# heading", "-# small",
    "~~struck~~", "*", "_", "\\", "[click](https://evil.example/login)",
    # mentions
    "@everyone", "@here", "<@123456789012345678>", "<@!1>", "<@&987654321>", "<#42>", "<:emoji:1234>",
    # links and other noise
    "https://example.com/?q=Umerov&x=1", "www.example.org", "\x00", "\x1b[2J", "\ufeff", "\u0301\u0301",
    "🙂", "👩‍👩‍👧‍👦", "\U0001f1fa\U0001f1e6",
    # pieces of real questions, so some generated questions do reach the index
    "When was Umerov informed?", "Who informed", "ATACMS", "Storm Shadow", "Kursk", "November 12th", " ",
]

questions = st.one_of(
    st.text(),
    st.text(min_size=MAX_QUESTION_CHARS - 20, max_size=MAX_QUESTION_CHARS + 20),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=12).map(" ".join),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join),
)

# History turns: shorter, since a follow-up embeds the previous turn as well as the question.
turn_texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=6).map(" ".join),
)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(engine, answer) -> None:
    assert isinstance(answer, Answer)
    assert isinstance(answer.answer, str) and answer.answer.strip()
    assert isinstance(answer.question, str)
    if answer.error:
        assert answer.abstained and answer.citations == [] and answer.answer == answer.error
    if answer.abstained:
        assert answer.citations == []
    else:
        assert answer.citations and answer.index_version
    assert_verbatim(engine, answer)
    json.dumps(answer.to_json(), ensure_ascii=False)  # the --json contract can always be printed


@PROPERTY
@given(question=questions)
def test_any_question_gets_an_answer_or_a_message(briefing_engine, question):
    check(briefing_engine, briefing_engine.ask(question))


@PROPERTY
@given(question=questions, history=st.lists(st.tuples(turn_texts, turn_texts), max_size=3))
def test_any_history_gets_an_answer_or_a_message(briefing_engine, question, history):
    turns = [Turn(q, a) for q, a in history]
    check(briefing_engine, briefing_engine.ask(question, turns))
