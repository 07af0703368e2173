#!/bin/bash
# memmap-lab testbed: boots the stock Debian 6.1 kernel in QEMU (TCG) with an emulated
# 16 GiB NVDIMM and runs memmap-collect inside the guest around namespace creation,
# DAX faults and pc-dimm memory hotplug. See testbed/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: testbed/run.sh [--out DIR] [--scenarios LIST] [--work DIR] [--collector BIN] [--timeout S]

  --out DIR          where the traces, serial logs and README.md of this run go
                     (default: WORK/out; emptied first)
  --scenarios LIST   comma-separated steps (default: all, in this order):
                       fsdax-mem   ndctl create-namespace -m fsdax --map=mem (+ destroy)
                       fsdax-dev   ... -m fsdax --map=dev
                       ext4-dax    mount -o dax + dax-touch (64 MiB) on ext4
                       xfs-dax     mount -o dax=always + dax-touch (64 MiB) on xfs
                       devdax-mem  ... -m devdax --map=mem
                       devdax-dev  ... -m devdax --map=dev
                       hotplug-1g  1 GiB pc-dimm through the QEMU monitor + online_movable
                       hotplug-mom second boot with memory_hotplug.memmap_on_memory=1,
                                   128 MiB pc-dimm (one memory block) + online_movable
                       boot-harvest third boot on the first boot's NVDIMM (its last
                                   namespace, devdax map=dev, comes up at boot) with the
                                   command line of `memmap-collect boot --print-cmdline`,
                                   then `memmap-collect boot` harvests it
  --work DIR         cache and scratch (default: target/testbed under the repo)
  --collector BIN    use this memmap-collect binary instead of building it
  --timeout S        host-side limit per guest boot in seconds (default 900)

Env: KPKG (default linux-image-6.1.0-56-amd64), KDEB_VERSION (default 6.1.192-2),
     STEP_TIMEOUT (guest seconds per recorded step, default 150).
Exit status: 0 if every guest finished and every step succeeded, 1 otherwise.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TB=$ROOT/testbed
WORK=$ROOT/target/testbed
OUT=""
ALL_STEPS="fsdax-mem fsdax-dev ext4-dax xfs-dax devdax-mem devdax-dev hotplug-1g hotplug-mom boot-harvest"
SCEN=""
COLLECTOR=""
BOOT_TIMEOUT=900
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --scenarios) SCEN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --collector) COLLECTOR=$2; shift 2 ;;
    --timeout) BOOT_TIMEOUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
KPKG=${KPKG:-linux-image-6.1.0-56-amd64}
KDEB_VERSION=${KDEB_VERSION:-6.1.192-2}
NVSIZE=16G
LABEL_SIZE=128K
STEP_TIMEOUT=${STEP_TIMEOUT:-150}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# steps: validate, keep the canonical order; hotplug-mom needs its own boot
STEPS=""
for s in ${SCEN:+$(echo "$SCEN" | tr ',' ' ')}; do
  case " $ALL_STEPS " in *" $s "*) ;; *) echo "run.sh: unknown scenario '$s' (known: $ALL_STEPS)" >&2; exit 2 ;; esac
done
for s in $ALL_STEPS; do
  if [ -z "$SCEN" ] || [[ ",$SCEN," == *",$s,"* ]]; then STEPS="$STEPS $s"; fi
done
BOOT1_STEPS=$(echo $STEPS | tr ' ' '\n' | grep -vxE 'hotplug-mom|boot-harvest' | tr '\n' ',' | sed 's/,$//' || true)
BOOT2_STEPS=$(echo $STEPS | tr ' ' '\n' | grep -x hotplug-mom || true)
BOOT3_STEPS=$(echo $STEPS | tr ' ' '\n' | grep -x boot-harvest || true)

