//! Scenario files (TOML): a host, its namespaces and hot-plugged memory, and the
//! application fault workload. Documented in `docs/scenarios.md`.

use crate::layout::{
    self, HotplugSpec, LayoutError, LayoutParams, MapLocation, NamespaceSpec, NsMode, RangeLayout,
};
use crate::limits::{self, LimitError};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The public figure this scenario models (mail, commit, paper), quoted.
    pub source: String,
    pub host: HostSpec,
    #[serde(default, rename = "namespace")]
    pub namespaces: Vec<NamespaceEntry>,
    #[serde(default, rename = "hotplug")]
    pub hotplugs: Vec<HotplugEntry>,
    #[serde(default)]
    pub faults: FaultSpec,
    #[serde(default)]
    pub kernel: LayoutParams,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub nodes: u32,
    pub cpus_per_node: u32,
    /// Physical address where the first pmem region starts (QEMU: 4 GiB).
    #[serde(default = "default_region_start")]
    pub region_start: String,
    /// For `memmap-replay predict`: what the pmem is, "dram" (emulated by DRAM: the QEMU
    /// testbed, a VM's NVDIMM backed by host memory) or "optane-100:WAYS" (Optane DC
    /// 100 series, WAYS DIMMs interleaved per region). Not used by `run`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// For `predict`: the host's time per struct page relative to this machine's (2.0 =
    /// twice as slow), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_scale: Option<f64>,
    /// For `predict`: the host's DRAM write bandwidth per node, GB/s, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dram_write_gbs: Option<f64>,
}

