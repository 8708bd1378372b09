#!/usr/bin/env python3
"""Generate the PyTorch / Hugging Face reference fixture for droplab's Swift BERT tests.

Setup (once; only PyPI is needed, no model weights are downloaded):

    python3 -m venv /work/venv
    /work/venv/bin/pip install "torch==2.13.0+cpu" transformers h5py safetensors

Run (from the repository root):

    /work/venv/bin/python tools/make_reference.py \
        [--out Tests/BERTTests/Fixtures/bert_reference.h5]

What it does
------------
Builds a tiny, randomly initialised ``transformers.BertForMaskedLM`` from a
config (vocab 99, hidden 32, 2 layers, 4 heads, FFN 64, no dropout, eager
attention), perturbs every parameter so that a wrong implementation cannot
hide behind zero biases / unit LayerNorm gains (LayerNorm gains 1 + 0.1*N(0,1),
every bias 0.1*N(0,1), every other weight multiplied by WEIGHT_SCALE = 8; the
MLM decoder stays tied to the word embeddings), runs one masked-LM forward and
backward on a fixed padded batch, then runs 5 AdamW steps from the same
starting point.  A ``BertForQuestionAnswering`` sharing the encoder weights is
evaluated too.  Everything is float32 (losses and norms are stored as
float64 scalars), and the run is deterministic (seed 0, one thread).

HDF5 layout written (no compression, contiguous datasets)
---------------------------------------------------------
/ attrs: ``config`` (HF config JSON string), ``format`` = "droplab-reference-1"
inputs/{input_ids,attention_mask,token_type_ids,labels}   int64 [B, T]
params/<hf name>      float32, every entry of model.named_parameters()
logits                float32 [B, T, V]
loss                  float64 scalar (mean CE over labels != -100)
grads/<hf name>       float32, d loss / d param
hidden/embeddings     float32 [B, T, H]  (embeddings after their LayerNorm)
hidden/layer.<i>      float32 [B, T, H]  (output of encoder layer i)
adamw/ attrs: lr, beta1, beta2, eps, weight_decay, max_grad_norm
adamw/losses          float64 [6]   loss after k = 0..5 steps
adamw/grad_norms      float64 [5]   pre-clipping total grad norm at each step
adamw/params/<name>   float32       parameters after 5 steps
qa/params/qa_outputs.{weight,bias}, qa/start_logits, qa/end_logits [B, T],
qa/loss (float64 scalar), qa/start_positions, qa/end_positions (int64 [B]),
qa/grads/{qa_outputs.weight, qa_outputs.bias,
          bert.encoder.layer.1.output.dense.weight}

Parameter names follow Hugging Face (``bert.embeddings.word_embeddings.weight``,
``bert.encoder.layer.0.attention.self.query.weight`` stored [out, in], ...).
The MLM decoder weight and bias are tied to the word embeddings and to
``cls.predictions.bias`` respectively, so ``cls.predictions.decoder.*`` do not
appear as separate entries.
"""

import argparse
import copy
import os
import sys

import numpy as np

try:
    import h5py
    import torch
    from transformers import BertConfig, BertForQuestionAnswering
except ImportError as exc:  # pragma: no cover - setup hint
    sys.exit(f"missing dependency ({exc}); see the setup line in this script's docstring")

from fixture_common import bert_config, perturbed_mlm, to_np32, write_params

FORMAT = "droplab-reference-1"
DEFAULT_OUT = os.path.join("Tests", "BERTTests", "Fixtures", "bert_reference.h5")

B, T = 3, 13
LENGTHS = (13, 9, 5)
CLS_ID, SEP_ID, PAD_ID = 2, 3, 0
FIRST_REGULAR_ID = 5          # ids 0..4 are reserved / special
LABELS_PER_SEQ = 4

WEIGHT_SCALE = 8.0            # multiplier for every non-bias, non-LayerNorm weight (init std 0.02 -> 0.16);
                              # large enough that attention is far from uniform (non-trivial Q/K grads)

ADAMW = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, max_grad_norm=1.0)
ADAMW_STEPS = 5

QA_START = [1, 2, 0]
QA_END = [3, 5, 0]


def make_config() -> BertConfig:
    return bert_config(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=40)


