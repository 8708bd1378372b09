#!/usr/bin/env python3
"""Build the ROME and MEMIT parity fixture for droplab's editor tests (Tests/BERTTests/EditParityTests.swift).

Run with the project venv (no network, no downloaded weights):

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_rome_reference.py

Model: a random 3-layer BertForMaskedLM (vocab 99, hidden 32, 4 heads, FFN 64; fixture_common's
perturbation, weights x 8), eval mode, float64. Three layers, so that MEMIT can spread over two
editable layers (droplab refuses the last one) with ROME's layer the top of the range.

Algorithm: droplab's ROME and MEMIT as Sources/Evaluators/Rome.swift documents them (Meng et al.
2022 and 2023, adapted to a masked LM, with droplab's documented deviations: docs/study-protocols.md
§8-9), written out here in torch from that description, token level:
  keys      k_l = FFN input (after GELU) of layer l at the last subject token, averaged over a
            case's rewrite prompts (the bare prompt and its prefixed copies)
  values    v = layer LAYER's FFN output (output.dense, bias included) there, likewise averaged
  |h|       norm of the same average of layer LAYER's output (after its LayerNorm), at least 1e-6
  C_l       E[k k^T] over every token of the covariance sequences (the `inputs` batch), uncentred
  delta     one row per case, zero at the start, added to layer LAYER's FFN output at the last
            subject token of every rewrite prompt and of the case's essence prompt; STEPS Adam
            steps (betas 0.9/0.999, eps 1e-8, constant lr LR, no clipping) on the mean over cases of
              mean_p -log P(new | rewrite prompt p at [MASK])
              + KL_FACTOR * KL(P_delta || P_0) at the essence prompt's [MASK]
              + WEIGHT_DECAY * |delta| / |h|^2          (the norm's gradient at 0 is taken as 0)
            after each step a row longer than CLAMP * |h| is scaled back to that length. No
            stop loss (a threshold would make the result discontinuous in rounding).
  ROME      dW = delta u^T / (u^T k), u = C^-1 k, at layer LAYER (from the stored float32 delta
            and key, so both sides start from the same numbers)
  MEMIT     targets z_i = v_i + delta_i (stored float32); for l in MEMIT_LAYERS in order, with the
            earlier layers' updates applied: K = keys at l, z = current values at LAYER,
            R = (targets - z) / (layers left), dW_l = R^T X^T with (LAMBDA C_l + K^T K) X = K^T
            (C_l: the stored float64 covariance)
  kept      per MEMIT layer, mean over cases of s / (LAMBDA + s), s = k^T C^-1 k (unedited keys)

Output (HDF5; float64 unless said):
  attrs config (Hugging Face JSON), description, torch_version, transformers_version, settings (JSON)
  inputs/{input_ids,attention_mask,token_type_ids,labels}   the covariance sequences (padded, labels -100)
  params/<HF name>                                            float32
  cases/<i>/rewrite (int64 [P, T], padded with -1), cases/<i>/rewrite_subject_last, rewrite_mask (int64 [P]),
  cases/<i>/essence (int64 [T]), essence_subject_last, essence_mask, new_id (int64 scalars)
  cov/<l>                       C_l [F, F] for l in 0, 1
  keys/<l>                      [n, F] float32, unedited keys (rounded: the ROME input)
  values, hnorms                [n, C], [n]
  delta                         [n, C] after STEPS steps; delta32 the same rounded to float32 (the ROME/MEMIT input)
  losses                        [STEPS, n] each case's loss at each step (at the delta before the step)
  float32_gap                   max over cases of |delta_float32run - delta| / |delta|: the same optimisation
                                run in float32, a measure of the fixture's conditioning
  rome/dW                       [n, C, F]
  memit/targets                 [n, C] float32;  memit/dW/<l> [C, F];  memit/kept [layers];  memit/condition [layers]
  memit/float32_gap             max over layers of |dW_float32run - dW| / |dW| (keys and values in float32)
Self-checks (exit 1 on failure): the loss fell for every case; the clamp bit at least once; the
float32 rerun lands within 5e-4 of the float64 run (MEMIT's within 1e-3); ROME's update maps k to delta; MEMIT's update
solves its normal equations; the file reads back equal.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py
import numpy as np
import torch
import transformers

from fixture_common import bert_config, perturbed_mlm, write_params

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
OUT = os.path.join(ROOT, "Tests", "BERTTests", "Fixtures", "rome_reference.h5")

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SEED, WEIGHT_SCALE = 23, 8.0
LAYER, MEMIT_LAYERS = 1, [0, 1]
STEPS, LR, KL_FACTOR, WEIGHT_DECAY, CLAMP = 12, 0.5, 0.0625, 0.5, 3.0
COV_SEQUENCES, N_CASES, PREFIXES = 24, 3, 2
LAMBDA = 8.0


def make_config():
    return bert_config(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=40)


def words(rng, n):
    return [int(x) for x in rng.integers(5, 99, n)]


def make_cases(rng):
    """Each case: subject tokens, relation tokens around [MASK], prefixes; token level."""
    cases = []
    for _ in range(N_CASES):
        subject = words(rng, int(rng.integers(1, 4)))
        before, after = words(rng, 2), words(rng, 1)
        body = subject + before + [MASK] + after
        rewrite = []
        for prefix in [[]] + [words(rng, int(rng.integers(2, 5))) + [7] for _ in range(PREFIXES)]:
            ids = [CLS] + prefix + body + [SEP]
            rewrite.append((ids, 1 + len(prefix) + len(subject) - 1, ids.index(MASK)))
        essence_ids = [CLS] + subject + [11, 12, MASK, 7, SEP]
        essence = (essence_ids, len(subject), essence_ids.index(MASK))
        new_id = int(rng.integers(5, 99))
        cases.append({"rewrite": rewrite, "essence": essence, "new": new_id})
    return cases


def run(model, ids, edit=None):
    """Logits [T, V] and the captures of every layer for one unpadded sequence; `edit` = (pos, d)
    adds d to layer LAYER's FFN output at position pos."""
    L = model.config.num_hidden_layers
    cap, handles = {}, []
    for l in range(L):
        layer = model.bert.encoder.layer[l]
        handles.append(layer.intermediate.register_forward_hook(lambda m, a, o, l=l: cap.__setitem__(("act", l), o[0])))

        def out_hook(m, a, o, l=l):
            if edit is not None and l == LAYER:
                o = o.clone()
                o[0, edit[0]] = o[0, edit[0]] + edit[1]
            cap[("out", l)] = o[0]
            return o
        handles.append(layer.output.dense.register_forward_hook(out_hook))
        handles.append(layer.register_forward_hook(
            lambda m, a, o, l=l: cap.__setitem__(("block", l), (o if isinstance(o, torch.Tensor) else o[0])[0])))
    try:
        x = torch.tensor([ids])
        logits = model(input_ids=x, attention_mask=torch.ones_like(x), token_type_ids=torch.zeros_like(x)).logits[0]
    finally:
        for h in handles:
            h.remove()
    return logits, cap


