//! The one way every memmap-lab command writes a file.
//!
//! [`Output::create`] checks the destination and opens an exclusive, per-process
//! temporary file next to it (`.NAME.<pid>.<random>.tmp`, created with `O_EXCL` in the
//! destination's directory, so two writers never share one); [`Output::commit`] flushes,
//! fsyncs and renames it over the destination. An [`Output`] dropped without a commit
//! (an error, a panic, an early return) removes its temporary file: a failed command
//! leaves neither a partial output nor a temporary behind, and an existing destination
//! is untouched until the rename.
//!
//! A destination is refused, with an error naming it and the reason, when it
//! * exists and is not a regular file (a directory, a device node such as `/dev/null`,
//!   a fifo, a socket, or a symlink to one of those): renaming over it would replace
//!   the node, writing into it would not give a file;
//! * is the same file (same device and inode, or for paths not created yet the same
//!   resolved path) as one of the command's inputs or its target, given as `avoid`:
//!   the command would destroy what it reads or writes to.
//!
//! A symlink to a regular file is followed: the file it points to is replaced and the
//! link kept. [`create_streaming`] is the exception for a writer that must leave a
//! readable file when killed (the live collector): same checks, written under the final
//! name. See `docs/run-format.md`, "Writing files".

use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A file the output must not be: an input of the command, or its target.
#[derive(Clone, Copy, Debug)]
pub struct Avoid<'a> {
    /// What it is, for the error message: "input", "target", "scenario", ...
    pub role: &'a str,
    pub path: &'a Path,
}

impl<'a> Avoid<'a> {
    pub fn input(path: &'a Path) -> Avoid<'a> {
        Avoid {
            role: "input",
            path,
        }
    }
    pub fn target(path: &'a Path) -> Avoid<'a> {
        Avoid {
            role: "target",
            path,
        }
    }
}

/// Inputs as [`Avoid`] entries.
pub fn inputs<P: AsRef<Path>>(paths: &[P]) -> Vec<Avoid<'_>> {
    paths.iter().map(|p| Avoid::input(p.as_ref())).collect()
}

/// An error naming `path` and the reason.
fn refuse(kind: io::ErrorKind, path: &Path, reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(kind, format!("{}: {reason}", path.display()))
}

/// What a path names: an existing file's (device, inode), or, for a path that does not
/// exist yet, where it resolves to (symlinks followed, directory canonical).
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(p: &Path) -> Identity {
    match fs::metadata(p) {
        Ok(m) => Identity::Inode(m.dev(), m.ino()),
        Err(_) => Identity::Path(resolve(p)),
    }
}

/// `p` with symlinks of its last component followed (40 at most, as the kernel) and
/// its directory made canonical; lexical when the directory does not exist.
fn resolve(p: &Path) -> PathBuf {
    let mut p = p.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&p) {
                Ok(l) if l.is_absolute() => p = l,
                Ok(l) => p = parent_dir(&p).join(l),
                Err(_) => break,
            },
            _ => break,
        }
    }
    if let Ok(c) = fs::canonicalize(&p) {
        return c;
    }
    match (fs::canonicalize(parent_dir(&p)), p.file_name()) {
        (Ok(d), Some(n)) => d.join(n),
        _ => std::path::absolute(&p).unwrap_or(p),
    }
}

