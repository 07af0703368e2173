#!/bin/bash
# memmap-lab calibration (issue 15 point 4): the kernel's own memmap_init_zone_device and
# move_pfn_range_to_zone durations (function_graph, microseconds) against memmap-replay's
# init time, both inside the same QEMU guest (stock Debian 6.1 kernel) on the same layout
# and the same kind of memory. See traces/real/calibration/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: testbed/calibrate.sh [--strategy S] [--out DIR] [--configs LIST] [--kreps N] [--rreps N]
                            [--accel auto|kvm|tcg] [--work DIR] [--timeout S]

  --strategy S    memmap-replay strategy to calibrate (default: $STRATEGY or duyck)
  --out DIR       output (default: traces/real/calibration under the repo; its raw/,
                  summary.csv, kernel_detail.csv, replay_detail.csv, status.txt and
                  PROVENANCE.md are replaced, README.md is kept)
  --configs LIST  comma-separated MODE:MAP:ALIGN:SIZE (default: the full grid, fsdax and
                  devdax x map=mem and map=dev x align 4K, 2M, 1G x size 2G, 4G, 8G)
  --kreps N       namespace creations measured per configuration, after one warm-up (default 5)
  --rreps N       memmap-replay repeats per configuration (default 5)
  --accel A       auto (default: KVM if /dev/kvm can be opened, else TCG), kvm or tcg
  --work DIR      cache and scratch (default: target/testbed under the repo; the kernel
                  cache is shared with testbed/run.sh)
  --timeout S     host-side limit for the guest in seconds (default 3600)

Env: KPKG (default linux-image-6.1.0-56-amd64), KDEB_VERSION (default 6.1.192-2),
     CARGO_TARGET_DIR (where the binaries are built), STRATEGY, KVM_BOOT_LIMIT (seconds a
     KVM guest may take to reach userspace before the run falls back to TCG, default 90).
Exit status: 0 if the guest finished and every configuration succeeded, 1 otherwise
(the summary still lists every configuration; failed ones with their reason).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB=$ROOT/testbed
WORK=$ROOT/target/testbed
OUT=$ROOT/traces/real/calibration
STRATEGY=${STRATEGY:-duyck}
CONFIGS=""
KREPS=5
RREPS=5
ACCEL=auto
BOOT_TIMEOUT=3600
KVM_BOOT_LIMIT=${KVM_BOOT_LIMIT:-90}  # seconds a KVM guest may take to reach userspace
ARGS="$*"
while [ $# -gt 0 ]; do
  case $1 in
    --strategy) STRATEGY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    --kreps) KREPS=$2; shift 2 ;;
    --rreps) RREPS=$2; shift 2 ;;
    --accel) ACCEL=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "calibrate.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
