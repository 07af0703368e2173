#!/bin/bash
# memmap-lab: host-side wrapper that runs memmap-replay inside a QEMU guest with a real
# fsdax / devdax pmem namespace (emulated NVDIMM), under the stock Debian 6.1 kernel.
# Adapted from traces/real/layout/capture.sh (itself from shared/testbed-reference/run.sh):
# same kernel package, busybox initramfs, module loading, label init and TCG boot;
# the tracing part is replaced by run-in-guest.sh.
#
# usage (root): [TCG_THREAD=single|multi] [RUN_LIMIT=s] [STEPS=...] [EXT4_OPTS=...] [XFS_OPTS=...] [TRACE_FS_DAX=0|1] [NVSIZE=4G] [TAG=replaydax] [TESTBED_DIR=/tmp/tb] [KPKG=linux-image-6.1.0-56-amd64] \
#               [REPLAY_BIN=/work/main/target/release/memmap-replay] ./run-dax.sh
# results: $TESTBED_DIR/out/$TAG/{serial.log,qemu-cmdline.txt,provenance.txt,guest/...}
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${TESTBED_DIR:-/tmp/tb}
NVSIZE=${NVSIZE:-4G}
LABEL_SIZE=${LABEL_SIZE:-128K}
GUEST_MEM=${GUEST_MEM:-2G}
TAG=${TAG:-replaydax}
KPKG=${KPKG:-linux-image-6.1.0-56-amd64}
KVER=${KPKG#linux-image-}
REPLAY_BIN=${REPLAY_BIN:-/work/main/target/release/memmap-replay}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800}
APPEND="console=ttyS0 panic=-1 loglevel=4 log_buf_len=4M ${EXTRA_APPEND:-}"
OUT=$W/out/$TAG
mkdir -p $W $OUT
cd $W
log() { echo "[host $(date +%T)] $*" | tee -a $OUT/host-timeline.txt; }

[ -f kpkg/boot/vmlinuz-$KVER ] || { echo "kernel $KPKG not extracted in $W/kpkg (see layout/capture.sh)"; exit 1; }
KDEBVER=$(dpkg-deb -f deb/${KPKG}_*_amd64.deb Version)

# ---------------------------------------------------------------- the replay binary
# debug info makes the release binary ~440 MB: the initramfs gets a stripped copy (same code)
strip -o $W/memmap-replay.stripped $REPLAY_BIN
{ echo "kernel_package=$KPKG"; echo "kernel_deb_version=$KDEBVER"; echo "qemu=$(qemu-system-x86_64 --version | head -1)"
  echo "qemu_pkg=$(dpkg-query -W -f='${Version}' qemu-system-x86)"
  echo "ndctl_host_pkg=$(dpkg-query -W -f='${Version}' ndctl)"; echo "busybox_pkg=$(dpkg-query -W -f='${Version}' busybox-static)"
  echo "e2fsprogs_pkg=$(dpkg-query -W -f='${Version}' e2fsprogs)"; echo "xfsprogs_pkg=$(dpkg-query -W -f='${Version}' xfsprogs)"
  echo "nvsize=$NVSIZE label_size=$LABEL_SIZE guest_mem=$GUEST_MEM"
  echo "append=$APPEND"; echo "date=$(date -u +%FT%TZ)"
  echo "replay_bin=$REPLAY_BIN sha256=$(sha256sum < $REPLAY_BIN | cut -d' ' -f1) mtime=$(date -u -r $REPLAY_BIN +%FT%TZ)"
  echo "replay_bin_stripped sha256=$(sha256sum < $W/memmap-replay.stripped | cut -d' ' -f1) size=$(stat -c %s $W/memmap-replay.stripped)"
  echo "replay_version=$($REPLAY_BIN --version)"
  echo "repo_head=$(git -C /work/main rev-parse HEAD 2>/dev/null) dirty_files=$(git -C /work/main status --short 2>/dev/null | wc -l)"
} > $OUT/provenance.txt
log "kernel $KPKG ($KDEBVER)"

