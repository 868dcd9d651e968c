//! The step graph: one row of a [`Plan`] as a tiny ONNX model the SDK writes itself, so that
//! the sampler's update runs next to the network (on its device) with bound inputs and outputs.
//!
//! ```text
//! inputs   x, x_end, raw, z : f32 [B, C, H, W]     coef : f32 [K]     flag : f32 [1]
//! x0̂     = min(max((l_x·x + l_T·x_end) + l_o·raw, lo), hi)
//! x_next  = (((c_x·x + a_1·src_1) + a_2·src_2) …) + c_z·z        src_k ∈ {x0̂, x_end, raw}
//! x_in    = c_in·x_next                                           (the next call's input)
//! flag'   = flag if flag ≥ 0, else (call if Σ(raw − raw) is NaN, else −1)
//! ```
//!
//! `coef = [l_x, l_T, l_o, lo, hi, c_x, a_1 … a_n, c_z, c_in, call]` ([`coefficients`]), f64
//! rounded once to f32 as the host kernel rounds them; the source order is the plan's. Each
//! `Mul`/`Add` is a separate node, so the operations and their order are the host kernel's
//! ([`crate::step::update`]: no fused multiply-add): the same inputs give the same bits, except
//! that a zero coefficient adds `±0` where the host skips the term (a difference in the sign of
//! an exact zero at most). `flag` records the first network call whose output had a NaN or Inf
//! (`raw − raw` is NaN exactly there) without a per-step read-back.
//!
//! The model is IR 8, default-domain opset 13–17 operators only (`Split`, `Mul`, `Add`, `Sub`,
//! `Max`, `Min`, `ReduceSum`, `IsNaN`, `GreaterOrEqual`, `Where`), encoded by the minimal
//! protobuf writer below (the SDK cannot use the export crate's, which depends on the SDK).

use crate::sampler::plan::{Plan, PlanStep, Source};

/// Opset of the step graph.
pub const OPSET: i64 = 17;
/// IR version of the step graph.
pub const IR_VERSION: i64 = 8;

/// Graph tensor names.
pub mod names {
    /// Current state.
    pub const X: &str = "x";
    /// Bridge endpoint.
    pub const X_END: &str = "x_end";
    /// The network's raw output.
    pub const RAW: &str = "raw";
    /// Noise.
    pub const Z: &str = "z";
    /// Coefficient vector.
    pub const COEF: &str = "coef";
    /// First bad call so far (−1: none).
    pub const FLAG: &str = "flag";
    /// Next state.
    pub const X_NEXT: &str = "x_next";
    /// Next network input.
    pub const X_IN: &str = "x_in";
    /// Updated flag.
    pub const FLAG_NEXT: &str = "flag_next";
}

/// Length of the coefficient vector for `n` sources.
pub fn coef_len(n: usize) -> usize {
    n + 9
}

/// The coefficient vector of `step` (layout in the module docs); `c_in` is the input scaling of
/// the next network call, `call` the 1-based number of this step's call (its error report).
pub fn coefficients(plan: &Plan, step: &PlanStep, c_in: f64, call: usize) -> Vec<f32> {
    let lin = step.x0.unwrap_or(crate::family::Lin { x: 0.0, xt: 1.0, out: 0.0 });
    let (lo, hi) = step.clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
    let mut v = Vec::with_capacity(coef_len(plan.order.len()));
    v.extend([lin.x as f32, lin.xt as f32, lin.out as f32, lo, hi, step.c_x as f32]);
    v.extend(step.coefs.iter().map(|&c| c as f32));
    v.push(step.noise.map_or(0.0, |(c, _)| c) as f32);
    v.push(c_in as f32);
    v.push(call as f32);
    v
}