T0=$(date +%s.%N)
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%6.1f", b-a}'; }
log() { echo "[testbed +$(el)s] $*" | tee -a "$OUT/host.log" >&2; }
die() { log "ERROR: $*"; exit 1; }
rm -rf "$OUT"/*.jsonl "$OUT"/guest-* "$OUT"/serial-*.log "$OUT"/host.log "$OUT"/README.md "$OUT"/steps.txt "$OUT"/hmp-*.txt "$OUT"/qemu-*.txt
: > "$OUT/host.log"
log "work dir $WORK, output $OUT, steps:$STEPS"

# ---------------------------------------------------------------- host packages, kernel (pinned, cached)
. "$TB/lib.sh"
tb_host_packages
tb_kernel
log "kernel $KPKG $KDEBVER"

# ---------------------------------------------------------------- collector
if [ -z "$COLLECTOR" ]; then
  COLLECTOR=$(tb_cargo_bin memmap-collect memmap-collect "$OUT/cargo-build.txt")
fi
[ -x "$COLLECTOR" ] || die "no collector binary at $COLLECTOR"
# release has debuginfo: the initramfs gets a stripped copy
strip -o "$WORK/memmap-collect" "$COLLECTOR"
COLLECTOR_SHA=$(sha256sum < "$COLLECTOR" | cut -d' ' -f1)

# ---------------------------------------------------------------- initramfs
R=$WORK/rootfs
tb_rootfs "$R" "$WORK/memmap-collect"
cp "$TB/guest/steps.sh" "$R/testbed/steps.sh"
tb_pack "$R" "$WORK/initrd.img"
log "initramfs $(du -h "$WORK/initrd.img" | cut -f1) (collector sha256 ${COLLECTOR_SHA:0:12})"

# ---------------------------------------------------------------- boot
QEMU_VERSION=$(qemu-system-x86_64 --version | head -1)
BOOTS_OK=1
: > "$OUT/steps.txt"
# boot_guest NAME STEPS EXTRA_APPEND [NVDIMM_IMAGE_TO_REUSE]
boot_guest() {
  local name=$1 steps=$2 extra=$3 reuse=${4:-}
  local serial=$OUT/serial-$name.log nv=$WORK/nvdimm-$name.img od=$WORK/outdisk-$name.img mon=$WORK/monitor-$name.sock
  rm -f "$od" "$mon"
  if [ -n "$reuse" ] && [ -f "$reuse" ]; then
    mv "$reuse" "$nv"            # labels and namespaces of the earlier boot
  else
    rm -f "$nv"
    truncate -s $NVSIZE "$nv"    # sparse; the label area starts empty (zeros)
  fi
  truncate -s 1G "$od"           # the guest writes a tar of /out onto /dev/vda
  : > "$serial"
  # No dyndbg here: the collector switches the "initialised" pr_debug on itself.
  local append="console=ttyS0 panic=-1 loglevel=4 log_buf_len=8M testbed.steps=$steps STEP_TIMEOUT=$STEP_TIMEOUT $extra"
  local q=(qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2
    -machine pc,nvdimm=on -m 2G,slots=4,maxmem=64G
    -object memory-backend-file,id=nvmem1,share=on,mem-path=$nv,size=$NVSIZE
    -device nvdimm,id=nvdimm1,memdev=nvmem1,label-size=$LABEL_SIZE
    -drive file=$od,format=raw,if=virtio
    -kernel "$KERNEL" -initrd "$WORK/initrd.img" -append "$append"
    -display none -serial file:$serial -monitor unix:$mon,server,nowait -nic none -no-reboot)
  printf '%q ' "${q[@]}" > "$OUT/qemu-cmdline-$name.txt"; echo >> "$OUT/qemu-cmdline-$name.txt"
  log "[$name] qemu start (TCG, steps $steps${extra:+, $extra})"
  local tb=$(date +%s.%N)
  "${q[@]}" 2> "$OUT/qemu-stderr-$name.txt" &
  local qpid=$! seen=0 line id size t tstep=""
  declare -A hp_done=()
  while :; do
    local alive=1; kill -0 $qpid 2>/dev/null || alive=0
    # new @@ lines on the console
    mapfile -t lines < <(grep -a '^@@' "$serial" | tr -d '\r' | tail -n +$((seen + 1)))
    for line in "${lines[@]}"; do
      seen=$((seen + 1))
      t=$(awk -v a="$tb" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
      case $line in
        @@BOOTED*) log "[$name] guest userspace after ${t}s: ${line#@@BOOTED }" ;;
        @@STEP_BEGIN*) tstep=$t; log "[$name] ${line#@@}" ;;
        @@STEP_END*)
          local s=$(echo "$line" | awk '{print $2}')
          local hw=$(awk -v a="${tstep:-0}" -v b="$t" 'BEGIN{printf "%.1f", b-a}')
          log "[$name] ${line#@@} host_wall=${hw}s"
          echo "$line host_wall_s=$hw" | sed 's/^@@STEP_END //' >> "$OUT/steps.txt" ;;
        @@HOTPLUG_READY*)
          id=$(echo "$line" | sed -n 's/.* id=\([^ ]*\).*/\1/p'); size=$(echo "$line" | sed -n 's/.* size=\([^ ]*\).*/\1/p')
          if [ -z "${hp_done[$id]:-}" ]; then
            hp_done[$id]=1
            log "[$name] hotplug: object_add memory-backend-ram,id=$id,size=$size; device_add pc-dimm,id=dimm-$id,memdev=$id"
            python3 "$TB/hmp.py" "$mon" "object_add memory-backend-ram,id=$id,size=$size" \
              "device_add pc-dimm,id=dimm-$id,memdev=$id" "info memory-devices" >> "$OUT/hmp-$name.txt" 2>&1 \
              || log "[$name] hotplug: monitor reported an error (see hmp-$name.txt)"
          fi ;;
        @@MARK*) ;;
        *) log "[$name] ${line#@@}" ;;
      esac
    done
    [ $alive = 1 ] || break
    if awk -v a="$tb" -v b="$(date +%s.%N)" -v l="$BOOT_TIMEOUT" 'BEGIN{exit !(b-a > l)}'; then
      log "[$name] TIMEOUT after ${BOOT_TIMEOUT}s: killing qemu"; kill $qpid; sleep 2; kill -9 $qpid 2>/dev/null || true; break
    fi
    sleep 0.3
  done
  wait $qpid || true
  log "[$name] qemu exited after $(awk -v a="$tb" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
  local g=$OUT/guest-$name
  rm -rf "$g"; mkdir -p "$g"
  if ! tar --no-same-permissions -xf "$od" -C "$g" 2>/dev/null || ! grep -aq '@@TAR_WRITTEN' "$serial"; then
    log "[$name] guest did not finish (no complete result tar; serial tail below)"; tail -n 20 "$serial" | tr -d '\r' >&2
    BOOTS_OK=0
  fi
  grep -aq '@@ALL_STEPS_DONE failed=0' "$serial" || BOOTS_OK=0
  chmod 755 "$g"
  for f in "$g"/*.jsonl; do [ -e "$f" ] && mv "$f" "$OUT/"; done
  if [ -n "$BOOT3_STEPS" ] && [ "$name" = boot1 ]; then mv "$nv" "$WORK/nvdimm-keep.img"; fi
  rm -f "$nv" "$od" "$mon"
}
[ -n "$BOOT1_STEPS" ] && boot_guest boot1 "$BOOT1_STEPS" ""
[ -n "$BOOT2_STEPS" ] && boot_guest boot2 "$BOOT2_STEPS" "memory_hotplug.memmap_on_memory=1"
BOOT3_CMDLINE=""
if [ -n "$BOOT3_STEPS" ]; then
  BOOT3_CMDLINE=$("$COLLECTOR" boot --print-cmdline)
  boot_guest boot3 "$BOOT3_STEPS" "$BOOT3_CMDLINE" "$WORK/nvdimm-keep.img"
fi

# ---------------------------------------------------------------- provenance + summary
TOTAL=$(el | tr -d ' ')
{
  echo "# memmap-lab testbed run"
  echo
  echo "Produced by \`testbed/run.sh${SCEN:+ --scenarios $SCEN}\` (see testbed/README.md). Machine-made; do not edit."
  echo
  echo "| what | value |"
  echo "| --- | --- |"
  echo "| date (UTC) | $(date -u +%FT%TZ) |"
  echo "| host kernel | $(uname -r) ($(uname -m)), $(nproc) CPUs |"
  echo "| QEMU | $QEMU_VERSION, Debian package qemu-system-x86 |"
  echo "| acceleration | TCG, \`-accel tcg,thread=single -cpu max -smp 2\` (no KVM) |"
  echo "| guest kernel | Debian $KPKG, package version $KDEBVER |"
  echo "| machine | \`-machine pc,nvdimm=on -m 2G,slots=4,maxmem=64G\`; NVDIMM $NVSIZE sparse file, label-size=$LABEL_SIZE (labels initialised by ndctl init-labels in the guest) |"
  echo "| boot2 extra cmdline | memory_hotplug.memmap_on_memory=1 |"
  echo "| boot3 extra cmdline | \`memmap-collect boot --print-cmdline\` (see qemu-cmdline-boot3.txt); NVDIMM image of boot1 |"
  echo "| userspace | busybox-static $(dpkg-query -W -f='${Version}' busybox-static), ndctl/daxctl $(dpkg-query -W -f='${Version}' ndctl), e2fsprogs $(dpkg-query -W -f='${Version}' e2fsprogs), xfsprogs $(dpkg-query -W -f='${Version}' xfsprogs) |"
  echo "| memmap-collect | sha256 $COLLECTOR_SHA ($( "$COLLECTOR" --version 2>&1 | head -1 )) |"
  echo "| repo | HEAD $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null), $(git -C "$ROOT" status --short 2>/dev/null | wc -l) changed files at run time |"
  echo "| wall time | ${TOTAL}s for the whole run (build + boots) |"
  echo
  echo "## Steps"
  echo
  echo '```'
  cat "$OUT/steps.txt"
  echo '```'
  echo
  echo "secs = guest uptime seconds for the step (setup + record), host_wall_s = host seconds between the step's begin/end console lines."
  echo "Guest durations are under TCG emulation: not comparable to hardware."
  echo
  echo "## Files"
  echo
  echo "* \`STEP.jsonl\` — \`memmap-collect record -o STEP.jsonl -- steps.sh body STEP\`"
  echo "* \`STEP.snapshot.jsonl\` — \`memmap-collect snapshot\` taken inside the step once its namespace / memory exists"
  echo "* \`serial-boot*.log\` — guest console; \`qemu-cmdline-*.txt\`; \`hmp-*.txt\` — monitor dialogue of the hotplug"
  echo "* \`guest-boot*/log/\` — per step: setup log, body log (ndctl output, dax-touch output), exit codes and stderr of every collector call"
} > "$OUT/README.md"

log "steps:"; sed 's/^/    /' "$OUT/steps.txt" >&2
nsteps=$(echo $STEPS | wc -w)
nok=$(grep -c 'result=OK' "$OUT/steps.txt" || true)
log "total wall ${TOTAL}s; $nok/$nsteps steps OK; output in $OUT"
[ $BOOTS_OK = 1 ] && [ "$nok" = "$nsteps" ] || exit 1
