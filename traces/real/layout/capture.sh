#!/bin/bash
# memmap-lab: capture REAL kernel-produced ZONE_DEVICE memmap layout figures of pmem namespaces.
# Adapted from shared/testbed-reference/run.sh (boot, modules, label init kept; fgraph/faulttest/hotplug removed).
# Host: Debian 12, QEMU TCG (no KVM), stock Debian kernel linux-image-6.1.0-*-amd64, emulated NVDIMM.
#
# usage: [NVSIZE=16G] [CONFIGS=configs-16G.txt] [TAG=boot16g] [TESTBED_DIR=/tmp/tb] ./capture.sh
#   CONFIGS: one config per line: "id mode map align size keep"
#     mode: fsdax|devdax|raw, or sfsdax|sdevdax (raw namespace + pfn/dax seed configured and bound through sysfs, no ndctl checks); map: mem|dev|- ; align: 4K|2M|1G|- ; size: e.g. 4G|1040M|- (- = whole/ndctl default)
#     keep: "keep" = do not destroy afterwards (next line goes side by side in the same region),
#           "-" = read the info block(s) of all kept namespaces + this one, then destroy-namespace -f all
#     lines starting with # are comments
# results: $TESTBED_DIR/out/$TAG/guest/cfg/<id>/...   (see README.md next to this script)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${TESTBED_DIR:-/tmp/tb}
NVSIZE=${NVSIZE:-16G}
LABEL_SIZE=${LABEL_SIZE:-128K}
GUEST_MEM=${GUEST_MEM:-3G}
CONFIGS=${CONFIGS:-$HERE/configs-16G.txt}
TAG=${TAG:-boot-$NVSIZE}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800}     # whole guest run limit (s), host side
GUEST_DEADLINE=${GUEST_DEADLINE:-1500} # guest uptime after which remaining configs are skipped
DYNDBG='dyndbg="func memmap_init_zone_device +p; func altmap_alloc_block_buf +p" libnvdimm.dyndbg="file pfn_devs.c +p"'
APPEND="console=ttyS0 panic=-1 loglevel=4 log_buf_len=8M $DYNDBG ${EXTRA_APPEND:-}"
OUT=$W/out/$TAG
mkdir -p $W $OUT
cd $W
log() { echo "[host $(date +%T)] $*" | tee -a $OUT/host-timeline.txt; }

# ---------------------------------------------------------------- 1. packages
need=""
for p in qemu-system-x86 busybox-static ndctl daxctl cpio kmod bc; do
  dpkg -s $p >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  log "apt-get install$need"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# ---------------------------------------------------------------- 1b. kernel (pinned with KPKG=..., default: what linux-image-amd64 depends on)
