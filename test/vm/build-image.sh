#!/usr/bin/env bash
# Finds or builds the test VM's base image: a Debian cloud kernel and a base initramfs (busybox, the
# netfilter/IPVS modules, and the host's node, iproute2, iptables, ipset, ipvsadm, conntrack, nft and
# curl with their libraries). Prints the image directory on the last line of stdout; progress goes to stderr.
#
# The image lives in $FERRY_VM_CACHE/<key>/ (default /var/cache/ferry-vm), where <key> hashes every
# input: the kernel package and version, this script, init.sh, modules.list and the path, size and
# mtime of every host file copied in. The kernel and busybox come from Debian packages fetched with
# apt-get download into $FERRY_VM_CACHE/debs (nothing is installed on the host). A changed input gives a new key and a fresh build. Builds run
# under a lock, into a temporary directory renamed into place, so concurrent callers are safe.
#
# The code under test is not in this image: test/vm/vm.ts appends it as a second archive per run.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${FERRY_VM_CACHE:-/var/cache/ferry-vm}
KERNEL_META=${FERRY_VM_KERNEL:-linux-image-cloud-amd64}
# Host programs copied into the guest (their ldd libraries come along).
TOOLS=(node ip ss ipvsadm ipset conntrack xtables-legacy-multi xtables-nft-multi nft curl)
# Kernel module directories copied whole (then closed over modules.dep); modules.list adds more.
MODDIRS=(kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter kernel/net/bridge)
KEEP_IMAGES=3

log() { echo "build-image: $*" >&2; }
die() { log "$*"; exit 1; }

for t in cpio flock sha256sum apt-get apt-cache dpkg ldd; do
  command -v "$t" >/dev/null || die "missing host tool: $t"
done
mkdir -p "$CACHE/debs"

# --- inputs -----------------------------------------------------------------------------------

# The metapackage names the real image package (linux-image-6.1.0-NN-cloud-amd64); its candidate
# version is the one to fetch. Without apt lists, fall back to the newest kernel already fetched.
# Busybox is Debian's dynamic build: busybox-static runs its own applets before searching PATH, so
# `ip` in a script would be busybox's (no netns), not iproute2's.
resolve_pkgs() {
  local pkg
  pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}') || true
  resolve_pkg "$pkg" 'linux-image-*'
  resolve_pkg busybox 'busybox_*'
}
resolve_pkg() {
  local ver deb
  if [ -n "$1" ]; then
    ver=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -n "$ver" ] && [ "$ver" != "(none)" ]; then echo "$1 $ver"; return; fi
  fi
  deb=$(ls -t "$CACHE"/debs/$2.deb 2>/dev/null | head -1) || true
  [ -n "$deb" ] || die "cannot resolve ${1:-$KERNEL_META} with apt-cache (run apt-get update) and no $2.deb is cached in $CACHE/debs"
  dpkg-deb -f "$deb" Package Version | awk '{print $2}' | paste -sd' '
}
# Fetches PKG=VER into the cache once (apt-get download writes to the current directory and _apt
# cannot write to a root-only cache, hence the detour through $TMP; its "unsandboxed" warning is
# expected) and unpacks it into DIR.
unpack_pkg() {
  local pkg=$1 ver=$2 dir=$3 deb
  deb="$CACHE/debs/${pkg}_${ver//:/%3a}_amd64.deb"
  if [ ! -f "$deb" ]; then
    log "downloading $pkg $ver"
    (cd "$TMP" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v unsandboxed >&2) || true
    mv "$TMP/${pkg}"_*.deb "$deb" 2>/dev/null || die "apt-get download $pkg=$ver failed"
  fi
  dpkg-deb -x "$deb" "$dir"
}

tool_path() { command -v "$1" || die "missing host tool $1 (see scripts/setup.sh)"; }

