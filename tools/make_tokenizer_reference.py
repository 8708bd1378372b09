#!/usr/bin/env python3
"""Build the WordPiece tokenizer reference fixture for droplab's Swift tokenizer.

Run with the project venv (transformers + tokenizers, no network needed):

    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_tokenizer_reference.py
    HF_HUB_OFFLINE=1 /work/venv/bin/python tools/make_tokenizer_reference.py \\
        --wiki /work/shared/data/wiki_en/enwiki2015_wikiextractor_shard0.txt.gz --out-dir DIR
    # print HF's pre-tokens for single code points (to debug a digest mismatch):
    /work/venv/bin/python tools/make_tokenizer_reference.py --show-codepoints 1DF0:1E00

It writes, into --out-dir (default Tests/TextTests/Fixtures):

  vocab.txt
      A WordPiece vocabulary (~4000 entries) trained with HF `tokenizers`'
      BertWordPieceTokenizer (lower-case, strip accents) on the first few MB of the wiki
      shard, with [PAD] [UNK] [CLS] [SEP] [MASK] as ids 0-4, the trained entries sorted
      (the trainer's own order is not reproducible), entries containing emoji removed, plus a few hundred extra entries: CJK ideographs, hiragana/katakana (plain
      and ## forms) and the Hangul jamo of "한국어" (NFD splits syllables into jamo).
  tokenizer_reference.jsonl
      One JSON object per line: {"text", "ids", "tokens", "offsets"} from
      BertTokenizerFast.from_pretrained(<dir with vocab.txt>, do_lower_case=True) called
      with add_special_tokens=False; offsets are code point (= unicode scalar) ranges into
      text. Lines: wiki prose, hand-written edge cases (numbers, punctuation, accents, CJK,
      emoji, long words, whitespace, control characters, special tokens, URLs, code) and
      seeded random mixtures of scripts, marks and control characters.
  unicode_digest.tsv
      For every block of 4096 code points (surrogates skipped): FNV-1a 64 of the HF
      pre-tokens of "x<c>x x<c>x ..." (each code point c between two x's, normalized with
      the same BertNormalizer and split with BertPreTokenizer), one line per block:
      "<first code point hex>\t<hash hex>". The Swift test recomputes it for all of Unicode.

Everything is deterministic (fixed seeds, sorted inputs). No tokenizer is downloaded: the
vocabulary is trained here and loaded from a local directory (in transformers 5.x,
BertTokenizerFast(vocab_file=...) silently ignores the file, so
fixture_common.load_wordpiece_tokenizer uses from_pretrained(DIR) and checks the number of
entries against the file's line count).
"""

import argparse
import gzip
import json
import os
import random
import re
import unicodedata

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fixture_common import SPECIALS, load_wordpiece_tokenizer

DEFAULT_WIKI = "/work/shared/data/wiki_en/enwiki2015_wikiextractor_shard0.txt.gz"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "TextTests", "Fixtures")


def read_wiki(path, max_bytes):
    """Text lines of the shard (no <doc> markup, no blank lines), up to max_bytes."""
    out, total = [], 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("<doc") or line.startswith("</doc"):
                continue
            out.append(line)
            total += len(line.encode("utf-8")) + 1
            if total >= max_bytes:
                break
    return out


def is_emoji(ch):
    cp = ord(ch)
    return cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or unicodedata.category(ch) == "So"


def train_vocab(lines, vocab_size):
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, limit_alphabet=500,
                            special_tokens=SPECIALS, wordpieces_prefix="##", show_progress=False)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab]
    assert tokens[:5] == SPECIALS, tokens[:5]
    # The trainer's id order varies from run to run (it comes from a Rust HashMap), so the
    # ids are made deterministic by sorting; the order does not matter to WordPiece.
    rest = sorted(t for t in tokens[5:] if not any(is_emoji(c) for c in t))
    return SPECIALS + rest


