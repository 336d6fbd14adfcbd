#!/usr/bin/env bash
# `skeptic audit` as a user runs it, on the `device` machine's 16 cores: the default (`--lanes
# auto`, which should take 4 lanes there) against `--lanes 1`, on MobileNetV2-int8 and the 100
# ImageNet samples and on mnist-8 and 1,000 MNIST images, each timed, and the reports compared
# (bench/README.md, twenty-second pass). Needs .device/ as run.sh does:
#
#   device run: command "bash bench/device/lanes-cli.sh", carry [".device"], timeout_s 200
set -uo pipefail
. "$(dirname "$0")/setup.sh" lanes-cli.txt
cd "$B"
F=fixtures
audit() { # name, then skeptic audit's arguments
  local name=$1
  shift
  echo "=== $name ($(date +%T))"
  local t0=$(date +%s%N)
  timeout -k 5 120 ./node bin/skeptic.js audit "$@" --no-cache --out "$WORK/$name" >/dev/null
  echo "exit $? ($name): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
IMAGENET=("$F/models/imagenet_mobilenetv2-12-int8.onnx" --data "$F/imagenet_samples/labels.csv" --preprocess imagenet --labels "$F/labels/imagenet_1k_wnids_names.txt")
MNIST=("$F/models/mnist-8_onnxzoo_cntk.onnx" --data "$F/mnist" --preprocess unit --limit 1000)
audit imagenet-auto "${IMAGENET[@]}"
audit imagenet-1 "${IMAGENET[@]}" --lanes 1
audit mnist-auto "${MNIST[@]}"
audit mnist-1 "${MNIST[@]}" --lanes 1
# the reports apart from run (timings, lanes): the same
for c in imagenet mnist; do
  ./node -e "const fs=require('fs');const [a,b]=process.argv.slice(1);const r=(d)=>{const j=JSON.parse(fs.readFileSync(d+'/report.json'));const l=j.run.lanes;delete j.run;return [JSON.stringify(j),l]};const [x,y]=[r(a),r(b)];const same=['records.jsonl','findings.jsonl','images.jsonl'].filter(f=>fs.existsSync(a+'/'+f)).every(f=>fs.readFileSync(a+'/'+f).equals(fs.readFileSync(b+'/'+f)));console.log('$c: the same report.json apart from run', x[0]===y[0], '; the same jsonl files', same, '; lanes', JSON.stringify(x[1]), 'against', JSON.stringify(y[1]))" "$WORK/$c-auto" "$WORK/$c-1"
done
echo "=== done ($(date +%T))"
rm -rf "$WORK"
