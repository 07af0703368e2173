#!/bin/sh
# The calibration's guest driver (busybox sh), installed as /testbed/calibrate-guest.sh and
# run by /init for testbed.main=calibrate-guest.sh (see testbed/calibrate.sh).
#
# For every configuration MODE:MAP:ALIGN:SIZE of /testbed/calib.conf, on region0:
#   KREPS+1 times (repeat 0 is a warm-up, kept but not counted):
#     ndctl create-namespace -r region0 -m MODE --map=MAP -a ALIGN -s SIZE
#     with function_graph on exactly memmap_init_zone_device and move_pfn_range_to_zone
#     (set_ftrace_filter = set_graph_function = those two, max_graph_depth 1); the raw
#     trace of every repeat (between trace_marker lines "calibrate CONFIG repeat=N BEGIN"
#     and "... END rc=RC") is appended to kernel.trace, the kernel log of each create to
#     dmesg.txt (the pr_debug "memmap_init_zone_device initialised N pages" is switched
#     on), ndctl's output to ndctl.log; then ndctl destroy-namespace; before the last
#     destroy `memmap-collect snapshot` -> snapshot.jsonl
#   memmap-replay run <that snapshot, the replay target's namespace removed>
#     --strategy $STRATEGY --threads 1 --repeat RREPS --faults none --verify
#     map=mem: anonymous memory (guest RAM); map=dev: --target /dev/daxT (a devdax namespace
#     on the second NVDIMM, region1) --destroy-data
# Everything goes under /out/raw/CONFIG/; /out/status.txt has one line per configuration
# (OK, or FAIL with the reason and the log to read). Console lines starting with @@ are
# read by the host.

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
O=/out
T=/sys/kernel/tracing
up() { cut -d' ' -f1 /proc/uptime; }
con() { echo "$*" > /dev/console; }
. /testbed/calib.conf     # STRATEGY KREPS RREPS CONFIGS CMD_TIMEOUT
CMD_TIMEOUT=${CMD_TIMEOUT:-900}
save() { tar -cf /dev/vda -C $O . && sync; }

tracing_setup() {
  echo 0 > $T/tracing_on
  echo nop > $T/current_tracer
  echo > $T/trace
  echo mono > $T/trace_clock
  echo 4096 > $T/buffer_size_kb
  echo 'memmap_init_zone_device move_pfn_range_to_zone' > $T/set_ftrace_filter
  echo 'memmap_init_zone_device move_pfn_range_to_zone' > $T/set_graph_function
  echo 1 > $T/max_graph_depth
  echo function_graph > $T/current_tracer
  for o in funcgraph-proc funcgraph-abstime funcgraph-cpu funcgraph-duration funcgraph-tail; do
    echo 1 > $T/options/$o
  done
  # the pr_debug with the kernel's page count (KERN_DEBUG: not printed on the console
  # with loglevel=4, so it costs a ring-buffer write only)
  echo 'func memmap_init_zone_device +p' > /sys/kernel/debug/dynamic_debug/control
  { for f in current_tracer set_ftrace_filter set_graph_function max_graph_depth trace_clock buffer_size_kb; do
      echo "$f: $(cat $T/$f | tr '\n' ' ')"; done
    grep memmap_init_zone_device /sys/kernel/debug/dynamic_debug/control
  } > $O/tracing-setup.txt 2>&1
}

destroy_region0() { ndctl destroy-namespace -f -r region0 all; }

