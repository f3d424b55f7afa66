#!/usr/bin/env bash
# End to end on CPU: build expert data, init a tiny model, SFT it, evaluate it and the random floor.
# Prints wall time per stage and the machine load. Usage: bash benchmarks/e2e_agent_twc.sh [RECIPE]
set -euo pipefail
RECIPE=${1:-recipes/agent-twc.yaml}
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
stage() {  # stage NAME CMD...
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@"
  local t1=$(date +%s.%N)
  printf '[e2e] %-12s %6.1f s   load %s\n' "$name" "$(echo "$t1 - $t0" | bc)" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
}
echo "[e2e] start, load $(cut -d' ' -f1-3 /proc/loadavg), $(getconf _NPROCESSORS_ONLN) cores" >&2
T0=$(date +%s.%N)
stage build      steca-data build "$RECIPE" -q
stage init-model steca-train init-model --recipe "$RECIPE"
stage sft        steca-train sft --recipe "$RECIPE" -q
stage eval-model steca-train eval --recipe "$RECIPE" -q
stage eval-rand  steca-train eval --recipe "$RECIPE" --policy random -q
printf '[e2e] total        %6.1f s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" >&2
