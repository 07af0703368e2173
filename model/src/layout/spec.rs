//! What the user asks for: a pmem namespace (`ndctl create-namespace` terms) or a System RAM
//! hot-add, their `key=value` spec strings, and byte sizes with binary suffixes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::error::bad_field;
use super::{align_down, LayoutError, LayoutParams, GIB, KIB, MIB, TIB};

/// Namespace mode (`ndctl create-namespace --mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsMode {
    Raw,
    Sector,
    Fsdax,
    Devdax,
}

impl fmt::Display for NsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NsMode::Raw => "raw",
            NsMode::Sector => "sector",
            NsMode::Fsdax => "fsdax",
            NsMode::Devdax => "devdax",
        })
    }
}

impl FromStr for NsMode {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" => Ok(NsMode::Raw),
            "sector" | "safe" => Ok(NsMode::Sector),
            "fsdax" | "memory" => Ok(NsMode::Fsdax),
            "devdax" | "dax" => Ok(NsMode::Devdax),
            _ => Err(bad_field("namespace", "mode", s)),
        }
    }
}

/// Where an fsdax/devdax namespace keeps its memmap (`ndctl create-namespace --map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapLocation {
    /// System RAM (`PFN_MODE_RAM`, no altmap).
    Mem,
    /// The namespace itself through the `vmem_altmap` (`PFN_MODE_PMEM`).
    Dev,
}

impl fmt::Display for MapLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MapLocation::Mem => "mem",
            MapLocation::Dev => "dev",
        })
    }
}

impl FromStr for MapLocation {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mem" => Ok(MapLocation::Mem),
            "dev" => Ok(MapLocation::Dev),
            _ => Err(bad_field("namespace", "map", s)),
        }
    }
}

/// What the user asks for (ndctl create-namespace terms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamespaceSpec {
    pub name: String,
    /// Namespace resource size (after the region/label layer; a multiple of the region align).
    pub size_bytes: u64,
    pub mode: NsMode,
    pub map: MapLocation,
    /// `nd_pfn->align` (4K, 2M or 1G on x86_64).
    pub align_bytes: u64,
    pub node: u32,
    /// Physical start of the namespace resource.
    pub start_phys: u64,
}

impl NamespaceSpec {
    /// The namespace ndctl creates over a whole region: the region size rounded down to the
    /// region align (`default_align()`, 16 MiB). A QEMU 16 GiB NVDIMM with a 128 KiB label
    /// area has a 16 GiB - 128 KiB region, hence a 16 GiB - 16 MiB namespace.
    pub fn whole_region(
        name: &str,
        region_start: u64,
        region_bytes: u64,
        mode: NsMode,
        map: MapLocation,
        align_bytes: u64,
        params: &LayoutParams,
    ) -> Self {
        NamespaceSpec {
            name: name.to_string(),
            size_bytes: align_down(region_bytes, params.region_align),
            mode,
            map,
            align_bytes,
            node: 0,
            start_phys: region_start,
        }
    }
}

/// "size=16G,mode=fsdax,map=dev,align=2M[,start=0x100000000][,node=0][,name=ns0]"; defaults:
/// mode=fsdax map=dev align=2M start=0x100000000 node=0 name=ns0; sizes accept K/M/G/T
/// suffixes (binary) and hex/decimal bytes.
impl FromStr for NamespaceSpec {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        const KIND: &str = "namespace";
        const KNOWN: &str = "size, mode, map, align, start, node, name";
        let mut spec = NamespaceSpec {
            name: "ns0".into(),
            size_bytes: 0,
            mode: NsMode::Fsdax,
            map: MapLocation::Dev,
            align_bytes: 2 * MIB,
            node: 0,
            start_phys: 0x1_0000_0000,
        };
        let mut have_size = false;
        for (key, value) in split_spec(KIND, s)? {
            match key.as_str() {
                "size" => {
                    spec.size_bytes = parse_field(KIND, "size", &value)?;
                    have_size = true;
                }
                "mode" => spec.mode = value.parse()?,
                "map" => spec.map = value.parse()?,
                "align" => spec.align_bytes = parse_field(KIND, "align", &value)?,
                "start" => spec.start_phys = parse_field(KIND, "start", &value)?,
                "node" => spec.node = parse_node(KIND, &value)?,
                "name" => spec.name = parse_name(KIND, &value)?,
                _ => {
                    return Err(LayoutError::UnknownField {
                        kind: KIND,
                        field: key,
                        known: KNOWN,
                    })
                }
            }
        }
        if !have_size {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "size",
            });
        }
        Ok(spec)
    }
}

/// System RAM hot-add (ACPI pc-dimm, virtio-mem...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HotplugSpec {
    pub name: String,
    pub start_phys: u64,
    pub size_bytes: u64,
    pub node: u32,
}

/// "start=0x500000000,size=1G[,node=0][,name=dimm0]" (start and size required).
impl FromStr for HotplugSpec {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, LayoutError> {
        const KIND: &str = "hotplug";
        const KNOWN: &str = "start, size, node, name";
        let mut spec = HotplugSpec {
            name: "dimm0".into(),
            start_phys: 0,
            size_bytes: 0,
            node: 0,
        };
        let (mut have_start, mut have_size) = (false, false);
        for (key, value) in split_spec(KIND, s)? {
            match key.as_str() {
                "start" => {
                    spec.start_phys = parse_field(KIND, "start", &value)?;
                    have_start = true;
                }
                "size" => {
                    spec.size_bytes = parse_field(KIND, "size", &value)?;
                    have_size = true;
                }
                "node" => spec.node = parse_node(KIND, &value)?,
                "name" => spec.name = parse_name(KIND, &value)?,
                _ => {
                    return Err(LayoutError::UnknownField {
                        kind: KIND,
                        field: key,
                        known: KNOWN,
                    })
                }
            }
        }
        if !have_start {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "start",
            });
        }
        if !have_size {
            return Err(LayoutError::MissingField {
                kind: KIND,
                field: "size",
            });
        }
        Ok(spec)
    }
}

