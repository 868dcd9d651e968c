//! The pixel graphs: 8-bit caller planes ↔ the network's float frame as tiny ONNX models the
//! SDK writes itself, so a frame that already lies in device memory is converted there
//! ([`super::device_pixels`]) instead of on the host ([`crate::pixel`]).
//!
//! ```text
//! decode  inputs  one u8 [L] per plane (L = (rows−1)·pitch + row bytes, the caller's bytes)
//!         output  x : f32 [1, 3, H, W]   model range [lo, hi], model channel order
//! encode  inputs  x : f32 [1, 3, H, W];  per plane with row padding, its old bytes u8 [L]
//!         output  one u8 [L] per plane: the new pixels, the old padding bytes
//! ```
//!
//! Every arithmetic step is one node in the host code's order with the host's f32 constants
//! (`Sub`, `Div`, `Mul`, `Add` separate, no fused multiply-add; clamps as `Max` then `Min`;
//! `as u8` as `Floor` then `Cast` of a value already clamped to `[0, 255]`), so a frame
//! converts to the host's bits: [`crate::pixel::decode_nv12`] / [`crate::pixel::encode_nv12`]
//! and the 8-bit RGB/BGR paths of [`crate::pixel::decode`] / [`crate::pixel::encode`], followed
//! (decode) or preceded (encode) by `Restorer::restore_rgb`'s range and channel mapping. NaN in
//! a restored frame is outside that promise (the host's `clamp` keeps NaN, `Max`/`Min` may
//! not); the restorer refuses non-finite network outputs before they get here.
//!
//! A plane of `rows` rows with `pitch > row bytes` is read without its row padding (a slice
//! of the first `rows − 1` whole rows reshaped to `[rows − 1, pitch]` and cropped, then the
//! last row), and written whole: the padding bytes of the new plane are the old plane's, so
//! one `u8 [L]` output over the caller's memory leaves them as they were.

use super::step_graph::{Dim, FLOAT, Graph, UINT8};
use crate::pixel::{Nv12Layout, PixelFormat, YuvMatrix};
use crate::{Error, Result};

/// The caller frame a pixel graph converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameLayout {
    /// Two-plane NV12.
    Nv12(Nv12Layout),
    /// One packed 8-bit plane: `Rgb8` or `Bgr8` (other formats keep the host conversion).
    Packed8 {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Bytes from one row to the next.
        stride: usize,
        /// `Rgb8` or `Bgr8`.
        format: PixelFormat,
    },
}

/// The network's side of the conversion: its value range and channel order, as
/// `Restorer::restore_rgb` maps them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelRange {
    /// The value a 0 channel maps to.
    pub lo: f32,
    /// The value a full channel maps to.
    pub hi: f32,
    /// The network takes B, G, R.
    pub bgr: bool,
}

impl FrameLayout {
    /// Width and height in pixels.
    pub fn size(&self) -> (usize, usize) {
        match *self {
            FrameLayout::Nv12(l) => (l.width, l.height),
            FrameLayout::Packed8 { width, height, .. } => (width, height),
        }
    }

    /// Each plane as (rows, pitch, row bytes), after checking the layout (as the host
    /// conversion checks it; a packed format other than RGB8/BGR8 is a parameter error).
    pub fn planes(&self) -> Result<Vec<(usize, usize, usize)>> {
        match *self {
            FrameLayout::Nv12(l) => {
                l.plane_lens()?;
                Ok(vec![(l.height, l.y_pitch, l.width), (l.height / 2, l.uv_pitch, l.width)])
            }
            FrameLayout::Packed8 { width, height, stride, format } => {
                if !matches!(format, PixelFormat::Rgb8 | PixelFormat::Bgr8) {
                    return Err(Error::param("format", format!("{format:?} has no device conversion (RGB8, BGR8 and NV12 do)")));
                }
                let mut l = crate::pixel::Layout::packed(width, height, format)?;
                l.stride = stride;
                l.required_len()?;
                Ok(vec![(height, stride, 3 * width)])
            }
        }
    }
}

