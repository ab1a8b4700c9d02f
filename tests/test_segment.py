"""Sentence segmentation: exact expected output on the real briefing, offsets that always map back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.ingest.sentences as sentences_module
from bot.ingest.loaders import normalize_text
from bot.ingest.segment import Heading, Sentence, segment

BRIEFING = Path(__file__).resolve().parents[1] / "documents" / "briefing-us-missile-policy-2024-11.txt"

# Checked by reading the briefing: 27 paragraphs, two of them hold two sentences.
EXPECTED_SENTENCES = [
    "US president Joe Biden dropped his opposition to Ukraine firing US missiles at targets deep inside Russia in response to North Korea's entry to the war, a shift in US policy that took on added urgency following Donald Trump's November 5th election win, sources familiar with the matter said.",
    'Mr Biden for months resisted pleas from Ukrainian president Volodymyr Zelenskiy to ease limits on the use of US-supplied ATACMs missiles, which can reach far into Russian territory, wary of potentially drawing Nato into a conflict with a nuclear-armed power.',
    "But Moscow's decision to deploy North Korean soldiers to Russia's Kursk region represented a major escalation that demanded a response, a senior US official and two other sources familiar with the matter told Reuters.",
    'The election of Mr Trump - who is deeply sceptical of US support for Ukraine - added pressure on the administration to loosen the rules on the use of the weapons and take other steps to bolster Ukraine as it suffers repeated setbacks on the battlefield, said two other sources familiar with the matter.',
    'The decision could help to "Trump-proof" parts of Mr Biden\'s Ukraine agenda by strengthening Ukraine\'s position in case they lose US support, one of the sources said.',
    'Mr Trump has repeatedly criticised US military aid to Ukraine, raising fears that he might suspend weapons supplies.',
    'The relaxation of the restrictions on US weapons may have come too late to alter the course of the conflict but could help Ukraine defend the foothold it has in Kursk.',
    'The White House did not immediately respond to a request for comment.',
    'A State Department spokesperson declined to say whether Mr Biden had authorised the longer-range strikes but said Russia was escalating the conflict by deploying North Korean troops.',
    'Moscow has vowed to respond to what it sees as an escalation by the West.',
    'A US official said on Thursday that Russia may have fired an intermediate-range ballistic missile during an attack on the Ukrainian city of Dnipro, in a likely warning to Nato.',
    'The relaxation of US conditions was conveyed to Ukraine during a November 12th call between secretary of defence Lloyd J Austin and Ukrainian minister of defence Rustem Umerov, said a source familiar with the discussions.',
    'A day later, secretary of state Antony Blinken informed Nato secretary-general Mark Rutte and European officials of the decision as well as his Ukrainian counterpart, Andrii Sybiha, during a trip to Brussels, a senior US official said.',
    'Ukraine conducted its first long-range strike under the new policy on Tuesday, announcing it had fired US ATACMS missiles on an arms depot about 110 km inside Russia.',
    "Mr Biden's easing of weapons restrictions appeared to open the door for US allies to allow their own weapons to be used in new ways.",
    'On Wednesday, Ukraine fired a volley of British Storm Shadow cruise missiles into Russia.',
    "Since the elections, the Biden administration has taken other actions to support Kyiv, approving the use of anti-personnel mines to slow Russia's advance in Ukraine's east and allowing US defence contractors to work inside Ukraine to repair US-supplied weapons, enabling the Ukrainians to keep more of the gear in active use.",
    'For months, Ukrainian officials pleaded with Americans to let them use the 190-mile range rockets for targets deeper inside Russian territory, arguing that their inability to hit air bases hosting warplanes involved in strikes on Ukraine was a major handicap.',
    'But the Biden administration declined to give a green light.',
    'US officials have been sceptical of the value of letting Ukraine use weapons such as the ATACMs, arguing that Moscow has already moved some bombing targets out of range, and that Ukraine already has domestically made rockets and kamikaze drones that can reach into Russian territory.',
    'They have also worried that such a move could risk a direct war between Nato and Russia, a possibility some experts and US lawmakers have downplayed.',
    "Russia's decision to deploy thousands of North Korean troops to join the fighting changed the administration's thinking.",
    'The US acknowledged in late October that it had seen evidence of North Korean troops in Russia for possible deployment in the Ukraine conflict.',
    "North Korean soldiers had docked in the eastern port city of Vladivostok, after boarding ships in early-to-mid October from North Korea's Wonsan region, and were taken to three military training sites in eastern Russia, White House spokesperson John Kirby told reporters.",
    'The following week Mr Blinken said as many as 8,000 North Korean forces were in Kursk, where Ukrainian forces have controlled territory since August.',
    "Easing US controls on the use of the missiles was intended to send a message to the North Koreans and Russians that the shift was unacceptable, as well as hamper their efforts to push Ukrainians out of Kursk, said a senior US official familiar with the administration's thinking.",
    'The official acknowledged that relaxing the restrictions risked a further escalation of the conflict - but noted that Russia has so far taken no action against states other than Ukraine.',
    'And a congressional aide said they believed the new policy only applied to the Kursk region.',
    '"Ukraine is only authorised to shoot deeper into Russia to constrain the Russian-North Korean effort to push Ukraine out of the Russian territory," the aide said.',
]

EXPECTED_HEADINGS = ["Strengthening Kyiv's hand", "British missiles", "North Korean troops"]


@pytest.fixture(scope="module")
def briefing() -> tuple[str, list[Sentence], list[Heading]]:
    text = normalize_text(BRIEFING.read_text(encoding="utf-8"))
    sentences, headings = segment(text)
    return text, sentences, headings


def texts(text: str) -> list[str]:
    return [s.text for s in segment(text)[0]]


def assert_exact_offsets(text: str, sentences: list[Sentence]) -> None:
    previous_end = 0
    for i, s in enumerate(sentences):
        assert s.index == i
        assert s.text == text[s.start : s.end]
        assert s.text and s.text == s.text.strip()
        assert s.start >= previous_end
        previous_end = s.end


def test_briefing_sentences_exact(briefing):
    text, sentences, _ = briefing
    assert [s.text for s in sentences] == EXPECTED_SENTENCES
    assert_exact_offsets(text, sentences)


def test_briefing_headings_are_not_sentences(briefing):
    text, sentences, headings = briefing
    assert [h.text for h in headings] == EXPECTED_HEADINGS
    assert all(text[h.start : h.end] == h.text for h in headings)
    assert not {s.text for s in sentences} & set(EXPECTED_HEADINGS)


def test_briefing_heading_paragraph_position(briefing):
    _, sentences, _ = briefing
    by_text = {s.text: s for s in sentences}
    first = sentences[0]
    assert (first.heading, first.paragraph, first.position) == ("", 0, 0)
    west = by_text["Moscow has vowed to respond to what it sees as an escalation by the West."]
    assert (west.heading, west.paragraph, west.position) == ("", 9, 0)
    dnipro = sentences[west.index + 1]
    assert (dnipro.heading, dnipro.paragraph, dnipro.position) == ("", 9, 1)
    storm = by_text["On Wednesday, Ukraine fired a volley of British Storm Shadow cruise missiles into Russia."]
    assert (storm.heading, storm.paragraph, storm.position) == ("British missiles", 13, 1)
    last = sentences[-1]
    assert (last.heading, last.paragraph, last.position) == ("North Korean troops", 26, 0)


def test_briefing_covers_every_non_space_character(briefing):
    text, sentences, headings = briefing
    covered = "".join(s.text for s in sentences) + "".join(h.text for h in headings)
    assert sorted("".join(covered.split())) == sorted("".join(text.split()))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr Biden spoke. Mr. Biden left.", ["Mr Biden spoke.", "Mr. Biden left."]),
        (
            "Lloyd J Austin called. Lloyd J. Austin wrote back.",
            ["Lloyd J Austin called.", "Lloyd J. Austin wrote back."],
        ),
        (
            "Blinken said 8,000 troops were in Kursk. U.S. officials said it was a shift.",
            ["Blinken said 8,000 troops were in Kursk.", "U.S. officials said it was a shift."],
        ),
        ("Dr. Smith agreed. Some tools, e.g. drones, were used.", ["Dr. Smith agreed.", "Some tools, e.g. drones, were used."]),
        ("The depot was 3.5 km inside Russia. It burned.", ["The depot was 3.5 km inside Russia.", "It burned."]),
        (
            'The aide said: "Ukraine is authorised." Mr Biden agreed.',
            ['The aide said: "Ukraine is authorised."', "Mr Biden agreed."],
        ),
        ("He called it “unacceptable.” Officials disagreed.", ["He called it “unacceptable.”", "Officials disagreed."]),
        ("Is it true? Yes! It is.", ["Is it true?", "Yes!", "It is."]),
        ("Talks ended at 5 p.m. on Friday. They resume today.", ["Talks ended at 5 p.m. on Friday.", "They resume today."]),
    ],
)
def test_hard_boundaries(text, expected):
    assert texts(text) == expected


def test_heading_rules():
    text = "Overview\nBiden eased limits. Kyiv welcomed it.\nA line ending with a colon:\nMore text here.\nLast line"
    sentences, headings = segment(text)
    assert [h.text for h in headings] == ["Overview"]
    assert [(s.text, s.heading, s.paragraph, s.position) for s in sentences] == [
        ("Biden eased limits.", "Overview", 0, 0),
        ("Kyiv welcomed it.", "Overview", 0, 1),
        ("A line ending with a colon:", "Overview", 1, 0),
        ("More text here.", "Overview", 2, 0),
        ("Last line", "Overview", 3, 0),  # nothing follows it, so it's prose
    ]


def test_heading_followed_by_blank_line_then_text():
    sentences, headings = segment("Title\n\nBody text.")
    assert headings == [Heading("Title", 0, 5)]
    assert [(s.text, s.heading, s.start) for s in sentences] == [("Body text.", "Title", 7)]


def test_empty_and_whitespace_only():
    assert segment("") == ([], [])
    assert segment(" \n\n \n") == ([], [])


def test_long_paragraph_without_breaks_is_chunked_exactly():
    sentence = "The minister said the plan would cost £5m over three years and create many jobs. "
    text = normalize_text(sentence * 200 + "Mr. Smith disagreed.")
    sentences, _ = segment(text)
    assert len(sentences) == 201
    assert sentences[-1].text == "Mr. Smith disagreed."
    assert all(s.text == sentence.strip() for s in sentences[:-1])
    assert_exact_offsets(text, sentences)


def _fake_segmenter(monkeypatch, boundaries):
    """Replace sentencex's answer for every run with ``boundaries(run)``."""
    monkeypatch.setattr(sentences_module.sentencex, "get_sentence_boundaries", lambda lang, run: boundaries(run))


