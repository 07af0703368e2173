//! `ndctl list` / `ndctl list -RDNu` / `ndctl list -i` / `ndctl create-namespace` /
//! `daxctl list` JSON, as users paste it.
//!
//! Accepts a single object, an array, objects nested under "regions" / "namespaces" /
//! "devices" / "dimms" / "buses" / "daxregion", `-u` human-readable sizes
//! ("16.00 GiB (17.18 GB)", "0x100000000"), prompt lines above and shell junk below,
//! several documents one after the other, and a truncated paste (the complete objects
//! before the break are kept and an `ImportWarning` names the line where it broke).
//!
//! Every object with a "dev" (ndctl) or "chardev" (daxctl) becomes an `NdDevice` with its
//! scalar fields as attributes (verbatim as printed). Every fsdax/devdax namespace also
//! becomes a `Namespace`. ndctl prints a namespace's *usable* size (the pfn/dax device size:
//! namespace size - info block/memmap offset - end_trunc, see `util_namespace_to_json`),
//! not the namespace resource size the layout starts from; the importer recovers the
//! namespace size: the whole region when the namespace is its region's only one and the
//! region has no space left, otherwise the smallest 16 MiB-multiple namespace whose layout
//! (`memmap_model::layout::namespace_layout`, Linux 6.1 rules) gives that usable size,
//! with a warning when that is ambiguous or `-u` rounding leaves several candidates.
//! ndctl does not print physical addresses: a namespace without "resource" is placed at
//! 0x100000000 (the first address above 4 GiB, where QEMU and most platforms put the
//! first NVDIMM), with one warning.
//!
//! Streamed in bounded memory, in two passes over the input (the warnings about the text
//! around and between the documents come before the devices, as they always did): a
//! [`Window`] holds the text from the current document on, at most [`DOC_MAX`] ahead. A
//! document that fits is read whole; a longer array (a 1 GB `ndctl list`) is read element
//! by element, each element at most [`DOC_MAX`]; a longer object is skipped with a warning.

use crate::import::json_node::{get, Node, Str};
use crate::import::lines::{rewind, LineStats, TwoPass, BATCH};
use anyhow::Result;
use memmap_model::layout::{namespace_layout, LayoutParams, MapLocation, NamespaceSpec, NsMode};
use memmap_model::trace::TraceEvent;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Seek};

/// Where a namespace without a "resource" field is assumed to start.
pub const DEFAULT_START: u64 = 0x1_0000_0000;

/// Import ndctl/daxctl JSON text (the contents of `file`).
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    crate::import::lines::two_pass_text(file, text, stream)
}

/// Streams ndctl/daxctl JSON from `r` (two passes; see the module documentation),
/// handing batches of events to `send`. `st` counts the lines, the device objects
/// (recognised) and the lines skipped. Ok(false) when `send` refused a batch.
pub fn stream<R: Read + Seek>(io: TwoPass<'_, R>) -> Result<bool> {
    let TwoPass {
        r,
        name,
        chunk,
        st,
        send,
    } = io;
    let mut cx = Cx {
        file: name.to_string(),
        events: Vec::new(),
        assumed_start_line: None,
        devices: 0,
        sizes: SizeCache::default(),
    };
    let mut flush = |cx: &mut Cx, all: bool| -> bool {
        // NdDevice events hold a dozen strings: smaller batches bound the memory in flight
        if (all && !cx.events.is_empty()) || cx.events.len() >= BATCH / 4 {
            send(std::mem::replace(
                &mut cx.events,
                crate::import::lines::new_batch(),
            ))
        } else {
            true
        }
    };
    let mut w = Window::new(&mut *r, name, chunk);
    if !scan(&mut w, Pass::Warn, &mut cx, st, &mut flush)? || !flush(&mut cx, true) {
        return Ok(false);
    }
    st.bytes = w.end() as u64;
    drop(w);
    rewind(r, name)?;
    let mut w = Window::new(&mut *r, name, chunk);
    let mut st2 = LineStats::default();
    if !scan(&mut w, Pass::Walk, &mut cx, &mut st2, &mut flush)? {
        return Ok(false);
    }
    st.recognised = cx.devices;
    if let Some(line) = cx.assumed_start_line {
        cx.warn(
            line,
            format!(
                "ndctl list prints no physical addresses: namespaces placed at {DEFAULT_START:#x} \
                 (read /sys/bus/nd/devices/namespaceX.Y/resource for the real start)"
            ),
        );
    }
    Ok(flush(&mut cx, true))
}

struct Cx {
    file: String,
    events: Vec<TraceEvent>,
    assumed_start_line: Option<usize>,
    /// `NdDevice` events made.
    devices: u64,
    sizes: SizeCache,
}

/// What [`namespace_size`] gave for a namespace shape. The layout check behind it costs
/// ~30 us a namespace: a large listing repeats a few shapes.
#[derive(Default)]
struct SizeCache(std::collections::HashMap<SizeKey, Result<(u64, Option<String>), String>>);

/// mode, map, align, start, usable interval, and the region's namespaces, size,
/// available size and align.
type SizeKey = (
    bool,
    bool,
    u64,
    u64,
    (u64, u64),
    Option<(usize, Option<(u64, u64)>, Option<(u64, u64)>, Option<u64>)>,
);