/// Bytes of a plane of `rows` rows: the last row ends at its row bytes.
pub fn plane_len(rows: usize, pitch: usize, row: usize) -> usize {
    (rows - 1) * pitch + row
}

/// Whether the encode graph reads the plane's old bytes (it has row padding between rows).
pub fn keeps_padding(rows: usize, pitch: usize, row: usize) -> bool {
    rows > 1 && pitch > row
}

/// Graph tensor names.
pub mod names {
    /// The float frame.
    pub const X: &str = "x";
    /// Plane `k` as read.
    pub fn plane(k: usize) -> String {
        format!("p{k}")
    }
    /// Plane `k`'s old bytes (encode, planes with row padding).
    pub fn old(k: usize) -> String {
        format!("old{k}")
    }
    /// Plane `k` as written.
    pub fn out(k: usize) -> String {
        format!("out{k}")
    }
}

/// A graph under construction with generated temporary names.
struct B {
    g: Graph,
    n: usize,
}

impl B {
    fn new() -> Self {
        B { g: Graph::default(), n: 0 }
    }

    fn op(&mut self, op: &str, ins: &[&str], attrs: &[(&str, i64)]) -> String {
        self.n += 1;
        let o = format!("t{}", self.n);
        self.g.node(op, ins, &[&o], attrs);
        o
    }

    fn f(&mut self, v: f32) -> String {
        self.n += 1;
        let name = format!("c{}", self.n);
        self.g.init_f32(&name, &[v]);
        name
    }

    fn i(&mut self, v: &[i64]) -> String {
        self.n += 1;
        let name = format!("c{}", self.n);
        self.g.init_i64(&name, &[v.len() as i64], v);
        name
    }

    fn bin(&mut self, op: &str, a: &str, c: f32) -> String {
        let c = self.f(c);
        self.op(op, &[a, &c], &[])
    }

    fn add(&mut self, a: &str, b: &str) -> String {
        self.op("Add", &[a, b], &[])
    }

    fn reshape(&mut self, x: &str, shape: &[usize]) -> String {
        let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let s = self.i(&s);
        self.op("Reshape", &[x, &s], &[])
    }

    fn slice(&mut self, x: &str, starts: &[usize], ends: &[usize], axes: &[i64]) -> String {
        let v = |a: &[usize]| a.iter().map(|&d| d as i64).collect::<Vec<_>>();
        let (s, e, a) = (self.i(&v(starts)), self.i(&v(ends)), self.i(axes));
        self.op("Slice", &[x, &s, &e, &a], &[])
    }

    /// `v.clamp(lo, hi)` for non-NaN `v`.
    fn clamp(&mut self, x: &str, lo: f32, hi: f32) -> String {
        let m = self.bin("Max", x, lo);
        self.bin("Min", &m, hi)
    }

    /// `v as u8` for `v` already in `[0, 255]`.
    fn floor_u8(&mut self, x: &str) -> String {
        let f = self.op("Floor", &[x], &[]);
        self.op("Cast", &[&f], &[("to", UINT8)])
    }

    fn cast_f32(&mut self, x: &str) -> String {
        self.op("Cast", &[x], &[("to", FLOAT)])
    }

    /// A plane's `[rows, row]` pixels from its `u8 [L]` bytes.
    fn rows_of(&mut self, src: &str, rows: usize, pitch: usize, row: usize) -> String {
        if !keeps_padding(rows, pitch, row) {
            return self.reshape(src, &[rows, row]);
        }
        let body = self.slice(src, &[0], &[(rows - 1) * pitch], &[0]);
        let body = self.reshape(&body, &[rows - 1, pitch]);
        let body = self.slice(&body, &[0], &[row], &[1]);
        let last = self.slice(src, &[(rows - 1) * pitch], &[plane_len(rows, pitch, row)], &[0]);
        let last = self.reshape(&last, &[1, row]);
        self.op("Concat", &[&body, &last], &[("axis", 0)])
    }

