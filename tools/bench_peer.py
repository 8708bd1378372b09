#!/usr/bin/env python3
"""Peer benchmark: the configurations of ``droplab bench`` in Hugging Face transformers
(torch CPU), and the report that puts both side by side (BENCHMARKS.md).

Setup (once):

    python3 -m venv /work/venv
    /work/venv/bin/pip install "torch==2.13.0+cpu" transformers

Usage:

    /work/venv/bin/python tools/bench_peer.py                        # mini+small x V8192+V30522 x p0.0+0.1
    /work/venv/bin/python tools/bench_peer.py --presets mini --vocab-sizes 8192 --steps 3
    /work/venv/bin/python tools/bench_peer.py --quick --json > hf.json
    /work/venv/bin/python tools/bench_peer.py --report droplab.json hf.json > BENCHMARKS.md

Measurement (mirrors ``Benchmark.trainingStep`` in Sources/Training/Benchmark.swift):

- ``BertForMaskedLM(BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L,
  num_attention_heads=A, intermediate_size=F, max_position_embeddings=512,
  hidden_dropout_prob=p, attention_probs_dropout_prob=p))`` with transformers' default
  attention implementation (``--attn eager|sdpa`` to force one; the one used is reported),
  ``model.train()``.
- Batches of ``--batch`` x ``--seq-len`` random ids in [5, V) (ids 0-4 are specials, 4 is
  [MASK]); BERT masking as droplab's ``Masker``: each token chosen with probability 0.15,
  a chosen token becomes [MASK] with probability 0.8, a random non-special id with 0.1, and
  stays with 0.1; labels are -100 at unchosen positions. Batch making is not timed.
- A timed step = ``zero_grad`` + forward (HF computes logits at every position, its normal
  behaviour) + MLM loss + backward + ``clip_grad_norm_(1.0)`` + ``AdamW.step``.
  AdamW: lr 1e-4, betas (0.9, 0.999), eps 1e-6 (droplab's ``AdamWConfig``), weight decay
  0.01 except for biases and LayerNorm weights.
- ``--warmup`` (2) untimed steps, then ``--steps`` (5) timed steps; s/step = the median of
  the timed steps (as droplab: robust to a step slowed by another process), tokens/s = batch * seq / s/step.
- ``torch.set_num_threads(--threads)``, default ``os.cpu_count()``; give droplab the same
  count through ``DROPLAB_THREADS`` and ``OPENBLAS_NUM_THREADS`` (tools/bench_compare.sh does).
- GFLOP/s uses droplab's ``Benchmark.trainingFlopsPerToken``: 3 x the forward matmul FLOPs
  (projections, FFN, QK^T and PV per layer; MLM transform + decoder at the masked 15% of
  positions only), i.e. the FLOPs the step needs, not the ones HF executes. The JSON also
  has ``gflops_executed`` with the decoder at every position (what HF really computes).
- ``sgemm_gflops``: torch.mm on 2048 x 2048 float32 matrices, best of 5.
- ``--precision fp32 bf16``: each configuration also (or only) in bf16 mixed precision, torch's
  own way: forward and loss under ``torch.autocast("cpu", dtype=torch.bfloat16)``, backward and
  AdamW outside it (float32 weights and optimizer). Rows carry ``precision``.

``--json`` prints one JSON object on stdout (human lines go to stderr), with the field
names of ``droplab bench --json``: machine, sgemm_gflops, train[{preset, vocab, dropout,
tokens_per_s, s_per_step, gflops}], peak_rss_mb, plus peer-only fields.

``--report DROPLAB_JSON HF_JSON`` reads the two outputs and prints BENCHMARKS.md (Markdown)
with the comparison table and the performance targets marked PASS / MISS.
"""

import argparse
import datetime
import io
import json
import math
import statistics
import os
import platform
import re
import subprocess
import sys
import time

PRESETS = {  # name: (layers, hidden, heads, ffn), as BertConfig.presets in Sources/BERT/Config.swift
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
}
MASKED_FRACTION = 0.15
MASK_PROB, RANDOM_PROB = 0.8, 0.1
N_SPECIAL, MASK_ID = 5, 4
MAX_POSITIONS = 512