# ---------------------------------------------------------------- initramfs
R=$W/rootfs-$TAG
rm -rf $R && mkdir -p $R/{bin,sbin,proc,sys,dev,tmp,mnt,out,etc,lib64,usr/lib}
cp /bin/busybox $R/bin/busybox
for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox $R/bin/$a; done
cp $W/memmap-replay.stripped $R/bin/memmap-replay
# dynamic binaries + the libraries ldd lists + the loader at its absolute path
for b in $R/bin/memmap-replay /usr/bin/ndctl /usr/bin/daxctl /usr/sbin/mke2fs /usr/sbin/mkfs.xfs; do
  case $b in $R/*) ;; *) rm -f $R/bin/$(basename $b); cp $b $R/bin/ ;; esac
  for l in $(ldd $b | awk '/=>/{print $3} /ld-linux/{print $1}'); do mkdir -p $R$(dirname $l); cp -L $l $R$l; done
done
ln -sf mke2fs $R/bin/mkfs.ext4
cp /etc/mke2fs.conf $R/etc/ 2>/dev/null || true
MODS="nfit nd_pmem nd_btt dax_pmem device_dax virtio_blk virtio_pci ext4 xfs"
: > $R/modules.order.txt
for m in $MODS; do
  modprobe -C /dev/null -d $W/kpkg -S $KVER --show-depends $m | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r p; do
  rel=${p#$W/kpkg}; mkdir -p $R$(dirname $rel); cp $p $R$rel; echo $rel >> $R/modules.order.txt
done
cp kpkg/lib/modules/$KVER/modules.order kpkg/lib/modules/$KVER/modules.builtin* $R/lib/modules/$KVER/
depmod -b $R $KVER

cat > $R/init <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /out
mount -t tracefs tracefs /sys/kernel/tracing
echo "@@INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.order.txt); do insmod $m 2>>/out/insmod.err || echo "insmod failed: $m"; done
/scenario.sh > /dev/console 2>&1
echo "@@SCENARIO_DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
dmesg > /out/dmesg-after-scenario.txt
tar -cf /dev/vda -C /out . && sync
echo "@@TAR_WRITTEN"
poweroff -f
EOF
chmod +x $R/init
cp $HERE/run-in-guest.sh $R/scenario.sh; chmod +x $R/scenario.sh
{ echo "RUN_LIMIT=${RUN_LIMIT:-900}"   # guest watchdog per memmap-replay run (s)
  [ -n "${EXT4_OPTS:-}" ] && echo "EXT4_OPTS='$EXT4_OPTS'"
  [ -n "${XFS_OPTS:-}" ] && echo "XFS_OPTS='$XFS_OPTS'"
  [ -n "${STEPS:-}" ] && echo "STEPS='$STEPS'"
  echo "TRACE_FS_DAX=${TRACE_FS_DAX:-0}"; } > $R/guest-env.sh
cp $R/guest-env.sh $OUT/guest-env.sh
(cd $R && find . | cpio -o -H newc --quiet | gzip -1 > $W/initrd-$TAG.img)
log "initramfs built: $(du -h $W/initrd-$TAG.img | cut -f1)"
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0

# ---------------------------------------------------------------- boot (TCG; KVM is not available here)
NV=$W/nv-$TAG.img; OD=$W/outdisk-$TAG.img
rm -f $NV $OD
truncate -s $NVSIZE $NV     # sparse file on the host disk backs the NVDIMM
truncate -s 256M $OD        # the guest writes a tar of /out onto /dev/vda
SERIAL=$OUT/serial.log; : > $SERIAL
QCMD=(qemu-system-x86_64 -accel tcg,thread=${TCG_THREAD:-single} -cpu max -machine pc,nvdimm=on -smp 2 -m $GUEST_MEM,slots=4,maxmem=32G
  -object memory-backend-file,id=mem1,share=on,mem-path=$NV,size=$NVSIZE
  -device nvdimm,id=nvdimm1,memdev=mem1,label-size=$LABEL_SIZE
  -drive file=$OD,format=raw,if=virtio
  -kernel kpkg/boot/vmlinuz-$KVER -initrd initrd-$TAG.img
  -append "$APPEND" -display none -serial file:$SERIAL -monitor unix:$W/mon-$TAG.sock,server,nowait -nic none -no-reboot)
printf '%q ' "${QCMD[@]}" > $OUT/qemu-cmdline.txt; echo >> $OUT/qemu-cmdline.txt
log "qemu start (TCG)"
"${QCMD[@]}" 2> $OUT/qemu-stderr.txt &
QPID=$!
echo $QPID > $OUT/qemu.pid
S=$(date +%s)
while kill -0 $QPID 2>/dev/null; do
  if [ $(( $(date +%s) - S )) -gt $BOOT_TIMEOUT ]; then log "TIMEOUT, killing qemu $QPID"; kill $QPID; break; fi
  sleep 2
done
wait $QPID || true
log "qemu exited after $(( $(date +%s) - S ))s"

# ---------------------------------------------------------------- collect
rm -rf $OUT/guest; mkdir -p $OUT/guest && tar -xf $OD -C $OUT/guest 2>/dev/null || log "no tar on outdisk"
grep -a '^@@' $SERIAL | tr -d '\r' > $OUT/serial-markers.txt || true
log "done: $(ls $OUT/guest/*.run.json 2>/dev/null | wc -l) run files"
