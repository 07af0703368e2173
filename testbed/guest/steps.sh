#!/bin/sh
# The testbed's guest driver (busybox sh), installed as /testbed/steps.sh.
#
#   steps.sh main         run the steps named by testbed.steps=a,b,c on the kernel command line
#   steps.sh body STEP    the part of STEP that runs under `memmap-collect record`
#
# Per step: setup_STEP (not recorded), then
#   memmap-collect record -o /out/STEP.jsonl --note ... -- /bin/sh /testbed/steps.sh body STEP
# and, inside the body, `memmap-collect snapshot -o /out/STEP.snapshot.jsonl` once the
# namespace / memory exists. Exit codes and stderr of every collector call are kept under
# /out/log/. If `record` never ran the body (no /out/log/STEP.body.rc afterwards), the body
# is run bare so the following steps still find their namespaces; the step then counts as
# failed and no trace is made up for it.
#
# Console lines starting with @@ are read by the host (testbed/run.sh): @@STEP_BEGIN,
# @@STEP_END, @@HOTPLUG_READY (the host then hot-adds a pc-dimm through the QEMU monitor).

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
O=/out
L=/out/log
STEP_TIMEOUT=${STEP_TIMEOUT:-150}   # guest seconds per recorded step
up() { cut -d' ' -f1 /proc/uptime; }
con() { echo "$*" > /dev/console; }
blockdev_of() { sed -n 's/.*"blockdev":"\([^"]*\)".*/\1/p' "$1" | head -1; }
nsname_of() { sed -n 's/.*"dev":"\(namespace[^"]*\)".*/\1/p' "$1" | head -1; }
nblocks() { ls -d /sys/devices/system/memory/memory* 2>/dev/null | wc -l; }

# ------------------------------------------------------------------ recorded bodies
# (run as `steps.sh body STEP`; stdout/stderr go to /out/log/STEP.log)
mark() {
  [ -n "${MEMMAP_COLLECT_MARKER:-}" ] && echo "$*" > "$MEMMAP_COLLECT_MARKER"
  con "@@MARK $STEP: $* uptime=$(up)"
  echo "mark: $* uptime=$(up)"
}
snap() { # collector snapshot of the state the step created
  memmap-collect snapshot -o $O/$STEP.snapshot.jsonl > $L/$STEP.snapshot.stdout 2> $L/$STEP.snapshot.stderr
  r=$?; echo $r > $L/$STEP.snapshot.rc
  echo "snapshot rc=$r"; [ $r = 0 ] || con "@@ERROR $STEP: memmap-collect snapshot rc=$r: $(tail -c 300 $L/$STEP.snapshot.stderr)"
}
create_ns() { # MODE MAP
  mark "BEGIN create $1 map=$2"
  ndctl create-namespace -m $1 --map=$2 -r region0 > $L/$STEP.ndctl.json; r=$?
  mark "END create $1 map=$2 rc=$r"
  cat $L/$STEP.ndctl.json
  return $r
}
hotplug() { # ID SIZE EXPECTED_NEW_BLOCKS
  nb0=$(nblocks)
  mark "BEGIN hotplug $1 size=$2 blocks=$nb0"
  con "@@HOTPLUG_READY id=$1 size=$2"
  i=0
  while [ $(nblocks) -lt $((nb0 + $3)) ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done
  nb1=$(nblocks)
  mark "END hotplug $1 blocks=$nb0->$nb1"
  [ $nb1 -ge $((nb0 + $3)) ] || { echo "expected $3 new memory blocks, got $((nb1 - nb0))"; return 1; }
  mark "BEGIN online"
  n=0; bad=0
  for b in /sys/devices/system/memory/memory*; do
    [ "$(cat $b/state)" = offline ] || continue
    if echo online_movable > $b/state; then n=$((n+1)); else bad=$((bad+1)); echo "online_movable failed: $b"; fi
  done
  mark "END online blocks=$n failed=$bad"
  grep -E 'MemTotal|MemFree' /proc/meminfo
  [ $n -ge $3 ] && [ $bad = 0 ]
}
fs_body() { # FS MOUNTOPTS
  PMEM=$(cat /tmp/pmem-dev)
  mark "BEGIN mount $1 -o $2"
  mount -t $1 -o $2 $PMEM /mnt || { mark "END mount failed"; return 1; }
  grep " /mnt " /proc/mounts
  mark "END mount"
  mark "BEGIN dax-touch $1 64MiB"
  dax-touch /mnt/dax-touch.bin 64; r=$?
  mark "END dax-touch $1 rc=$r"
  umount /mnt || r=1
  return $r
}
body() {
  STEP=$1
  case $STEP in
    fsdax-mem)
      create_ns fsdax mem || return 1
      snap
      ns=$(nsname_of $L/$STEP.ndctl.json)
      mark "BEGIN destroy $ns"
      ndctl destroy-namespace -f $ns; r=$?
      mark "END destroy $ns rc=$r"
      return $r ;;
    fsdax-dev)  create_ns fsdax dev  && snap ;;
    devdax-mem) create_ns devdax mem && snap ;;
    devdax-dev) create_ns devdax dev && snap ;;
    ext4-dax)   fs_body ext4 dax ;;
    xfs-dax)    fs_body xfs dax=always ;;
    hotplug-1g) hotplug hp1 1G 8 && snap ;;
    hotplug-mom)
      echo "memmap_on_memory=$(cat /sys/module/memory_hotplug/parameters/memmap_on_memory)"
      hotplug hp2 128M 1 && snap ;;
    *) echo "unknown step $STEP"; return 2 ;;
  esac
}

