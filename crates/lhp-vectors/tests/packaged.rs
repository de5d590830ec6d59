//! The vectors this crate carries ([`lhp_vectors::default_dir`], `vectors/`) are exactly the
//! repository's `spec/vectors`, and `cargo package` puts every one of them in the crate.
//!
//! In a published copy of the crate (no `spec/` beside it) there is nothing to compare with:
//! those checks print SKIP and return.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `spec/vectors` of the repository this crate sits in, if it does.
fn spec_vectors() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIP: no spec/vectors beside this crate (a published copy?)");
        None
    }
}

/// Every file under `dir`, by path relative to it, with its contents.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn carried_vectors_equal_spec_vectors() {
    let Some(spec) = spec_vectors() else { return };
    let spec_files = files(&spec);
    let carried = files(&lhp_vectors::default_dir());
    assert!(spec_files.len() >= 10, "{spec_files:?}");
    assert_eq!(
        carried.keys().collect::<Vec<_>>(),
        spec_files.keys().collect::<Vec<_>>(),
        "crates/lhp-vectors/vectors must hold the same files as spec/vectors"
    );
    for (name, content) in &spec_files {
        assert!(
            carried[name] == *content,
            "vectors/{name} differs from spec/vectors/{name}"
        );
    }
    // What the loader sees is the same too.
    assert_eq!(
        lhp_vectors::load_default().unwrap().len(),
        lhp_vectors::load_dir(&spec).unwrap().len()
    );
}

#[test]
fn cargo_package_includes_every_vector() {
    let Some(spec) = spec_vectors() else { return };
    let out = Command::new(env!("CARGO"))
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
            "-p",
            "lhp-vectors",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo package --list failed: {out:?}");
    let listed = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    for name in files(&spec).keys() {
        let want = format!("vectors/{name}");
        assert!(
            listed.contains(&want.as_str()),
            "{want} is not packaged: {listed:?}"
        );
    }
}