impl SizeCache {
    const MAX: usize = 4096;

    fn size(
        &mut self,
        spec: &mut NamespaceSpec,
        usable: (u64, u64),
        region: Option<&RegionCx>,
    ) -> Result<Option<String>, String> {
        let key: SizeKey = (
            spec.mode == NsMode::Fsdax,
            spec.map == MapLocation::Dev,
            spec.align_bytes,
            spec.start_phys,
            usable,
            region.map(|r| (r.namespaces, r.size, r.available, r.align)),
        );
        if let Some(r) = self.0.get(&key) {
            return r.clone().map(|(size, note)| {
                spec.size_bytes = size;
                note
            });
        }
        let r = namespace_size(spec, usable, region);
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0
            .insert(key, r.clone().map(|note| (spec.size_bytes, note)));
        r
    }
}

/// The region around a namespace, for the namespace size.
#[derive(Clone, Debug, Default)]
struct RegionCx {
    size: Option<(u64, u64)>,
    available: Option<(u64, u64)>,
    align: Option<u64>,
    resource: Option<u64>,
    namespaces: usize,
}

impl Cx {
    fn warn(&mut self, line: usize, reason: String) {
        self.events.push(TraceEvent::ImportWarning {
            file: self.file.clone(),
            line,
            reason,
        });
    }

    /// The devices of `v` (taken apart: its strings move into the events).
    fn walk(&mut self, v: Node<'_>, line: usize, region: Option<&RegionCx>) {
        match v {
            Node::Array(items) => {
                for it in items {
                    self.walk(it, line, region);
                }
            }
            Node::Object(map) => {
                let dev = get(&map, "dev")
                    .and_then(Node::as_str)
                    .or_else(|| get(&map, "chardev").and_then(Node::as_str));
                let devtype = match dev {
                    Some(d) => Some(devtype_of(d, &map)),
                    None if has(&map, "id") && (has(&map, "devices") || has(&map, "path")) => {
                        Some("dax_region")
                    }
                    None => None,
                };
                let mut own_region = None;
                let mut device = None;
                if let Some(devtype) = devtype {
                    let name = match dev {
                        Some(d) => d.to_string(),
                        None => format!(
                            "dax_region{}",
                            get(&map, "id").and_then(attr).unwrap_or_default()
                        ),
                    };
                    if devtype == "nd_region" {
                        let nss = get(&map, "namespaces")
                            .and_then(Node::as_array)
                            .map_or(0, |a| a.len());
                        own_region = Some(RegionCx {
                            size: get(&map, "size").and_then(size_interval),
                            available: get(&map, "available_size").and_then(size_interval),
                            align: get(&map, "align")
                                .and_then(size_interval)
                                .and_then(|(lo, hi)| pow2_in(lo, hi)),
                            resource: get(&map, "resource").and_then(exact_u64),
                            namespaces: nss,
                        });
                    }
                    if devtype.starts_with("nd_namespace") {
                        self.namespace(&name, &map, line, region);
                    }
                    device = Some((name, devtype));
                }
                // The scalars become the attributes; collected from the object's sorted
                // order, the attribute map is built in one go (inserting them one by one
                // was ~15 % of an ndctl import).
                let mut nested = Vec::new();
                let attrs: BTreeMap<String, String> = map
                    .into_iter()
                    .filter_map(|(k, val)| match val {
                        Node::String(s) => Some((k.into_owned(), s.into_owned())),
                        Node::Number(n) => Some((k.into_owned(), number(&n))),
                        Node::Bool(b) => Some((k.into_owned(), b.to_string())),
                        Node::Array(_) | Node::Object(_) => {
                            if k != "badblocks" && k != "mappings" {
                                nested.push(val);
                            }
                            None
                        }
                        Node::Null => None,
                    })
                    .collect();
                if let Some((name, devtype)) = device {
                    self.devices += 1;
                    self.events.push(TraceEvent::NdDevice {
                        dev: name,
                        devtype: devtype.to_string(),
                        attrs,
                    });
                }
                let region = own_region.as_ref().or(region);
                for val in nested {
                    self.walk(val, line, region);
                }
            }
            _ => {}
        }
    }