/// The step graph for a plan's source order (module docs), as ONNX model bytes.
pub fn build(order: &[Source]) -> Vec<u8> {
    use names::*;
    let n = order.len();
    let k = coef_len(n);
    let mut g = Graph::default();
    let img = [Dim::P("B"), Dim::P("C"), Dim::P("H"), Dim::P("W")];
    for name in [X, X_END, RAW, Z] {
        g.inputs.push((name.into(), FLOAT, img.to_vec()));
    }
    g.inputs.push((COEF.into(), FLOAT, vec![Dim::V(k as i64)]));
    g.inputs.push((FLAG.into(), FLOAT, vec![Dim::V(1)]));
    for name in [X_NEXT, X_IN] {
        g.outputs.push((name.into(), img.to_vec()));
    }
    g.outputs.push((FLAG_NEXT.into(), vec![Dim::V(1)]));
    g.init_f32("zero", &[0.0]);

    let c: Vec<String> = (0..k).map(|i| format!("k{i}")).collect();
    let cs: Vec<&str> = c.iter().map(String::as_str).collect();
    g.node("Split", &[COEF], &cs, &[("axis", 0)]);
    // x0̂ = clamp((l_x·x + l_T·x_end) + l_o·raw), the host's `combine` order.
    g.node("Mul", &[X, cs[0]], &["mx"], &[]);
    g.node("Mul", &[X_END, cs[1]], &["mt"], &[]);
    g.node("Mul", &[RAW, cs[2]], &["mo"], &[]);
    g.node("Add", &["mx", "mt"], &["s1"], &[]);
    g.node("Add", &["s1", "mo"], &["s2"], &[]);
    g.node("Max", &["s2", cs[3]], &["s3"], &[]);
    g.node("Min", &["s3", cs[4]], &["x0"], &[]);
    // The row, term by term.
    g.node("Mul", &[X, cs[5]], &["acc0"], &[]);
    let mut acc = "acc0".to_string();
    for (i, src) in order.iter().enumerate() {
        let s = match src {
            Source::X0 => "x0",
            Source::XEnd => X_END,
            Source::Raw => RAW,
        };
        let (p, a) = (format!("p{i}"), format!("acc{}", i + 1));
        g.node("Mul", &[s, cs[6 + i]], &[p.as_str()], &[]);
        g.node("Add", &[acc.as_str(), p.as_str()], &[a.as_str()], &[]);
        acc = a;
    }
    g.node("Mul", &[Z, cs[6 + n]], &["pz"], &[]);
    g.node("Add", &[acc.as_str(), "pz"], &[X_NEXT], &[]);
    g.node("Mul", &[X_NEXT, cs[7 + n]], &[X_IN], &[]);
    // The NaN/Inf flag.
    g.node("Sub", &[RAW, RAW], &["d"], &[]);
    g.node("ReduceSum", &["d"], &["ds"], &[("keepdims", 0)]);
    g.node("IsNaN", &["ds"], &["bad"], &[]);
    g.node("GreaterOrEqual", &[FLAG, "zero"], &["found"], &[]);
    g.node("Where", &["bad", cs[8 + n], FLAG], &["cand"], &[]);
    g.node("Where", &["found", FLAG, "cand"], &[FLAG_NEXT], &[]);
    g.encode()
}

/// A dimension: a value or a symbolic name.
#[derive(Clone, Debug)]
pub(super) enum Dim {
    V(i64),
    P(&'static str),
}

/// A node: operator, inputs, outputs, integer attributes.
type Node = (String, Vec<String>, Vec<String>, Vec<(String, i64)>);

/// The few parts of an ONNX graph the step graph (and [`super::tile_graph`]) needs.
#[derive(Default)]
pub(super) struct Graph {
    /// (name, element type, dims)
    pub(super) inputs: Vec<(String, i64, Vec<Dim>)>,
    pub(super) outputs: Vec<(String, Vec<Dim>)>,
    /// (name, dims, f32 data)
    inits: Vec<(String, Vec<i64>, Vec<f32>)>,
    /// (name, dims, i64 data): shapes and slice bounds of [`super::pixel_graph`].
    inits_i64: Vec<(String, Vec<i64>, Vec<i64>)>,
    /// Outputs of another element type than `FLOAT`: (name, element type, dims).
    pub(super) typed_outputs: Vec<(String, i64, Vec<Dim>)>,
    /// (op, inputs, outputs, int attributes)
    nodes: Vec<Node>,
}

/// ONNX `TensorProto.DataType.FLOAT`.
pub(super) const FLOAT: i64 = 1;
/// ONNX `TensorProto.DataType.INT64`.
pub(super) const INT64: i64 = 7;
/// ONNX `TensorProto.DataType.UINT8`.
pub(super) const UINT8: i64 = 2;
/// ONNX `AttributeProto.AttributeType.INT`.
const ATTR_INT: i64 = 2;

impl Graph {
    pub(super) fn init_f32(&mut self, name: &str, data: &[f32]) {
        self.inits.push((name.into(), vec![data.len() as i64], data.to_vec()));
    }

    pub(super) fn init_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) {
        self.inits_i64.push((name.into(), dims.to_vec(), data.to_vec()));
    }

