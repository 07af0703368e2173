//! Kernel log text: `dmesg` (`[   12.345678] text`), `dmesg -r` (`<6>[..] text`),
//! `dmesg -x` (`kern  :info  : [..] text`), syslog (`Nov 21 10:00:01 host kernel: [ 12.3]
//! text`), `journalctl -k` (`Nov 21 10:00:01 host kernel: text`, and `-o short-monotonic`
//! `[   12.345678] host kernel: text`), `/dev/kmsg` records (`6,1234,12345678,-;text`),
//! and plain text without timestamps.
//!
//! Every line becomes `KernelLog{t_ns, level, text}`; lines the kernel prints about memmap
//! initialisation also become structured events ([`structured`]). Lines without a
//! monotonic timestamp get the previous line's time (0 before the first timestamp);
//! lines without a level get 6 (info).

use crate::import::lines::{Line, LineFormat};
use memmap_model::trace::TraceEvent;

const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];
const FACILITIES: [&str; 12] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Structured event for one kernel log message, if it is one we know:
///
/// * `memmap_init_zone_device initialised 1031680 pages in 56ms` (the pr_debug in
///   mm/mm_init.c on 6.x, prefixed with `__func__`), and older / driver variants naming
///   the device: `pmem0: ... initialised, N pages in M ms`, `dax0.0 initialised, ...`
///   -> `Initialised{device: the word before "initialised", pages, ms}`.
pub fn structured(t_ns: u64, text: &str) -> Option<TraceEvent> {
    let pos = text.find(" initialised")?;
    let words: Vec<&str> = text[..pos].split_whitespace().collect();
    let w = *words.last()?;
    // "dax0.0 initialised", "pmem0: initialised", 6.x "memmap_init_zone_device initialised";
    // "pmem0: memmap initialised" names the device in its dev_printk prefix
    let device = if w.ends_with([':', ',']) || w.contains('_') {
        w
    } else {
        words
            .iter()
            .rev()
            .skip(1)
            .find(|x| x.ends_with(':'))
            .copied()
            .unwrap_or(w)
    }
    .trim_end_matches([':', ',']);
    let rest = text[pos + " initialised".len()..]
        .trim_start_matches(',')
        .trim_start();
    let (pages, rest) = rest.split_once(' ')?;
    let pages: u64 = pages.parse().ok()?;
    let rest = rest.trim_start().strip_prefix("pages in")?.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ms: u64 = rest[..digits].parse().ok()?;
    rest[digits..].trim_start().strip_prefix("ms")?;
    if device.is_empty() {
        return None;
    }
    Some(TraceEvent::Initialised {
        t_ns,
        device: device.to_string(),
        pages,
        ms,
    })
}

/// `"   12.345678"` -> ns.
fn parse_secs(s: &str) -> Option<u64> {
    crate::import::ftrace::parse_ts(s.trim())
}

/// A kernel log line taken apart: (t_ns if the line has one, level if it has one, text,
/// whether a kernel log prefix was recognised). `Err` names what a line that started
/// like a known prefix was missing.
type Split<'a> = (Option<u64>, Option<u8>, &'a str, bool);