    /// `Namespace` for an fsdax/devdax namespace object.
    fn namespace(
        &mut self,
        name: &str,
        map: &[(Cow<'_, str>, Node<'_>)],
        line: usize,
        region: Option<&RegionCx>,
    ) {
        let Some(mode_s) = get(map, "mode").and_then(Node::as_str) else {
            return;
        };
        let mode = match mode_s.trim().to_ascii_lowercase().as_str() {
            "fsdax" | "memory" => NsMode::Fsdax,
            "devdax" | "dax" => NsMode::Devdax,
            _ => return, // raw / sector: no pfn layout
        };
        let map_loc = match get(map, "map").and_then(Node::as_str) {
            Some("dev") => MapLocation::Dev,
            Some("mem") => MapLocation::Mem,
            other => {
                self.warn(
                    line,
                    format!(
                        "{name}: map is {other:?}, expected \"dev\" or \"mem\"; no namespace layout"
                    ),
                );
                return;
            }
        };
        let align = match get(map, "align") {
            Some(a) => match size_interval(a).and_then(|(lo, hi)| pow2_in(lo, hi)) {
                Some(a) => a,
                None => {
                    self.warn(
                        line,
                        format!(
                            "{name}: align {a} is not a power-of-two size; no namespace layout"
                        ),
                    );
                    return;
                }
            },
            None => {
                self.warn(
                    line,
                    format!("{name}: no \"align\" (old ndctl); assumed 2 MiB, the kernel default"),
                );
                2 << 20
            }
        };
        let Some(usable) = get(map, "size").and_then(size_interval) else {
            self.warn(
                line,
                format!(
                    "{name}: no readable \"size\" (expected bytes, \"0x...\" or \"N.NN GiB (N.NN GB)\"); no namespace layout"
                ),
            );
            return;
        };
        let start = match get(map, "resource").and_then(exact_u64) {
            Some(r) => r,
            None => match region.and_then(|r| r.resource) {
                Some(r) if region.is_some_and(|r| r.namespaces == 1) => r,
                _ => {
                    self.assumed_start_line.get_or_insert(line);
                    DEFAULT_START
                }
            },
        };
        let node = ["numa_node", "target_node"]
            .iter()
            .find_map(|k| get(map, k).and_then(Node::as_i64))
            .map_or(0, |n| n.max(0) as u32);
        let mut spec = NamespaceSpec {
            name: name.to_string(),
            size_bytes: 0,
            mode,
            map: map_loc,
            align_bytes: align,
            node,
            start_phys: start,
        };
        match self.sizes.size(&mut spec, usable, region) {
            Ok(note) => {
                if let Some(note) = note {
                    self.warn(line, format!("{name}: {note}"));
                }
                self.events.push(TraceEvent::Namespace {
                    name: spec.name,
                    mode,
                    map: map_loc,
                    size_bytes: spec.size_bytes,
                    align_bytes: align,
                    start_phys: start,
                    node,
                });
            }
            Err(reason) => self.warn(line, format!("{name}: {reason}; no namespace layout")),
        }
    }
}