def extra_tokens(wiki_lines):
    extra = []
    # CJK ideographs: a fixed set used by the hand-written lines, plus those in the text.
    fixed = "中文字符日本語漢混合括弧引用国人大学北京東京"
    seen = sorted({c for line in wiki_lines for c in line if 0x4E00 <= ord(c) <= 0x9FFF})
    extra += list(fixed) + seen[:120]
    # Hiragana and katakana (space-separated scripts: they need ## forms too).
    kana = [chr(c) for c in range(0x3041, 0x3097)] + [chr(c) for c in range(0x30A1, 0x30FB)]
    extra += kana + ["##" + k for k in kana]
    # Hangul jamo of 한국어 after NFD.
    hangul = unicodedata.normalize("NFD", "한국어")
    extra += [hangul[0]] + ["##" + j for j in hangul[1:]]
    # Devanagari with a spacing vowel sign: "##ि" is one grapheme cluster less than it looks.
    extra += ["क", "##र", "##ि", "##क", "##ट", "##्"]
    return extra


def handwritten_lines():
    L = []
    # numbers
    L += ["1,234.56", "3rd", "10^6", "The 1990s saw 2.5% growth (±0.3).", "$1,000,000 and €50", "3.14159265358979",
          "1e-9 and 6.022e23", "0x1F600", "24/7", "9:30am on 2015-06-01", "№5", "½ + ¼ = ¾", "x² + y³", "IV, XII, MMXV",
          "phone: +1 (555) 123-4567", "1st 2nd 3rd 4th 21st 101st"]
    # punctuation runs
    L += ["!!!", "...", "—", "(a)[b]{c}", "?!?!", "'single' \"double\"", "«guillemets»", "„German“ ‚quotes‘", "¿Qué? ¡Hola!",
          "a--b", "a—b–c", "wait…", "§12 ¶3", "@user #hashtag", "~/path/to/file.txt", "C:\\Windows\\System32", "|pipe|",
          "^caret^", "`backtick`", "_under_score_", "***", "<<>>", "a.b.c.d", "e.g., i.e.,", "...and then?!", "-- -- --",
          "「引用」『二重』", "〈括弧〉《书名》", "。、・", "！？（全角）", "•bullet", "†‡", "※注意", "‰ ‱", "·middle·dot·"]
    # accents and other Latin/Greek/Cyrillic
    L += ["café", "naïve", "Ångström", "São Paulo", "Dvořák", "Crème brûlée at the Café", "Zürich", "Łódź", "Ærøskøbing",
          "straße STRASSE", "İstanbul ıi", "ΑΘΗΝΑ Ἀθῆναι", "Ελληνικά", "Москва Ёлка", "ﬁnance ﬀ", "Ｆｕｌｌｗｉｄｔｈ",
          "cafe\u0301 decomposed", "x\u0302\u0323y", "ǅungla ǄUNGLA", "\u212a kelvin \u212b angstrom \u2126 ohm",
          "Việt Nam", "Çağrı", "Ñandú", "Šibenik", "Ōsaka", "Hawaiʻi", "façade", "coöperate", "résumé", "ÉCOLE",
          "Ὀδυσσεύς", "ᾼ ᾳ ῼ", "Ἄρης", "ǰ ǈ", "ﬅ", "Ǆ", "ẞ capital sharp s", "Ⅻ roman numeral", "ǲ"]
    # CJK
    L += ["中文字符", "日本語のテキスト", "한국어", "中文English混合", "漢字かなカナ", "東京と北京の大学", "人人人",
          "𠀀𠀁 ext B", "\U0002B820 gap char", "\U0002B920 ext", "豈 compat", "⼀ radical", "ＡＢＣ１２３", "ｶﾀｶﾅ halfwidth",
          "汉字\u3000全角空格", "中a文b字", "한국어 텍스트입니다", "ㄱㄴㄷ compat jamo"]
    # emoji
    L += ["👍🏽", "🇫🇷", "👨\u200d👩\u200d👧", "❤️", "🥲", "I love it 😀!!", "1️⃣ keycap", "☃ snowman", "🏳️‍🌈 flag",
          "ok👌ok", "©®™"]
    # very long words
    L += ["a" * 100, "a" * 101, "supercalifragilistic" * 5, "x" * 250, "é" * 100, "é" * 101, "한" * 33, "한" * 34,
          "antidisestablishmentarianism", "pneumonoultramicroscopicsilicovolcanoconiosis",
          "Ab" * 50 + " end", "word " + "z" * 99 + "!"]
    # whitespace
    L += ["", " ", "   ", "\t", "\t\t", " \t \n ", "\u3000", "\u00a0nbsp\u00a0", "a\u2003b", "lead   trail   ",
          "\n", "\r\n", "line\u2028sep", "para\u2029sep", "\u1680ogham", "\u180emongolian", "a\u200ab"]
    # control and format characters
    L += ["a\x00b", "a\x01b\x7fc", "tab\there", "line\nbreak", "cr\rlf", "\x0bvt\x0cff", "\x85nel", "\ufffdreplacement",
          "soft\u00adhyphen", "zero\u200bwidth", "zwj: 👨\u200d💻", "a\u200cb", "\ufeffBOM", "rtl \u202eoverride\u202c",
          "\ue000private", "\U000f0000supplementary private", "\x1b[31mred\x1b[0m", "bell\x07", "\x1c\x1d\x1e\x1f"]
    # mixed case, URLs, code
    L += ["HeLLo WoRLD", "iPhone", "McDonald's", "NASA's", "ALL CAPS SENTENCE.", "camelCaseName snake_case_name",
          "https://en.wikipedia.org/wiki/Main_Page?action=edit&oldid=123#section", "mailto:someone@example.com",
          "www.example.co.uk/path-to/page.html", "def f(x): return x**2 + 1", "int main() { printf(\"%d\\n\", a[i]); }",
          "if (a && b || !c) { x += 1; }", "<div class=\"x\">Hi</div>", "SELECT * FROM t WHERE id = 42;",
          "let y = x.map { $0 * 2 }", "#include <stdio.h>", "{\"key\": [1, 2, 3]}", "a->b::c"]
    # special tokens in the raw text (HF matches them before normalization)
    L += ["[CLS] hello [SEP]", "a[MASK]b", "[mask] lower case", "[[MASK]]", "[UNK][PAD]", "[MASK", "[SEP]]", "[ MASK ]"]
    # combining marks
    L += ["\u0301 leading mark", "a\u0308\u0301", "x\u1df6\u1dfa y", "x\u1dfa\u1df6 y", "e\u0301\u1dfa\u0316",
          "\u2e43 \u166d \U000111c9", "\u1734 \u1885 \ua9bd \U0001171e \U00011938", "नमस्ते हिन्दी", "कि", "किरकिट क्रिकेट", "العربية", "עברית",
          "ไทย", "ᄀ\u1161\u11a8", "\u0345 ypogegrammeni", "\u0e4e thai mark", "\U0001d165\U0001d16d\U0001d166 music"]
    return L


