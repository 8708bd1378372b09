#!/usr/bin/env python3
"""Check that a droplab Hugging Face export loads in transformers and gives the same logits.

Setup (once):

    python3 -m venv /work/venv
    /work/venv/bin/pip install "torch==2.13.0+cpu" transformers h5py safetensors

Usage:

    droplab export hf ckpt.h5 DIR
    /work/venv/bin/python tools/check_hf_parity.py DIR

DIR must contain ``config.json``, ``model.safetensors``, ``vocab.txt`` and
``parity_check.safetensors``.  The last one holds int64 ``input_ids``,
``attention_mask``, ``token_type_ids`` [B, T] and float32 ``logits`` [B, T, V]
computed by droplab's own forward at export time.

The script loads ``BertForMaskedLM.from_pretrained(DIR)`` from local files
only (HF_HUB_OFFLINE=1), in eval mode with eager attention, runs the stored
inputs and prints the number of loaded / missing / unexpected keys and
``max |logit difference| = X`` over positions whose attention_mask is 1.  It
also checks that ``BertTokenizerFast(vocab_file=DIR/vocab.txt)`` loads with as many
tokens as vocab.txt has lines (falling back to ``BertTokenizerFast.from_pretrained(DIR)``,
because transformers 5.x ignores the ``vocab_file=`` argument).

Exit status: 0 if X <= 1e-4, no keys are missing except the tied
``cls.predictions.decoder.{weight,bias}``, no key has a mismatched shape, and
the tokenizer loads; otherwise 1 with a one-line reason (``FAIL: ...``).
"""

import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TOLERANCE = 1e-4
TIED_KEYS = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt", "parity_check.safetensors")


def fail(reason: str) -> int:
    print(f"FAIL: {reason}")
    return 1


def load_tokenizer(directory: str, tokenizer_class):
    """Load DIR/vocab.txt with BertTokenizerFast; return (tokenizer, None) or (None, reason).

    transformers 5.x aliases BertTokenizerFast to BertTokenizer, whose constructor
    takes ``vocab=`` and silently ignores ``vocab_file=`` (leaving a 5-token vocab).
    So the vocabulary size is checked against the file, and if the direct
    constructor did not pick the file up, ``from_pretrained(DIR)`` is used.
    """
    vocab_path = os.path.join(directory, "vocab.txt")
    with open(vocab_path, "r", encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    expected = len(set(tokens))
    attempts = (
        ("BertTokenizerFast(vocab_file=...)", lambda: tokenizer_class(vocab_file=vocab_path)),
        ("BertTokenizerFast.from_pretrained(DIR)",
         lambda: tokenizer_class.from_pretrained(directory, local_files_only=True)),
    )
    problems = []
    for label, make in attempts:
        try:
            tokenizer = make()
        except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt
            problems.append(f"{label} raised {exc!r}")
            continue
        if len(tokenizer) != expected:
            problems.append(f"{label} has {len(tokenizer)} tokens, vocab.txt has {expected}")
            continue
        for note in problems:
            print(f"tokenizer note: {note}")
        print(f"tokenizer: {label} -> {type(tokenizer).__name__}, {len(tokenizer)} tokens")
        return tokenizer, None
    return None, "tokenizer could not load vocab.txt: " + "; ".join(problems)


def main(argv) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2 if len(argv) != 2 else 0
    directory = argv[1]
    for name in REQUIRED_FILES:
        if not os.path.isfile(os.path.join(directory, name)):
            return fail(f"{os.path.join(directory, name)} not found")

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from transformers import BertForMaskedLM, BertTokenizerFast

    torch.set_num_threads(1)

    tokenizer, reason = load_tokenizer(directory, BertTokenizerFast)
    if tokenizer is None:
        return fail(reason)

    try:
        model, info = BertForMaskedLM.from_pretrained(
            directory, local_files_only=True, output_loading_info=True, attn_implementation="eager"
        )
    except Exception as exc:  # noqa: BLE001
        return fail(f"BertForMaskedLM.from_pretrained failed: {exc!r}")
    model.eval()
    if len(tokenizer) != model.config.vocab_size:
        print(f"warning: vocab.txt has {len(tokenizer)} tokens but config.vocab_size is {model.config.vocab_size}")

    with safe_open(os.path.join(directory, "model.safetensors"), framework="pt") as f:
        file_keys = set(f.keys())
    missing = set(info.get("missing_keys", []))
    unexpected = set(info.get("unexpected_keys", []))
    mismatched = list(info.get("mismatched_keys", []))
    loaded = file_keys - unexpected
    print(f"keys: {len(loaded)} loaded, {len(missing)} missing, {len(unexpected)} unexpected, "
          f"{len(mismatched)} mismatched")
    for key in sorted(missing):
        print(f"  missing: {key}{' (tied)' if key in TIED_KEYS else ''}")
    for key in sorted(unexpected):
        print(f"  unexpected: {key}")
    for entry in mismatched:
        print(f"  mismatched: {entry}")

    check = load_file(os.path.join(directory, "parity_check.safetensors"))
    for key in ("input_ids", "attention_mask", "token_type_ids", "logits"):
        if key not in check:
            return fail(f"parity_check.safetensors has no tensor '{key}'")
    input_ids = check["input_ids"].to(torch.int64)
    attention_mask = check["attention_mask"].to(torch.int64)
    token_type_ids = check["token_type_ids"].to(torch.int64)
    expected = check["logits"].to(torch.float32)

    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=token_type_ids).logits.to(torch.float32)
    if logits.shape != expected.shape:
        return fail(f"logits shape {tuple(logits.shape)} != stored {tuple(expected.shape)}")
    real = attention_mask.bool()
    if not real.any():
        return fail("attention_mask has no real positions")
    diff = (logits - expected).abs()[real]
    max_diff = float("nan") if torch.isnan(diff).any() else diff.max().item()
    print(f"positions compared: {int(real.sum())} of {real.numel()}, vocab {expected.shape[-1]}")
    print(f"max |logit difference| = {max_diff:.3e}")

    untied_missing = sorted(missing - TIED_KEYS)
    if untied_missing:
        return fail(f"{len(untied_missing)} missing keys, e.g. {untied_missing[0]}")
    if mismatched:
        return fail(f"{len(mismatched)} keys with mismatched shapes, e.g. {mismatched[0]}")
    if not max_diff <= TOLERANCE:  # also catches NaN
        return fail(f"max |logit difference| {max_diff:.3e} > {TOLERANCE:g}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
