//! The parts of an ONNX `ModelProto` that a package check needs — `metadata_props` and the
//! graph's inputs and outputs — read straight from the protobuf bytes, without ONNX Runtime.
//!
//! Why a reader of our own: a package is validated once, fully, at load ([`super::model`]),
//! before any session exists, and hostile files must fail fast with a typed error. So this
//! reader bounds everything it keeps: at most [`MAX_METADATA_KEYS`] metadata entries,
//! [`MAX_METADATA_VALUE`] bytes per value and [`MAX_METADATA_BYTES`] in all; duplicated keys
//! are refused (ONNX's checker refuses them too, and which one wins would be a guess).
//! Nesting is fixed by the schema (no recursion on attacker-chosen depth), and every length is
//! checked against the bytes left, so a truncated or bit-flipped file is an error, never a panic.
//!
//! Field numbers are those of `onnx.proto` (ONNX IR ≥ 3): `ModelProto.graph = 7`,
//! `metadata_props = 14`; `GraphProto.initializer = 5`, `input = 11`, `output = 12`,
//! `sparse_initializer = 15`; `ValueInfoProto.name = 1`, `type = 2`; `TypeProto.tensor_type =
//! 1`; `TypeProto.Tensor.elem_type = 1`, `shape = 2`; `TensorShapeProto.dim = 1`;
//! `Dimension.dim_value = 1`, `dim_param = 2`; `TensorProto.name = 8`, `data_location = 14`.

use super::package::{Elem, TensorSig};
use std::collections::{BTreeMap, BTreeSet};

/// Most `metadata_props` entries a package may have.
pub const MAX_METADATA_KEYS: usize = 1024;
/// Longest metadata value (and key), in bytes.
pub const MAX_METADATA_VALUE: usize = 64 * 1024;
/// Most metadata bytes (keys and values) in all.
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// Most graph inputs or outputs (a bridge network has three inputs and one output).
pub const MAX_GRAPH_IO: usize = 256;
/// Highest tensor rank read from a declaration.
pub const MAX_RANK: usize = 64;

/// What [`read`] finds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxHeader {
    /// `metadata_props` (unique keys).
    pub props: BTreeMap<String, String>,
    /// Graph inputs that are not initializers (what ONNX Runtime lists as the session's inputs).
    pub inputs: Vec<TensorSig>,
    /// Graph outputs.
    pub outputs: Vec<TensorSig>,
    /// Whether some initializer keeps its data in an external file.
    pub external_data: bool,
}

/// A protobuf field: its number and value.
enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.buf.len()).ok_or("a length runs past the end of the file")?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Val<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        if num == 0 {
            return Err("field number 0".into());
        }
        let v = match wire {
            0 => Val::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Val::Fixed
            }
            2 => {
                let n = self.varint()?;
                Val::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Val::Fixed
            }
            w => return Err(format!("unsupported protobuf wire type {w} (field {num})")),
        };
        Ok(Some((num, v)))
    }
}

/// Visit every field of a message.
fn fields<'a>(buf: &'a [u8], mut f: impl FnMut(u64, Val<'a>) -> Result<(), String>) -> Result<(), String> {
    let mut r = Reader { buf };
    while let Some((n, v)) = r.field()? {
        f(n, v)?;
    }
    Ok(())
}

fn text(what: &str, b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

fn bytes_of<'a>(what: &str, v: Val<'a>) -> Result<&'a [u8], String> {
    match v {
        Val::Bytes(b) => Ok(b),
        _ => Err(format!("{what}: wrong protobuf wire type")),
    }
}

fn elem_of(code: u64) -> Elem {
    match code {
        1 => Elem::F32,
        11 => Elem::F64,
        10 => Elem::F16,
        7 => Elem::I64,
        6 => Elem::I32,
        _ => Elem::Other,
    }
}