fn split_line(line: &str) -> Result<Split<'_>, String> {
    let mut s = line;
    let mut level = None;
    let mut t = None;
    let mut known = false;
    // /dev/kmsg record: "6,1234,12345678,-;text"
    if let Some((head, text)) = s.split_once(';') {
        let parts: Vec<&str> = head.split(',').collect();
        if parts.len() >= 3
            && parts[..3]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            let pri: u64 = parts[0].parse().map_err(|_| "priority".to_string())?;
            let us: u64 = parts[2].parse().map_err(|_| "microseconds".to_string())?;
            return Ok((us.checked_mul(1000), Some((pri & 7) as u8), text, true));
        }
    }
    // <6> prefix (dmesg -r / syslog raw)
    if let Some(r) = s.strip_prefix('<') {
        if let Some((n, rest)) = r.split_once('>') {
            if let Ok(p) = n.parse::<u32>() {
                level = Some((p & 7) as u8);
                s = rest;
                known = true;
            }
        }
    }
    // dmesg -x: "kern  :info  : "
    if let Some((fac, rest)) = s.split_once(':') {
        if FACILITIES.contains(&fac.trim()) {
            if let Some((lv, rest2)) = rest.split_once(':') {
                if let Some(i) = LEVELS.iter().position(|l| *l == lv.trim()) {
                    level = Some(i as u8);
                    s = rest2.strip_prefix(' ').unwrap_or(rest2);
                    known = true;
                }
            }
        }
    }
    // syslog / journalctl: "Nov 21 10:00:01 host kernel: ..."
    let trimmed = s.trim_start();
    let tb = trimmed.as_bytes();
    if tb.len() > 4 && tb[3] == b' ' && MONTHS.iter().any(|m| m.as_bytes() == &tb[..3]) {
        match trimmed.find(" kernel: ") {
            Some(k) => {
                s = &trimmed[k + " kernel: ".len()..];
                known = true;
            }
            None => {
                if let Some(c) = trimmed.find(": ") {
                    // another program's line in a syslog file: keep it as text
                    s = &trimmed[c + 2..];
                    known = true;
                }
            }
        }
    } else if tb.len() > 20
        && tb[4] == b'-'
        && tb[10] == b'T'
        && tb[..4].iter().all(u8::is_ascii_digit)
    {
        // ISO timestamps (rsyslog, dmesg --time-format iso): "2025-11-21T10:00:01.1+00:00 host kernel: "
        if let Some(k) = trimmed.find(" kernel: ") {
            s = &trimmed[k + " kernel: ".len()..];
        } else if let Some(sp) = trimmed.find(' ') {
            s = &trimmed[sp + 1..];
        }
        known = true;
    }
    // "[   12.345678] "
    let st = s.trim_start();
    if let Some(r) = st.strip_prefix('[') {
        let Some(close) = r.find(']') else {
            return Err("a '[seconds.micros]' timestamp without its ']'".into());
        };
        let inside = &r[..close];
        let text = r[close + 1..].strip_prefix(' ').unwrap_or(&r[close + 1..]);
        match parse_secs(inside) {
            Some(v) => {
                t = Some(v);
                s = text;
                known = true;
                // journalctl -o short-monotonic: "[ 12.3] host kernel: text"
                if let Some((host, rest)) = s.split_once(' ') {
                    if let Some(r2) = rest.strip_prefix("kernel: ") {
                        if !host.is_empty() && !host.contains(':') {
                            s = r2;
                        }
                    }
                }
            }
            None => {
                let it = inside.trim();
                let looks_numeric =
                    it.starts_with(|c: char| c.is_ascii_digit()) && !it.contains([':', ' ', '-']);
                if looks_numeric {
                    return Err(format!(
                        "a '[seconds.micros]' timestamp, got [{}]",
                        crate::import::ftrace::clip(inside)
                    ));
                }
                // dmesg -T "[Fri Nov 21 10:00:01 2025] text": wall clock only
                if inside.len() >= 20 && inside.contains(':') {
                    s = text;
                    known = true;
                }
            }
        }
    }
    Ok((t, level, s, known))
}

/// Streaming kernel log parser; see the module documentation.
pub struct DmesgParser {
    file: String,
    last_t: u64,
}

impl DmesgParser {
    pub fn new(file: &str) -> Self {
        DmesgParser {
            file: file.to_string(),
            last_t: 0,
        }
    }

    fn warn(&self, lineno: usize, reason: String, out: &mut Vec<TraceEvent>) -> Line {
        out.push(TraceEvent::ImportWarning {
            file: self.file.clone(),
            line: lineno,
            reason,
        });
        Line::Skipped
    }
}