    /// A plane's `u8 [L]` bytes from its `[rows, row]` pixels and (with row padding) its old
    /// bytes `old`.
    fn plane_of(&mut self, px: &str, old: &str, rows: usize, pitch: usize, row: usize) -> String {
        if !keeps_padding(rows, pitch, row) {
            return self.reshape(px, &[plane_len(rows, pitch, row)]);
        }
        let pad = self.slice(old, &[0], &[(rows - 1) * pitch], &[0]);
        let pad = self.reshape(&pad, &[rows - 1, pitch]);
        let pad = self.slice(&pad, &[row], &[pitch], &[1]);
        let body = self.slice(px, &[0], &[rows - 1], &[0]);
        let body = self.op("Concat", &[&body, &pad], &[("axis", 1)]);
        let body = self.reshape(&body, &[(rows - 1) * pitch]);
        let last = self.slice(px, &[rows - 1], &[rows], &[0]);
        let last = self.reshape(&last, &[row]);
        self.op("Concat", &[&body, &last], &[("axis", 0)])
    }

    /// `[h, w]` from `[h/2, w/2]` by repeating each value over its 2×2 block (the host reads
    /// chroma pair `x & !1` of row `y / 2`).
    fn up2(&mut self, x: &str, h: usize, w: usize) -> String {
        let r = self.reshape(x, &[h / 2, 1, w / 2, 1]);
        let s = self.i(&[(h / 2) as i64, 2, (w / 2) as i64, 2]);
        let e = self.op("Expand", &[&r, &s], &[]);
        self.reshape(&e, &[h, w])
    }

    /// `[1, 3, h, w]` in the model's range and order from `[h, w]` R, G, B in `[0, 1]`:
    /// `lo + (hi − lo)·v` as `restore_rgb`.
    fn model_input(&mut self, rgb: [String; 3], h: usize, w: usize, m: ModelRange) -> String {
        let mut ch = Vec::new();
        for c in rgb {
            let s = self.bin("Mul", &c, m.hi - m.lo);
            let s = self.bin("Add", &s, m.lo);
            ch.push(self.reshape(&s, &[1, 1, h, w]));
        }
        if m.bgr {
            ch.reverse();
        }
        let refs: Vec<&str> = ch.iter().map(String::as_str).collect();
        self.op("Concat", &refs, &[("axis", 1)])
    }

    /// R, G, B `[h, w]` in `[0, 1]` from the model-range input `x`: `((v − lo)/(hi − lo))`
    /// clamped, as `restore_rgb`.
    fn rgb_of_model(&mut self, h: usize, w: usize, m: ModelRange) -> [String; 3] {
        let t = self.bin("Sub", names::X, m.lo);
        let t = self.bin("Div", &t, m.hi - m.lo);
        let t = self.clamp(&t, 0.0, 1.0);
        let mut ch: Vec<String> = (0..3)
            .map(|k| {
                let s = self.slice(&t, &[k], &[k + 1], &[1]);
                self.reshape(&s, &[h, w])
            })
            .collect();
        if m.bgr {
            ch.reverse();
        }
        let b = ch.pop().expect("three channels");
        let g = ch.pop().expect("three channels");
        let r = ch.pop().expect("three channels");
        [r, g, b]
    }

    fn finish(mut self, inputs: Vec<(String, i64, usize)>, outputs: Vec<(String, String, i64, Vec<usize>)>) -> Vec<u8> {
        for (name, elem, len) in inputs {
            self.g.inputs.push((name, elem, vec![Dim::V(len as i64)]));
        }
        for (name, from, elem, dims) in outputs {
            self.g.node("Identity", &[&from], &[&name], &[]);
            self.g.typed_outputs.push((name, elem, dims.iter().map(|&d| Dim::V(d as i64)).collect()));
        }
        self.g.encode()
    }
}

