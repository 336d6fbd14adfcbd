# Sourced by bench/device/run.sh and float.sh with the log's file name: goes to the repository's
# root; sends everything printed to $OUT/<log> as well (OUT: the device tool's folder, or
# /tmp/skeptic-device-out); unpacks .device/ (bench/device/pack.mjs) into $WORK, with $B the
# bundle's folder; installs the Vulkan loader and GL libraries where the machine lacks them; points
# the loader at NVIDIA's driver; describes the machine; defines run (one bench/audit.ts run under a
# time limit).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/skeptic-device-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/$1") 2>&1
[ -f .device/skeptic-device.tar.xz ] || { echo "no .device/skeptic-device.tar.xz: run node bench/device/pack.mjs and carry .device" >&2; exit 2; }
WORK=$(mktemp -d)
tar -xJf .device/skeptic-device.tar.xz -C "$WORK"
B="$WORK/skeptic-device"

# The Vulkan loader and the GL libraries NVIDIA's driver loads, each only where the machine lacks
# it (the device tool's README: unpack into /)
for f in .device/gl/*.deb; do
  [ -f "$f" ] || continue
  lib=$(dpkg-deb -c "$f" | awk '{print $6}' | grep -o '[^/]*\.so\.[0-9]*$' | head -1)
  if [ -n "$lib" ] && ! ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$lib "; then
    dpkg -x "$f" / && echo "unpacked $(basename "$f") (for $lib)"
  fi
done
ldconfig 2>/dev/null || true
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then
  export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
  egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
fi

echo "=== machine"
echo "nproc $(nproc)"
nvidia-smi -L 2>&1 || echo "nvidia-smi: none"
nvidia-smi --query-gpu=driver_version,clocks.sm,memory.used --format=csv 2>&1 | tail -1
ldconfig -p 2>/dev/null | grep -E 'libvulkan|libGLdispatch|libGLX_nvidia' || echo "libvulkan: none"
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
if [ -f "$icd" ]; then
  cat "$icd"
  so=$(grep -o '"library_path"[^,]*' "$icd" | grep -o '[^"]*\.so[^"]*' | head -1)
  path=$(ldconfig -p | grep -m1 "$so" | awk '{print $NF}')
  if [ -n "$path" ]; then
    echo "ICD library $path; its libraries not found, and libGLdispatch:"
    ldd "$path" | grep -E 'not found|GLdispatch'
  else
    echo "ICD library $so: not found by ldconfig"
  fi
fi
"$B/node" --version

run() { # name seconds device case [more flags]; env before it applies
  local name=$1 secs=$2 dev=$3 case=$4
  shift 4
  echo "=== $name ($(date +%T))"
  (cd "$B" && timeout -k 5 "$secs" ./node bench-audit.js --case "$case" --device "$dev" --fixtures fixtures "$@")
  echo "exit $? ($name)"
}
