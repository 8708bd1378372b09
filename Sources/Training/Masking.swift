// BERT masked-LM corruption: choose `rate` of the maskable tokens; of those, 80% become
// [MASK], 10% a random token, 10% stay. Labels are the original ids at chosen positions
// and -100 elsewhere. Special tokens and padding are never chosen. With whole-word
// masking, a word (a piece plus its following `##` pieces) is chosen or not as a unit.
// Salient pieces (a per-position mark, see `SalientLines`) are chosen at `salientRate` instead
// of `rate`, and corrupted like any chosen token.

import Autograd

public struct MaskingConfig: Codable, Equatable, Sendable {
    public var rate: Float = 0.15
    public var maskFraction: Float = 0.8
    public var randomFraction: Float = 0.1
    public var salientRate: Float = 1           // of marked pieces (REALM masks every salient span)
    public init(rate: Float = 0.15, maskFraction: Float = 0.8, randomFraction: Float = 0.1, salientRate: Float = 1) {
        self.rate = rate; self.maskFraction = maskFraction; self.randomFraction = randomFraction; self.salientRate = salientRate
    }
}

public struct Masker {
    public let config: MaskingConfig
    public let maskId: Int32
    public let vocabSize: Int
    public let special: Set<Int32>   // never masked, never drawn as random replacements
    public let continuation: [Bool]? // per id: is a `##` piece (whole-word masking when set)

    public init(config: MaskingConfig = .init(), maskId: Int32, vocabSize: Int, special: Set<Int32>,
                continuation: [Bool]? = nil) {
        self.config = config; self.maskId = maskId; self.vocabSize = vocabSize; self.special = special
        self.continuation = continuation
    }

    /// Corrupt `ids` in place, returning the labels. Deterministic given `rng`'s state.
    /// `salient`: per position, whether it is chosen at `config.salientRate`.
    public func apply(_ ids: inout [Int32], salient: [Bool]? = nil, rng: inout RNG) -> [Int32] {
        var labels = [Int32](repeating: -100, count: ids.count)
        var chosen = false, previousIsWord = false
        for i in ids.indices {
            if special.contains(ids[i]) { previousIsWord = false; continue }
            let continues = previousIsWord && continuation?[Int(ids[i])] == true
            previousIsWord = true
            if !continues { chosen = rng.uniform() < (salient?[i] == true ? config.salientRate : config.rate) }
            guard chosen else { continue }
            labels[i] = ids[i]
            let u = rng.uniform()
            if u < config.maskFraction {
                ids[i] = maskId
            } else if u < config.maskFraction + config.randomFraction {
                var r: Int32
                repeat { r = Int32(rng.int(vocabSize)) } while special.contains(r)
                ids[i] = r
            }
        }
        return labels
    }
}