def test_offsets_survive_a_segmenter_that_rewrites_whitespace(monkeypatch):
    def rewriting(run):  # odd spacing, wrong offsets and invented text
        return [{"start_index": 0, "end_index": 3, "text": t} for t in ["Mr. Biden left.", "INVENTED", "He came back."]]

    _fake_segmenter(monkeypatch, rewriting)
    text = "Mr. Biden left. He came back."
    sentences, _ = segment(text)
    assert [s.text for s in sentences] == ["Mr. Biden left.", "He came back."]
    assert_exact_offsets(text, sentences)


def test_segmenter_crash_keeps_paragraph_whole(monkeypatch):
    def crashing(run):
        raise IndexError("boom")

    _fake_segmenter(monkeypatch, crashing)
    assert texts("One. Two.") == ["One. Two."]


def test_closing_quote_left_by_the_segmenter_goes_back_to_its_sentence():
    text = (
        'Jean Corston said: "Each death in custody is a death too many. '
        '"Yet we have seen vulnerable people entering custody." The report was published on Friday.'
    )
    assert texts(text) == [
        'Jean Corston said: "Each death in custody is a death too many.',
        '"Yet we have seen vulnerable people entering custody."',
        "The report was published on Friday.",
    ]


def test_overlong_piece_is_cut_at_plain_sentence_ends_only(monkeypatch):
    # What a segmenter does after an unbalanced quote: one piece for everything.
    _fake_segmenter(monkeypatch, lambda run: [{"start_index": 0, "end_index": len(run), "text": run}])
    parts = [
        '"The committee met Mr. Smith and Lloyd J. Austin in Washington on Monday to discuss the budget.',
        '"U.S. officials said 8,000 troops, e.g. engineers, would move 3.5 km east by the end of the month!',
        "Nobody at the Dept. of Defense would comment on the plan when asked about it later that day.",
        "- The next item is a bullet in the middle of the paragraph that follows the other text.",
    ]
    text = " ".join(parts)
    assert len(text) > sentences_module.MAX_SENTENCE_CHARS
    assert texts(text) == parts
    short = "He met Mr. Smith. Then he left."
    assert texts(short) == [short]  # short pieces are the segmenter's call, not ours


