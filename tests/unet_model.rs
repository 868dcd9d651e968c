//! A small restoration U-Net written with the export crate's ONNX graph builder, shared by
//! `tests/runtime.rs` and `sdk/benches/runtime.rs` (included with `#[path]`).

use bridge_export::onnx::{Attr, Dim, FLOAT, Graph};

/// A small restoration U-Net (≈ 0.37 M parameters, deterministic pseudo-random weights):
/// `concat(x_t, cond)` → 32 → ↓64 → ↓128 → ↑64 (+skip) → ↑32 (+skip) → 3, ReLU activations,
/// nearest-neighbour upsampling; the time enters as `t·0.01` added to the input. Inputs `x_t`,
/// `cond` `[B, 3, H, W]` (H, W multiples of 4) and `t` `[B]`; output `raw`. Package metadata for
/// the tests' x0 family, spatial multiple 4.
pub fn unet() -> Graph {
    let mut g = Graph::default();
    let img = [Dim::S("B"), Dim::N(3), Dim::S("H"), Dim::S("W")];
    g.input("x_t", FLOAT, &img).input("cond", FLOAT, &img).input("t", FLOAT, &[Dim::S("B")]).output("raw", FLOAT, &img);
    g.meta("bridge.schema_version", "1")
        .meta("bridge.family", "test")
        .meta("bridge.schedule", "linear")
        .meta("bridge.parameterization", "x0")
        .meta("bridge.inputs", r#"{"x_t": "x_t", "cond": "cond", "t": "t"}"#)
        .meta("bridge.outputs", r#"{"raw": "raw"}"#)
        .meta("bridge.value_range", "[-1, 1]")
        .meta("bridge.channel_order", "rgb")
        .meta("bridge.spatial_multiple", "4")
        .meta("bridge.sampler", "implicit")
        .meta("bridge.nfe", "4");
    let mut seed = 0x1234_5678u32;
    let mut weights = |n: usize, fan_in: usize| -> Vec<f32> {
        let scale = (2.0 / fan_in as f32).sqrt();
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                ((seed >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0) * scale * 1.7
            })
            .collect()
    };
    let mut conv = |g: &mut Graph, name: &str, x: &str, cin: i64, cout: i64, stride: i64, relu: bool| -> String {
        let (w, b, y) = (format!("{name}_w"), format!("{name}_b"), format!("{name}_y"));
        g.floats(&w, &[cout, cin, 3, 3], &weights((cout * cin * 9) as usize, (cin * 9) as usize));
        g.floats(&b, &[cout], &vec![0.01; cout as usize]);
        g.node("Conv", &[x, &w, &b], &[&y], &[("pads", Attr::Ints(vec![1, 1, 1, 1])), ("strides", Attr::Ints(vec![stride, stride]))]);
        if relu {
            let r = format!("{name}_r");
            g.node("Relu", &[&y], &[&r], &[]);
            r
        } else {
            y
        }
    };
    g.ints("tshape", &[4], &[-1, 1, 1, 1]).floats("tscale", &[], &[0.01]).floats("scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    g.node("Reshape", &["t", "tshape"], &["t4"], &[]).node("Mul", &["t4", "tscale"], &["ts"], &[]);
    g.node("Add", &["x_t", "ts"], &["xin"], &[]).node("Concat", &["xin", "cond"], &["inp"], &[("axis", Attr::Int(1))]);
    let e1 = conv(&mut g, "e1", "inp", 6, 32, 1, true);
    let d1 = conv(&mut g, "d1", &e1, 32, 64, 2, true);
    let e2 = conv(&mut g, "e2", &d1, 64, 64, 1, true);
    let d2 = conv(&mut g, "d2", &e2, 64, 128, 2, true);
    let m = conv(&mut g, "m", &d2, 128, 128, 1, true);
    g.node("Resize", &[&m, "", "scales"], &["u2"], &[]);
    let u2c = conv(&mut g, "u2c", "u2", 128, 64, 1, true);
    g.node("Add", &[&u2c, &e2], &["s2"], &[]);
    g.node("Resize", &["s2", "", "scales"], &["u1"], &[]);
    let u1c = conv(&mut g, "u1c", "u1", 64, 32, 1, true);
    g.node("Add", &[&u1c, &e1], &["s1"], &[]);
    let out = conv(&mut g, "out", "s1", 32, 3, 1, false);
    g.node("Identity", &[&out], &["raw"], &[]);
    g
}
