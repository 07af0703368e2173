//! The Parquet machinery every table shares, written once: Hive partition paths and
//! their escaping, zstd parts placed atomically, the FNV-1a ids of runs and traces, a
//! reader that hashes a file as it is parsed, column and frame helpers, and the loop
//! that writes a registry of tables (`run_tables::RUN_TABLES`,
//! `trace_tables::TRACE_TABLES`). Layout: `docs/parquet.md`.

use anyhow::Context as _;
use polars::prelude::{Column, DataFrame, NamedFrom, Series};
use polars_io::prelude::{ParquetCompression, ParquetWriter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What writing tables produced: rows per table name and the files written.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub rows: BTreeMap<String, u64>,
    pub files: Vec<PathBuf>,
}

/// Where one run's or trace's parts go: `DIR/<dir_of(table)>/<partition>/part-<id>.parquet`.
pub struct Part<'a> {
    pub dir: &'a Path,
    pub partition: &'a [(&'a str, &'a str)],
    pub id: &'a str,
    /// Directory of a table under `dir` (trace tables are prefixed with `trace_`).
    pub dir_of: fn(&str) -> String,
}

/// Build and write every table of a registry (`(name, builder)` in write order, such as
/// `run_tables::RUN_TABLES`) for one run or trace, one at a time (a table's frame is
/// dropped once written). Errors name the table.
pub fn write_tables<Cx, F: Fn(&Cx) -> anyhow::Result<DataFrame>>(
    tables: &[(&'static str, F)],
    cx: &Cx,
    part: &Part,
    out: &mut Written,
) -> anyhow::Result<()> {
    for (name, build) in tables {
        let mut df = build(cx).with_context(|| format!("building table {name}"))?;
        *out.rows.entry(name.to_string()).or_default() += df.height() as u64;
        let f = write_part(
            part.dir,
            &(part.dir_of)(name),
            part.partition,
            part.id,
            &mut df,
        )
        .with_context(|| format!("writing table {name}"))?;
        out.files.push(f);
    }
    Ok(())
}

/// FNV-1a, 64 bit: a stable id for a run or trace, the same in every build (std's hasher
/// is seeded per process).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::default();
    h.update(bytes);
    h.0
}

/// [`fnv1a64`] fed in pieces, e.g. as a file is read (see [`HashingReader`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv1a64(pub u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// A reader that hashes what passes through it, so a file can be parsed and identified
/// in one pass without holding its bytes.
pub struct HashingReader<R> {
    pub inner: R,
    pub hash: Fnv1a64,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// A Hive partition value: bytes other than `A-Za-z0-9._+-` percent-encoded (as Hive
/// escapes path names), "" as `unknown`.
pub fn hive_escape(v: &str) -> String {
    if v.is_empty() {
        return "unknown".into();
    }
    let mut s = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Write `df` as `DIR/<table>/<k>=<v>/.../part-<id>.parquet` (zstd). Written to a hidden
/// temporary name first and renamed (`memmap_model::output`), so a reader never sees half a
/// file.
pub fn write_part(
    dir: &Path,
    table: &str,
    partition: &[(&str, &str)],
    id: &str,
    df: &mut DataFrame,
) -> anyhow::Result<PathBuf> {
    let mut p = dir.join(table);
    for (k, v) in partition {
        p.push(format!("{k}={}", hive_escape(v)));
    }
    std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
    let file = p.join(format!("part-{id}.parquet"));
    // memmap_model::output: an exclusive temporary name per writer, renamed at the end;
    // a part that fails leaves nothing; a non-regular file in the way is refused.
    let mut out = memmap_model::output::Output::create(&file, &[])
        .with_context(|| format!("creating {}", file.display()))?;
    ParquetWriter::new(out.writer())
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)
        .with_context(|| format!("writing {}", out.temp_path().display()))?;
    out.commit()
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Column helper: `col("name", values)`.
pub fn col<T, V>(name: &str, v: V) -> Column
where
    Series: NamedFrom<V, T>,
    T: ?Sized,
{
    Column::from(Series::new(name.into(), v))
}

/// A `list[str]` column, one list per row.
pub fn str_list(name: &str, rows: &[&[String]]) -> Column {
    let series: Vec<Series> = rows
        .iter()
        .map(|r| Series::new("".into(), r.to_vec()))
        .collect();
    col(name, series)
}

/// A frame of columns of equal length.
pub fn frame(cols: Vec<Column>) -> anyhow::Result<DataFrame> {
    DataFrame::new_infer_height(cols).map_err(|e| anyhow::anyhow!("building a table: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_escaped_like_hive() {
        assert_eq!(hive_escape(""), "unknown");
        assert_eq!(hive_escape("6.1.0-56-amd64"), "6.1.0-56-amd64");
        assert_eq!(hive_escape("a/b c=d"), "a%2Fb%20c%3Dd");
        assert_eq!(hive_escape("é"), "%C3%A9");
    }

    #[test]
    fn parts_land_atomically_under_their_partition() {
        let dir = std::env::temp_dir().join(format!("memmap-parquet-{}", std::process::id()));
        let mut df = DataFrame::new_infer_height(vec![col("x", [1u64, 2, 3])]).unwrap();
        let f = write_part(&dir, "t", &[("host", "a b"), ("kernel", "")], "01", &mut df).unwrap();
        assert_eq!(f, dir.join("t/host=a%20b/kernel=unknown/part-01.parquet"));
        let names: Vec<_> = std::fs::read_dir(f.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["part-01.parquet"], "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_registry_is_written_table_by_table_with_its_rows_counted() {
        let dir = std::env::temp_dir().join(format!("memmap-registry-{}", std::process::id()));
        fn two(n: &u64) -> anyhow::Result<DataFrame> {
            frame(vec![col("x", vec![*n; 2])])
        }
        fn none(_: &u64) -> anyhow::Result<DataFrame> {
            frame(vec![col("x", Vec::<u64>::new())])
        }
        type Table = fn(&u64) -> anyhow::Result<DataFrame>;
        const T: &[(&str, Table)] = &[("two", two), ("none", none)];
        let mut w = Written::default();
        let part = Part {
            dir: &dir,
            partition: &[("host", "h")],
            id: "id",
            dir_of: |t| format!("x_{t}"),
        };
        write_tables(T, &7, &part, &mut w).unwrap();
        write_tables(T, &8, &part, &mut w).unwrap();
        assert_eq!(w.rows["two"], 4);
        assert_eq!(w.rows["none"], 0, "an empty table is still written");
        assert_eq!(
            w.files,
            [
                dir.join("x_two/host=h/part-id.parquet"),
                dir.join("x_none/host=h/part-id.parquet"),
                dir.join("x_two/host=h/part-id.parquet"),
                dir.join("x_none/host=h/part-id.parquet"),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_stable_fnv1a() {
        // the published FNV-1a 64 test vectors
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_hashing_reader_hashes_exactly_what_was_read_in_any_pieces() {
        use std::io::Read;
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = HashingReader {
            inner: data.as_slice(),
            hash: Fnv1a64::default(),
        };
        let mut buf = [0u8; 333];
        while r.read(&mut buf).unwrap() > 0 {}
        assert_eq!(r.hash.0, fnv1a64(&data));
        assert_ne!(r.hash.0, fnv1a64(&data[1..]));
    }
}