/// A scalar as an attribute value (as ndctl printed it).
fn attr(v: &Node) -> Option<String> {
    match v {
        Node::String(s) => Some(s.to_string()),
        Node::Number(n) => Some(number(n)),
        Node::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `n.to_string()`: the same digits for integers (serde_json prints them with `itoa`
/// too), without `fmt` (~1 s of a 1 GB import, five numbers an object).
fn number(n: &serde_json::Number) -> String {
    let mut b = itoa::Buffer::new();
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => b.format(u).to_string(),
        (None, Some(i)) => b.format(i).to_string(),
        _ => n.to_string(),
    }
}

fn has(map: &[(Cow<'_, str>, Node<'_>)], key: &str) -> bool {
    get(map, key).is_some()
}

fn devtype_of(dev: &str, map: &[(Cow<'_, str>, Node<'_>)]) -> &'static str {
    let base = dev.trim_start_matches('/');
    if has(map, "chardev") && !has(map, "dev") {
        "dev_dax"
    } else if base.starts_with("namespace") {
        "nd_namespace_pmem"
    } else if base.starts_with("region") {
        "nd_region"
    } else if base.starts_with("nmem") {
        "nvdimm"
    } else if base.starts_with("ndbus") {
        "nd_bus"
    } else if base.starts_with("pfn") {
        "nd_pfn"
    } else if base.starts_with("btt") {
        "nd_btt"
    } else if base.starts_with("dax") {
        "nd_dax"
    } else {
        "unknown"
    }
}

/// Usable size left by a namespace of `spec.size_bytes` (pfn/dax `size` attribute):
/// `nd_pfn_init` on Linux 6.1 (start_pad 0, `offset` = info block + memmap with map=dev,
/// rounded up to max(align, 2 MiB); end_trunc = the end's misalignment). The same arithmetic
/// as `namespace_layout`, without building the vmemmap, so the size search stays cheap for
/// TiB namespaces; the chosen size is checked with `namespace_layout`.
fn usable_fast(spec: &NamespaceSpec, p: &LayoutParams) -> Option<u64> {
    let (start, size) = (spec.start_phys, spec.size_bytes);
    let align = spec.align_bytes.max(p.compat_align);
    let end = start.checked_add(size)?;
    if size <= p.info_block_size || !start.is_multiple_of(p.compat_align) {
        return None;
    }
    let npfns = (size - p.info_block_size) / p.page_size;
    let up = |x: u64| x.checked_next_multiple_of(align);
    let offset = match spec.map {
        MapLocation::Dev => up(start
            .checked_add(p.info_block_size)?
            .checked_add(p.max_struct_page_size.checked_mul(npfns)?)?)?,
        MapLocation::Mem => up(start.checked_add(p.info_block_size)?)?,
    } - start;
    let end_trunc = end - end / align * align;
    size.checked_sub(offset)?
        .checked_sub(end_trunc)
        .filter(|u| *u > 0)
}

/// The usable size per the model itself.
fn usable_size(spec: &NamespaceSpec, p: &LayoutParams) -> Option<u64> {
    let l = namespace_layout(spec, p).ok()?;
    let ps = p.page_size;
    (l.res_pages * ps).checked_sub(l.dataoff_bytes + (l.start_pad_pages + l.end_trunc_pages) * ps)
}

/// Sets `spec.size_bytes` to the namespace size that leaves `usable` (an interval: exact,
/// or what a `-u` rounding allows); Ok(Some(note)) when the choice is a guess.
fn namespace_size(
    spec: &mut NamespaceSpec,
    usable: (u64, u64),
    region: Option<&RegionCx>,
) -> Result<Option<String>, String> {
    let p = LayoutParams::linux_6_1();
    let ralign = region
        .and_then(|r| r.align)
        .filter(|a| *a >= p.page_size)
        .unwrap_or(p.region_align);
    let (lo, hi) = usable;
    let fits = |spec: &mut NamespaceSpec, s: u64| {
        spec.size_bytes = s;
        usable_fast(spec, &p).is_some_and(|u| u >= lo && u <= hi)
    };
    let checked = |spec: &NamespaceSpec| -> Result<(), String> {
        match usable_size(spec, &p) {
            Some(u) if u >= lo && u <= hi => Ok(()),
            other => Err(format!(
                "the layout model gives usable size {other:?} for namespace size {}, not {lo}..={hi}",
                spec.size_bytes
            )),
        }
    };
    // The only namespace of a full region spans it (ndctl create-namespace without --size).
    if let Some(r) = region {
        if let (1, Some((rlo, rhi)), Some((0, 0))) = (r.namespaces, r.size, r.available) {
            let (a, b) = (rlo / ralign * ralign, rhi / ralign * ralign);
            let cands: Vec<u64> = (a / ralign..=b / ralign)
                .map(|k| k * ralign)
                .filter(|s| *s > 0 && fits(spec, *s))
                .collect();
            if let Some(&s) = cands.last() {
                spec.size_bytes = s;
                checked(spec)?;
                return Ok((cands.len() > 1).then(|| {
                    format!("region size rounded by -u: namespace size taken as {s} (whole region)")
                }));
            }
        }
    }
    if hi == 0 {
        return Err("size 0".into());
    }
    // Smallest namespace whose layout leaves `usable`: the memmap (64 B per 4 KiB page),
    // the info block and two aligns bound the overhead.
    let first = (lo / ralign).max(1);
    let slack = hi / 32 + 2 * spec.align_bytes.max(p.compat_align) + 4 * ralign;
    let last = hi.saturating_add(slack) / ralign + 1;
    if last.saturating_sub(first) > 1 << 22 {
        return Err(format!("size {hi} too large to search"));
    }
    let found = (first..=last)
        .filter_map(|k| k.checked_mul(ralign))
        .find(|s| fits(spec, *s));
    let Some(s) = found else {
        return Err(format!(
            "no {}-aligned namespace size leaves a usable size in [{lo}, {hi}] with map={} align={}",
            ralign, spec.map, spec.align_bytes
        ));
    };
    let mut alts = 0;
    let mut k = s / ralign + 1;
    while k <= last && k.checked_mul(ralign).is_some_and(|s| fits(spec, s)) {
        alts += 1;
        k += 1;
    }
    spec.size_bytes = s;
    checked(spec)?;
    Ok((alts > 0).then(|| {
        format!(
            "namespace size ambiguous: {} sizes from {s} to {} leave usable size {} (align {}); took the smallest",
            alts + 1,
            s.saturating_add(alts * ralign),
            if lo == hi { lo.to_string() } else { format!("{lo}..{hi}") },
            spec.align_bytes
        )
    }))
}

/// A power of two in [lo, hi] (the align of a `-u` size).
fn pow2_in(lo: u64, hi: u64) -> Option<u64> {
    (0..64).map(|s| 1u64 << s).find(|a| *a >= lo && *a <= hi)
}

fn exact_u64(v: &Node) -> Option<u64> {
    match size_interval(v)? {
        (lo, hi) if lo == hi => Some(lo),
        _ => None,
    }
}

/// A size as ndctl prints it: a number, "0x..." / decimal string, "4K"-style, or with -u
/// "16.00 GiB (17.18 GB)" (rounded: the interval both figures allow).
fn size_interval(v: &Node) -> Option<(u64, u64)> {
    match v {
        Node::Number(n) => n.as_u64().map(|x| (x, x)),
        Node::String(s) => parse_size_text(s),
        _ => None,
    }
}

fn parse_size_text(s: &str) -> Option<(u64, u64)> {
    let t = s.trim();
    if let Ok(x) = memmap_model::layout::parse_size(t) {
        return Some((x, x));
    }
    // "16.00 GiB (17.18 GB)" / "512.00 MiB" / "(17.18 GB)"
    let mut lo = 0u64;
    let mut hi = u64::MAX;
    let mut any = false;
    for part in t.split(['(', ')']) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (num, unit) = part.split_once(char::is_whitespace)?;
        let unit_bytes: f64 = match unit.trim() {
            "KiB" => 1024.0,
            "MiB" => 1048576.0,
            "GiB" => 1073741824.0,
            "TiB" => 1099511627776.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            _ => return None,
        };
        let x: f64 = num.parse().ok()?;
        if !x.is_finite() || x < 0.0 {
            return None;
        }
        let decimals = num.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
        let half = 0.5 * 10f64.powi(-decimals);
        let a = ((x - half) * unit_bytes).floor().max(0.0);
        let b = ((x + half) * unit_bytes).ceil();
        if b >= u64::MAX as f64 {
            return None;
        }
        lo = lo.max(a as u64);
        hi = hi.min(b as u64);
        any = true;
    }
    (any && lo <= hi).then_some((lo, hi))
}

