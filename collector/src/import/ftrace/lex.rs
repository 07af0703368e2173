//! Small lexers of ftrace text: timestamps, function_graph durations, `task-pid`,
//! columns, and the clipping of lines quoted in warnings.

/// `"25.887520"` -> ns (up to 9 fraction digits; more are truncated). An integer without
/// a fraction is taken as ns (trace clocks "counter" / "x86-tsc" print raw counts).
pub fn parse_ts(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut iv: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        if i >= 19 {
            return None;
        }
        iv = iv * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i == b.len() {
        return Some(iv);
    }
    if b[i] != b'.' || i + 1 == b.len() {
        return None;
    }
    let mut f: u64 = 0;
    let mut nf = 0;
    for &c in &b[i + 1..] {
        if !c.is_ascii_digit() {
            return None;
        }
        if nf < 9 {
            f = f * 10 + (c - b'0') as u64;
            nf += 1;
        }
    }
    while nf < 9 {
        f *= 10;
        nf += 1;
    }
    iv.checked_mul(1_000_000_000)?.checked_add(f)
}

/// function_graph duration column: `"+ 26.378 us"`, `"$ 1557216 us"`, `"0.500 us"`.
pub(super) fn parse_duration(seg: &str) -> Option<u64> {
    let s = seg
        .strip_prefix(['+', '!', '#', '*', '@', '$'])
        .unwrap_or(seg)
        .trim_ascii();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1_000u64)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = s.strip_suffix("ns") {
        (n, 1)
    } else {
        return None;
    };
    let num = num.trim_ascii();
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || int.len() > 15 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = int.parse().ok()?;
    v = v.checked_mul(mult)?;
    let mut scale = mult;
    for c in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        v += (c - b'0') as u64 * scale;
    }
    Some(v)
}

/// `"scenario.sh-124"` -> ("scenario.sh", 124); the pid is after the last '-'.
pub fn split_task_pid(s: &str) -> Option<(&str, u32)> {
    let s = s.trim_ascii();
    let (task, pid) = s.rsplit_once('-')?;
    Some((task.trim_ascii(), parse_small(pid)?))
}

pub(super) fn parse_small(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `grep -n` output pasted as a trace: `"207:       faulttest-668"` -> `"faulttest-668"`.
pub(super) fn strip_grep_prefix(head: &str) -> &str {
    let d = head.bytes().take_while(u8::is_ascii_digit).count();
    if d > 0 && head.as_bytes().get(d) == Some(&b':') {
        let rest = &head[d + 1..];
        if rest.starts_with([' ', '\t']) || rest.is_empty() {
            return rest.trim_ascii_start();
        }
    }
    head
}

pub(super) fn split_ws(s: &str) -> (&str, &str) {
    let s = s.trim_ascii_start();
    match s.bytes().position(|b| b == b' ' || b == b'\t') {
        Some(i) => (&s[..i], s[i..].trim_ascii_start()),
        None => (s, ""),
    }
}

pub(super) fn skip_sp(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// `"nvdimm_setup_pfn [libnvdimm]"` -> `"nvdimm_setup_pfn"`.
pub(super) fn func_name(s: &str) -> &str {
    let s = s.trim_ascii_start();
    match s.bytes().position(|b| b == b' ' || b == b'\t') {
        Some(i) => &s[..i],
        None => s,
    }
}

pub(super) fn is_latency_flags(seg: &str) -> bool {
    (3..=6).contains(&seg.len()) && seg.bytes().all(|b| b".dDXnNhHsSbzp0123456789".contains(&b))
}

pub(super) fn is_report_header(t: &str) -> bool {
    t.starts_with("version = ")
        || t.starts_with("cpus=")
        || t.starts_with("trace-cmd")
        || (t.starts_with("CPU") && (t.ends_with("is empty") || t.contains("data recorded")))
}

/// A line clipped for a warning message.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= 120 {
        return s.to_string();
    }
    let mut e = 120;
    while !s.is_char_boundary(e) {
        e -= 1;
    }
    format!("{}...", &s[..e])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_durations() {
        assert_eq!(parse_ts("25.887520"), Some(25_887_520_000));
        assert_eq!(parse_ts("1.000000001"), Some(1_000_000_001));
        assert_eq!(parse_ts("99999999999999999999.1"), None);
        assert_eq!(parse_duration("+ 26.378 us"), Some(26_378));
        assert_eq!(parse_duration("@ 561397.7 us"), Some(561_397_700));
        assert_eq!(parse_duration("$ 1557216 us"), Some(1_557_216_000));
        assert_eq!(parse_duration("ndctl-1"), None);
    }
}
