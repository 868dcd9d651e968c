//! The symbolic ONNX backend of [`Ops`] and the U-Net exporter.
//!
//! A value is an ONNX value name; every call appends nodes to a [`Graph`]; a parameter becomes an
//! initializer named by its dotted path with the data from a [`Weights`]. Only opset-17 operators
//! that ONNX Runtime and TensorRT (Jetson) both run natively are used: `Conv`, `Gemm`, `Sigmoid`,
//! `Mul`, `Add`, `Sub`, `Div`, `Sqrt`, `ReduceMean`, `Reshape`, `Shape`, `Concat`, `Resize`
//! (nearest), `Sin`, `Cos`, `Transpose`, `MatMul`, `Softmax`. GroupNorm is decomposed (opset 17 has
//! no GroupNormalization): reshape to `[N, G, −1]`, mean and biased variance with `ReduceMean`,
//! normalize, reshape back, per-channel affine.

use crate::error::{Error, Result};
use crate::onnx::{Attr, Dim, FLOAT, Graph};
use crate::ops::{Init, Ops};
use crate::unet::{UNetConfig, unet_forward_with_noise};
use crate::weights::Weights;
use std::collections::{HashMap, HashSet};

/// Graph input/output names of an exported U-Net.
pub mod io {
    /// The state `x` `[N, C_in, H, W]`.
    pub const X: &str = "x";
    /// The conditioning image `[N, C_cond, H, W]` (absent when `C_cond = 0`).
    pub const COND: &str = "cond";
    /// The time `[N]`.
    pub const T: &str = "t";
    /// A distilled generator's noise `[N, C_z, H, W]` (absent when `C_z = 0`; role `noise`).
    pub const Z: &str = "z";
    /// The output `[N, C_out, H, W]`.
    pub const OUT: &str = "out";
}

/// Appends the operations to a graph, reading parameters from a weights container.
pub struct OnnxOps<'w> {
    /// The graph being built.
    pub graph: Graph,
    weights: &'w Weights,
    used: HashSet<String>,
    shapes: HashMap<String, Vec<usize>>,
    int_consts: HashMap<Vec<i64>, String>,
}

impl<'w> OnnxOps<'w> {
    /// Build into `graph`, with parameters from `weights`.
    pub fn new(graph: Graph, weights: &'w Weights) -> Self {
        OnnxOps { graph, weights, used: HashSet::new(), shapes: HashMap::new(), int_consts: HashMap::new() }
    }

    /// The parameters the graph has used so far.
    pub fn used_params(&self) -> &HashSet<String> {
        &self.used
    }

    /// An `int64` 1-D initializer (shared between identical uses).
    fn ints(&mut self, v: &[i64]) -> String {
        if let Some(n) = self.int_consts.get(v) {
            return n.clone();
        }
        let name = self.graph.fresh("shape");
        self.graph.ints(&name, &[v.len() as i64], v);
        self.int_consts.insert(v.to_vec(), name.clone());
        name
    }

    fn scalar(&mut self, v: f32) -> String {
        let name = self.graph.fresh("scalar");
        self.graph.floats(&name, &[], &[v]);
        name
    }

    fn unary(&mut self, op: &str, x: &str) -> Result<String> {
        Ok(self.graph.op(op, &[x], &[]))
    }
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

impl Ops for OnnxOps<'_> {
    type T = String;

    fn share(&self, x: &String) -> String {
        x.clone()
    }

    fn param(&mut self, path: &str, shape: &[usize], _init: Init) -> Result<String> {
        let t = self.weights.fetch(path, shape)?;
        if self.used.insert(path.to_string()) {
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            self.graph.floats(path, &dims, &t.data);
            self.shapes.insert(path.to_string(), shape.to_vec());
        }
        Ok(path.to_string())
    }