fn default_region_start() -> String {
    "0x100000000".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceEntry {
    pub name: String,
    pub size: String,
    #[serde(default = "default_mode")]
    pub mode: NsMode,
    #[serde(default = "default_map")]
    pub map: MapLocation,
    #[serde(default = "default_align")]
    pub align: String,
    #[serde(default)]
    pub node: u32,
    /// Physical start; by default namespaces are packed per node from `region_start`.
    #[serde(default)]
    pub start: Option<String>,
}

fn default_mode() -> NsMode {
    NsMode::Fsdax
}
fn default_map() -> MapLocation {
    MapLocation::Dev
}
fn default_align() -> String {
    "2M".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HotplugEntry {
    pub name: String,
    pub start: String,
    pub size: String,
    #[serde(default)]
    pub node: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// none, sequential, uniform, zipf
    pub pattern: String,
    pub threads_per_namespace: u32,
    pub touches_per_thread: u64,
    /// "4K" (PTE) or "2M" (PMD)
    pub size: String,
    pub zipf_exponent: f64,
    pub think_us: f64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            pattern: "uniform".into(),
            threads_per_namespace: 2,
            touches_per_thread: 2000,
            size: "4K".into(),
            zipf_exponent: 1.1,
            think_us: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    // The underlying errors are part of the message and not also `source()`: anyhow's
    // "{:#}" printed them twice.
    #[error("{path}: cannot read: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{path}: {field}: {error}")]
    Layout {
        path: String,
        field: String,
        error: LayoutError,
    },
    /// A size or count over its limit (`crate::limits`).
    #[error("{path}: {error}")]
    Limit {
        path: String,
        error: Box<LimitError>,
    },
    #[error("{path}: {field}: {msg}")]
    Invalid {
        path: String,
        field: String,
        msg: String,
    },
}

impl Scenario {
    pub fn read(path: &Path) -> Result<Scenario, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Io {
            path: p.clone(),
            error,
        })?;
        Scenario::parse(&p, &text)
    }

    /// Parse and check a scenario; `path` only names the file in errors.
    /// The scenario as a TOML file `parse` reads back.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        // toml's message already names line and column and shows the offending line.
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.into(),
            msg: e.to_string().trim_end().to_string(),
        })?;
        s.check(path)?;
        Ok(s)
    }

    /// The limits on the scenario's sizes and counts (`crate::limits`), checked before
    /// anything is sized by them. Scenarios made from traces (`Trace::to_scenario`) pass
    /// through here too: [`Scenario::layouts`] checks first.
    pub fn check_limits(&self, path: &str) -> Result<(), ScenarioError> {
        let lim = |error: LimitError| ScenarioError::Limit {
            path: path.into(),
            error: Box::new(error),
        };
        let h = &self.host;
        limits::at_most(
            "host.nodes",
            h.nodes,
            limits::MAX_NUMNODES,
            limits::WHY_NODES,
        )
        .map_err(lim)?;
        limits::at_most(
            "host.cpus_per_node",
            h.cpus_per_node,
            limits::MAX_CPUS,
            limits::WHY_CPUS,
        )
        .map_err(lim)?;
        limits::at_most(
            "host.nodes * host.cpus_per_node",
            u64::from(h.nodes) * u64::from(h.cpus_per_node),
            u64::from(limits::MAX_CPUS),
            limits::WHY_CPUS,
        )
        .map_err(lim)?;
        limits::at_most(
            "[[namespace]] + [[hotplug]] entries",
            self.namespaces.len() + self.hotplugs.len(),
            limits::MAX_RANGES,
            limits::WHY_RANGES,
        )
        .map_err(lim)?;
        let nodes = self
            .namespaces
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("namespace[{i}].node"), n.node))
            .chain(
                self.hotplugs
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (format!("hotplug[{i}].node"), h.node)),
            );
        for (field, node) in nodes {
            limits::at_most(&field, node, limits::MAX_NUMNODES - 1, limits::WHY_NODES)
                .map_err(lim)?;
        }
        let f = &self.faults;
        limits::at_most(
            "faults.threads_per_namespace",
            f.threads_per_namespace,
            limits::MAX_THREADS,
            limits::WHY_THREADS,
        )
        .map_err(lim)?;
        limits::at_most(
            "faults.threads_per_namespace * namespaces",
            u64::from(f.threads_per_namespace) * self.namespaces.len() as u64,
            u64::from(limits::MAX_THREADS),
            limits::WHY_THREADS,
        )
        .map_err(lim)?;
        limits::at_most(
            "faults.touches_per_thread",
            f.touches_per_thread,
            limits::MAX_TOUCHES,
            limits::WHY_TOUCHES,
        )
        .map_err(lim)?;
        limits::finite_in(
            "faults.think_us",
            f.think_us,
            limits::MAX_THINK_US,
            limits::WHY_THINK,
        )
        .map_err(lim)?;
        limits::finite_in(
            "faults.zipf_exponent",
            f.zipf_exponent,
            limits::MAX_ZIPF_EXPONENT,
            limits::WHY_ZIPF,
        )
        .map_err(lim)?;
        self.kernel
            .validate()
            .map_err(|error| ScenarioError::Layout {
                path: path.into(),
                field: "kernel".into(),
                error,
            })
    }

    /// Every check of a scenario read from a file: limits, fields, and that its ranges
    /// lay out.
    pub fn check(&self, path: &str) -> Result<(), ScenarioError> {
        self.check_limits(path)?;
        let invalid = |field: &str, msg: String| ScenarioError::Invalid {
            path: path.into(),
            field: field.into(),
            msg,
        };
        if self.host.nodes == 0 || self.host.cpus_per_node == 0 {
            return Err(invalid(
                "host",
                "nodes and cpus_per_node must be at least 1".into(),
            ));
        }
        if self.namespaces.is_empty() && self.hotplugs.is_empty() {
            return Err(invalid(
                "namespace",
                "a scenario needs at least one [[namespace]] or [[hotplug]]".into(),
            ));
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if ns.node >= self.host.nodes {
                return Err(invalid(
                    &format!("namespace[{i}].node"),
                    format!(
                        "node {} but the host has {} nodes",
                        ns.node, self.host.nodes
                    ),
                ));
            }
        }
        for (i, h) in self.hotplugs.iter().enumerate() {
            if h.node >= self.host.nodes {
                return Err(invalid(
                    &format!("hotplug[{i}].node"),
                    format!("node {} but the host has {} nodes", h.node, self.host.nodes),
                ));
            }
        }
        match self.faults.pattern.as_str() {
            "none" | "sequential" | "uniform" | "zipf" => {}
            other => {
                return Err(invalid(
                    "faults.pattern",
                    format!("{other:?}: expected one of none, sequential, uniform, zipf"),
                ))
            }
        }
        let fb = self.fault_bytes(path)?;
        if fb != 4096 && fb != 2 << 20 {
            return Err(invalid(
                "faults.size",
                format!(
                    "{}: expected 4K (PTE fault) or 2M (PMD fault)",
                    self.faults.size
                ),
            ));
        }
        self.namespace_specs(path, 1.0)?;
        Ok(())
    }

    pub fn fault_bytes(&self, path: &str) -> Result<u64, ScenarioError> {
        layout::parse_size(&self.faults.size).map_err(|error| ScenarioError::Layout {
            path: path.into(),
            field: "faults.size".into(),
            error,
        })
    }

    /// Namespace specs with physical placement resolved. Namespaces without an
    /// explicit start are packed one after another per node, each node's region
    /// starting `node * 1 TiB`-aligned above `region_start` so nodes never share sections.
    /// `scale` multiplies sizes (rounded down to the region alignment, at least one unit).
    pub fn namespace_specs(
        &self,
        path: &str,
        scale: f64,
    ) -> Result<Vec<NamespaceSpec>, ScenarioError> {
        self.check_limits(path)?;
        let lerr = |field: String, error| ScenarioError::Layout {
            path: path.into(),
            field,
            error,
        };
        let base = layout::parse_size(&self.host.region_start)
            .map_err(|e| lerr("host.region_start".into(), e))?;
        let ralign = self.kernel.region_align.max(1);
        // Next free address per node (nodes checked against MAX_NUMNODES above).
        let mut next: std::collections::BTreeMap<u32, u64> = Default::default();
        let mut out = Vec::new();
        for (i, ns) in self.namespaces.iter().enumerate() {
            let size = layout::parse_size(&ns.size)
                .map_err(|e| lerr(format!("namespace[{i}].size"), e))?;
            let size = scale_size(size, scale, ralign);
            let align = layout::parse_size(&ns.align)
                .map_err(|e| lerr(format!("namespace[{i}].align"), e))?;
            let next_free = next.entry(ns.node).or_insert(0);
            let beyond = |what: &str, v: Option<u64>| {
                v.filter(|&a| a <= limits::MAX_PHYS_END)
                    .ok_or_else(|| ScenarioError::Limit {
                        path: path.into(),
                        error: Box::new(LimitError::new(
                            format!("namespace[{i}].start"),
                            what,
                            format!("<= {:#x}", limits::MAX_PHYS_END),
                            limits::WHY_PHYS,
                        )),
                    })
            };
            let start = match &ns.start {
                Some(s) => {
                    layout::parse_size(s).map_err(|e| lerr(format!("namespace[{i}].start"), e))?
                }
                None => beyond(
                    &format!(
                        "{} + node {} * 4 TiB + {:#x} (placed after the node's earlier namespaces)",
                        self.host.region_start, ns.node, *next_free
                    ),
                    (u64::from(ns.node) << 42)
                        .checked_add(base)
                        .and_then(|b| b.checked_add(*next_free)),
                )?,
            };
            if ns.start.is_none() {
                // Next namespace of this node starts after this one, section aligned
                // so that sub-section and section-granular kernels agree.
                let sec = self.kernel.section_size.max(1);
                // Saturating: a namespace too large is refused by its own layout (start
                // + size over MAX_PHYSMEM_BITS); a next one placed after it by `beyond`.
                *next_free = size
                    .div_ceil(sec)
                    .saturating_mul(sec)
                    .saturating_add(*next_free);
            }
            out.push(NamespaceSpec {
                name: ns.name.clone(),
                size_bytes: size,
                mode: ns.mode,
                map: ns.map,
                align_bytes: align,
                node: ns.node,
                start_phys: start,
            });
        }
        Ok(out)
    }

    pub fn hotplug_specs(&self, path: &str, scale: f64) -> Result<Vec<HotplugSpec>, ScenarioError> {
        self.check_limits(path)?;
        self.hotplugs
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let lerr = |field: &str, error| ScenarioError::Layout {
                    path: path.into(),
                    field: format!("hotplug[{i}].{field}"),
                    error,
                };
                let size = layout::parse_size(&h.size).map_err(|e| lerr("size", e))?;
                Ok(HotplugSpec {
                    name: h.name.clone(),
                    start_phys: layout::parse_size(&h.start).map_err(|e| lerr("start", e))?,
                    size_bytes: scale_size(size, scale, self.kernel.memory_block_size.max(1)),
                    node: h.node,
                })
            })
            .collect()
    }

    /// Every range's layout, checked for overlaps and the kernel's section rules.
    pub fn layouts(&self, path: &str, scale: f64) -> Result<Vec<RangeLayout>, ScenarioError> {
        let mut out = Vec::new();
        // One vmemmap for the whole host: ranges sharing a section share its page tables.
        let mut vmemmap = layout::VmemmapState::new();
        for (i, spec) in self.namespace_specs(path, scale)?.iter().enumerate() {
            out.push(
                layout::namespace_layout_in(spec, &self.kernel, &mut vmemmap).map_err(|error| {
                    ScenarioError::Layout {
                        path: path.into(),
                        field: format!("namespace[{i}] ({})", spec.name),
                        error,
                    }
                })?,
            );
        }
        for (i, spec) in self.hotplug_specs(path, scale)?.iter().enumerate() {
            out.push(
                layout::hotplug_layout_in(spec, &self.kernel, &mut vmemmap).map_err(|error| {
                    ScenarioError::Layout {
                        path: path.into(),
                        field: format!("hotplug[{i}] ({})", spec.name),
                        error,
                    }
                })?,
            );
        }
        layout::check_ranges_disjoint(&out, &self.kernel).map_err(|error| {
            ScenarioError::Layout {
                path: path.into(),
                field: "namespace".into(),
                error,
            }
        })?;
        Ok(out)
    }
}

