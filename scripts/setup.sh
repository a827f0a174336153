#!/usr/bin/env bash
# Installs everything ferry's tests, demo and benches use on a fresh Debian 12 machine, then the
# npm dependencies and the build. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(iptables nftables ipset conntrack iproute2 curl iputils-ping dnsutils etcd-server etcd-client procps python3 systemd openssl)
# The IPVS test VM (test/vm/): qemu under TCG, ipvsadm as the tests' witness, cpio for its image. Its
# kernel and busybox are fetched by test/vm/build-image.sh with apt-get download, so the apt lists
# must exist even when every package above is installed already.
PKGS+=(qemu-system-x86 ipvsadm cpio)
# DNS: nsd and unbound are the tests' other DNS servers (unbound the forwarder's upstream, resolving
# from nsd) and the peers of bench/dns-*.sh; dnsperf drives those benches.
PKGS+=(nsd unbound dnsperf)
# CNI: podman (runc, CNI backend) drives ferry-cni in the tests; the reference plugins are the bench's
# peer and portmap chains after ferry-cni; busybox-static fills the test containers' rootfs.
PKGS+=(podman runc containernetworking-plugins busybox-static)
# bench/overlay-throughput.ts: iperf3 between pods (Debian's package does not start its daemon by default).
PKGS+=(iperf3)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ] || ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  [ "${#missing[@]}" = 0 ] || apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package starts a system etcd; ferry's tests start their own on free ports.
# nsd and unbound would hold port 53 the same way.
for svc in etcd nsd unbound; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then systemctl stop "$svc" || true; fi
done
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
