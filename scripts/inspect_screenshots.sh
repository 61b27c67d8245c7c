#!/usr/bin/env bash
# The pictures of llm-inspect in docs/inspect.md: bash scripts/inspect_screenshots.sh RUN/export [REAL_BASE]
# RUN/export: a default-recipe run's export; REAL_BASE: a real pretrained model (default: the built-in
# smollm2-135m-instruct). Screenshots of the pages in Debian's headless chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
export_dir=${1:?give the export folder of a default-recipe run}
real=${2:-smollm2-135m-instruct}
out=$(mktemp -d)
printf '%s\n' "HAMLET." "To be, or not to be, that is the question:" "Whether 'tis nobler in the mind to suffer" \
  "The slings and arrows of outrageous fortune," "Or to take arms against a sea of troubles" > "$out/text.txt"
shot() {  # page, picture, width, height
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$3,$4" \
    --screenshot="$PWD/docs/$2" "file://$1" 2>/dev/null
}
.venv/bin/llm-inspect model_path="$export_dir" out="$out/default" text_file="$out/text.txt"
shot "$out/default/surprisal.html" surprisal.png 1100 420
shot "$out/default/attention.html" attention.png 1100 520
shot "$out/default/logit_lens.html" logit_lens.png 1400 330
.venv/bin/llm-inspect model_path="$real" out="$out/real" text_file="$out/text.txt" 'views.layers=[0,5,10,15,20,25,29]'
shot "$out/real/attention.html" attention_smollm2.png 1100 560
shot "$out/real/logit_lens.html" logit_lens_smollm2.png 1400 420
echo "docs/{surprisal,attention,logit_lens,attention_smollm2,logit_lens_smollm2}.png from $out"
