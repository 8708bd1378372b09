#!/usr/bin/env python3
"""SQuAD EM/F1 reference fixture for droplab's Swift metrics (Sources/Evaluators/SquadMetrics.swift).

Re-implements, from their published definitions, the scoring functions of the official
evaluate-v1.1.py and evaluate-v2.0.py scripts (normalize_answer, exact match, token F1, max
over gold answers, HasAns/NoAns splits, find_best_thresh) and scores ~250 (prediction, gold
answers) cases:

  * hand-written edge cases: punctuation only, articles, ASCII vs unicode punctuation,
    Greek final sigma, dotted capital I, composed vs decomposed accents, unusual whitespace
    (NBSP, U+001C, U+3000, zero-width space), numerals, CJK, empty strings, repeated tokens;
  * real questions of SQuAD dev v1.1 (answers from the data) with perturbed predictions;
  * real questions of SQuAD dev v2.0, including unanswerable ones, with null odds for the
    best-threshold search.

Writes Tests/EvaluatorsTests/Fixtures/squad_metric_reference.json (deterministic):
  {"python": ..., "unicodedata": ..., "cases": [{"name", "prediction", "answers", "na_prob",
    "normalized_prediction", "normalized_answers", "v1": {"exact", "f1"}, "v2": {"exact", "f1"}}],
   "v1": {"exact_match", "f1"}, "v2": {"exact", "f1", "total", "HasAns_*", "NoAns_*",
   "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"}}

Usage:
  /work/venv/bin/python tools/make_squad_metric_reference.py [--data /work/shared/data/squad] [--out FILE]
"""

import argparse
import collections
import json
import random
import re
import string
import sys
import unicodedata

