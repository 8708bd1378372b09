#!/usr/bin/env python3
"""Generate the bf16 reference fixture for droplab's `--precision bf16` tests.

Setup: the venv of make_reference.py. Run (from the repository root):

    /work/venv/bin/python tools/make_bf16_reference.py \
        [--reference Tests/BERTTests/Fixtures/bert_reference.h5] \
        [--out Tests/BERTTests/Fixtures/bert_bf16_reference.h5]

What it does
------------
Reads the tiny model, batch and labels of ``bert_reference.h5`` (make_reference.py) into a
``BertForMaskedLM`` (eager attention) and runs one masked-LM forward and backward twice:

- ``autocast/``: under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (torch's mixed
  precision: linear layers and the attention matmuls in bf16, with bf16 outputs).
- ``emulated/``: in float32, with every ``nn.Linear`` replaced by droplab's bf16 scheme: the
  forward product round(x) round(W)^T + b and the backward products dx = round(dy) round(W)
  and dW = round(dy)^T round(x), each operand rounded to bf16 (round-to-nearest-even) and
  every product accumulated in float32; the per-head attention products likewise (scores
  round(Q) round(K)^T, context round(P) round(V), and their backward products from the
  rounded gradient), softmax in float32. This is what ``Tape(precision: .bf16)`` computes,
  so droplab must match it closely.

It also writes ``conversion/``: float32 bit patterns (edge cases: signed zeros, infinities,
NaNs, subnormals, ties to even and odd, the largest finite float, then 4096 random patterns)
and torch's bf16 conversion of them (``Tensor.to(torch.bfloat16)``).

HDF5 layout
-----------
/ attrs: ``format`` = "droplab-bf16-reference-1", ``torch`` (version)
conversion/fp32_bits   int64 [n]   float32 bit patterns
conversion/bf16_bits   int64 [n]   torch's bf16 bits (NaN: torch writes 0xFFFF, droplab 0x7FC0)
{autocast,emulated}/logits   float32 [B, T, V]
{autocast,emulated}/loss     float64 scalar
{autocast,emulated}/grads/<hf name>   float32, d loss / d param
"""

import argparse
import os
import sys

import numpy as np

try:
    import h5py
    import torch
except ImportError as exc:  # pragma: no cover - setup hint
    sys.exit(f"missing dependency ({exc}); see make_reference.py's setup line")

from fixture_common import load_reference
from transformers.models.bert import modeling_bert

FORMAT = "droplab-bf16-reference-1"
FIXTURES = os.path.join("Tests", "BERTTests", "Fixtures")

EDGE_BITS = [
    0x00000000, 0x80000000,                          # +0, -0
    0x7F800000, 0xFF800000,                          # +inf, -inf
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00001,  # quiet, negative, signalling and payload NaNs
    0x00000001, 0x80000001, 0x00007FFF, 0x00008000,  # subnormals: smallest, below and at a tie (even: down)
    0x00018000, 0x00008001, 0x007FFFFF, 0x807FFFFF,  # tie (odd: up), just above a tie, largest (rounds to normal)
    0x00800000, 0x3F800000, 0x3F808000, 0x3F818000,  # smallest normal, 1, 1 + tie (even: down), tie (odd: up)
    0x3F807FFF, 0x3F808001, 0xBF808000, 0xBF818000,  # just below / above a tie, negative ties
    0x3FFF8000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF,  # carry into the exponent, below / at overflow, largest float
    0xFF7FFFFF, 0x4B7FFFFF, 0x33800000, 0x477FE000,  # -largest, 2^24 - 1, 2^-24, 65504
]


def rne(t):
    """float32 -> bf16 values (as float32), round-to-nearest-even on the bit pattern."""
    u = t.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    r = torch.where(r >= 1 << 31, r - (1 << 32), r).to(torch.int32).view(torch.float32)
    return torch.where(torch.isnan(t), t, r)


class RoundedLinear(torch.autograd.Function):
    """droplab's bf16 linear: operands rounded to bf16, products and accumulation in float32."""

    @staticmethod
    def forward(ctx, x, w, b):
        xr, wr = rne(x), rne(w)
        ctx.save_for_backward(xr, wr)
        y = xr @ wr.t()
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        dyr = rne(dy)
        dx = dyr @ wr
        dw = dyr.reshape(-1, dyr.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        db = dy.reshape(-1, dy.shape[-1]).sum(0)
        return dx, dw, db


class RoundedMatmul(torch.autograd.Function):
    """droplab's bf16 attention product a @ b: operands (and, backward, the gradient) rounded to bf16."""

    @staticmethod
    def forward(ctx, a, b):
        ar, br = rne(a), rne(b)
        ctx.save_for_backward(ar, br)
        return ar @ br

    @staticmethod
    def backward(ctx, g):
        ar, br = ctx.saved_tensors
        gr = rne(g)
        return gr @ br.transpose(-1, -2), ar.transpose(-1, -2) @ gr


def rounded_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention with RoundedMatmul for its two products."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = RoundedMatmul.apply(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.nn.functional.softmax(weights, dim=-1)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    return RoundedMatmul.apply(weights, value).transpose(1, 2).contiguous(), weights


def emulate_bf16_products(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.forward = (lambda mod: lambda x: RoundedLinear.apply(x, mod.weight, mod.bias))(m)
    modeling_bert.eager_attention_forward = rounded_attention


def run(model, inputs, autocast):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(**inputs)
    out.loss.backward()
    return (out.logits.detach().float(), out.loss.item(),
            {n: p.grad.detach().float().clone() for n, p in model.named_parameters()})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default=os.path.join(FIXTURES, "bert_reference.h5"))
    ap.add_argument("--out", default=os.path.join(FIXTURES, "bert_bf16_reference.h5"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    gen = np.random.default_rng(0)
    bits = np.array(EDGE_BITS + list(gen.integers(0, 1 << 32, 4096, dtype=np.uint64)), dtype=np.uint32)
    bf16 = torch.from_numpy(bits.view(np.float32).copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    mine = rne(torch.from_numpy(bits.view(np.float32).copy())).view(torch.int32).numpy().view(np.uint32) >> 16
    finite = ~np.isnan(bits.view(np.float32))
    assert np.array_equal(mine[finite], bf16[finite]), "rne() disagrees with torch's conversion"

    model, inputs = load_reference(args.reference)   # dropout probabilities are 0: train == eval
    results = {"autocast": run(model, inputs, autocast=True)}
    fp32 = run(model, inputs, autocast=False)
    emulate_bf16_products(model)
    results["emulated"] = run(model, inputs, autocast=False)

    with h5py.File(args.out, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["torch"] = str(torch.__version__)
        f.create_dataset("conversion/fp32_bits", data=bits.astype(np.int64))
        f.create_dataset("conversion/bf16_bits", data=bf16.astype(np.int64))
        for kind, (logits, loss, grads) in results.items():
            g = f.create_group(kind)
            g.create_dataset("logits", data=logits.numpy())
            g.create_dataset("loss", data=np.float64(loss))
            for name, grad in grads.items():
                g.create_dataset("grads/" + name, data=grad.numpy())

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes), torch {torch.__version__}")
    for kind, (logits, loss, grads) in results.items():
        worst = max(rel(grads[n], fp32[2][n]) for n in grads if not n.endswith("key.bias"))
        print(f"{kind} vs float32: loss {loss:.6f} vs {fp32[1]:.6f}, logits rel norm {rel(logits, fp32[0]):.2e}, "
              f"worst gradient rel norm {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