# Every host file the guest needs: the tools, their libraries, iptables' extensions (dlopen'ed, so
# ldd does not list them), iproute2's tables and netbase's protocol and service names.
collect_files() {
  local bins=() t f
  for t in "${TOOLS[@]}"; do bins+=("$(readlink -f "$(tool_path "$t")")"); done
  bins+=(/usr/lib/x86_64-linux-gnu/xtables/*.so)
  printf '%s\n' "${bins[@]}"
  # One ldd for all: it prints a "file:" header per file, then its libraries.
  ldd "${bins[@]}" 2>/dev/null | awk '/=> \// {print $3} /^[ \t]+\// {print $1}' || true
  find /etc/iproute2 -type f 2>/dev/null || true
  # getprotobyname/getservbyname: ipset cannot parse "tcp" without them.
  ls /etc/protocols /etc/services 2>/dev/null || true
}

# apt-cache and ldd take seconds on a busy machine, and this runs before every VM boot: both answers
# are remembered until their inputs change (the apt lists; the tools' own files).
MEMO="$CACHE/.memo"; mkdir -p "$MEMO"
PKGS_MEMO="$MEMO/pkgs-$KERNEL_META"
if ! [ -s "$PKGS_MEMO" ] || ! [ "$PKGS_MEMO" -nt /var/lib/apt/lists ] || ! [ "$PKGS_MEMO" -nt "$HERE/build-image.sh" ]; then
  (resolve_pkgs) >"$PKGS_MEMO.$$" || { rm -f "$PKGS_MEMO.$$"; exit 1; }
  mv "$PKGS_MEMO.$$" "$PKGS_MEMO"
fi
{ read -r KPKG KVER; read -r BBPKG BBVER; } <"$PKGS_MEMO"
tools_id=$( { sha256sum "$HERE/build-image.sh"; for t in "${TOOLS[@]}"; do stat -L -c '%n %s %Y' "$(tool_path "$t")"; done
              stat -c '%n %s %Y' /usr/lib/x86_64-linux-gnu/xtables/*.so; } | sha256sum | cut -c1-16)
FILES=()
[ -s "$MEMO/files-$tools_id" ] && mapfile -t FILES <"$MEMO/files-$tools_id"
if [ "${#FILES[@]}" = 0 ] || ! stat -L -c '' "${FILES[@]}" >/dev/null 2>&1; then
  mapfile -t FILES < <(collect_files | sort -u)
  printf '%s\n' "${FILES[@]}" >"$MEMO/files-$tools_id.$$" && mv "$MEMO/files-$tools_id.$$" "$MEMO/files-$tools_id"
fi

manifest() {
  echo "kernel $KPKG $KVER"
  echo "busybox $BBPKG $BBVER"
  (cd "$HERE" && sha256sum build-image.sh init.sh modules.list)
  echo "tools ${TOOLS[*]}"
  echo "moddirs ${MODDIRS[*]}"
  stat -L -c '%n %s %Y' "${FILES[@]}"
}
MANIFEST=$(manifest)
KEY=$(sha256sum <<<"$MANIFEST" | cut -c1-16)
IMAGE="$CACHE/$KEY"

if [ -f "$IMAGE/ready" ]; then touch "$IMAGE"; echo "$IMAGE"; exit 0; fi

exec 9>"$CACHE/.lock"
flock 9
if [ -f "$IMAGE/ready" ]; then touch "$IMAGE"; echo "$IMAGE"; exit 0; fi

# --- build ------------------------------------------------------------------------------------

# Under the lock no other build runs: what is left is from a build that was killed.
rm -rf "$CACHE"/.build-*

START=$(date +%s%N)
TMP=$(mktemp -d "$CACHE/.build-XXXXXX")
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
ROOT="$TMP/root"
log "building image $KEY (kernel $KPKG $KVER) in $TMP"

unpack_pkg "$KPKG" "$KVER" "$TMP/kernel"
unpack_pkg "$BBPKG" "$BBVER" "$TMP/busybox"
BB="$TMP/busybox/bin/busybox"
[ -x "$BB" ] || die "no bin/busybox in $BBPKG $BBVER"
KREL=${KPKG#linux-image-}
KMOD="$TMP/kernel/lib/modules/$KREL"
[ -d "$KMOD" ] || die "no modules in $KPKG $KVER for release $KREL"
cp "$TMP/kernel/boot/vmlinuz-$KREL" "$TMP/vmlinuz"

# Merged /usr, as on the host, so ldd's paths (/lib/..., /usr/lib/...) both land in one place. The
# links are relative: they must resolve inside ROOT, never to the host.
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,proc,sys,dev,run,tmp,root,ferry,var}
ln -s usr/bin "$ROOT/bin"; ln -s usr/sbin "$ROOT/sbin"; ln -s usr/lib "$ROOT/lib"; ln -s usr/lib64 "$ROOT/lib64"
ln -s ../run "$ROOT/var/run"
chmod 1777 "$ROOT/tmp"

for f in "${FILES[@]}"; do
  mkdir -p "$ROOT$(dirname "$f")"
  cp -L "$f" "$ROOT$f"
done
cp "$BB" "$ROOT/usr/bin/busybox"
for f in $(ldd "$BB" | awk '/=> \// {print $3} /^[ \t]+\// {print $1}'); do
  [ -e "$ROOT$f" ] || { mkdir -p "$ROOT$(dirname "$f")"; cp -L "$f" "$ROOT$f"; }
done
# Tools under the names the host uses, pointing at the copied binaries.
for t in "${TOOLS[@]}"; do
  p=$(tool_path "$t"); r=$(readlink -f "$p")
  [ "$p" = "$r" ] || { mkdir -p "$ROOT$(dirname "$p")"; ln -sf "$r" "$ROOT$p"; }
done
for fam in iptables ip6tables; do
  for v in legacy nft; do
    for s in "" -save -restore; do ln -sf "xtables-$v-multi" "$ROOT/usr/sbin/$fam-$v$s"; done
  done
  # The plain names follow Debian 12's default (nft), as update-alternatives sets them on the host.
  for s in "" -save -restore; do ln -sf "xtables-nft-multi" "$ROOT/usr/sbin/$fam$s"; done
done
# Busybox supplies every other command (sh, mount, modprobe, timeout, nc, ...), never shadowing a
# real tool copied above (busybox has its own ip, which lacks netns).
for a in $("$BB" --list-full); do
  case "$a" in bin/* | sbin/* | usr/bin/* | usr/sbin/*) ;; *) continue ;; esac
  n=$(basename "$a")
  [ -e "$ROOT/usr/bin/$n" ] || [ -L "$ROOT/usr/bin/$n" ] || [ -e "$ROOT/usr/sbin/$n" ] || [ -L "$ROOT/usr/sbin/$n" ] ||
    ln -s /usr/bin/busybox "$ROOT/usr/${a#usr/}"
done

# Kernel modules: the netfilter trees, the extra ones in modules.list, and everything they depend
# on. busybox depmod then writes modules.dep/alias for this subset, so the guest's modprobe and the
# kernel's own request_module (ip_vs loading a scheduler, iptables loading a match) both work.
"$BB" depmod -b "$TMP/kernel" "$KREL"
wanted=()
mapfile -t wanted < <(cd "$KMOD" && find "${MODDIRS[@]}" -name '*.ko*' 2>/dev/null)
for m in $(grep -vE '^\s*(#|$)' "$HERE/modules.list" | awk '{print $1}'); do
  p=$(grep -oE "^([^:]*/)?${m}\.ko(\.xz|\.zst|\.gz)?:" "$KMOD/modules.dep" | tr -d ':') || die "module $m is not in $KREL"
  wanted+=("$p")
done
closure=$(for m in "${wanted[@]}"; do grep -E "^$m:" "$KMOD/modules.dep" | tr -d ':' | tr ' ' '\n'; done | grep . | sort -u)
GMOD="$ROOT/lib/modules/$KREL"
for m in $closure; do
  mkdir -p "$GMOD/$(dirname "$m")"
  case "$m" in
    *.ko.xz) xz -dc "$KMOD/$m" >"$GMOD/${m%.xz}" ;;
    *.ko.zst) zstd -qdc "$KMOD/$m" >"$GMOD/${m%.zst}" ;;
    *.ko.gz) gzip -dc "$KMOD/$m" >"$GMOD/${m%.gz}" ;;
    *) cp "$KMOD/$m" "$GMOD/$m" ;;
  esac