fn scale_size(size: u64, scale: f64, unit: u64) -> u64 {
    if scale == 1.0 {
        return size;
    }
    let scaled = (size as f64 * scale) as u64;
    (scaled / unit).max(1) * unit
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
source = "test"
[host]
nodes = 2
cpus_per_node = 4
[[namespace]]
name = "pmem0"
size = "16G"
[[namespace]]
name = "pmem1"
size = "4G"
node = 1
mode = "devdax"
map = "mem"
align = "1G"
"#;

    #[test]
    fn parses_and_places_namespaces_per_node() {
        let s = Scenario::parse("good.toml", GOOD).unwrap();
        let specs = s.namespace_specs("good.toml", 1.0).unwrap();
        assert_eq!(specs[0].start_phys, 0x1_0000_0000);
        assert_eq!(specs[0].size_bytes, 16 << 30);
        assert!(specs[1].start_phys > specs[0].start_phys + specs[0].size_bytes);
        assert_eq!(specs[1].mode, NsMode::Devdax);
        assert_eq!(specs[1].align_bytes, 1 << 30);
    }

    #[test]
    fn scale_rounds_to_region_alignment() {
        let s = Scenario::parse("good.toml", GOOD).unwrap();
        let specs = s.namespace_specs("good.toml", 1.0 / 64.0).unwrap();
        assert_eq!(specs[0].size_bytes, 256 << 20);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let bad = GOOD.replace("cpus_per_node = 4", "cpus_per_node = = 4");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err().to_string();
        assert!(e.starts_with("bad.toml:"), "{e}");
        assert!(e.contains("line 6"), "{e}");
    }

    #[test]
    fn unknown_field_and_bad_values_are_named() {
        let bad = GOOD.replace("size = \"4G\"", "size = \"4G\"\nsizee = 1");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("sizee"), "{e}");
        let bad = GOOD.replace("size = \"16G\"", "size = \"16Q\"");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("namespace[0].size"), "{e}");
        let bad = GOOD.replace("node = 1", "node = 7");
        let e = Scenario::parse("bad.toml", &bad).unwrap_err().to_string();
        assert!(e.contains("namespace[1].node"), "{e}");
    }
}
