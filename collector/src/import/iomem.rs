//! `/proc/iomem` text: `  100000000-4ffffffff : Persistent Memory`, two spaces of
//! indentation per nesting level, end address inclusive.
//!
//! Tolerates what pasted captures contain: CRLF line ends, tab indentation (a tab counts
//! as one level), a uniformly indented block (e-mail quotes, Markdown), shell prompts and
//! commands above or below the table, trailing blanks. A reader without CAP_SYS_ADMIN sees
//! every address as 0; that gives one warning saying the addresses are hidden.

use crate::import::lines::{self, Line, LineFormat, LineStats, TwoPass};
use anyhow::Result;
use memmap_model::trace::TraceEvent;
use std::io::{Read, Seek};

/// Parse `text` (the contents of `file`): one `Iomem` per resource line, an
/// `ImportWarning` per line that is not one (with its 1-based line number), and one
/// `ImportWarning` when all addresses are zero (read by a non-root user).
pub fn parse(file: &str, text: &str) -> Vec<TraceEvent> {
    lines::two_pass_text(file, text, stream)
}

/// Same as [`parse`] (the `import --format iomem` entry point).
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    parse(file, text)
}

/// Streams `r` in two passes: the first warns about the lines that are not iomem
/// lines and finds the smallest indentation (depth 0) and whether every address is
/// zero; the second emits the `Iomem` events. Events in the order [`parse`] gives.
pub fn stream<R: Read + Seek>(io: TwoPass<'_, R>) -> Result<bool> {
    let TwoPass {
        r,
        name,
        chunk,
        st,
        mut send,
    } = io;
    let mut scan = Scan {
        file: name.to_string(),
        base: usize::MAX,
        entries: 0,
        all_zero: true,
        first_line: 0,
    };
    if !lines::parse_lines(&mut *r, name, chunk, &mut scan, st, &mut send)? {
        return Ok(false);
    }
    if scan.entries > 1 && scan.all_zero {
        let w = TraceEvent::ImportWarning {
            file: name.to_string(),
            line: scan.first_line,
            reason: format!(
                "all {} addresses are 0: /proc/iomem hides addresses from readers without \
                 CAP_SYS_ADMIN; read it as root (sudo cat /proc/iomem) for the layout",
                scan.entries
            ),
        };
        if !send(vec![w]) {
            return Ok(false);
        }
    }
    if scan.entries == 0 {
        return Ok(true);
    }
    lines::rewind(r, name)?;
    let mut emit = Emit { base: scan.base };
    lines::parse_lines(
        r,
        name,
        chunk,
        &mut emit,
        &mut LineStats::default(),
        &mut send,
    )
}

/// First pass: warnings, depth 0, all-zero addresses.
struct Scan {
    file: String,
    base: usize,
    entries: u64,
    all_zero: bool,
    first_line: usize,
}

impl LineFormat for Scan {
    fn line(&mut self, n: usize, raw: &str, out: &mut Vec<TraceEvent>) -> Line {
        let Some(line) = content(raw) else {
            return Line::Ignored;
        };
        match parse_line(line) {
            Ok((indent, start, end, _)) => {
                if self.entries == 0 {
                    self.first_line = n;
                }
                self.entries += 1;
                self.base = self.base.min(indent);
                self.all_zero &= start == 0 && end == 0;
                Line::Recognised
            }
            Err(reason) => {
                out.push(TraceEvent::ImportWarning {
                    file: self.file.clone(),
                    line: n,
                    reason,
                });
                Line::Skipped
            }
        }
    }
}

/// Second pass: the `Iomem` events.
struct Emit {
    base: usize,
}

impl LineFormat for Emit {
    fn line(&mut self, _: usize, raw: &str, out: &mut Vec<TraceEvent>) -> Line {
        let Some(line) = content(raw) else {
            return Line::Ignored;
        };
        match parse_line(line) {
            Ok((indent, start, end, name)) => {
                out.push(TraceEvent::Iomem {
                    start,
                    end,
                    name: name.to_string(),
                    depth: ((indent - self.base) / 2) as u32,
                });
                Line::Recognised
            }
            Err(_) => Line::Ignored,
        }
    }

    fn overlong(&mut self, _: &str, _: usize, _: u64, _: &mut Vec<TraceEvent>) -> Line {
        Line::Ignored // warned about in the first pass
    }
}

/// `raw` without trailing `\r`, blanks and NULs; None for a blank line. (A byte loop:
/// `trim_end_matches` with a char set and `trim` were ~8 % of an import; the trimmed
/// characters are ASCII, so bytes and chars agree.)
fn content(raw: &str) -> Option<&str> {
    let b = raw.as_bytes();
    let mut n = b.len();
    while n > 0 && matches!(b[n - 1], b'\r' | b' ' | b'\t' | b'\0') {
        n -= 1;
    }
    let line = &raw[..n];
    match line.as_bytes().first() {
        None => None,
        // an ASCII non-blank first byte: not blank, no need for the Unicode `trim`
        Some(c) if c.is_ascii() && !c.is_ascii_whitespace() => Some(line),
        Some(_) => (!line.trim().is_empty()).then_some(line),
    }
}

