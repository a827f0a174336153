#!/usr/bin/env bash
# Runs the whole suite (unit, then end-to-end as root in throwaway network namespaces) and ends with
# one line "N passed, N failed" counting assertions.
set -uo pipefail
cd "$(dirname "$0")/.."
npm run build --silent || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
suites=(test/unit)
if [ "$(id -u)" = 0 ]; then suites+=(test/e2e); else echo "not root: skipping test/e2e (network namespaces need root)"; fi
# The IPVS suites run in a qemu VM (test/vm/). With root and qemu here, a VM that cannot boot is a
# failure, not a skip; without them the VM tests say so and count as skipped.
if [ -z "${FERRY_VM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v qemu-system-x86_64 >/dev/null; then export FERRY_VM=1
  else echo "no root or no qemu-system-x86_64: the IPVS VM tests are skipped"; fi
fi
# Namespaces that were here before the run are not the suite's to count (a developer's own, say).
ns_before=$(ip netns list 2>/dev/null | awk '/^fy/{print $1}' | sort)
npx tap --reporter=tap "${suites[@]}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$out" | tail -1)
total=$(sed -E 's/.*total: ([0-9]+).*/\1/' <<<"$summary")
fail=$(grep -oE 'fail: [0-9]+' <<<"$summary" | grep -oE '[0-9]+' || true)
pass=$(grep -oE 'pass: [0-9]+' <<<"$summary" | grep -oE '[0-9]+' || true)
fail=${fail:-0}; pass=${pass:-0}
if [ -z "$total" ] || [ "$total" = 0 ]; then fail=$((fail + 1)); fi
if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then fail=1; fi
# The failing assertions again at the end, each with its diagnostics, so a truncated log still names them.
if [ "$fail" != 0 ]; then
  echo "failing assertions:"
  awk '/^[[:space:]]*not ok /{p=1; n=0} p{print; n++} p&&/^[[:space:]]*\.\.\.$/{p=0} n>40{p=0}' "$out" | head -200
fi
ns_after=$(ip netns list 2>/dev/null | awk '/^fy/{print $1}' | sort)
leaked=$(comm -13 <(echo "$ns_before") <(echo "$ns_after") | grep . || true)
if [ -n "$leaked" ]; then
  echo "error: $(wc -l <<<"$leaked") test network namespace(s) left behind: $(tr '\n' ' ' <<<"$leaked")"
  fail=$((fail + 1))
  while read -r ns; do ip netns del "$ns" 2>/dev/null || true; done <<<"$leaked"
fi
skip=$(grep -oE 'skip: [0-9]+' <<<"$summary" | grep -oE '[0-9]+' || true)
[ -z "$skip" ] || echo "${skip} skipped (each skip above says why)"
echo "${pass} passed, ${fail} failed"
[ "$fail" = 0 ]