def mean_at_subject(model, case, kind, layer):
    rows = [run(model, ids)[1][(kind, layer)][s] for ids, s, _ in case["rewrite"]]
    return torch.stack(rows).mean(0)


def safe_norm(d):
    return torch.sqrt((d * d).sum()) if bool((d != 0).any()) else (d * 0).sum()


def optimise(model, cases, dtype):
    """The value optimisation (see the docstring); returns delta [n, C], the losses [STEPS, n]
    and whether the clamp bit."""
    model = model.to(dtype)
    n, C = len(cases), model.config.hidden_size
    with torch.no_grad():
        hnorm = [max(mean_at_subject(model, c, "block", LAYER).norm().item(), 1e-6) for c in cases]
        before = [torch.log_softmax(run(model, c["essence"][0])[0][c["essence"][2]], -1) for c in cases]
    D = torch.zeros(n, C, dtype=dtype, requires_grad=True)
    m, v = torch.zeros(n, C, dtype=dtype), torch.zeros(n, C, dtype=dtype)
    losses, clamped = [], False
    for step in range(1, STEPS + 1):
        each = []
        for i, c in enumerate(cases):
            d = D[i]
            nll = torch.stack([-torch.log_softmax(run(model, ids, (s, d))[0][k], -1)[c["new"]] for ids, s, k in c["rewrite"]]).mean()
            ids, s, k = c["essence"]
            logp = torch.log_softmax(run(model, ids, (s, d))[0][k], -1)
            kl = (logp.exp() * (logp - before[i])).sum()
            each.append(nll + KL_FACTOR * kl + WEIGHT_DECAY * safe_norm(d) / hnorm[i] ** 2)
        losses.append([e.item() for e in each])
        (g,) = torch.autograd.grad(torch.stack(each).mean(), D)
        with torch.no_grad():
            m.mul_(0.9).add_(0.1 * g)
            v.mul_(0.999).add_(0.001 * g * g)
            D -= (LR / (1 - 0.9 ** step)) * m / (v.sqrt() / (1 - 0.999 ** step) ** 0.5 + 1e-8)
            for i in range(n):
                norm, cap = D[i].norm().item(), CLAMP * hnorm[i]
                if norm > cap:
                    D[i] *= cap / norm
                    clamped = True
    model.double()
    return D.detach().double(), np.array(losses), clamped, hnorm