/// A `ValueInfoProto` as ONNX Runtime reports it: non-tensor types have no shape; a tensor
/// without a shape reads as rank 0; symbolic or missing dimensions read as −1.
fn value_info(b: &[u8]) -> Result<TensorSig, String> {
    let mut name = None;
    let mut tensor: Option<(Elem, Vec<i64>)> = None;
    let mut other_type = false;
    fields(b, |n, v| {
        match n {
            1 => name = Some(text("a graph input/output name", bytes_of("ValueInfoProto.name", v)?)?),
            2 => fields(bytes_of("ValueInfoProto.type", v)?, |n, v| {
                if n != 1 {
                    // sequence, map, optional, sparse tensor, …: not a plain tensor.
                    if !matches!(n, 6) {
                        other_type = true;
                    }
                    return Ok(());
                }
                let (mut elem, mut shape) = (Elem::Other, Vec::new());
                fields(bytes_of("TypeProto.tensor_type", v)?, |n, v| {
                    match (n, v) {
                        (1, Val::Varint(c)) => elem = elem_of(c),
                        (2, Val::Bytes(s)) => fields(s, |n, v| {
                            if n != 1 {
                                return Ok(());
                            }
                            if shape.len() >= MAX_RANK {
                                return Err(format!("a tensor declaration has more than {MAX_RANK} dimensions"));
                            }
                            let mut d = -1i64;
                            fields(bytes_of("TensorShapeProto.dim", v)?, |n, v| {
                                if let (1, Val::Varint(x)) = (n, v) {
                                    // int64 on the wire: negative values are 10-byte varints.
                                    d = x as i64;
                                }
                                Ok(())
                            })?;
                            shape.push(if d < 0 { -1 } else { d });
                            Ok(())
                        })?,
                        _ => {}
                    }
                    Ok(())
                })?;
                tensor = Some((elem, shape));
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    let name = name.ok_or("a graph input/output has no name")?;
    Ok(match tensor {
        Some((elem, shape)) if !other_type => TensorSig { name, elem, shape: Some(shape) },
        _ => TensorSig { name, elem: Elem::Other, shape: None },
    })
}

/// An initializer's name and whether its data is external.
fn initializer(b: &[u8]) -> Result<(Option<String>, bool), String> {
    let (mut name, mut external) = (None, false);
    fields(b, |n, v| {
        match (n, v) {
            (8, Val::Bytes(s)) => name = Some(text("an initializer name", s)?),
            (14, Val::Varint(1)) => external = true,
            _ => {}
        }
        Ok(())
    })?;
    Ok((name, external))
}

/// Read the metadata and graph signature of a serialized ONNX model. Errors are plain reasons
/// (the caller adds the path).
pub fn read(bytes: &[u8]) -> Result<OnnxHeader, String> {
    let mut h = OnnxHeader::default();
    let (mut total, mut graphs) = (0usize, 0usize);
    let mut ins = Vec::new();
    let mut inits = BTreeSet::new();
    let corrupt = |e: String| format!("not a valid ONNX model ({e})");
    fields(bytes, |n, v| {
        match n {
            14 => {
                let (mut key, mut value) = (None, None);
                fields(bytes_of("metadata_props", v)?, |n, v| {
                    match n {
                        1 => key = Some(bytes_of("metadata key", v)?),
                        2 => value = Some(bytes_of("metadata value", v)?),
                        _ => {}
                    }
                    Ok(())
                })?;
                let (k, v) = (key.unwrap_or_default(), value.unwrap_or_default());
                if h.props.len() >= MAX_METADATA_KEYS {
                    return Err(format!("more than {MAX_METADATA_KEYS} metadata entries"));
                }
                if k.len() > MAX_METADATA_VALUE || v.len() > MAX_METADATA_VALUE {
                    return Err(format!("a metadata key or value is longer than {MAX_METADATA_VALUE} bytes"));
                }
                total += k.len() + v.len();
                if total > MAX_METADATA_BYTES {
                    return Err(format!("metadata larger than {MAX_METADATA_BYTES} bytes in all"));
                }
                let k = text("a metadata key", k)?;
                if h.props.insert(k.clone(), text("a metadata value", v)?).is_some() {
                    return Err(format!("metadata key `{k}` appears more than once"));
                }
            }
            7 => {
                graphs += 1;
                fields(bytes_of("ModelProto.graph", v)?, |n, v| {
                    match n {
                        5 => {
                            let (name, ext) = initializer(bytes_of("GraphProto.initializer", v)?)?;
                            h.external_data |= ext;
                            inits.extend(name);
                        }
                        15 => {
                            // SparseTensorProto.values (1) carries the name.
                            fields(bytes_of("GraphProto.sparse_initializer", v)?, |n, v| {
                                if n == 1 {
                                    inits.extend(initializer(bytes_of("SparseTensorProto.values", v)?)?.0);
                                }
                                Ok(())
                            })?;
                        }
                        11 | 12 => {
                            let list = if n == 11 { &mut ins } else { &mut h.outputs };
                            if list.len() >= MAX_GRAPH_IO {
                                return Err(format!("more than {MAX_GRAPH_IO} graph inputs or outputs"));
                            }
                            list.push(value_info(bytes_of("GraphProto.input/output", v)?)?);
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(corrupt)?;
    if graphs == 0 {
        return Err("not a valid ONNX model (no graph)".into());
    }
    h.inputs = ins.into_iter().filter(|s| !inits.contains(&s.name)).collect();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn len_field(n: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }
    fn entry(k: &str, v: &str) -> Vec<u8> {
        let mut e = Vec::new();
        len_field(1, k.as_bytes(), &mut e);
        len_field(2, v.as_bytes(), &mut e);
        e
    }
    fn model(props: &[(String, String)]) -> Vec<u8> {
        let mut m = Vec::new();
        len_field(7, &[], &mut m);
        for (k, v) in props {
            len_field(14, &entry(k, v), &mut m);
        }
        m
    }

    #[test]
    fn metadata_limits() {
        let ok: Vec<(String, String)> = (0..MAX_METADATA_KEYS).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(read(&model(&ok)).unwrap().props.len(), MAX_METADATA_KEYS);
        let many: Vec<(String, String)> = (0..=MAX_METADATA_KEYS).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(read(&model(&many)).unwrap_err().contains("metadata entries"));
        let long = vec![("k".to_string(), "x".repeat(MAX_METADATA_VALUE + 1))];
        assert!(read(&model(&long)).unwrap_err().contains("longer than"));
        let big: Vec<(String, String)> = (0..20).map(|i| (format!("k{i}"), "x".repeat(MAX_METADATA_VALUE))).collect();
        assert!(read(&model(&big)).unwrap_err().contains("in all"));
        let dup = vec![("a".to_string(), "1".to_string()), ("a".to_string(), "2".to_string())];
        assert!(read(&model(&dup)).unwrap_err().contains("more than once"));
    }

    /// Every truncation of a file is an error or a shorter valid file, never a panic.
    #[test]
    fn truncations_are_errors() {
        let m = model(&[("bridge.family".into(), "i2sb".into())]);
        for n in 0..m.len() {
            let _ = read(&m[..n]);
        }
        assert!(read(&[]).is_err());
        assert!(read(&[0x08]).is_err());
        assert!(read(&[0xff; 11]).is_err());
    }
}