# Targets of the performance issue.
TARGET_RATIO = 1.5          # droplab tokens/s >= 1.5 x HF, mini and small, dropout 0.0 and 0.1
TARGET_SGEMM_SHARE = 0.70   # small: achieved FLOP/s >= 70% of sgemm peak
TARGET_DROPOUT_COST = 0.05  # dropout 0.1 step time <= 1.05 x dropout 0.0
TARGET_RSS_FACTOR = 1.5     # peak RSS <= 1.5 x analytic need
TARGET_BF16_SPEEDUP = 1.7   # droplab bf16 tokens/s >= 1.7 x droplab fp32, mini and small
TARGET_BF16_RATIO = 1.5     # droplab bf16 tokens/s >= 1.5 x HF under autocast bf16

FLOPS_NOTE = ("FLOPs per trained token = 3 x forward matmul FLOPs (forward + backward): per layer "
              "2(4C^2 + 2CF) for the projections and FFN plus 2*2TC for QK^T and PV, and the MLM "
              "transform + decoder 2(C^2 + CV) counted at the masked 15% of positions only "
              "(droplab's Benchmark.trainingFlopsPerToken). Embedding lookups, softmax, LayerNorm, "
              "GELU, dropout and the optimizer are not counted.")


# ---------------------------------------------------------------------------------------------
# FLOPs and memory model (shared by the run and the report)

def training_flops_per_token(hidden, layers, ffn, vocab, seq_len, masked_fraction=MASKED_FRACTION):
    """Benchmark.trainingFlopsPerToken, term for term."""
    C, F, L, V, T = float(hidden), float(ffn), float(layers), float(vocab), float(seq_len)
    per_layer = 2 * (4 * C * C + 2 * C * F) + 2 * 2 * T * C
    head = masked_fraction * 2 * (C * C + C * V)
    return 3 * (L * per_layer + head)


def parameter_count(preset, vocab, max_positions=MAX_POSITIONS):
    """Parameters of BertForMaskedLM (decoder weight tied to the word embeddings, no pooler)."""
    L, C, _, F = PRESETS[preset]
    embeddings = vocab * C + max_positions * C + 2 * C + 2 * C        # word, position, type, LayerNorm
    layer = 4 * (C * C + C) + 2 * C + (C * F + F) + (F * C + C) + 2 * C
    head = C * C + C + 2 * C + vocab                                   # transform, LayerNorm, decoder bias
    return embeddings + L * layer + head


def analytic_need_mb(preset, vocab, batch, seq_len):
    """Minimum memory for one training step, in MB (1e6 bytes), float32.

    Parameter state: values, gradients, AdamW m and v = 16 bytes per parameter.
    Activations kept for backward, per token: embedding LayerNorm input and output (2C); per
    layer the layer input, Q, K, V, context, attention output before LayerNorm, its
    LayerNorm output and FFN output before LayerNorm (7C), FFN pre-activation and GELU
    output (2F), attention probabilities (A*T); per masked token (15%) the transform input,
    dense output, GELU output and LayerNorm output (4C) plus softmax probabilities and logit
    gradients (2V). Dropout masks are not counted (they can be regenerated from the seed).
    """
    L, C, A, F = PRESETS[preset]
    n = batch * seq_len
    params = parameter_count(preset, vocab)
    per_token = 2 * C + L * (7 * C + 2 * F + A * seq_len)
    head = MASKED_FRACTION * n * (4 * C + 2 * vocab)
    return (16 * params + 4 * (n * per_token + head)) / 1e6


# ---------------------------------------------------------------------------------------------
# Machine facts

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores():
    try:
        pairs = set()
        phys = core = None
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":", 1)[1].strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((phys, core))
                    phys = core = None
        if core is not None:
            pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def ram_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def machine_info():
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "physical_cores": physical_cores(),
            "ram_gb": ram_gb(), "os": platform.platform()}


def peak_rss_mb():
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return kb * 1024 / 1e6 if sys.platform != "darwin" else kb / 1e6


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The benchmark

