"""Rendering, rate limits and upload checks: pure functions, tested hard (hypothesis)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.answering.types import Answer, Citation
from bot.ingest.uploads import UploadRefused, check_content, check_upload
from bot.surfaces.discord.ratelimit import RateLimiter
from bot.surfaces.discord.render import (
    DESCRIPTION_MAX,
    check_limits,
    quote,
    render_answer,
    render_context,
    render_lines,
    unquote,
)

_pieces = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    st.sampled_from(["*", "_", "`", "```", "~", "|", ">", "#", "# ", "-# ", "[", "](", "\n", "\r", "@everyone",
                     "<@123>", "<@&456>", "\\", "\u202e", "\u200b", "1. ", "- "]),
)
nasty = st.lists(_pieces, max_size=60).map("".join)


def cite(n: int, text: str, title: str = "Doc") -> Citation:
    return Citation(n=n, document="d.txt", title=title, sentence_id=f"s{n}", text=text, start=0, end=len(text),
                    location=f"¶{n}, sentence 1")


def all_citation_texts(messages) -> list[str]:
    """Every citation's text as rendered, in citation order (a long one is an attached file,
    which a message carries after its embeds)."""
    out = []
    for m in messages:
        for e in m.embeds:
            for f in e.fields:
                if f.name.startswith("["):
                    out.append((_number(f.name), unquote(f.value)))
            if e.title and e.title.startswith("[") and e.description and e.description.startswith("> "):
                out.append((_number(e.title), unquote(e.description)))
        for name, data in m.files.items():
            out.append((int(re.search(r"\d+", name).group()), data.decode("utf-8")[:-1]))
    return [text for _n, text in sorted(out, key=lambda item: item[0])]


def _number(label: str) -> int:
    return int(re.match(r"\[(\d+)\]", label).group(1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=nasty)
def test_quote_cannot_be_escaped_and_round_trips(text):
    quoted = quote(text)
    lines = quoted.split("\n")
    assert all(line.startswith("> ") for line in lines)
    for line in lines:
        body = line[2:]
        # nothing unescaped that could end the quote or start a block element
        assert not re.match(r"(#{1,3}\s|-#\s|>|```)", body)
        assert "```" not in body.replace("\\`", "")
    assert unquote(quoted) == text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    answer_text=st.text(max_size=6000),
    texts=st.lists(st.one_of(nasty, st.text(min_size=900, max_size=5000)), min_size=1, max_size=40),
    title=st.text(max_size=400),
)
def test_every_message_fits_discord_and_no_citation_is_cut(answer_text, texts, title):
    answer = Answer(question="q", answer=answer_text, abstained=False,
                    citations=[cite(i + 1, t, title) for i, t in enumerate(texts)], index_version="v1")
    messages = render_answer(answer, answer_id="abc123def456", built_at="2026-01-01T00:00:00+00:00")
    for m in messages:
        assert check_limits(m) == []
    assert all_citation_texts(messages) == [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]


def test_many_citations_spill_into_further_messages_in_order():
    texts = [f"Sentence number {i} " + "x" * 900 + "." for i in range(30)]
    answer = Answer(question="q", answer="A [1] [2].", abstained=False,
                    citations=[cite(i + 1, t) for i, t in enumerate(texts)], index_version="v")
    messages = render_answer(answer, answer_id="abcdef")
    assert len(messages) >= 5  # 6,000 characters per message forces the split
    assert all_citation_texts(messages) == texts
    assert messages[0].embeds[0].footer.text.endswith("answer abcdef")


def test_a_sentence_too_long_for_any_embed_goes_whole_into_a_file():
    long = "word " * 1200 + "end."
    messages = render_answer(Answer(question="q", answer="A [1]", abstained=False, citations=[cite(1, long)]),
                             answer_id="abcdef")
    assert messages[0].files == {"citation-1.txt": (long + "\n").encode()}
    assert all(check_limits(m) == [] for m in messages)


def test_long_answer_is_trimmed_at_a_sentence_without_splitting_a_marker():
    text = " ".join(f"Claim number {i} is here [{i % 9 + 1}]." for i in range(400))
    messages = render_answer(Answer(question="q", answer=text, abstained=False, citations=[cite(1, "S.")]),
                             answer_id="abcdef")
    desc = messages[0].embeds[0].description
    assert len(desc) <= DESCRIPTION_MAX and desc.endswith("*(answer shortened to fit Discord)*")
    body = desc.rsplit("\n", 1)[0]
    assert body.endswith("].") and not re.search(r"\[\d*$", body)


def test_abstention_and_error_render_honestly():
    abst = render_answer(Answer(question="q", answer="The briefings don't say.", abstained=True), answer_id="a1b2c3")
    assert abst[0].embeds[0].title == "Not covered by the briefings"
    err = render_answer(Answer(question="", answer="Please ask a question.", abstained=True, error="empty"),
                        answer_id="a1b2c3")
    assert err[0].embeds[0].title == "I can't answer that"


def test_masked_links_in_answers_are_defused():
    msg = render_answer(Answer(question="q", answer="See [docs](https://evil.example) [1].", abstained=False,
                               citations=[cite(1, "S.")]), answer_id="a1b2c3")
    assert "](https" not in msg[0].embeds[0].description


def test_context_view_keeps_the_cited_sentence_whole():
    from bot.answering.types import Passage

    c = cite(1, "The cited *one*.")
    ps = [Passage(sentence_id=f"s{i}", document="d", title="D", text=("filler " * 300 if i != 1 else c.text),
                  start=0, end=1, heading="", location="", score=0.0) for i in (0, 1, 2)]
    ps[1] = Passage(sentence_id="s1", document="d", title="D", text=c.text, start=0, end=1, heading="", location="",
                    score=0.0)
    messages = render_context([c], [ps])
    assert all(check_limits(m) == [] for m in messages)
    assert "**The cited \\*one\\*.**" in messages[0].embeds[0].description


def test_render_lines_splits_long_lists():
    messages = render_lines("Sources", [f"doc {i} " + "y" * 200 for i in range(200)])
    assert len(messages) > 1 and all(check_limits(m) == [] for m in messages)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_ratelimit_cooldown_busy_guild_window_and_fair_share():
    clock = Clock()
    rl = RateLimiter(cooldown=5, per_minute=4, clock=clock)
    assert rl.acquire(1, 9).ok
    assert rl.acquire(1, 9).reason == "busy"
    rl.release(1)
    d = rl.acquire(1, 9)
    assert d.reason == "cooldown" and 4.9 < d.retry_after <= 5 and "5 s" in d.message()
    clock.now += 5
    assert rl.acquire(1, 9).ok  # user 1 now holds 2 of the guild's 4: its share
    rl.release(1)
    clock.now += 5
    assert rl.acquire(1, 9).reason == "share"
    assert rl.acquire(2, 9).ok and rl.acquire(3, 9).ok
    assert rl.acquire(4, 9).reason == "guild"
    clock.now += 60
    assert rl.acquire(4, 9).ok
    assert rl.acquire(5, None).ok  # DMs have no guild window


@pytest.mark.parametrize("raw", ["noext", ".txt", "x.exe", "...", "con.txt", "a/b/", "evil.txt.exe"])
def test_upload_names_the_bot_cannot_index_are_refused_before_download(raw):
    with pytest.raises(UploadRefused):
        check_upload(raw, 10, 1024)


@pytest.mark.parametrize("name, data, reason", [
    ("r.pdf", b"plain text", "not a PDF"),
    ("r.docx", b"plain text", "not a Word document"),
    ("r.txt", b"\x00\x01binary", "binary data"),
])
def test_upload_content_must_match_its_type(name, data, reason):
    with pytest.raises(UploadRefused, match=reason):
        check_content(name, data)