/// (Kr, Kb) and the range scales/offsets, as `pixel.rs` defines them.
fn yuv_consts(m: YuvMatrix, full: bool) -> ((f32, f32), (f32, f32), (f32, f32)) {
    let k = match m {
        YuvMatrix::Bt601 => (0.299, 0.114),
        YuvMatrix::Bt709 => (0.2126, 0.0722),
    };
    let r = if full { ((255.0, 0.0), (255.0, 128.0)) } else { ((219.0, 16.0), (224.0, 128.0)) };
    (k, r.0, r.1)
}

/// The decode model of `layout` for a network with range `m` (module docs).
pub fn decode(layout: &FrameLayout, m: ModelRange) -> Result<Vec<u8>> {
    let planes = layout.planes()?;
    let (w, h) = layout.size();
    let mut b = B::new();
    let rgb = match *layout {
        FrameLayout::Nv12(l) => {
            let ((kr, kb), (ys, yo), (cs, co)) = yuv_consts(l.yuv_matrix, l.yuv_full_range);
            let (yr, yp, _) = planes[0];
            let (cr, cp, _) = planes[1];
            let y = b.rows_of(&names::plane(0), yr, yp, w);
            let y = b.cast_f32(&y);
            let uv = b.rows_of(&names::plane(1), cr, cp, w);
            let uv = b.cast_f32(&uv);
            let uv = b.reshape(&uv, &[h / 2, w / 2, 2]);
            let mut chroma = Vec::new();
            for k in 0..2 {
                let c = b.slice(&uv, &[k], &[k + 1], &[2]);
                let c = b.reshape(&c, &[h / 2, w / 2]);
                let c = b.bin("Sub", &c, co);
                let c = b.bin("Div", &c, cs);
                chroma.push(b.up2(&c, h, w));
            }
            let (pb, pr) = (&chroma[0], &chroma[1]);
            let yy = b.bin("Sub", &y, yo);
            let yy = b.bin("Div", &yy, ys);
            let t = b.bin("Mul", pr, 2.0 * (1.0 - kr));
            let r = b.add(&yy, &t);
            let t = b.bin("Mul", pb, 2.0 * (1.0 - kb));
            let bl = b.add(&yy, &t);
            let kr_r = b.bin("Mul", &r, kr);
            let kb_b = b.bin("Mul", &bl, kb);
            let g = b.op("Sub", &[&yy, &kr_r], &[]);
            let g = b.op("Sub", &[&g, &kb_b], &[]);
            let g = b.bin("Div", &g, 1.0 - kr - kb);
            [b.clamp(&r, 0.0, 1.0), b.clamp(&g, 0.0, 1.0), b.clamp(&bl, 0.0, 1.0)]
        }
        FrameLayout::Packed8 { format, .. } => {
            let (rows, pitch, row) = planes[0];
            let p = b.rows_of(&names::plane(0), rows, pitch, row);
            let p = b.cast_f32(&p);
            let p = b.bin("Div", &p, 255.0);
            let p = b.reshape(&p, &[h, w, 3]);
            let mut ch: Vec<String> = (0..3)
                .map(|k| {
                    let s = b.slice(&p, &[k], &[k + 1], &[2]);
                    b.reshape(&s, &[h, w])
                })
                .collect();
            if format == PixelFormat::Bgr8 {
                ch.reverse();
            }
            [ch[0].clone(), ch[1].clone(), ch[2].clone()]
        }
    };
    let x = b.model_input(rgb, h, w, m);
    let inputs = planes.iter().enumerate().map(|(k, &(r, p, row))| (names::plane(k), UINT8, plane_len(r, p, row))).collect();
    Ok(b.finish(inputs, vec![(names::X.into(), x, FLOAT, vec![1, 3, h, w])]))
}

