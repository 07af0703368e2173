//! Every era writer leaves the records `struct_page` builds independently, sets the
//! pageblocks it should, and takes the pgmap reference as its kernel did.

use super::*;
use crate::struct_page::{
    base_flags, expected_compound_record, expected_record, PageClass, PGMAP_BASE, ZONE_DEVICE,
    ZONE_NORMAL,
};
use memmap_model::run::RecordFlavor;

const PB: u64 = 512;

fn device(flavor: RecordFlavor) -> PageClass {
    PageClass::Device {
        pgmap: PGMAP_BASE,
        flavor,
    }
}

/// A buffer of `n` records pre-filled with garbage (the kernel zeroes nothing first).
fn garbage(n: usize) -> Vec<[u64; 8]> {
    vec![[0x5a5a_5a5a_5a5a_5a5a; 8]; n]
}

fn cx<'a>(class: PageClass, zone: u64, pb: &'a Pageblocks, r: &'a PgmapRef) -> PageCx<'a> {
    PageCx {
        zone,
        node: 3,
        class,
        pageblocks: pb,
        pgmap_ref: r,
    }
}

#[test]
fn v6_1_device_pages_and_pageblocks() {
    let (first, n) = (0x10_0000u64 + 100, 1500usize);
    let pb = Pageblocks::new(first, n as u64, PB);
    let r = PgmapRef::new(false);
    let c = cx(device(RecordFlavor::DeviceData), ZONE_DEVICE, &pb, &r);
    let mut b = garbage(n);
    unsafe { v6_1::init_device_run(b.as_mut_ptr() as *mut u8, first, n, &c) };
    let flags = base_flags(ZONE_DEVICE, 3);
    for (i, rec) in b.iter().enumerate() {
        assert_eq!(
            *rec,
            expected_record(first + i as u64, flags, c.class),
            "pfn +{i}"
        );
    }
    // Pageblocks whose first pfn is in the run are movable; the partial first one is not.
    assert_eq!(pb.get(first), 0);
    let aligned = first.div_ceil(PB) * PB;
    assert_eq!(pb.get(aligned), MIGRATE_MOVABLE);
    assert_eq!(pb.get(aligned + PB), MIGRATE_MOVABLE);
}

#[test]
fn v6_1_altmap_and_ram_pages_point_to_themselves() {
    for zone in [ZONE_DEVICE, ZONE_NORMAL] {
        let pb = Pageblocks::new(4096, 1024, PB);
        let r = PgmapRef::new(false);
        let c = cx(PageClass::SystemRam, zone, &pb, &r);
        let mut b = garbage(1024);
        unsafe { v6_1::init_range_run(b.as_mut_ptr() as *mut u8, 4096, 1024, &c) };
        for (i, rec) in b.iter().enumerate() {
            let pfn = 4096 + i as u64;
            assert_eq!(
                *rec,
                expected_record(pfn, base_flags(zone, 3), PageClass::SystemRam)
            );
        }
        assert_eq!(pb.get(4096), MIGRATE_MOVABLE);
        assert_eq!(pb.get(4096 + 512), MIGRATE_MOVABLE);
    }
}

/// A compound page written as the engine does: `per` records, possibly in two pieces.
fn compound(era: Era, order: u32, per: u64, split: Option<u64>) -> Vec<[u64; 8]> {
    let head = 1u64 << 20;
    let pb = Pageblocks::new(head, 1 << order, PB);
    let r = PgmapRef::new(false);
    let c = cx(device(RecordFlavor::DeviceData), ZONE_DEVICE, &pb, &r);
    let mut b = garbage(per as usize);
    let base = b.as_mut_ptr() as *mut u8;
    let mut t = lizhe::Templates::new(&c);
    let pieces = match split {
        Some(k) => vec![(0, k), (k, per - k)],
        None => vec![(0, per)],
    };
    unsafe {
        let first_tail = words(base, 1);
        for (i0, k) in pieces {
            let dst = base.add(i0 as usize * 64);
            match era {
                Era::V6_1 => v6_1::init_compound_run(dst, head, i0, k, order, first_tail, &c),
                Era::Lizhe(s) => {
                    lizhe::init_compound_run(dst, head, i0, k, order, first_tail, &c, s, &mut t)
                }
                _ => unreachable!(),
            }
        }
    }
    if era == Era::V6_1 {
        pb.set_range_movable(head, 1 << order);
    }
    assert_eq!(pb.get(head), MIGRATE_MOVABLE, "{era:?}: head pageblock");
    b
}

#[test]
fn compound_pages_of_every_6x_writer() {
    let flags = base_flags(ZONE_DEVICE, 3);
    let eras = [
        Era::V6_1,
        Era::Lizhe(lizhe::Step::HeadTemplate),
        Era::Lizhe(lizhe::Step::TailTemplate),
        Era::Lizhe(lizhe::Step::Streaming),
    ];
    for era in eras {
        // map=mem (128 unique struct pages), map=dev (all 512), and a compound cut by a
        // vmemmap block boundary right after the first tail.
        for (per, split) in [(128, None), (512, None), (512, Some(2)), (512, Some(1))] {
            let b = compound(era, 9, per, split);
            for (i, rec) in b.iter().enumerate() {
                let want = expected_compound_record(1 << 20, i as u64, 9, flags, PGMAP_BASE);
                assert_eq!(*rec, want, "{era:?} per {per} split {split:?}: record {i}");
            }
        }
    }
}

