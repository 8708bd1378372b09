#!/usr/bin/env python3
"""Build the LoRA and LoReFT parity fixture for droplab's edit tests (Tests/BERTTests/EditParityTests.swift).

Run with the project venv (no network, no downloaded weights):

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_edit_reference.py

Model and batch: the tiny random BertForMaskedLM of Tests/BERTTests/Fixtures/bert_reference.h5
(make_reference.py: its parameters, padded batch and masked labels), in eval mode and float64.
The loss is Hugging Face's MLM loss (mean cross-entropy over the labelled positions).

LoRA (peft's formulation, written out here; peft is not imported): every nn.Linear named in
LORA_TARGETS gets output + (alpha / r) * lora_B(lora_A(x)) with lora_A.weight = A [r, in] and
lora_B.weight = B [out, r], added by a forward hook (droplab instead computes W + (alpha/r) B A
as a weight view: the same function, a different evaluation order). A and B are drawn nonzero
(B = 0 at init would leave A without a gradient) from numpy default_rng(LORA_SEED).

LoReFT (pyreft's LoreftIntervention, written out): at the output of bert.encoder.layer[l] (the
block output after its LayerNorm), on the rows of PLACES, h <- h + (W h + b - R h) R^T-row-wise,
i.e. pyreft's base + (learned_source(base) - rotate_layer(base)) @ rotate_layer.weight.T with
rotate_layer.weight = R^T [C, r] (orthonormal columns: R from a QR factorisation) and
learned_source = nn.Linear(C, r) with weight W [r, C] and bias b [r]. A place's rows are
flattened batch rows b * T + t.

Output (HDF5; the model and the inputs as in bert_reference.h5; edit tensors float32 (both sides
use these exact values); reference numbers float64):
  attrs config, description, torch_version, transformers_version, reference_sha256
  inputs/{input_ids,attention_mask,token_type_ids,labels}, params/<HF name>
  lora: attr targets (JSON list); lora/alpha; lora/A/<target> (the rank: A's rows), lora/B/<target>, lora/loss,
        lora/grad_A/<target>, lora/grad_B/<target>
  reft: attr places (JSON list of {layer, rows}); reft/<k>/{R,W,b} (the rank: R's rows), reft/loss,
        reft/grad/<k>/{R,W,b}
  plain_loss                  the loss without an edit
Self-checks (exit 1 on failure): the LoRA hook equals the merged weight W + (alpha/r) B A
(1e-12); a LoReFT with W = R and b = 0 is the identity; the file reads back equal.
"""

import hashlib
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py
import numpy as np
import torch
import transformers

from fixture_common import load_reference

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
REFERENCE = os.path.join(ROOT, "Tests", "BERTTests", "Fixtures", "bert_reference.h5")
OUT = os.path.join(ROOT, "Tests", "BERTTests", "Fixtures", "edit_reference.h5")

LORA_RANK, LORA_ALPHA, LORA_SEED, LORA_SCALE = 4, 8.0, 11, 0.3
REFT_RANK, REFT_SEED = 2, 12


def lora_targets(L):
    return [f"bert.encoder.layer.{l}.{m}.weight" for l in range(L)
            for m in ("attention.self.query", "attention.self.value", "intermediate.dense", "output.dense")]


def places(batch, T):
    """Layer 0 at position 0 ([CLS]) of every sequence; layer 1 at position 2 of every sequence."""
    return [{"layer": 0, "rows": [b * T for b in range(batch)]},
            {"layer": 1, "rows": [b * T + 2 for b in range(batch)]}]


def mlm_loss(model, inputs):
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                token_type_ids=inputs["token_type_ids"], labels=inputs["labels"])
    return out.loss


def lora_loss(model, inputs, tensors, scaling, hooks_only=True):
    """The loss with LoRA hooks on the target linears; tensors[name] = (A, B)."""
    handles = []
    modules = dict(model.named_modules())
    for name, (A, B) in tensors.items():
        linear = modules[name[: -len(".weight")]]
        handles.append(linear.register_forward_hook(
            lambda mod, args, out, A=A, B=B: out + scaling * (args[0] @ A.T) @ B.T))
    try:
        return mlm_loss(model, inputs)
    finally:
        for h in handles:
            h.remove()


def reft_loss(model, inputs, interventions, T):
    handles = []
    for place, (R, W, b) in interventions:
        rows = torch.tensor(place["rows"])

        def hook(mod, args, out, rows=rows, R=R, W=W, b=b):
            h = out if isinstance(out, torch.Tensor) else out[0]   # the layer returns a tensor or a tuple by version
            flat = h.reshape(-1, h.shape[-1])
            base = flat[rows]
            rotate_weight = R.T                                   # pyreft's rotate_layer.weight [C, r]
            edited = base + ((base @ W.T + b) - base @ rotate_weight) @ rotate_weight.T
            flat = flat.index_put((rows,), edited)
            return flat.reshape(h.shape) if isinstance(out, torch.Tensor) else (flat.reshape(h.shape),) + tuple(out[1:])
        handles.append(model.bert.encoder.layer[place["layer"]].register_forward_hook(hook))
    try:
        return mlm_loss(model, inputs)
    finally:
        for h in handles:
            h.remove()


