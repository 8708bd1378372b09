"""Training-curve parity: replay a droplab pretraining run in Hugging Face transformers.

    droplab pretrain --preset tiny --dropout 0 --tokens 1638400 --log-every 1 \
        --export-batches 400 --out RUN
    python tools/check_training_curve.py RUN [--out reports/training-parity]

droplab's `--export-batches N` writes RUN/init.h5 (the initial weights) and RUN/batches.h5 (the
masked input ids and labels of each micro-batch of the first N optimizer steps). This script builds
`BertForMaskedLM` from the same config and weights, trains it on exactly those batches with
torch's AdamW under droplab's settings (RUN/config.json: lr, warmup, linear/cosine/constant
decay, weight decay not on biases and LayerNorm weights, beta2, eps, global-norm clipping at 1.0,
gradient accumulation), and compares its loss at every step with droplab's (RUN/metrics.jsonl,
which must have one line per step: --log-every 1).

The two runs start equal and see the same data, but float32 sums in different orders make their
weights drift apart step by step, so the curves are compared as curves: the largest gap of the
per-step losses and of their 20-step moving averages. Writes OUT.json (both curves) and OUT.svg
(the two curves on one plot); exits 1 if the moving-average gap exceeds --tolerance.
"""

import argparse
import json
import math
import os
import sys