    pub(super) fn node(&mut self, op: &str, ins: &[&str], outs: &[&str], attrs: &[(&str, i64)]) {
        self.nodes.push((
            op.into(),
            ins.iter().map(|s| s.to_string()).collect(),
            outs.iter().map(|s| s.to_string()).collect(),
            attrs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ));
    }

    /// `ModelProto` bytes.
    pub(super) fn encode(&self) -> Vec<u8> {
        let value_info = |name: &str, elem: i64, dims: &[Dim]| {
            let mut shape = Pb::default();
            for d in dims {
                shape.msg(1, |m| match d {
                    Dim::V(v) => m.int(1, *v),
                    Dim::P(p) => m.str(2, p),
                });
            }
            let mut vi = Pb::default();
            vi.str(1, name);
            vi.msg(2, |ty| {
                ty.msg(1, |t| {
                    t.int(1, elem);
                    t.bytes(2, &shape.0);
                })
            });
            vi.0
        };
        let mut graph = Pb::default();
        for (i, (op, ins, outs, attrs)) in self.nodes.iter().enumerate() {
            graph.msg(1, |n| {
                for s in ins {
                    n.str(1, s);
                }
                for s in outs {
                    n.str(2, s);
                }
                n.str(3, &format!("n{i}_{op}"));
                n.str(4, op);
                for (k, v) in attrs {
                    n.msg(5, |a| {
                        a.str(1, k);
                        a.int(3, *v);
                        a.int(20, ATTR_INT);
                    });
                }
            });
        }
        graph.str(2, "libbridge_step");
        for (name, dims, data) in &self.inits {
            graph.msg(5, |t| {
                for d in dims {
                    t.int(1, *d);
                }
                t.int(2, FLOAT);
                t.str(8, name);
                let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                t.bytes(9, &raw);
            });
        }
        for (name, dims, data) in &self.inits_i64 {
            graph.msg(5, |t| {
                for d in dims {
                    t.int(1, *d);
                }
                t.int(2, INT64);
                t.str(8, name);
                let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                t.bytes(9, &raw);
            });
        }
        for (name, elem, dims) in &self.inputs {
            graph.bytes(11, &value_info(name, *elem, dims));
        }
        for (name, dims) in &self.outputs {
            graph.bytes(12, &value_info(name, FLOAT, dims));
        }
        for (name, elem, dims) in &self.typed_outputs {
            graph.bytes(12, &value_info(name, *elem, dims));
        }
        model(&graph)
    }
}

/// The final clamp of a device run ([`super::device::DeviceLoop::sample_values`]):
/// `x_next = min(max(x, lo), hi)` over `f32 [B, C, H, W]`, as the host's `step::clamp` for
/// every non-NaN value.
pub fn clamp(lo: f32, hi: f32) -> Vec<u8> {
    use names::{X, X_NEXT};
    let img = vec![Dim::P("B"), Dim::P("C"), Dim::P("H"), Dim::P("W")];
    let mut g = Graph::default();
    g.inputs.push((X.into(), FLOAT, img.clone()));
    g.init_f32("lo", &[lo]);
    g.init_f32("hi", &[hi]);
    g.node("Max", &[X, "lo"], &["m"], &[]);
    g.node("Min", &["m", "hi"], &[X_NEXT], &[]);
    g.outputs.push((X_NEXT.into(), img));
    g.encode()
}

/// A one-node `Identity` model over a rank-1 `uint8` tensor (`x` → `y`, length `n`): run
/// without IO binding on the CUDA provider it copies a device buffer to a host output
/// ([`super::device_memory`]).
pub(crate) fn identity_u8() -> Vec<u8> {
    /// ONNX `TensorProto.DataType.UINT8`.
    const UINT8: i64 = 2;
    let value_info = |name: &str| {
        let mut vi = Pb::default();
        vi.str(1, name);
        vi.msg(2, |ty| {
            ty.msg(1, |t| {
                t.int(1, UINT8);
                t.msg(2, |shape| shape.msg(1, |d| d.str(2, "n")));
            })
        });
        vi.0
    };
    let mut graph = Pb::default();
    graph.msg(1, |n| {
        n.str(1, "x");
        n.str(2, "y");
        n.str(3, "copy");
        n.str(4, "Identity");
    });
    graph.str(2, "libbridge_copy");
    graph.bytes(11, &value_info("x"));
    graph.bytes(12, &value_info("y"));
    model(&graph)
}

/// A `ModelProto` around `graph`: libbridge as producer, the default opset [`OPSET`].
fn model(graph: &Pb) -> Vec<u8> {
    let mut model = Pb::default();
    model.int(1, IR_VERSION);
    model.str(2, "libbridge");
    model.bytes(7, &graph.0);
    model.msg(8, |o| {
        o.str(1, "");
        o.int(2, OPSET);
    });
    model.0
}

