#!/usr/bin/env bash
# The pictures of llm-inspect in docs/inspect.md: bash scripts/inspect_screenshots.sh RUN/export
# (the default recipe's export; needs Debian's chromium for the page's screenshot).
set -euo pipefail
cd "$(dirname "$0")/.."
export_dir=${1:?give the export folder of a default-recipe run}
out=$(mktemp -d)
printf '%s\n' "HAMLET." "To be, or not to be, that is the question:" "Whether 'tis nobler in the mind to suffer" \
  "The slings and arrows of outrageous fortune," "Or to take arms against a sea of troubles" > "$out/text.txt"
.venv/bin/llm-inspect model_path="$export_dir" out="$out" text_file="$out/text.txt"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,420 \
  --screenshot="$PWD/docs/surprisal.png" "file://$out/surprisal.html" 2>/dev/null
cp "$out/attention_layer_03.png" docs/attention.png
cp "$out/logit_lens.png" docs/logit_lens.png
echo "docs/surprisal.png docs/attention.png docs/logit_lens.png from $out"