    fn constant(&mut self, shape: &[usize], data: &[f32]) -> Result<String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::Shape(format!("constant of shape {shape:?} given {} values", data.len())));
        }
        let name = self.graph.fresh("const");
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        self.graph.floats(&name, &dims, data);
        Ok(name)
    }

    fn conv2d(&mut self, x: &String, w: &String, b: &String, stride: usize, pad: usize) -> Result<String> {
        let mut attrs = vec![("pads", ints(&[pad; 4])), ("strides", ints(&[stride, stride])), ("dilations", ints(&[1, 1]))];
        // kernel_shape is optional in ONNX (taken from the weight); spell it out when known.
        if let Some(s) = self.shapes.get(w).filter(|s| s.len() == 4) {
            attrs.push(("kernel_shape", ints(&s[2..])));
        }
        Ok(self.graph.op("Conv", &[x, w, b], &attrs))
    }

    fn linear(&mut self, x: &String, w: &String, b: &String) -> Result<String> {
        Ok(self.graph.op("Gemm", &[x, w, b], &[("transB", Attr::Int(1))]))
    }

    fn group_norm(&mut self, x: &String, groups: usize, eps: f64, gamma: &String, beta: &String) -> Result<String> {
        let grouped = self.ints(&[0, groups as i64, -1]);
        let xr = self.graph.op("Reshape", &[x, &grouped], &[]);
        let axes = [("axes", Attr::Ints(vec![2])), ("keepdims", Attr::Int(1))];
        let mean = self.graph.op("ReduceMean", &[&xr], &axes);
        let d = self.graph.op("Sub", &[&xr, &mean], &[]);
        let d2 = self.graph.op("Mul", &[&d, &d], &[]);
        let var = self.graph.op("ReduceMean", &[&d2], &axes);
        let e = self.scalar(eps as f32);
        let ve = self.graph.op("Add", &[&var, &e], &[]);
        let sd = self.graph.op("Sqrt", &[&ve], &[]);
        let y = self.graph.op("Div", &[&d, &sd], &[]);
        let shape = self.graph.op("Shape", &[x], &[]);
        let y = self.graph.op("Reshape", &[&y, &shape], &[]);
        // gamma, beta [C] → [C, 1, 1] so they broadcast over [N, C, H, W].
        let c11 = self.ints(&[-1, 1, 1]);
        let g = self.graph.op("Reshape", &[gamma, &c11], &[]);
        let b = self.graph.op("Reshape", &[beta, &c11], &[]);
        let y = self.graph.op("Mul", &[&y, &g], &[]);
        Ok(self.graph.op("Add", &[&y, &b], &[]))
    }

    fn silu(&mut self, x: &String) -> Result<String> {
        let s = self.graph.op("Sigmoid", &[x], &[]);
        Ok(self.graph.op("Mul", &[x, &s], &[]))
    }

    fn sin(&mut self, x: &String) -> Result<String> {
        self.unary("Sin", x)
    }

    fn cos(&mut self, x: &String) -> Result<String> {
        self.unary("Cos", x)
    }

    fn add(&mut self, a: &String, b: &String) -> Result<String> {
        Ok(self.graph.op("Add", &[a, b], &[]))
    }

    fn mul(&mut self, a: &String, b: &String) -> Result<String> {
        Ok(self.graph.op("Mul", &[a, b], &[]))
    }

    fn scale(&mut self, x: &String, s: f32) -> Result<String> {
        let c = self.scalar(s);
        Ok(self.graph.op("Mul", &[x, &c], &[]))
    }

    fn concat(&mut self, xs: &[&String], axis: usize) -> Result<String> {
        let ins: Vec<&str> = xs.iter().map(|s| s.as_str()).collect();
        Ok(self.graph.op("Concat", &ins, &[("axis", Attr::Int(axis as i64))]))
    }

    fn upsample_nearest2x(&mut self, x: &String) -> Result<String> {
        let scales = self.graph.fresh("scales");
        self.graph.floats(&scales, &[4], &[1.0, 1.0, 2.0, 2.0]);
        let attrs = [
            ("mode", Attr::Str("nearest".into())),
            ("coordinate_transformation_mode", Attr::Str("asymmetric".into())),
            ("nearest_mode", Attr::Str("floor".into())),
        ];
        Ok(self.graph.op("Resize", &[x, "", &scales], &attrs))
    }

    fn reshape(&mut self, x: &String, spec: &[i64]) -> Result<String> {
        let s = self.ints(spec);
        Ok(self.graph.op("Reshape", &[x, &s], &[]))
    }

    fn reshape_like(&mut self, x: &String, like: &String) -> Result<String> {
        let shape = self.graph.op("Shape", &[like], &[]);
        Ok(self.graph.op("Reshape", &[x, &shape], &[]))
    }

    fn transpose(&mut self, x: &String, perm: &[usize]) -> Result<String> {
        Ok(self.graph.op("Transpose", &[x], &[("perm", ints(perm))]))
    }

    fn matmul(&mut self, a: &String, b: &String) -> Result<String> {
        Ok(self.graph.op("MatMul", &[a, b], &[]))
    }

    fn softmax_last(&mut self, x: &String) -> Result<String> {
        Ok(self.graph.op("Softmax", &[x], &[("axis", Attr::Int(-1))]))
    }
}

