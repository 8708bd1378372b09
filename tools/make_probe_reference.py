#!/usr/bin/env python3
"""Build the knowledge-probing reference fixture for droplab's Swift evaluators.

Run with the project venv (no network, no downloaded weights):

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_probe_reference.py
    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_probe_reference.py --out X.h5 \\
        --model Tests/EvaluatorsTests/Fixtures/blimp_model.h5 --vocab Tests/TextTests/Fixtures/vocab.txt

Model: the tiny checkpoint blimp_model.h5 (made by make_blimp_reference.py: hidden C = 16,
L = 2 layers, 2 heads, FFN F = 32), loaded into a BertForMaskedLM (eager attention, decoder
tied to the word embeddings, eval mode) and converted to float64 (model.double()); every
number below is computed in float64. Tokenizer: BertTokenizerFast over vocab.txt (lower-case).

Each probe is a cloze prompt with one [MASK], a target word that is one vocabulary entry and
a subject string that occurs in the prompt. ids = [CLS] + WordPiece tokens + [SEP]; every
probe runs alone (batch 1, no padding), token_type_ids 0, attention_mask 1.
Notation: m = mask position, y = target id, T = probe length, Tmax = longest probe,
F(.) = softmax(model.cls(last hidden state))[m, y], the target probability at the mask.
Layer indices l are 0-based encoder layers (bert.encoder.layer[l]).

Output (HDF5; float64 for reals, int32 for ids and indices; [P, Tmax, ...] arrays are
zero beyond each probe's length):

  root attrs   description, torch_version, transformers_version, model_sha256 (of the
               blimp_model.h5 file), vocab_sha256 (of vocab.txt)
  probes       attr json = JSON list of {prompt, target, subject, tokens}
    ids [P,Tmax] int32, length [P], mask_pos [P], target_id [P],
    subject_start [P], subject_end [P] (exclusive): the tokens whose character offsets
    overlap the first occurrence of the subject in the prompt ([CLS] is position 0)
  clean/prob [P]              F on the clean input
  clean/top1 [P] int32        argmax of the MLM logits at m
  lens/prob [P, L+1]          target prob at m of model.cls(h_j), h_j = hidden_states[j]:
                              j = 0 embedding output (after the embedding LayerNorm),
                              j = l+1 output of encoder layer l (after its output LayerNorm);
                              lens/prob[:, L] == clean/prob
  lens/top1 [P, L+1] int32    argmax of model.cls(h_j) at m
  ffn_pre [P, L, F]           output of layer[l].intermediate.dense (before GELU) at m
  attention [P, L, NH, Tmax, Tmax]  the clean run's attention weights (output_attentions:
                              softmax over the keys, eager attention), [p, l, h, query, key]
  ig/layer () int32 = 1, ig/steps () int32 = 4
  ig/attributions [P, F]      integrated gradients of F w.r.t. z = the ffn.pre activation
                              (intermediate.dense output) of layer ig/layer at position m;
                              zero baseline, right Riemann sum: with x = ffn_pre[p, 1],
                              attr = x * (1/steps) * sum_{k=1..steps} dF/dz at z = (k/steps) x;
                              z replaces only row m of that layer's intermediate.dense output
  ig/grads [P, steps, F]      the gradients dF/dz at k = 1..steps (row k-1)
  ig/f_x [P]                  F with z = x (= clean/prob)
  ig/f_baseline [P]           F with z = 0
  ig/grad_sum [P]             sum of ig/attributions[p]
  grad_emb [P, Tmax, C]       dF/dE, E = word_embeddings(ids) (inputs_embeds, before the
                              position and token-type embeddings are added)
  scale/layer () int32 = 0, scale/units [3] int32, scale/factors [2]
  scale/prob [P, 2]           F with the ffn.pre activation of layer scale/layer at m multiplied
                              by scale/factors[k] on scale/units only
  trace/sigma ()              std (ddof 0) of all entries of the word-embedding matrix
  trace/noise_scale () = 3
  trace/noise [P, Tmax, C]    numpy default_rng(0).standard_normal((P, Tmax, C)) * 3 * sigma,
                              then zeroed outside the subject rows
  trace/prob_corrupt [P]      F with inputs_embeds = E + noise
  trace/prob_restored_block [P, L, Tmax]     corrupted run, but the output of layer[l] (the
                              BertLayer output = hidden_states[l+1]) at position t replaced by
                              the clean run's value; F
  trace/prob_restored_ffn_out [P, L, Tmax]   same, restoring the output of
                              layer[l].output.dense (FFN output before dropout/residual/LayerNorm)
  trace/prob_restored_attn_out [P, L, Tmax]  same, restoring the output of
                              layer[l].attention.output.dense (before residual/LayerNorm)

Self-checks (exit 1 on failure): lens/prob[:, L] == clean/prob; restoring every position of a
layer's block output in the corrupted run gives the clean prob (1e-12); F through inputs_embeds
equals F through input_ids; hidden_states[l+1] equals the hooked layer[l] output; IG
completeness error at 50 steps is < 1/5 of that at 4; restoring the last layer's block output at
m gives the clean prob and at t != m the corrupted one; the written file reads back equal (the
output file is only replaced when every check passes).
The output is byte-for-byte deterministic (no timestamps, fixed order).
"""

