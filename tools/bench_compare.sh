#!/usr/bin/env bash
# Compare droplab's training throughput with Hugging Face transformers on this machine and
# write this machine's section of BENCHMARKS.md at the repository root (other machines' stay).
#
#   tools/bench_compare.sh                 # full: mini+small x V8192+V30522 x dropout 0.0+0.1 x fp32+bf16, 5 steps
#   tools/bench_compare.sh --quick         # smoke run: mini, V8192, dropout 0.0+0.1, 3 steps
#
# Options:
#   --quick            mini, V8192 only, 3 timed steps
#   --precision LIST   comma-separated precisions for both engines (default fp32,bf16; bf16 needs
#                      AVX512-BF16): droplab --precision, HF under torch.autocast bf16
#   --steps N          timed steps per configuration (default 5; --quick: 3)
#   --threads N        threads for both engines (default: nproc); droplab gets DROPLAB_THREADS=N and
#                      OPENBLAS_NUM_THREADS=N, the peer torch.set_num_threads(N)
#   --attn IMPL        HF attention implementation: default | eager | sdpa (default: default)
#   --no-build         do not run `swift build`; use the existing .build/release/droplab
#   --out FILE         report path (default: BENCHMARKS.md at the repository root)
#   --venv DIR         Python venv with torch + transformers (default: $VENV or /work/venv)
#   --droplab PATH     droplab binary to time (implies --no-build; default .build/release/droplab)
#
# Steps: build droplab (release, the Makefile's flags so the build is shared with `make build`),
# run `droplab bench --json`, then `tools/bench_peer.py --json` (one after the other, never at the
# same time), then `tools/bench_peer.py --report` to write the Markdown. The raw JSON is kept in
# .build/bench/. Run it on an otherwise idle machine: other load makes the numbers noisy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "bench_compare.sh: $*" >&2; exit 1; }

DROPLAB="$ROOT/.build/release/droplab" PRECISION=fp32,bf16 QUICK=0 STEPS="" THREADS="" ATTN=default BUILD=1 OUT="$ROOT/BENCHMARKS.md" VENV_DIR="${VENV:-/work/venv}"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --steps) [ $# -ge 2 ] || die "--steps needs a value"; STEPS="$2"; shift ;;
        --threads) [ $# -ge 2 ] || die "--threads needs a value"; THREADS="$2"; shift ;;
        --attn) [ $# -ge 2 ] || die "--attn needs a value"; ATTN="$2"; shift ;;
        --precision) [ $# -ge 2 ] || die "--precision needs a value"; PRECISION="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --out) [ $# -ge 2 ] || die "--out needs a value"; OUT="$2"; shift ;;
        --venv) [ $# -ge 2 ] || die "--venv needs a value"; VENV_DIR="$2"; shift ;;
        --droplab) [ $# -ge 2 ] || die "--droplab needs a value"; DROPLAB="$2"; BUILD=0; shift ;;
        -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
DROPLAB="$(abs "$DROPLAB")" OUT="$(abs "$OUT")"
cd "$ROOT"

THREADS="${THREADS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}"
if [ "$QUICK" = 1 ]; then
    STEPS="${STEPS:-3}"
    SELECT=(--presets mini --vocab-sizes 8192 --dropouts 0.0 0.1)
else
    STEPS="${STEPS:-5}"
    SELECT=(--presets mini small --vocab-sizes 8192 30522 --dropouts 0.0 0.1)
fi
case "$STEPS$THREADS" in *[!0-9]*) die "--steps and --threads take positive integers" ;; esac
IFS=, read -r -a PRECISIONS <<< "$PRECISION"
for p in "${PRECISIONS[@]}"; do case "$p" in fp32|bf16) ;; *) die "--precision takes fp32 and/or bf16, got '$p'" ;; esac; done
SELECT+=(--precision "${PRECISIONS[@]}")

# The Python side first: a missing venv should fail before a long build.
PY="$VENV_DIR/bin/python"
VENV_HELP="create it with:
  python3 -m venv $VENV_DIR
  $VENV_DIR/bin/pip install 'torch==2.13.0+cpu' transformers
(or pass --venv DIR / set VENV=DIR)"
[ -x "$PY" ] || die "no Python venv at $VENV_DIR; $VENV_HELP"
"$PY" -c 'import torch, transformers' 2>/dev/null || die "the venv at $VENV_DIR lacks torch or transformers; $VENV_HELP"

if [ "$BUILD" = 1 ]; then
    command -v swift >/dev/null || die "swift not found (install a Swift toolchain, or use --no-build with an existing $DROPLAB)"
    echo "== swift build -c release" >&2
    swift build -c release -Xswiftc -enable-testing --product droplab >&2 || die "swift build failed"
fi
[ -x "$DROPLAB" ] || die "droplab binary not found at $DROPLAB; build it with 'make build' (or run without --no-build)"
BENCH_HELP="$("$DROPLAB" bench --help 2>&1 || true)"
case "$BENCH_HELP" in *--json*) ;; *) die "$DROPLAB has no 'bench --json' option; rebuild from a tree that has it" ;; esac

WORK="$ROOT/.build/bench"
mkdir -p "$WORK"
D_JSON="$WORK/droplab.json" H_JSON="$WORK/hf.json"

echo "== droplab bench (DROPLAB_THREADS=OPENBLAS_NUM_THREADS=$THREADS, $STEPS steps)" >&2
DROPLAB_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" "$DROPLAB" bench --json "${SELECT[@]}" --steps "$STEPS" > "$D_JSON" \
    || die "droplab bench failed"

echo "== bench_peer.py (torch threads $THREADS, $STEPS steps)" >&2
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
    "$PY" "$ROOT/tools/bench_peer.py" --json "${SELECT[@]}" --steps "$STEPS" --threads "$THREADS" --attn "$ATTN" \
    > "$H_JSON" || die "bench_peer.py failed"

# this machine's section replaces its earlier one; other machines' sections and the sections
# measured by other means (after the marker line) are kept
"$PY" "$ROOT/tools/bench_peer.py" --report "$D_JSON" "$H_JSON" --into "$OUT" > "$OUT.tmp" || { rm -f "$OUT.tmp"; die "report failed"; }
mv "$OUT.tmp" "$OUT"
echo "== wrote $OUT (raw JSON in $WORK)" >&2
