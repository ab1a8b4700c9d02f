"""Requantize an int8 cross-encoder's weights to 7 bits, so every x86 CPU computes the same logits.

    python bench/requantize_7bit.py bot/models/cross-encoder-int8.onnx OUT.onnx

The models are quantized u8 activations x s8 weights. Where a CPU lacks VNNI, ONNX Runtime
multiplies them with VPMADDUBSW, which adds two products into 16 bits and saturates; VNNI and
AMX compute exactly. The same file then gave other logits and spans on two machines
(docs/quality.md, pass 8). With weights in [-64, 63] two products stay within 16 bits
(2 x 255 x 64 = 32,640), so both paths compute the same integers. Each per-channel weight is
halved and rounded, its scale doubled; zero points stay 0 (symmetric). Deterministic, and a
no-op on a file already in 7 bits. Measured in pass 8 and not shipped: val figures equal within
noise, but two briefing answers the 8-bit model gets right went wrong.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path


def requantize(source: Path, target: Path) -> int:
    """Rewrite every MatMulInteger weight of ``source`` to 7 bits into ``target``; returns how many."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    initializers = {i.name: i for i in model.graph.initializer}
    done = 0
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in initializers:
            continue
        weight = node.input[1]
        scale = weight.removesuffix("_quantized") + "_scale"
        zero = node.input[3] if len(node.input) > 3 else ""
        if zero in initializers and numpy_helper.to_array(initializers[zero]).any():
            raise ValueError(f"{weight}: asymmetric weights (a zero point is not 0)")
        w = numpy_helper.to_array(initializers[weight]).astype(np.int32)
        if w.min() >= -64 and w.max() <= 63:
            continue  # already 7 bits
        s = numpy_helper.to_array(initializers[scale])
        initializers[weight].CopyFrom(numpy_helper.from_array(np.clip(np.round(w / 2), -64, 63).astype(np.int8), weight))
        initializers[scale].CopyFrom(numpy_helper.from_array((s * 2).astype(s.dtype), scale))
        done += 1
    onnx.save(model, str(target))
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    target = args.out
    n = requantize(args.source, target)
    print(f"{n} weight matrices to 7 bits -> {target} "
          f"({target.stat().st_size / 1e6:.1f} MB, sha256 {hashlib.sha256(target.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
