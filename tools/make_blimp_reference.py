#!/usr/bin/env python3
"""Build the BLiMP pseudo-log-likelihood (PLL) fixture for droplab's Swift evaluator test.

Run with the project venv (no network, no downloaded weights):

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_blimp_reference.py
    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_blimp_reference.py \\
        --vocab Tests/TextTests/Fixtures/vocab.txt --blimp /work/shared/data/blimp/data --out-dir DIR

It writes, into --out-dir (default Tests/EvaluatorsTests/Fixtures):

  blimp_model.h5
      A tiny random BertForMaskedLM (vocab = the lines of --vocab, hidden 16, 2 layers,
      2 heads, FFN 32, 64 positions, no dropout, eager attention, torch.manual_seed(0)),
      perturbed so that sentence scores differ clearly (weight matrices and embeddings
      x6, LayerNorm gains 1+0.1*N, biases 0.1*N), saved in the droplab checkpoint format:
        root attrs  format = "droplab-checkpoint", format_version = int64 1,
                    config = HF config JSON, head = "mlm" (strings: h5py variable-length UTF-8)
        /<name>           float32, one dataset per model.named_parameters() entry (HF names;
                          the tied cls.predictions.decoder.* are not parameters)
        /tokenizer/vocab  uint8, the exact bytes of the vocab file
  blimp_reference.json
      {"pairs": [...], "accuracy": fraction of pairs with score_good > score_bad, ...}.
      Each pair: paradigm (BLiMP UID), pairID, sentence_good, sentence_bad, good_tokens,
      bad_tokens (WordPiece ids without [CLS]/[SEP]), score_good, score_bad, correct.
      The first pair also carries good_token_logprobs / bad_token_logprobs: the log-prob of
      each token when it alone is masked (their sums are the scores).

PLL (Salazar et al. 2020): ids = [CLS] + tokens + [SEP]; for each token position i a copy
with ids[i] = [MASK]; score = sum_i log_softmax(logits(copy i)[i])[ids[i]] (natural log).
token_type_ids 0, attention_mask 1. The model runs in float32, the sum is accumulated in
float64. The stored scores come from one unpadded batch per sentence; the script checks
that a padded batch mixing sentences ([PAD], attention_mask 0) gives the same scores, that
an explicit-mask forward equals the plain model(input_ids) forward, that the checkpoint
reloads into an identical model, and reports how far float32 scores are from float64 ones.

Pairs: the first PAIRS_PER_PARADIGM lines of each file in PARADIGMS (file order).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import h5py
import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

from fixture_common import SPECIALS, bert_config, load_wordpiece_tokenizer, perturbed_mlm, write_params

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEFAULT_VOCAB = os.path.join(ROOT, "Tests", "TextTests", "Fixtures", "vocab.txt")
DEFAULT_BLIMP = "/work/shared/data/blimp/data"
DEFAULT_OUT = os.path.join(ROOT, "Tests", "EvaluatorsTests", "Fixtures")

PARADIGMS = [
    "anaphor_gender_agreement",
    "determiner_noun_agreement_1",
    "irregular_past_participle_adjectives",
    "regular_plural_subject_verb_agreement_1",
    "wh_questions_object_gap",
    "npi_present_1",
]
PAIRS_PER_PARADIGM = 4
WEIGHT_SCALE = 6.0
PAD_BATCH = 64          # masked copies per padded mixed-sentence batch (the cross-check)
PAD_TOLERANCE = 1e-4    # |score difference| allowed between padded and unpadded runs
CHECKPOINT_FORMAT = "droplab-checkpoint"
CHECKPOINT_VERSION = 1


# ---------------------------------------------------------------------------- inputs

def read_vocab(path):
    """The file's bytes and its entries; insists on a trailing newline and no blank lines."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.endswith(b"\n"):
        raise SystemExit(f"{path}: does not end with a newline")
    if b"\r" in raw:
        raise SystemExit(f"{path}: contains a carriage return")
    entries = raw[:-1].decode("utf-8").split("\n")
    if any(e == "" for e in entries):
        raise SystemExit(f"{path}: has an empty line")
    if len(set(entries)) != len(entries):
        raise SystemExit(f"{path}: has duplicate entries")
    if entries[:len(SPECIALS)] != SPECIALS:
        raise SystemExit(f"{path}: the first entries are {entries[:5]}, expected {SPECIALS}")
    return raw, entries