/// The longest document read whole, and the longest element of a longer array.
pub const DOC_MAX: usize = 2 << 20;
/// The part of a line that is looked at for a warning (the rest is skipped unread).
const LINE_MAX: usize = 1 << 20;

/// The text of an input from the current position on, decoded as
/// `String::from_utf8_lossy` of the whole input would be (pieces are cut after an ASCII
/// byte, which ends every UTF-8 sequence). Positions are offsets in the decoded text.
struct Window<R> {
    r: R,
    name: String,
    chunk: usize,
    text: String,
    /// Position of `text[0]`.
    base: usize,
    /// Bytes read and not decoded yet (after the last ASCII byte).
    raw: Vec<u8>,
    eof: bool,
    /// `line_at(anchor) == anchor_line`.
    anchor: usize,
    anchor_line: usize,
}

impl<R: Read> Window<R> {
    fn new(r: R, name: &str, chunk: usize) -> Self {
        Window {
            r,
            name: name.to_string(),
            chunk: chunk.clamp(1, 1 << 20),
            text: String::new(),
            base: 0,
            raw: Vec::new(),
            eof: false,
            anchor: 0,
            anchor_line: 1,
        }
    }

    fn end(&self) -> usize {
        self.base + self.text.len()
    }

    /// Reads a piece; false at the end of the input.
    fn more(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let have = self.raw.len();
        self.raw.resize(have + self.chunk, 0);
        let n = loop {
            match self.r.read(&mut self.raw[have..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.raw.truncate(have);
                    let line = self.line_at(self.end());
                    anyhow::bail!("{}:{line}: cannot read: {e}", self.name);
                }
            }
        };
        self.raw.truncate(have + n);
        let cut = if n == 0 {
            self.eof = true;
            self.raw.len()
        } else {
            match self.raw.iter().rposition(|b| b.is_ascii()) {
                Some(i) => i + 1,
                // no ASCII byte in 4 chunks: not JSON anyway, cut anywhere
                None if self.raw.len() >= 4 * self.chunk => self.raw.len(),
                None => 0,
            }
        };
        match std::str::from_utf8(&self.raw[..cut]) {
            Ok(s) => self.text.push_str(s),
            Err(_) => self
                .text
                .push_str(&String::from_utf8_lossy(&self.raw[..cut])),
        }
        self.raw.drain(..cut);
        Ok(true)
    }

    /// The text reaches `abs` (or the input ends before).
    fn ensure(&mut self, abs: usize) -> Result<()> {
        while self.end() < abs && self.more()? {}
        Ok(())
    }

    fn s(&self, a: usize, b: usize) -> &str {
        &self.text[a - self.base..b - self.base]
    }

    /// The text before `abs` is not needed any more.
    fn release(&mut self, abs: usize) {
        let k = abs - self.base;
        if k >= self.chunk && k * 2 >= self.text.len() {
            self.line_at(abs);
            let k = floor_char(&self.text, k);
            self.text.drain(..k);
            self.base += k;
        }
    }

    /// 1-based line of position `abs` (at or after the released text).
    fn line_at(&mut self, abs: usize) -> usize {
        let (a, b) = (self.anchor.min(abs), self.anchor.max(abs));
        // memchr: a byte-by-byte count was ~5 % of an import
        let n =
            memchr::memchr_iter(b'\n', &self.text.as_bytes()[a - self.base..b - self.base]).count();
        self.anchor_line = if abs >= self.anchor {
            self.anchor_line + n
        } else {
            self.anchor_line - n
        };
        self.anchor = abs;
        self.anchor_line
    }

    /// End of the line at `pos` (its `\n`, or the end of the input), and whether the
    /// whole line is in the text (false: only its first [`LINE_MAX`] bytes).
    fn line_end(&mut self, pos: usize) -> Result<(usize, bool)> {
        let mut from = pos;
        loop {
            if let Some(i) = self.text.as_bytes()[from - self.base..]
                .iter()
                .position(|&c| c == b'\n')
            {
                return Ok((from + i, true));
            }
            from = self.end();
            if from - pos > LINE_MAX {
                return Ok((
                    floor_char(&self.text, pos + LINE_MAX - self.base) + self.base,
                    false,
                ));
            }
            if !self.more()? {
                return Ok((self.end(), true));
            }
        }
    }

    /// The start of the line after the one at `pos` (or the end of the input); with
    /// `release`, reading past an overlong line without keeping it (and the text before
    /// `pos` is not needed any more).
    fn next_line(&mut self, pos: usize, release: bool) -> Result<usize> {
        let mut from = pos;
        loop {
            if let Some(i) = self.text.as_bytes()[from - self.base..]
                .iter()
                .position(|&c| c == b'\n')
            {
                return Ok(from + i + 1);
            }
            from = self.end();
            if release {
                self.release(from);
            }
            if !self.more()? {
                return Ok(self.end());
            }
        }
    }