def fuzz_lines(n, seed):
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        " \t\n\r\u00a0\u2000\u2009\u3000\u2028",
        "".join(chr(c) for c in range(0xC0, 0x250)),
        "".join(chr(c) for c in range(0x300, 0x370)),
        "".join(chr(c) for c in range(0x1AB0, 0x1AC0)) + "".join(chr(c) for c in range(0x1DC0, 0x1E00)),
        "".join(chr(c) for c in range(0x391, 0x3CA)) + "".join(chr(c) for c in range(0x1F00, 0x1F80)),
        "".join(chr(c) for c in range(0x400, 0x460)),
        "中文字符日本語漢国人大学北京東京豈⼀",
        "".join(chr(c) for c in range(0xAC00, 0xAC40)),
        "".join(chr(c) for c in range(0x3041, 0x3097)),
        "😀👍🏽🇫🇷❤️🥲💻🎉",
        "".join(chr(c) for c in list(range(1, 32)) + [0x7f, 0x85, 0xad, 0x200b, 0x200c, 0x200d, 0x200e, 0x2060, 0xfeff, 0xe000]),
        "".join(chr(c) for c in range(0x2010, 0x2060)) + "".join(chr(c) for c in range(0x2E00, 0x2E5E)),
        "\u0130\u1e9e\u1c90\u1c91\u10a0\u2c00\u0587\ufb00\u212a\u212b\u2126\U0001d400\U00020000\U0002b820\U0002b920",
        "".join(chr(c) for c in range(0x900, 0x980)),
    ]
    weights = [30, 8, 10, 8, 6, 4, 5, 4, 4, 3, 3, 3, 3, 4, 3, 3]
    lines = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choices(pools, weights)[0]
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 10))))
        lines.append(rng.choice([" ", "", "-", "  "]).join(parts))
    return lines


