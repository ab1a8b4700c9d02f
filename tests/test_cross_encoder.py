"""The shipped cross-encoder: verified before use, reads question and sentence together, and
the search puts the sentences it reread first, in its order, with scores that fall down the list."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def model():
    from bot.knowledge.rerank import default_model

    return default_model()


def test_answer_sentence_beats_same_topic_sentence(model):
    cases = [  # (question, the answer sentence, a sentence on the same subject that does not answer)
        ("Who designed the bridge?", "The bridge was designed by the engineer Maria Alves in 1962.",
         "The bridge carries four lanes of traffic over the river."),
        ("How many people live in Lyon?", "Lyon has a population of about 520,000 people.",
         "Lyon is known across France for its cooking and its silk."),
        ("When did the museum open?", "The museum opened to the public in March 1998.",
         "The museum holds more than 40,000 paintings."),
    ]
    for question, answer, other in cases:
        scores = model.cross_encoder.score(question, [other, answer])
        assert scores[1] > scores[0] + 1.0, (question, scores)


def test_unrelated_sentence_reads_as_no_answer(model):
    scores = model.cross_encoder.score("What is the capital of Peru?",
                                       ["The bridge carries four lanes of traffic over the river."])
    assert scores.shape == (1,) and scores[0] < 0.0  # below the "none of these" option


def test_a_sentence_reads_the_same_whatever_it_is_read_beside(model):
    # The int8 graph scales its activations per run: read in one batch, a short sentence padded to
    # a long one's length got another logit and span. The answer must not depend on its neighbours.
    question = "When did the museum open?"
    texts = ["Museum: The museum opened to the public in March 1998.",
             "Museum: The museum holds more than 40,000 paintings, drawings and prints from six centuries of "
             "European art, given by collectors from Lyon, Paris and Geneva over two hundred years."]
    sentences = [t.split(": ", 1)[1] for t in texts]
    together, spans = model.cross_encoder.read(question, texts, sentences)
    alone, alone_spans = model.cross_encoder.read(question, texts[:1], sentences[:1])
    assert together[0] == alone[0]
    assert spans[0] == alone_spans[0] and "March 1998" in sentences[0][spans[0].start:spans[0].end]


def test_heading_is_read_with_the_sentence():
    from bot.knowledge.cross_encoder import candidate_text

    assert candidate_text("New_York_City", "It has five boroughs.") == "New York City: It has five boroughs."
    assert candidate_text("", "It has five boroughs.") == "It has five boroughs."


def test_previous_sentence_is_read_only_as_far_as_the_model_was_trained_to():
    from bot.knowledge.cross_encoder import candidate_text

    before = "The bridge was designed by Maria Alves."
    assert candidate_text("Bridges", "It opened in 1962.", before, 0) == "Bridges: It opened in 1962."
    assert candidate_text("Bridges", "It opened in 1962.", before, 3) == "Bridges: by Maria Alves. | It opened in 1962."
    assert candidate_text("", "It opened in 1962.", before, 40) == "The bridge was designed by Maria Alves. | It opened in 1962."
    assert candidate_text("Bridges", "It opened in 1962.", "", 3) == "Bridges: It opened in 1962."


def test_reread_context_stays_inside_the_sentences_document(briefing_index, encoder):
    from bot.knowledge.search import Searcher
    from bot.knowledge.store import load_snapshot

    searcher = Searcher(load_snapshot(Path(briefing_index.index_dir)), encoder)
    t = searcher.snap.sentences
    firsts = [r for r in range(len(t)) if r == 0 or t.doc[r - 1] != t.doc[r]]
    later = next(r for r in range(1, len(t)) if t.doc[r - 1] == t.doc[r])
    plain, with_context = searcher.reread_texts([firsts[-1], later]), searcher.reread_texts([firsts[-1], later], 5)
    assert with_context[0] == plain[0]  # a document's first sentence has nothing before it of its own
    assert with_context[1] != plain[1] and with_context[1].endswith(" | " + t.texts[later])
    assert " ".join(t.texts[later - 1].split()[-5:]) in with_context[1]


def test_damaged_cross_encoder_is_refused(tmp_path):
    from bot.knowledge.rerank import MODEL_DIR, ModelError, load_model

    shipped = load_model()
    for name in ("ranker.json", shipped.manifest["weights"], shipped.manifest["cross_encoder"]["file"]):
        shutil.copy(MODEL_DIR / name, tmp_path / name)
    onnx = tmp_path / shipped.manifest["cross_encoder"]["file"]
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model(tmp_path).cross_encoder
    onnx.unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(tmp_path).cross_encoder


def test_shipped_cross_encoder_fits_the_package_budget(model):
    from bot.knowledge.rerank import MODEL_DIR

    path = Path(MODEL_DIR) / model.manifest["cross_encoder"]["file"]
    assert path.stat().st_size <= 25 * 2**20
    assert 1 <= model.rerank_k <= 12


def test_search_order_follows_the_reread(briefing_index, encoder):
    from bot.knowledge.search import Searcher
    from bot.knowledge.store import load_snapshot

    searcher = Searcher(load_snapshot(Path(briefing_index.index_dir)), encoder)
    question = "Who informed Umerov about the change?"
    rows, x = searcher.candidates(question)
    order, logits, ce, _spans = searcher.rerank(question, rows, x)
    k = searcher.model.rerank_k
    assert sorted(order.tolist()) == list(range(len(rows)))  # a permutation: nothing lost
    assert len(ce) == min(k, len(rows))
    assert np.all(np.diff(logits[order]) <= 1e-9)  # scores fall down the list
    first = np.argsort(-searcher.model.ranker.logit(x), kind="stable")[:k]
    assert set(order[:k].tolist()) == set(first.tolist())  # the reread ones come first
    found = searcher.search(question)
    assert "Umerov" in found.passages[0].text + found.passages[0].before


def test_question_longer_than_the_model_reads_is_scored(model):
    question = "Which " + " ".join(["very"] * 150) + " long question about the bridge is this?"
    scores = model.cross_encoder.score(question, ["The bridge was designed by Maria Alves.", "Short."])
    assert scores.shape == (2,) and np.all(np.isfinite(scores))


def test_the_model_reads_the_short_answer_in_the_sentence(model):
    cases = [  # (question, sentence, what the short answer must hold)
        ("Who designed the bridge?", "The bridge was designed by the engineer Maria Alves in 1962.", "Maria Alves"),
        ("When did the museum open?", "The museum opened to the public in March 1998.", "March 1998"),
        ("How many people live in Lyon?", "Lyon has a population of about 520,000 people.", "520,000"),
    ]
    for question, sentence, expected in cases:
        _logits, spans = model.cross_encoder.read(question, [f"Notes: {sentence}"], [sentence])
        span = spans[0]
        assert span is not None and 0.0 < span.probability <= 1.0
        short = sentence[span.start:span.end]
        assert expected in short and len(short) < len(sentence) / 2, (question, short)


def test_span_decoding_keeps_to_the_sentence_and_whole_words():
    from tokenizers import Tokenizer

    from bot.knowledge.cross_encoder import best_span, tokenizer_path

    tok = Tokenizer.from_file(str(tokenizer_path()))
    sentence = "Fighting resumed near Pokrovsk, officials said."
    text = f"Pokrovsk: {sentence}"
    enc = tok.encode("Where did fighting resume?", text)
    logits = np.zeros((len(enc.ids), 2))
    heading_token = next(i for i, (t, (a, _b)) in enumerate(zip(enc.type_ids, enc.offsets)) if t == 1 and a == 0)
    logits[heading_token] = 50.0  # the heading's "Pokrovsk" is not part of the sentence: never chosen
    inside = [i for i, (t, (a, _b)) in enumerate(zip(enc.type_ids, enc.offsets))
              if t == 1 and a >= len(text) - len(sentence) and text[a:].startswith("Pok")]
    assert inside, enc.tokens
    logits[inside[-1], 0] = logits[inside[-1], 1] = 20.0  # the first word piece of the sentence's "Pokrovsk"
    span = best_span(logits, enc, len(text) - len(sentence), sentence)
    assert sentence[span.start:span.end] == "Pokrovsk"  # widened to the whole word, no comma
    assert span.probability > 0.9


def applied(rule, sentence: str, part: str) -> str:
    """What a span decoding rule (sentence, start, end) -> (start, end) makes of ``part``."""
    a = sentence.index(part)
    return sentence[slice(*rule(sentence, a, a + len(part)))]


def test_a_span_never_cuts_a_name_in_two():
    from bot.knowledge.cross_encoder import _whole_name

    widened = partial(applied, _whole_name)

    s = "On Wednesday, Ukraine fired a volley of British Storm Shadow cruise missiles into Russia."
    assert widened(s, "Shadow cruise missiles") == "British Storm Shadow cruise missiles"
    assert widened("He met Lloyd J Austin, the secretary.", "Lloyd") == "Lloyd J Austin,"  # the comma is trimmed later
    assert widened("It was signed in 1848, late.", "1848") == "1848"  # not a name: unchanged
    assert widened("Mr Biden said so.", "Biden") == "Biden"  # the first word is capitalised as the first word
    assert widened("It won at the Battle of Hastings in 1066.", "Battle") == "Battle of Hastings"
    assert widened("It followed Donald Trump's November 5th win.", "November") == "November"  # a possessive ends a name
    assert widened("The map of Kursk was old.", "map") == "map"  # "of" carries a name on only from a name


def test_a_span_keeps_whole_tokens_and_what_qualifies_a_number_or_date():
    from bot.knowledge.cross_encoder import _qualified, _whole_name, _whole_tokens

    def rules(sentence: str, a: int, b: int) -> tuple[int, int]:
        a, b = _whole_name(sentence, *_whole_tokens(sentence, a, b))
        return _qualified(sentence, a, b), b

    widened = partial(applied, rules)

    assert widened("The organist was Louis Lefébure-Wély.", "Louis Lef") == "Louis Lefébure-Wély"
    assert widened("It cost $5.11 a share.", "5") == "$5.11"  # not "$5" of "$5.11"
    assert widened("Sales rose 35% in May.", "35") == "35%"
    assert widened("It holds over 26,000 acres.", "26") == "over 26,000"
    assert widened("More than 200 papers have an office there.", "200") == "More than 200"
    assert widened("They boarded ships in early-to-mid October.", "October") == "early-to-mid October"
    assert widened("It grew in mid-2005.", "2005") == "mid-2005"
    assert widened("Troops moved over the river in 2005.", "river") == "river"  # "over" qualifies numbers only
    assert widened("The U.S. army left.", "army") == "army"  # "." joins digits, not words
    assert widened("Between 64 and 104 aftershocks came within 72 hours.", "64 and 104") == "Between 64 and 104"
    assert widened("Between 64 and 104 aftershocks came within 72 hours.", "72") == "within 72"


def test_a_possessive_span_runs_on_to_what_it_possesses():
    from bot.knowledge.cross_encoder import _with_head

    widened = partial(applied, lambda sentence, a, b: (a, _with_head(sentence, a, b)))

    s = "Office buildings in Shanghai's financial district, including two towers, were evacuated."
    assert widened(s, "Shanghai's") == "Shanghai's financial district"
    assert widened("He took Zelda's body and ran.", "Zelda's") == "Zelda's body"  # stops at a stopword
    assert widened("The idea was Trump's.", "Trump's") == "Trump's"
    assert widened(s, "Shanghai") == "Shanghai"  # not a possessive


def test_a_span_has_no_dash_or_punctuation_at_its_edges():
    from bot.knowledge.cross_encoder import _trimmed

    trimmed = partial(applied, _trimmed)

    s = "The election of Mr Trump - who is deeply sceptical - added pressure."
    assert trimmed(s, "Mr Trump -") == "Mr Trump"
    assert trimmed(s, "- who is deeply sceptical -") == "who is deeply sceptical"
    assert trimmed("It fell to -5 degrees, then rose.", "-5 degrees,") == "-5 degrees"  # a minus sign stays
    assert trimmed("It ended — at last.", "ended —") == "ended"


def test_a_span_inside_a_date_is_the_whole_date():
    from bot.knowledge.cross_encoder import _whole_date

    widened = partial(applied, _whole_date)

    assert widened("It was released in November 2006, and later in Japan.", "2006") == "November 2006"
    assert widened("On November 6, 2008, the government said so.", "2008") == "November 6, 2008"
    assert widened("It struck on 12 May 2008 at noon.", "May") == "12 May 2008"
    assert widened("It came during a November 12th call.", "November") == "November 12th"
    assert widened("In May, it rained for 40 days.", "40") == "40"  # not a date: unchanged
