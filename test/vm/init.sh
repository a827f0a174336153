#!/bin/sh
# PID 1 of ferry's test VM (test/vm/): mounts the basics, loads the kernel modules, runs the test
# script that the host appended under /ferry/.vm, prints an end marker with its exit status on the
# serial console, and powers the VM off. The host (test/vm/vm.ts) reads the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root FERRY_VM=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# ip netns bind-mounts under /run/netns: give it a real mount, not the initramfs root.
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
hostname ferry-vm
ip link set lo up

conf=/ferry/.vm
fail() { echo "ferry-vm: $*"; echo o >/proc/sysrq-trigger; }
[ -f "$conf/token" ] || fail "no run configuration under $conf (was the overlay archive appended?)"
token=$(cat "$conf/token")
limit=$(cat "$conf/timeout" 2>/dev/null || echo 600)

mods=/etc/ferry-vm/modules
[ -f "$conf/modules" ] && mods=$conf/modules
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up)
# One process for all modules: a process start costs 50-200 ms under emulation.
# shellcheck disable=SC2046
[ -s "$mods" ] && modprobe -a $(cat "$mods") 2>&1 | sed 's/^/ferry-vm: /'
for m in $(cat "$mods"); do [ -d "/sys/module/$m" ] || echo "ferry-vm: module $m did not load"; done
# Kernel chatter off the console, so the script's output stays clean (dmesg still has it).
dmesg -n 1
echo "ferry-vm: kernel $(uname -r) up at ${t0}s, modules loaded at $(up)s"

echo "FERRY-VM-BEGIN $token"
cd /ferry
sh "$conf/script.sh" </dev/null 2>&1 &
pid=$!
# Watchdog: the script gets `limit` seconds, then TERM, then KILL.
( sleep "$limit"; : >/tmp/ferry-vm-timeout; kill -TERM "$pid" 2>/dev/null; sleep 2; kill -KILL "$pid" 2>/dev/null ) &
dog=$!
wait "$pid"
rc=$?
kill "$dog" 2>/dev/null
if [ -f /tmp/ferry-vm-timeout ]; then echo "ferry-vm: script timed out after ${limit}s"; rc=124; fi
# The newline first: the script's output may not end with one. The host drops it again.
printf '\nFERRY-VM-END %s rc=%d\n' "$token" "$rc"
sync
poweroff -f
echo o >/proc/sysrq-trigger
