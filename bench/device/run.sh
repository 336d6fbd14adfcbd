#!/usr/bin/env bash
# bench/audit.ts on the `device` machine (bench/README.md, "On a GPU and on many cores"): the
# target's two cases on its CPU cores, then on its GPU through ONNX Runtime's WebGPU provider
# (Vulkan; onnxruntime-node's CUDA provider cannot be installed there). Needs .device/ from
# `node bench/device/pack.mjs`, carried along:
#
#   device run: command "bash bench/device/run.sh", carry [".device"], timeout_s 600
#
# Each run's output goes to $OUT/<name>.txt (cpu-mnist, webgpu-imagenet-20, webgpu-cifar, …), the machine to
# $OUT/machine.txt. A run that goes past its time is cut off (timeout) and the next one starts.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/skeptic-device-out}
mkdir -p "$OUT"
[ -f .device/skeptic-device.tar.xz ] || { echo "no .device/skeptic-device.tar.xz: run node bench/device/pack.mjs and carry .device" >&2; exit 2; }
WORK=$(mktemp -d)
tar -xJf .device/skeptic-device.tar.xz -C "$WORK"
B="$WORK/skeptic-device"

# The Vulkan loader, where the machine has none (the device tool's README: unpack into /)
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  for f in .device/gl/*.deb; do [ -f "$f" ] && dpkg -x "$f" /; done
  ldconfig 2>/dev/null || true
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES="$icd"

{
  echo "nproc $(nproc)"
  nvidia-smi -L 2>&1 || echo "nvidia-smi: none"
  ldconfig -p 2>/dev/null | grep libvulkan || echo "libvulkan: none"
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
  "$B/node" --version
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

run() { # name seconds device case [more flags]
  local name=$1 secs=$2 dev=$3 case=$4
  shift 4
  echo "=== $name"
  (cd "$B" && timeout "$secs" ./node bench-audit.js --case "$case" --device "$dev" --fixtures fixtures "$@") 2>&1 | tee "$OUT/$name.txt"
  echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/$name.txt"
}
# the CPU first (16 cores there), then the GPU: a small look at each case before the whole one,
# so that a slow provider still leaves numbers (the tool's limit is 600 s a command)
run cpu-mnist 50 cpu mnist
run cpu-imagenet 100 cpu imagenet
# which provider runs which nodes of the composed sessions (ONNX Runtime's verbose log, placement
# lines only): the float mnist-8, whose views and model should all be on the GPU
echo "=== webgpu-placement"
(cd "$B" && SKEPTIC_ORT_LOG=0 timeout 40 ./node bench-audit.js --case mnist --mnist 2 --device webgpu --fixtures fixtures) 2>&1 |
  grep -E 'VerifyEachNodeIsAssignedToAnEp|fell back|^mnist' >"$OUT/webgpu-placement.txt"
head -c 4000 "$OUT/webgpu-placement.txt"
run webgpu-mnist-200 60 webgpu mnist --mnist 200
# MobileNetV2-int8 on WebGPU: its quantized nodes have no WebGPU kernels (bench/README, eighteenth
# pass), so this measures the copies around them; a short look only
run webgpu-imagenet-20 80 webgpu imagenet --imagenet 20
run webgpu-mnist 110 webgpu mnist
# a float model at CIFAR size (not part of the target), on the CPU and on the GPU
run cpu-cifar 40 cpu cifar
run webgpu-cifar 90 webgpu cifar
rm -rf "$WORK"
