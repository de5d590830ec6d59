//! The datagram vectors of the UDP binding (`spec/lhp-udp.md` §10, `spec/vectors/datagram.json`).
//!
//! Each datagram vector becomes a stream [`Vector`] whose `input` is the one datagram and whose
//! expectation has at most one frame, so [`check`](crate::check) judges it; the extra member is
//! the receiver's `max_datagram_len`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{parse_vector, LoadError, Vector};

/// One datagram vector.
#[derive(Clone, Debug)]
pub struct DatagramVector {
    /// The vector; `input` is the whole datagram (possibly longer than `max_datagram_len`).
    pub vector: Vector,
    /// The receiver's `max_datagram_len`.
    pub max_datagram_len: usize,
    /// For derived vectors, the stream vector it came from.
    pub from: Option<String>,
}

/// `spec/vectors/datagram.json` in this repository.
pub fn default_path() -> PathBuf {
    crate::default_dir().join("datagram.json")
}

/// Loads the default datagram vectors.
pub fn load_default() -> Result<Vec<DatagramVector>, LoadError> {
    load(&default_path())
}

/// Loads datagram vectors from `path`.
pub fn load(path: &Path) -> Result<Vec<DatagramVector>, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LoadError(format!("cannot read {}: {e}", path.display())))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    let default_max = doc
        .get("max_datagram_len")
        .and_then(Value::as_u64)
        .ok_or_else(|| LoadError(format!("{}: no max_datagram_len", path.display())))?;
    let list = doc
        .get("datagrams")
        .and_then(Value::as_array)
        .ok_or_else(|| LoadError(format!("{}: no datagrams array", path.display())))?;
    list.iter()
        .map(|d| parse(d, default_max).map_err(|e| LoadError(format!("{}: {e}", path.display()))))
        .collect()
}

fn parse(d: &Value, default_max: u64) -> Result<DatagramVector, String> {
    let mut v = d.clone();
    let obj = v.as_object_mut().ok_or("a datagram vector is an object")?;
    let max = obj
        .get("max_datagram_len")
        .and_then(Value::as_u64)
        .unwrap_or(default_max);
    // As a stream vector: `frame` becomes `frames: [frame]`.
    let expect = obj
        .get_mut("expect")
        .and_then(Value::as_object_mut)
        .ok_or("missing expect")?;
    let frames = match expect.remove("frame") {
        Some(f) => vec![f],
        None => Vec::new(),
    };
    expect.insert("frames".into(), Value::Array(frames));
    let from = obj.get("from").and_then(Value::as_str).map(str::to_owned);
    Ok(DatagramVector {
        vector: parse_vector(&v)?,
        max_datagram_len: usize::try_from(max).map_err(|e| e.to_string())?,
        from,
    })
}
