//! File names from the network (§10.2): checked before any path is built, resolved so that
//! they never leave the server's root.
//!
//! A name is relative, `/`-separated, with no empty, `.` or `..` component, no NUL or other
//! control character, no bidirectional formatting character, no backslash, no `:` in its
//! first component, no Windows device name (`con`, `NUL.txt`, `COM1`), and no component
//! starting with [`PARTIAL_PREFIX`]. Its directory is
//! canonicalized and must still lie under the canonical root (so a symlinked directory that
//! points outside is refused); the final component is opened with `O_NOFOLLOW`, so a
//! symlink there is refused too.
//!
//! ```
//! use lhp::names::check_name;
//!
//! assert!(check_name("photos/2024/a.jpg").is_ok());
//! for bad in ["", "/etc/passwd", "../../etc/passwd", "a//b", "a/./b", "a\0b", "dir/", ".lhp-partial-x"] {
//!     assert!(check_name(bad).is_err(), "{bad:?}");
//! }
//! ```

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::app::{ErrorCode, PARTIAL_PREFIX};

/// Longest name accepted, in octets.
pub const MAX_NAME_LEN: usize = 4096;

/// Why a name was refused, or could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// `bad_name`, `not_found` or `internal`.
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub message: String,
}

impl NameError {
    fn bad(message: impl Into<String>) -> Self {
        NameError {
            code: ErrorCode::BadName,
            message: message.into(),
        }
    }
}

/// Checks a name's syntax (§10.2); returns its components.
pub fn check_name(name: &str) -> Result<Vec<&str>, NameError> {
    if name.is_empty() {
        return Err(NameError::bad("the name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::bad(format!(
            "the name is longer than {MAX_NAME_LEN} octets"
        )));
    }
    if name.starts_with('/') {
        return Err(NameError::bad("absolute names are not allowed"));
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::bad(
            "the name contains a NUL or control character",
        ));
    }
    // §10.2 rule 3: bidirectional formatting characters (§11.10, display safety).
    if name.chars().any(is_bidi_control) {
        return Err(NameError::bad(
            "the name contains a bidirectional formatting character",
        ));
    }
    // §10.2 rule 5: one name means one thing on every platform.
    if name.contains('\\') {
        return Err(NameError::bad("the name contains a backslash"));
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.first().is_some_and(|first| first.contains(':')) {
        return Err(NameError::bad(
            "the name's first component contains ':' (a drive on Windows)",
        ));
    }
    for p in &parts {
        // §10.2 rule 6: reserved device names, any case, any extension.
        if is_device_name(p) {
            return Err(NameError::bad(format!(
                "{p:?} is a reserved device name on Windows"
            )));
        }
        match *p {
            "" => return Err(NameError::bad("the name has an empty component")),
            "." | ".." => return Err(NameError::bad(format!("the name has a {p:?} component"))),
            p if p.starts_with(PARTIAL_PREFIX) => {
                return Err(NameError::bad(
                    "names starting with .lhp-partial- are reserved",
                ))
            }
            p if p.len() > 255 => {
                return Err(NameError::bad("a component is longer than 255 octets"))
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// §10.2 rule 3: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// §10.2 rule 6: `CON`, `PRN`, `AUX`, `NUL`, `COM1`–`COM9`, `LPT1`–`LPT9`, compared
/// case-insensitively and ignoring any extension (`con.txt`, `Nul`).
fn is_device_name(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or(component);
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" => true,
        _ => {
            let b = upper.as_bytes();
            b.len() == 4
                && (upper.starts_with("COM") || upper.starts_with("LPT"))
                && matches!(b.get(3), Some(b'1'..=b'9'))
        }
    }
}

/// A name resolved under a root: its (canonical) directory and its last component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The canonical directory, under the canonical root.
    pub dir: PathBuf,
    /// The last component of the name.
    pub file_name: String,
}

impl Resolved {
    /// The full path of the file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.file_name)
    }

    /// The hidden path of this name's partial upload: `.lhp-partial-` and the first 32 hex
    /// digits of the sha256 of the last component, in the same directory.
    pub fn partial_path(&self) -> PathBuf {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(self.file_name.as_bytes()));
        self.dir.join(format!(
            "{PARTIAL_PREFIX}{}",
            digest.get(..32).unwrap_or(&digest)
        ))
    }
}

