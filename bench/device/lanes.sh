#!/usr/bin/env bash
# An audit in lanes (server/engine/shard/lanes.ts) on the `device` machine's 16 cores: the target's
# two cases in one lane (interleaved with the bare loop, as run.sh) and then in 2 and 4 lanes
# against the same bare loop; every report saved, so that bench/compare-reports.ts can check the
# lanes' reports against the one lane's (bench/README.md, twenty-second pass). Needs .device/ as
# run.sh does:
#
#   device run: command "bash bench/device/lanes.sh", carry [".device"], timeout_s 400
#
# Output to $OUT/lanes.txt, reports to $OUT/lanes/<case>-report.json and <case>-lanes-<N>-report.json.
set -uo pipefail
. "$(dirname "$0")/setup.sh" lanes.txt
run cpu-imagenet-lanes 200 cpu imagenet --interleave --repeat 2 --lanes 2,4 --save "$OUT/lanes"
run cpu-mnist-lanes 90 cpu mnist --interleave --repeat 2 --lanes 2,4 --save "$OUT/lanes"
echo "=== done ($(date +%T))"
rm -rf "$WORK"
