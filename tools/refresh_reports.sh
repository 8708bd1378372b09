#!/bin/bash
# Refresh the committed study reports: add the job files of the studies given (default: the ones
# still running, facts and synthetic) finished in checkpoints/ to reports/<recipe>-jobs/, then
# regenerate every committed report from its job files alone, as CI does
# (CommittedReportTests), and drop the figures a report no longer draws. Commit reports/ after.
#
#   tools/refresh_reports.sh                # save facts and synthetic, regenerate all
#   tools/refresh_reports.sh synthetic      # save synthetic only
set -euo pipefail
cd "$(dirname "$0")/.."
droplab=.build/release/droplab
[ -x $droplab ] || { echo "refresh_reports: build first (make build)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
save=("$@"); [ ${#save[@]} -gt 0 ] || save=(facts synthetic)
for x in "${save[@]}"; do   # merges: copies of jobs finished on another machine stay
  $droplab report recipes/$x.toml --save-jobs --out reports > /dev/null
done
recipes=$(ls -d reports/*-jobs | sed 's|reports/||; s|-jobs$||')
for x in $recipes; do
  $droplab report recipes/$x.toml --root "$tmp/no-checkpoints" --jobs reports/$x-jobs --out "$tmp/$x" > /dev/null
  cp "$tmp/$x"/$x*.md "$tmp/$x"/$x*.svg reports/ 2>/dev/null || true
  for f in reports/$x-*.svg; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    # another recipe's figure (synthetic-tiny-* under synthetic-*)
    for y in $recipes; do [ "$y" != "$x" ] && [[ $b == $y-* ]] && continue 2; done
    [ -e "$tmp/$x/$b" ] || { git rm -q "$f" 2>/dev/null || rm -f "$f"; echo "removed $f (no longer drawn)"; }
  done
  echo "reports/$x.md: $(grep -o 'In short.*' reports/$x.md || echo 'no claims table')"
done
