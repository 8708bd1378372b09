"""Helpers shared by the fixture generators make_reference.py, make_blimp_reference.py, make_probe_reference.py,
make_tokenizer_reference.py, make_dropout_reference.py and make_bf16_reference.py (not a script; they import it
from this directory).

torch and transformers are imported inside the functions that use them, so that
make_tokenizer_reference.py, which needs no torch, stays quick to start.
"""

import os
import tempfile

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4 of every fixture vocabulary


# ------------------------------------------------------------------------ model

def bert_config(**sizes):
    """BertConfig with the fixtures' common settings (no dropout, GELU, LayerNorm eps 1e-12,
    2 token types, init std 0.02); `sizes` gives vocab_size, hidden_size, ... ."""
    from transformers import BertConfig

    return BertConfig(type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      layer_norm_eps=1e-12, hidden_act="gelu", initializer_range=0.02, **sizes)


def perturb(model, weight_scale, generator=None, noise_for_every_parameter=False):
    """Make a freshly initialised BERT a sharper test: LayerNorm gains 1 + 0.1*N(0,1), biases
    0.1*N(0,1), every other (2-D) weight times weight_scale. The noise comes from `generator`
    (None: torch's global generator). With noise_for_every_parameter a noise tensor is drawn
    for each parameter in order, the scaled ones too (the random stream of make_reference.py);
    otherwise only for the gains and biases."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            is_bias, is_gain = name.endswith(".bias"), "LayerNorm.weight" in name
            if is_bias or is_gain or noise_for_every_parameter:
                noise = torch.randn(p.shape, generator=generator, dtype=p.dtype)
            if is_bias:
                p.copy_(0.1 * noise)
            elif is_gain:
                p.copy_(1.0 + 0.1 * noise)
            elif p.dim() == 2:
                p.mul_(weight_scale)
            else:
                raise SystemExit(f"unexpected parameter {name} {tuple(p.shape)}")


def perturbed_mlm(config, weight_scale, generator=None, noise_for_every_parameter=False):
    """BertForMaskedLM from `config` (eager attention, weights from torch's global generator),
    then perturb(...). Checks that the MLM decoder is tied to the word embeddings, so the
    cls.predictions.decoder.* are not separate parameters. Train/eval mode is the caller's."""
    from transformers import BertForMaskedLM

    model = BertForMaskedLM._from_config(config, attn_implementation="eager")
    perturb(model, weight_scale, generator, noise_for_every_parameter)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith("cls.predictions.decoder") for n in names), names
    return model


def load_reference(path, **config_overrides):
    """The BertForMaskedLM (eager attention, train mode) and the inputs (input_ids, attention_mask,
    token_type_ids, labels) of a make_reference.py fixture; `config_overrides` change config fields."""
    import json

    import h5py
    import torch
    from transformers import BertConfig, BertForMaskedLM

    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["config"])
        inputs = {k: torch.from_numpy(f["inputs"][k][()]) for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
        params = {k: torch.from_numpy(f["params"][k][()]) for k in f["params"].keys()}
    cfg.update(config_overrides)
    model = BertForMaskedLM._from_config(BertConfig.from_dict(cfg), attn_implementation="eager")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name])
    model.train()
    return model, inputs


# ----------------------------------------------------------------------- output

def to_np32(t):
    import torch

    return t.detach().to(torch.float32).cpu().numpy()


def write_params(group, named_parameters):
    """One float32 dataset per (Hugging Face name, tensor) in the h5py group or file."""
    for name, p in named_parameters:
        group.create_dataset(name, data=to_np32(p))


# -------------------------------------------------------------------- tokenizer

def load_wordpiece_tokenizer(vocab_bytes):
    """BertTokenizerFast (lower-case, strip accents) over vocab.txt = vocab_bytes, loaded with
    from_pretrained from a temporary directory (transformers 5.x ignores
    BertTokenizerFast(vocab_file=...)). Exits unless every line became an entry and SPECIALS
    are ids 0..4."""
    from transformers import BertTokenizerFast

    with tempfile.TemporaryDirectory(prefix="fixture_vocab_") as d:
        with open(os.path.join(d, "vocab.txt"), "wb") as f:
            f.write(vocab_bytes)
        tok = BertTokenizerFast.from_pretrained(d, do_lower_case=True)
    n_lines = vocab_bytes.count(b"\n")
    if len(tok) != n_lines:
        raise SystemExit(f"tokenizer has {len(tok)} entries, the vocab file has {n_lines} lines")
    ids = tok.convert_tokens_to_ids(SPECIALS)
    if ids != list(range(len(SPECIALS))):
        raise SystemExit(f"special token ids are {ids}, expected 0..{len(SPECIALS) - 1}")
    return tok