    /// The start of line `target`, scanning on from `pos` (on line `line`).
    fn line_start(&mut self, mut pos: usize, mut line: usize, target: usize) -> Result<usize> {
        while line < target && pos < self.end() {
            pos = self.next_line(pos, false)?;
            line += 1;
            self.ensure(pos + 1)?;
        }
        Ok(pos.min(self.end()))
    }

    /// The end of the JSON value starting at `pos` by bracket matching (no validation),
    /// reading on without keeping what was read; None if the input ends first.
    fn skip_value(&mut self, pos: usize) -> Result<Option<usize>> {
        let (mut depth, mut in_str, mut esc) = (0usize, false, false);
        let mut at = pos;
        loop {
            self.ensure(at + 1)?;
            if at >= self.end() {
                return Ok(None);
            }
            for (i, &b) in self.text.as_bytes()[at - self.base..].iter().enumerate() {
                if in_str {
                    match b {
                        _ if esc => esc = false,
                        b'\\' => esc = true,
                        b'"' => in_str = false,
                        _ => {}
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(Some(at + i + 1));
                        }
                    }
                    _ => {}
                }
            }
            at = self.end();
            self.release(at);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Warnings about the text around the documents and where documents break.
    Warn,
    /// The devices of the documents.
    Walk,
}

/// The first JSON value of `text` and the bytes it took.
fn first_value<'a, T: serde::Deserialize<'a>>(
    text: &'a str,
) -> Option<Result<(T, usize), serde_json::Error>> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<T>();
    match stream.next()? {
        Ok(v) => Some(Ok((v, stream.byte_offset()))),
        Err(e) => Some(Err(e)),
    }
}

/// Where the document that starts at `start` (line `lineno`) broke, as the whole-text
/// reader computed it: (line, position).
fn break_at<R: Read>(
    w: &mut Window<R>,
    start: usize,
    lineno: usize,
    e: &serde_json::Error,
) -> Result<(usize, usize)> {
    let err_line = lineno + e.line().saturating_sub(1);
    let line_start = if err_line == lineno {
        start
    } else {
        w.line_start(start, lineno, err_line)?.max(start)
    };
    let err_off = (line_start + e.column().saturating_sub(1)).min(w.end());
    let err_off = floor_char(&w.text, err_off - w.base) + w.base;
    let mut err_line = err_line;
    if w.eof && w.raw.is_empty() {
        // lines of the whole text, as str::lines counts them
        let end = w.end();
        let total = w.line_at(end) - usize::from(w.text.ends_with('\n'));
        err_line = err_line.min(total.max(1));
    }
    Ok((err_line, err_off))
}

/// Scans the documents of the input: a line whose first non-blank character is `{` or
/// `[` starts one. In [`Pass::Warn`] warns (into `cx`, counted in `st`) about lines
/// outside documents and documents that break; in [`Pass::Walk`] walks the documents
/// (and what was complete of a broken one). Ok(false) when `flush` refused events.
fn scan<R: Read>(
    w: &mut Window<R>,
    pass: Pass,
    cx: &mut Cx,
    st: &mut LineStats,
    flush: &mut impl FnMut(&mut Cx, bool) -> bool,
) -> Result<bool> {
    let warn = |cx: &mut Cx, st: &mut LineStats, line: usize, reason: String| {
        if pass == Pass::Warn {
            st.skip(line, || reason.clone());
            cx.warn(line, reason);
        }
    };
    let mut pos = 0usize;
    loop {
        if !flush(cx, false) {
            return Ok(false);
        }
        w.release(pos);
        w.ensure(pos + 1)?;
        if pos >= w.end() {
            break;
        }
        let lineno = w.line_at(pos);
        st.lines = lineno as u64;
        let (le, _) = w.line_end(pos)?;
        let line = w.s(pos, le);
        let trimmed = line.trim_start();
        if trimmed.trim_end().is_empty() {
            pos = w.next_line(pos, true)?;
            continue;
        }
        if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
            let reason = format!(
                "not ndctl/daxctl JSON (expected a line starting a JSON object or array), skipped: {:?}",
                short(line.trim())
            );
            warn(cx, st, lineno, reason);
            pos = w.next_line(pos, true)?;
            continue;
        }
        let start = pos + (line.len() - trimmed.len());
        w.ensure(start + DOC_MAX)?;
        let whole = w.eof && w.raw.is_empty();
        let parsed = match pass {
            Pass::Warn => first_value::<serde::de::IgnoredAny>(w.s(start, w.end()))
                .map(|r| r.map(|(_, n)| (None, n))),
            Pass::Walk => {
                first_value::<Node>(w.s(start, w.end())).map(|r| r.map(|(v, n)| (Some(v), n)))
            }
        };
        let end = match parsed {
            None => {
                pos = w.next_line(pos, true)?;
                continue;
            }
            Some(Ok((v, n))) => {
                if let Some(v) = v {
                    cx.walk(v, lineno, None);
                }
                start + n
            }
            Some(Err(e)) if e.is_eof() && !whole => {
                // longer than DOC_MAX
                let first = w.s(start, start + 1) == "[";
                match if first {
                    long_array(w, pass, cx, st, start, lineno, flush)?
                } else {
                    let reason = format!(
                        "a JSON object longer than {} MiB (ndctl prints small objects, or a \
                         long array of them), skipped",
                        DOC_MAX >> 20
                    );
                    warn(cx, st, lineno, reason);
                    w.skip_value(start)?
                } {
                    Some(end) => end,
                    None => break,
                }
            }
            Some(Err(e)) => {
                let (err_line, err_off) = break_at(w, start, lineno, &e)?;
                let partial = salvage(w.s(start, err_off));
                let n = partial.as_ref().map_or(0, count_objects);
                if partial.is_none() && err_line == lineno {
                    // `[root@host ~]# ...`, `[   12.3] dmesg`: not a document at all.
                    let (le, _) = w.line_end(pos)?;
                    let reason = format!(
                        "not ndctl/daxctl JSON (expected a JSON object or array), skipped: {:?}",
                        short(w.s(pos, le).trim())
                    );
                    warn(cx, st, lineno, reason);
                    pos = w.next_line(pos, true)?;
                    continue;
                }
                let what = if e.is_eof() {
                    TRUNCATED.to_string()
                } else {
                    format!("JSON breaks ({e})")
                };
                broken_document(pass, cx, st, &what, n, (err_line, lineno), partial);
                // Resume on the line after the break (or after the start line).
                let resume_line = err_line.max(lineno);
                pos = w.line_start(pos, lineno, resume_line + 1)?;
                continue;
            }
        };
        // The rest of the line after the document: junk unless blank.
        let (rest_end, _) = w.line_end(end)?;
        let rest_full = w.s(end, rest_end);
        let rest = rest_full.trim();
        let lead = rest_full.len() - rest_full.trim_start().len();
        if !rest.is_empty() && !rest.starts_with('{') && !rest.starts_with('[') {
            let reason = format!("text after the JSON document skipped: {:?}", short(rest));
            let at = w.line_at(end);
            warn(cx, st, at, reason);
            pos = w.next_line(end, true)?;
        } else if !rest.is_empty() {
            // Another document on the same line: scan it as its own line.
            pos = end + lead;
        } else {
            pos = w.next_line(end, true)?;
        }
    }
    let end = w.end();
    st.lines = st.lines.max(w.line_at(end) as u64);
    Ok(true)
}

