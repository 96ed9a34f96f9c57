#!/usr/bin/env bash
# Wheels for the device machine (no package registry there) into .gpu_wheels/, carried with the
# working tree. av ships manylinux_2_28 wheels, hence both platform tags.
set -euo pipefail
cd "$(dirname "$0")/.."
pip download --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu_wheels -r benchmarks/gpu_wheels.txt
