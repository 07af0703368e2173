//! The host a prediction is for: CPUs and nodes, where each namespace's memmap lives and
//! the write bandwidth of that memory, and the CPU's speed relative to this machine.
//! Every parameter carries its source; nothing here is fitted to a figure the prediction
//! is later checked against (docs/predict.md).

use anyhow::{bail, Result};
use memmap_model::scenario::HostSpec;
use serde::Serialize;

/// A value and where it comes from.
#[derive(Clone, Debug, Serialize)]
pub struct Param {
    pub name: String,
    pub value: String,
    pub source: String,
}

/// What holds the pmem.
#[derive(Clone, Debug, PartialEq)]
pub enum Device {
    /// Emulated by DRAM (QEMU NVDIMM on host memory): the device is as fast as DRAM.
    Dram,
    /// Intel Optane DC persistent memory, 100 series, `ways` DIMMs interleaved per region.
    Optane100 { ways: u32 },
}

/// Optane DC 100 series sequential write bandwidth per DIMM, bytes/s: (low, high).
/// Izraelevitz et al., "Basic Performance Measurements of the Intel Optane DC Persistent
/// Memory Module", arXiv:1903.05714 (2019): ~2.3 GB/s for one 256 GB DIMM, ~13 GB/s six
/// DIMMs interleaved (2.17 GB/s each).
pub const OPTANE_100_WRITE_PER_DIMM: (f64, f64) = (2.17e9, 2.3e9);
pub const OPTANE_100_SOURCE: &str =
    "Izraelevitz et al. 2019, arXiv:1903.05714: ~2.3 GB/s write per DIMM, ~13 GB/s 6-way";

impl Device {
    /// "dram", "optane-100" (6 ways: one DIMM per channel of a Cascade Lake socket) or
    /// "optane-100:WAYS".
    pub fn parse(s: &str) -> Result<Device> {
        let s = s.trim();
        let (kind, ways) = match s.split_once(':') {
            Some((k, w)) => (k, Some(w)),
            None => (s, None),
        };
        match kind {
            "dram" if ways.is_none() => Ok(Device::Dram),
            "optane-100" => {
                let ways = match ways {
                    None => 6,
                    Some(w) => match w.parse::<u32>() {
                        Ok(n @ 1..=16) => n,
                        _ => bail!("device {s:?}: interleave ways {w:?}: expected 1..=16"),
                    },
                };
                Ok(Device::Optane100 { ways })
            }
            _ => bail!(
                "device {s:?}: unknown device kind; expected \"dram\" (pmem emulated by DRAM) \
                 or \"optane-100[:WAYS]\""
            ),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Device::Dram => "dram".into(),
            Device::Optane100 { ways } => format!("optane-100:{ways}"),
        }
    }
}

/// The host, with the sources of its parameters.
#[derive(Clone, Debug)]
pub struct Host {
    pub nodes: u32,
    pub cpus_per_node: u32,
    /// None when no namespace has its memmap on the device.
    pub device: Option<Device>,
    /// Host time per struct page / this machine's.
    pub cpu_scale: f64,
    /// DRAM write bandwidth per node, bytes/s: (low, high).
    pub dram_write_bps: (f64, f64),
    /// Device write bandwidth per node (one interleave set per socket), bytes/s.
    pub device_write_bps: (f64, f64),
    pub params: Vec<Param>,
}

/// What the command line says about the host (each overrides the scenario's).
#[derive(Clone, Debug, Default)]
pub struct HostFlags {
    pub nodes: Option<u32>,
    pub cpus_per_node: Option<u32>,
    pub device: Option<String>,
    pub device_write_gbs: Option<f64>,
    pub cpu_scale: Option<f64>,
    pub dram_write_gbs: Option<f64>,
}

