//! A small general ONNX graph builder over the generated protobuf types ([`crate::proto`]).
//!
//! Models are written as IR version 8 with the default-domain opset 17 (what ONNX Runtime ≥ 1.14,
//! TensorRT 8.6+/10 and the Jetson builds all read). The builder is deliberately thin: graph inputs
//! and outputs (with fixed or symbolic dimensions such as `N`, `H`, `W`), nodes with attributes,
//! initializers, `Constant` nodes and `metadata_props`. It is what the U-Net emitter
//! ([`crate::onnx_ops`]) writes through, and it is convenient for tiny test models:
//!
//! ```
//! use bridge_export::onnx::{Dim, Graph, FLOAT};
//! let mut g = Graph::default();
//! let img = [Dim::S("N"), Dim::N(3), Dim::S("H"), Dim::S("W")];
//! g.input("x", FLOAT, &img).input("cond", FLOAT, &img).output("y", FLOAT, &img);
//! g.floats("a", &[], &[0.5]).floats("b", &[], &[0.25]);
//! g.node("Mul", &["x", "a"], &["p"], &[]).node("Mul", &["cond", "b"], &["q"], &[]).node("Add", &["p", "q"], &["y"], &[]);
//! g.meta("bridge.family", "test");
//! g.check().unwrap();
//! let bytes = g.encode();
//! assert!(!bytes.is_empty());
//! ```

use crate::error::{Error, Result};
use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_shape_proto, type_proto,
};
use prost::Message;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// ONNX IR version written into every model.
pub const IR_VERSION: i64 = 8;
/// Default-domain opset version written into every model.
pub const OPSET: i64 = 17;

/// Element type `float32` (`TensorProto.DataType.FLOAT`).
pub const FLOAT: i64 = 1;
/// Element type `int32`.
pub const INT32: i64 = 6;
/// Element type `int64`.
pub const INT64: i64 = 7;
/// Element type `bool`.
pub const BOOL: i64 = 9;
/// Element type `float64`.
pub const DOUBLE: i64 = 11;