/// Parses "16G", "2M", "8K", "1T", "16GiB", "0x100000000", "4096" (binary suffixes,
/// case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, LayoutError> {
    let err = |reason: &str| LayoutError::BadSize {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        let hex = hex.replace('_', "");
        return u64::from_str_radix(&hex, 16).map_err(|_| err("not a hex number"));
    }
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], KIB),
        Some('m') => (&body[..body.len() - 1], MIB),
        Some('g') => (&body[..body.len() - 1], GIB),
        Some('t') => (&body[..body.len() - 1], TIB),
        Some(c) if c.is_ascii_digit() => (body, 1),
        _ => return Err(err("unknown unit")),
    };
    let digits = digits.trim().replace('_', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(err("not a number"));
    }
    let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
    n.checked_mul(mult).ok_or_else(|| err("too large"))
}

/// "16 GiB", "2 MiB", "8 KiB", "1792 KiB", "100 B": the largest binary unit that divides the
/// value exactly.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {}", bytes / unit, name);
        }
    }
    format!("{bytes} B")
}

fn split_spec(kind: &'static str, s: &str) -> Result<Vec<(String, String)>, LayoutError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(bad_field(kind, part, ""));
        };
        out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(out)
}

fn parse_field(kind: &'static str, field: &str, value: &str) -> Result<u64, LayoutError> {
    parse_size(value).map_err(|_| bad_field(kind, field, value))
}

fn parse_node(kind: &'static str, value: &str) -> Result<u32, LayoutError> {
    let node: u32 = value.parse().map_err(|_| bad_field(kind, "node", value))?;
    Ok(crate::limits::at_most(
        &format!("{kind} spec field `node`"),
        node,
        crate::limits::MAX_NUMNODES - 1,
        crate::limits::WHY_NODES,
    )?)
}

fn parse_name(kind: &'static str, value: &str) -> Result<String, LayoutError> {
    if value.is_empty() {
        Err(bad_field(kind, "name", value))
    } else {
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::layout::test_fixtures::*;
    use crate::layout::*;

    #[test]
    fn qemu_16g_namespace_size_from_region() {
        let s = NamespaceSpec::whole_region(
            "ns0",
            NS_START,
            16 * GIB - 128 * KIB,
            NsMode::Fsdax,
            MapLocation::Mem,
            2 * MIB,
            &p61(),
        );
        assert_eq!(s.size_bytes, QEMU_16G_NS);
    }

    #[test]
    fn parse_spec_defaults_and_errors_name_the_field() {
        let s: NamespaceSpec = "size=16G".parse().unwrap();
        assert_eq!(
            s,
            NamespaceSpec {
                name: "ns0".into(),
                size_bytes: 16 * GIB,
                mode: NsMode::Fsdax,
                map: MapLocation::Dev,
                align_bytes: 2 * MIB,
                node: 0,
                start_phys: 0x1_0000_0000,
            }
        );
        let s: NamespaceSpec =
            "size=0x3ff000000, mode=devdax,map=mem,align=1G,start=0x200000000,node=1,name=nsX"
                .parse()
                .unwrap();
        assert_eq!(
            (
                s.size_bytes,
                s.mode,
                s.map,
                s.align_bytes,
                s.start_phys,
                s.node,
                s.name.as_str()
            ),
            (
                0x3ff000000,
                NsMode::Devdax,
                MapLocation::Mem,
                GIB,
                0x200000000,
                1,
                "nsX"
            )
        );
        for (input, field) in [
            ("size=16Q", "size"),
            ("size=16G,mode=fast", "mode"),
            ("size=16G,map=disk", "map"),
            ("size=16G,align=big", "align"),
            ("size=16G,start=zz", "start"),
            ("size=16G,node=-1", "node"),
            ("mode=fsdax", "size"),
            ("size=16G,colour=red", "colour"),
            ("size=16G,oops", "oops"),
        ] {
            let e = input.parse::<NamespaceSpec>().unwrap_err().to_string();
            assert!(e.contains(field), "{input}: {e}");
        }
        let e = "size=1G".parse::<HotplugSpec>().unwrap_err().to_string();
        assert!(e.contains("start"), "{e}");
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("16G").unwrap(), 16 * GIB);
        assert_eq!(parse_size("16GiB").unwrap(), 16 * GIB);
        assert_eq!(parse_size("2m").unwrap(), 2 * MIB);
        assert_eq!(parse_size("1T").unwrap(), TIB);
        assert_eq!(parse_size("0x100000000").unwrap(), NS_START);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(format_size(16 * GIB), "16 GiB");
        assert_eq!(format_size(2 * MIB), "2 MiB");
        assert_eq!(format_size(8 * KIB), "8 KiB");
        assert_eq!(format_size(QEMU_16G_NS), "16368 MiB");
        assert_eq!(format_size(100), "100 B");
        assert_eq!(format_size(0), "0 B");
    }
}