impl Host {
    /// The host from the scenario's `[host]` and the flags. `dram_here` is this machine's
    /// measured DRAM write bandwidth (the calibration's roofline), used when the host's is
    /// not given; `device_needed` whether some memmap lives on the device (map=dev).
    pub fn describe(
        spec: &HostSpec,
        label: &str,
        flags: &HostFlags,
        dram_here: (f64, f64),
        device_needed: bool,
    ) -> Result<Host> {
        let mut params = Vec::new();
        let mut param = |name: &str, value: String, source: String| {
            params.push(Param {
                name: name.into(),
                value,
                source,
            })
        };
        let from = |flag: bool| {
            if flag {
                "command line".to_string()
            } else {
                format!("{label} [host]")
            }
        };
        let nodes = flags.nodes.unwrap_or(spec.nodes);
        let cpus_per_node = flags.cpus_per_node.unwrap_or(spec.cpus_per_node);
        if nodes == 0 || nodes > memmap_model::limits::MAX_NUMNODES {
            bail!(
                "host.nodes = {nodes}: expected 1..={}",
                memmap_model::limits::MAX_NUMNODES
            );
        }
        if cpus_per_node == 0 || cpus_per_node > memmap_model::limits::MAX_CPUS {
            bail!(
                "host.cpus_per_node = {cpus_per_node}: expected 1..={}",
                memmap_model::limits::MAX_CPUS
            );
        }
        param(
            "nodes",
            nodes.to_string(),
            from(flags.nodes.is_some()).to_string(),
        );
        param(
            "cpus_per_node",
            cpus_per_node.to_string(),
            from(flags.cpus_per_node.is_some()),
        );
        let positive = |field: &str, v: f64| -> Result<f64> {
            if v.is_finite() && v > 0.0 && v < 1e6 {
                Ok(v)
            } else {
                bail!("host.{field} = {v}: expected a positive finite number")
            }
        };
        let cpu_scale = match flags.cpu_scale.or(spec.cpu_scale) {
            Some(x) => {
                let x = positive("cpu_scale", x)?;
                param("cpu_scale", format!("{x}"), from(flags.cpu_scale.is_some()));
                x
            }
            None => {
                param(
                    "cpu_scale",
                    "1".into(),
                    "not known: assumed as fast as this machine per struct page".into(),
                );
                1.0
            }
        };
        let dram_write_bps = match flags.dram_write_gbs.or(spec.dram_write_gbs) {
            Some(g) => {
                let b = positive("dram_write_gbs", g)? * 1e9;
                param(
                    "dram_write_gbs",
                    format!("{g}"),
                    from(flags.dram_write_gbs.is_some()),
                );
                (b, b)
            }
            None => {
                param(
                    "dram_write_gbs",
                    format!("{:.1}-{:.1}", dram_here.0 / 1e9, dram_here.1 / 1e9),
                    "this machine, same-run roofline of the calibration (regular stores)".into(),
                );
                dram_here
            }
        };
        let device = match flags.device.as_deref().or(spec.device.as_deref()) {
            Some(d) => Some(Device::parse(d).map_err(|e| anyhow::anyhow!("host.device: {e}"))?),
            None if device_needed => bail!(
                "host.device: missing, and a namespace has its memmap on the device (map=dev); \
                 give --device dram (emulated pmem, e.g. a VM's NVDIMM) or --device \
                 optane-100[:WAYS], or `device = ...` in the scenario's [host]"
            ),
            None => None,
        };
        let device_write_bps = match (&device, flags.device_write_gbs) {
            (_, Some(g)) => {
                let b = positive("device_write_gbs", g)? * 1e9;
                param("device_write_gbs", format!("{g}"), "command line".into());
                (b, b)
            }
            (Some(Device::Dram), None) => {
                param(
                    "device_write_gbs",
                    "= dram_write_gbs".into(),
                    "device is DRAM-emulated".into(),
                );
                dram_write_bps
            }
            (Some(Device::Optane100 { ways }), None) => {
                let (lo, hi) = OPTANE_100_WRITE_PER_DIMM;
                let w = f64::from(*ways);
                param(
                    "device_write_gbs",
                    format!("{:.1}-{:.1} ({ways} DIMMs)", lo * w / 1e9, hi * w / 1e9),
                    OPTANE_100_SOURCE.into(),
                );
                (lo * w, hi * w)
            }
            (None, None) => (f64::INFINITY, f64::INFINITY),
        };
        if let Some(d) = &device {
            param(
                "device",
                d.name(),
                from(flags.device.is_some() || spec.device.is_none()),
            );
        }
        Ok(Host {
            nodes,
            cpus_per_node,
            device,
            cpu_scale,
            dram_write_bps,
            device_write_bps,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> HostSpec {
        HostSpec {
            nodes: 2,
            cpus_per_node: 28,
            region_start: "0x100000000".into(),
            device: None,
            cpu_scale: None,
            dram_write_gbs: None,
        }
    }

    #[test]
    fn missing_or_contradictory_parts_name_the_field() {
        let dram = (20e9, 25e9);
        let e = Host::describe(&spec(), "s", &HostFlags::default(), dram, true).unwrap_err();
        assert!(e.to_string().contains("host.device: missing"), "{e}");
        let f = HostFlags {
            device: Some("optane-300".into()),
            ..Default::default()
        };
        let e = Host::describe(&spec(), "s", &f, dram, true).unwrap_err();
        assert!(e.to_string().contains("host.device") && e.to_string().contains("optane-300"));
        let f = HostFlags {
            device: Some("dram".into()),
            device_write_gbs: Some(0.0),
            ..Default::default()
        };
        let e = Host::describe(&spec(), "s", &f, dram, true).unwrap_err();
        assert!(e.to_string().contains("host.device_write_gbs = 0"), "{e}");
        let f = HostFlags {
            cpus_per_node: Some(0),
            ..Default::default()
        };
        let e = Host::describe(&spec(), "s", &f, dram, false).unwrap_err();
        assert!(e.to_string().contains("host.cpus_per_node = 0"), "{e}");
    }

    #[test]
    fn optane_bandwidth_scales_with_interleave_and_dram_device_follows_dram() {
        let dram = (20e9, 25e9);
        let f = HostFlags {
            device: Some("optane-100:3".into()),
            ..Default::default()
        };
        let h = Host::describe(&spec(), "s", &f, dram, true).unwrap();
        assert_eq!(h.device, Some(Device::Optane100 { ways: 3 }));
        assert!((h.device_write_bps.1 - 6.9e9).abs() < 1e6);
        let f = HostFlags {
            device: Some("dram".into()),
            dram_write_gbs: Some(10.0),
            ..Default::default()
        };
        let h = Host::describe(&spec(), "s", &f, dram, true).unwrap();
        assert_eq!(h.device_write_bps, (10e9, 10e9));
        assert!(h
            .params
            .iter()
            .any(|p| p.name == "cpu_scale" && p.source.contains("not known")));
    }
}