def read_pairs(blimp_dir):
    pairs = []
    for uid in PARADIGMS:
        path = os.path.join(blimp_dir, uid + ".jsonl")
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f):
                if line_no == PAIRS_PER_PARADIGM:
                    break
                rec = json.loads(line)
                if rec["UID"] != uid:
                    raise SystemExit(f"{path}:{line_no + 1}: UID {rec['UID']!r} != {uid!r}")
                pairs.append(rec)
        if len(pairs) % PAIRS_PER_PARADIGM:
            raise SystemExit(f"{path}: fewer than {PAIRS_PER_PARADIGM} pairs")
    return pairs


# ----------------------------------------------------------------------------- model

def make_config(vocab_size):
    return bert_config(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=64, pad_token_id=0)


def build_model(vocab_size):
    """Eval-mode BertForMaskedLM (seed 0): weight matrices and embeddings x WEIGHT_SCALE,
    LayerNorm gains 1+0.1*N, biases 0.1*N (noise from the global generator, after the init)."""
    torch.manual_seed(0)
    model = perturbed_mlm(make_config(vocab_size), WEIGHT_SCALE)
    model.eval()
    return model


# ------------------------------------------------------------------------------- PLL

def masked_copies(ids, mask_id):
    """(n, len(ids)) tensor: row k is ids with token position k+1 replaced by [MASK]."""
    n = len(ids) - 2
    x = torch.tensor(ids, dtype=torch.int64).repeat(n, 1)
    pos = torch.arange(1, n + 1)
    x[torch.arange(n), pos] = mask_id
    return x, pos


@torch.no_grad()
def token_logprobs(model, ids, mask_id):
    """Per-token log-probs of one sentence (ids with [CLS]/[SEP]), one unpadded batch."""
    x, pos = masked_copies(ids, mask_id)
    logits = model(input_ids=x, attention_mask=torch.ones_like(x),
                   token_type_ids=torch.zeros_like(x)).logits
    lp = torch.log_softmax(logits[torch.arange(len(pos)), pos], dim=-1)
    target = torch.tensor(ids[1:-1], dtype=torch.int64)
    return lp[torch.arange(len(pos)), target].to(torch.float64).tolist()


def pll(logprobs):
    total = 0.0  # Python float = float64
    for v in logprobs:
        total += float(v)
    return total


@torch.no_grad()
def padded_scores(model, sentences, mask_id, pad_id, batch_size):
    """Scores of all sentences with masked copies of different sentences packed together,
    padded with [PAD] / attention_mask 0 to the longest copy in each batch."""
    rows = []  # (sentence index, masked copy, masked position, target id)
    for s, ids in enumerate(sentences):
        x, pos = masked_copies(ids, mask_id)
        for k in range(len(pos)):
            rows.append((s, x[k], int(pos[k]), ids[int(pos[k])]))
    sums = [0.0] * len(sentences)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(r[1]) for r in chunk)
        x = torch.full((len(chunk), width), pad_id, dtype=torch.int64)
        mask = torch.zeros((len(chunk), width), dtype=torch.int64)
        for b, (_, row, _, _) in enumerate(chunk):
            x[b, :len(row)] = row
            mask[b, :len(row)] = 1
        logits = model(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x)).logits
        for b, (s, _, p, t) in enumerate(chunk):
            sums[s] += float(torch.log_softmax(logits[b, p], dim=-1)[t].item())
    return sums


@torch.no_grad()
def check_unmasked(model, sentences):
    """Sanity: for each unmasked sentence, the explicit-mask forward used for scoring equals
    the plain model(input_ids) forward (default mask/type ids), and rows of a padded batch
    equal the single-sentence logits. Returns the largest |difference|."""
    worst = 0.0
    for ids in sentences:
        x = torch.tensor([ids], dtype=torch.int64)
        explicit = model(input_ids=x, attention_mask=torch.ones_like(x),
                         token_type_ids=torch.zeros_like(x)).logits
        plain = model(x).logits
        worst = max(worst, (explicit - plain).abs().max().item())
    width = max(len(ids) for ids in sentences)
    x = torch.zeros((len(sentences), width), dtype=torch.int64)
    mask = torch.zeros_like(x)
    for b, ids in enumerate(sentences):
        x[b, :len(ids)] = torch.tensor(ids)
        mask[b, :len(ids)] = 1
    batched = model(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x)).logits
    for b, ids in enumerate(sentences):
        single = model(torch.tensor([ids])).logits[0]
        worst = max(worst, (batched[b, :len(ids)] - single).abs().max().item())
    return worst