import argparse
import contextlib
import hashlib
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py
import numpy as np
import torch
import transformers
from transformers import BertConfig, BertForMaskedLM

from fixture_common import load_wordpiece_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_MODEL = os.path.join(ROOT, "Tests", "EvaluatorsTests", "Fixtures", "blimp_model.h5")
DEFAULT_VOCAB = os.path.join(ROOT, "Tests", "TextTests", "Fixtures", "vocab.txt")
DEFAULT_OUT = os.path.join(ROOT, "Tests", "EvaluatorsTests", "Fixtures", "probe_reference.h5")

PROBES = [
    {"prompt": "paris is the capital of [MASK] .", "target": "france", "subject": "paris"},
    {"prompt": "the official language of the french republic is [MASK] .", "target": "english",
     "subject": "the french republic"},
    {"prompt": "the river that runs through the capital city is located in [MASK] .", "target": "france",
     "subject": "the river"},
    {"prompt": "the king of england was born in [MASK] .", "target": "germany",
     "subject": "the king of england"},
]
IG_LAYER = 1
IG_STEPS = 4
IG_STEPS_FINE = 50
SCALE_LAYER = 0
SCALE_UNITS = [1, 5, 7]
SCALE_FACTORS = [0.0, 3.0]
NOISE_SEED = 0
NOISE_SCALE = 3.0


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------- model

def load_model(path):
    """float64 eval-mode BertForMaskedLM from a droplab checkpoint, and its vocab bytes."""
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "droplab-checkpoint" and int(f.attrs["format_version"]) == 1
        assert f.attrs["head"] == "mlm"
        cfg = json.loads(f.attrs["config"])
        state = {k: torch.from_numpy(v[()]) for k, v in f.items() if isinstance(v, h5py.Dataset)}
        vocab_bytes = f["tokenizer/vocab"][()].tobytes()
    torch.manual_seed(0)  # irrelevant (every parameter is loaded) but keeps the run reproducible
    model = BertForMaskedLM._from_config(BertConfig(**cfg), attn_implementation="eager")
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("cls.predictions.decoder") for k in missing), (missing, unexpected)
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.config._attn_implementation == "eager"
    model.eval()
    model.double()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, vocab_bytes


@contextlib.contextmanager
def hooks(pairs):
    """Forward hooks (module, fn(module, inputs, output) -> output or None) while inside."""
    handles = [mod.register_forward_hook(fn) for mod, fn in pairs]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def replace_row(pos, value):
    """Hook: output[0, pos] = value (value may require grad); works on Tensor outputs."""
    def fn(_mod, _inp, out):
        assert isinstance(out, torch.Tensor), type(out)
        out = out.clone()
        out[0, pos] = value
        return out
    return fn


def capture(store, key):
    def fn(_mod, _inp, out):
        assert isinstance(out, torch.Tensor), type(out)
        store[key] = out.detach().clone()
    return fn


