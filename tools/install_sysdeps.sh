#!/usr/bin/env bash
# Installs the real importers used by the export tests (Blender 3.4 headless, assimp), headless
# Chromium (report.html test) and Mesa's Vulkan driver (open3d's offscreen renderer) from
# Debian's packages when they are missing. Needs root (CI runs as root); otherwise it says what to do.
set -u
need=()
command -v blender >/dev/null 2>&1 || need+=(blender)
command -v assimp >/dev/null 2>&1 || need+=(assimp-utils)
# headless Chromium opens report.html in the tests; Mesa's lavapipe lets open3d render without a GPU
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb xauth)  # a display for open3d's window test
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "note: ${need[*]} missing; run 'sudo apt-get install ${need[*]}' for the importer tests" >&2
  exit 0
fi
echo "installing ${need[*]} from Debian (once)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
  || echo "warning: could not install ${need[*]}" >&2
