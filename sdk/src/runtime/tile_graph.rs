//! The tile graphs of the tiled device loop ([`super::device`], `device_tiles.rs`): two tiny ONNX models the
//! SDK writes itself, so that cutting tiles out of the device frame and blending the network's
//! tile outputs back run on the network's device, with the host loop's arithmetic
//! ([`crate::tile::TiledDenoiser`]).
//!
//! ```text
//! crop   inputs  x : f32 [B, C, H, W]     s_i, e_i : i64 [4]          (i < R)
//!        tiles   = Concat_i Slice(x, s_i, e_i)                       [R, C, th, tw]
//! blend  inputs  v : f32 [R, C, th, tw]   acc : f32 [B, C, H, W]      (absent in a call's first run: 0)
//!                k_i : f32 [1, 1, th, tw]   s_i, e_i : i64 [4]   p_i : i64 [8]   (i < m ≤ R)
//!        for i < m:  old = Slice(acc, s_i, e_i)
//!                    new = old + k_i·(v_i − old)                      (the host's running mean)
//!                    acc = Where(Pad(k_i, p_i) = 0, acc, Pad(new, p_i))
//! ```
//!
//! `k_i` is the host's per-pixel blend factor `w / Σw` of row `i`'s tile, computed once on the
//! host (`TileLayout::blend_factors`); where it is 0 the host skips the pixel, and
//! `Where` keeps `acc` there bit for bit (also when the tile output is NaN). `Sub`, `Mul` and
//! `Add` are separate nodes in the host's order (no fused multiply-add), so the blend gives the
//! host's bits. Rows `m..R` of a fixed-shape batch are padding: their outputs are not read.
//!
//! Slice starts/ends and Pad widths are graph inputs (one model per row count, not per tile);
//! they are host tensors, which is where the CUDA provider's `Slice` and `Pad` want them.

use super::step_graph::{Dim, FLOAT, Graph, INT64};

/// Graph tensor names.
pub mod names {
    /// The frame a crop cuts from.
    pub const X: &str = "x";
    /// The crop's output, one row per tile.
    pub const TILES: &str = "tiles";
    /// The network's output for a batch of tiles.
    pub const V: &str = "v";
    /// The running blend.
    pub const ACC: &str = "acc";
    /// The blend after this batch.
    pub const ACC_OUT: &str = "acc_out";

    /// Slice starts of row `i`.
    pub fn starts(i: usize) -> String {
        format!("s{i}")
    }
    /// Slice ends of row `i`.
    pub fn ends(i: usize) -> String {
        format!("e{i}")
    }
    /// Pad widths of row `i`.
    pub fn pads(i: usize) -> String {
        format!("p{i}")
    }
    /// Blend factors of row `i`.
    pub fn factors(i: usize) -> String {
        format!("k{i}")
    }
}

fn frame() -> Vec<Dim> {
    vec![Dim::P("B"), Dim::P("C"), Dim::P("H"), Dim::P("W")]
}

fn tiles() -> Vec<Dim> {
    vec![Dim::P("R"), Dim::P("C"), Dim::P("TH"), Dim::P("TW")]
}

/// The crop model for `rows` tiles (module docs).
pub fn crop(rows: usize) -> Vec<u8> {
    use names::*;
    let mut g = Graph::default();
    g.inputs.push((X.into(), FLOAT, frame()));
    let mut cut = Vec::with_capacity(rows);
    for i in 0..rows {
        g.inputs.push((starts(i), INT64, vec![Dim::V(4)]));
        g.inputs.push((ends(i), INT64, vec![Dim::V(4)]));
        let t = format!("t{i}");
        g.node("Slice", &[X, &starts(i), &ends(i)], &[&t], &[]);
        cut.push(t);
    }
    let cut: Vec<&str> = cut.iter().map(String::as_str).collect();
    g.node("Concat", &cut, &[TILES], &[("axis", 0)]);
    g.outputs.push((TILES.into(), tiles()));
    g.encode()
}

/// The blend model for a batch of `rows` tiles whose first `real` rows are blended, in a call's
/// first run (`first`: the blend starts from zero) or a later one (module docs).
pub fn blend(rows: usize, real: usize, first: bool) -> Vec<u8> {
    use names::*;
    let mut g = Graph::default();
    g.inputs.push((V.into(), FLOAT, tiles()));
    if !first {
        g.inputs.push((ACC.into(), FLOAT, frame()));
    }
    g.init_f32("zero", &[0.0]);
    let rows_out: Vec<String> = (0..rows).map(|i| format!("v{i}")).collect();
    let ro: Vec<&str> = rows_out.iter().map(String::as_str).collect();
    g.node("Split", &[V], &ro, &[("axis", 0)]);
    // `None`: the running blend is still all zeros (a call's first row).
    let mut acc: Option<String> = (!first).then(|| ACC.to_string());
    let real = real.min(rows);
    for (i, &vi) in ro.iter().enumerate().take(real) {
        let (k, s, e, p) = (factors(i), starts(i), ends(i), pads(i));
        g.inputs.push((k.clone(), FLOAT, vec![Dim::V(1), Dim::V(1), Dim::P("TH"), Dim::P("TW")]));
        g.inputs.push((s.clone(), INT64, vec![Dim::V(4)]));
        g.inputs.push((e.clone(), INT64, vec![Dim::V(4)]));
        g.inputs.push((p.clone(), INT64, vec![Dim::V(8)]));
        let n = |x: &str| format!("{x}{i}");
        let old = match &acc {
            Some(a) => {
                g.node("Slice", &[a, &s, &e], &[&n("old")], &[]);
                n("old")
            }
            None => "zero".to_string(),
        };
        // `old + k·(v − old)`: the host's `d += k·(v − d)`, one node per operation.
        g.node("Sub", &[vi, &old], &[&n("d")], &[]);
        g.node("Mul", &[&k, &n("d")], &[&n("kd")], &[]);
        g.node("Add", &[&old, &n("kd")], &[&n("new")], &[]);
        g.node("Pad", &[&n("new"), &p], &[&n("newp")], &[]);
        g.node("Pad", &[&k, &p], &[&n("kp")], &[]);
        g.node("Equal", &[&n("kp"), "zero"], &[&n("skip")], &[]);
        let out = if i + 1 == real { ACC_OUT.to_string() } else { n("acc") };
        let keep = acc.clone().unwrap_or_else(|| "zero".to_string());
        g.node("Where", &[&n("skip"), &keep, &n("newp")], &[&out], &[]);
        acc = Some(out);
    }
    g.outputs.push((ACC_OUT.into(), frame()));
    g.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The models carry one input per row and the operators the module docs list.
    #[test]
    fn model_structure() {
        let c = crop(3);
        let b = blend(3, 2, false);
        let f = blend(1, 1, true);
        let has = |m: &[u8], s: &str| m.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has(&c, "Concat") && has(&c, "s2") && has(&c, "e2") && !has(&c, "s3"));
        assert!(has(&b, "Where") && has(&b, "p1") && !has(&b, "p2") && has(&b, names::ACC));
        assert!(has(&f, "k0") && !has(&f, "Slice"), "a first run starts from zero");
    }
}
