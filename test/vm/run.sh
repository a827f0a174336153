#!/usr/bin/env bash
# Runs a shell script inside ferry's test VM (a qemu guest with IPVS and friends; see README.md):
#   test/vm/run.sh SCRIPT [GUEST_PATH=HOST_FILE ...]     (SCRIPT may be - for stdin)
# Prints the script's output, exits with its status. The repository's ferry tree is at /ferry in the
# guest (run `npm run build` first for dist/). FERRY_VM_VERBOSE=1 shows the whole console,
# FERRY_VM_TIMEOUT_MS sets the script's limit (default 600000).
set -euo pipefail
cd "$(dirname "$0")/../.."
export TS_NODE_TRANSPILE_ONLY=1
exec node --no-warnings --import=@tapjs/typescript/import test/vm/cli.ts "$@"