class Probe:
    def __init__(self, model, ids, mask_pos, target_id):
        self.model = model
        self.ids = torch.tensor([ids], dtype=torch.int64)
        self.T = len(ids)
        self.m = mask_pos
        self.y = target_id
        self.kw = dict(attention_mask=torch.ones_like(self.ids), token_type_ids=torch.zeros_like(self.ids))

    def word_embeds(self):
        return self.model.bert.embeddings.word_embeddings(self.ids).detach()

    def run(self, embeds=None, output_hidden_states=False, output_attentions=False):
        kw = dict(output_hidden_states=output_hidden_states, output_attentions=output_attentions, **self.kw)
        if embeds is None:
            return self.model(input_ids=self.ids, **kw)
        return self.model(inputs_embeds=embeds, **kw)

    def prob(self, embeds=None):
        """F: target probability at the mask (a 0-d float64 tensor, graph kept)."""
        logits = self.run(embeds).logits
        return torch.softmax(logits[0, self.m], dim=-1)[self.y]


# ------------------------------------------------------------------------- probes

def encode_probes(tok):
    cls_id, sep_id, mask_id = tok.convert_tokens_to_ids(["[CLS]", "[SEP]", "[MASK]"])
    out = []
    for spec in PROBES:
        prompt, target, subject = spec["prompt"], spec["target"], spec["subject"]
        enc = tok(prompt, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if ids[0] != cls_id or ids[-1] != sep_id:
            raise SystemExit(f"{prompt!r}: not [CLS] ... [SEP]: {ids}")
        if ids.count(mask_id) != 1:
            raise SystemExit(f"{prompt!r}: {ids.count(mask_id)} [MASK] tokens")
        if tok.unk_token_id in ids:
            raise SystemExit(f"{prompt!r}: has [UNK]: {tok.convert_ids_to_tokens(ids)}")
        if target not in tok.vocab:
            raise SystemExit(f"target {target!r} is not a vocabulary entry")
        y = tok.vocab[target]
        if tok(target, add_special_tokens=False)["input_ids"] != [y]:
            raise SystemExit(f"target {target!r} does not tokenize to the single id {y}")
        a = prompt.find(subject)
        if a < 0:
            raise SystemExit(f"subject {subject!r} not in {prompt!r}")
        b = a + len(subject)
        span = [i for i, (s, e) in enumerate(offsets)
                if 0 < i < len(ids) - 1 and s < b and e > a]
        if not span or span != list(range(span[0], span[-1] + 1)):
            raise SystemExit(f"subject {subject!r}: token span {span}")
        out.append({"prompt": prompt, "target": target, "subject": subject,
                    "tokens": tok.convert_ids_to_tokens(ids),
                    "ids": ids, "mask_pos": ids.index(mask_id), "target_id": y,
                    "subject_start": span[0], "subject_end": span[-1] + 1})
    return out


# ---------------------------------------------------------------------- evaluators

def integrated_gradients(probe, x, steps):
    """(attributions [F], grads [steps, F], f_x, f_baseline) for layer IG_LAYER's ffn.pre at m."""
    dense = probe.model.bert.encoder.layer[IG_LAYER].intermediate.dense
    grads = []
    for k in range(1, steps + 1):
        z = ((k / steps) * x).clone().requires_grad_(True)
        with hooks([(dense, replace_row(probe.m, z))]):
            f = probe.prob()
        (g,) = torch.autograd.grad(f, z)
        grads.append(g)
    grads = torch.stack(grads)
    attr = x * grads.mean(dim=0)
    with torch.no_grad():
        with hooks([(dense, replace_row(probe.m, x))]):
            f_x = probe.prob().item()
        with hooks([(dense, replace_row(probe.m, torch.zeros_like(x)))]):
            f_0 = probe.prob().item()
    return attr, grads, f_x, f_0


def completeness_error(attr, f_x, f_0):
    return abs(attr.sum().item() - (f_x - f_0)) / abs(f_x - f_0)


# --------------------------------------------------------------------------- output

def write_h5(path, arrays, group_attrs):
    """arrays: {"group/name": np.ndarray}, written in sorted order; group_attrs: {group: {k: v}}
    ("/" = root). Groups are created explicitly (h5py: no timestamps, no creation order)."""
    with h5py.File(path, "w", track_order=False) as f:
        for name in sorted(arrays):
            parent = os.path.dirname(name)
            if parent and parent not in f:
                f.create_group(parent, track_times=False)
            f.create_dataset(name, data=arrays[name], track_times=False)
        for group in sorted(group_attrs):
            obj = f if group == "/" else f[group]
            for k in sorted(group_attrs[group]):
                obj.attrs[k] = str(group_attrs[group][k])


def check_h5(path, arrays, group_attrs):
    bad = []
    with h5py.File(path, "r") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        if sorted(names) != sorted(arrays):
            bad.append(f"dataset names differ: {sorted(set(names) ^ set(arrays))}")
        for name, a in arrays.items():
            d = f[name][()]
            if d.dtype != a.dtype or d.shape != a.shape or not np.array_equal(d, a):
                bad.append(f"{name} reads back different")
        for group, attrs in group_attrs.items():
            obj = f if group == "/" else f[group]
            for k, v in attrs.items():
                if obj.attrs[k] != str(v):
                    bad.append(f"attribute {group}:{k} reads back different")
    return bad


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    model, ckpt_vocab = load_model(args.model)
    with open(args.vocab, "rb") as f:
        vocab_bytes = f.read()
    if vocab_bytes != ckpt_vocab:
        raise SystemExit(f"{args.vocab} differs from the vocab stored in {args.model}")
    tok = load_wordpiece_tokenizer(vocab_bytes)
    cfg = model.config
    L, C, Fdim = cfg.num_hidden_layers, cfg.hidden_size, cfg.intermediate_size
    layers = model.bert.encoder.layer
    word_matrix = model.bert.embeddings.word_embeddings.weight.detach()

    probes = encode_probes(tok)
    P, Tmax = len(probes), max(len(p["ids"]) for p in probes)
    failures = []

    def fail(msg):
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)

    A = {}  # dataset name -> numpy array
    A["probes/ids"] = np.zeros((P, Tmax), np.int32)
    for i, p in enumerate(probes):
        A["probes/ids"][i, :len(p["ids"])] = p["ids"]
    A["probes/length"] = np.array([len(p["ids"]) for p in probes], np.int32)
    for key in ("mask_pos", "target_id", "subject_start", "subject_end"):
        A["probes/" + key] = np.array([p[key] for p in probes], np.int32)

    clean_prob = np.zeros(P); clean_top1 = np.zeros(P, np.int32)
    lens_prob = np.zeros((P, L + 1)); lens_top1 = np.zeros((P, L + 1), np.int32)
    ffn_pre = np.zeros((P, L, Fdim))
    attention = np.zeros((P, L, cfg.num_attention_heads, Tmax, Tmax))
    ig_attr = np.zeros((P, Fdim)); ig_grads = np.zeros((P, IG_STEPS, Fdim))
    ig_fx = np.zeros(P); ig_f0 = np.zeros(P); ig_sum = np.zeros(P)
    compl4 = np.zeros(P); compl50 = np.zeros(P)
    grad_emb = np.zeros((P, Tmax, C))
    scale_prob = np.zeros((P, len(SCALE_FACTORS)))
    sigma = word_matrix.numpy().std()
    rng = np.random.default_rng(NOISE_SEED)
    noise = rng.standard_normal((P, Tmax, C)) * NOISE_SCALE * sigma
    for i, p in enumerate(probes):
        keep = np.zeros(Tmax, bool)
        keep[p["subject_start"]:p["subject_end"]] = True
        noise[i, ~keep] = 0.0
    prob_corrupt = np.zeros(P)
    restored = {k: np.zeros((P, L, Tmax)) for k in ("block", "ffn_out", "attn_out")}

    for i, pd in enumerate(probes):
        pr = Probe(model, pd["ids"], pd["mask_pos"], pd["target_id"])
        m, y, T = pr.m, pr.y, pr.T

        # Clean run: probability, hidden states, and the sites needed later.
        clean = {}
        sites = []
        for l in range(L):
            sites += [(layers[l], capture(clean, ("block", l))),
                      (layers[l].output.dense, capture(clean, ("ffn_out", l))),
                      (layers[l].attention.output.dense, capture(clean, ("attn_out", l))),
                      (layers[l].intermediate.dense, capture(clean, ("ffn_pre", l)))]
        with torch.no_grad(), hooks(sites):
            out = pr.run(output_hidden_states=True, output_attentions=True)
        hs = out.hidden_states
        assert len(hs) == L + 1, len(hs)
        for l in range(L):
            attention[i, l, :, :T, :T] = out.attentions[l][0].numpy()
        probs = torch.softmax(out.logits[0, m], dim=-1)
        clean_prob[i] = probs[y].item()
        clean_top1[i] = int(probs.argmax())
        for l in range(L):
            if not torch.equal(hs[l + 1], clean[("block", l)]):
                fail(f"probe {i}: hidden_states[{l + 1}] != layer[{l}] output")
            ffn_pre[i, l] = clean[("ffn_pre", l)][0, m].numpy()

        # Logit lens: the full MLM head on every hidden state.
        with torch.no_grad():
            for j in range(L + 1):
                q = torch.softmax(model.cls(hs[j])[0, m], dim=-1)
                lens_prob[i, j] = q[y].item()
                lens_top1[i, j] = int(q.argmax())
        if lens_prob[i, L] != clean_prob[i] or lens_top1[i, L] != clean_top1[i]:
            fail(f"probe {i}: lens at layer {L} {lens_prob[i, L]} != clean {clean_prob[i]}")

        # Integrated gradients on layer IG_LAYER's ffn.pre at m.
        x = clean[("ffn_pre", IG_LAYER)][0, m]
        attr, grads, f_x, f_0 = integrated_gradients(pr, x, IG_STEPS)
        ig_attr[i], ig_grads[i], ig_fx[i], ig_f0[i] = attr.numpy(), grads.numpy(), f_x, f_0
        ig_sum[i] = attr.sum().item()
        compl4[i] = completeness_error(attr, f_x, f_0)
        attr50, _, f_x50, f_050 = integrated_gradients(pr, x, IG_STEPS_FINE)
        compl50[i] = completeness_error(attr50, f_x50, f_050)
        if abs(f_x - clean_prob[i]) > 1e-14:
            fail(f"probe {i}: IG f_x {f_x} != clean {clean_prob[i]}")

        # Gradient w.r.t. the word-embedding lookup.
        E = pr.word_embeds()
        Eg = E.clone().requires_grad_(True)
        f = pr.prob(Eg)
        if abs(f.item() - clean_prob[i]) > 1e-14:
            fail(f"probe {i}: F via inputs_embeds {f.item()} != via input_ids {clean_prob[i]}")
        (g,) = torch.autograd.grad(f, Eg)
        grad_emb[i, :T] = g[0].numpy()

        # Knowledge-neuron scaling on layer SCALE_LAYER's ffn.pre at m.
        dense0 = layers[SCALE_LAYER].intermediate.dense
        units = torch.tensor(SCALE_UNITS)
        with torch.no_grad():
            for k, factor in enumerate(SCALE_FACTORS):
                row = clean[("ffn_pre", SCALE_LAYER)][0, m].clone()
                row[units] *= factor
                with hooks([(dense0, replace_row(m, row))]):
                    scale_prob[i, k] = pr.prob().item()

        # Causal tracing with the stored noise.
        Ec = E + torch.from_numpy(noise[i, :T]).unsqueeze(0)
        modules = {"block": lambda l: layers[l], "ffn_out": lambda l: layers[l].output.dense,
                   "attn_out": lambda l: layers[l].attention.output.dense}
        with torch.no_grad():
            prob_corrupt[i] = pr.prob(Ec).item()
            for kind, mod in modules.items():
                for l in range(L):
                    for t in range(T):
                        with hooks([(mod(l), replace_row(t, clean[(kind, l)][0, t]))]):
                            restored[kind][i, l, t] = pr.prob(Ec).item()
            # Last layer: only position m reaches F, so restoring t = m gives the clean prob and
            # restoring any other position leaves the corrupted one.
            last = restored["block"][i, L - 1, :T]
            if abs(last[m] - clean_prob[i]) > 1e-12 or np.abs(np.delete(last, m) - prob_corrupt[i]).max() > 1e-12:
                fail(f"probe {i}: last-layer block restoration {last} (clean {clean_prob[i]}, corrupt {prob_corrupt[i]})")
            for l in range(L):  # every position of the block output -> the clean run
                with hooks([(layers[l], replace_row(slice(None), clean[("block", l)][0]))]):
                    back = pr.prob(Ec).item()
                if abs(back - clean_prob[i]) > 1e-12:
                    fail(f"probe {i}: restoring all of layer {l}'s output gives {back}, clean {clean_prob[i]}")

    if not np.all(compl50 * 5 < compl4):
        fail(f"IG completeness does not shrink: 4 steps {compl4}, 50 steps {compl50}")
    if np.allclose(prob_corrupt, clean_prob, rtol=1e-3):
        fail("the noise does not change the probabilities")

    A.update({
        "clean/prob": clean_prob, "clean/top1": clean_top1,
        "lens/prob": lens_prob, "lens/top1": lens_top1,
        "ffn_pre": ffn_pre,
        "attention": attention,
        "ig/layer": np.int32(IG_LAYER), "ig/steps": np.int32(IG_STEPS),
        "ig/attributions": ig_attr, "ig/grads": ig_grads, "ig/f_x": ig_fx, "ig/f_baseline": ig_f0,
        "ig/grad_sum": ig_sum,
        "grad_emb": grad_emb,
        "scale/layer": np.int32(SCALE_LAYER), "scale/units": np.array(SCALE_UNITS, np.int32),
        "scale/factors": np.array(SCALE_FACTORS, np.float64), "scale/prob": scale_prob,
        "trace/sigma": np.float64(sigma), "trace/noise_scale": np.float64(NOISE_SCALE),
        "trace/noise": noise, "trace/prob_corrupt": prob_corrupt,
        "trace/prob_restored_block": restored["block"],
        "trace/prob_restored_ffn_out": restored["ffn_out"],
        "trace/prob_restored_attn_out": restored["attn_out"],
    })
    A = {k: np.asarray(v) for k, v in A.items()}
    for k, v in A.items():
        assert v.dtype in (np.float64, np.int32), (k, v.dtype)
    probe_json = json.dumps([{k: p[k] for k in ("prompt", "target", "subject", "tokens")} for p in probes],
                            ensure_ascii=False)
    attrs = {
        "/": {
            "description": "Knowledge-probing reference (tools/make_probe_reference.py): logit lens, "
                           "integrated gradients, knowledge-neuron scaling, causal tracing and embedding "
                           "gradients of the target probability at [MASK], blimp_model.h5 in float64. "
                           "Layout in the script's docstring.",
            "torch_version": torch.__version__,
            "transformers_version": transformers.__version__,
            "model_sha256": sha256_file(args.model),
            "vocab_sha256": hashlib.sha256(vocab_bytes).hexdigest(),
        },
        "probes": {"json": probe_json},
    }

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"
    write_h5(tmp, A, attrs)
    for msg in check_h5(tmp, A, attrs):
        fail(msg)
    if failures:
        os.remove(tmp)
        print(f"{len(failures)} check(s) failed; {args.out} not written", file=sys.stderr)
        return 1
    os.replace(tmp, args.out)

    # Report.
    for i, p in enumerate(probes):
        print(f"probe {i}: {p['prompt']!r} -> {p['target']!r} (id {p['target_id']}), subject {p['subject']!r} "
              f"tokens [{p['subject_start']}, {p['subject_end']}), mask {p['mask_pos']}, length {len(p['ids'])}")
        print(f"  ids {p['ids']}  tokens {' '.join(p['tokens'])}")
        print(f"  clean {clean_prob[i]:.6e} (top1 {tok.convert_ids_to_tokens(int(clean_top1[i]))!r}), "
              f"lens {np.array2string(lens_prob[i], precision=4)}, corrupt {prob_corrupt[i]:.6e}, "
              f"scale x0/x3 {scale_prob[i, 0]:.6e}/{scale_prob[i, 1]:.6e}")
        print(f"  IG f_x {ig_fx[i]:.6e} f_0 {ig_f0[i]:.6e} sum(attr) {ig_sum[i]:.6e}; completeness error "
              f"{IG_STEPS} steps {compl4[i]:.3e}, {IG_STEPS_FINE} steps {compl50[i]:.3e}")
        best = {k: np.unravel_index(np.argmax(v[i]), v[i].shape) for k, v in restored.items()}
        print("  max restored: " + ", ".join(f"{k} {restored[k][i][best[k]]:.4e} at (l={best[k][0]}, t={best[k][1]})"
                                             for k in restored))
    print(f"trace sigma {sigma:.6f}; grad_emb max |.| {np.abs(grad_emb).max():.3e}")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, sha256 {sha256_file(args.out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