KPKG=${KPKG:-linux-image-6.1.0-56-amd64}
KDEB_VERSION=${KDEB_VERSION:-6.1.192-2}
NV0=10G          # region0: the namespaces under test (largest 8G + 1G alignment)
NV1=512M         # region1: the devdax replay target for map=dev
NV1_ADDR=0x400000000  # 16 GiB: after NVDIMM 0, 1 GiB aligned (QEMU would pack it unaligned)
LABEL_SIZE=128K
GUEST_MEM=2G     # keeps the NVDIMM at 0x100000000 (pfn 0x100000) as in testbed/run.sh
if [ -z "$CONFIGS" ]; then
  for mode in fsdax devdax; do for map in mem dev; do for align in 4K 2M 1G; do for size in 2G 4G 8G; do
    CONFIGS="$CONFIGS,$mode:$map:$align:$size"
  done; done; done; done
  CONFIGS=${CONFIGS#,}
fi
for c in $(echo "$CONFIGS" | tr ',' ' '); do
  [[ $c =~ ^(fsdax|devdax):(mem|dev):[0-9]+[KMG]:[0-9]+[KMG]$ ]] || { echo "calibrate.sh: bad configuration '$c' (MODE:MAP:ALIGN:SIZE, e.g. fsdax:dev:2M:4G)" >&2; exit 2; }
done
[[ $KREPS =~ ^[1-9][0-9]*$ && $RREPS =~ ^[1-9][0-9]*$ ]] || { echo "calibrate.sh: --kreps/--rreps must be positive integers" >&2; exit 2; }
mkdir -p "$WORK" "$OUT"
WORK=$(cd "$WORK" && pwd)
OUT=$(cd "$OUT" && pwd)
CW=$WORK/calib
mkdir -p "$CW"

T0=$(date +%s.%N)
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
log() { echo "[calibrate +$(el)s] $*" | tee -a "$OUT/host.log" >&2; }
die() { log "ERROR: $*"; exit 1; }
rm -rf "$OUT/raw" "$OUT"/summary.csv "$OUT"/kernel_detail.csv "$OUT"/replay_detail.csv "$OUT"/status.txt \
  "$OUT"/PROVENANCE.md "$OUT"/ratios.md "$OUT"/host.log "$OUT"/serial.log "$OUT"/guest "$OUT"/qemu-*.txt "$OUT/log"
: > "$OUT/host.log"
log "strategy $STRATEGY, $(echo "$CONFIGS" | tr ',' '\n' | wc -l) configurations, kreps $KREPS (+1 warm-up), rreps $RREPS, output $OUT"

# ---------------------------------------------------------------- host packages, kernel, binaries
. "$TB/lib.sh"
tb_host_packages
tb_kernel
log "kernel $KPKG $KDEBVER"
REPLAY=$(tb_cargo_bin memmap-replay memmap-replay "$CW/cargo-build-replay.txt")
COLLECTOR=$(tb_cargo_bin memmap-collect memmap-collect "$CW/cargo-build-collect.txt")
"$REPLAY" strategies | awk '{print $1}' | grep -qx -- "$STRATEGY" \
  || die "unknown strategy '$STRATEGY'; memmap-replay knows: $("$REPLAY" strategies | awk '{print $1}' | tr '\n' ' ')"
mkdir -p "$CW/bin"
strip -o "$CW/bin/memmap-replay" "$REPLAY"
strip -o "$CW/bin/memmap-collect" "$COLLECTOR"
REPLAY_SHA=$(sha256sum < "$REPLAY" | cut -d' ' -f1)
COLLECTOR_SHA=$(sha256sum < "$COLLECTOR" | cut -d' ' -f1)
REPLAY_STRIPPED_SHA=$(sha256sum < "$CW/bin/memmap-replay" | cut -d' ' -f1)

# ---------------------------------------------------------------- initramfs
R=$CW/rootfs
tb_rootfs "$R" "$CW/bin/memmap-replay" "$CW/bin/memmap-collect"
cp "$TB/guest/calibrate-guest.sh" "$R/testbed/calibrate-guest.sh"
{ echo "STRATEGY='$STRATEGY'"; echo "KREPS=$KREPS"; echo "RREPS=$RREPS"
  echo "CONFIGS='$(echo "$CONFIGS" | tr ',' ' ')'"; echo "CMD_TIMEOUT=900"; } > "$R/testbed/calib.conf"
tb_pack "$R" "$CW/initrd.img"
log "initramfs $(du -h "$CW/initrd.img" | cut -f1) (memmap-replay sha256 ${REPLAY_SHA:0:12})"

# ---------------------------------------------------------------- accelerator
KVM_WHY=""
case $ACCEL in
  kvm) ;;
  tcg) KVM_WHY="--accel tcg" ;;
  auto)
    if [ -c /dev/kvm ] && python3 -c 'import os; os.close(os.open("/dev/kvm", os.O_RDWR))' 2>/dev/null; then ACCEL=kvm
    else ACCEL=tcg; KVM_WHY="/dev/kvm missing or not openable"; fi ;;
  *) die "--accel must be auto, kvm or tcg" ;;
esac