/// An array document longer than [`DOC_MAX`] (starting at `start`, line `lineno`),
/// element by element; the end of the array, or None when the input ends inside it (or
/// after a break: then the scan resumes after the line that broke... not here: at the
/// end of the input).
fn long_array<R: Read>(
    w: &mut Window<R>,
    pass: Pass,
    cx: &mut Cx,
    st: &mut LineStats,
    start: usize,
    lineno: usize,
    flush: &mut impl FnMut(&mut Cx, bool) -> bool,
) -> Result<Option<usize>> {
    let warn = |cx: &mut Cx, st: &mut LineStats, line: usize, reason: String| {
        if pass == Pass::Warn {
            st.skip(line, || reason.clone());
            cx.warn(line, reason);
        }
    };
    let mut p = start + 1;
    let mut objects = 0usize;
    let mut first = true;
    // a break: (line, reason)
    let broke = |w: &mut Window<R>, at: usize, msg: &str, objects: usize| {
        let line = w.line_at(at);
        let rel = line - lineno + 1;
        let what = format!("JSON breaks ({msg} at line {rel})");
        (line, kept_reason(&what, objects, (line, lineno)))
    };
    loop {
        if !flush(cx, false) {
            return Ok(None);
        }
        w.release(p);
        // whitespace, then `]`, `,` or (first) an element
        loop {
            w.ensure(p + 1)?;
            let rest = w.s(p, w.end());
            let t = rest.trim_start();
            p += rest.len() - t.len();
            if !t.is_empty() || w.eof {
                break;
            }
        }
        if p >= w.end() {
            let line = w.line_at(p);
            warn(
                cx,
                st,
                line,
                kept_reason(TRUNCATED, objects, (line, lineno)),
            );
            return Ok(None);
        }
        let c = w.s(p, p + 1).to_string();
        if c == "]" {
            return Ok(Some(p + 1));
        }
        if !first {
            if c != "," {
                let (line, reason) = broke(w, p, "expected `,` or `]`", objects);
                warn(cx, st, line, reason);
                return resume_after(w, line);
            }
            p += 1;
            w.ensure(p + 1)?;
            let rest = w.s(p, w.end());
            p += rest.len() - rest.trim_start().len();
        }
        first = false;
        w.ensure(p + DOC_MAX)?;
        let whole = w.eof && w.raw.is_empty();
        let parsed = match pass {
            Pass::Warn => first_value::<DevCount>(w.s(p, w.end())).map(|r| {
                r.map(|(c, n)| {
                    objects += c.0;
                    n
                })
            }),
            Pass::Walk => first_value::<Node>(w.s(p, w.end())).map(|r| {
                r.map(|(v, n)| {
                    cx.walk(v, lineno, None);
                    n
                })
            }),
        };
        match parsed {
            Some(Ok(n)) => p += n,
            Some(Err(e)) if e.is_eof() && !whole => {
                let line = w.line_at(p);
                warn(
                    cx,
                    st,
                    line,
                    format!(
                        "an array element longer than {} MiB (ndctl prints small objects), skipped",
                        DOC_MAX >> 20
                    ),
                );
                match w.skip_value(p)? {
                    Some(end) => p = end,
                    None => return Ok(None),
                }
            }
            None => {
                let (line, reason) = broke(w, p, "EOF while parsing a list", objects);
                warn(cx, st, line, reason);
                return Ok(None);
            }
            Some(Err(e)) => {
                let el_line = w.line_at(p);
                let (err_line, err_off) = break_at(w, p, el_line, &e)?;
                let partial = salvage(w.s(p, err_off));
                let n = objects + partial.as_ref().map_or(0, count_objects);
                let what = if e.is_eof() {
                    TRUNCATED.to_string()
                } else {
                    let msg = e.to_string();
                    let msg = msg.rsplit_once(" at line ").map_or(&*msg, |(m, _)| m);
                    format!("JSON breaks ({msg} at line {})", err_line - lineno + 1)
                };
                broken_document(pass, cx, st, &what, n, (err_line, lineno), partial);
                return resume_after(w, err_line);
            }
        }
    }
}