# ------------------------------------------------------------------ setup (not recorded)
destroy_all() { ndctl destroy-namespace -f all >> $L/$1.setup.log 2>&1; }
ensure_fsdax() { # STEP: an fsdax namespace with a pmem block device -> /tmp/pmem-dev
  PMEM=$(ls /dev/pmem* 2>/dev/null | head -1)
  if [ -z "$PMEM" ]; then
    destroy_all $1
    ndctl create-namespace -m fsdax --map=dev -r region0 > /tmp/ns.json 2>> $L/$1.setup.log
    cat /tmp/ns.json >> $L/$1.setup.log
    PMEM=/dev/$(blockdev_of /tmp/ns.json)
  fi
  echo $PMEM > /tmp/pmem-dev
  [ -b "$PMEM" ]
}
setup() {
  STEP=$1
  case $STEP in
    fsdax-*|devdax-*) destroy_all $STEP ;;
    ext4-dax) ensure_fsdax $STEP && mkfs.ext4 -F -q -b 4096 -E stride=512,stripe_width=512 $(cat /tmp/pmem-dev) >> $L/$STEP.setup.log 2>&1 ;;
    xfs-dax)  ensure_fsdax $STEP && mkfs.xfs -f -q -m reflink=0 -d su=2m,sw=1 $(cat /tmp/pmem-dev) >> $L/$STEP.setup.log 2>&1 ;;
    hotplug-*) : ;;
  esac
}

# run_step STEP: setup, record with the body as the command, watchdog, bookkeeping
# boot-harvest: what boot-time tracing (the third boot's command line) recorded
harvest_step() {
  s=boot-harvest
  t0=$(up)
  con "@@STEP_BEGIN $s uptime=$t0"
  grep memmap_init_zone_device /sys/kernel/debug/dynamic_debug/control > $L/$s.log 2>&1
  cat /sys/kernel/tracing/current_tracer /sys/kernel/tracing/kprobe_events >> $L/$s.log 2>&1
  memmap-collect boot -o $O/$s.jsonl > $L/$s.record.stdout 2> $L/$s.record.stderr; rrc=$?
  echo $rrc > $L/$s.record.rc
  res=OK; [ $rrc = 0 ] && [ -s $O/$s.jsonl ] || res=FAIL
  t1=$(up); secs=$(echo "$t0 $t1" | awk '{printf "%.1f", $2-$1}')
  echo "$s result=$res secs=$secs record_rc=$rrc body_rc=0 trace_bytes=$(stat -c %s $O/$s.jsonl 2>/dev/null || echo 0)" >> $L/steps.txt
  con "@@STEP_END $s result=$res secs=$secs record_rc=$rrc body_rc=0 uptime=$t1"
  [ $res = OK ]
}