# config MODE MAP ALIGN SIZE
config() {
  mode=$1 map=$2 align=$3 size=$4
  name=$mode-$map-$align-$size
  D=$O/raw/$name
  mkdir -p $D
  con "@@CONFIG_BEGIN $name uptime=$(up)"
  echo "$mode $map $align $size" > $D/config.txt
  { echo "=== setup: ndctl destroy-namespace -f -r region0 all"; destroy_region0 2>&1; } > $D/ndctl.log
  why=""
  r=0
  : > $D/kernel.trace; : > $D/dmesg.txt
  while [ $r -le $KREPS ]; do
    echo > $T/trace
    dmesg -c >> $O/log/dmesg-between.txt
    cmd="ndctl create-namespace -r region0 -m $mode --map=$map -a $align -s $size"
    echo 1 > $T/tracing_on
    echo "calibrate $name repeat=$r BEGIN" > $T/trace_marker
    timeout $CMD_TIMEOUT $cmd > /tmp/create.out 2> /tmp/create.err; rc=$?
    echo "calibrate $name repeat=$r END rc=$rc" > $T/trace_marker
    echo 0 > $T/tracing_on
    cat $T/trace >> $D/kernel.trace
    { echo "=== repeat $r"; dmesg -c; } >> $D/dmesg.txt
    { echo "=== repeat $r: $cmd"; echo "rc=$rc"; cat /tmp/create.out; echo "--- stderr"; cat /tmp/create.err; } >> $D/ndctl.log
    if [ $rc != 0 ]; then
      why="create repeat $r rc=$rc: $(tail -c 300 /tmp/create.err | tr '\n' ' ') (log: raw/$name/ndctl.log, dmesg.txt)"
      break
    fi
    if [ $r = $KREPS ]; then
      memmap-collect snapshot -o $D/snapshot.jsonl > $D/snapshot.log 2>&1 \
        || why="memmap-collect snapshot rc=$? (log: raw/$name/snapshot.log)"
    fi
    { echo "=== repeat $r: ndctl destroy-namespace -f -r region0 all"; destroy_region0 2>&1; } >> $D/ndctl.log \
      || { why="${why:+$why; }destroy repeat $r failed (log: raw/$name/ndctl.log)"; break; }
    r=$((r + 1))
  done
  if [ -z "$why" ]; then
    # the namespace under test only: the replay target's namespace (region1) is dropped
    grep -v "\"kind\":\"namespace\",\"name\":\"$TARGET_NS\"" $D/snapshot.jsonl > $D/layout.jsonl
    tgt=""
    [ $map = dev ] && tgt="--target $DAXT --destroy-data"
    cmd="memmap-replay run $D/layout.jsonl --strategy $STRATEGY --threads 1 --repeat $RREPS --faults none --verify $tgt -o $D/replay.run.json --json"
    echo "$cmd" > $D/replay.cmd
    timeout $CMD_TIMEOUT $cmd > $D/replay.stdout 2> $D/replay.stderr; rc=$?
    echo $rc > $D/replay.rc
    [ $rc = 0 ] || why="memmap-replay rc=$rc: $(tail -c 300 $D/replay.stderr | tr '\n' ' ') (log: raw/$name/replay.stderr)"
    dmesg -c > $D/dmesg-replay.txt
  fi
  if [ -z "$why" ]; then
    echo "$name OK" >> $O/status.txt
    con "@@CONFIG_END $name OK uptime=$(up)"
  else
    echo "$name FAIL $why" >> $O/status.txt
    con "@@CONFIG_END $name FAIL $why uptime=$(up)"
  fi
  save
}

main() {
  mkdir -p $O/log $O/raw
  : > $O/status.txt
  con "@@BOOTED uptime=$(up) kernel=$(uname -r) cpus=$(nproc)"
  { uname -a; cat /proc/cmdline; grep -E 'MemTotal|MemFree' /proc/meminfo; echo "nproc=$(nproc)"
    grep -m1 'model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo
    echo "hypervisor: $(dmesg | grep -m1 -i 'hypervisor detected')"
    echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
    echo "memmap-replay --version: $(memmap-replay --version 2>&1)"
    echo "memmap-collect --version: $(memmap-collect --version 2>&1)"
    sha256sum /bin/memmap-replay /bin/memmap-collect
    cat /testbed/calib.conf
    # Which per-page helpers are out of line in this kernel (a symbol means a real call per
    # page: docs/fidelity.md), and the CPU mitigations that cost calls and returns.
    echo "kallsyms (init helpers):"
    grep -wE '__init_single_page|__init_zone_device_page|memmap_init_compound|memmap_init_range|set_pfnblock_flags_mask|prep_compound_tail|prep_compound_head|__x86_return_thunk|srso_return_thunk|retbleed_return_thunk' /proc/kallsyms
    echo "vulnerabilities:"
    grep -H . /sys/devices/system/cpu/vulnerabilities/* 2>&1
  } > $O/guest-info.txt 2>&1
  { ndctl disable-region all; ndctl init-labels -f all; ndctl enable-region all; ndctl list -RDNu; } > $O/log/labels.txt 2>&1
  # the replay target for map=dev: a devdax namespace on region1 (memmap in RAM, so all of
  # it is data)
  ndctl create-namespace -r region1 -m devdax --map=mem -a 2M > $O/log/target-ns.json 2> $O/log/target-ns.err
  DAXT=/dev/$(sed -n 's/.*"chardev":"\([^"]*\)".*/\1/p' $O/log/target-ns.json | head -1)
  TARGET_NS=$(sed -n 's/.*"dev":"\(namespace[^"]*\)".*/\1/p' $O/log/target-ns.json | head -1)
  echo "replay target for map=dev: $DAXT ($TARGET_NS on region1); size $(cat /sys/bus/dax/devices/${DAXT#/dev/}/size 2>&1)" >> $O/guest-info.txt
  [ -c "$DAXT" ] || con "@@ERROR no devdax target on region1: $(cat $O/log/target-ns.err)"
  tracing_setup
  dmesg -c > $O/log/dmesg-boot.txt
  for c in $CONFIGS; do
    config $(echo $c | tr ':' ' ')
  done
  { ndctl list -RNu; echo; cat /proc/iomem; } > $O/log/final-state.txt 2>&1
  echo 0 > $T/tracing_on; echo nop > $T/current_tracer
  con "@@ALL_CONFIGS_DONE failed=$(grep -c ' FAIL ' $O/status.txt) uptime=$(up)"
}

case "${1:-}" in
  main) main ;;
  *) echo "usage: calibrate-guest.sh main" >&2; exit 2 ;;
esac