# ---------------------------------------------------------------- official definitions


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace (both scripts)."""

    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


# v1.1


def v1_f1(prediction, ground_truth):
    p = normalize_answer(prediction).split()
    g = normalize_answer(ground_truth).split()
    common = collections.Counter(p) & collections.Counter(g)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(p)
    recall = 1.0 * num_same / len(g)
    return (2 * precision * recall) / (precision + recall)


def v1_exact(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def v1_max(fn, prediction, ground_truths):
    return max(fn(prediction, gt) for gt in ground_truths)


# v2.0


def v2_tokens(s):
    if not s:
        return []
    return normalize_answer(s).split()


def v2_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def v2_f1(a_gold, a_pred):
    gold_toks = v2_tokens(a_gold)
    pred_toks = v2_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def v2_gold(answers):
    gold = [a for a in answers if normalize_answer(a)]
    return gold if gold else [""]


def v2_eval_dict(exact, f1, qids):
    total = len(qids)
    return {"exact": 100.0 * sum(exact[k] for k in qids) / total,
            "f1": 100.0 * sum(f1[k] for k in qids) / total, "total": total}


def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = num_no_ans
    best_score = cur_score
    best_thresh = 0.0
    qid_list = sorted(na_probs, key=lambda k: na_probs[k])
    for qid in qid_list:
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score = cur_score
            best_thresh = na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


# ---------------------------------------------------------------- cases

HAND = [
    # (name, prediction, answers)
    ("identical", "Denver Broncos", ["Denver Broncos"]),
    ("case", "DENVER broncos", ["Denver Broncos"]),
    ("article the", "the Denver Broncos", ["Denver Broncos"]),
    ("article inside", "Broncos of the Denver", ["Broncos of Denver"]),
    ("articles only", "the a an", ["The"]),
    ("articles only v2 gold", "a", ["an", "the"]),
    ("article prefix not removed", "theory another", ["ory other"]),
    ("article with digit", "the2 a1", ["2 1"]),
    ("article after accent", "théa éan", ["thé é"]),
    ("article capital", "An Apple", ["apple"]),
    ("article hyphen", "a-bomb", ["bomb"]),
    ("article underscore", "a_b", ["ab"]),
    ("article apostrophe", "the's", ["s"]),
    ("punctuation only pred", "...", ["Paris"]),
    ("punctuation only both", "?!", ["."]),
    ("punctuation only gold", "Paris", ["--"]),
    ("empty pred", "", ["Paris"]),
    ("empty pred empty gold", "", [""]),
    ("empty pred unanswerable", "", []),
    ("nonempty pred unanswerable", "Paris", []),
    ("punct pred unanswerable", "!!", []),
    ("whitespace pred unanswerable", "  \t\n", []),
    ("ascii punctuation", "U.S.A.", ["USA"]),
    ("unicode dash kept", "1990–1995", ["19901995"]),
    ("unicode dash vs ascii", "1990–1995", ["1990-1995"]),
    ("em dash token", "war — peace", ["war peace"]),
    ("curly quotes kept", "“Hello”", ['"Hello"']),
    ("curly apostrophe", "Beyoncé’s", ["Beyoncé's"]),
    ("guillemets", "«Paris»", ["Paris"]),
    ("final sigma", "ΟΔΟΣ", ["οδος"]),
    ("final sigma vs sigma", "ΟΔΟΣ", ["οδοσ"]),
    ("sigma inside word", "ΣΟΦΙΑ", ["σοφια"]),
    ("sigma alone", "Σ", ["σ"]),
    ("sigma before punct", "ΟΔΟΣ.", ["οδος"]),
    ("dotted capital I", "İstanbul", ["istanbul"]),
    ("dotted capital I lowered", "İstanbul", ["i̇stanbul"]),
    ("composed vs decomposed", "café", ["cafe\u0301"]),
    ("composed equal", "Café", ["café"]),
    ("accent stays", "café", ["cafe"]),
    ("nbsp splits", "New\u00a0York", ["New York"]),
    ("ideographic space", "東京\u3000タワー", ["東京 タワー"]),
    ("info separator is space", "a\u001cb", ["b"]),
    ("zero width space not space", "New\u200bYork", ["New York"]),
    ("line separator", "one\u2028two", ["one two"]),
    ("tabs and newlines", "  one\t\ttwo\n", ["one two"]),
    ("cjk no spaces", "北京大学", ["北京"]),
    ("arabic", "القاهرة", ["القاهرة"]),
    ("superscript digit is word", "a²", ["a²"]),
    ("superscript after article", "the ²", ["²"]),
    ("fraction", "½ the cake", ["½ cake"]),
    ("roman numeral", "Ⅻ a", ["Ⅻ"]),
    ("fullwidth letters", "ＡＢＣ", ["ａｂｃ"]),
    ("german sharp s", "STRASSE", ["straße"]),
    ("repeated tokens", "the the the cat cat", ["cat"]),
    ("counter overlap", "cat cat dog", ["cat dog dog"]),
    ("partial overlap", "in the year 1066", ["1066"]),
    ("multiple golds", "Saint Bernadette Soubirous", ["Saint Bernadette Soubirous", "Bernadette", "a Marian place"]),
    ("multiple golds f1 from another", "Bernadette Soubirous", ["Saint Bernadette", "Soubirous of Lourdes"]),
    ("multiple golds one punct v2", "x", ["...", "x"]),
    ("numbers with commas", "1,000,000", ["1000000"]),
    ("percent", "45 %", ["45%"]),
    ("dollar", "$5.5 million", ["5.5 million"]),
    ("emoji", "👍 yes", ["yes 👍"]),
    ("mixed scripts", "Pokémon ポケモン", ["pokemon ポケモン"]),
    ("combining after article", "a\u0301 b", ["b"]),
    ("titlecase digraph", "ǅemal", ["ǆemal"]),
    ("kelvin sign", "\u212a", ["k"]),
    ("long prediction", "The quick brown fox jumps over the lazy dog near the river bank", ["lazy dog"]),
]


def random_span(rng, context):
    """Up to 29 characters of context from a random start (the same draws wherever used)."""
    a = rng.randrange(max(1, len(context) - 30))
    return context[a:a + rng.randrange(1, 30)]


def perturb(rng, gold, context, start, other):
    """A plausible prediction derived from a gold answer."""
    kind = rng.randrange(14)
    words = gold.split()
    if kind == 0:
        return "exact", gold
    if kind == 1:
        return "upper", gold.upper()
    if kind == 2:
        return "trailing period", gold + "."
    if kind == 3:
        return "leading article", "the " + gold
    if kind == 4:
        return "drop first word", " ".join(words[1:])
    if kind == 5:
        return "drop last word", " ".join(words[:-1])
    if kind == 6 and start is not None:
        end = start + len(gold)
        extra = context[end:end + rng.randrange(5, 40)]
        return "extend right", gold + extra
    if kind == 7 and start is not None:
        return "extend left", context[max(0, start - rng.randrange(3, 30)):start + len(gold)]
    if kind == 8:
        return "other answer", other
    if kind == 9:
        return "empty", ""
    if kind == 10:
        return "curly quotes", "\u201c" + gold + "\u201d"
    if kind == 11:
        return "nbsp", gold.replace(" ", "\u00a0")
    if kind == 12 and words:
        i = rng.randrange(len(words))
        return "duplicate word", " ".join(words[:i + 1] + words[i:])
    return "random span", random_span(rng, context)


def squad_questions(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    out = []
    for art in data:
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                out.append((qa["id"], p["context"], qa["answers"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/squad")
    ap.add_argument("--out", default="Tests/EvaluatorsTests/Fixtures/squad_metric_reference.json")
    ap.add_argument("--v1", type=int, default=130, help="real dev v1.1 cases")
    ap.add_argument("--v2", type=int, default=60, help="real dev v2.0 cases")
    args = ap.parse_args()
    rng = random.Random(20240611)

    cases = [{"name": "hand: " + n, "prediction": p, "answers": a} for n, p, a in HAND]

    v1 = squad_questions(args.data + "/dev-v1.1.json")
    for qid, context, answers in rng.sample(v1, args.v1):
        texts = [a["text"] for a in answers]
        other = rng.choice(rng.choice(v1)[2])["text"]
        kind, pred = perturb(rng, texts[0], context, answers[0]["answer_start"], other)
        cases.append({"name": "dev-v1.1 %s: %s" % (qid, kind), "prediction": pred, "answers": texts})

    v2 = squad_questions(args.data + "/dev-v2.0.json")
    for qid, context, answers in rng.sample(v2, args.v2):
        texts = [a["text"] for a in answers]
        if texts:
            kind, pred = perturb(rng, texts[0], context, answers[0]["answer_start"], "")
        elif rng.random() < 0.5:
            kind, pred = "no answer, empty", ""
        else:
            kind, pred = "no answer, span", random_span(rng, context)
        cases.append({"name": "dev-v2.0 %s: %s" % (qid, kind), "prediction": pred, "answers": texts})

    # null odds for the best-threshold search: a few decimals so that ties occur
    for c in cases:
        c["na_prob"] = round(rng.uniform(-4, 4), 1)

    v1_em = v1_f = 0.0
    exact, f1, na_probs, has_ans, preds = {}, {}, {}, {}, {}
    for i, c in enumerate(cases):
        p, answers = c["prediction"], c["answers"]
        c["normalized_prediction"] = normalize_answer(p)
        c["normalized_answers"] = [normalize_answer(a) for a in answers]
        gold1 = answers if answers else [""]      # v1.1 has no unanswerable questions; score against ""
        c["v1"] = {"exact": float(v1_max(v1_exact, p, gold1)), "f1": float(v1_max(v1_f1, p, gold1))}
        gold2 = v2_gold(answers)
        c["v2"] = {"exact": float(max(v2_exact(a, p) for a in gold2)), "f1": float(max(v2_f1(a, p) for a in gold2))}
        v1_em += c["v1"]["exact"]
        v1_f += c["v1"]["f1"]
        k = "q%04d" % i
        exact[k], f1[k] = c["v2"]["exact"], c["v2"]["f1"]
        na_probs[k], has_ans[k], preds[k] = c["na_prob"], bool(answers), p

    qids = list(exact)
    ref2 = v2_eval_dict(exact, f1, qids)
    for name, keep in (("HasAns", True), ("NoAns", False)):
        sub = [k for k in qids if has_ans[k] == keep]
        if sub:
            for key, v in v2_eval_dict(exact, f1, sub).items():
                ref2["%s_%s" % (name, key)] = v
    ref2["best_exact"], ref2["best_exact_thresh"] = find_best_thresh(preds, exact, na_probs, has_ans)
    ref2["best_f1"], ref2["best_f1_thresh"] = find_best_thresh(preds, f1, na_probs, has_ans)

    out = {"python": sys.version.split()[0], "unicodedata": unicodedata.unidata_version, "cases": cases,
           "v1": {"exact_match": 100.0 * v1_em / len(cases), "f1": 100.0 * v1_f / len(cases)}, "v2": ref2}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1, sort_keys=True)
        f.write("\n")
    n_ex = sum(c["v2"]["exact"] for c in cases)
    print("wrote %s: %d cases (%d exact under v2), v1 %s, v2 exact %.4f f1 %.4f best_f1 %.4f @ %s"
          % (args.out, len(cases), n_ex, out["v1"], ref2["exact"], ref2["f1"], ref2["best_f1"], ref2["best_f1_thresh"]))


if __name__ == "__main__":
    main()