/// The U-Net as an ONNX graph with `weights` as initializers.
///
/// Inputs `x` `[N, in_channels, H, W]`, `cond` `[N, cond_channels, H, W]` (only if
/// `cond_channels > 0`), `t` `[N]`, all `float32`; output `out` `[N, out_channels, H, W]`. `N`, `H`,
/// `W` are symbolic; `H` and `W` must be multiples of [`UNetConfig::spatial_multiple`]. The weights
/// must be exactly the network's parameters ([`Weights::check_exact`]). The metadata holds
/// `unet.config` (the configuration JSON) and `unet.spatial_multiple`; add the `bridge.*` package
/// keys with [`Graph::meta`] before writing.
pub fn unet_graph(cfg: &UNetConfig, weights: &Weights) -> Result<Graph> {
    let specs = cfg.params()?;
    weights.check_exact(&specs)?;
    let mut g = Graph::new("unet");
    let img = |c: usize| [Dim::S("N"), Dim::N(c as i64), Dim::S("H"), Dim::S("W")];
    g.input(io::X, FLOAT, &img(cfg.in_channels));
    if cfg.cond_channels > 0 {
        g.input(io::COND, FLOAT, &img(cfg.cond_channels));
    }
    g.input(io::T, FLOAT, &[Dim::S("N")]);
    if cfg.noise_channels > 0 {
        // A static channel count: the SDK reads the generator's noise width from it.
        g.input(io::Z, FLOAT, &img(cfg.noise_channels));
    }
    g.output(io::OUT, FLOAT, &img(cfg.out_channels));
    g.doc(&format!(
        "libbridge U-Net ({} parameters; H, W multiples of {}). Inputs x, {}t{}; output out.",
        specs.iter().map(|p| p.numel()).sum::<usize>(),
        cfg.spatial_multiple(),
        if cfg.cond_channels > 0 { "cond, " } else { "" },
        if cfg.noise_channels > 0 { ", z" } else { "" }
    ));
    g.meta("unet.config", &cfg.to_json()).meta("unet.spatial_multiple", &cfg.spatial_multiple().to_string());

    let mut o = OnnxOps::new(g, weights);
    let (x, t) = (io::X.to_string(), io::T.to_string());
    let (cond, z) = (io::COND.to_string(), io::Z.to_string());
    let out =
        unet_forward_with_noise(&mut o, cfg, &x, (cfg.cond_channels > 0).then_some(&cond), (cfg.noise_channels > 0).then_some(&z), &t)?;
    let mut g = o.graph;
    g.node("Identity", &[&out], &[io::OUT], &[]);
    g.check()?;
    Ok(g)
}

/// [`unet_graph`] for a weights file's own configuration (its `unet_config` metadata, see
/// [`Weights::unet_config`]).
pub fn unet_graph_from_weights(weights: &Weights) -> Result<Graph> {
    unet_graph(&weights.unet_config()?, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::InitMode;

    #[test]
    fn unet_graph_is_well_formed_and_holds_every_weight() {
        for cond in [3, 0] {
            let cfg = UNetConfig::tiny(3, cond, 3);
            let w = Weights::for_unet(&cfg, 3, InitMode::Random).unwrap();
            let g = unet_graph(&cfg, &w).unwrap();
            let m = g.to_model();
            let gr = m.graph.as_ref().unwrap();
            let names: Vec<&str> = gr.input.iter().filter_map(|v| v.name.as_deref()).collect();
            assert_eq!(names, if cond > 0 { vec!["x", "cond", "t"] } else { vec!["x", "t"] });
            for p in cfg.params().unwrap() {
                assert!(g.has_initializer(&p.path), "{} not an initializer", p.path);
            }
            assert!(g.initializer_elements() >= cfg.param_count().unwrap());
            // Only the operators the module docs promise (ONNX Runtime and TensorRT run them natively).
            let allowed = [
                "Conv",
                "Gemm",
                "Sigmoid",
                "Mul",
                "Add",
                "Sub",
                "Div",
                "Sqrt",
                "ReduceMean",
                "Reshape",
                "Shape",
                "Concat",
                "Resize",
                "Sin",
                "Cos",
                "Transpose",
                "MatMul",
                "Softmax",
                "Identity",
            ];
            for n in &gr.node {
                let op = n.op_type.as_deref().unwrap_or("");
                assert!(allowed.contains(&op), "operator {op} outside the documented set");
            }
        }
    }

    /// A generator's noise is its own input `z` with a static channel count, after `t`.
    #[test]
    fn generator_graph_has_a_noise_input() {
        let mut cfg = UNetConfig::tiny(3, 3, 3);
        cfg.noise_channels = 2;
        let w = Weights::for_unet(&cfg, 3, InitMode::Random).unwrap();
        let m = unet_graph(&cfg, &w).unwrap().to_model();
        let gr = m.graph.as_ref().unwrap();
        let names: Vec<&str> = gr.input.iter().filter_map(|v| v.name.as_deref()).collect();
        assert_eq!(names, vec!["x", "cond", "t", "z"]);
        let z = gr.input.iter().find(|v| v.name.as_deref() == Some("z")).unwrap();
        let dims = format!("{:?}", z.r#type);
        assert!(dims.contains("DimValue(2)"), "noise channels not static: {dims}");
    }

    #[test]
    fn graph_from_a_weights_file() {
        let cfg = UNetConfig::tiny(1, 1, 1);
        let w = Weights::for_unet(&cfg, 4, InitMode::Training).unwrap();
        let back = Weights::from_bytes(&w.to_bytes(), std::path::Path::new("mem")).unwrap();
        let a = unet_graph_from_weights(&back).unwrap().encode();
        assert_eq!(a, unet_graph(&cfg, &w).unwrap().encode());
        assert!(unet_graph_from_weights(&Weights::new()).is_err());
    }

    #[test]
    fn wrong_weights_are_rejected() {
        let cfg = UNetConfig::tiny(3, 3, 3);
        let other = UNetConfig::tiny(3, 0, 3);
        let w = Weights::for_unet(&other, 3, InitMode::Random).unwrap();
        assert!(matches!(unet_graph(&cfg, &w), Err(Error::Weights(_))));
    }
}