/// Bytes no text line holds: replaced invalid UTF-8 and control characters other than
/// tab and escape (`dmesg --color` output holds escapes).
fn binary(s: &str) -> bool {
    s.chars()
        .any(|c| c == '\u{fffd}' || (c < ' ' && c != '\t' && c != '\x1b') || c == '\x7f')
}

impl LineFormat for DmesgParser {
    fn line(&mut self, lineno: usize, raw: &str, out: &mut Vec<TraceEvent>) -> Line {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            return Line::Ignored;
        }
        match split_line(line) {
            Ok((_, _, _, false)) if binary(line) => self.warn(
                lineno,
                format!(
                    "expected a kernel log line, found binary data (invalid UTF-8 or control \
                     characters): {:?}",
                    crate::import::ftrace::clip(line)
                ),
                out,
            ),
            Ok((t, level, msg, known)) => {
                if let Some(t) = t {
                    self.last_t = t;
                }
                let msg = msg.trim_end();
                out.push(TraceEvent::KernelLog {
                    t_ns: self.last_t,
                    level: level.unwrap_or(6),
                    text: msg.to_string(),
                });
                if let Some(e) = structured(self.last_t, msg) {
                    out.push(e);
                }
                if known {
                    Line::Recognised
                } else {
                    Line::Kept
                }
            }
            Err(expected) => self.warn(
                lineno,
                format!(
                    "expected a kernel log line ('[seconds.micros] text', '<level>[..] text', \
                     'Mon dd hh:mm:ss host kernel: text'); found {expected}"
                ),
                out,
            ),
        }
    }
}

/// Imports a kernel log; see the module documentation.
pub fn import(file: &str, text: &str) -> Vec<TraceEvent> {
    crate::import::lines::parse_text(text, &mut DmesgParser::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> (u64, u8, String) {
        match &import("t", line)[0] {
            TraceEvent::KernelLog { t_ns, level, text } => (*t_ns, *level, text.clone()),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn line_styles() {
        assert_eq!(
            one("[  122.302930] hello"),
            (122_302_930_000, 6, "hello".into())
        );
        assert_eq!(one("<3>[    1.5] bad"), (1_500_000_000, 3, "bad".into()));
        assert_eq!(
            one("kern  :warn  : [    2.000001] w"),
            (2_000_001_000, 4, "w".into())
        );
        assert_eq!(
            one("Nov 21 10:00:01 vm kernel: [   12.3] x y"),
            (12_300_000_000, 6, "x y".into())
        );
        assert_eq!(one("Nov 21 10:00:01 vm kernel: x y"), (0, 6, "x y".into()));
        assert_eq!(
            one("[   12.345678] vm kernel: z"),
            (12_345_678_000, 6, "z".into())
        );
        assert_eq!(
            one("6,339,5140900,-;NET: Registered"),
            (5_140_900_000, 6, "NET: Registered".into())
        );
        assert_eq!(one("just text"), (0, 6, "just text".into()));
        assert!(matches!(
            import("f", "[ 12.3x] a")[0],
            TraceEvent::ImportWarning { line: 1, .. }
        ));
    }

    #[test]
    fn initialised_variants() {
        for (text, dev, pages, ms) in [
            (
                "memmap_init_zone_device initialised 1031680 pages in 56ms",
                "memmap_init_zone_device",
                1031680,
                56,
            ),
            (
                "pmem0: memmap initialised, 4190208 pages in 1557 ms",
                "pmem0",
                4190208,
                1557,
            ),
            ("dax0.0 initialised, 12 pages in 0ms", "dax0.0", 12, 0),
        ] {
            assert_eq!(
                structured(5, text),
                Some(TraceEvent::Initialised {
                    t_ns: 5,
                    device: dev.into(),
                    pages,
                    ms
                }),
                "{text}"
            );
        }
        assert_eq!(structured(0, "uninitialised reads"), None);
    }
}
