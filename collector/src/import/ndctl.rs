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

use memmap_model::layout::{namespace_layout, LayoutParams, MapLocation, NamespaceSpec, NsMode};
use memmap_model::trace::TraceEvent;
use serde_json::Value;
use std::collections::BTreeMap;

/// Where a namespace without a "resource" field is assumed to start.
pub const DEFAULT_START: u64 = 0x1_0000_0000;

/// Import ndctl/daxctl JSON text (the contents of `file`).
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    let mut cx = Cx {
        file: file.to_string(),
        events: Vec::new(),
        assumed_start_line: None,
    };
    let docs = scan_documents(text, &mut cx);
    for (line, v) in docs {
        cx.walk(&v, line, None);
    }
    if let Some(line) = cx.assumed_start_line {
        cx.warn(
            line,
            format!(
                "ndctl list prints no physical addresses: namespaces placed at {DEFAULT_START:#x} \
                 (read /sys/bus/nd/devices/namespaceX.Y/resource for the real start)"
            ),
        );
    }
    cx.events
}

struct Cx {
    file: String,
    events: Vec<TraceEvent>,
    assumed_start_line: Option<usize>,
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

    fn walk(&mut self, v: &Value, line: usize, region: Option<&RegionCx>) {
        match v {
            Value::Array(items) => {
                for it in items {
                    self.walk(it, line, region);
                }
            }
            Value::Object(map) => {
                let dev = map
                    .get("dev")
                    .and_then(Value::as_str)
                    .or_else(|| map.get("chardev").and_then(Value::as_str));
                let mut attrs = BTreeMap::new();
                for (k, val) in map {
                    match val {
                        Value::String(s) => {
                            attrs.insert(k.clone(), s.clone());
                        }
                        Value::Number(n) => {
                            attrs.insert(k.clone(), n.to_string());
                        }
                        Value::Bool(b) => {
                            attrs.insert(k.clone(), b.to_string());
                        }
                        _ => {}
                    }
                }
                let devtype = match dev {
                    Some(d) => Some(devtype_of(d, map)),
                    None if map.contains_key("id")
                        && (map.contains_key("devices") || map.contains_key("path")) =>
                    {
                        Some("dax_region")
                    }
                    None => None,
                };
                let mut own_region = None;
                if let Some(devtype) = devtype {
                    let name = match dev {
                        Some(d) => d.to_string(),
                        None => format!("dax_region{}", attrs.get("id").map_or("", |s| s)),
                    };
                    if devtype == "nd_region" {
                        let nss = map
                            .get("namespaces")
                            .and_then(Value::as_array)
                            .map_or(0, |a| a.len());
                        own_region = Some(RegionCx {
                            size: map.get("size").and_then(size_interval),
                            available: map.get("available_size").and_then(size_interval),
                            align: map
                                .get("align")
                                .and_then(size_interval)
                                .and_then(|(lo, hi)| pow2_in(lo, hi)),
                            resource: map.get("resource").and_then(exact_u64),
                            namespaces: nss,
                        });
                    }
                    if devtype.starts_with("nd_namespace") {
                        self.namespace(&name, map, line, region);
                    }
                    self.events.push(TraceEvent::NdDevice {
                        dev: name,
                        devtype: devtype.to_string(),
                        attrs,
                    });
                }
                let region = own_region.as_ref().or(region);
                for (k, val) in map {
                    if matches!(val, Value::Array(_) | Value::Object(_)) {
                        if k == "badblocks" || k == "mappings" {
                            continue;
                        }
                        self.walk(val, line, region);
                    }
                }
            }
            _ => {}
        }
    }