# ---------------------------------------------------------------------------- output

def write_checkpoint(path, model, vocab_bytes):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = CHECKPOINT_FORMAT
        f.attrs["format_version"] = np.int64(CHECKPOINT_VERSION)
        f.attrs["config"] = model.config.to_json_string()
        f.attrs["head"] = "mlm"
        write_params(f, model.named_parameters())
        f.create_dataset("tokenizer/vocab", data=np.frombuffer(vocab_bytes, dtype=np.uint8))
    os.replace(tmp, path)


def verify_checkpoint(path, model, vocab_bytes, vocab_size):
    """Re-read the file: attribute types, every tensor, the vocab bytes; returns a fresh
    model loaded from it."""
    vlen = h5py.check_string_dtype
    with h5py.File(path, "r") as f:
        for key in ("format", "config", "head"):
            info = vlen(f.attrs.get_id(key).dtype)
            assert info is not None and info.length is None and info.encoding == "utf-8", (key, info)
        assert f.attrs["format"] == CHECKPOINT_FORMAT
        assert f.attrs["head"] == "mlm"
        fv = f.attrs["format_version"]
        assert f.attrs.get_id("format_version").dtype == np.int64 and int(fv) == CHECKPOINT_VERSION
        cfg = json.loads(f.attrs["config"])
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "max_position_embeddings", "type_vocab_size",
                    "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob",
                    "initializer_range", "pad_token_id", "hidden_act"):
            assert key in cfg, key
        assert cfg["hidden_act"] == "gelu" and cfg["vocab_size"] == vocab_size
        stored = f["tokenizer/vocab"]
        assert stored.dtype == np.uint8 and stored.ndim == 1
        assert stored[()].tobytes() == vocab_bytes
        params = dict(model.named_parameters())
        root_datasets = {k for k, v in f.items() if isinstance(v, h5py.Dataset)}
        assert root_datasets == set(params), sorted(root_datasets ^ set(params))
        assert set(f.keys()) == set(params) | {"tokenizer"}
        reloaded = BertForMaskedLM._from_config(BertConfig.from_dict(cfg), attn_implementation="eager")
        reloaded.eval()
        state = {}
        for name, p in params.items():
            d = f[name]
            assert d.dtype == np.float32 and d.shape == tuple(p.shape), name
            assert np.array_equal(d[()], p.detach().numpy()), name
            state[name] = torch.from_numpy(d[()])
    missing, unexpected = reloaded.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("cls.predictions.decoder") for k in missing), (missing, unexpected)
    reloaded.tie_weights()
    assert reloaded.cls.predictions.decoder.weight is reloaded.bert.embeddings.word_embeddings.weight
    return reloaded


