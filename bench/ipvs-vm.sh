#!/usr/bin/env bash
# IPVS mode's start-up and edit latency, measured inside the test VM (this host has no IPVS):
#   npm run build && bench/ipvs-vm.sh [1000,10000] [--edits 7]
# Root and qemu-system-x86 needed (scripts/setup.sh installs it). See bench/vm/ipvs-guest.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
export FERRY_VM_TIMEOUT_MS=${FERRY_VM_TIMEOUT_MS:-3600000}
echo "node /ferry/ipvs-guest.mjs $*" | exec test/vm/run.sh - ipvs-guest.mjs=bench/vm/ipvs-guest.mjs
