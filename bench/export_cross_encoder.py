"""Export the fine-tuned cross-encoder (bench/train_cross_encoder.py) to the shipped int8 ONNX file.

    python bench/export_cross_encoder.py [--ce /work/data/ce2/model] [--out bot/models]

torch.onnx (opset 17, dynamic batch and length) to fp32, then onnxruntime's dynamic int8
quantization, per channel. Prints the size, the sha256 and how far the int8 logits are from the
fp32 ones on a few pairs. bench/train_ranker.py records the file's sha256 in the manifest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL_FILE = "cross-encoder-int8.onnx"
PAIRS = [
    ("When was the treaty signed?", "History: The treaty was signed in 1848 after two years of talks."),
    ("When was the treaty signed?", "History: The talks were held in a small town near the border."),
    ("Who founded the company?", "The company was founded by two engineers, Ann Lee and Bo Park."),
    ("How many people live in the city?", "Weather: Summers in the city are hot and humid."),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ce", type=Path, default=Path("/work/data/ce2/model"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "bot" / "models")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bot.knowledge.cross_encoder import MAX_TOKENS, CrossEncoder
    from bot.knowledge.onnx_query import export_graph, quantize_int8
    from bot.knowledge.store import file_sha256
    from bench.train_cross_encoder import SPAN_HEAD

    tok = AutoTokenizer.from_pretrained(str(args.ce))
    model = AutoModelForSequenceClassification.from_pretrained(str(args.ce)).eval()
    span_file = args.ce / SPAN_HEAD
    span_head = None
    if span_file.is_file():
        from safetensors.torch import load_file

        span_head = torch.nn.Linear(model.config.hidden_size, 2)
        span_head.load_state_dict(load_file(span_file))

    class Reader(torch.nn.Module):
        """The relevance logit, and with a span head the start/end logits of every token."""

        def __init__(self, inner, span):
            super().__init__()
            self.inner, self.span = inner, span

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             output_hidden_states=self.span is not None)
            return out.logits if self.span is None else (out.logits, self.span(out.hidden_states[-1]))

    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / MODEL_FILE
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "ce-fp32.onnx"
        sample = tok(["what is it?"] * 2, ["It is a thing.", "Another sentence here."], padding=True, return_tensors="pt")
        if span_head is None:
            export_graph(Reader(model, None), sample, fp32, "logit")
        else:
            export_graph(Reader(model, span_head), sample, fp32, "logit", "span", per_token=("span",))
        quantize_int8(fp32, target)
    digest = file_sha256(target)
    int8 = CrossEncoder(target, digest)
    with torch.no_grad():
        enc = tok([q for q, _ in PAIRS], [s for _, s in PAIRS], truncation="longest_first", max_length=MAX_TOKENS,
                  padding=True, return_tensors="pt")
        ref = model(**enc).logits[:, 0].numpy()
    got = np.concatenate([int8.score(q, [s]) for q, s in PAIRS])
    spans = []
    for q, text in PAIRS:
        sentence = text.split(": ", 1)[-1]
        span = int8.read(q, [text], [sentence])[1][0]
        spans.append(span and (sentence[span.start:span.end], round(span.probability, 3)))
    print(json.dumps({"file": str(target), "mb": round(target.stat().st_size / 2**20, 2), "sha256": digest,
                      "fp32": [round(float(v), 3) for v in ref], "int8": [round(float(v), 3) for v in got],
                      "max_abs_diff": round(float(np.abs(ref - got).max()), 3),
                      "int8_spans": spans}, indent=1))


if __name__ == "__main__":
    main()