# ------------------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    ap.add_argument("--blimp", default=DEFAULT_BLIMP, help="directory of BLiMP *.jsonl files")
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)

    vocab_bytes, entries = read_vocab(args.vocab)
    V = len(entries)
    tok = load_wordpiece_tokenizer(vocab_bytes)
    mask_id, pad_id = tok.convert_tokens_to_ids("[MASK]"), tok.convert_tokens_to_ids("[PAD]")
    cls_id, sep_id, unk_id = (tok.convert_tokens_to_ids(t) for t in ("[CLS]", "[SEP]", "[UNK]"))
    pairs = read_pairs(args.blimp)
    model = build_model(V)
    max_pos = model.config.max_position_embeddings

    def encode(sentence):
        toks = tok(sentence, add_special_tokens=False)["input_ids"]
        ids = [cls_id] + toks + [sep_id]
        if len(ids) > max_pos:
            raise SystemExit(f"{sentence!r}: {len(ids)} ids exceed {max_pos} positions")
        if not toks:
            raise SystemExit(f"{sentence!r}: no tokens")
        return toks, ids

    sentences, records = [], []   # sentences: ids with specials, good/bad interleaved
    for rec in pairs:
        g_toks, g_ids = encode(rec["sentence_good"])
        b_toks, b_ids = encode(rec["sentence_bad"])
        sentences += [g_ids, b_ids]
        records.append((rec, g_toks, b_toks))

    # Canonical scores: one unpadded batch per sentence.
    logprobs = [token_logprobs(model, ids, mask_id) for ids in sentences]
    scores = [pll(lp) for lp in logprobs]

    # Cross-check 1: masked copies of different sentences packed into padded batches.
    padded = padded_scores(model, sentences, mask_id, pad_id, PAD_BATCH)
    pad_diff = max(abs(a - b) for a, b in zip(scores, padded))
    # Cross-check 2: unmasked sentences, explicit vs default masks, padded vs single.
    unmasked_diff = check_unmasked(model, sentences)
    # Precision: the same model in float64.
    model64 = build_model(V).double()
    scores64 = [pll(token_logprobs(model64, ids, mask_id)) for ids in sentences]
    f64_diff = max(abs(a - b) for a, b in zip(scores, scores64))

    out_pairs, n_correct = [], 0
    for k, (rec, g_toks, b_toks) in enumerate(records):
        sg, sb = scores[2 * k], scores[2 * k + 1]
        correct = sg > sb
        n_correct += correct
        item = {
            "paradigm": rec["UID"],
            "pairID": rec["pairID"],
            "sentence_good": rec["sentence_good"],
            "sentence_bad": rec["sentence_bad"],
            "good_tokens": g_toks,
            "bad_tokens": b_toks,
            "score_good": sg,
            "score_bad": sb,
            "correct": bool(correct),
        }
        if k == 0:
            item["good_token_logprobs"] = logprobs[0]
            item["bad_token_logprobs"] = logprobs[1]
        out_pairs.append(item)
    accuracy = n_correct / len(records)

    os.makedirs(args.out_dir, exist_ok=True)
    h5_path = os.path.join(args.out_dir, "blimp_model.h5")
    json_path = os.path.join(args.out_dir, "blimp_reference.json")
    write_checkpoint(h5_path, model, vocab_bytes)
    reloaded = verify_checkpoint(h5_path, model, vocab_bytes, V)
    reload_scores = [pll(token_logprobs(reloaded, ids, mask_id)) for ids in sentences]
    reload_diff = max(abs(a - b) for a, b in zip(scores, reload_scores))

    doc = {
        "description": "BLiMP pseudo-log-likelihood reference (tools/make_blimp_reference.py): "
                       "score = sum over tokens of ln p(token | sentence with that token masked), "
                       "[CLS]/[SEP] added, model blimp_model.h5 in float32, sums in float64.",
        "model": "blimp_model.h5",
        "vocab_size": V,
        "pairs": out_pairs,
        "accuracy": accuracy,
    }
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")

    # Report.
    for k, (rec, g_toks, b_toks) in enumerate(records):
        p = out_pairs[k]
        unk = " [UNK]" if unk_id in g_toks or unk_id in b_toks else ""
        print(f"{rec['UID']:<40} {rec['pairID']:>3}  good {p['score_good']:10.4f} ({len(g_toks):2d} tok)  "
              f"bad {p['score_bad']:10.4f} ({len(b_toks):2d} tok)  {'ok ' if p['correct'] else 'BAD'}{unk}")
    margins = [abs(scores[2 * k] - scores[2 * k + 1]) for k in range(len(records))]
    n_unk = sum(ids[1:-1].count(unk_id) for ids in sentences)
    print(f"accuracy {n_correct}/{len(records)} = {accuracy:.4f}")
    print(f"tokens per sentence: min {min(len(s) - 2 for s in sentences)}, max {max(len(s) - 2 for s in sentences)}, "
          f"total {sum(len(s) - 2 for s in sentences)}; [UNK] tokens: {n_unk}")
    print(f"smallest |good - bad| {min(margins):.6f}; distinct scores {len(set(scores))}/{len(scores)}")
    print(f"max |score diff|: padded mixed batches {pad_diff:.3g}, float64 model {f64_diff:.3g}, "
          f"reloaded checkpoint {reload_diff:.3g}; unmasked logits explicit/default/padded {unmasked_diff:.3g}")
    print(f"wrote {h5_path} ({os.path.getsize(h5_path)} bytes), {json_path} ({os.path.getsize(json_path)} bytes)")

    failures = []
    if pad_diff > PAD_TOLERANCE:
        failures.append(f"padded batches differ by {pad_diff}")
    if unmasked_diff > 1e-5:
        failures.append(f"unmasked logits differ by {unmasked_diff}")
    if reload_diff != 0.0:
        failures.append(f"reloaded checkpoint scores differ by {reload_diff}")
    if min(margins) <= 100 * max(f64_diff, pad_diff, 1e-6):
        failures.append(f"a good/bad margin ({min(margins)}) is within float noise")
    for msg in failures:
        print("FAIL:", msg, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