/// (indentation in columns, start, end, name) or why the line is not an iomem line.
fn parse_line(line: &str) -> Result<(usize, u64, u64, &str), String> {
    match parse_plain(line) {
        Some(r) => Ok(r),
        None => parse_any(line),
    }
}

/// The line as the kernel prints it (indentation, `start-end : name`, plain hex digits),
/// byte by byte; None for anything else, left to [`parse_any`], which gives the same
/// result for every line this accepts. Hand-written: this is the whole per-line work of
/// both passes over 27 M lines of a 1 GB input, where `split_once(" : ")`'s substring
/// searcher, the generic trims and `char::to_digit` took ~25 % of the import.
fn parse_plain(line: &str) -> Option<(usize, u64, u64, &str)> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut indent = 0;
    while i < b.len() {
        match b[i] {
            b' ' => indent += 1,
            b'\t' => indent += 2,
            _ => break,
        }
        i += 1;
    }
    let hex = |i: &mut usize| -> Option<u64> {
        let st = *i;
        let mut v = 0u64;
        while let Some(d) = b.get(*i).and_then(|&c| (c as char).to_digit(16)) {
            v = v << 4 | d as u64;
            *i += 1;
        }
        (*i > st && *i - st <= 16).then_some(v)
    };
    let start = hex(&mut i)?;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let end = hex(&mut i)?;
    if b.get(i..i + 3) != Some(b" : ") || end < start {
        return None;
    }
    let name = line[i + 3..].trim();
    (!name.is_empty()).then_some((indent, start, end, name))
}

/// [`parse_line`] for any line: prompts, `0x` prefixes, blanks around the fields.
fn parse_any(line: &str) -> Result<(usize, u64, u64, &str), String> {
    let mut indent = 0usize;
    let mut body = line;
    for (pos, c) in line.char_indices() {
        match c {
            ' ' => indent += 1,
            '\t' => indent += 2,
            _ => {
                body = &line[pos..];
                break;
            }
        }
    }
    let expected = "expected an iomem line `start-end : name` (hex addresses)";
    let what = || describe(body);
    let Some((range, name)) = body.split_once(" : ").or_else(|| body.split_once(':')) else {
        return Err(format!("{expected}, found {}", what()));
    };
    let Some((s, e)) = range.trim().split_once('-') else {
        return Err(format!("{expected}, found {}", what()));
    };
    let hex = |t: &str| -> Option<u64> {
        let t = t.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        if t.is_empty() || t.len() > 16 {
            return None;
        }
        t.bytes().try_fold(0u64, |v, b| {
            let d = (b as char).to_digit(16)?;
            Some(v << 4 | d as u64)
        })
    };
    let (Some(start), Some(end)) = (hex(s), hex(e)) else {
        return Err(format!("{expected}, found {}", what()));
    };
    if end < start {
        return Err(format!(
            "range {start:#x}-{end:#x} ends before it starts ({expected})"
        ));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(format!(
            "range {start:#x}-{end:#x} has no name ({expected})"
        ));
    }
    Ok((indent, start, end, name))
}

/// A short description of an unreadable line for the warning.
fn describe(body: &str) -> String {
    let shown: String = body.chars().take(60).collect();
    let ell = if body.chars().count() > 60 { "..." } else { "" };
    let prompt = body.contains("$ ")
        || body.starts_with("# ")
        || body.starts_with('$')
        || body.contains("[sudo]")
        || body.contains("cat /proc/iomem")
        || body.ends_with('$')
        || body.ends_with('#');
    if prompt {
        format!("a shell prompt or command {shown:?}{ell}, skipped")
    } else {
        format!("{shown:?}{ell}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_crlf_tabs_and_prompts() {
        let text = "$ sudo cat /proc/iomem\r\n[sudo] password for me: \r\n00000000-00000fff : Reserved\r\n100000000-4fffdffff : Persistent Memory\r\n  100000000-4feffffff : namespace0.0\r\n\t\t140000000-17fffffff : dax0.0\r\nme@host:~$ ";
        let ev = parse("iomem.txt", text);
        let io: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Iomem {
                    start, end, depth, ..
                } => Some((*start, *end, *depth)),
                _ => None,
            })
            .collect();
        assert_eq!(
            io,
            vec![
                (0, 0xfff, 0),
                (0x1_0000_0000, 0x4_fffd_ffff, 0),
                (0x1_0000_0000, 0x4_feff_ffff, 1),
                (0x1_4000_0000, 0x1_7fff_ffff, 2)
            ]
        );
        let lines: Vec<usize> = ev
            .iter()
            .filter_map(|e| match e {
                TraceEvent::ImportWarning { line, .. } => Some(*line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, vec![1, 2, 7]);
    }

    #[test]
    fn zero_addresses_give_one_warning() {
        let text = "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n  00000000-00000000 : Kernel code\n";
        let ev = parse("p", text);
        let w: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, TraceEvent::ImportWarning { .. }))
            .collect();
        assert_eq!(w.len(), 1);
        assert!(format!("{w:?}").contains("root"));
    }
}
