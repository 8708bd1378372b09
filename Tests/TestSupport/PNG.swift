// A minimal PNG reader for checking screenshots: 8-bit RGB or RGBA, not interlaced (what
// Chromium writes). Chunks are checked for their order, IDAT is inflated with zlib and the
// scanline filters (none, sub, up, average, Paeth) are undone.

import CZlib
import Foundation

public struct PNGImage {
    public let width: Int, height: Int
    public let channels: Int                  // 3 (RGB) or 4 (RGBA)
    public let pixels: [UInt8]                // row-major, `channels` bytes a pixel

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    public init(contentsOf path: String) throws {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        guard data.count > 8, data[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else { throw Failure("\(path): not a PNG") }
        func u32(_ i: Int) -> Int { Int(data[i]) << 24 | Int(data[i + 1]) << 16 | Int(data[i + 2]) << 8 | Int(data[i + 3]) }
        var i = 8, header: [UInt8] = [], idat: [UInt8] = []
        while i + 8 <= data.count {
            let n = u32(i), type = String(decoding: data[i + 4..<i + 8], as: UTF8.self)
            guard i + 12 + n <= data.count else { throw Failure("\(path): truncated \(type) chunk") }
            let body = data[i + 8..<i + 8 + n]
            if type == "IHDR" { header = Array(body) } else if type == "IDAT" { idat += body } else if type == "IEND" { break }
            i += 12 + n
        }
        guard header.count == 13 else { throw Failure("\(path): no IHDR") }
        let w = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        let h = Int(header[4]) << 24 | Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
        guard header[8] == 8, header[9] == 2 || header[9] == 6, header[12] == 0 else {
            throw Failure("\(path): bit depth \(header[8]), colour type \(header[9]), interlace \(header[12]) not supported")
        }
        let ch = header[9] == 2 ? 3 : 4, stride = w * ch
        var raw = [UInt8](repeating: 0, count: h * (stride + 1))
        var size = uLongf(raw.count)
        let status = raw.withUnsafeMutableBytes { out in
            idat.withUnsafeBytes { uncompress(out.baseAddress!.assumingMemoryBound(to: Bytef.self), &size,
                                              $0.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong(idat.count)) }
        }
        guard status == Z_OK, Int(size) == raw.count else { throw Failure("\(path): IDAT does not inflate to \(raw.count) bytes (zlib \(status))") }
        var px = [UInt8](repeating: 0, count: h * stride)
        for y in 0..<h {
            let filter = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride
            for x in 0..<stride {
                let a = x >= ch ? Int(px[dst + x - ch]) : 0, b = y > 0 ? Int(px[dst - stride + x]) : 0
                let c = x >= ch && y > 0 ? Int(px[dst - stride + x - ch]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
                default: throw Failure("\(path): unknown filter \(filter) on row \(y)")
                }
                px[dst + x] = UInt8((Int(raw[src + x]) + predictor) & 0xFF)
            }
        }
        width = w; height = h; channels = ch; pixels = px
    }

    /// The distinct colours (RGB) and the share of pixels that are not the most common colour.
    public var colourStatistics: (distinct: Int, notBackground: Double) {
        var count: [UInt32: Int] = [:]
        for p in 0..<width * height {
            let o = p * channels
            count[UInt32(pixels[o]) << 16 | UInt32(pixels[o + 1]) << 8 | UInt32(pixels[o + 2]), default: 0] += 1
        }
        let background = count.values.max() ?? 0
        return (count.count, 1 - Double(background) / Double(max(width * height, 1)))
    }
}
