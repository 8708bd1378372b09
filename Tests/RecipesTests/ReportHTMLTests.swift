// `droplab report --html`: the report's markdown as one self-contained page. Its pieces against
// hand-written markdown; then a whole report (StudyReportTests' study, so that test class holds
// it) opened in headless Chromium: every table and figure there, nothing loaded from outside,
// and a click on a column header sorts the rows.

import Foundation
@testable import Recipes
import TestSupport
@testable import Viz
import XCTest

final class ReportHTMLTests: XCTestCase {
    func testMarkdownSubset() {
        XCTAssertEqual(ReportHTML.inline("a **b** `c|d*e` [x](y.svg) [z](https://w) <t>"),
                       ##"a <strong>b</strong> <code>c|d*e</code> <a href="#y-svg">x</a> <a href="https://w">z</a> &lt;t&gt;"##)
        XCTAssertEqual(ReportHTML.split(#"| a | b \| c | 1.5 |"#), ["a", "b | c", "1.5"])
        XCTAssertEqual(ReportHTML.anchor("Part 1: Pretraining & language"), "part-1-pretraining-language")
        XCTAssertEqual(["12", "+0.5 [0.1, 0.9]", "−3.1", "**4** x", "n/a", "–", "abc", ""].map(ReportHTML.startsWithNumber),
                       [true, true, true, true, false, false, false, false])
        let page = ReportHTML.page(title: "T", markdown: """
            # Title
            intro line one
            line two

            - item **one**
              - nested
            - item two
              continued

            | name | value |
            |---|---:|
            | a \\| b | 3 |

            [![A figure](f.svg)](f.svg)
            """, figures: ["f.svg": "<?xml version=\"1.0\"?>\n<svg width=\"1\" height=\"1\"></svg>"])
        XCTAssertTrue(page.contains(#"<h1 id="title">Title</h1>"#), page)
        XCTAssertTrue(page.contains("<p>intro line one line two</p>"), page)
        XCTAssertTrue(page.contains("<ul><li>item <strong>one</strong><ul><li>nested</li></ul></li><li>item two continued</li></ul>"), page)
        XCTAssertTrue(page.contains(#"<tr><td>a | b</td><td class="num">3</td></tr>"#), page)
        XCTAssertTrue(page.contains(#"<figure id="f-svg"><svg width="1" height="1"></svg><figcaption>A figure</figcaption></figure>"#), page)
        XCTAssertFalse(page.contains("<?xml"))
    }
}

extension StudyReportTests {
    /// The whole report of this class's study as a page.
    func testHTMLReportOpensInChromiumAndSorts() throws {
        let r = try recipe()
        try writeJobs(r)
        let out = try Report.build(r, runner: RecipeRunner(recipe: r, root: root, log: { _ in }), name: "r")
        let html = out.html
        XCTAssertTrue(loadsNothingFromOutside(html))
        let md = out.markdown.split(separator: "\n")
        XCTAssertEqual(html.components(separatedBy: "<table>").count - 1, md.filter { $0.hasPrefix("|--") }.count, "one table per markdown table")
        let figures = md.filter { $0.hasPrefix("[![") }.count
        XCTAssertGreaterThan(figures, 0)
        XCTAssertEqual(html.components(separatedBy: "<figure").count - 1, figures)
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, figures, "each figure's SVG inline")
        for h in md.filter({ $0.hasPrefix("## ") }) {
            XCTAssertTrue(html.contains(">" + ReportHTML.inline(String(h.dropFirst(3))) + "</h2>"), String(h))
        }

        // in Chromium: the script runs, and a click on a numeric column's header sorts its table
        let chromium = try Chromium(directory: dir)
        // a test script (not part of the page): sort the first table with a numeric column by it, twice, and record the orders
        let probe = """
            <script>
            var t = Array.prototype.find.call(document.querySelectorAll('table'), function (t) { return t.querySelector('th.num') && t.tBodies[0].rows.length > 2; });
            var th = t.querySelector('th.num'), i = th.cellIndex;
            var col = function () { return Array.prototype.map.call(t.tBodies[0].rows, function (r) { return parseFloat(r.cells[i].textContent.replace('\\u2212', '-')); }); };
            var sorted = function (v, s) { for (var k = 1; k < v.length; k++) if (!isNaN(v[k - 1]) && !isNaN(v[k]) && s * (v[k] - v[k - 1]) < 0) return false; return true; };
            th.click(); var up = sorted(col(), 1); th.click(); var down = sorted(col(), -1);
            document.body.dataset.sorted = up + ',' + down + ',' + th.dataset.sort;
            </script>
            """
        try html.replacingOccurrences(of: "</body>", with: probe + "</body>").write(toFile: dir + "/r.html", atomically: true, encoding: .utf8)
        let d = try chromium.run(["--dump-dom"], page: dir + "/r.html")
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertEqual(Chromium.consoleMessages(d), [], "console messages")
        XCTAssertTrue(d.stdout.contains(#"data-ready="1""#), "the page's script did not run to its end")
        XCTAssertTrue(d.stdout.contains(#"data-sorted="true,true,desc""#), String(d.stdout.prefix(400)))
    }
}
