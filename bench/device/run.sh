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

if [ $gpu = 1 ]; then
  run webgpu-mnist 110 webgpu mnist --save "$OUT/webgpu"
  # a float model at CIFAR size (not part of the target)
  run webgpu-cifar 60 webgpu cifar --save "$OUT/webgpu"
fi
# the CPU's 16 cores, the same cases (their reports are what the GPU's are compared with)
run cpu-mnist 40 cpu mnist --save "$OUT/cpu"
run cpu-imagenet 70 cpu imagenet
run cpu-cifar 40 cpu cifar --save "$OUT/cpu"
if [ $gpu = 1 ]; then
  # the CPU-made inputs may set a GPU audit's pace: more views workers than the default half
  SKEPTIC_VIEW_WORKERS=14 run webgpu-mnist-14-workers 70 webgpu mnist
  # MobileNetV2-int8 on WebGPU: its quantized nodes have no WebGPU kernels (bench/README, eighteenth
  # pass), so this measures the copies around them; a short look only
  run webgpu-imagenet-20 50 webgpu imagenet --imagenet 20
fi
# whether this machine's Python has ONNX Runtime's CUDA provider (onnxruntime-node's cannot be
# installed here): a look only
echo "=== cuda provider libraries"
timeout 10 find /opt /usr/local /usr/lib -name 'libonnxruntime_providers_*.so' 2>/dev/null | head -5
echo "=== done ($(date +%T))"
rm -rf "$WORK"
