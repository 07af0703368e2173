#!/bin/sh
# memmap-lab: run memmap-replay inside the QEMU guest on real fsdax / devdax pmem.
# Installed as /scenario.sh in the initramfs by run-dax.sh; stdout/stderr go to the serial console.
# Everything it keeps is written under /out (tmpfs), which /init tars onto /dev/vda
# (save() also does that after every step, so a guest crash keeps what was done).
O=/out
up() { cut -d' ' -f1 /proc/uptime; }
log() { echo "@@ $* uptime=$(up)"; }
save() { tar -cf /dev/vda -C $O . && sync; }
SC="qemu-16g --scale 0.0625"

# /guest-env.sh (written by run-dax.sh): RUN_LIMIT, EXT4_OPTS, XFS_OPTS, STEPS
[ -f /guest-env.sh ] && . /guest-env.sh
RUN_LIMIT=${RUN_LIMIT:-900}                                   # guest seconds per memmap-replay run
EXT4_OPTS=${EXT4_OPTS:--b 4096 -E stride=512,stripe_width=512,lazy_itable_init=0,lazy_journal_init=0}
XFS_OPTS=${XFS_OPTS:--m reflink=0 -d su=2m,sw=1}
STEPS=${STEPS:-"ext4dax safety xfsdax ext4nodax devdax"}
step() { case " $STEPS " in *" $1 "*) return 0;; esac; return 1; }
# watch PID NAME: every 30 s, the state, wchan and kernel stack of every thread of PID
# (to the console and $O/cmd/NAME.watch); after RUN_LIMIT s, SIGABRT then SIGKILL
watch_run() {
  pid=$1; n=$2; t=0
  while kill -0 $pid 2>/dev/null; do
    sleep 5; t=$((t+5))
    if [ $((t % 30)) = 0 ]; then
      { echo "== $n t=${t}s uptime=$(up) loadavg=$(cat /proc/loadavg)"
        grep -E 'VmRSS|Threads|voluntary' /proc/$pid/status
        for tk in /proc/$pid/task/*; do
          echo "-- tid $(basename $tk) $(cut -d' ' -f3,10,12,14,15 $tk/stat) (state minflt majflt utime stime) wchan=$(cat $tk/wchan)"
          cat $tk/stack 2>/dev/null | head -12
        done
        ls -ls /mnt 2>/dev/null | head -5
      } > /tmp/w.txt 2>&1
      cat /tmp/w.txt >> $O/cmd/$n.watch; cat /tmp/w.txt
      echo w > /proc/sysrq-trigger 2>/dev/null
    fi
    if [ $t -ge $RUN_LIMIT ]; then
      echo "@@ WATCHDOG $n: still running after ${t}s, SIGABRT" | tee -a $O/cmd/$n.watch
      echo l > /proc/sysrq-trigger 2>/dev/null
      kill -ABRT $pid; sleep 10; kill -KILL $pid 2>/dev/null; break
    fi
  done
}

# fs_dax tracepoints: how many DAX faults were PMD / PTE and their results (NOPAGE, NEEDDSYNC,
# FALLBACK, ...). The events are enabled ONCE, before the first run (TRACE_FS_DAX=1): an earlier
# version toggled them around every run and the guest livelocked in the third run (both vCPUs
# spinning with IRQs off; see README). Per run only the ring buffer is cleared and counted.
# Device-dax has no tracepoints: its counts stay empty.
T=/sys/kernel/tracing
fs_dax_init() { [ "${TRACE_FS_DAX:-0}" = 1 ] && [ -d $T/events/fs_dax ] || return 0
  echo 32768 > $T/buffer_size_kb; echo 1 > $T/events/fs_dax/enable; echo 0 > $T/tracing_on; }
fs_dax_on() { [ "${TRACE_FS_DAX:-0}" = 1 ] && [ -d $T/events/fs_dax ] || return 0; echo > $T/trace; echo 1 > $T/tracing_on; }
fs_dax_off() { [ "${TRACE_FS_DAX:-0}" = 1 ] && [ -d $T/events/fs_dax ] || return 0; echo 0 > $T/tracing_on
  awk '/ dax_[a-z_]*: /{ for(i=1;i<=NF;i++) if($i ~ /^dax_.*:$/) ev=$i; r=""; if (ev ~ /done:$|insert|hole/) r=$NF; c[ev" "r]++ }
       END { for (k in c) print k, c[k] }' $T/trace | sort > $1
  grep -h -E 'overrun' $T/per_cpu/cpu*/stats | awk '{o+=$2} END {print "ring-buffer overrun", o+0}' >> $1; echo > $T/trace; }

# rr NAME ARGS... : run memmap-replay ARGS, keep cmd/stdout/stderr/rc/dmesg delta
rr() {
  name=$1; shift
  echo "memmap-replay $*" > $O/cmd/$name.cmd
  log "RUN $name: memmap-replay $*"
  dmesg -c >> $O/dmesg-all.txt
  fs_dax_on
  memmap-replay "$@" > $O/cmd/$name.stdout 2> $O/cmd/$name.stderr &
  rpid=$!
  watch_run $rpid $name &
  wpid=$!
  wait $rpid
  rc=$?
  kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
  echo $rc > $O/cmd/$name.rc
  fs_dax_off $O/cmd/$name.faults
  dmesg -c > $O/cmd/$name.dmesg
  cat $O/cmd/$name.dmesg >> $O/dmesg-all.txt
  log "END $name rc=$rc"
  cat $O/cmd/$name.stderr
  [ -s $O/cmd/$name.dmesg ] && { echo "-- dmesg during $name:"; cat $O/cmd/$name.dmesg; }
  save
  return $rc
}

# the three runs of the brief on one target path; TAG prefixes the run files
three_runs() { # TAG TARGET [extra args]
  t=$1; tg=$2; shift 2
  rr $t-duyck run $SC --strategy duyck --repeat 2 --verify --faults none --target $tg -o $O/$t-duyck.run.json --json "$@"
  rr $t-lizhe-nt run $SC --strategy lizhe-nt --repeat 2 --verify --faults none --target $tg -o $O/$t-lizhe-nt.run.json --json "$@"
  rr $t-williams-async run $SC --strategy williams-async --threads 2 --repeat 2 --verify --faults uniform --touches 200 --target $tg -o $O/$t-williams-async.run.json --json "$@"
}

state() { # TAG: mount lines, ndctl/daxctl state, fs usage
  { echo "### grep /mnt /proc/mounts"; grep " /mnt " /proc/mounts
    echo "### /proc/self/mountinfo (/mnt)"; grep " /mnt " /proc/self/mountinfo
    echo "### ndctl list -NRu"; ndctl list -NRu
    echo "### daxctl list -DRu"; daxctl list -DRu
    echo "### ls -l /dev/pmem* /dev/dax*"; ls -l /dev/pmem* /dev/dax* 2>&1
    echo "### df /mnt"; df -k /mnt
  } > $O/state-$1.txt 2>&1
}

mkdir -p $O/cmd
fs_dax_init
echo "@@BOOTED uptime=$(up) kernel=$(uname -r) cpus=$(nproc)"
{ uname -a; cat /proc/cmdline; grep -E 'MemTotal|MemAvailable' /proc/meminfo; echo "nproc=$(nproc)"
  grep -m1 'model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo
  echo "clwb=$(grep -m1 -o -w clwb /proc/cpuinfo) clflushopt=$(grep -m1 -o -w clflushopt /proc/cpuinfo) clflush=$(grep -m1 -o -w clflush /proc/cpuinfo)"
  echo "memmap-replay: $(memmap-replay --version)"; echo "sha256 $(sha256sum /bin/memmap-replay)"
} > $O/guest-info.txt 2>&1
cat $O/guest-info.txt
grep -m1 '^flags' /proc/cpuinfo > $O/cpuinfo-flags.txt
# kernel text symbols of this boot (to symbolise RIPs read from the QEMU monitor if the guest hangs)
{ grep -E ' (_text|_stext)$' /proc/kallsyms; } > $O/kallsyms-base.txt; grep -E ' [tT] ' /proc/kallsyms | gzip -1 > $O/kallsyms-text.gz
cat /sys/kernel/mm/transparent_hugepage/enabled > $O/thp.txt 2>&1
dmesg -c > $O/dmesg-boot.txt; cp $O/dmesg-boot.txt $O/dmesg-all.txt

# ---- labels (the QEMU NVDIMM starts with an empty label area)
{ ndctl disable-region all; ndctl init-labels -f all; ndctl enable-region all; } > $O/label-init.txt 2>&1
ndctl list -NRu > $O/ndctl-after-labels.json 2>&1

# ---- 1. fsdax map=dev namespace
ndctl create-namespace -r region0 -m fsdax --map=dev > $O/ns-fsdax.json 2> $O/ns-fsdax.err
cat $O/ns-fsdax.json $O/ns-fsdax.err
PMEM=/dev/$(sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p' $O/ns-fsdax.json | head -1)
log "fsdax blockdev $PMEM"
save

if [ -b "$PMEM" ]; then
  # ---- 1. ext4 -o dax
  mkfs.ext4 -F -q $EXT4_OPTS $PMEM > $O/mkfs-ext4-dax.txt 2>&1
  mount -t ext4 -o dax $PMEM /mnt > $O/mount-ext4-dax.txt 2>&1 || log "mount ext4 dax FAILED: $(cat $O/mount-ext4-dax.txt)"
  echo "mkfs.ext4 -F -q $EXT4_OPTS $PMEM" >> $O/mkfs-ext4-dax.txt
  state ext4-dax
  step ext4dax && three_runs ext4-dax /mnt/memmap.bin
  if step safety; then

  # ---- 5. data safety on a DAX filesystem (files)
  dd if=/dev/urandom of=/mnt/holds-data.bin bs=65536 count=16 2>/dev/null; sync
  sha256sum /mnt/holds-data.bin > $O/safety-holds-data.sha256.before
  rr safety-file-random run $SC --strategy duyck --repeat 1 --verify --faults none --target /mnt/holds-data.bin -o $O/safety-file-random.run.json --json
  sha256sum /mnt/holds-data.bin > $O/safety-holds-data.sha256.after
  # a memmap file kept from an earlier run
  rr safety-kept-create run $SC --strategy duyck --repeat 1 --verify --faults none --target /mnt/kept.bin --keep-target -o $O/safety-kept-create.run.json --json
  ls -l /mnt/kept.bin > $O/safety-kept.ls 2>&1
  sha256sum /mnt/kept.bin > $O/safety-kept.sha256.before
  rr safety-file-kept run $SC --strategy duyck --repeat 1 --verify --faults none --target /mnt/kept.bin -o $O/safety-file-kept.run.json --json
  sha256sum /mnt/kept.bin > $O/safety-kept.sha256.after
  # a file holding an ext4 filesystem image
  dd if=/dev/zero of=/mnt/fsimg.bin bs=1M count=32 2>/dev/null; mkfs.ext4 -F -q /mnt/fsimg.bin > /dev/null 2>&1; sync
  rr safety-file-ext4img run $SC --strategy duyck --repeat 1 --verify --faults none --target /mnt/fsimg.bin -o $O/safety-file-ext4img.run.json --json
  # the pmem block device itself
  rr safety-blockdev run $SC --strategy duyck --repeat 1 --verify --faults none --target $PMEM -o $O/safety-blockdev.run.json --json
  # and the accepted path: the random-data file with --destroy-data
  rr safety-file-random-destroy run $SC --strategy duyck --repeat 1 --verify --faults none --target /mnt/holds-data.bin --destroy-data -o $O/safety-file-random-destroy.run.json --json
  rm -f /mnt/holds-data.bin /mnt/kept.bin /mnt/fsimg.bin
  fi
  umount /mnt

  # ---- 2. xfs -o dax=always
  mkfs.xfs -f $XFS_OPTS $PMEM > $O/mkfs-xfs-dax.txt 2>&1
  mount -t xfs -o dax=always $PMEM /mnt > $O/mount-xfs-dax.txt 2>&1 || log "mount xfs dax FAILED: $(cat $O/mount-xfs-dax.txt)"
  echo "mkfs.xfs -f $XFS_OPTS $PMEM" >> $O/mkfs-xfs-dax.txt
  state xfs-dax
  step xfsdax && three_runs xfs-dax /mnt/memmap.bin
  umount /mnt

  # ---- 3. non-DAX control: ext4 on the same pmem block device, mounted without dax
  mkfs.ext4 -F -q $EXT4_OPTS $PMEM > $O/mkfs-ext4-nodax.txt 2>&1
  mount -t ext4 $PMEM /mnt > $O/mount-ext4-nodax.txt 2>&1 || log "mount ext4 (no dax) FAILED"
  state ext4-nodax
  step ext4nodax && three_runs ext4-nodax /mnt/memmap.bin
  umount /mnt
else
  log "no fsdax block device, skipping 1-3"
fi

# ---- 4. devdax namespace on the same region (its data area still holds the last ext4)
step devdax || { log "devdax step not selected"; ndctl list -NRu > $O/ndctl-list-final.json 2>&1; dmesg -c >> $O/dmesg-all.txt; tail -n 150 $O/dmesg-all.txt > $O/dmesg-tail.txt; exit 0; }
ndctl destroy-namespace -f all > $O/ns-destroy.txt 2>&1
ndctl create-namespace -r region0 -m devdax > $O/ns-devdax.json 2> $O/ns-devdax.err
cat $O/ns-devdax.json $O/ns-devdax.err
DAX=/dev/$(sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p' $O/ns-devdax.json | head -1)
log "devdax chardev $DAX"
state devdax
for a in size align resource target_node; do echo "$a: $(cat /sys/bus/dax/devices/${DAX#/dev/}/$a 2>&1)"; done > $O/devdax-sysfs.txt
save
if [ -c "$DAX" ]; then
  # first without --destroy-data: the data check decides
  if rr devdax-duyck run $SC --strategy duyck --repeat 2 --verify --faults none --target $DAX -o $O/devdax-duyck.run.json --json; then
    DD=""
  else
    cp $O/cmd/devdax-duyck.stderr $O/devdax-first-refusal.txt
    for f in cmd stdout stderr rc dmesg; do mv $O/cmd/devdax-duyck.$f $O/cmd/devdax-refused.$f; done
    DD=--destroy-data
    rr devdax-duyck run $SC --strategy duyck --repeat 2 --verify --faults none --target $DAX -o $O/devdax-duyck.run.json --json $DD
  fi
  rr devdax-lizhe-nt run $SC --strategy lizhe-nt --repeat 2 --verify --faults none --target $DAX -o $O/devdax-lizhe-nt.run.json --json $DD
  rr devdax-williams-async run $SC --strategy williams-async --threads 2 --repeat 2 --verify --faults uniform --touches 200 --target $DAX -o $O/devdax-williams-async.run.json --json $DD
  # data safety: the device now holds memmap records from the runs above
  rr safety-devdax-records run $SC --strategy duyck --repeat 1 --verify --faults none --target $DAX -o $O/safety-devdax-records.run.json --json
  # data safety: an ext4 signature at offset 0 of the device, written through the fsdax personality
  ndctl destroy-namespace -f all >> $O/ns-destroy.txt 2>&1
  ndctl create-namespace -r region0 -m fsdax --map=dev > $O/ns-fsdax2.json 2>&1
  P2=/dev/$(sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p' $O/ns-fsdax2.json | head -1)
  [ -b "$P2" ] && { dd if=/dev/zero of=$P2 bs=1M count=64 2>/dev/null; mkfs.ext4 -F -q -b 4096 $P2 > $O/mkfs-ext4-sig.txt 2>&1; sync; }
  ndctl destroy-namespace -f all >> $O/ns-destroy.txt 2>&1
  ndctl create-namespace -r region0 -m devdax > $O/ns-devdax2.json 2>&1
  DAX2=/dev/$(sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p' $O/ns-devdax2.json | head -1)
  state devdax2
  rr safety-devdax-ext4sig run $SC --strategy duyck --repeat 1 --verify --faults none --target $DAX2 -o $O/safety-devdax-ext4sig.run.json --json
else
  log "no devdax char device, skipping 4"
fi

ndctl list -NRu > $O/ndctl-list-final.json 2>&1
dmesg -c >> $O/dmesg-all.txt
tail -n 150 $O/dmesg-all.txt > $O/dmesg-tail.txt
log "guest script done"