def covariance(model, sequences, layer):
    rows = torch.cat([run(model, s)[1][("act", layer)] for s in sequences])
    return rows.T @ rows / rows.shape[0]


def memit_updates(model, cases, targets, cov, dtype, condition):
    """MEMIT's update of each layer of MEMIT_LAYERS (see the docstring), keys and values evaluated
    in `dtype`, the normal equations solved in float64; the model is left as it was (float64).
    Appends each layer's condition number of lambda C + K^T K to `condition`."""
    model = model.to(dtype)
    originals = {l: model.bert.encoder.layer[l].output.dense.weight.detach().clone() for l in MEMIT_LAYERS}
    out = {}
    with torch.no_grad():
        for j, l in enumerate(MEMIT_LAYERS):
            K = torch.stack([mean_at_subject(model, c, "act", l) for c in cases]).double()          # [n, F]
            z = torch.stack([mean_at_subject(model, c, "out", LAYER) for c in cases]).double()      # [n, C]
            R = (targets.double() - z) / (len(MEMIT_LAYERS) - j)
            A = LAMBDA * cov[l] + K.T @ K
            condition.append(torch.linalg.cond(A).item())
            X = torch.linalg.solve(A, K.T)                                                           # [F, n]
            if (A @ X - K.T).norm() > 1e-9 * K.norm():
                sys.exit("MEMIT's normal equations")
            out[l] = R.T @ X.T
            model.bert.encoder.layer[l].output.dense.weight += out[l].to(dtype)
        for l in MEMIT_LAYERS:
            model.bert.encoder.layer[l].output.dense.weight.copy_(originals[l])
    model.double()
    return out