KPKG=${KPKG:-$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
KVER=${KPKG#linux-image-}
if [ ! -f kpkg/boot/vmlinuz-$KVER ]; then
  mkdir -p deb && (cd deb && apt-get download $KPKG)
  rm -rf kpkg && mkdir kpkg && dpkg-deb -x deb/${KPKG}_*_amd64.deb kpkg
  depmod -b kpkg $KVER
fi
KDEBVER=$(dpkg-deb -f deb/${KPKG}_*_amd64.deb Version)
{ echo "kernel_package=$KPKG"; echo "kernel_deb_version=$KDEBVER"; echo "qemu=$(qemu-system-x86_64 --version | head -1)";
  echo "ndctl_host_pkg=$(dpkg-query -W -f='${Version}' ndctl)"; echo "nvsize=$NVSIZE label_size=$LABEL_SIZE guest_mem=$GUEST_MEM";
  echo "append=$APPEND"; echo "date=$(date -u +%FT%TZ)"; } > $OUT/provenance.txt
log "kernel $KPKG ($KDEBVER)"

# ---------------------------------------------------------------- 2. initramfs
R=$W/rootfs-$TAG
rm -rf $R && mkdir -p $R/{bin,sbin,proc,sys,dev,tmp,mnt,out,etc,lib64,usr/lib}
cp /bin/busybox $R/bin/busybox
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox $R/bin/$a; done
for b in /usr/bin/ndctl /usr/bin/daxctl; do
  rm -f $R/bin/$(basename $b); cp $b $R/bin/
  for l in $(ldd $b | awk '/=>/{print $3} /ld-linux/{print $1}'); do mkdir -p $R$(dirname $l); cp -L $l $R$l; done
done
MODS="nfit nd_pmem nd_btt dax_pmem device_dax kmem virtio_blk virtio_pci"
: > $R/modules.order.txt
for m in $MODS; do
  modprobe -C /dev/null -d $W/kpkg -S $KVER --show-depends $m | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r p; do
  rel=${p#$W/kpkg}; mkdir -p $R$(dirname $rel); cp $p $R$rel; echo $rel >> $R/modules.order.txt
done
cp kpkg/lib/modules/$KVER/modules.order kpkg/lib/modules/$KVER/modules.builtin* $R/lib/modules/$KVER/
depmod -b $R $KVER
grep -v '^\s*#' $CONFIGS | grep -v '^\s*$' > $R/configs.txt
echo $GUEST_DEADLINE > $R/deadline.txt

cat > $R/init <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /out
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
echo "@@INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.order.txt); do insmod $m 2>>/out/insmod.err || echo "insmod failed: $m"; done
/scenario.sh > /dev/console 2>&1
echo "@@SCENARIO_DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
dmesg > /out/dmesg-tail.txt
tar -cf /dev/vda -C /out . && sync
echo "@@TAR_WRITTEN"
poweroff -f
EOF
chmod +x $R/init

cat > $R/scenario.sh <<'EOF'
#!/bin/sh
T=/sys/kernel/tracing
O=/out
up() { cut -d' ' -f1 /proc/uptime; }
mark() { echo "$*" > $T/trace_marker; echo "@@MARK $* uptime=$(up)"; }
echo "@@BOOTED uptime=$(up) kernel=$(uname -r) cpus=$(nproc)"
{ uname -a; cat /proc/cmdline; grep -E 'MemTotal|MemFree' /proc/meminfo; nproc; grep -m1 'model name' /proc/cpuinfo; grep -m1 -o -w pdpe1gb /proc/cpuinfo; } > $O/guest-info.txt
cat /sys/kernel/debug/dynamic_debug/control | grep -E 'memmap_init_zone_device|altmap_alloc_block_buf|pfn_devs' > $O/dyndbg-enabled.txt 2>&1
dmesg -c > $O/dmesg-boot.txt
ndctl list -RDNu -i > $O/ndctl-list-initial.json 2>&1

# ---- labels: the QEMU NVDIMM starts with an empty label area
ndctl disable-region all > $O/label-init.txt 2>&1
ndctl init-labels -f all >> $O/label-init.txt 2>&1
ndctl enable-region all >> $O/label-init.txt 2>&1
ndctl list -RDNu > $O/ndctl-list-after-labels.json 2>&1; cat $O/ndctl-list-after-labels.json
dmesg -c > $O/dmesg-labels.txt

# ---- kprobes
kp() { if echo "$1" >> $T/kprobe_events 2>/dev/null; then echo "kprobe OK: $1"; else echo "kprobe REJECTED: $1"; fi; }
# struct dev_pagemap (6.1, no lock debugging): altmap{base_pfn 0,end_pfn 8,reserve 16,free 24,align 32,alloc 40}, ref 48, done 64,
# (struct completion = 32 bytes: done + pad + swait_queue_head{lock,list}) type 96, flags 100, vmemmap_shift 104, ops 112, owner 120,
# nr_range 128, range{start 136,end 144}; verified: range_start == start_pfn<<12 in the trace
PG='base_pfn=+0(%R):x64 end_pfn=+8(%R):x64 reserve=+16(%R):u64 free=+24(%R):u64 align=+32(%R):u64 alloc=+40(%R):u64 type=+96(%R):u32 flags=+100(%R):x32 vmemmap_shift=+104(%R):u64 nr_range=+128(%R):s32 range_start=+136(%R):x64 range_end=+144(%R):x64'
{
kp "p:kpz/memremap_pages memremap_pages $(echo "$PG" | sed 's/%R/%di/g')"
kp 'r:kpz/memremap_pages_ret memremap_pages ret=$retval:x64'
kp 'p:kpz/arch_add_memory arch_add_memory nid=%di:s32 start=%si:x64 size=%dx:x64 altmap=+0(%cx):x64'
kp 'p:kpz/__add_pages __add_pages nid=%di:s32 pfn=%si:x64 nr_pages=%dx:u64 altmap=+0(%cx):x64'
kp 'p:kpz/move_pfn_range_to_zone move_pfn_range_to_zone start_pfn=%si:x64 nr_pages=%dx:u64 altmap=%cx:x64'
kp "p:kpz/memmap_init_zone_device memmap_init_zone_device start_pfn=%si:x64 nr_pages=%dx:u64 $(echo "$PG" | sed 's/%R/%cx/g')"
kp 'r:kpz/memmap_init_zone_device_ret memmap_init_zone_device'
kp 'p:kpz/pmem_attach_disk nd_pmem:pmem_attach_disk'
kp 'r:kpz/pmem_attach_disk_ret nd_pmem:pmem_attach_disk ret=$retval:s32'
kp 'r:kpz/nvdimm_setup_pfn_ret libnvdimm:nvdimm_setup_pfn ret=$retval:s32'
kp 'r:kpz/nd_pfn_validate_ret libnvdimm:nd_pfn_validate ret=$retval:s32'
kp 'p:kpz/dev_dax_probe device_dax:dev_dax_probe'
kp 'r:kpz/dev_dax_probe_ret device_dax:dev_dax_probe ret=$retval:s32'
kp 'p:kpc/memmap_init_compound memmap_init_compound head_pfn=%si:x64 zone_idx=%dx:u64 nid=%cx:s32 nr_pages=%r9:u64'
for f in altmap_alloc_block_buf vmemmap_alloc_block_buf vmemmap_alloc_block vmemmap_alloc_block_zero vmemmap_populate_hugepages \
         vmemmap_populate_basepages vmemmap_populate_compound_pages vmemmap_populate vmemmap_populate_address __populate_section_memmap \
         sparse_add_section section_activate vmemmap_set_pmd vmemmap_use_new_sub_pmd vmemmap_use_sub_pmd vmemmap_pte_populate \
         vmemmap_pmd_populate sparse_buffer_alloc populate_section_memmap memmap_init_zone_device; do   # last one = control
  kp "p:kpv/$f $f"
  ks=$(grep -w " $f" /proc/kallsyms | head -2 | tr '\n' ';'); af=$(grep -c -w "^$f" $T/available_filter_functions)
  echo "   ($f kallsyms: ${ks:-none}; available_filter_functions matches: $af)"
done
} > $O/kprobe-setup.txt 2>&1
echo '-:kpv/memmap_init_zone_device' >> $T/kprobe_events   # control probe only
# module.dyndbg= on the kernel command line is applied by modprobe, not by busybox insmod: enable it here
echo 'module libnvdimm file pfn_devs.c +p' > /sys/kernel/debug/dynamic_debug/control
grep -E 'memmap_init_zone_device|altmap_alloc_block_buf|pfn_devs' /sys/kernel/debug/dynamic_debug/control > $O/dyndbg-enabled-after.txt
cat $O/kprobe-setup.txt
cat $T/kprobe_events > $O/kprobe_events.txt
echo 16384 > $T/buffer_size_kb
echo mono > $T/trace_clock
echo 1 > $T/events/kpz/enable
echo 1 > $T/events/kpc/enable
[ -d $T/events/kpv ] && echo 1 > $T/events/kpv/enable
HC='hist:keys=nr_pages:vals=hitcount'
HA='hist:keys=common_pid.execname,order:vals=hitcount:sort=common_pid,order'
# vmemmap_alloc_block() (RAM-backed vmemmap blocks and vmemmap page tables) allocates with GFP_KERNEL|__GFP_RETRY_MAYFAIL|__GFP_NOWARN:
# ___GFP_RETRY_MAYFAIL = 0x4000 in 6.1; key on the stack so the vmemmap callers can be told apart
HV='hist:keys=order,stacktrace:vals=hitcount:sort=order if gfp_flags & 0x4000'
echo "$HC" > $T/events/kpc/memmap_init_compound/trigger || echo "hist trigger on memmap_init_compound failed"
echo "$HA" > $T/events/kmem/mm_page_alloc/trigger || echo "hist trigger HA on mm_page_alloc failed"
echo "$HV" >> $T/events/kmem/mm_page_alloc/trigger || echo "hist trigger HV on mm_page_alloc failed"
cat $T/events/kmem/mm_page_alloc/trigger > $O/mm_page_alloc-triggers.txt
reset_hist() {
  echo "!$HC" > $T/events/kpc/memmap_init_compound/trigger; echo "$HC" > $T/events/kpc/memmap_init_compound/trigger
  echo "!$HA" >> $T/events/kmem/mm_page_alloc/trigger;       echo "$HA" >> $T/events/kmem/mm_page_alloc/trigger
  echo "!$HV" >> $T/events/kmem/mm_page_alloc/trigger;       echo "$HV" >> $T/events/kmem/mm_page_alloc/trigger
}
echo 0 > $T/tracing_on

KEPT=""
snapshot_state() { # D
  D=$1
  ndctl list -RNXu > $D/ndctl-list.json 2>&1
  daxctl list -R -D -u > $D/daxctl-list.json 2>&1
  for r in /sys/bus/nd/devices/region*; do
    for a in resource size align available_size max_available_extent mappings nstype pfn_seed dax_seed namespace_seed; do
      [ -f $r/$a ] && echo "$(basename $r)/$a: $(cat $r/$a 2>&1)"; done; done > $D/sysfs-region.txt
  for n in /sys/bus/nd/devices/namespace*; do
    for a in resource size mode holder holder_class uuid sector_size force_raw numa_node; do
      [ -f $n/$a ] && echo "$(basename $n)/$a: $(cat $n/$a 2>&1)"; done; done > $D/sysfs-namespace.txt
  for p in /sys/bus/nd/devices/pfn* /sys/bus/nd/devices/dax* /sys/bus/nd/devices/btt*; do
    [ -e $p ] || continue
    [ -n "$(cat $p/namespace 2>/dev/null)" ] || continue       # only claimed (non-seed) devices
    for a in namespace mode align resource size uuid supported_alignments; do
      [ -f $p/$a ] && echo "$(basename $p)/$a: $(cat $p/$a 2>&1)"; done; done > $D/sysfs-pfn.txt
  for x in /sys/bus/dax/devices/dax*; do
    [ -e $x ] || continue
    for a in size align resource target_node numa_node; do [ -f $x/$a ] && echo "$(basename $x)/$a: $(cat $x/$a 2>&1)"; done
    for m in $x/mapping*; do [ -d $m ] && for a in start end page_offset; do echo "$(basename $x)/$(basename $m)/$a: $(cat $m/$a)"; done; done
  done > $D/sysfs-daxdev.txt 2>&1
  awk '/Persistent Memory/{p=1} p&&/^[0-9a-f]/&&!/Persistent Memory/{p=0} p' /proc/iomem > $D/iomem.txt
}
run_cfg() { # id mode map align size keep
  id=$1; mode=$2; map=$3; align=$4; size=$5; keep=$6
  D=$O/cfg/$id; mkdir -p $D
  echo "id=$id mode=$mode map=$map align=$align size=$size keep=$keep" > $D/params.txt
  args="-r region0 -m $mode"
  [ "$map" != - ] && args="$args --map=$map"
  [ "$align" != - ] && args="$args -a $align"
  [ "$size" != - ] && args="$args -s $size"
  case $mode in sfsdax|sdevdax)   # raw namespace by ndctl, then pfn/dax personality by hand through sysfs
    args="-r region0 -m raw"; [ "$size" != - ] && args="$args -s $size"
    ndctl create-namespace $args > $D/create-raw.json 2> $D/create-raw.err
    rns=$(sed -n 's/.*"dev":"\(namespace[0-9.]*\)".*/\1/p' $D/create-raw.json | head -1)
    if [ $mode = sfsdax ]; then seed=$(cat /sys/bus/nd/devices/region0/pfn_seed); drv=nd_pmem; else seed=$(cat /sys/bus/nd/devices/region0/dax_seed); drv=dax_pmem; fi
    [ $map = dev ] && m=pmem || m=ram
    case $align in 4K) ab=4096;; 2M) ab=2097152;; 1G) ab=1073741824;; *) ab=$align;; esac
    echo "sysfs: $rns unbind from nd_pmem; $seed/uuid=<random> $seed/mode=$m $seed/align=$ab $seed/namespace=$rns; bind $seed to $drv" > $D/cmd.txt
    dmesg -c >> $O/dmesg-between.txt
    echo > $T/trace; reset_hist
    echo 1 > $T/tracing_on
    mark "BEGIN $id"
    { echo $rns > /sys/bus/nd/drivers/nd_pmem/unbind && cat /proc/sys/kernel/random/uuid > /sys/bus/nd/devices/$seed/uuid && echo $m > /sys/bus/nd/devices/$seed/mode && echo $ab > /sys/bus/nd/devices/$seed/align \
      && echo $rns > /sys/bus/nd/devices/$seed/namespace && echo $seed > /sys/bus/nd/drivers/$drv/bind; } > $D/create.json 2> $D/create.err
    echo $? > $D/create.rc
    echo "{\"dev\":\"$rns\",\"sysfs_seed\":\"$seed\",\"driver\":\"$drv\",\"bind_rc\":$(cat $D/create.rc)}" >> $D/create.json
    mark "END $id rc=$(cat $D/create.rc)"
    ;;
  *)
  echo "ndctl create-namespace $args" > $D/cmd.txt
  dmesg -c >> $O/dmesg-between.txt
  echo > $T/trace; reset_hist
  echo 1 > $T/tracing_on
  mark "BEGIN $id"
  ndctl create-namespace $args > $D/create.json 2> $D/create.err; echo $? > $D/create.rc
  mark "END $id rc=$(cat $D/create.rc)"
  ;; esac
  echo 0 > $T/tracing_on
  cat $T/trace > /tmp/tr
  grep -v ' memmap_init_compound: ' /tmp/tr > $D/trace.txt
  grep ' memmap_init_compound: ' /tmp/tr > /tmp/comp
  { echo "memmap_init_compound events: $(wc -l < /tmp/comp)"; head -3 /tmp/comp; echo "..."; tail -3 /tmp/comp; } > $D/compound.txt
  cat $T/events/kpc/memmap_init_compound/hist > $D/hist-compound.txt
  cat $T/events/kmem/mm_page_alloc/hist > $D/hist-page-alloc.txt   # both mm_page_alloc hist triggers, one after the other
  for c in $T/per_cpu/cpu*; do echo "$(basename $c): $(grep -E 'overrun|entries' $c/stats | tr '\n' ' ')"; done > $D/trace.stats
  dmesg -c > $D/dmesg.txt
  snapshot_state $D
  save
  ns=$(sed -n 's/.*"dev":"\(namespace[0-9.]*\)".*/\1/p' $D/create.json | head -1)
  [ -n "$ns" ] && KEPT="$KEPT $ns:$id"
  if [ "$keep" != keep ]; then
    for k in $KEPT; do
      n=${k%%:*}; d=$O/cfg/${k#*:}
      ndctl disable-namespace $n > $d/infoblock.json 2>&1
      ndctl read-infoblock -j $n >> $d/infoblock.json 2>&1
    done
    ndctl destroy-namespace -f all > $D/destroy.txt 2>&1
    dmesg -c >> $O/dmesg-between.txt
    KEPT=""
  fi
  echo "@@CFG $id rc=$(cat $D/create.rc) uptime=$(up) $(tr -d '\n' < $D/create.err | head -c 200)"
  save
}
# write /out to the result disk after every config: a kernel oops in a later config (seen: memunmap_pages on unbind)
# leaves the guest hung with the device lock held, and the host watchdog then kills QEMU
save() { tar -cf /dev/vda -C /out . && sync; }
DL=$(cat /deadline.txt)
while read -r id mode map align size keep; do
  if [ "$(up | cut -d. -f1)" -gt "$DL" ]; then echo "@@SKIP $id (deadline)"; echo "$id" >> $O/skipped.txt; continue; fi
  run_cfg $id $mode $map $align $size $keep
