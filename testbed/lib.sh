# memmap-lab testbed: the parts the host scripts share (sourced by testbed/run.sh and
# testbed/calibrate.sh; bash). The caller defines log() and die() and sets
# ROOT, TB (= $ROOT/testbed), WORK, OUT, KPKG and KDEB_VERSION before calling these.

# tb_host_packages: install the Debian packages the testbeds need if one is missing
tb_host_packages() {
  local need="" p
  for p in qemu-system-x86 busybox-static ndctl daxctl cpio e2fsprogs xfsprogs kmod gcc libc6-dev python3; do
    dpkg -s $p >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    log "apt-get install$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
}

# tb_kernel: the pinned kernel package, fetched with apt-get download and cached under
# $WORK/deb and $WORK/kernel. Sets KVER, KDIR, KERNEL and KDEBVER.
tb_kernel() {
  KVER=${KPKG#linux-image-}
  KDIR=$WORK/kernel/$KPKG
  if [ ! -f "$KDIR/ok" ]; then
    mkdir -p "$WORK/deb"
    local deb avail got
    deb=$(ls "$WORK/deb/${KPKG}_${KDEB_VERSION}_amd64.deb" 2>/dev/null || true)
    if [ -z "$deb" ]; then
      avail=$(apt-cache madison "$KPKG" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | tr '\n' ' ')
      if [ -z "$avail" ]; then apt-get update -qq || true; avail=$(apt-cache madison "$KPKG" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | tr '\n' ' '); fi
      case " $avail " in
        *" $KDEB_VERSION "*) ;;
        *) die "apt cannot provide $KPKG=$KDEB_VERSION (apt offers: ${avail:-nothing}). The testbed's traces and checks are for this exact kernel; put the .deb at $WORK/deb/${KPKG}_${KDEB_VERSION}_amd64.deb, or set KPKG/KDEB_VERSION to another 6.1 package knowingly." ;;
      esac
      log "apt-get download $KPKG=$KDEB_VERSION"
      (cd "$WORK/deb" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KDEB_VERSION" >/dev/null) || die "apt-get download $KPKG=$KDEB_VERSION failed"
      deb=$WORK/deb/${KPKG}_${KDEB_VERSION}_amd64.deb
    fi
    got=$(dpkg-deb -f "$deb" Version)
    [ "$got" = "$KDEB_VERSION" ] || die "$deb has version $got, expected $KDEB_VERSION"
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    dpkg-deb -x "$deb" "$KDIR"
    depmod -b "$KDIR" "$KVER"
    echo "$KPKG $got" > "$KDIR/ok"
  fi
  KERNEL=$KDIR/boot/vmlinuz-$KVER
  [ -f "$KERNEL" ] || die "no $KERNEL"
  KDEBVER=$(cut -d' ' -f2 "$KDIR/ok")
}

# tb_cargo_bin PACKAGE BINARY LOGFILE: cargo build --release -p PACKAGE in $ROOT; prints
# the path of the binary (honours CARGO_TARGET_DIR)
tb_cargo_bin() {
  local pkg=$1 bin=$2 logf=$3 tdir
  log "cargo build --release -p $pkg"
  (cd "$ROOT" && cargo build --release -q -p "$pkg") > "$logf" 2>&1 \
    || { tail -30 "$logf" >&2; die "cargo build --release -p $pkg failed (log: $logf)"; }
  [ -s "$logf" ] || rm -f "$logf"
  tdir=${CARGO_TARGET_DIR:-$ROOT/target}
  case $tdir in /*) ;; *) tdir=$ROOT/$tdir ;; esac
  echo "$tdir/release/$bin"
}

# tb_rootfs R BIN...: a fresh initramfs tree at R with busybox-static, dax-touch, each BIN
# (copied, with the libraries ldd lists), ndctl, daxctl, mke2fs and mkfs.xfs, the kernel
# config as /boot/config-*, and the modules (plus their dependencies, in insmod order, listed
# in R/testbed/modules.order). Needs tb_kernel first. /init and the guest scripts are the
# caller's.
tb_rootfs() {
  local R=$1 b l m
  shift
  rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,mnt,out,etc,boot,testbed,usr/bin,usr/sbin}
  cp /bin/busybox "$R/bin/busybox"
  for a in $(/bin/busybox --list | grep -vx busybox); do ln -sf busybox "$R/bin/$a"; done
  gcc -O2 -static -Wall -o "$R/bin/dax-touch" "$TB/guest/dax-touch.c"
  for b in "$@" /usr/bin/ndctl /usr/bin/daxctl /usr/sbin/mke2fs /usr/sbin/mkfs.xfs; do
    case $b in "$R"/*) ;; *) rm -f "$R/bin/$(basename $b)"; cp "$b" "$R/bin/" ;; esac
    for l in $(ldd "$b" | awk '/=>/ && $3 ~ /^\// {print $3} /ld-linux/ {print $1}'); do
      mkdir -p "$R$(dirname $l)"; cp -L "$l" "$R$l"
    done
  done
  ln -sf mke2fs "$R/bin/mkfs.ext4"
  cp /etc/mke2fs.conf "$R/etc/" 2>/dev/null || true
  # the kernel config, for the collector's kernel-config event (Debian has no /proc/config.gz)
  cp "$KDIR/boot/config-$KVER" "$R/boot/"
  local MODS="nfit nd_pmem nd_btt dax_pmem device_dax kmem virtio_blk virtio_pci ext4 xfs"
  for m in $MODS; do
    modprobe -C /dev/null -d "$KDIR" -S "$KVER" --show-depends $m | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r p; do
    rel=${p#$KDIR/}; mkdir -p "$R/$(dirname $rel)"; cp "$p" "$R/$rel"; echo "$rel"
  done > "$R/testbed/modules.order"
  cp "$KDIR"/lib/modules/$KVER/modules.order "$KDIR"/lib/modules/$KVER/modules.builtin* "$R/lib/modules/$KVER/"
  depmod -b "$R" "$KVER"
  cp "$TB/guest/init" "$R/init"; chmod +x "$R/init"
}

# tb_pack R IMAGE: the tree R as a gzip'd newc cpio
tb_pack() {
  (cd "$1" && find . | cpio -o -H newc --quiet | gzip -1 > "$2")
}