# ---------------------------------------------------------------- boot
# NVDIMM backends are sparse files on /dev/shm (tmpfs: no host writeback behind the
# guest's stores, so the kernel and the replay see the same memory); only touched pages
# cost host RAM.
NVD=/dev/shm/memmap-calib-$$
mkdir -p "$NVD"
trap 'rm -rf "$NVD"' EXIT
boot() { # ACCEL -> 0 if the guest wrote its results
  local accel=$1 serial=$OUT/serial.log od=$CW/outdisk.img limit=300
  [ "$accel" = kvm ] && limit=$KVM_BOOT_LIMIT
  BOOT_STUCK=""
  truncate -s 0 "$NVD/nv0.img" "$NVD/nv1.img"; rm -f "$NVD"/*.img
  truncate -s $NV0 "$NVD/nv0.img"; truncate -s $NV1 "$NVD/nv1.img"
  rm -f "$od"; truncate -s 1G "$od"
  : > "$serial"
  local acc=(-accel tcg,thread=single -cpu max)
  [ "$accel" = kvm ] && acc=(-accel kvm -cpu host,-arch-capabilities)
  local append="console=ttyS0 panic=-1 loglevel=4 log_buf_len=8M testbed.main=calibrate-guest.sh"
  local q=(qemu-system-x86_64 "${acc[@]}" -smp 2
    -machine pc,nvdimm=on -m $GUEST_MEM,slots=4,maxmem=64G
    -object memory-backend-file,id=nvmem0,share=on,mem-path=$NVD/nv0.img,size=$NV0
    -device nvdimm,id=nvdimm0,memdev=nvmem0,label-size=$LABEL_SIZE
    -object memory-backend-file,id=nvmem1,share=on,mem-path=$NVD/nv1.img,size=$NV1
    -device nvdimm,id=nvdimm1,memdev=nvmem1,label-size=$LABEL_SIZE,addr=$NV1_ADDR
    -drive file=$od,format=raw,if=virtio
    -kernel "$KERNEL" -initrd "$CW/initrd.img" -append "$append"
    -display none -serial file:$serial -nic none -no-reboot)
  printf '%q ' "${q[@]}" | sed "s|$NVD|/dev/shm/memmap-calib-PID|g" > "$OUT/qemu-cmdline.txt"; echo >> "$OUT/qemu-cmdline.txt"
  log "qemu start ($accel)"
  local tb=$(date +%s.%N)
  "${q[@]}" 2> "$OUT/qemu-stderr.txt" &
  local qpid=$! seen=0 line
  while :; do
    local alive=1; kill -0 $qpid 2>/dev/null || alive=0
    mapfile -t lines < <(grep -a '^@@' "$serial" | tr -d '\r' | tail -n +$((seen + 1)))
    for line in "${lines[@]}"; do seen=$((seen + 1)); log "guest: ${line#@@}"; done
    [ $alive = 1 ] || break
    # a guest that has not reached userspace in time: a hopeless accelerator (KVM on a
    # nested backend can sit in the kernel's decompressor for minutes)
    if ! grep -aq '^@@BOOTED' "$serial" && awk -v a="$tb" -v b="$(date +%s.%N)" -v l="$limit" 'BEGIN{exit !(b-a > l)}'; then
      log "no userspace after ${limit}s under $accel: killing qemu"; kill $qpid; sleep 2; kill -9 $qpid 2>/dev/null || true
      BOOT_STUCK="no userspace after ${limit}s (serial: $(tr -d '\r' < "$serial" | tail -c 200 | tr '\n' ' '))"; break
    fi
    if awk -v a="$tb" -v b="$(date +%s.%N)" -v l="$BOOT_TIMEOUT" 'BEGIN{exit !(b-a > l)}'; then
      log "TIMEOUT after ${BOOT_TIMEOUT}s: killing qemu"; kill $qpid; sleep 2; kill -9 $qpid 2>/dev/null || true; break
    fi
    sleep 0.5
  done
  wait $qpid || true
  GUEST_WALL=$(awk -v a="$tb" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  log "qemu exited after ${GUEST_WALL}s"
  rm -rf "$OUT/guest"; mkdir -p "$OUT/guest"
  tar --no-same-permissions -xf "$od" -C "$OUT/guest" 2>/dev/null || true
  rm -f "$od"
  grep -aq '@@BOOTED' "$serial"
}
ACCEL_USED=$ACCEL
if ! boot $ACCEL; then
  if [ $ACCEL = kvm ]; then
    KVM_WHY="KVM boot did not reach userspace: ${BOOT_STUCK:-qemu exited: $(head -c 300 "$OUT/qemu-stderr.txt" | tr '\n' ' ')}"
    log "$KVM_WHY; falling back to TCG"
    cp "$OUT/serial.log" "$OUT/qemu-kvm-attempt-serial.txt"; cp "$OUT/qemu-stderr.txt" "$OUT/qemu-kvm-attempt-stderr.txt"
    ACCEL_USED=tcg
    boot tcg || true
  fi
fi
GUEST_OK=1
grep -aq '@@TAR_WRITTEN' "$OUT/serial.log" || { GUEST_OK=0; log "guest did not finish (no result tar); serial tail:"; tail -n 20 "$OUT/serial.log" | tr -d '\r' >&2; }

# ---------------------------------------------------------------- results
G=$OUT/guest
[ -d "$G/raw" ] && mv "$G/raw" "$OUT/raw"
[ -f "$G/status.txt" ] && cp "$G/status.txt" "$OUT/status.txt"
mkdir -p "$OUT/raw"
# every configuration asked for appears in status.txt, also if the guest never reached it
for c in $(echo "$CONFIGS" | tr ',' ' '); do
  n=$(echo "$c" | tr ':' '-')
  grep -q "^$n " "$OUT/status.txt" 2>/dev/null || echo "$n FAIL not run: the guest did not reach this configuration (see serial.log)" >> "$OUT/status.txt"
done
# raw files: run files gzip'd, guest logs kept small
for f in "$OUT"/raw/*/replay.run.json; do [ -e "$f" ] && gzip -9 -n "$f"; done
mkdir -p "$OUT/log"
for f in guest-info.txt tracing-setup.txt; do [ -f "$G/$f" ] && cp "$G/$f" "$OUT/log/"; done
for f in labels.txt target-ns.json target-ns.err final-state.txt insmod.err; do [ -f "$G/log/$f" ] && cp "$G/log/$f" "$OUT/log/"; done
[ -f "$G/log/dmesg.txt" ] && gzip -9 -n -c "$G/log/dmesg.txt" > "$OUT/log/dmesg-full.txt.gz"
rm -rf "$G"
grep -a '^@@' "$OUT/serial.log" | tr -d '\r' > "$OUT/log/serial-markers.txt" || true
gzip -9 -n -f "$OUT/serial.log"; mv "$OUT/serial.log.gz" "$OUT/log/serial.log.gz"
mv "$OUT/host.log" "$OUT/log/host.log" 2>/dev/null || true
log() { echo "[calibrate +$(el)s] $*" | tee -a "$OUT/log/host.log" >&2; }
mv "$OUT"/qemu-*.txt "$OUT/log/" 2>/dev/null || true
python3 "$TB/calibrate-summary.py" "$OUT" > "$OUT/log/summary-stdout.txt" 2>&1 || { cat "$OUT/log/summary-stdout.txt" >&2; die "calibrate-summary.py failed"; }
cat "$OUT/log/summary-stdout.txt" >&2

TOTAL=$(el | tr -d ' ')
CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "# calibration run provenance"
  echo
  echo "Machine-made by \`testbed/calibrate.sh${ARGS:+ $ARGS}\`; do not edit."
  echo
  echo "| what | value |"
  echo "| --- | --- |"
  echo "| date (UTC) | $(date -u +%FT%TZ) |"
  echo "| host | kernel $(uname -r), CPU $CPU, $(nproc) CPUs (shared with other work) |"
  echo "| QEMU | $(qemu-system-x86_64 --version | head -1) |"
  echo "| acceleration | $ACCEL_USED${KVM_WHY:+ ($KVM_WHY)}: \`$( [ $ACCEL_USED = kvm ] && echo '-accel kvm -cpu host,-arch-capabilities' || echo '-accel tcg,thread=single -cpu max') -smp 2\` |"
  echo "| guest CPU | $(sed -n 's/^model name[^:]*: //p' "$OUT/log/guest-info.txt" 2>/dev/null | head -1) |"
  echo "| guest kernel | Debian $KPKG, package version $KDEBVER (vmlinuz sha256 $(sha256sum < "$KERNEL" | cut -c1-16)…) |"
  echo "| machine | \`-machine pc,nvdimm=on -m $GUEST_MEM,slots=4,maxmem=64G\`; NVDIMM 0: $NV0, NVDIMM 1: $NV1 at $NV1_ADDR, both sparse files on the host's /dev/shm (tmpfs), share=on, label-size=$LABEL_SIZE |"
  echo "| userspace | busybox-static $(dpkg-query -W -f='${Version}' busybox-static), ndctl/daxctl $(dpkg-query -W -f='${Version}' ndctl) |"
  echo "| memmap-replay | sha256 $REPLAY_SHA (stripped copy in the guest: $REPLAY_STRIPPED_SHA), $("$REPLAY" --version 2>&1 | head -1) |"
  echo "| memmap-collect | sha256 $COLLECTOR_SHA (snapshot only) |"
  echo "| repo | HEAD $(git -C "$ROOT" rev-parse HEAD 2>/dev/null) ($(git -C "$ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null)), $(git -C "$ROOT" status --short 2>/dev/null | wc -l) changed files at run time |"
  echo "| strategy | $STRATEGY, --threads 1, --repeat $RREPS, --faults none, --verify |"
  echo "| repeats | kernel: $KREPS measured creations per configuration after 1 warm-up (repeat 0, kept in the raw trace, not counted) |"
  echo "| wall time | ${TOTAL}s for the whole run (builds + boot + grid), guest ${GUEST_WALL:-?}s |"
  echo
  echo "## Exact commands"
  echo
  echo "* host: \`testbed/calibrate.sh${ARGS:+ $ARGS}\`; QEMU: log/qemu-cmdline.txt"
  echo "* guest tracing setup: log/tracing-setup.txt (set by testbed/guest/calibrate-guest.sh)"
  echo "* per configuration: raw/CONFIG/ndctl.log (every ndctl command with its output), raw/CONFIG/replay.cmd"
} > "$OUT/PROVENANCE.md"
nfail=$(grep -c ' FAIL' "$OUT/status.txt" || true)
log "total wall ${TOTAL}s; $nfail failed configuration(s); output in $OUT"
[ $GUEST_OK = 1 ] && [ "$nfail" = 0 ] || exit 1
