#!/usr/bin/env bash
# CI's new-user stage: what a plain `pip install lightning_llm` (no extras) gives, with an empty library cache and
# an empty Hugging Face home, run from a folder unrelated to the checkout. Each command must exit 0, write
# metrics.json with its figures and an export/ that transformers loads, and print no traceback and no warning of
# our Hydra plugin. pip's own cache is used (the point is our defaults, not the download speed); the built-in base
# is fetched and converted once here. Usage: bash scripts/new_user.sh [work folder]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
venv=$work/venv
fail() { echo "new-user check FAILED: $*" >&2; exit 1; }

SECONDS=0
python3 -m venv "$venv" || fail "python3 -m venv"
"$venv/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}" >"$work/pip.log" 2>&1 || fail "pip install torch ($work/pip.log)"
rm -rf "$root/build"  # setuptools builds in the checkout; a stale build/lib would ride into the wheel
"$venv/bin/pip" install -q "$root" >>"$work/pip.log" 2>&1 || fail "pip install of the project ($work/pip.log)"
for extra in peft accelerate gguf; do  # the defaults' needs arrive with the plain install ...
  "$venv/bin/python" -c "import $extra" 2>/dev/null || fail "a plain install lacks $extra"
done
for extra in optuna torchao onnxruntime lm_eval litdata; do  # ... and no extra rides along to hide a gap
  "$venv/bin/python" -c "import $extra" 2>/dev/null && fail "$extra is installed: the venv must have no extras"
done
echo "new user: venv with a plain install in ${SECONDS}s"

export LIGHTNING_LLM_CACHE=$work/cache HF_HOME=$work/hf WANDB_MODE=offline
mkdir -p "$work/elsewhere" && cd "$work/elsewhere" || exit 2

run() {  # run NAME KEYS... : llm-train from here into $work/NAME, its output checked
  local name=$1; shift
  local start=$SECONDS
  "$venv/bin/llm-train" hydra.run.dir="$work/$name" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  ((rc == 0)) || { tail -n 20 "$work/$name.log"; fail "llm-train $* exited $rc ($work/$name.log)"; }
  if grep -n "Traceback\|Error importing\|Plugin is incompatible\|UserWarning" "$work/$name.log"; then
    fail "llm-train $* printed the lines above"
  fi
  "$venv/bin/python" - "$work/$name" <<'PY' || fail "llm-train $*: metrics.json or export/ is not what a user gets"
import json, pathlib, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
run = pathlib.Path(sys.argv[1])
m = json.loads((run / "metrics.json").read_text())
assert m["steps"] > 0 and m["test"] and all(isinstance(v, float) for v in m["test"].values()), m
model = AutoModelForCausalLM.from_pretrained(run / "export")
tok = AutoTokenizer.from_pretrained(run / "export")
ids = tok("To be, or not to be", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=5, do_sample=False)
assert out.shape[1] > ids.shape[1]
print(f"  {run.name}: steps {m['steps']}, test {json.dumps({k: round(v, 4) for k, v in m['test'].items()})}")
PY
  echo "new user: llm-train $* passed in $((SECONDS - start))s"
}

run tiny recipe=tiny
# a fine-tuning recipe at its `auto` defaults (LoRA) from the built-in real base, two steps, a small evaluation
run qa recipe=qa init_from=smollm2-135m-instruct trainer.max_steps=2 trainer.val_check_interval=2 \
  trainer.limit_val_batches=2 'data.max_examples={train: 64, validation: 8, test: 8}' finetune.eval.max_examples=8 \
  finetune.forgetting.max_bytes=4000
# preference alignment at its `auto` defaults from the same base (converted once, above)
run dpo recipe=dpo init_from=smollm2-135m-instruct trainer.max_steps=2 trainer.val_check_interval=2 \
  'data.max_examples={train: 32, validation: 8, test: 8}' finetune.forgetting.max_bytes=4000
echo "new user: all passed in ${SECONDS}s"