def main():
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    config = make_config()
    model = perturbed_mlm(config, WEIGHT_SCALE, torch.Generator().manual_seed(SEED))
    model.eval()
    # the stored float32 parameters are the model
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float32))
    model.double()
    torch.set_grad_enabled(True)
    for p in model.parameters():
        p.requires_grad_(False)
    F, C = config.intermediate_size, config.hidden_size

    lengths = rng.integers(10, 17, COV_SEQUENCES)
    sequences = [[CLS] + words(rng, int(t) - 2) + [SEP] for t in lengths]
    cases = make_cases(rng)
    n = len(cases)

    with torch.no_grad():
        cov = {l: covariance(model, sequences, l) for l in (0, 1)}
        keys = {l: torch.stack([mean_at_subject(model, c, "act", l) for c in cases]).to(torch.float32) for l in (0, 1)}
        values = torch.stack([mean_at_subject(model, c, "out", LAYER) for c in cases])
    delta, losses, clamped, hnorm = optimise(model, cases, torch.float64)
    delta32run, _, _, _ = optimise(model, cases, torch.float32)
    gap = max(((delta32run[i] - delta[i]).norm() / delta[i].norm()).item() for i in range(n))
    if not all(losses[-1] < losses[0] - 0.5):
        sys.exit(f"the loss did not fall: {losses[0]} -> {losses[-1]}")
    if not clamped:
        sys.exit("the clamp never bit")
    if gap > 5e-4:
        sys.exit(f"float32 rerun {gap:.2e} from float64: an ill-conditioned fixture")

    delta32 = delta.to(torch.float32)
    # ROME
    rome = []
    for i in range(n):
        k, d = keys[LAYER][i].double(), delta32[i].double()
        u = torch.linalg.solve(cov[LAYER], k)
        dw = torch.outer(d, u) / (u @ k)
        if (dw @ k - d).norm() > 1e-10 * d.norm():
            sys.exit("ROME's update does not map k to delta")
        rome.append(dw)
    # MEMIT
    targets = (values + delta32.double()).to(torch.float32)
    kept, condition = [], []
    with torch.no_grad():
        for l in MEMIT_LAYERS:
            ks = keys[l].double()
            s = torch.stack([k @ torch.linalg.solve(cov[l], k) for k in ks])
            kept.append((s / (LAMBDA + s)).mean().item())
    memit = memit_updates(model, cases, targets, cov, torch.float64, condition)
    memit32 = memit_updates(model, cases, targets, cov, torch.float32, [])
    memit_gap = max(((memit32[l] - memit[l]).norm() / memit[l].norm()).item() for l in MEMIT_LAYERS)
    if memit_gap > 1e-3:
        sys.exit(f"MEMIT's float32 rerun {memit_gap:.2e} from float64: an ill-conditioned fixture")

    settings = dict(layer=LAYER, memit_layers=MEMIT_LAYERS, steps=STEPS, lr=LR, kl_factor=KL_FACTOR,
                    weight_decay=WEIGHT_DECAY, clamp=CLAMP, lambda_=LAMBDA)
    tmp = OUT + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = config.to_json_string()
        f.attrs["description"] = ("droplab's ROME and MEMIT written out in torch, float64, on a random 3-layer BERT "
                                  "(tools/make_rome_reference.py)")
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["transformers_version"] = str(transformers.__version__)
        f.attrs["settings"] = json.dumps(settings)
        T = max(len(s) for s in sequences)
        ids = np.full((COV_SEQUENCES, T), PAD, dtype=np.int64)
        mask = np.zeros((COV_SEQUENCES, T), dtype=np.int64)
        for b, s in enumerate(sequences):
            ids[b, :len(s)] = s
            mask[b, :len(s)] = 1
        f.create_dataset("inputs/input_ids", data=ids)
        f.create_dataset("inputs/attention_mask", data=mask)
        f.create_dataset("inputs/token_type_ids", data=np.zeros_like(ids))
        f.create_dataset("inputs/labels", data=np.full_like(ids, -100))
        write_params(f.create_group("params"), model.named_parameters())
        for i, c in enumerate(cases):
            g = f.create_group(f"cases/{i}")
            P, Tm = len(c["rewrite"]), max(len(r[0]) for r in c["rewrite"])
            rw = np.full((P, Tm), -1, dtype=np.int64)
            for p, (r, _, _) in enumerate(c["rewrite"]):
                rw[p, :len(r)] = r
            g.create_dataset("rewrite", data=rw)
            g.create_dataset("rewrite_subject_last", data=np.array([r[1] for r in c["rewrite"]], dtype=np.int64))
            g.create_dataset("rewrite_mask", data=np.array([r[2] for r in c["rewrite"]], dtype=np.int64))
            g.create_dataset("essence", data=np.array(c["essence"][0], dtype=np.int64))
            g.create_dataset("essence_subject_last", data=np.int64(c["essence"][1]))
            g.create_dataset("essence_mask", data=np.int64(c["essence"][2]))
            g.create_dataset("new_id", data=np.int64(c["new"]))
        for l in (0, 1):
            f.create_dataset(f"cov/{l}", data=cov[l].numpy())
            f.create_dataset(f"keys/{l}", data=keys[l].numpy())
        f.create_dataset("values", data=values.numpy())
        f.create_dataset("hnorms", data=np.array(hnorm))
        f.create_dataset("delta", data=delta.numpy())
        f.create_dataset("delta32", data=delta32.numpy())
        f.create_dataset("losses", data=losses)
        f.create_dataset("float32_gap", data=np.float64(gap))
        f.create_dataset("rome/dW", data=torch.stack(rome).numpy())
        f.create_dataset("memit/targets", data=targets.numpy())
        for l in MEMIT_LAYERS:
            f.create_dataset(f"memit/dW/{l}", data=memit[l].numpy())
        f.create_dataset("memit/kept", data=np.array(kept))
        f.create_dataset("memit/condition", data=np.array(condition))
        f.create_dataset("memit/float32_gap", data=np.float64(memit_gap))
    with h5py.File(tmp, "r") as f:
        if not np.array_equal(f["delta"][()], delta.numpy()) or not np.array_equal(f["memit/dW/1"][()], memit[1].numpy()):
            sys.exit("read-back mismatch")
    os.replace(tmp, OUT)
    print(f"wrote {OUT}: losses {np.round(losses[0], 3)} -> {np.round(losses[-1], 3)}, |delta| "
          f"{[round(delta[i].norm().item(), 3) for i in range(n)]} (clamp {[round(CLAMP * h, 3) for h in hnorm]}), "
          f"float32 gap {gap:.2e}, MEMIT kept {np.round(kept, 3)}, condition {np.round(condition, 1)}, float32 gap {memit_gap:.2e}")


if __name__ == "__main__":
    main()