done < /configs.txt
dmesg -c >> $O/dmesg-between.txt
echo 0 > $T/events/kpz/enable
EOF
chmod +x $R/scenario.sh
(cd $R && find . | cpio -o -H newc --quiet | gzip -1 > $W/initrd-$TAG.img)
log "initramfs built: $(du -h $W/initrd-$TAG.img | cut -f1), $(wc -l < $R/configs.txt) configs"
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0

# ---------------------------------------------------------------- 3. boot (TCG)
NV=$W/nv-$TAG.img; OD=$W/outdisk-$TAG.img
rm -f $NV $OD
truncate -s $NVSIZE $NV
truncate -s 256M $OD
SERIAL=$OUT/serial.log; : > $SERIAL
QCMD=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine pc,nvdimm=on -smp 2 -m $GUEST_MEM,slots=4,maxmem=64G
  -object memory-backend-file,id=mem1,share=on,mem-path=$NV,size=$NVSIZE
  -device nvdimm,id=nvdimm1,memdev=mem1,label-size=$LABEL_SIZE
  -drive file=$OD,format=raw,if=virtio
  -kernel kpkg/boot/vmlinuz-$KVER -initrd initrd-$TAG.img
  -append "$APPEND" -display none -serial file:$SERIAL -nic none -no-reboot)