/// The directory of `p` ("." for a bare name).
fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a fifo"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Check `dest` as an output of a command that reads or writes `avoid`: refused when it
/// exists and is not a regular file, or is the same file as one of `avoid`. Returns the
/// path to write: `dest` with symlinks followed.
pub fn check_destination(dest: &Path, avoid: &[Avoid]) -> io::Result<PathBuf> {
    if dest.as_os_str().is_empty() || dest.file_name().is_none() {
        return Err(refuse(
            io::ErrorKind::InvalidInput,
            dest,
            "names no file (an output must be a file path)",
        ));
    }
    let real = resolve(dest);
    let via = if real != dest && fs::symlink_metadata(dest).is_ok_and(|m| m.is_symlink()) {
        format!(" (through the symlink to {})", real.display())
    } else {
        String::new()
    };
    match fs::metadata(dest) {
        Ok(m) if !m.is_file() => {
            return Err(refuse(
                io::ErrorKind::InvalidInput,
                dest,
                format_args!(
                    "is {}{via}, not a regular file; refusing to write the output over it \
                     (give a file path)",
                    kind_name(m.file_type())
                ),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(e.kind(), dest, format_args!("cannot stat: {e}"))),
    }
    let me = identity(dest);
    for a in avoid {
        if identity(a.path) == me {
            return Err(refuse(
                io::ErrorKind::InvalidInput,
                dest,
                format_args!(
                    "is the same file as the {} {}{via}; refusing to overwrite it \
                     (give another output path)",
                    a.role,
                    a.path.display()
                ),
            ));
        }
    }
    Ok(real)
}

/// A file being written under a temporary name; see the module docs.
pub struct Output {
    /// The destination as given (messages).
    dest: PathBuf,
    /// The destination with symlinks followed (the rename's target).
    real: PathBuf,
    tmp: PathBuf,
    w: Option<BufWriter<File>>,
    avoid: Vec<(String, PathBuf)>,
}

impl Output {
    /// Check `dest` (see [`check_destination`]) and create its temporary file.
    pub fn create(dest: &Path, avoid: &[Avoid]) -> io::Result<Output> {
        let real = check_destination(dest, avoid)?;
        let (tmp, f) = create_temp(dest, &real)?;
        Ok(Output {
            dest: dest.to_path_buf(),
            real,
            tmp,
            w: Some(BufWriter::with_capacity(1 << 16, f)),
            avoid: avoid
                .iter()
                .map(|a| (a.role.to_string(), a.path.to_path_buf()))
                .collect(),
        })
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The destination as given.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// The buffered writer of the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.w
            .as_mut()
            .expect("an output is written before its commit")
    }

    /// Flush, fsync, check the destination again (it may have changed since
    /// [`Output::create`]) and rename the temporary file over it.
    pub fn commit(mut self) -> io::Result<()> {
        let w = self.w.take().expect("an output is committed once");
        let f = w.into_inner().map_err(|e| {
            refuse(
                e.error().kind(),
                &self.tmp,
                format_args!("write: {}", e.error()),
            )
        })?;
        f.sync_all()
            .map_err(|e| refuse(e.kind(), &self.tmp, format_args!("fsync: {e}")))?;
        drop(f);
        let avoid: Vec<Avoid> = self
            .avoid
            .iter()
            .map(|(role, path)| Avoid {
                role: role.as_str(),
                path: path.as_path(),
            })
            .collect();
        let real = check_destination(&self.dest, &avoid)?;
        fs::rename(&self.tmp, &real).map_err(|e| {
            refuse(
                e.kind(),
                &self.dest,
                format_args!("cannot rename {} over it: {e}", self.tmp.display()),
            )
        })?;
        self.real = real;
        // The rename is durable once the directory is.
        if let Ok(d) = File::open(parent_dir(&self.real)) {
            let _ = d.sync_all();
        }
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            // Not committed: no partial output, no temporary left behind.
            self.w.take();
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `.NAME.<pid>.<random>.tmp` in the directory of `real`, created exclusively.
fn create_temp(dest: &Path, real: &Path) -> io::Result<(PathBuf, File)> {
    let dir = parent_dir(real);
    let name = real
        .file_name()
        .unwrap_or(dest.as_os_str())
        .to_string_lossy()
        .into_owned();
    let mut last = None;
    for attempt in 0u32..16 {
        let tmp = dir.join(format!(
            ".{name}.{}.{:016x}.tmp",
            std::process::id(),
            random_u64(attempt)
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(refuse(
                    e.kind(),
                    dest,
                    format_args!("cannot create a temporary file in {}: {e}", dir.display()),
                ))
            }
        }
    }
    Err(refuse(
        io::ErrorKind::AlreadyExists,
        dest,
        format_args!(
            "no free temporary name in {} after 16 tries ({})",
            dir.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

/// 64 random-enough bits: std's per-process random hash keys over a counter and the clock.
fn random_u64(salt: u32) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(salt);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.finish()
}

/// An [`Output`] written with `O_DIRECT` (Linux): for large outputs that are fsynced at
/// the end anyway (`import` of a 1 GB capture writes 1-2.3 GB). Buffered writes first
/// copy every byte into fresh page-cache pages; on our VM that copy ran at ~330 MB/s
/// (`dd` to a new file; 91 % of its time in `copy_folio_from_iter_atomic`) against
/// ~1.5 GB/s with `O_DIRECT`, and renaming over the previous output then also freed its
/// gigabytes of cache. Whole [`DirectOutput::BLOCK`]s go out with `O_DIRECT` from an
/// aligned buffer; the tail (and everything, where the file system refuses `O_DIRECT`,
/// e.g. tmpfs) is written buffered. [`DirectOutput::commit`] is [`Output::commit`]:
/// fsync, then rename.
pub struct DirectOutput {
    o: Output,
    /// `BLOCK` bytes from `off`, page-aligned in memory; never reallocated.
    buf: Vec<u8>,
    off: usize,
    len: usize,
    direct: bool,
}

impl DirectOutput {
    /// Bytes per `O_DIRECT` write (a multiple of every logical block size).
    pub const BLOCK: usize = 4 << 20;
    const ALIGN: usize = 4096;

    pub fn new(mut o: Output) -> DirectOutput {
        let direct = set_direct(o.writer().get_ref(), true);
        let buf = vec![0u8; Self::BLOCK + Self::ALIGN];
        let off = buf.as_ptr().align_offset(Self::ALIGN);
        DirectOutput {
            o,
            buf,
            off,
            len: 0,
            direct,
        }
    }

    /// The destination as given.
    pub fn path(&self) -> &Path {
        self.o.path()
    }

    /// Writes the full buffer (`BLOCK` bytes, or the tail with `O_DIRECT` off).
    fn write_out(&mut self) -> io::Result<()> {
        let data = &self.buf[self.off..self.off + self.len];
        let f = self.o.writer().get_mut();
        match f.write_all(data) {
            Err(e) if self.direct && e.raw_os_error() == Some(EINVAL) => {
                // O_DIRECT accepted at open, refused at write (some file systems): the
                // file offset has not moved, write it buffered.
                self.direct = false;
                set_direct(f, false);
                f.write_all(data)
            }
            r => r,
        }
        .map_err(|e| refuse(e.kind(), &self.o.tmp, format_args!("write: {e}")))?;
        self.len = 0;
        Ok(())
    }

    /// Write the tail, fsync and rename (see [`Output::commit`]).
    pub fn commit(mut self) -> io::Result<()> {
        if self.direct {
            self.direct = false;
            set_direct(self.o.writer().get_ref(), false);
        }
        if self.len > 0 {
            self.write_out()?;
        }
        self.o.commit()
    }
}

impl Write for DirectOutput {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(Self::BLOCK - self.len);
        let at = self.off + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == Self::BLOCK {
            self.write_out()?;
        }
        Ok(n)
    }
    /// Nothing: a partial block cannot go out with `O_DIRECT`, and the temporary file is
    /// not read before [`DirectOutput::commit`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(target_os = "linux")]
const EINVAL: i32 = libc::EINVAL;
#[cfg(not(target_os = "linux"))]
const EINVAL: i32 = 22;

/// Sets or clears `O_DIRECT` on `f`; whether it is now set.
#[cfg(target_os = "linux")]
fn set_direct(f: &File, on: bool) -> bool {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor this File owns; F_GETFL/F_SETFL touch only its flags.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return false;
        }
        let want = if on {
            fl | libc::O_DIRECT
        } else {
            fl & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, want) == 0 && on
    }
}

#[cfg(not(target_os = "linux"))]
fn set_direct(_: &File, _: bool) -> bool {
    false
}

/// Write `dest` with `body` through an [`Output`]: all of it, or (on any error) nothing.
pub fn write_atomic(
    dest: &Path,
    avoid: &[Avoid],
    body: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut o = Output::create(dest, avoid)?;
    body(o.writer())?;
    o.commit()
}

/// A file written under its final name, for a writer that must leave a readable file
/// when killed at any moment (the live collector's trace). The same checks as
/// [`Output::create`]; then the rule for an existing regular file is: it is *replaced*
/// (unlinked, then a new file created with `O_EXCL`), never truncated or written into,
/// so another name of it (a hard link) and a reader that has it open keep the old
/// contents. Returns the file and the path it was created at (symlinks followed).
pub fn create_streaming(dest: &Path, avoid: &[Avoid]) -> io::Result<(File, PathBuf)> {
    let real = check_destination(dest, avoid)?;
    for _ in 0..4 {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&real)
        {
            Ok(f) => return Ok((f, real)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Checked a regular file above (or created since): replace it.
                match fs::symlink_metadata(&real) {
                    Ok(m) if m.is_file() => {}
                    Ok(m) => {
                        return Err(refuse(
                            io::ErrorKind::InvalidInput,
                            dest,
                            format_args!(
                                "is {}, not a regular file; refusing to write the output over it",
                                kind_name(m.file_type())
                            ),
                        ))
                    }
                    Err(_) => continue,
                }
                match fs::remove_file(&real) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(refuse(
                            e.kind(),
                            dest,
                            format_args!("cannot replace the existing file: {e}"),
                        ))
                    }
                }
            }
            Err(e) => return Err(refuse(e.kind(), dest, format_args!("cannot create: {e}"))),
        }
    }
    Err(refuse(
        io::ErrorKind::AlreadyExists,
        dest,
        "keeps being re-created by someone else; refusing to write it",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "memmap-output-{}-{}-{tag}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn join(&self, n: &str) -> PathBuf {
            self.0.join(n)
        }
        /// Names in the directory other than `keep`.
        fn others(&self, keep: &[&str]) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !keep.contains(&n.as_str()))
                .collect();
            v.sort();
            v
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mkfifo(p: &Path) -> bool {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: plain libc call with a valid C string.
        unsafe { libc_mkfifo(c.as_ptr(), 0o600) == 0 }
    }
    extern "C" {
        #[link_name = "mkfifo"]
        fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }

    #[test]
    fn output_written_whole_and_replaces_existing() {
        let d = TempDir::new("whole");
        let p = d.join("out.json");
        fs::write(&p, "old").unwrap();
        let mut o = Output::create(&p, &[]).unwrap();
        let tmp = o.temp_path().to_path_buf();
        assert_eq!(
            tmp.parent(),
            Some(d.0.as_path()),
            "temp in the same directory"
        );
        let tn = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(tn.starts_with(".out.json.") && tn.ends_with(".tmp"), "{tn}");
        assert!(tn.contains(&format!(".{}.", std::process::id())), "{tn}");
        o.write_all(b"new").unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "old",
            "untouched before commit"
        );
        o.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(d.others(&["out.json"]), Vec::<String>::new(), "temp left");
        // A new file in a directory.
        write_atomic(&d.join("fresh"), &[], |w| w.write_all(b"x")).unwrap();
        assert_eq!(fs::read(d.join("fresh")).unwrap(), b"x");
    }

    #[test]
    fn output_failure_leaves_no_partial_output_and_no_temp() {
        let d = TempDir::new("fail");
        let p = d.join("out.trace.jsonl");
        let e = write_atomic(&p, &[], |w| {
            w.write_all(&[b'x'; 100_000])?;
            Err(io::Error::other("parse failed half way"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("half way"), "{e}");
        assert!(!p.exists(), "partial output left");
        assert_eq!(d.others(&[]), Vec::<String>::new());
        // An existing destination is untouched by a failed write.
        fs::write(&p, "keep me").unwrap();
        {
            let mut o = Output::create(&p, &[]).unwrap();
            o.write_all(b"half").unwrap();
            // dropped without commit (error path, panic unwinding)
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "keep me");
        assert_eq!(d.others(&["out.trace.jsonl"]), Vec::<String>::new());
    }

    #[test]
    fn output_two_writers_to_one_destination_do_not_share_a_temp() {
        let d = TempDir::new("two");
        let p = d.join("run.json");
        let mut a = Output::create(&p, &[]).unwrap();
        let mut b = Output::create(&p, &[]).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
        a.write_all(b"from a").unwrap();
        b.write_all(b"from b, longer").unwrap();
        assert_eq!(d.others(&[]).len(), 2, "two temp files");
        a.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "from a");
        b.commit().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "from b, longer");
        assert_eq!(d.others(&["run.json"]), Vec::<String>::new());
        // A stale temp of the old scheme (`run.json.tmp`) is neither used nor removed.
        fs::write(d.join("run.json.tmp"), "stale").unwrap();
        write_atomic(&p, &[], |w| w.write_all(b"c")).unwrap();
        assert_eq!(fs::read_to_string(d.join("run.json.tmp")).unwrap(), "stale");
    }

    #[test]
    fn output_refuses_non_regular_destinations() {
        let d = TempDir::new("nonreg");
        let cases: Vec<(PathBuf, &str)> = vec![
            (PathBuf::from("/dev/null"), "a character device"),
            (d.0.clone(), "a directory"),
        ];
        for (p, want) in &cases {
            let e = Output::create(p, &[]).err().expect("refused");
            let msg = e.to_string();
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(msg.contains(want), "{msg}");
            assert!(msg.contains("not a regular file"), "{msg}");
            let e = create_streaming(p, &[]).expect_err("refused");
            assert!(e.to_string().contains(want), "{e}");
        }
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let fifo = d.join("fifo");
        assert!(mkfifo(&fifo), "mkfifo");
        let e = Output::create(&fifo, &[]).err().expect("refused");
        assert!(e.to_string().contains("a fifo"), "{e}");
        assert!(
            fs::metadata(&fifo).unwrap().file_type().is_fifo(),
            "fifo kept"
        );
        // A symlink to a device is refused, naming the link.
        let link = d.join("null-link");
        symlink("/dev/null", &link).unwrap();
        let e = Output::create(&link, &[]).err().expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("null-link") && msg.contains("character device"),
            "{msg}"
        );
        assert!(msg.contains("symlink"), "{msg}");
        // An empty path and a path ending in ".." name no file.
        assert!(Output::create(Path::new(""), &[]).is_err());
        assert!(Output::create(&d.join(".."), &[]).is_err());
        assert_eq!(d.others(&["fifo", "null-link"]), Vec::<String>::new());
    }

    #[test]
    fn output_refuses_an_input_or_the_target() {
        let d = TempDir::new("same");
        let input = d.join("in.trace.jsonl");
        fs::write(&input, "input").unwrap();
        // The same path, another spelling, a hard link and a symlink are the same file.
        let hard = d.join("hard");
        fs::hard_link(&input, &hard).unwrap();
        let soft = d.join("soft");
        symlink(&input, &soft).unwrap();
        let dotted = d.0.join(".").join("in.trace.jsonl");
        for dest in [&input, &hard, &soft, &dotted] {
            let e = Output::create(dest, &[Avoid::input(&input)])
                .err()
                .expect("refused");
            let msg = e.to_string();
            assert!(msg.contains(&dest.display().to_string()), "{msg}");
            assert!(msg.contains("same file as the input"), "{msg}");
            let e = create_streaming(dest, &[Avoid::input(&input)]).expect_err("refused");
            assert!(e.to_string().contains("same file"), "{e}");
        }
        assert_eq!(fs::read_to_string(&input).unwrap(), "input");
        // A target that does not exist yet is matched by path.
        let target = d.join("memmap.bin");
        let e = Output::create(&target, &[Avoid::target(&target)])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("same file as the target"), "{e}");
        let tlink = d.join("tlink");
        symlink("memmap.bin", &tlink).unwrap();
        let e = Output::create(&tlink, &[Avoid::target(&target)])
            .err()
            .expect("refused");
        assert!(e.to_string().contains("same file as the target"), "{e}");
        // The target created after the check: refused at commit, temp removed.
        let mut o = Output::create(&d.join("run.json"), &[Avoid::target(&target)]).unwrap();
        o.write_all(b"{}").unwrap();
        o.commit().unwrap();
        let mut o = Output::create(&hard, &[Avoid::target(&target)]).unwrap();
        o.write_all(b"{}").unwrap();
        fs::hard_link(&hard, &target).unwrap();
        let e = o.commit().expect_err("refused at commit");
        assert!(e.to_string().contains("same file as the target"), "{e}");
        assert_eq!(fs::read_to_string(&input).unwrap(), "input");
        assert!(
            d.others(&[]).iter().all(|n| !n.ends_with(".tmp")),
            "{:?}",
            d.others(&[])
        );
        // Another file is fine.
        write_atomic(&d.join("out"), &inputs(&[&input]), |w| w.write_all(b"ok")).unwrap();
    }

    #[test]
    fn output_symlink_to_regular_file_is_followed() {
        let d = TempDir::new("link");
        let real = d.join("real.json");
        fs::write(&real, "old").unwrap();
        let link = d.join("latest.json");
        symlink("real.json", &link).unwrap();
        write_atomic(&link, &[], |w| w.write_all(b"new")).unwrap();
        assert!(
            fs::symlink_metadata(&link).unwrap().is_symlink(),
            "link kept"
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
    }

    #[test]
    fn streaming_replaces_existing_without_writing_into_it() {
        let d = TempDir::new("stream");
        let p = d.join("record.trace.jsonl");
        fs::write(&p, "old").unwrap();
        let other = d.join("other-name");
        fs::hard_link(&p, &other).unwrap();
        let (mut f, real) = create_streaming(&p, &[]).unwrap();
        assert_eq!(real, resolve(&p));
        f.write_all(b"live").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&p).unwrap(), "live");
        assert_eq!(
            fs::read_to_string(&other).unwrap(),
            "old",
            "the other name of the old file kept its contents"
        );
    }
}
