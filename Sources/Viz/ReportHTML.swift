// `droplab report --html`: the report as one self-contained page beside its markdown. The
// markdown the report writes uses a small subset (headings, paragraphs, "- " lists, tables,
// **bold**, `code`, [links](...) and figures as [![caption](name.svg)](name.svg)); this renders
// exactly that subset, puts each figure's SVG inline, and makes every table sortable by a click
// on a column header (a few lines of inline script). The page loads nothing from outside.

import Foundation

package enum ReportHTML {
    /// The page for `markdown`, whose figures are the SVG texts `figures[name]`.
    package static func page(title: String, markdown: String, figures: [String: String]) -> String {
        var body = "", paragraph: [String] = [], list: [(depth: Int, text: String)] = []
        var lines = markdown.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        func flush() {
            if !paragraph.isEmpty { body += "<p>" + inline(paragraph.joined(separator: " ")) + "</p>\n"; paragraph = [] }
            if !list.isEmpty { body += renderList(list); list = [] }
        }
        while let line = lines.popFirst() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { flush(); continue }
            if let level = heading(line) {
                flush()
                let text = String(line.dropFirst(level + 1))
                body += "<h\(level) id=\"\(anchor(text))\">\(inline(text))</h\(level)>\n"
            } else if line.hasPrefix("|") {
                flush()
                var rows = [line]
                while let next = lines.first, next.hasPrefix("|") { rows.append(next); lines.removeFirst() }
                body += table(rows)
            } else if let (caption, name) = figure(trimmed) {
                flush()
                let svg = figures[name].map(stripProlog) ?? "<p class=\"missing\">figure \(escape(name)) not found</p>"
                body += "<figure id=\"\(anchor(name))\">\(svg)<figcaption>\(inline(caption))</figcaption></figure>\n"
            } else if let item = listItem(line) {
                if !paragraph.isEmpty { flush() }
                list.append(item)
            } else if !list.isEmpty, line.hasPrefix(" ") {
                list[list.count - 1].text += " " + trimmed          // a list item's continuation line
            } else {
                if !list.isEmpty { flush() }
                paragraph.append(trimmed)
            }
        }
        flush()
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title))</title>
            <style>\(style)</style></head>
            <body><main>
            \(body)</main>
            <script>\(script)</script>
            </body></html>

            """
    }

    /// 1...3 for "# ", "## ", "### ".
    static func heading(_ line: String) -> Int? {
        (1...3).first { line.hasPrefix(String(repeating: "#", count: $0) + " ") }
    }

    /// "- text" at an indentation of 2 spaces per level.
    static func listItem(_ line: String) -> (depth: Int, text: String)? {
        let spaces = line.prefix { $0 == " " }.count
        let rest = line.dropFirst(spaces)
        guard rest.hasPrefix("- ") else { return nil }
        return (spaces / 2, String(rest.dropFirst(2)))
    }

    static func renderList(_ items: [(depth: Int, text: String)]) -> String {
        var html = "", depth = -1
        for item in items {
            if item.depth > depth { html += String(repeating: "<ul>", count: item.depth - depth) }
            else { html += "</li>" + String(repeating: "</ul></li>", count: depth - item.depth) }
            html += "<li>" + inline(item.text)
            depth = item.depth
        }
        return html + "</li>" + String(repeating: "</ul></li>", count: depth) + "</ul>\n"
    }

    /// [![caption](name.svg)](name.svg): (caption, name).
    static func figure(_ line: String) -> (String, String)? {
        guard line.hasPrefix("[!["), line.hasSuffix(")"), let close = line.range(of: "]("),
              let end = line[close.upperBound...].firstIndex(of: ")") else { return nil }
        let caption = String(line[line.index(line.startIndex, offsetBy: 3)..<close.lowerBound])
        let name = String(line[close.upperBound..<end])
        return name.hasSuffix(".svg") ? (caption, name) : nil
    }

    static func stripProlog(_ svg: String) -> String {
        guard svg.hasPrefix("<?xml"), let end = svg.range(of: "?>") else { return svg }
        return String(svg[end.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A markdown table's rows: the first is the header, the second the alignment row. A column
    /// aligned right, or whose every filled cell starts with a number, is numeric (right-aligned).
    static func table(_ rows: [String]) -> String {
        let cells = rows.map(split)
        guard cells.count >= 2 else { return "<p>" + inline(rows.joined(separator: " ")) + "</p>\n" }
        let body = cells.dropFirst(2)
        let right = cells[1].indices.map { i in
            let filled = body.compactMap { i < $0.count ? $0[i] : nil }.filter { !["", "–", "-", "n/a"].contains($0) }
            return cells[1][i].hasSuffix(":") || !filled.isEmpty && filled.allSatisfy(startsWithNumber)
        }
        func row(_ r: [String], _ tag: String) -> String {
            "<tr>" + r.enumerated().map { i, c in
                "<\(tag)\(i < right.count && right[i] ? " class=\"num\"" : "")>\(inline(c))</\(tag)>"
            }.joined() + "</tr>\n"
        }
        return "<div class=\"table\"><table>\n<thead>" + row(cells[0], "th") + "</thead>\n<tbody>\n"
            + body.map { row($0, "td") }.joined() + "</tbody></table></div>\n"
    }

    /// "12", "+0.5 [...]", "−3.1", "**4**": a number first (signs, a minus sign, bold marks skipped).
    static func startsWithNumber(_ s: String) -> Bool {
        s.drop { "+-−* ".contains($0) }.first?.isNumber == true
    }

    /// The cells of "| a | b \\| c |": ["a", "b | c"] (the report escapes a cell's "|" as "\\|").
    static func split(_ row: String) -> [String] {
        let bar = "\u{1}"
        return row.replacingOccurrences(of: "\\|", with: bar).split(separator: "|", omittingEmptySubsequences: false)
            .dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: bar, with: "|") }
    }

    /// Escaped text with `code`, **bold** and [text](target) (a figure's target: its place on the page).
    static func inline(_ s: String) -> String {
        var out = "", rest = Substring(s)
        while let tick = rest.firstIndex(of: "`") {
            out += spans(String(rest[..<tick]))
            let after = rest[rest.index(after: tick)...]
            guard let close = after.firstIndex(of: "`") else { out += spans(String(rest[tick...])); return out }
            out += "<code>" + escape(String(after[..<close])) + "</code>"
            rest = after[after.index(after: close)...]
        }
        return out + spans(String(rest))
    }

    /// **bold** and [text](target) in text without code spans.
    static func spans(_ s: String) -> String {
        var out = escape(s)
        var bold = false
        while let r = out.range(of: "**") {
            out.replaceSubrange(r, with: bold ? "</strong>" : "<strong>")
            bold.toggle()
        }
        if bold { out += "</strong>" }
        var result = "", last = out.startIndex
        for m in link.matches(in: out, range: NSRange(out.startIndex..., in: out)) {
            let whole = Range(m.range, in: out)!, text = Range(m.range(at: 1), in: out)!, target = String(out[Range(m.range(at: 2), in: out)!])
            result += out[last..<whole.lowerBound]
            let href = target.hasSuffix(".svg") ? "#" + anchor(target) : target
            result += "<a href=\"\(href)\">\(out[text])</a>"
            last = whole.upperBound
        }
        return result + out[last...]
    }

    /// [text](target), target without spaces or parentheses (compiled once: spans runs per table cell).
    static let link = try! NSRegularExpression(pattern: #"\[([^\]]+)\]\(([^()\s]+)\)"#)

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// An id for a heading or figure: lowercase letters, digits and dashes.
    static func anchor(_ s: String) -> String {
        var out = "", dash = false
        for ch in s.lowercased() {
            if ch.isLetter && ch.isASCII || ch.isNumber && ch.isASCII { out.append(ch); dash = false }
            else if !dash && !out.isEmpty { out.append("-"); dash = true }
        }
        return dash ? String(out.dropLast()) : out
    }

    static let style = """
        body{font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d1d1f;margin:0;background:#fff}
        main{max-width:1200px;margin:0 auto;padding:16px 24px 64px}
        h1{font-size:26px;margin:16px 0 8px}h2{font-size:21px;margin:32px 0 8px;border-bottom:1px solid #ddd}h3{font-size:17px;margin:24px 0 6px}
        code{font:13px ui-monospace,Menlo,Consolas,monospace;background:#f3f3f3;padding:0 3px;border-radius:3px}
        div.table{overflow-x:auto;margin:8px 0 16px}
        table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #d0d0d0;padding:3px 7px;vertical-align:top}
        th{background:#f4f4f6;position:sticky;top:0;cursor:pointer;user-select:none}th:hover{background:#e8e8ee}
        th[data-sort=asc]::after{content:" \\25B2"}th[data-sort=desc]::after{content:" \\25BC"}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}tbody tr:nth-child(even){background:#fafafa}
        figure{margin:16px 0}figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}
        .missing{color:#b00}
        """

    /// Click a column header: sort the table's rows by that column (numbers by value, leading
    /// number of the cell; other cells as text), again to reverse.
    static let script = """
        document.querySelectorAll('table').forEach(function (t) {
          var head = t.tHead.rows[0].cells;
          Array.prototype.forEach.call(head, function (th, i) {
            th.addEventListener('click', function () {
              var dir = th.dataset.sort === 'asc' ? 'desc' : 'asc';
              Array.prototype.forEach.call(head, function (h) { delete h.dataset.sort; });
              th.dataset.sort = dir;
              var key = function (r) {
                var s = r.cells[i] ? r.cells[i].textContent.trim() : '';
                var m = s.replace('\\u2212', '-').match(/^[+-]?\\d[\\d,]*(\\.\\d+)?(e[+-]?\\d+)?/i);
                return m ? parseFloat(m[0].replace(/,/g, '')) : s;
              };
              var rows = Array.prototype.slice.call(t.tBodies[0].rows);
              rows.sort(function (a, b) {
                var x = key(a), y = key(b);
                var c = typeof x === 'number' && typeof y === 'number' ? x - y
                      : typeof x === 'number' ? -1 : typeof y === 'number' ? 1 : String(x).localeCompare(String(y));
                return dir === 'asc' ? c : -c;
              });
              rows.forEach(function (r) { t.tBodies[0].appendChild(r); });
            });
          });
        });
        document.body.dataset.ready = '1';
        """
}