@pytest.mark.parametrize(
    "text, expected",
    [
        # a single capital can end a sentence (pysbd merged these)
        ("The work was complete for C. This means more tests.", ["The work was complete for C.", "This means more tests."]),
        ("Take vitamin D. Not only that, take it daily.", ["Take vitamin D.", "Not only that, take it daily."]),
        # ...while initials inside a name don't
        ("He met J. R. R. Tolkien in Oxford. Then he left.", ["He met J. R. R. Tolkien in Oxford.", "Then he left."]),
        ("Gen. Smith and Sen. Jones met in St. Louis.", ["Gen. Smith and Sen. Jones met in St. Louis."]),
        # an opening quote belongs to the sentence it opens
        ('"It is over," he said. "We go home now."', ['"It is over," he said.', '"We go home now."']),
        ("He said: “We won.” “They lost.”", ["He said: “We won.”", "“They lost.”"]),
        # decimals, money, percentages, times
        ("Prices rose 2.5% to $3.50. Then they fell.", ["Prices rose 2.5% to $3.50.", "Then they fell."]),
        ("They arrived at 10 a.m. The meeting began.", ["They arrived at 10 a.m.", "The meeting began."]),
        # list markers stay with their items
        ("1. Open the valve. 2. Close the door.", ["1. Open the valve.", "2. Close the door."]),
        ("a) Check the pump. b) Log the reading.", ["a) Check the pump.", "b) Log the reading."]),
    ],
)
def test_tricky_boundaries(text, expected):
    assert texts(text) == expected