/// A protobuf message being written (varint and length-delimited fields only).
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }
    /// An int32/int64/enum field (negative values as 10-byte two's complement, as protobuf does).
    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn msg(&mut self, field: u32, f: impl FnOnce(&mut Pb)) {
        let mut m = Pb::default();
        f(&mut m);
        self.bytes(field, &m.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back the protobuf fields written above (a tiny decoder for the test only).
    fn fields(mut b: &[u8]) -> Vec<(u32, Result<u64, Vec<u8>>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut s = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= ((byte & 0x7f) as u64) << s;
                s += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, key & 7);
            match wire {
                0 => out.push((field, Ok(varint(&mut b)))),
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((field, Err(b[..n].to_vec())));
                    b = &b[n..];
                }
                w => panic!("unexpected wire type {w}"),
            }
        }
        out
    }

    #[test]
    fn varints_match_protobuf() {
        let mut p = Pb::default();
        p.int(1, 300);
        assert_eq!(p.0, [0x08, 0xac, 0x02]);
        let mut p = Pb::default();
        p.int(3, -1);
        assert_eq!(p.0.len(), 11, "negative int64: ten varint bytes");
        assert_eq!(fields(&p.0), vec![(3, Ok(u64::MAX))]);
    }

    /// The model carries IR 8, opset 17, and a graph with the declared inputs, outputs and one
    /// `Mul`/`Add` pair per source.
    #[test]
    fn model_structure() {
        let bytes = build(&[Source::X0, Source::XEnd]);
        let top = fields(&bytes);
        assert!(top.contains(&(1, Ok(8))));
        let opset = top.iter().find(|(f, _)| *f == 8).and_then(|(_, v)| v.clone().err()).unwrap();
        assert_eq!(fields(&opset), vec![(1, Err(vec![])), (2, Ok(17))]);
        let graph = top.iter().find(|(f, _)| *f == 7).and_then(|(_, v)| v.clone().err()).unwrap();
        let g = fields(&graph);
        let name_of = |m: &Vec<u8>| -> String {
            fields(m).iter().find(|(f, _)| *f == 1).and_then(|(_, v)| v.clone().err()).map(|b| String::from_utf8(b).unwrap()).unwrap()
        };
        let ins: Vec<String> = g.iter().filter(|(f, _)| *f == 11).map(|(_, v)| name_of(v.as_ref().unwrap_err())).collect();
        let outs: Vec<String> = g.iter().filter(|(f, _)| *f == 12).map(|(_, v)| name_of(v.as_ref().unwrap_err())).collect();
        assert_eq!(ins, ["x", "x_end", "raw", "z", "coef", "flag"]);
        assert_eq!(outs, ["x_next", "x_in", "flag_next"]);
        let ops: Vec<String> = g
            .iter()
            .filter(|(f, _)| *f == 1)
            .map(|(_, v)| {
                let n = fields(v.as_ref().unwrap_err());
                String::from_utf8(n.iter().find(|(f, _)| *f == 4).and_then(|(_, v)| v.clone().err()).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(ops.iter().filter(|o| *o == "Mul").count(), 3 + 1 + 2 + 1 + 1);
        assert_eq!(ops.iter().filter(|o| *o == "Add").count(), 2 + 2 + 1);
    }

    #[test]
    fn coefficient_layout() {
        let plan = crate::sampler::plan::plan(
            &crate::family::gou::Gou::new(crate::family::gou::GouParams::goub()).unwrap(),
            &crate::sampler::Sampler::DataSolver1 { sde: true },
            4,
            false,
        )
        .unwrap()
        .unwrap();
        let s0 = &plan.steps[0];
        let v = coefficients(&plan, s0, 1.0, 0);
        assert_eq!(v.len(), coef_len(2));
        // No call at the top: x0̂ = x_end, no clamp.
        assert_eq!(&v[..5], &[0.0, 1.0, 0.0, f32::NEG_INFINITY, f32::INFINITY]);
        assert_eq!(v[5], s0.c_x as f32);
        assert_eq!(v[8], s0.noise.unwrap().0 as f32);
        let v = coefficients(&plan, &plan.steps[1], 1.0, 1);
        let lin = plan.steps[1].x0.unwrap();
        assert_eq!((v[0], v[2], v[10]), (lin.x as f32, lin.out as f32, 1.0));
    }
}