/// The encode model of `layout` for a network with range `m` (module docs).
pub fn encode(layout: &FrameLayout, m: ModelRange) -> Result<Vec<u8>> {
    let planes = layout.planes()?;
    let (w, h) = layout.size();
    let mut b = B::new();
    let [r, g, bl] = b.rgb_of_model(h, w, m);
    let px: Vec<String> = match *layout {
        FrameLayout::Nv12(l) => {
            let ((kr, kb), (ys, yo), (cs, co)) = yuv_consts(l.yuv_matrix, l.yuv_full_range);
            let kg = 1.0 - kr - kb;
            let luma = |b: &mut B, r: &str, g: &str, bl: &str| {
                let a = b.bin("Mul", r, kr);
                let c = b.bin("Mul", g, kg);
                let s = b.add(&a, &c);
                let d = b.bin("Mul", bl, kb);
                b.add(&s, &d)
            };
            // `(v·scale + offset + 0.5).clamp(0, 255) as u8`.
            let code = |b: &mut B, v: &str, scale: f32, offset: f32| {
                let t = b.bin("Mul", v, scale);
                let t = b.bin("Add", &t, offset);
                let t = b.bin("Add", &t, 0.5);
                let t = b.clamp(&t, 0.0, 255.0);
                b.floor_u8(&t)
            };
            let yy = luma(&mut b, &r, &g, &bl);
            let y = code(&mut b, &yy, ys, yo);
            // Mean of each 2×2 block in the host's order: (0,0), (1,0), (0,1), (1,1) as (dx, dy).
            let mut means = Vec::new();
            for c in [&r, &g, &bl] {
                let q = b.reshape(c, &[h / 2, 2, w / 2, 2]);
                let mut acc: Option<String> = None;
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let s = b.slice(&q, &[dy, dx], &[dy + 1, dx + 1], &[1, 3]);
                    let s = b.reshape(&s, &[h / 2, w / 2]);
                    let s = b.bin("Mul", &s, 0.25);
                    acc = Some(match acc {
                        None => s,
                        Some(a) => b.add(&a, &s),
                    });
                }
                let mean = acc.expect("four terms");
                means.push(b.clamp(&mean, 0.0, 1.0));
            }
            let yy = luma(&mut b, &means[0], &means[1], &means[2]);
            let pb = b.op("Sub", &[&means[2], &yy], &[]);
            let pb = b.bin("Div", &pb, 2.0 * (1.0 - kb));
            let pr = b.op("Sub", &[&means[0], &yy], &[]);
            let pr = b.bin("Div", &pr, 2.0 * (1.0 - kr));
            let u = code(&mut b, &pb, cs, co);
            let v = code(&mut b, &pr, cs, co);
            let u = b.reshape(&u, &[h / 2, w / 2, 1]);
            let v = b.reshape(&v, &[h / 2, w / 2, 1]);
            let uv = b.op("Concat", &[&u, &v], &[("axis", 2)]);
            let uv = b.reshape(&uv, &[h / 2, w]);
            vec![y, uv]
        }
        FrameLayout::Packed8 { format, .. } => {
            let mut ch = [r, g, bl];
            if format == PixelFormat::Bgr8 {
                ch.reverse();
            }
            let q: Vec<String> = ch
                .iter()
                .map(|c| {
                    let t = b.bin("Mul", c, 255.0);
                    let t = b.bin("Add", &t, 0.5);
                    let t = b.floor_u8(&t);
                    b.reshape(&t, &[h, w, 1])
                })
                .collect();
            let p = b.op("Concat", &[&q[0], &q[1], &q[2]], &[("axis", 2)]);
            vec![b.reshape(&p, &[h, 3 * w])]
        }
    };
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (k, (&(rows, pitch, row), px)) in planes.iter().zip(&px).enumerate() {
        let len = plane_len(rows, pitch, row);
        if keeps_padding(rows, pitch, row) {
            inputs.push((names::old(k), UINT8, len));
        }
        let out = b.plane_of(px, &names::old(k), rows, pitch, row);
        outputs.push((names::out(k), out, UINT8, vec![len]));
    }
    b.g.inputs.push((names::X.into(), FLOAT, [1, 3, h, w].iter().map(|&d| Dim::V(d as i64)).collect()));
    Ok(b.finish(inputs, outputs))
}
