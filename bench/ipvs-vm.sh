#!/usr/bin/env bash
# IPVS mode's start-up and edit latency, measured inside the test VM (this host has no IPVS):
#   npm run build && bench/ipvs-vm.sh [1000,10000] [--edits 7] [--log] [--profile] [--node-flags=F,G]
# Root and qemu-system-x86 needed (scripts/setup.sh installs it). See bench/vm/ipvs-guest.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
export FERRY_VM_TIMEOUT_MS=${FERRY_VM_TIMEOUT_MS:-3600000}
# Two vCPUs (multi-threaded TCG): the guest script polls the kernel every 2 ms for the edit timings, which
# on one vCPU takes the CPU ferryd needs. FERRY_VM_CPUS=1 gives the old single-vCPU figures.
export FERRY_VM_CPUS=${FERRY_VM_CPUS:-2}
# Quoted for the guest shell: --compare takes `|`.
printf 'node /ferry/ipvs-guest.mjs%s\n' "$(printf ' %q' "$@")" | exec test/vm/run.sh - ipvs-guest.mjs=bench/vm/ipvs-guest.mjs