def make_batch(torch, gen, vocab, batch, seq_len):
    """Random ids in [N_SPECIAL, vocab) and droplab's BERT masking (15%: 80/10/10)."""
    ids = torch.randint(N_SPECIAL, vocab, (batch, seq_len), generator=gen)
    chosen = torch.rand(batch, seq_len, generator=gen) < MASKED_FRACTION
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    u = torch.rand(batch, seq_len, generator=gen)
    to_mask = chosen & (u < MASK_PROB)
    to_random = chosen & (u >= MASK_PROB) & (u < MASK_PROB + RANDOM_PROB)
    random_ids = torch.randint(N_SPECIAL, vocab, (batch, seq_len), generator=gen)
    ids = torch.where(to_mask, torch.full_like(ids, MASK_ID), ids)
    ids = torch.where(to_random, random_ids, ids)
    return ids, labels


def torch_sgemm(torch, n=2048, repeats=5):
    a = torch.rand(n, n)
    b = torch.rand(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best / 1e9


def train_config(torch, transformers, preset, vocab, dropout, precision, args):
    L, C, A, F = PRESETS[preset]
    kwargs = dict(vocab_size=vocab, hidden_size=C, num_hidden_layers=L, num_attention_heads=A,
                  intermediate_size=F, max_position_embeddings=MAX_POSITIONS,
                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if args.attn != "default":
        kwargs["attn_implementation"] = args.attn
    config = transformers.BertConfig(**kwargs)
    torch.manual_seed(args.seed)
    model = transformers.BertForMaskedLM(config)
    model.train()
    attn = getattr(model.config, "_attn_implementation", None) or "unknown"

    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm.weight" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm.weight" in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.999), eps=1e-6)
    gen = torch.Generator().manual_seed(args.seed + 1)
    times = []
    masked = 0
    for s in range(args.warmup + args.steps):
        ids, labels = make_batch(torch, gen, vocab, args.batch, args.seq_len)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"non-finite loss at step {s}")
        if s >= args.warmup:
            times.append(dt)
            masked += int((labels != -100).sum())
    tokens = args.steps * args.batch * args.seq_len
    step = statistics.median(times)
    tps = args.batch * args.seq_len / step
    fpt = training_flops_per_token(C, L, F, vocab, args.seq_len)
    fpt_exec = training_flops_per_token(C, L, F, vocab, args.seq_len, masked_fraction=1.0)
    n_params = sum(p.numel() for p in model.parameters())
    del model, opt
    return {"preset": preset, "vocab": vocab, "dropout": dropout, "precision": precision, "tokens_per_s": tps,
            "s_per_step": step, "gflops": fpt * tps / 1e9,
            "gflops_executed": fpt_exec * tps / 1e9, "masked_fraction_measured": masked / tokens,
            "attn_implementation": attn, "parameters": n_params}