/// Why a document broke, when the input ended inside it.
const TRUNCATED: &str = "input ends inside a JSON document (truncated paste?)";

/// The warning for a document started at line `lineno` that broke at line `err_line`
/// (`what`), of which `kept` complete device objects are kept.
fn kept_reason(what: &str, kept: usize, (err_line, lineno): (usize, usize)) -> String {
    format!(
        "{what}; kept the {kept} complete device object(s) before line {err_line}, dropped the \
         rest of the document started at line {lineno}"
    )
}

/// A document that broke (see [`kept_reason`]): warned about in [`Pass::Warn`], the
/// complete objects before the break (`partial`) walked in [`Pass::Walk`].
fn broken_document(
    pass: Pass,
    cx: &mut Cx,
    st: &mut LineStats,
    what: &str,
    kept: usize,
    (err_line, lineno): (usize, usize),
    partial: Option<Node<'static>>,
) {
    match (pass, partial) {
        (Pass::Warn, _) => {
            let reason = kept_reason(what, kept, (err_line, lineno));
            st.skip(err_line, || reason.clone());
            cx.warn(err_line, reason);
        }
        (Pass::Walk, Some(v)) => cx.walk(v, lineno, None),
        (Pass::Walk, None) => {}
    }
}

/// After a break in a long array on line `line`: the scan goes on at the next line.
fn resume_after<R: Read>(w: &mut Window<R>, line: usize) -> Result<Option<usize>> {
    let at = w.anchor;
    let l = w.line_at(at);
    let next = w.line_start(at, l, line + 1)?;
    if next >= w.end() {
        return Ok(None);
    }
    // the caller takes this for the end of a document: the `\n` ending line `line`
    Ok(Some(next - 1))
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        format!("{t}...")
    } else {
        t
    }
}

/// [`count_objects`] of a value, counted as it is read (nothing kept).
struct DevCount(usize);

impl<'de> serde::Deserialize<'de> for DevCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DevCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_unit<E>(self) -> Result<DevCount, E> {
                Ok(DevCount(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<DevCount, A::Error> {
                let mut n = 0;
                while let Some(DevCount(c)) = a.next_element()? {
                    n += c;
                }
                Ok(DevCount(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<DevCount, A::Error> {
                let (mut n, mut dev) = (0, false);
                while let Some(Str(k)) = a.next_key()? {
                    dev |= k == "dev" || k == "chardev";
                    n += a.next_value::<DevCount>()?.0;
                }
                Ok(DevCount(n + usize::from(dev)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Objects that become `NdDevice`s (with "dev" or "chardev").
fn count_objects(v: &Node) -> usize {
    match v {
        Node::Object(m) => {
            usize::from(has(m, "dev") || has(m, "chardev"))
                + m.iter().map(|(_, v)| count_objects(v)).sum::<usize>()
        }
        Node::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// The complete objects of a broken document: cut after the last `}` / `]` that closes a
/// nested value, close the brackets still open.
fn salvage(prefix: &str) -> Option<Node<'static>> {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_str = false;
    let mut esc = false;
    let mut best: Option<(usize, Vec<u8>)> = None;
    for (i, b) in prefix.bytes().enumerate() {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => stack.push(b),
            b'}' | b']' => {
                stack.pop();
                if !stack.is_empty() {
                    best = Some((i + 1, stack.clone()));
                }
            }
            _ => {}
        }
    }
    let (cut, open) = best?;
    let mut s = prefix[..cut].to_string();
    for b in open.iter().rev() {
        s.push(if *b == b'{' { '}' } else { ']' });
    }
    serde_json::from_str::<Node>(&s).ok().map(Node::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        let (lo, hi) = parse_size_text("3.92 GiB (4.21 GB)").unwrap();
        assert!(lo <= 4211081216 && 4211081216 <= hi, "{lo} {hi}");
        assert_eq!(parse_size_text("0x100000000"), Some((1 << 32, 1 << 32)));
        let (lo, hi) = parse_size_text("16.00 MiB (16.78 MB)").unwrap();
        assert_eq!(pow2_in(lo, hi), Some(16 << 20));
        assert_eq!(parse_size_text("lots"), None);
    }
}