def mark_lines(n, seed):
    """Combining-mark sequences: canonical reordering and its (positional) offsets in HF."""
    rng = random.Random(seed)
    survivors = "\U0001d165\U0001d166\U0001d16d\U0001d16e\U0001d172\u1dfb\u1df6\u1dfa"
    decomposable = "\u1e69\u0344\u1fc1\u0f73\u0f75\U0001d15f\U0001d160\U0001d1bc\u01d5\u1e08\u1fb4\u0958\u0390"
    stripped = "\u0301\u0316\u0323\u0345\u05b0\u0e38\u093c\u0307\u1df5"
    bases = "axA \u03b9"
    pool = [survivors, decomposable, stripped, bases]
    lines = []
    for _ in range(n):
        lines.append("".join(rng.choice(rng.choices(pool, [4, 3, 4, 2])[0]) for _ in range(rng.randint(2, 9))))
    return lines


def prose_lines(wiki_lines, n, seed):
    """Sentences of 20-300 characters from later wiki lines (not the vocab training text)."""
    rng = random.Random(seed)
    sentences = []
    for line in wiki_lines:
        for s in re.split(r"(?<=[.!?])\s+", line):
            if 20 <= len(s) <= 300:
                sentences.append(s)
    ascii_only = [s for s in sentences if s.isascii()]
    non_ascii = [s for s in sentences if not s.isascii()]
    pick = rng.sample(ascii_only, min(len(ascii_only), n - n // 4)) + rng.sample(non_ascii, min(len(non_ascii), n // 4))
    return pick


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def codepoint_block_text(start, end):
    return " ".join("x" + chr(c) + "x" for c in range(start, end) if not 0xD800 <= c <= 0xDFFF)


def pre_tokens(tok, text):
    backend = tok.backend_tokenizer if tok is not None else None
    if backend is None:
        from tokenizers import normalizers, pre_tokenizers
        norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
        pre = pre_tokenizers.BertPreTokenizer()
    else:
        norm, pre = backend.normalizer, backend.pre_tokenizer
    return [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wiki", default=DEFAULT_WIKI)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    ap.add_argument("--train-mb", type=float, default=3.0)
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--show-codepoints", metavar="START:END", help="print HF pre-tokens per code point (hex range) and exit")
    args = ap.parse_args()

    if args.show_codepoints:
        lo, hi = (int(x, 16) for x in args.show_codepoints.split(":"))
        for c in range(lo, hi):
            if 0xD800 <= c <= 0xDFFF:
                continue
            words = pre_tokens(None, "x" + chr(c) + "x")
            print("%x\t%s" % (c, " | ".join(" ".join("%x" % ord(ch) for ch in w) for w in words)))
        return

    wiki = read_wiki(args.wiki, int(args.train_mb * 1e6) + 3_000_000)
    cut, total = 0, 0
    while cut < len(wiki) and total < args.train_mb * 1e6:
        total += len(wiki[cut].encode("utf-8")) + 1
        cut += 1
    train, held_out = wiki[:cut], wiki[cut:]

    vocab = train_vocab(train, args.vocab_size)
    present = set(vocab)
    for t in extra_tokens(train):
        if t not in present:
            vocab.append(t)
            present.add(t)
    os.makedirs(args.out_dir, exist_ok=True)
    vocab_path = os.path.join(args.out_dir, "vocab.txt")
    vocab_bytes = ("\n".join(vocab) + "\n").encode("utf-8")
    with open(vocab_path, "wb") as f:
        f.write(vocab_bytes)
    tok = load_wordpiece_tokenizer(vocab_bytes)

    lines = prose_lines(held_out, 130, seed=7) + handwritten_lines() + fuzz_lines(80, seed=11) + mark_lines(60, seed=13)
    out_path = os.path.join(args.out_dir, "tokenizer_reference.jsonl")
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        for text in lines:
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = enc["input_ids"]
            rec = {"text": text, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                   "offsets": [list(o) for o in enc["offset_mapping"]]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    digest_path = os.path.join(args.out_dir, "unicode_digest.tsv")
    with open(digest_path, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, 0x110000, 4096):
            words = pre_tokens(tok, codepoint_block_text(start, start + 4096))
            f.write("%x\t%016x\n" % (start, fnv1a64("\n".join(words).encode("utf-8"))))

    n_unk = sum(1 for line in open(out_path, encoding="utf-8") if '"[UNK]"' in line)
    print(f"vocab: {len(vocab)} tokens -> {vocab_path}")
    print(f"reference: {len(lines)} lines ({n_unk} with [UNK]) -> {out_path}")
    print(f"digest: {0x110000 // 4096} blocks -> {digest_path}")
    for p in (vocab_path, out_path, digest_path):
        print(f"  {os.path.basename(p)}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
