//! `/proc/iomem` text: `  100000000-4ffffffff : Persistent Memory`, two spaces of
//! indentation per nesting level, end address inclusive.
//!
//! Tolerates what pasted captures contain: CRLF line ends, tab indentation (a tab counts
//! as one level), a uniformly indented block (e-mail quotes, Markdown), shell prompts and
//! commands above or below the table, trailing blanks. A reader without CAP_SYS_ADMIN sees
//! every address as 0; that gives one warning saying the addresses are hidden.

use memmap_model::trace::TraceEvent;

/// Parse `text` (the contents of `file`): one `Iomem` per resource line, an
/// `ImportWarning` per line that is not one (with its 1-based line number), and one
/// `ImportWarning` when all addresses are zero (read by a non-root user).
pub fn parse(file: &str, text: &str) -> Vec<TraceEvent> {
    let mut entries: Vec<(usize, usize, u64, u64, String)> = Vec::new(); // line, indent, start, end, name
    let mut events = Vec::new();
    let warn = |line: usize, reason: String| TraceEvent::ImportWarning {
        file: file.to_string(),
        line,
        reason,
    };
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches(['\r', ' ', '\t', '\0']);
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok((indent, start, end, name)) => entries.push((n, indent, start, end, name)),
            Err(reason) => events.push(warn(n, reason)),
        }
    }
    let base = entries.iter().map(|e| e.1).min().unwrap_or(0);
    let all_zero = entries.len() > 1 && entries.iter().all(|e| e.2 == 0 && e.3 == 0);
    if all_zero {
        events.push(warn(
            entries[0].0,
            format!(
                "all {} addresses are 0: /proc/iomem hides addresses from readers without \
                 CAP_SYS_ADMIN; read it as root (sudo cat /proc/iomem) for the layout",
                entries.len()
            ),
        ));
    }
    for (_, indent, start, end, name) in entries {
        events.push(TraceEvent::Iomem {
            start,
            end,
            name,
            depth: ((indent - base) / 2) as u32,
        });
    }
    events
}

/// Same as [`parse`] (the `import --format iomem` entry point).
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    parse(file, text)
}

/// (indentation in columns, start, end, name) or why the line is not an iomem line.
fn parse_line(line: &str) -> Result<(usize, u64, u64, String), String> {
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
    let what = describe(body);
    let Some((range, name)) = body.split_once(" : ").or_else(|| body.split_once(':')) else {
        return Err(format!("{expected}, found {what}"));
    };
    let Some((s, e)) = range.trim().split_once('-') else {
        return Err(format!("{expected}, found {what}"));
    };
    let hex = |t: &str| -> Option<u64> {
        let t = t.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        if t.is_empty() || t.len() > 16 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(t, 16).ok()
    };
    let (Some(start), Some(end)) = (hex(s), hex(e)) else {
        return Err(format!("{expected}, found {what}"));
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
    Ok((indent, start, end, name.to_string()))
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
