#!/bin/bash
# Submits a sharded Skeptic audit: N array tasks, then the merge once all of them succeeded.
#
#   MODEL=/shared/model.onnx DATA=/shared/val SHARDS_DIR=/shared/run1/shards \
#   REPORT_DIR=/shared/run1/report N=16 SKEPTIC_AUDIT_ARGS="--probes clean,shift,corruptions" \
#     deploy/slurm/submit.sh [extra sbatch options, e.g. --partition=cpu --account=lab]
#
# Prints the two job ids. Everything in the environment reaches the jobs (--export=ALL).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
N=${N:-8}
: "${SHARDS_DIR:?set SHARDS_DIR}" "${REPORT_DIR:?set REPORT_DIR}"
mkdir -p "$SHARDS_DIR"
# Logs go beside the shard results unless the caller chose (sbatch's own --output wins).
shards=$(sbatch --parsable --export=ALL --array="0-$((N - 1))" --output="$SHARDS_DIR/skeptic-shard-%A_%a.log" "$@" "$here/skeptic-shards.sbatch")
shards=${shards%%;*}
merge=$(sbatch --parsable --export=ALL --dependency="afterok:$shards" --output="$SHARDS_DIR/skeptic-merge-%j.log" "$@" "$here/skeptic-merge.sbatch")
merge=${merge%%;*}
echo "shards: job $shards (array 0-$((N - 1))); merge: job $merge (after all shards succeed)"
echo "$shards $merge" >"$SHARDS_DIR/slurm-jobs"