run_step() {
  s=$1
  [ $s = boot-harvest ] && { harvest_step; return; }
  t0=$(up)
  con "@@STEP_BEGIN $s uptime=$t0"
  if ! setup $s; then
    con "@@STEP_END $s result=FAIL reason=setup-failed secs=0 uptime=$(up)"
    tail -5 $L/$s.setup.log
    return 1
  fi
  rm -f $L/$s.body.rc
  memmap-collect record -o $O/$s.jsonl --note "memmap-lab testbed step $s" --note "QEMU TCG, emulated 16 GiB NVDIMM" \
    -- /bin/sh /testbed/steps.sh body $s > $L/$s.record.stdout 2> $L/$s.record.stderr &
  rp=$!
  w=0
  while kill -0 $rp 2>/dev/null; do
    sleep 1; w=$((w+1))
    if [ $((w % 30)) = 0 ]; then  # where is the collector? (kernel stacks of its threads)
      { echo "== $s record pid $rp after ${w}s, uptime $(up), loadavg $(cat /proc/loadavg)"
        for tk in /proc/$rp/task/*; do
          echo "-- tid ${tk##*/} $(cut -d' ' -f2,3,14,15 $tk/stat 2>/dev/null) wchan=$(cat $tk/wchan 2>/dev/null)"
          head -8 $tk/stack 2>/dev/null
        done
        for c in $(cat /proc/$rp/task/*/children 2>/dev/null); do echo "-- child $c: $(tr '\0' ' ' < /proc/$c/cmdline 2>/dev/null)"; done
        tail -c 300 $L/$s.record.stderr
      } >> $L/$s.watch 2>&1
      con "@@WAIT $s: record running for ${w}s ($(tail -n1 $L/$s.record.stderr 2>/dev/null | cut -c1-120))"
    fi
    if [ $w = $STEP_TIMEOUT ]; then con "@@WATCHDOG $s: record still running after ${w}s, SIGINT"; kill -INT $rp; fi
    if [ $w = $((STEP_TIMEOUT + 20)) ]; then con "@@WATCHDOG $s: SIGKILL"; kill -KILL $rp; fi
  done
  wait $rp; rrc=$?
  echo $rrc > $L/$s.record.rc
  t1=$(up)
  res=OK; why=""
  if [ ! -f $L/$s.body.rc ]; then
    res=FAIL; why="record did not run the step command"
    con "@@ERROR $s: memmap-collect record rc=$rrc did not run the step; stderr: $(tail -c 400 $L/$s.record.stderr) stdout: $(tail -c 200 $L/$s.record.stdout)"
    con "@@ERROR $s: running the step bare (NOT recorded) so later steps find their state"
    /bin/sh /testbed/steps.sh body $s
    echo "bare run (not recorded) rc=$(cat $L/$s.body.rc 2>/dev/null)" >> $L/$s.record.stderr
  fi
  brc=$(cat $L/$s.body.rc 2>/dev/null || echo none)
  [ "$brc" = 0 ] || { res=FAIL; why="${why:+$why; }step command rc=$brc"; }
  [ "$rrc" = 0 ] || { res=FAIL; why="${why:+$why; }record rc=$rrc"; }
  [ -s $O/$s.jsonl ] || { res=FAIL; why="${why:+$why; }no trace file"; }
  if [ -f $L/$s.snapshot.rc ] && [ "$(cat $L/$s.snapshot.rc)" != 0 ]; then res=FAIL; why="${why:+$why; }snapshot rc=$(cat $L/$s.snapshot.rc)"; fi
  secs=$(echo "$t0 $t1" | awk '{printf "%.1f", $2-$1}')
  echo "$s result=$res secs=$secs record_rc=$rrc body_rc=$brc trace_bytes=$(stat -c %s $O/$s.jsonl 2>/dev/null || echo 0) ${why:+reason=\"$why\"}" >> $L/steps.txt
  [ $res = OK ] || tail -3 $L/$s.record.stderr > /dev/console 2>/dev/null
  con "@@STEP_END $s result=$res secs=$secs record_rc=$rrc body_rc=$brc ${why:+reason=\"$why\"} uptime=$t1"
  [ $res = OK ]
}

main() {
  mkdir -p $L
  STEPS=$(sed -n 's/.*testbed\.steps=\([^ ]*\).*/\1/p' /proc/cmdline | tr ',' ' ')
  con "@@BOOTED uptime=$(up) kernel=$(uname -r) cpus=$(nproc) steps=$STEPS"
  { uname -a; cat /proc/cmdline; grep -E 'MemTotal|MemFree' /proc/meminfo; echo "nproc=$(nproc)"
    grep -m1 'model name' /proc/cpuinfo
    echo "memory block size: $(cat /sys/devices/system/memory/block_size_bytes)"
    echo "auto_online_blocks: $(cat /sys/devices/system/memory/auto_online_blocks)"
    grep . /sys/module/memory_hotplug/parameters/* 2>/dev/null
    echo "memmap-collect --version: $(memmap-collect --version 2>&1)"
  } > $L/guest-info.txt 2>&1
  # "memmap_init_zone_device initialised N pages in M ms" is a pr_debug in 6.1: the
  # collector switches it on for each recording (and off after); record its state here.
  grep memmap_init_zone_device /sys/kernel/debug/dynamic_debug/control >> $L/guest-info.txt 2>&1
  case " $STEPS " in *" fsdax-"*|*" devdax-"*|*" ext4-"*|*" xfs-"*)
    # the QEMU NVDIMM's label area starts empty: initialise it (not recorded)
    { ndctl disable-region all; ndctl init-labels -f all; ndctl enable-region all; ndctl list -RDNu; } > $L/labels.txt 2>&1 ;;
  esac
  : > $L/steps.txt
  failed=0
  for s in $STEPS; do run_step $s || failed=$((failed+1)); done
  { ndctl list -RNu; echo; cat /proc/iomem; } > $L/final-state.txt 2>&1
  con "@@ALL_STEPS_DONE failed=$failed uptime=$(up)"
  return $failed
}

case "${1:-}" in
  main) main ;;
  body)
    STEP=$2
    exec > $L/$STEP.log 2>&1
    echo "body $STEP start uptime=$(up) marker=${MEMMAP_COLLECT_MARKER:-none}"
    body $STEP; r=$?
    echo "body $STEP end rc=$r uptime=$(up)"
    echo $r > $L/$STEP.body.rc
    exit $r ;;
  *) echo "usage: steps.sh main | body STEP" >&2; exit 2 ;;
esac
