#!/usr/bin/env bash
# Debian packages the build and the tests need. Run it as root, or as a
# user with sudo: it then re-runs itself through sudo (a root shell in a
# minimal container has no sudo, so it is never a requirement there).
#   tools/install-deps.sh          build + every test (Vulkan on lavapipe, GIMP, Krita,
#                                  clang + libFuzzer for tools/fuzz.sh)
#   tools/install-deps.sh --build  only what building and generating need
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -- "$BASH" "$0" "$@"
  fi
  echo "tools/install-deps.sh: installing packages needs root: run it as root, or install sudo" >&2
  exit 1
fi
build=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libpng-dev
       libjpeg62-turbo-dev libstb-dev libyaml-dev zlib1g-dev libssl-dev
       glslc libvulkan-dev libmicrohttpd-dev)
tests=(mesa-vulkan-drivers vulkan-validationlayers
       gimp libgimp2.0-dev krita python3-pyqt5 python3 python3-pil python3-numpy
       clang libclang-rt-14-dev curl)
pkgs=("${build[@]}")
[ "${1:-}" = "--build" ] || pkgs+=("${tests[@]}")
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