/// A tensor dimension in an input/output declaration: a fixed size or a symbolic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    N(i64),
    /// A symbolic (dynamic) size, e.g. `"N"`, `"H"`, `"W"`. Equal names mean equal sizes.
    S(&'static str),
}

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING` (UTF-8).
    Str(String),
    /// `TENSOR` (e.g. the `value` of a `Constant` node).
    Tensor(Box<TensorProto>),
    /// `GRAPH` (a subgraph, e.g. the `body` of a `Loop` node).
    Graph(Box<Graph>),
}

/// A `float32` tensor proto (data as little-endian `raw_data`).
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(FLOAT as i32),
        name: Some(name.to_string()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An `int64` tensor proto (data as little-endian `raw_data`).
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(INT64 as i32),
        name: Some(name.to_string()),
        raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: i64, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::N(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                Dim::S(s) => tensor_shape_proto::dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attribute(name: &str, a: &Attr) -> AttributeProto {
    let mut p = AttributeProto { name: Some(name.to_string()), ..Default::default() };
    let ty = match a {
        Attr::Int(v) => {
            p.i = Some(*v);
            AttributeType::Int
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            AttributeType::Ints
        }
        Attr::Float(v) => {
            p.f = Some(*v);
            AttributeType::Float
        }
        Attr::Floats(v) => {
            p.floats = v.clone();
            AttributeType::Floats
        }
        Attr::Str(s) => {
            p.s = Some(s.as_bytes().to_vec());
            AttributeType::String
        }
        Attr::Tensor(t) => {
            p.t = Some(t.as_ref().clone());
            AttributeType::Tensor
        }
        Attr::Graph(g) => {
            p.g = Some(g.to_graph_proto());
            AttributeType::Graph
        }
    };
    p.r#type = Some(ty as i32);
    p
}

/// An ONNX graph (and the model around it) under construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    name: String,
    doc: Option<String>,
    producer: (String, String),
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    meta: Vec<(String, String)>,
    fresh: usize,
}

impl Default for Graph {
    fn default() -> Self {
        Graph::new("graph")
    }
}

impl Graph {
    /// An empty graph called `name`; producer `libbridge` with this crate's version.
    pub fn new(name: &str) -> Self {
        Graph {
            name: name.to_string(),
            doc: None,
            producer: ("libbridge".into(), env!("CARGO_PKG_VERSION").into()),
            nodes: Vec::new(),
            inits: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            meta: Vec::new(),
            fresh: 0,
        }
    }

    /// Declare a graph input.
    pub fn input(&mut self, name: &str, elem: i64, dims: &[Dim]) -> &mut Self {
        self.inputs.push(value_info(name, elem, dims));
        self
    }

    /// Declare a graph output (a value some node, input or initializer produces).
    pub fn output(&mut self, name: &str, elem: i64, dims: &[Dim]) -> &mut Self {
        self.outputs.push(value_info(name, elem, dims));
        self
    }

    /// Append a node `op(ins) -> outs` (default domain). An empty input name is an omitted
    /// optional input (e.g. `Resize`'s `roi`).
    pub fn node(&mut self, op: &str, ins: &[&str], outs: &[&str], attrs: &[(&str, Attr)]) -> &mut Self {
        let name = format!("{op}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
        self
    }

    /// Append a single-output node and return its (fresh) output name.
    pub fn op(&mut self, op: &str, ins: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.node(op, ins, &[&out], attrs);
        out
    }

    /// A value name not used before in this graph by [`Graph::fresh`] (`{hint}_{k}`).
    /// Keep hand-chosen names distinct from the `_k` pattern.
    pub fn fresh(&mut self, hint: &str) -> String {
        self.fresh += 1;
        format!("{hint}_{}", self.fresh)
    }

    /// Add a `float32` initializer (a constant or weight, stored in the graph).
    pub fn floats(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        self.inits.push(tensor_f32(name, dims, data));
        self
    }

    /// Add an `int64` initializer.
    pub fn ints(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        self.inits.push(tensor_i64(name, dims, data));
        self
    }

    /// Add a `Constant` node producing a `float32` tensor `name` (an alternative to an initializer
    /// for tools that treat initializers as overridable inputs).
    pub fn constant_floats(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        let t = tensor_f32(name, dims, data);
        self.node("Constant", &[], &[name], &[("value", Attr::Tensor(Box::new(t)))])
    }

    /// Add a `Constant` node producing an `int64` tensor `name`.
    pub fn constant_ints(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        let t = tensor_i64(name, dims, data);
        self.node("Constant", &[], &[name], &[("value", Attr::Tensor(Box::new(t)))])
    }

    /// Set a `metadata_props` entry (replacing an existing one with the same key).
    pub fn meta(&mut self, key: &str, value: &str) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.into(), value.into()));
        self
    }

    /// Set several `metadata_props` entries (e.g. a package's `PackageMeta::to_props()`).
    pub fn metas<K: AsRef<str>, V: AsRef<str>>(&mut self, entries: impl IntoIterator<Item = (K, V)>) -> &mut Self {
        for (k, v) in entries {
            self.meta(k.as_ref(), v.as_ref());
        }
        self
    }

    /// Remove a `metadata_props` entry, if present.
    pub fn unset_meta(&mut self, key: &str) -> &mut Self {
        self.meta.retain(|(k, _)| k != key);
        self
    }

    /// The `metadata_props` entries, in insertion order.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.meta
    }

    /// Set the model's `doc_string`.
    pub fn doc(&mut self, doc: &str) -> &mut Self {
        self.doc = Some(doc.to_string());
        self
    }

    /// Set the model's producer name and version (default `libbridge` and this crate's version).
    pub fn producer(&mut self, name: &str, version: &str) -> &mut Self {
        self.producer = (name.into(), version.into());
        self
    }

    /// Number of nodes so far.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Total number of elements over all initializers.
    pub fn initializer_elements(&self) -> usize {
        self.inits.iter().map(|t| t.dims.iter().product::<i64>().max(0) as usize).sum()
    }

    /// Whether `name` is already an initializer.
    pub fn has_initializer(&self, name: &str) -> bool {
        self.inits.iter().any(|t| t.name.as_deref() == Some(name))
    }

    /// Check that the graph is well formed: every node input is a graph input, an initializer or an
    /// earlier node's output (nodes are in topological order); no value is defined twice; every graph
    /// output is defined. Deliberately broken test models simply skip this.
    pub fn check(&self) -> Result<()> {
        let mut defined: HashSet<&str> = HashSet::new();
        let declared = self.inputs.iter().filter_map(|v| v.name.as_deref());
        for v in declared.chain(self.inits.iter().filter_map(|t| t.name.as_deref())) {
            if !defined.insert(v) {
                return Err(Error::Graph(format!("input or initializer `{v}` is defined twice")));
            }
        }
        for n in &self.nodes {
            let op = n.op_type.as_deref().unwrap_or("?");
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                if !defined.contains(i.as_str()) {
                    return Err(Error::Graph(format!("{op} node reads `{i}`, which nothing defines before it")));
                }
            }
            for o in &n.output {
                if !defined.insert(o.as_str()) {
                    return Err(Error::Graph(format!("{op} node output `{o}` is defined twice")));
                }
            }
        }
        for o in self.outputs.iter().filter_map(|v| v.name.as_deref()) {
            if !defined.contains(o) {
                return Err(Error::Graph(format!("graph output `{o}` is never produced")));
            }
        }
        Ok(())
    }

    /// The graph proto alone (a model's graph, or a subgraph attribute).
    pub fn to_graph_proto(&self) -> GraphProto {
        GraphProto {
            node: self.nodes.clone(),
            name: Some(self.name.clone()),
            initializer: self.inits.clone(),
            input: self.inputs.clone(),
            output: self.outputs.clone(),
            ..Default::default()
        }
    }

    /// The model proto (IR version [`IR_VERSION`], opset [`OPSET`]).
    pub fn to_model(&self) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
            producer_name: Some(self.producer.0.clone()),
            producer_version: Some(self.producer.1.clone()),
            doc_string: self.doc.clone(),
            graph: Some(self.to_graph_proto()),
            metadata_props: self
                .meta
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: Some(k.clone()), value: Some(v.clone()) })
                .collect(),
            ..Default::default()
        }
    }

    /// The serialized model.
    pub fn encode(&self) -> Vec<u8> {
        self.to_model().encode_to_vec()
    }

    /// Write the serialized model to `path` and return the path.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        std::fs::write(path, self.encode()).map_err(|e| Error::io(path, e))?;
        Ok(path.to_path_buf())
    }
}

/// Read a model file back (e.g. to inspect its metadata or initializers).
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| Error::Format { path: path.into(), msg: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Graph {
        let mut g = Graph::default();
        g.input("x", FLOAT, &[Dim::S("N"), Dim::N(3)]).output("y", FLOAT, &[Dim::S("N"), Dim::N(3)]);
        g.floats("a", &[], &[2.0]).node("Mul", &["x", "a"], &["y"], &[("unused", Attr::Ints(vec![1, 2]))]);
        g
    }

    /// The encoded bytes decode to the same structure, with IR 8 / opset 17 and the metadata.
    #[test]
    fn round_trip() {
        let mut g = tiny();
        g.meta("k", "v1").meta("k", "v2").meta("other", "o").doc("doc").producer("p", "9");
        let m = ModelProto::decode(g.encode().as_slice()).unwrap();
        assert_eq!(m.ir_version, Some(8));
        assert_eq!(m.opset_import[0].version, Some(17));
        assert_eq!(m.doc_string.as_deref(), Some("doc"));
        assert_eq!((m.producer_name.as_deref(), m.producer_version.as_deref()), (Some("p"), Some("9")));
        let meta: Vec<_> = m.metadata_props.iter().map(|e| (e.key.clone().unwrap(), e.value.clone().unwrap())).collect();
        assert_eq!(meta, vec![("k".into(), "v2".into()), ("other".into(), "o".into())]);
        let gr = m.graph.unwrap();
        assert_eq!(gr.node[0].op_type.as_deref(), Some("Mul"));
        assert_eq!(gr.node[0].attribute[0].ints, vec![1, 2]);
        assert_eq!(gr.node[0].attribute[0].r#type, Some(AttributeType::Ints as i32));
        assert_eq!(gr.initializer[0].raw_data.as_deref(), Some(&2.0f32.to_le_bytes()[..]));
        let dims = match &gr.input[0].r#type.as_ref().unwrap().value {
            Some(type_proto::Value::TensorType(t)) => t.shape.clone().unwrap().dim,
            _ => panic!("not a tensor type"),
        };
        assert_eq!(dims[0].value, Some(tensor_shape_proto::dimension::Value::DimParam("N".into())));
        assert_eq!(dims[1].value, Some(tensor_shape_proto::dimension::Value::DimValue(3)));
    }

    /// `check` accepts a well-formed graph and names the problem in broken ones.
    #[test]
    fn check_finds_dangling_and_duplicate_names() {
        tiny().check().unwrap();
        let mut g = tiny();
        g.node("Relu", &["nope"], &["z"], &[]);
        assert!(g.check().unwrap_err().to_string().contains("`nope`"));
        let mut g = tiny();
        g.node("Relu", &["x"], &["y"], &[]);
        assert!(g.check().unwrap_err().to_string().contains("`y` is defined twice"));
        let mut g = tiny();
        g.output("missing", FLOAT, &[]);
        assert!(g.check().unwrap_err().to_string().contains("`missing`"));
        let mut g = tiny();
        g.floats("x", &[], &[1.0]);
        assert!(g.check().is_err());
    }

    #[test]
    fn fresh_names_are_unique() {
        let mut g = Graph::default();
        let a = g.op("Relu", &["x"], &[]);
        let b = g.op("Relu", &[&a], &[]);
        assert_ne!(a, b);
        assert_eq!(g.node_count(), 2);
    }
}