def make_batch(gen: torch.Generator, vocab_size: int):
    """Padded batch: [CLS] w w ... [SEP] PAD ...; labels on a few inner positions."""
    input_ids = torch.full((B, T), PAD_ID, dtype=torch.int64)
    attention_mask = torch.zeros((B, T), dtype=torch.int64)
    token_type_ids = torch.zeros((B, T), dtype=torch.int64)
    labels = torch.full((B, T), -100, dtype=torch.int64)
    for b, length in enumerate(LENGTHS):
        input_ids[b, :length] = torch.randint(FIRST_REGULAR_ID, vocab_size, (length,), generator=gen)
        input_ids[b, 0] = CLS_ID
        input_ids[b, length - 1] = SEP_ID
        attention_mask[b, :length] = 1
        token_type_ids[b, length // 2:length] = 1
        inner = torch.arange(1, length - 1)          # real, non-special positions
        k = min(LABELS_PER_SEQ, inner.numel())
        chosen = inner[torch.randperm(inner.numel(), generator=gen)[:k]]
        labels[b, chosen] = torch.randint(FIRST_REGULAR_ID, vocab_size, (k,), generator=gen)
    return input_ids, attention_mask, token_type_ids, labels


def adamw_param_groups(model: torch.nn.Module):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name.endswith(".bias") or "LayerNorm.weight" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": ADAMW["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def run_adamw(model: torch.nn.Module, batch):
    input_ids, attention_mask, token_type_ids, labels = batch
    params = [p for _, p in model.named_parameters()]
    opt = torch.optim.AdamW(
        adamw_param_groups(model),
        lr=ADAMW["lr"],
        betas=(ADAMW["beta1"], ADAMW["beta2"]),
        eps=ADAMW["eps"],
        foreach=False,
    )
    losses, norms = [], []
    for _ in range(ADAMW_STEPS):
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    token_type_ids=token_type_ids, labels=labels)
        losses.append(out.loss.item())
        out.loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm=ADAMW["max_grad_norm"]).item())
        opt.step()
        opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    token_type_ids=token_type_ids, labels=labels)
    losses.append(out.loss.item())
    return losses, norms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"output HDF5 path (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    gen = torch.Generator().manual_seed(0)

    config = make_config()
    model = perturbed_mlm(config, WEIGHT_SCALE, gen, noise_for_every_parameter=True)
    model.train()  # dropout probabilities are 0, so train == eval numerically
    V, H = config.vocab_size, config.hidden_size

    batch = make_batch(gen, V)
    input_ids, attention_mask, token_type_ids, labels = batch

    # Snapshot for the optimizer run before anything touches .grad.
    adamw_model = copy.deepcopy(model)

    # ---- MLM forward / backward -------------------------------------------------
    out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                labels=labels, output_hidden_states=True)
    out.loss.backward()
    named = list(model.named_parameters())
    hidden = out.hidden_states
    assert len(hidden) == config.num_hidden_layers + 1
    with torch.no_grad():
        emb = model.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        assert torch.equal(emb, hidden[0]), "hidden_states[0] is not the embeddings output"

    # ---- AdamW ------------------------------------------------------------------
    adamw_losses, adamw_norms = run_adamw(adamw_model, batch)
    assert abs(adamw_losses[0] - out.loss.item()) < 1e-6

    # ---- QA head ----------------------------------------------------------------
    qa = BertForQuestionAnswering._from_config(config, attn_implementation="eager")
    qa.train()
    bert_state = {k: v for k, v in model.state_dict().items() if k.startswith("bert.")}
    missing, unexpected = qa.load_state_dict(bert_state, strict=False)
    assert not unexpected, unexpected
    assert sorted(missing) == ["qa_outputs.bias", "qa_outputs.weight"], missing
    with torch.no_grad():
        qa.qa_outputs.weight.copy_(0.1 * torch.randn(qa.qa_outputs.weight.shape, generator=gen))
        qa.qa_outputs.bias.copy_(0.1 * torch.randn(qa.qa_outputs.bias.shape, generator=gen))
    start_positions = torch.tensor(QA_START, dtype=torch.int64)
    end_positions = torch.tensor(QA_END, dtype=torch.int64)
    qa_out = qa(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                start_positions=start_positions, end_positions=end_positions)
    qa_out.loss.backward()
    qa_named = dict(qa.named_parameters())
    qa_grad_names = ["qa_outputs.weight", "qa_outputs.bias", "bert.encoder.layer.1.output.dense.weight"]

    # ---- write ------------------------------------------------------------------
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with h5py.File(args.out, "w") as f:
        f.attrs["config"] = config.to_json_string()
        f.attrs["format"] = FORMAT
        gi = f.create_group("inputs")
        for key, t in zip(("input_ids", "attention_mask", "token_type_ids", "labels"), batch):
            gi.create_dataset(key, data=t.numpy().astype(np.int64))
        write_params(f.create_group("params"), named)
        f.create_dataset("logits", data=to_np32(out.logits))
        f.create_dataset("loss", data=np.float64(out.loss.item()))
        gg = f.create_group("grads")
        for name, p in named:
            gg.create_dataset(name, data=to_np32(p.grad))
        gh = f.create_group("hidden")
        gh.create_dataset("embeddings", data=to_np32(hidden[0]))
        for i in range(config.num_hidden_layers):
            gh.create_dataset(f"layer.{i}", data=to_np32(hidden[i + 1]))
        ga = f.create_group("adamw")
        for key, value in ADAMW.items():
            ga.attrs[key] = np.float64(value)
        ga.create_dataset("losses", data=np.asarray(adamw_losses, dtype=np.float64))
        ga.create_dataset("grad_norms", data=np.asarray(adamw_norms, dtype=np.float64))
        write_params(ga.create_group("params"), adamw_model.named_parameters())
        gq = f.create_group("qa")
        gqp = gq.create_group("params")
        for name in ("qa_outputs.weight", "qa_outputs.bias"):
            gqp.create_dataset(name, data=to_np32(qa_named[name]))
        gq.create_dataset("start_logits", data=to_np32(qa_out.start_logits))
        gq.create_dataset("end_logits", data=to_np32(qa_out.end_logits))
        gq.create_dataset("loss", data=np.float64(qa_out.loss.item()))
        gq.create_dataset("start_positions", data=start_positions.numpy())
        gq.create_dataset("end_positions", data=end_positions.numpy())
        gqg = gq.create_group("grads")
        for name in qa_grad_names:
            gqg.create_dataset(name, data=to_np32(qa_named[name].grad))

    verify(args.out, named, out, adamw_model, config)

    # ---- summary ----------------------------------------------------------------
    n_params = sum(p.numel() for _, p in named)
    grad_norm = torch.sqrt(sum((p.grad.double() ** 2).sum() for _, p in named)).item()
    logits = out.logits.detach()
    real = attention_mask.bool()
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    print(f"torch {torch.__version__}, attn_implementation={model.config._attn_implementation}")
    print(f"params: {len(named)} tensors, {n_params} values")
    print(f"labels: {int((labels != -100).sum())} supervised positions")
    print(f"loss = {out.loss.item():.8f}")
    print(f"logits: std {logits.std().item():.4f} (real positions {logits[real].std().item():.4f}), "
          f"min {logits.min().item():.4f}, max {logits.max().item():.4f}")
    print(f"total grad norm = {grad_norm:.6f}")
    for name, p in named:
        print(f"  |grad| {p.grad.norm().item():10.6f}  {name} {tuple(p.shape)}")
    print("adamw losses     = " + ", ".join(f"{x:.6f}" for x in adamw_losses))
    print("adamw grad norms = " + ", ".join(f"{x:.6f}" for x in adamw_norms))
    print(f"qa loss = {qa_out.loss.item():.8f}, start_logits std {qa_out.start_logits.std().item():.4f}")
    return 0


