#!/usr/bin/env bash
# Quick start, part 1: dependencies, a build into build/, and the demo (tools/demo.sh).
# Needs root (packages, network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
MPUDP_BUILD=$PWD/build exec tools/demo.sh