    /// `Namespace` for an fsdax/devdax namespace object.
    fn namespace(
        &mut self,
        name: &str,
        map: &serde_json::Map<String, Value>,
        line: usize,
        region: Option<&RegionCx>,
    ) {
        let Some(mode_s) = map.get("mode").and_then(Value::as_str) else {
            return;
        };
        let mode = match mode_s.trim().to_ascii_lowercase().as_str() {
            "fsdax" | "memory" => NsMode::Fsdax,
            "devdax" | "dax" => NsMode::Devdax,
            _ => return, // raw / sector: no pfn layout
        };
        let map_loc = match map.get("map").and_then(Value::as_str) {
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
        let align = match map.get("align") {
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
        let Some(usable) = map.get("size").and_then(size_interval) else {
            self.warn(
                line,
                format!(
                    "{name}: no readable \"size\" (expected bytes, \"0x...\" or \"N.NN GiB (N.NN GB)\"); no namespace layout"
                ),
            );
            return;
        };
        let start = match map.get("resource").and_then(exact_u64) {
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
            .find_map(|k| map.get(*k).and_then(Value::as_i64))
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
        match namespace_size(&mut spec, usable, region) {
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

fn devtype_of(dev: &str, map: &serde_json::Map<String, Value>) -> &'static str {
    let base = dev.trim_start_matches('/');
    if map.contains_key("chardev") && !map.contains_key("dev") {
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

fn exact_u64(v: &Value) -> Option<u64> {
    match size_interval(v)? {
        (lo, hi) if lo == hi => Some(lo),
        _ => None,
    }
}

/// A size as ndctl prints it: a number, "0x..." / decimal string, "4K"-style, or with -u
/// "16.00 GiB (17.18 GB)" (rounded: the interval both figures allow).
pub fn size_interval(v: &Value) -> Option<(u64, u64)> {
    match v {
        Value::Number(n) => n.as_u64().map(|x| (x, x)),
        Value::String(s) => parse_size_text(s),
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

/// Finds the JSON documents in `text`: a line whose first non-blank character is `{` or
/// `[` starts one. Returns (1-based line where each starts, value); lines outside
/// documents and documents that break get warnings in `cx`.
fn scan_documents(text: &str, cx: &mut Cx) -> Vec<(usize, Value)> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |off: usize| line_starts.partition_point(|&s| s <= off);
    let mut docs = Vec::new();
    let mut pos = 0usize;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..line_end];
        let trimmed = line.trim_start();
        let lineno = line_of(pos);
        if trimmed.trim_end().is_empty() {
            pos = line_end + 1;
            continue;
        }
        if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
            cx.warn(
                lineno,
                format!(
                    "not ndctl/daxctl JSON (expected a line starting a JSON object or array), skipped: {:?}",
                    short(line.trim())
                ),
            );
            pos = line_end + 1;
            continue;
        }
        let start = pos + (line.len() - trimmed.len());
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                docs.push((lineno, v));
                let end = start + stream.byte_offset();
                // The rest of the line after the document: junk unless blank.
                let rest_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
                let rest = text[end..rest_end].trim();
                if !rest.is_empty() && !rest.starts_with('{') && !rest.starts_with('[') {
                    cx.warn(
                        line_of(end),
                        format!("text after the JSON document skipped: {:?}", short(rest)),
                    );
                    pos = rest_end + 1;
                } else if !rest.is_empty() {
                    // Another document on the same line: scan it as its own line.
                    pos = end + (text[end..].len() - text[end..].trim_start().len());
                    if pos >= text.len() {
                        break;
                    }
                    // Avoid an infinite loop: the next iteration starts at `pos`, which
                    // begins with `{` or `[`.
                    continue;
                } else {
                    pos = rest_end + 1;
                }
            }
            Some(Err(e)) => {
                // Where it broke, relative to `start`.
                let err_line = lineno + e.line().saturating_sub(1);
                let err_off = line_starts
                    .get(err_line.saturating_sub(1))
                    .copied()
                    .unwrap_or(text.len())
                    .max(start);
                let err_off = (err_off + e.column().saturating_sub(1)).min(text.len());
                let err_off = floor_char(text, err_off);
                let err_line = err_line.min(text.lines().count().max(1));
                let partial = salvage(&text[start..err_off]);
                let n = partial.as_ref().map_or(0, count_objects);
                if partial.is_none() && err_line == lineno {
                    // `[root@host ~]# ...`, `[   12.3] dmesg`: not a document at all.
                    cx.warn(
                        lineno,
                        format!(
                            "not ndctl/daxctl JSON (expected a JSON object or array), skipped: {:?}",
                            short(line.trim())
                        ),
                    );
                    pos = line_end + 1;
                    continue;
                }
                let what = if e.is_eof() {
                    "input ends inside a JSON document (truncated paste?)".to_string()
                } else {
                    format!("JSON breaks ({e})")
                };
                cx.warn(
                    err_line,
                    format!(
                        "{what}; kept the {n} complete device object(s) before line {err_line}, dropped the rest of the document started at line {lineno}"
                    ),
                );
                if let Some(v) = partial {
                    docs.push((lineno, v));
                }
                // Resume on the line after the break (or after the start line).
                let resume_line = err_line.max(lineno);
                pos = line_starts.get(resume_line).copied().unwrap_or(text.len());
            }
            None => {
                pos = line_end + 1;
            }
        }
    }
    docs
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

/// Objects that become `NdDevice`s (with "dev" or "chardev").
fn count_objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => {
            usize::from(m.contains_key("dev") || m.contains_key("chardev"))
                + m.values().map(count_objects).sum::<usize>()
        }
        Value::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// The complete objects of a broken document: cut after the last `}` / `]` that closes a
/// nested value, close the brackets still open.
fn salvage(prefix: &str) -> Option<Value> {
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
    serde_json::from_str(&s).ok()
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
