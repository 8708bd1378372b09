#!/usr/bin/env python3
"""Generate the dropout parity fixture: one masked-LM forward/backward of the reference BERT
with hidden and attention dropout ON, in transformers, using droplab's own dropout masks.

Setup: as tools/make_reference.py. Run (from the repository root, after make_reference.py):

    /work/venv/bin/python tools/make_dropout_reference.py

droplab draws every dropout mask from a counter-based hash keyed by (seed, step, site)
(Sources/Autograd/RNG.swift, Sources/Autograd/Ops/Dropout.swift): element i of site s is
dropped when the 16-bit value i of CounterRNG(seed, step, s) is below ceil(p * 65536), and a
kept element is scaled by 1/(1-p) (float32). This script ports that hash, builds the masks of
every site of the model in Sources/BERT/Model.swift (0: embeddings; for layer l: 16l+1 the
attention probabilities [B, NH, T, T], 16l+2 the attention output, 16l+3 the FFN output),
and makes transformers use exactly them by replacing torch.nn.functional.dropout (which both
nn.Dropout and the eager attention call, in forward order) with "multiply by the next mask".
The Swift test checks that its own masks equal the stored ones bit for bit, then compares the
loss and every parameter gradient.

Reads Tests/BERTTests/Fixtures/bert_reference.h5 (parameters, config, padded batch) and
writes Tests/BERTTests/Fixtures/bert_dropout_reference.h5:
/ attrs: seed, step, hidden_dropout, attention_dropout (float64), format "droplab-dropout-reference-1"
masks/<site>        float32, the mask of that site (0 or 1/(1-p)), in its tensor's shape
loss                float64 scalar
grads/<hf name>     float32, d loss / d param
"""

import argparse
import math
import os
import sys

import numpy as np

try:
    import h5py
    import torch
except ImportError as exc:  # pragma: no cover - setup hint
    sys.exit(f"missing dependency ({exc}); see the setup line in tools/make_reference.py")

from fixture_common import load_reference


FORMAT = "droplab-dropout-reference-1"
FIXTURES = os.path.join("Tests", "BERTTests", "Fixtures")
SEED, STEP = 7, 3
HIDDEN_P, ATTENTION_P = 0.1, 0.2      # different, so that swapped sites cannot pass
M64 = (1 << 64) - 1


def mix64(z):
    """splitmix64 finalizer, as Autograd's mix64."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def counter_key(seed, *streams):
    """CounterRNG(seed:, streams...).key"""
    k = mix64(seed)
    for s in streams:
        k = mix64(k ^ mix64((s + 0x632BE59BD9B4E019) & M64))
    return k


def dropout_mask(key, p, shape):
    """Autograd's dropoutMask: 0 where the 16-bit draw < ceil(p * 2^16), else 1/(1-p) (float32)."""
    n = int(np.prod(shape))
    p32 = np.float32(p)
    threshold = math.ceil(float(p32 * np.float32(65536)))
    keep = np.float32(1) / (np.float32(1) - p32)
    m = np.empty(n, dtype=np.float32)
    for b in range((n + 3) // 4):
        bits = mix64(key ^ ((b * 0xD1B54A32D192ED03) & M64))
        for k in range(min(4, n - 4 * b)):
            m[4 * b + k] = 0 if (bits >> (16 * k)) & 0xFFFF < threshold else keep
    return m.reshape(shape)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=os.path.join(FIXTURES, "bert_reference.h5"))
    ap.add_argument("--out", default=os.path.join(FIXTURES, "bert_dropout_reference.h5"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model, inputs = load_reference(args.reference, hidden_dropout_prob=HIDDEN_P, attention_probs_dropout_prob=ATTENTION_P)
    config = model.config

    B, T = inputs["input_ids"].shape
    C, NH, L = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
    sites = [(0, HIDDEN_P, (B, T, C))]
    for layer in range(L):
        sites += [(16 * layer + 1, ATTENTION_P, (B, NH, T, T)), (16 * layer + 2, HIDDEN_P, (B, T, C)),
                  (16 * layer + 3, HIDDEN_P, (B, T, C))]
    masks = {s: dropout_mask(counter_key(SEED, STEP, s), p, shape) for s, p, shape in sites}

    queue = [(s, p) for s, p, _ in sites]
    original = torch.nn.functional.dropout

    def droplab_dropout(x, p=0.5, training=True, inplace=False):
        site, expected_p = queue.pop(0)
        m = torch.from_numpy(masks[site])
        assert training and abs(p - expected_p) < 1e-9 and tuple(x.shape) == tuple(m.shape), (site, p, x.shape)
        return x * m

    torch.nn.functional.dropout = droplab_dropout
    try:
        out = model(**inputs)
    finally:
        torch.nn.functional.dropout = original
    assert not queue, f"dropout sites not reached: {queue}"
    out.loss.backward()

    with h5py.File(args.out, "w") as f:
        f.attrs["format"] = FORMAT
        for key, value in (("seed", SEED), ("step", STEP), ("hidden_dropout", HIDDEN_P), ("attention_dropout", ATTENTION_P)):
            f.attrs[key] = np.float64(value)
        gm = f.create_group("masks")
        for s, m in masks.items():
            gm.create_dataset(str(s), data=m)
        f.create_dataset("loss", data=np.float64(out.loss.item()))
        gg = f.create_group("grads")
        for name, p in model.named_parameters():
            gg.create_dataset(name, data=p.grad.detach().numpy().astype(np.float32))
    dropped = {s: float((m == 0).mean()) for s, m in masks.items()}
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): loss {out.loss.item():.8f}, "
          f"dropped fraction per site {dropped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
