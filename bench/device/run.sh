#!/usr/bin/env bash
# bench/audit.ts on the `device` machine (bench/README.md, "On a GPU and on many cores"): the
# target's two cases on its GPU through ONNX Runtime's WebGPU provider (Vulkan; onnxruntime-node's
# CUDA provider cannot be installed there) and on its CPU cores. Needs .device/ from
# `node bench/device/pack.mjs`, carried along:
#
#   device run: command "bash bench/device/run.sh", carry [".device"], timeout_s 600
#
# Everything printed goes to $OUT/log.txt; ONNX Runtime's placement of each node to
# $OUT/placement.txt; the reports of the MNIST and CIFAR audits to $OUT/<device>/<case>-report.json
# (bench/compare-reports.ts compares them). The device tool brings back 8 files at most. Each run
# has a time limit of its own (timeout), so a slow one leaves the next its turn; the GPU comes first.
set -uo pipefail
. "$(dirname "$0")/setup.sh" log.txt

# Which provider runs which nodes of the composed sessions (ONNX Runtime's verbose log, placement
# lines only), on two MNIST images: the float mnist-8, whose views and model should all be on the
# GPU. It is also the check that WebGPU starts at all: if it fell back, the WebGPU runs are skipped.
echo "=== webgpu-placement ($(date +%T))"
# (the log goes to a file first: through a pipe, the end of ORT's log can be lost, README "GPU")
(cd "$B" && SKEPTIC_ORT_LOG=0 timeout -k 5 45 ./node bench-audit.js --case mnist --mnist 2 --device webgpu --fixtures fixtures) >"$WORK/ort.log" 2>&1
grep -E 'VerifyEachNodeIsAssignedToAnEp|fell back|^mnist|adapter|Error|error' "$WORK/ort.log" >"$OUT/placement.txt"
head -c 3000 "$OUT/placement.txt"
gpu=1
grep -q 'fell back: webgpu' "$OUT/placement.txt" && gpu=0
grep -q '^mnist' "$OUT/placement.txt" || gpu=0
echo "webgpu usable: $gpu"

# Each case interleaved (bench/README, twentieth pass) and three times, so that the first (cold)
# audit and the warm ones show apart; the GPU first
if [ $gpu = 1 ]; then
  # the target's MNIST case, with the model's own floor on the GPU (a large batch) beside it
  run webgpu-mnist 100 webgpu mnist --interleave --repeat 3 --bare-batch 1024 --save "$OUT/webgpu"
fi
# the CPU's 16 cores, the target's two cases (the MNIST report is what the GPU's is compared with)
run cpu-mnist 60 cpu mnist --interleave --repeat 3 --save "$OUT/cpu"
run cpu-imagenet 150 cpu imagenet --interleave --repeat 3
# whole audits of alternate batches in lanes against one audit, on the 16 cores: the view nodes
# gain little from more intra-op threads (bench/README, nineteenth pass), lanes might
echo "=== cpu-imagenet-lanes ($(date +%T))"
(cd "$B" && timeout -k 5 150 ./node bench-audit-lanes.js --case imagenet --lanes 1,2,4 --lane-threads 4 --lane-view-workers 2 --repeat 2 --fixtures fixtures)
echo "exit $? (cpu-imagenet-lanes)"
if [ $gpu = 1 ]; then
  # MobileNetV2-int8's quantized nodes have no WebGPU kernels (bench/README, eighteenth pass): the
  # float MobileNetV2 (bench/device/export-float.py) stands for the ImageNet case on the GPU
  echo "=== export ($(date +%T))"
  timeout -k 5 60 python3 bench/device/export-float.py "$WORK/float" mobilenet_v2
  [ -f "$WORK/float/mobilenet_v2.onnx" ] && run webgpu-mobilenet_v2 100 webgpu imagenet --model "$WORK/float/mobilenet_v2.onnx" --interleave --repeat 2 --bare-batch 256
  # a float model at CIFAR size (outside the target)
  run webgpu-cifar 40 webgpu cifar --save "$OUT/webgpu"
fi
run cpu-cifar 40 cpu cifar --save "$OUT/cpu"
# whether this machine's Python has ONNX Runtime's CUDA provider (onnxruntime-node's cannot be
# installed here): a look only
echo "=== cuda provider libraries"
timeout 10 find /opt /usr/local /usr/lib -name 'libonnxruntime_providers_*.so' 2>/dev/null | head -5
echo "=== done ($(date +%T))"
rm -rf "$WORK"