/// Checks `name` and resolves it under `root` (which must be canonical): the directory must
/// exist and stay under `root` after symlinks are followed.
pub fn resolve(root: &Path, name: &str) -> Result<Resolved, NameError> {
    let parts = check_name(name)?;
    let (last, dirs) = parts
        .split_last()
        .ok_or_else(|| NameError::bad("the name is empty"))?;
    let mut dir = root.to_path_buf();
    dir.extend(dirs);
    let dir = match fs::canonicalize(&dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(NameError {
                code: ErrorCode::NotFound,
                message: format!("the directory of {name:?} does not exist"),
            })
        }
        Err(e) => {
            return Err(NameError {
                code: ErrorCode::BadName,
                message: format!("the directory of {name:?} cannot be resolved: {e}"),
            })
        }
    };
    if !dir.starts_with(root) {
        return Err(NameError::bad(format!(
            "{name:?} leads outside the served directory"
        )));
    }
    if !dir.is_dir() {
        return Err(NameError {
            code: ErrorCode::NotFound,
            message: format!("the directory of {name:?} is not a directory"),
        });
    }
    Ok(Resolved {
        dir,
        file_name: (*last).to_owned(),
    })
}

/// Opens an existing regular file for reading without following a symlink in its last
/// component (`O_NOFOLLOW`); anything else that exists there is `bad_name`.
pub fn open_regular(path: &Path) -> Result<File, NameError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| open_error(path, e))?;
    if !meta.is_file() {
        // §10.8: a non-regular file (directory, FIFO, device) is `bad_name`, as for `put`.
        return Err(NameError::bad(format!(
            "{} is not a regular file",
            display_name(path)
        )));
    }
    Ok(file)
}

/// Maps an open error: `ELOOP` (a symlink under `O_NOFOLLOW`) is `bad_name`.
pub fn open_error(path: &Path, e: io::Error) -> NameError {
    let name = display_name(path);
    match e.raw_os_error() {
        Some(libc::ELOOP) => NameError::bad(format!("{name} is a symbolic link")),
        _ if e.kind() == io::ErrorKind::NotFound => NameError {
            code: ErrorCode::NotFound,
            message: format!("{name} does not exist"),
        },
        _ => NameError {
            code: ErrorCode::Internal,
            message: format!("{name}: {e}"),
        },
    }
}

/// Whether `path` exists as anything (a symlink included, without following it).
pub fn exists_no_follow(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "the file".to_owned(),
        |n| format!("{:?}", n.to_string_lossy()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_display_hazards_are_bad_names() {
        for bad in [
            "a\\b",
            "C:x",
            "c:/x",
            "con",
            "Nul.txt",
            "dir/COM1",
            "lpt9.log",
            "x\u{202e}gpj.exe",
            "a\u{2066}b",
        ] {
            assert_eq!(
                check_name(bad).unwrap_err().code,
                ErrorCode::BadName,
                "{bad:?}"
            );
        }
        for good in [
            "a:b/c".trim_start_matches("a:b/"),
            "dir/a:b",
            "com10",
            "console",
            "lpt",
            "nul_x",
            "é/日本.txt",
        ] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn resolution_stays_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("pw")).unwrap();
        assert_eq!(resolve(&root, "sub/a").unwrap().path(), root.join("sub/a"));
        assert_eq!(
            resolve(&root, "out/passwd").unwrap_err().code,
            ErrorCode::BadName
        );
        assert_eq!(
            resolve(&root, "nodir/a").unwrap_err().code,
            ErrorCode::NotFound
        );
        let pw = resolve(&root, "pw").unwrap();
        assert_eq!(
            open_regular(&pw.path()).unwrap_err().code,
            ErrorCode::BadName
        );
        assert_eq!(
            open_regular(&root.join("sub")).unwrap_err().code,
            ErrorCode::BadName
        );
        let p = resolve(&root, "sub/x").unwrap().partial_path();
        assert!(p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(PARTIAL_PREFIX));
    }
}