def main():
    torch.manual_seed(0)
    model, inputs = load_reference(REFERENCE)
    model.eval()
    model.double()
    cfg = model.config
    L, C = cfg.num_hidden_layers, cfg.hidden_size
    batch, T = inputs["input_ids"].shape
    with h5py.File(REFERENCE, "r") as f:
        params = {k: f["params"][k][()] for k in f["params"].keys()}
    plain = mlm_loss(model, inputs).item()

    # LoRA
    rng = np.random.default_rng(LORA_SEED)
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    lora = {}
    for name in lora_targets(L):
        out_dim, in_dim = shapes[name]
        A = (LORA_SCALE * rng.standard_normal((LORA_RANK, in_dim))).astype(np.float32)
        B = (LORA_SCALE * rng.standard_normal((out_dim, LORA_RANK))).astype(np.float32)
        lora[name] = (torch.tensor(A, dtype=torch.float64, requires_grad=True),
                      torch.tensor(B, dtype=torch.float64, requires_grad=True))
    scaling = LORA_ALPHA / LORA_RANK
    loss = lora_loss(model, inputs, lora, scaling)
    loss.backward()
    # self-check: the hooks equal the merged weights
    with torch.no_grad():
        merged = {n: p.clone() for n, p in model.named_parameters()}
        for name, (A, B) in lora.items():
            dict(model.named_parameters())[name].add_(scaling * B @ A)
        merged_loss = mlm_loss(model, inputs).item()
        for n, p in model.named_parameters():
            p.copy_(merged[n])
    if abs(merged_loss - loss.item()) > 1e-12:
        sys.exit(f"LoRA hook {loss.item()} != merged weights {merged_loss}")

    # LoReFT
    rng = np.random.default_rng(REFT_SEED)
    reft = []
    for place in places(batch, T):
        q, _ = np.linalg.qr(rng.standard_normal((C, REFT_RANK)))
        R = q.T.astype(np.float32)                                  # rows orthonormal (to float32 rounding)
        W = (rng.uniform(-1, 1, (REFT_RANK, C)) / np.sqrt(C)).astype(np.float32)
        b = (0.5 * rng.standard_normal(REFT_RANK)).astype(np.float32)
        reft.append((place, tuple(torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (R, W, b))))
    rloss = reft_loss(model, inputs, reft, T)
    rloss.backward()
    with torch.no_grad():
        identity = [(p, (R, R, torch.zeros_like(b))) for p, (R, W, b) in reft]
        if abs(reft_loss(model, inputs, identity, T).item() - plain) > 1e-12:
            sys.exit("LoReFT with W = R, b = 0 is not the identity")

    tmp = OUT + ".tmp"
    with h5py.File(tmp, "w") as f:
        with h5py.File(REFERENCE, "r") as ref:
            f.attrs["config"] = ref.attrs["config"]
        f.attrs["description"] = ("LoRA (peft's formulation) and LoReFT (pyreft's) on bert_reference.h5's model and "
                                  "batch, float64: losses and gradients of the edit tensors (tools/make_edit_reference.py)")
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["transformers_version"] = str(transformers.__version__)
        with open(REFERENCE, "rb") as r:
            f.attrs["reference_sha256"] = hashlib.sha256(r.read()).hexdigest()
        for k, v in inputs.items():
            f.create_dataset("inputs/" + k, data=v.numpy().astype(np.int64))
        for k in sorted(params):
            f.create_dataset("params/" + k, data=params[k])
        f.create_dataset("plain_loss", data=np.float64(plain))
        g = f.create_group("lora")
        g.create_dataset("alpha", data=np.float64(LORA_ALPHA))
        g.attrs["targets"] = json.dumps(list(lora))
        for name, (A, B) in lora.items():
            g.create_dataset("A/" + name, data=A.detach().numpy().astype(np.float32))
            g.create_dataset("B/" + name, data=B.detach().numpy().astype(np.float32))
            g.create_dataset("grad_A/" + name, data=A.grad.numpy())
            g.create_dataset("grad_B/" + name, data=B.grad.numpy())
        g.create_dataset("loss", data=np.float64(loss.item()))
        g = f.create_group("reft")
        g.attrs["places"] = json.dumps([p for p, _ in reft])
        for k, (p, tensors) in enumerate(reft):
            for n, t in zip("RWb", tensors):
                g.create_dataset(f"{k}/{n}", data=t.detach().numpy().astype(np.float32))
                g.create_dataset(f"grad/{k}/{n}", data=t.grad.numpy())
        g.create_dataset("loss", data=np.float64(rloss.item()))
    with h5py.File(tmp, "r") as f:
        if abs(f["lora/loss"][()] - loss.item()) != 0 or abs(f["reft/loss"][()] - rloss.item()) != 0:
            sys.exit("read-back mismatch")
    os.replace(tmp, OUT)
    print(f"wrote {OUT}: plain loss {plain:.6f}, LoRA {loss.item():.6f}, LoReFT {rloss.item():.6f}")


if __name__ == "__main__":
    main()