def run(args):
    try:
        import torch
        import transformers
    except ImportError as e:
        sys.exit(f"bench_peer.py: cannot import {e.name}; create the venv with\n"
                 "  python3 -m venv /work/venv && /work/venv/bin/pip install 'torch==2.13.0+cpu' transformers")
    import gc
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    sgemm = torch_sgemm(torch)
    log(f"hf: transformers {transformers.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, batch {args.batch}, seq {args.seq_len}, "
        f"{args.warmup} warm-up + {args.steps} timed steps (s/step = total / steps)")
    log("hf: GFLOP/s counts droplab's FLOPs (3x forward matmuls, MLM decoder at masked positions "
        "only), not the decoder at every position that HF executes")
    log(f"torch sgemm 2048^3: {sgemm:.1f} GFLOP/s")
    rows = []
    for preset in args.presets:
        if preset not in PRESETS:
            sys.exit(f"bench_peer.py: unknown preset '{preset}' (known: {', '.join(PRESETS)})")
        for vocab in args.vocab_sizes:
            for p in args.dropouts:
                for precision in args.precision:
                    r = train_config(torch, transformers, preset, vocab, p, precision, args)
                    gc.collect()
                    rows.append(r)
                    log(f"hf train {preset} V{vocab} dropout {p:.1f} {precision}: {r['tokens_per_s']:.0f} tokens/s, "
                        f"{r['s_per_step']:.3f} s/step, {r['gflops']:.1f} GFLOP/s "
                        f"({100 * r['gflops'] / sgemm:.0f}% of torch sgemm), attention {r['attn_implementation']}")
    result = {
        "engine": "huggingface-transformers",
        "machine": dict(machine_info(), threads=torch.get_num_threads()),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(),
                     "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other"},
        "attn_implementation": sorted({r["attn_implementation"] for r in rows}),
        "settings": {"batch": args.batch, "seq_len": args.seq_len, "steps": args.steps,
                     "warmup": args.warmup, "threads": torch.get_num_threads(),
                     "timing": "total time of timed steps / steps", "flops": FLOPS_NOTE},
        "sgemm_gflops": sgemm,
        "train": rows,
        "peak_rss_mb": peak_rss_mb(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------------------------------------
# The report

def load_json(path):
    """A JSON object from a file; tolerates text before/after the object (log lines)."""
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise SystemExit(f"bench_peer.py: no JSON object in {path}")
        try:
            return json.loads(text[start:end + 1])
        except json.JSONDecodeError as e:
            raise SystemExit(f"bench_peer.py: {path} is not valid JSON: {e}")


def key(row):
    return (str(row.get("preset")), int(row.get("vocab", 0)), round(float(row.get("dropout", 0.0)), 3),
            row.get("precision", "fp32"))


def fmt(x, spec, missing="—"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    return format(x, spec)


def command_output(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if out.returncode == 0 and text else None
    except (OSError, subprocess.SubprocessError):
        return None


def openblas_config():
    import ctypes
    for name in ("libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib.openblas_get_config().decode()
        except (OSError, AttributeError):
            continue
    return None


def verdict(ok):
    return "PASS" if ok else "MISS"


def machine_label(d):
    """The heading of a machine's section: the CPU's model name, its vector ISA levels and the
    OpenBLAS kernel droplab ran (CPUs of one model name, "AMD EPYC", differ in both)."""
    m = d.get("machine") or {}
    features = m.get("cpu_features")
    core = (m.get("openblas_core") or "").split(" ")[0]
    detail = "; ".join(x for x in [features, core and f"OpenBLAS {core}"] if x)
    return f"{m.get('cpu') or cpu_model()}" + (f" ({detail})" if detail else "")


PAGE_HEAD = """# Benchmarks: droplab vs Hugging Face transformers

One section per machine: a CPU's model name, its vector ISA levels and the OpenBLAS kernel in use
head each, so figures from different machines are never compared by accident. Generated by
`tools/bench_compare.sh`, which replaces the section of the machine it runs on and keeps the
others. Do not edit the generated sections by hand.
"""
KEPT_MARKER = "<!-- kept by tools/bench_compare.sh: sections below are not generated -->"


def merge_page(section, label, old_text):
    """BENCHMARKS.md with `section` as the section of machine `label`: an earlier section of the
    same machine is replaced, the other machines' sections and the hand-written sections after
    KEPT_MARKER are kept."""
    generated, _, kept = old_text.partition(KEPT_MARKER)
    blocks = re.findall(r"<!-- machine: (.*?) -->\n(.*?)<!-- end of machine -->\n", generated, re.S)
    sections = {k: body for k, body in blocks}
    order = [k for k, _ in blocks] + ([label] if label not in sections else [])
    sections[label] = section
    page = PAGE_HEAD + "".join(f"\n<!-- machine: {k} -->\n{sections[k].strip()}\n<!-- end of machine -->\n" for k in order)
    return page + (KEPT_MARKER + kept if kept or KEPT_MARKER in old_text else "")


def report(droplab_path, hf_path, out=sys.stdout):
    d, h = load_json(droplab_path), load_json(hf_path)
    d_rows = {key(r): r for r in d.get("train") or []}
    h_rows = {key(r): r for r in h.get("train") or []}
    order = {name: i for i, name in enumerate(PRESETS)}
    all_keys = sorted(set(d_rows) | set(h_rows), key=lambda k: (order.get(k[0], 99), k[0], k[1], k[2], k[3]))
    keys = [k for k in all_keys if k[3] == "fp32"]
    bf16 = [k for k in all_keys if k[3] == "bf16"]
    d_peak, h_peak = d.get("sgemm_gflops"), h.get("sgemm_gflops")
    settings = h.get("settings", {})
    w = lambda s="": print(s, file=out)

    w(f"## {machine_label(d)}")
    w()
    w(f"Generated {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} by "
      "`tools/bench_compare.sh` (`droplab bench --json` and `tools/bench_peer.py --json`, run one "
      "after the other on this machine with the same thread count).")
    w()

    w("### Machine")
    w()
    m = machine_info()
    threads = settings.get("threads") or (h.get("machine") or {}).get("threads")
    w(f"- CPU: {m['cpu']}")
    w(f"- Cores: {m['logical_cpus']} logical, {m['physical_cores'] or '?'} physical; "
      f"threads used by both: {threads if threads is not None else '?'}")
    w(f"- RAM: {m['ram_gb'] if m['ram_gb'] is not None else '?'} GB")
    w(f"- OS: {m['os']}")
    extra = {k: v for k, v in (d.get("machine") or {}).items() if v not in (None, "", [], {})}
    if extra:
        w("- droplab reports: " + ", ".join(f"{k} = {v}" for k, v in extra.items()))
    w()

    w("### Versions")
    w()
    swift = command_output(["swift", "--version"])
    openblas = command_output(["pkg-config", "--modversion", "openblas"])
    ob_config = openblas_config()
    hv = h.get("versions") or {}
    w(f"- Swift: {swift or 'not found'}")
    w(f"- OpenBLAS (pkg-config): {openblas or 'not found'}" + (f" — `{ob_config}`" if ob_config else ""))
    w(f"- torch: {hv.get('torch', '?')} (BLAS: {hv.get('torch_blas', '?')}), "
      f"transformers: {hv.get('transformers', '?')}, Python: {hv.get('python', '?')}")
    w(f"- HF attention implementation: {', '.join(h.get('attn_implementation') or ['?'])}")
    w()

    w("### Training throughput")
    w()
    w(f"MLM training steps on random token batches: batch {settings.get('batch', 32)}, seq "
      f"{settings.get('seq_len', 128)}, BERT masking 15% (80/10/10); a step is forward + loss + "
      f"backward + gradient clipping (1.0) + AdamW. {settings.get('warmup', 2)} warm-up steps, then "
      f"{d.get('steps', settings.get('steps', '?'))} timed steps (bench_compare.sh passes the same "
      "`--steps` to both); s/step = total time of the timed steps / steps for both. Making the "
      "batches is not timed.")
    w()
    w(f"sgemm peak (2048^3, best of 5): droplab/OpenBLAS {fmt(d_peak, '.1f')} GFLOP/s, "
      f"torch {fmt(h_peak, '.1f')} GFLOP/s.")
    w()
    w("| preset | vocab | dropout | droplab tokens/s | HF tokens/s | droplab / HF | droplab s/step | "
      "HF s/step | droplab GFLOP/s | % of sgemm | HF GFLOP/s |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        dr, hr = d_rows.get(k, {}), h_rows.get(k, {})
        dt, ht = dr.get("tokens_per_s"), hr.get("tokens_per_s")
        ratio = dt / ht if dt and ht else None
        share = 100 * dr["gflops"] / d_peak if dr.get("gflops") and d_peak else None
        w(f"| {k[0]} | {k[1]} | {k[2]:.1f} | {fmt(dt, '.0f')} | {fmt(ht, '.0f')} | "
          f"{fmt(ratio, '.2f')}{'x' if ratio else ''} | {fmt(dr.get('s_per_step'), '.3f')} | "
          f"{fmt(hr.get('s_per_step'), '.3f')} | {fmt(dr.get('gflops'), '.1f')} | "
          f"{fmt(share, '.0f')}{'%' if share is not None else ''} | {fmt(hr.get('gflops'), '.1f')} |")
    w()
    if bf16:
        b_peak = d.get("bf16_gemm_gflops")
        w("#### bf16 mixed precision")
        w()
        w("droplab `--precision bf16`: the `linear` products (Q, K, V, attention output, FFN, MLM transform and "
          "decoder) and the per-head attention products (forward and both backward products) as bf16 x bf16 -> "
          "fp32 through oneDNN's matmul; weights, optimizer, LayerNorm, softmax, GELU and loss in fp32. HF: "
          "forward and loss under `torch.autocast(\"cpu\", dtype=torch.bfloat16)`. Each configuration was "
          "timed in fp32 and bf16 one after the other in the same run.")
        w()
        w(f"bf16 matmul peak (2048^3, bf16 inputs, fp32 result, best of 5): droplab/oneDNN {fmt(b_peak, '.1f')} GFLOP/s "
          f"({fmt(b_peak / d_peak if b_peak and d_peak else None, '.2f')}x its sgemm peak).")
        w()
        w("| preset | vocab | dropout | droplab fp32 tokens/s | droplab bf16 tokens/s | bf16 / fp32 | HF autocast tokens/s "
          "| droplab bf16 / HF autocast | droplab bf16 s/step | droplab bf16 GFLOP/s | % of bf16 peak |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in bf16:
            dr, hr, fr = d_rows.get(k, {}), h_rows.get(k, {}), d_rows.get(k[:3] + ("fp32",), {})
            dt, ht, ft = dr.get("tokens_per_s"), hr.get("tokens_per_s"), fr.get("tokens_per_s")
            speedup, ratio = (dt / ft if dt and ft else None), (dt / ht if dt and ht else None)
            share = 100 * dr["gflops"] / b_peak if dr.get("gflops") and b_peak else None
            w(f"| {k[0]} | {k[1]} | {k[2]:.1f} | {fmt(ft, '.0f')} | {fmt(dt, '.0f')} | {fmt(speedup, '.2f')}{'x' if speedup else ''} | "
              f"{fmt(ht, '.0f')} | {fmt(ratio, '.2f')}{'x' if ratio else ''} | {fmt(dr.get('s_per_step'), '.3f')} | "
              f"{fmt(dr.get('gflops'), '.1f')} | {fmt(share, '.0f')}{'%' if share is not None else ''} |")
        w()

    # Targets
    w("### Targets")
    w()
    w("| target | configuration | measured | threshold | result |")
    w("|---|---|---:|---:|---|")
    results = []

    def target(name, conf, value, threshold, ok):
        results.append(ok)
        w(f"| {name} | {conf} | {value} | {threshold} | {'n/a (not measured)' if ok is None else verdict(ok)} |")

    for preset in ("mini", "small"):
        for p in (0.0, 0.1):
            ks = [k for k in keys if k[0] == preset and k[2] == p]
            if not ks:
                target("droplab / HF tokens/s", f"{preset} dropout {p:.1f}", "—", f">= {TARGET_RATIO}", None)
            for k in ks:
                dt, ht = d_rows.get(k, {}).get("tokens_per_s"), h_rows.get(k, {}).get("tokens_per_s")
                ratio = dt / ht if dt and ht else None
                target("droplab / HF tokens/s", f"{preset} V{k[1]} dropout {p:.1f}", fmt(ratio, ".2f"),
                       f">= {TARGET_RATIO}", None if ratio is None else ratio >= TARGET_RATIO)
    small = [k for k in keys if k[0] == "small"]
    if not small:
        target("FLOP/s share of sgemm peak", "small", "—", f">= {TARGET_SGEMM_SHARE:.0%}", None)
    for k in small:
        g = d_rows.get(k, {}).get("gflops")
        share = g / d_peak if g and d_peak else None
        target("FLOP/s share of sgemm peak", f"small V{k[1]} dropout {k[2]:.1f}",
               fmt(None if share is None else 100 * share, ".0f") + ("%" if share is not None else ""),
               f">= {TARGET_SGEMM_SHARE:.0%}", None if share is None else share >= TARGET_SGEMM_SHARE)
    for preset in ("mini", "small") if bf16 else ():
        for k in [k for k in bf16 if k[0] == preset]:
            dt, ft = d_rows.get(k, {}).get("tokens_per_s"), d_rows.get(k[:3] + ("fp32",), {}).get("tokens_per_s")
            speedup = dt / ft if dt and ft else None
            target("droplab bf16 / droplab fp32 tokens/s", f"{preset} V{k[1]} dropout {k[2]:.1f}", fmt(speedup, ".2f"),
                   f">= {TARGET_BF16_SPEEDUP}", None if speedup is None else speedup >= TARGET_BF16_SPEEDUP)
        for k in [k for k in bf16 if k[0] == preset]:
            dt, ht = d_rows.get(k, {}).get("tokens_per_s"), h_rows.get(k, {}).get("tokens_per_s")
            ratio = dt / ht if dt and ht else None
            target("droplab bf16 / HF autocast bf16 tokens/s", f"{preset} V{k[1]} dropout {k[2]:.1f}", fmt(ratio, ".2f"),
                   f">= {TARGET_BF16_RATIO}", None if ratio is None else ratio >= TARGET_BF16_RATIO)
    pairs = sorted({(k[0], k[1]) for k in keys if k in d_rows}, key=lambda pv: (order.get(pv[0], 99), pv[1]))
    any_pair = False
    for preset, vocab in pairs:
        a, b = d_rows.get((preset, vocab, 0.0, "fp32")), d_rows.get((preset, vocab, 0.1, "fp32"))
        if not (a and b and a.get("s_per_step") and b.get("s_per_step")):
            continue
        any_pair = True
        cost = b["s_per_step"] / a["s_per_step"] - 1
        target("dropout 0.1 step-time cost over 0.0", f"{preset} V{vocab}", f"{100 * cost:+.1f}%",
               f"<= +{TARGET_DROPOUT_COST:.0%}", cost <= TARGET_DROPOUT_COST)
    if not any_pair:
        target("dropout 0.1 step-time cost over 0.0", "—", "—", f"<= +{TARGET_DROPOUT_COST:.0%}", None)
    rss = d.get("peak_rss_mb")
    need, need_from = d.get("analytic_need_mb"), "droplab"
    if need is None and d_rows:
        batch, seq = settings.get("batch", 32), settings.get("seq_len", 128)
        known = [k for k in d_rows if k[0] in PRESETS and k[3] == "fp32"]
        if known:
            need = max(analytic_need_mb(k[0], k[1], batch, seq) for k in known)
            biggest = max(known, key=lambda k: analytic_need_mb(k[0], k[1], batch, seq))
            need_from = f"model below, for the largest configuration run: {biggest[0]} V{biggest[1]}"
    if rss is None or need is None:
        target("peak RSS / analytic need", "droplab bench", "—", f"<= {TARGET_RSS_FACTOR}x", None)
    else:
        target("peak RSS / analytic need", f"{rss:.0f} MB / {need:.0f} MB ({need_from})",
               f"{rss / need:.2f}x", f"<= {TARGET_RSS_FACTOR}x", rss / need <= TARGET_RSS_FACTOR)
    measured = [r for r in results if r is not None]
    w()
    w(f"**{sum(measured)} of {len(measured)} measured targets met**"
      + (f" ({len(results) - len(measured)} not measured)." if len(measured) < len(results) else "."))
    w()

    w("### How FLOPs are counted")
    w()
    w("Both GFLOP/s columns use the same count, droplab's `Benchmark.trainingFlopsPerToken` "
      "(reimplemented in `tools/bench_peer.py`), times tokens/s. " + FLOPS_NOTE + " HF computes "
      "decoder logits at every position, so it executes more FLOPs than counted here (its JSON has "
      "`gflops_executed` with the decoder at all positions); the figures above measure useful work "
      "per second and are comparable between the two engines. % of sgemm is droplab's GFLOP/s over "
      "its own OpenBLAS sgemm peak.")
    w()
    w("Analytic memory need (when droplab does not report `analytic_need_mb`): 16 bytes per parameter "
      "(values, gradients, AdamW m and v) plus the float32 activations kept for backward: per token "
      "2C for the embeddings and, per layer, 7C + 2F + A*T (layer input, Q, K, V, context, "
      "pre-LayerNorm sums, LayerNorm output, FFN pre-activation and GELU output, attention "
      "probabilities); per masked token 4C + 2V for the MLM head (softmax probabilities and logit "
      "gradients). Dropout masks are not counted. MB = 10^6 bytes.")
    w()

    other = []
    if d.get("tokenizer_mb_s") is not None:
        other.append(f"- Tokenizer: {d['tokenizer_mb_s']:.1f} MB/s")
    if d.get("checkpoint_write_mb_s") is not None or d.get("checkpoint_read_mb_s") is not None:
        other.append(f"- Checkpoint: write {fmt(d.get('checkpoint_write_mb_s'), '.0f')} MB/s, "
                     f"read {fmt(d.get('checkpoint_read_mb_s'), '.0f')} MB/s")
    if rss is not None:
        other.append(f"- Peak RSS of `droplab bench`: {rss:.0f} MB")
    if h.get("peak_rss_mb") is not None:
        other.append(f"- Peak RSS of `bench_peer.py` (HF, for reference): {h['peak_rss_mb']:.0f} MB")
    inference = [r for r in d.get("inference") or [] if isinstance(r, dict)]
    if other or inference:
        w("### Other droplab figures")
        w()
        for line in other:
            w(line)
        if inference:
            if other:
                w()
            cols = []
            for r in inference:
                cols += [c for c in r if c not in cols]
            w("Inference:")
            w()
            w("| " + " | ".join(cols) + " |")
            w("|" + "|".join("---:" if any(isinstance(r.get(c), (int, float)) for r in inference) else "---"
                             for c in cols) + "|")
            for r in inference:
                cells = []
                for c in cols:
                    v = r.get(c)
                    cells.append("—" if v is None else f"{v:.1f}" if isinstance(v, float) and c != "dropout"
                                 else str(v))
                w("| " + " | ".join(cells) + " |")
        w()

    w("### Notes")
    w()
    w("- Timings are medians of the timed steps after warm-up (both engines), so one step slowed by "
      "another process does not move the figure; on a shared virtual machine expect a few percent "
      "of noise between runs. Compare runs made on an otherwise idle machine.")
    w(f"- Threads: {threads if threads is not None else '?'} for both. droplab gets `DROPLAB_THREADS` "
      "(its own kernel threads) and `OPENBLAS_NUM_THREADS` set to that count; the peer calls "
      "`torch.set_num_threads` (intra-op threads of MKL / oneDNN / ATen).")
    return results


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["mini", "small"])
    ap.add_argument("--vocab-sizes", nargs="+", type=int, default=[8192, 30522])
    ap.add_argument("--dropouts", nargs="+", type=float, default=[0.0, 0.1])
    ap.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                    help="fp32 and/or bf16 (autocast) training (default fp32)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per configuration (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps (default 2)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads (default os.cpu_count())")
    ap.add_argument("--attn", choices=["default", "eager", "sdpa"], default="default",
                    help="attention implementation (default: transformers' default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smoke run: mini, V8192, 3 steps")
    ap.add_argument("--json", action="store_true", help="print a JSON object on stdout (human lines on stderr)")
    ap.add_argument("--report", nargs=2, metavar=("DROPLAB_JSON", "HF_JSON"),
                    help="write this machine's section of BENCHMARKS.md from the two JSON outputs instead of running")
    ap.add_argument("--into", metavar="PAGE",
                    help="with --report: print PAGE (an existing BENCHMARKS.md, or none) with this machine's "
                         "section replaced or added, the other machines' sections kept")
    args = ap.parse_args()
    if args.report:
        for path in args.report:
            if not os.path.isfile(path):
                sys.exit(f"bench_peer.py: {path}: no such file")
        if not args.into:
            report(*args.report)
            return
        section = io.StringIO()
        report(*args.report, out=section)
        old = open(args.into).read() if os.path.isfile(args.into) else ""
        sys.stdout.write(merge_page(section.getvalue(), machine_label(load_json(args.report[0])), old))
        return
    if args.quick:
        args.presets, args.vocab_sizes, args.steps = ["mini"], [8192], 3
    if args.steps < 1 or args.threads < 1:
        sys.exit("bench_peer.py: --steps and --threads must be >= 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not args.json:
        global log
        log = lambda *a: print(*a, flush=True)   # noqa: E731
    run(args)


if __name__ == "__main__":
    main()