def verify(path, named, out, adamw_model, config) -> None:
    """Re-read the file and check it against the in-memory tensors."""
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT
        assert BertConfig.from_dict(__import__("json").loads(f.attrs["config"])).vocab_size == config.vocab_size
        for key in ("input_ids", "attention_mask", "token_type_ids", "labels"):
            ds = f["inputs"][key]
            assert ds.dtype == np.int64 and ds.shape == (B, T), key
        names = [n for n, _ in named]
        assert sorted(f["params"].keys()) == sorted(names)
        assert sorted(f["grads"].keys()) == sorted(names)
        assert sorted(f["adamw/params"].keys()) == sorted(names)
        for name, p in named:
            assert f["params"][name].dtype == np.float32
            np.testing.assert_array_equal(f["params"][name][()], to_np32(p))
            np.testing.assert_array_equal(f["grads"][name][()], to_np32(p.grad))
        for name, p in adamw_model.named_parameters():
            np.testing.assert_array_equal(f["adamw/params"][name][()], to_np32(p))
        assert f["logits"].shape == (B, T, config.vocab_size) and f["logits"].dtype == np.float32
        np.testing.assert_array_equal(f["logits"][()], to_np32(out.logits))
        assert f["loss"].shape == () and f["loss"].dtype == np.float64
        assert f["loss"][()] == out.loss.item()
        assert f["hidden/embeddings"].shape == (B, T, config.hidden_size)
        for i in range(config.num_hidden_layers):
            assert f[f"hidden/layer.{i}"].shape == (B, T, config.hidden_size)
        assert f["adamw/losses"].shape == (ADAMW_STEPS + 1,)
        assert f["adamw/grad_norms"].shape == (ADAMW_STEPS,)
        assert set(f["adamw"].attrs.keys()) == set(ADAMW.keys())
        assert f["qa/start_logits"].shape == (B, T) and f["qa/loss"].shape == ()
        assert len(f["qa/grads"].keys()) == 3


if __name__ == "__main__":
    sys.exit(main())