def test_long_runs_are_cut_in_bounded_time():
    """A 2 MB line without any break and 256 KB of prose in one paragraph (issue 12): both used
    to be quadratic (minutes); the bound is generous for a loaded 2-core machine."""
    started = time.perf_counter()
    blob = "x" * 2_000_000
    sentences, _ = segment(blob)
    assert_exact_offsets(blob, sentences)
    assert "".join(s.text for s in sentences) == blob
    assert max(len(s.text) for s in sentences) <= sentences_module.HARD_MAX_CHARS
    words = " ".join(["lorem"] * 400_000)  # 2.4 MB of words, no punctuation
    sentences, _ = segment(words)
    assert max(len(s.text) for s in sentences) <= sentences_module.HARD_MAX_CHARS
    assert_exact_offsets(words, sentences)
    prose = ("The minister said the plan would cost five million over three years, officials said. " * 3000)[:256_000]
    sentences, _ = segment(prose)
    assert len(sentences) > 2900
    assert_exact_offsets(prose, sentences)
    assert time.perf_counter() - started < 30


ANY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("\n .?!\"”"), max_size=300)
TOKENS = ["Mr.", "U.S.", "J.", "e.g.", "3.5", "word", "Word", "officials", ".", "!", "?", '"', "“", "”", "'", "-", "\n", "\n\n", " ", "  "]
# Prose-like token soup, long enough to reach the overlong-piece resplitting.
PROSE = st.lists(st.sampled_from(TOKENS), max_size=400).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT | PROSE)
def test_offsets_always_map_back(raw):
    text = normalize_text(raw)
    sentences, headings = segment(text)
    assert_exact_offsets(text, sentences)
    for h in headings:
        assert text[h.start : h.end] == h.text
    covered = "".join(s.text for s in sentences) + "".join(h.text for h in headings)
    assert sorted("".join(covered.split())) == sorted("".join(text.split()))