done
cp "$KMOD"/modules.builtin "$KMOD"/modules.order "$GMOD/" 2>/dev/null || true
"$BB" depmod -b "$ROOT" "$KREL"
log "$(echo "$closure" | wc -l) kernel modules"

mkdir -p "$ROOT/etc/ferry-vm"
grep -vE '^\s*(#|$)' "$HERE/modules.list" | awk '{print $1}' >"$ROOT/etc/ferry-vm/modules"
cp "$HERE/init.sh" "$ROOT/init"; chmod 755 "$ROOT/init"
echo root:x:0:0:root:/root:/bin/sh >"$ROOT/etc/passwd"
echo root:x:0: >"$ROOT/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$ROOT/etc/hosts"
echo 'hosts: files' >"$ROOT/etc/nsswitch.conf"
echo ferry-vm >"$ROOT/etc/hostname"
# Devices come from the tests (ferry's own ferry-ipvs0), not from module defaults.
mkdir -p "$ROOT/etc/modprobe.d"
echo 'options dummy numdummies=0' >"$ROOT/etc/modprobe.d/ferry-vm.conf"
echo "$KREL" >"$ROOT/etc/ferry-vm/kernel"

# Uncompressed: under TCG the kernel inflates gzip slowly, while an uncompressed archive is only
# copied. newc with root ownership, sorted so equal inputs give equal bytes.
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/base.cpio"
rm -rf "$ROOT" "$TMP/kernel" "$TMP/busybox"
echo "$MANIFEST" >"$TMP/manifest"
MS=$(( ($(date +%s%N) - START) / 1000000 ))
echo "$MS" >"$TMP/build-ms"
touch "$TMP/ready"
trap - EXIT
if ! mv -T "$TMP" "$IMAGE" 2>/dev/null; then rm -rf "$TMP"; fi
log "built $IMAGE in ${MS} ms ($(du -sh "$IMAGE/base.cpio" | cut -f1) initramfs)"

# Keep the newest few images (other branches may key differently), drop the rest.
ls -1dt "$CACHE"/*/ | grep -E '/[0-9a-f]{16}/$' | tail -n +$((KEEP_IMAGES + 1)) | xargs -r rm -rf
echo "$IMAGE"