printf '%q ' "${QCMD[@]}" > $OUT/qemu-cmdline.txt; echo >> $OUT/qemu-cmdline.txt
log "qemu start (TCG)"
"${QCMD[@]}" 2> $OUT/qemu-stderr.txt &
QPID=$!
S=$(date +%s)
while kill -0 $QPID 2>/dev/null; do
  if [ $(( $(date +%s) - S )) -gt $BOOT_TIMEOUT ]; then log "TIMEOUT, killing qemu $QPID"; kill $QPID; break; fi
  # watchdog: after a guest oops, give it OOPS_GRACE s to produce another @@CFG marker, else kill
  if [ -z "${OOPS_T:-}" ] && grep -aqE 'BUG:|Oops:' $SERIAL; then OOPS_T=$(date +%s); NCFG=$(grep -ac '@@CFG' $SERIAL); log "guest oops seen: $(grep -aE 'BUG:|RIP:' $SERIAL | head -2 | tr -d '\r' | tr '\n' ' ')"; fi
  if [ -n "${OOPS_T:-}" ] && [ $(( $(date +%s) - OOPS_T )) -gt ${OOPS_GRACE:-60} ]; then
    if [ $(grep -ac '@@CFG' $SERIAL) -gt $NCFG ]; then OOPS_T=$(date +%s); NCFG=$(grep -ac '@@CFG' $SERIAL)
    else log "guest hung after oops, killing qemu $QPID"; kill $QPID; break; fi
  fi
  sleep 2
done
wait $QPID || true
log "qemu exited after $(( $(date +%s) - S ))s"

# ---------------------------------------------------------------- 4. collect
rm -rf $OUT/guest; mkdir -p $OUT/guest && tar -xf $OD -C $OUT/guest 2>/dev/null || log "no tar on outdisk"
grep -a '^@@' $SERIAL | tr -d '\r' > $OUT/serial-markers.txt || true
log "done: $(ls $OUT/guest/cfg 2>/dev/null | wc -l) configs captured"
