#!/usr/bin/env bash
# Float ImageNet models on the `device` machine's GPU (WebGPU) and CPU (bench/README.md, "On a GPU
# and on many cores"): the fixtures' MobileNetV2 is int8, which WebGPU cannot run, so this exports
# torchvision's MobileNetV2 and ResNet-50 there (bench/device/export-float.py, random weights) and
# audits the 100 ImageNet samples with each, beside bare loops at batch 32 and other batches (on a
# GPU, the cost of a pass depends on the batch), and with the model in slices of about 25 rows
# inside each composed run. Needs .device/ as run.sh does:
#
#   device run: command "bash bench/device/float.sh", carry [".device"], timeout_s 600
#
# Output to $OUT/float.txt; MobileNetV2's reports on each provider to $OUT/<run>/imagenet-report.json.
set -uo pipefail
. "$(dirname "$0")/setup.sh" float.txt

echo "=== export ($(date +%T))"
timeout -k 5 60 python3 bench/device/export-float.py "$WORK/float" mobilenet_v2 resnet50
m="$WORK/float"
# In order of what decides most, each under its own limit (a call that runs out still brings back
# the log so far). ORT's WebGPU kernels cost more a pass at batch 256 than at 32 (bench/README,
# nineteenth pass): the bare loops at 16, 43 and 76 rows (43 and 76: the shift and corruption
# runs' rows) map that, and --chunk-rows 25 runs the model inside each composed run in slices of
# about 25 rows instead of whole.
if [ -f "$m/mobilenet_v2.onnx" ]; then
  run webgpu-mobilenet_v2 70 webgpu imagenet --model "$m/mobilenet_v2.onnx" --bare-batch 16,43,76 --save "$OUT/webgpu-mobilenet_v2"
  run webgpu-mobilenet_v2-chunks-25 40 webgpu imagenet --model "$m/mobilenet_v2.onnx" --chunk-rows 25
fi
# MNIST on the GPU in runs of up to 64 images' views (4,864 passes) instead of ~1,300: on WebGPU
# each node of a run is a dispatch, and MNIST's audit was 5.7× its floor with the cores idle
run webgpu-mnist-run-passes-4864 30 webgpu mnist --run-passes 4864
if [ -f "$m/resnet50.onnx" ]; then
  run webgpu-resnet50 90 webgpu imagenet --model "$m/resnet50.onnx" --bare-batch 43,76
  run webgpu-resnet50-chunks-25 60 webgpu imagenet --model "$m/resnet50.onnx" --chunk-rows 25
fi
# the target's MNIST case on the GPU with its floor (a large batch); the CPU's MobileNetV2 report
run webgpu-mnist 30 webgpu mnist --bare-batch 1024
[ -f "$m/mobilenet_v2.onnx" ] && run cpu-mobilenet_v2 90 cpu imagenet --model "$m/mobilenet_v2.onnx" --save "$OUT/cpu-mobilenet_v2"
echo "=== done ($(date +%T))"
rm -rf "$WORK"