#[test]
fn lizhe_device_runs_equal_the_6_1_records() {
    let flags = base_flags(ZONE_DEVICE, 3);
    for step in [
        lizhe::Step::HeadTemplate,
        lizhe::Step::TailTemplate,
        lizhe::Step::Streaming,
    ] {
        let pb = Pageblocks::new(0, 2048, PB);
        let r = PgmapRef::new(false);
        let c = cx(device(RecordFlavor::DeviceData), ZONE_DEVICE, &pb, &r);
        let t = lizhe::Templates::new(&c);
        let mut b = garbage(2048);
        unsafe { lizhe::init_device_run(b.as_mut_ptr() as *mut u8, 0, 2048, &c, step, &t) };
        for (i, rec) in b.iter().enumerate() {
            assert_eq!(
                *rec,
                expected_record(i as u64, flags, c.class),
                "{step:?} {i}"
            );
        }
        for k in 0..4 {
            assert_eq!(pb.get(k * PB), MIGRATE_MOVABLE);
        }
    }
}

#[test]
fn pre_4_20_two_passes_and_one_pass_leave_the_poisoned_record() {
    let flags = base_flags(ZONE_DEVICE, 3);
    let class = device(RecordFlavor::Poison);
    for atomic in [true, false] {
        let pb = Pageblocks::new(0, 1000, PB);
        let r = PgmapRef::new(atomic);
        let c = cx(class, ZONE_DEVICE, &pb, &r);
        let mut pc = PercpuCounter::default();
        // 4.19: pass 1 leaves the list self-pointers, pass 2 poisons and sets pgmap.
        let mut b = garbage(1000);
        unsafe { v4_19::pass1_run(b.as_mut_ptr() as *mut u8, 0, 1000, &c) };
        assert_eq!(b[7], expected_record(7, flags, PageClass::SystemRam));
        unsafe { v4_19::pass2_run(b.as_mut_ptr() as *mut u8, 1000, &c, &mut pc) };
        // Seed 003 patch 03: both in one loop.
        let mut one = garbage(1000);
        unsafe { v4_19::williams_run(one.as_mut_ptr() as *mut u8, 0, 1000, &c, &mut pc) };
        for i in 0..1000 {
            assert_eq!(
                b[i],
                expected_record(i as u64, flags, class),
                "two passes {i}"
            );
            assert_eq!(
                one[i],
                expected_record(i as u64, flags, class),
                "one pass {i}"
            );
        }
        assert_eq!(pb.get(0), MIGRATE_MOVABLE);
        assert_eq!(pb.get(512), MIGRATE_MOVABLE);
        // One reference per page per pass run: on the shared counter (fsdax, atomic
        // mode) or on this thread's per-CPU counter (devdax).
        let (shared, local) = if atomic { (2000, 0) } else { (0, 2000) };
        assert_eq!(
            (r.atomic_count(), pc.0),
            (shared, local),
            "atomic mode {atomic}"
        );
    }
}

#[test]
fn pre_4_20_ram_pages_get_no_device_part() {
    let pb = Pageblocks::new(0, 64, PB);
    let r = PgmapRef::new(true);
    let c = cx(PageClass::SystemRam, ZONE_NORMAL, &pb, &r);
    let mut pc = PercpuCounter::default();
    let mut b = garbage(64);
    unsafe { v4_19::williams_run(b.as_mut_ptr() as *mut u8, 0, 64, &c, &mut pc) };
    let flags = base_flags(ZONE_NORMAL, 3);
    for (i, rec) in b.iter().enumerate() {
        assert_eq!(*rec, expected_record(i as u64, flags, PageClass::SystemRam));
    }
    assert_eq!((r.atomic_count(), pc.0), (0, 0));
}

#[test]
fn setting_a_pageblock_keeps_its_neighbours() {
    let pb = Pageblocks::new(0, 64 * PB, PB);
    // Neighbours with another migratetype (3) and the high bit of the 4-bit field.
    for k in [0u64, 2, 15, 16] {
        let (w, s) = pb.slot(k * PB).unwrap();
        w.fetch_or(0xb << s, Ordering::Relaxed);
    }
    pb.set_movable(PB);
    pb.set_movable(17 * PB);
    assert_eq!(pb.get(PB), MIGRATE_MOVABLE);
    assert_eq!(pb.get(17 * PB), MIGRATE_MOVABLE);
    for k in [0u64, 2, 15, 16] {
        assert_eq!(pb.get(k * PB), 0xb, "pageblock {k}");
    }
    // Outside the bitmap: ignored, no panic.
    pb.set_movable(1 << 40);
    assert_eq!(pb.get(1 << 40), 0);
}
