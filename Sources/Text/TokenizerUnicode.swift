// Per-scalar Unicode behaviour of BERT's basic tokenizer, as Hugging Face's fast tokenizer
// (the Rust `tokenizers` crate: BertNormalizer + BertPreTokenizer) implements it.
//
// The Rust code takes its general categories (control/format/private-use "other",
// non-spacing marks, punctuation) from the `unicode_categories` crate, whose tables are
// Unicode 8.0, and NFD (decompositions and canonical combining classes) from
// `unicode-normalization-alignments`, whose tables are Unicode 9.0. Whitespace and
// lower-casing come from Rust's std (current Unicode). Swift's stdlib has newer data, so to
// reproduce HF exactly we:
//   * treat scalars assigned after Unicode 8.0 as unassigned for the category tests
//     (unassigned scalars are kept as ordinary letters: Cn is not "other" there),
//   * apply the handful of category changes between 8.0 and today (`crateCategory`),
//   * give scalars assigned after Unicode 9.0 no decomposition and combining class 0.
// This was checked for every code point against tokenizers 0.23.3; the test
// `testEveryCodePointMatchesHuggingFace` re-checks it from a digest fixture.

import Foundation

enum BertUnicode {
    // Kinds of an original scalar, before NFD.
    static let kindNormal: UInt8 = 0
    static let kindRemoved: UInt8 = 1      // NUL, U+FFFD, control/format/private-use: dropped
    static let kindWhitespace: UInt8 = 2   // becomes a word break
    static let kindChinese: UInt8 = 3      // CJK ideograph: a word of its own

    // The NFD pieces of an original scalar, each followed by the extra scalars of its
    // lower-case mapping, packed one output scalar per UInt32:
    //   bits 0-20 scalar value, bit 21 punctuation, bit 22 stripped (a non-spacing mark that
    //   strip-accents drops; kept so canonical ordering and offsets see it), bit 23 extra
    //   (2nd+ scalar of a lower-case mapping: belongs to the previous piece), bits 24-31
    //   canonical combining class of the NFD piece. The first item is the scalar's first
    //   NFD piece (HF "change 0"); later pieces are insertions ("change 1").
    static let punctBit: UInt32 = 1 << 21
    static let strippedBit: UInt32 = 1 << 22
    static let extraBit: UInt32 = 1 << 23
    @inline(__always) static func itemScalar(_ item: UInt32) -> UInt32 { item & 0x1F_FFFF }
    @inline(__always) static func itemCCC(_ item: UInt32) -> UInt8 { UInt8(truncatingIfNeeded: item >> 24) }

    /// General category as the `unicode_categories` crate (Unicode 8.0) sees it.
    static func crateCategory(_ s: Unicode.Scalar) -> Unicode.GeneralCategory {
        switch s.value {
        case 0x166D: return .otherPunctuation
        case 0x1734, 0x1171E: return .nonspacingMark
        case 0x1885, 0x1886: return .otherLetter
        case 0xA9BD: return .spacingMark
        case 0x111C9: return .otherPunctuation
        default: break
        }
        guard let age = s.properties.age, age.major < 8 || (age.major == 8 && age.minor == 0) else {
            return .unassigned
        }
        return s.properties.generalCategory
    }

    /// Whether the NFD tables HF uses (Unicode 9.0) know `s`.
    static func inNormalizationData(_ s: Unicode.Scalar) -> Bool {
        guard let age = s.properties.age else { return false }
        return age.major < 9 || (age.major == 9 && age.minor == 0)
    }

    /// BERT's `_is_chinese_char`, with the ranges of the Rust implementation (which has
    /// 0x2B920 where Google's Python code has 0x2B820).
    @inline(__always) static func isChinese(_ v: UInt32) -> Bool {
        switch v {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// ASCII punctuation (33-47, 58-64, 91-96, 123-126) or Unicode category P*.
    static func isPunctuation(_ v: UInt32) -> Bool {
        if v < 0x80 {
            return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v)
                || (123...126).contains(v)
        }
        guard let s = Unicode.Scalar(v) else { return false }
        switch crateCategory(s) {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }

    static func isWhitespace(_ v: UInt32) -> Bool {
        v == 9 || v == 10 || v == 13 || (Unicode.Scalar(v)?.properties.isWhitespace ?? false)
    }

    static func isRemoved(_ v: UInt32) -> Bool {
        if v == 0 || v == 0xFFFD { return true }
        if v == 9 || v == 10 || v == 13 { return false }
        guard let s = Unicode.Scalar(v) else { return true }
        switch crateCategory(s) {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// Kind and output items of one original scalar (the slow path; results for the BMP
    /// are tabulated once in `ScalarTable`).
    static func compute(_ v: UInt32, into items: inout [UInt32]) -> UInt8 {
        if isRemoved(v) { return kindRemoved }
        if isWhitespace(v) { return kindWhitespace }
        guard let s = Unicode.Scalar(v) else { return kindRemoved }
        let decomposed: [Unicode.Scalar]
        if v < 0xC0 || !inNormalizationData(s) {
            decomposed = [s]
        } else {
            decomposed = Array(String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars)
        }
        for d in decomposed {
            let ccc = inNormalizationData(d)
                ? UInt32(UInt8(truncatingIfNeeded: d.properties.canonicalCombiningClass.rawValue)) << 24 : 0
            if crateCategory(d) == .nonspacingMark {
                items.append(ccc | strippedBit)
                continue
            }
            var extra: UInt32 = 0
            if d.properties.changesWhenLowercased {
                for l in d.properties.lowercaseMapping.unicodeScalars {
                    items.append(ccc | extra | (isPunctuation(l.value) ? punctBit : 0) | l.value)
                    extra = extraBit
                }
            }
            if extra == 0 { items.append(ccc | (isPunctuation(d.value) ? punctBit : 0) | d.value) }
        }
        return isChinese(v) ? kindChinese : kindNormal
    }
}

/// Kinds and output items for every BMP scalar, built once on first use (~65k entries).
final class ScalarTable: @unchecked Sendable {
    static let shared = ScalarTable()

    let kinds: [UInt8]        // 0x10000
    let starts: [UInt32]      // 0x10001, ranges into items
    let items: [UInt32]

    private init() {
        var kinds = [UInt8](repeating: 0, count: 0x10000)
        var starts = [UInt32](repeating: 0, count: 0x10001)
        var items: [UInt32] = []
        items.reserveCapacity(0x12000)
        for v in 0..<UInt32(0x10000) {
            starts[Int(v)] = UInt32(items.count)
            if v >= 0xD800 && v <= 0xDFFF { kinds[Int(v)] = BertUnicode.kindRemoved; continue }
            kinds[Int(v)] = BertUnicode.compute(v, into: &items)
        }
        starts[0x10000] = UInt32(items.count)
        self.kinds = kinds
        self.starts = starts
        self.items = items
    }
}