def schedule(step, peak, warmup, total, decay):
    """droplab's LRSchedule.lr(at:) for 0-based step (Sources/Training/Schedule.swift)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min((step - warmup) / max(total - warmup, 1), 1.0)
    if decay == "constant":
        return peak
    if decay == "linear":
        return peak * (1 - t)
    return peak * 0.5 * (1 + math.cos(math.pi * t))


def moving_average(xs, k):
    out = []
    for i in range(len(xs)):
        w = xs[max(0, i - k + 1): i + 1]
        out.append(sum(w) / len(w))
    return out


def svg_plot(steps, curves, title):
    """Both loss curves on one plot: plain SVG with labelled axes."""
    w, h, left, right, top, bottom = 640, 360, 60, 20, 30, 45
    ys = [y for _, c in curves for y in c]
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.05 or 0.1
    lo, hi = lo - pad, hi + pad
    x0, x1 = steps[0], steps[-1]

    def px(s):
        return left + (s - x0) / max(x1 - x0, 1) * (w - left - right)

    def py(y):
        return top + (hi - y) / (hi - lo) * (h - top - bottom)

    colours = ["#0072B2", "#D55E00"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
             f'<text x="{w / 2}" y="18" text-anchor="middle">{title}</text>',
             f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
             f'<text x="{w / 2}" y="{h - 8}" text-anchor="middle">optimizer step</text>',
             f'<text x="14" y="{h / 2}" text-anchor="middle" transform="rotate(-90 14 {h / 2})">training MLM loss</text>']
    for i in range(5):
        y = lo + (hi - lo) * i / 4
        parts.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        s = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{px(s):.1f}" y="{h - bottom + 16}" text-anchor="middle">{round(s)}</text>')
    for k, (name, c) in enumerate(curves):
        pts = " ".join(f"{px(s):.1f},{py(y):.1f}" for s, y in zip(steps, c))
        parts.append(f'<polyline fill="none" stroke="{colours[k]}" stroke-width="1.5" points="{pts}"/>')
        parts.append(f'<text x="{w - right - 180}" y="{top + 16 + 16 * k}" fill="{colours[k]}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="droplab run directory made with --export-batches and --log-every 1")
    ap.add_argument("--out", default="reports/training-parity", help="output prefix (OUT.json, OUT.svg)")
    ap.add_argument("--window", type=int, default=20, help="moving-average window (steps)")
    ap.add_argument("--tolerance", type=float, default=0.05, help="largest allowed moving-average gap (nats)")
    args = ap.parse_args()

    import h5py
    import numpy as np
    import torch
    from transformers import BertConfig, BertForMaskedLM

    def need(path):
        if not os.path.exists(path):
            sys.exit(f"check_training_curve: {path} does not exist (run droplab pretrain with --export-batches N --log-every 1)")
        return path

    opts = json.load(open(need(os.path.join(args.run, "config.json"))))
    metrics = [json.loads(line) for line in open(need(os.path.join(args.run, "metrics.jsonl")))]
    logged = {m["step"]: m for m in metrics if "train_loss" in m}
    if opts.get("logEvery", 1) != 1:
        sys.exit("check_training_curve: the run must log every step (--log-every 1)")
    if opts.get("dropout", 0) != 0 or (opts.get("attentionDropout") or 0) != 0:
        sys.exit("check_training_curve: the run must be without dropout (--dropout 0): dropout masks are not replayed")

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    with h5py.File(need(os.path.join(args.run, "init.h5")), "r") as f:
        config = BertConfig(**json.loads(f.attrs["config"]))
        model = BertForMaskedLM._from_config(config, attn_implementation="eager")
        state = {}
        for name, p in model.named_parameters():
            state[name] = torch.from_numpy(np.asarray(f[name], dtype=np.float32))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("cls.predictions.decoder") for k in missing):
            sys.exit(f"check_training_curve: weights do not match: missing {missing}, unexpected {unexpected}")
    with h5py.File(need(os.path.join(args.run, "batches.h5")), "r") as f:
        count = sum(1 for k in f.keys() if k.startswith("ids-"))
        ids = [torch.from_numpy(np.asarray(f["ids-%06d" % i])).long() for i in range(count)]
        labels = [torch.from_numpy(np.asarray(f["labels-%06d" % i])).long() for i in range(count)]

    acc = opts["accumulation"]
    steps = len(ids) // acc
    per_step = opts["batch"] * acc * opts["seqLen"]
    total = opts["tokens"] // per_step
    warmup = int(round(opts["warmup"] * total)) if opts["warmup"] < 1 else int(opts["warmup"])
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm.weight" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm.weight" in n)]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": opts["weightDecay"]},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=opts["lr"], betas=(0.9, opts["beta2"]), eps=opts["adamEps"])
    model.train()
    ours, theirs, xs = [], [], []
    for step in range(steps):
        lr = schedule(step, opts["lr"], warmup, total, opts["decay"])
        m = logged.get(step + 1)
        if m is None:
            sys.exit(f"check_training_curve: metrics.jsonl has no line for step {step + 1}")
        if abs(m["lr"] - lr) > 1e-5 * lr + 1e-12:   # metrics.jsonl prints 6 significant digits
            sys.exit(f"check_training_curve: step {step + 1}: droplab's lr {m['lr']} differs from the schedule's {lr}")
        for g in optim.param_groups:
            g["lr"] = lr
        optim.zero_grad()
        loss_sum = 0.0
        for a in range(acc):
            i = step * acc + a
            out = model(input_ids=ids[i], attention_mask=torch.ones_like(ids[i]),
                        token_type_ids=torch.zeros_like(ids[i]), labels=labels[i])
            (out.loss / acc).backward()
            loss_sum += out.loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        xs.append(step + 1)
        ours.append(m["train_loss"])
        theirs.append(loss_sum / acc)
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}/{steps}  droplab {ours[-1]:.4f}  transformers {theirs[-1]:.4f}", flush=True)

    gap = max(abs(a - b) for a, b in zip(ours, theirs))
    ma_ours, ma_theirs = moving_average(ours, args.window), moving_average(theirs, args.window)
    ma_gap = max(abs(a - b) for a, b in zip(ma_ours[args.window - 1:], ma_theirs[args.window - 1:]))
    first_gap = abs(ours[0] - theirs[0])
    result = {"run": os.path.basename(os.path.normpath(args.run)), "steps": steps, "window": args.window,
              "first_step_gap": first_gap, "max_step_gap": gap, "max_moving_average_gap": ma_gap,
              "final_droplab": ma_ours[-1], "final_transformers": ma_theirs[-1],
              "droplab": ours, "transformers": theirs}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    title = f"droplab vs transformers: same init, batches and optimizer ({steps} steps)"
    with open(args.out + ".svg", "w") as f:
        f.write(svg_plot(xs, [("droplab", ours), ("transformers", theirs)], title))
    print(f"steps {steps}: first-step gap {first_gap:.2e}, largest per-step gap {gap:.2e}, "
          f"largest {args.window}-step moving-average gap {ma_gap:.2e} (tolerance {args.tolerance})")
    if ma_gap > args.tolerance:
        print("FAIL: the curves differ by more than the tolerance")
        sys.exit(1)


if __name__ == "__main__":
    main()
