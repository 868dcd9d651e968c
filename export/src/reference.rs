//! An eager `f32` backend of [`Ops`] on plain `ndarray` arrays: the executable statement of the op
//! semantics in `docs/unet.md`. The exported ONNX graph is tested against it (ONNX Runtime vs this
//! backend on random inputs), which shows that the emitter writes the network the trait defines; a
//! tch backend can be checked against it the same way. Straightforward loops, meant for small
//! inputs; reductions (GroupNorm statistics, dot products) accumulate in `f64`.

use crate::error::{Error, Result};
use crate::ops::{Init, Ops};
use crate::weights::Weights;
use ndarray::{ArrayD, Axis, IxDyn};

/// Evaluates the operations immediately, with parameters from a weights container.
pub struct RefOps<'w> {
    weights: &'w Weights,
}

impl<'w> RefOps<'w> {
    /// A backend reading parameters from `weights`.
    pub fn new(weights: &'w Weights) -> Self {
        RefOps { weights }
    }
}

fn shape_err(op: &str, msg: String) -> Error {
    Error::Shape(format!("{op}: {msg}"))
}

/// The array as a contiguous row-major slice (copying if needed).
fn dense(x: &ArrayD<f32>) -> Vec<f32> {
    x.iter().copied().collect()
}

fn array(shape: Vec<usize>, data: Vec<f32>) -> Result<ArrayD<f32>> {
    ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::Shape(e.to_string()))
}

fn dims4(op: &str, x: &ArrayD<f32>) -> Result<[usize; 4]> {
    x.shape().try_into().map_err(|_| shape_err(op, format!("expected a 4-D tensor, got {:?}", x.shape())))
}

/// NumPy broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        if i + s.len() >= n { s[i + s.len() - n] } else { 1 }
    };
    (0..n)
        .map(|i| match (get(a, i), get(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(shape_err("broadcast", format!("{a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

fn zip_broadcast(a: &ArrayD<f32>, b: &ArrayD<f32>, f: impl Fn(f32, f32) -> f32) -> Result<ArrayD<f32>> {
    let s = broadcast_shape(a.shape(), b.shape())?;
    let av = a.broadcast(IxDyn(&s)).ok_or_else(|| shape_err("broadcast", format!("{:?}", a.shape())))?;
    let bv = b.broadcast(IxDyn(&s)).ok_or_else(|| shape_err("broadcast", format!("{:?}", b.shape())))?;
    let data: Vec<f32> = av.iter().zip(bv.iter()).map(|(&x, &y)| f(x, y)).collect();
    array(s, data)
}

impl Ops for RefOps<'_> {
    type T = ArrayD<f32>;

    fn share(&self, x: &ArrayD<f32>) -> ArrayD<f32> {
        x.clone()
    }

    fn param(&mut self, path: &str, shape: &[usize], _init: Init) -> Result<ArrayD<f32>> {
        let t = self.weights.fetch(path, shape)?;
        array(t.shape.clone(), t.data.clone())
    }

    fn constant(&mut self, shape: &[usize], data: &[f32]) -> Result<ArrayD<f32>> {
        array(shape.to_vec(), data.to_vec())
    }

    fn conv2d(&mut self, x: &ArrayD<f32>, w: &ArrayD<f32>, b: &ArrayD<f32>, stride: usize, pad: usize) -> Result<ArrayD<f32>> {
        let [n, cin, h, wd] = dims4("conv2d", x)?;
        let [cout, wcin, kh, kw] = dims4("conv2d weight", w)?;
        if wcin != cin || b.shape() != [cout] || stride == 0 || h + 2 * pad < kh || wd + 2 * pad < kw {
            return Err(shape_err("conv2d", format!("x {:?}, w {:?}, b {:?}, stride {stride}", x.shape(), w.shape(), b.shape())));
        }
        let (oh, ow) = ((h + 2 * pad - kh) / stride + 1, (wd + 2 * pad - kw) / stride + 1);
        let (xs, ws, bs) = (dense(x), dense(w), dense(b));
        let mut out = vec![0f32; n * cout * oh * ow];
        let mut acc = vec![0f64; oh * ow];
        for ni in 0..n {
            for co in 0..cout {
                acc.iter_mut().for_each(|a| *a = bs[co] as f64);
                for ci in 0..cin {
                    let plane = &xs[(ni * cin + ci) * h * wd..][..h * wd];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let wv = ws[((co * cin + ci) * kh + ky) * kw + kx] as f64;
                            for oy in 0..oh {
                                // Input row iy = oy·stride + ky − pad (zero outside).
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                let row = &plane[iy as usize * wd..][..wd];
                                for ox in 0..ow {
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    if ix >= 0 && ix < wd as isize {
                                        acc[oy * ow + ox] += wv * row[ix as usize] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
                let o = &mut out[(ni * cout + co) * oh * ow..][..oh * ow];
                o.iter_mut().zip(&acc).for_each(|(o, a)| *o = *a as f32);
            }
        }
        array(vec![n, cout, oh, ow], out)
    }

    fn linear(&mut self, x: &ArrayD<f32>, w: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let (xs, ws, bs) = (x.shape(), w.shape(), b.shape());
        if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] || bs != [ws[0]] {
            return Err(shape_err("linear", format!("x {xs:?}, w {ws:?}, b {bs:?}")));
        }
        let (n, din, dout) = (xs[0], xs[1], ws[0]);
        let (xd, wd, bd) = (dense(x), dense(w), dense(b));
        let mut out = Vec::with_capacity(n * dout);
        for i in 0..n {
            for o in 0..dout {
                let dot: f64 = (0..din).map(|k| xd[i * din + k] as f64 * wd[o * din + k] as f64).sum();
                out.push((dot + bd[o] as f64) as f32);
            }
        }
        array(vec![n, dout], out)
    }

    fn group_norm(&mut self, x: &ArrayD<f32>, groups: usize, eps: f64, gamma: &ArrayD<f32>, beta: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let [_, c, h, w] = dims4("group_norm", x)?;
        if groups == 0 || c % groups != 0 || gamma.shape() != [c] || beta.shape() != [c] {
            return Err(shape_err("group_norm", format!("x {:?}, {groups} groups, gamma {:?}", x.shape(), gamma.shape())));
        }
        let (xs, g, b) = (dense(x), dense(gamma), dense(beta));
        let per = c / groups * h * w;
        let mut out = vec![0f32; xs.len()];
        // `per = 0` means an empty tensor (nothing to normalize); `chunks` needs a non-zero size.
        for (gi, chunk) in xs.chunks(per.max(1)).enumerate() {
            let mean = chunk.iter().map(|&v| v as f64).sum::<f64>() / per as f64;
            let var = chunk.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / per as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for (k, &v) in chunk.iter().enumerate() {
                let ch = (gi % groups) * (c / groups) + k / (h * w);
                out[gi * per + k] = ((v as f64 - mean) * inv * g[ch] as f64 + b[ch] as f64) as f32;
            }
        }
        array(x.shape().to_vec(), out)
    }

    fn silu(&mut self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(x.mapv(|v| (v as f64 / (1.0 + (-v as f64).exp())) as f32))
    }

    fn sin(&mut self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(x.mapv(|v| (v as f64).sin() as f32))
    }

    fn cos(&mut self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        Ok(x.mapv(|v| (v as f64).cos() as f32))
    }

    fn add(&mut self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        zip_broadcast(a, b, |x, y| x + y)
    }

    fn mul(&mut self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        zip_broadcast(a, b, |x, y| x * y)
    }

    fn scale(&mut self, x: &ArrayD<f32>, s: f32) -> Result<ArrayD<f32>> {
        Ok(x.mapv(|v| v * s))
    }

    fn concat(&mut self, xs: &[&ArrayD<f32>], axis: usize) -> Result<ArrayD<f32>> {
        let views: Vec<_> = xs.iter().map(|x| x.view()).collect();
        if views.iter().any(|v| axis >= v.ndim()) {
            return Err(shape_err("concat", format!("axis {axis} out of range")));
        }
        ndarray::concatenate(Axis(axis), &views)
            .map_err(|e| shape_err("concat", format!("{e}: {:?}", xs.iter().map(|x| x.shape().to_vec()).collect::<Vec<_>>())))
    }

    fn upsample_nearest2x(&mut self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let [n, c, h, w] = dims4("upsample", x)?;
        let xs = dense(x);
        let mut out = Vec::with_capacity(xs.len() * 4);
        // An empty image has no planes; `chunks` needs a non-zero size.
        for plane in xs.chunks((h * w).max(1)).take(n * c) {
            for i in 0..2 * h {
                for j in 0..2 * w {
                    out.push(plane[(i / 2) * w + j / 2]);
                }
            }
        }
        array(vec![n, c, 2 * h, 2 * w], out)
    }

    fn reshape(&mut self, x: &ArrayD<f32>, spec: &[i64]) -> Result<ArrayD<f32>> {
        let total = x.len();
        let mut shape = Vec::with_capacity(spec.len());
        let mut infer = None;
        for (i, &s) in spec.iter().enumerate() {
            match s {
                0 => shape.push(*x.shape().get(i).ok_or_else(|| shape_err("reshape", format!("0 at {i} beyond rank")))?),
                -1 if infer.is_none() => {
                    infer = Some(i);
                    shape.push(1);
                }
                s if s > 0 => shape.push(s as usize),
                _ => return Err(shape_err("reshape", format!("bad spec {spec:?}"))),
            }
        }
        let known: usize = shape.iter().product();
        if let Some(i) = infer {
            if known == 0 || !total.is_multiple_of(known) {
                return Err(shape_err("reshape", format!("{:?} cannot become {spec:?}", x.shape())));
            }
            shape[i] = total / known;
        }
        if shape.iter().product::<usize>() != total {
            return Err(shape_err("reshape", format!("{:?} cannot become {spec:?}", x.shape())));
        }
        array(shape, dense(x))
    }

    fn reshape_like(&mut self, x: &ArrayD<f32>, like: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        if x.len() != like.len() {
            return Err(shape_err("reshape_like", format!("{:?} vs {:?}", x.shape(), like.shape())));
        }
        array(like.shape().to_vec(), dense(x))
    }

    fn transpose(&mut self, x: &ArrayD<f32>, perm: &[usize]) -> Result<ArrayD<f32>> {
        let mut seen = vec![false; x.ndim()];
        if perm.len() != x.ndim() || perm.iter().any(|&p| p >= x.ndim() || std::mem::replace(&mut seen[p], true)) {
            return Err(shape_err("transpose", format!("perm {perm:?} for rank {}", x.ndim())));
        }
        let t = x.view().permuted_axes(IxDyn(perm));
        array(t.shape().to_vec(), t.iter().copied().collect())
    }

    fn matmul(&mut self, a: &ArrayD<f32>, b: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let (sa, sb) = (a.shape(), b.shape());
        let r = sa.len();
        if r < 2 || sb.len() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] {
            return Err(shape_err("matmul", format!("{sa:?} × {sb:?}")));
        }
        let (n, k, m) = (sa[r - 2], sa[r - 1], sb[r - 1]);
        let batch: usize = sa[..r - 2].iter().product();
        let (ad, bd) = (dense(a), dense(b));
        let mut out = vec![0f32; batch * n * m];
        let mut row = vec![0f64; m];
        for bi in 0..batch {
            let (ab, bb) = (&ad[bi * n * k..][..n * k], &bd[bi * k * m..][..k * m]);
            for i in 0..n {
                row.iter_mut().for_each(|v| *v = 0.0);
                for kk in 0..k {
                    let av = ab[i * k + kk] as f64;
                    for (r, &bv) in row.iter_mut().zip(&bb[kk * m..][..m]) {
                        *r += av * bv as f64;
                    }
                }
                out[(bi * n + i) * m..][..m].iter_mut().zip(&row).for_each(|(o, r)| *o = *r as f32);
            }
        }
        let mut shape = sa[..r - 2].to_vec();
        shape.extend([n, m]);
        array(shape, out)
    }

    fn softmax_last(&mut self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let m = *x.shape().last().ok_or_else(|| shape_err("softmax", "scalar input".into()))?;
        let mut d = dense(x);
        if m > 0 {
            for row in d.chunks_mut(m) {
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
                let s: f64 = e.iter().sum();
                row.iter_mut().zip(&e).for_each(|(r, e)| *r = (e / s) as f32);
            }
        }
        array(x.shape().to_vec(), d)
    }
}

/// Run the U-Net on arrays: `x` `[N, C_in, H, W]`, `cond` (if the net has one), `t` `[N]`.
pub fn unet_reference(
    cfg: &crate::unet::UNetConfig,
    weights: &Weights,
    x: &ArrayD<f32>,
    cond: Option<&ArrayD<f32>>,
    t: &ArrayD<f32>,
) -> Result<ArrayD<f32>> {
    crate::unet::unet_forward(&mut RefOps::new(weights), cfg, x, cond, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    fn arr(shape: &[usize], data: &[f32]) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).unwrap()
    }

    /// Each primitive on a case small enough to compute by hand.
    #[test]
    fn primitives_by_hand() {
        let w = Weights::new();
        let mut o = RefOps::new(&w);
        // 3×3 conv, pad 1, on a 2×2 image of ones with a kernel of ones: every output sees all 4 pixels.
        let x = arr(&[1, 1, 2, 2], &[1.0; 4]);
        let k = arr(&[1, 1, 3, 3], &[1.0; 9]);
        let y = o.conv2d(&x, &k, &arr(&[1], &[0.5]), 1, 1).unwrap();
        assert_eq!(dense(&y), vec![4.5; 4]);
        // Stride 2 on 4×4: outputs at (0,0),(0,2),(2,0),(2,2) centres.
        let x4 = arr(&[1, 1, 4, 4], &(0..16).map(|v| v as f32).collect::<Vec<_>>());
        let k1 = arr(&[1, 1, 3, 3], &[0., 0., 0., 0., 1., 0., 0., 0., 0.]);
        assert_eq!(dense(&o.conv2d(&x4, &k1, &arr(&[1], &[0.0]), 2, 1).unwrap()), vec![0., 2., 8., 10.]);
        // Linear: [1, 2]·[[1, 1], [2, −1]]ᵀ + [0, 1] = [3, 1].
        let l = o.linear(&arr(&[1, 2], &[1., 2.]), &arr(&[2, 2], &[1., 1., 2., -1.]), &arr(&[2], &[0., 1.])).unwrap();
        assert_eq!(dense(&l), vec![3., 1.]);
        // GroupNorm with one group of [1, 3]: mean 2, var 1 → ±1 (up to eps), then ·2 + 1.
        let g = o.group_norm(&arr(&[1, 2, 1, 1], &[1., 3.]), 1, 0.0, &arr(&[2], &[2., 2.]), &arr(&[2], &[1., 1.])).unwrap();
        assert_eq!(dense(&g), vec![-1., 3.]);
        // Upsample.
        let u = o.upsample_nearest2x(&arr(&[1, 1, 1, 2], &[1., 2.])).unwrap();
        assert_eq!(dense(&u), vec![1., 1., 2., 2., 1., 1., 2., 2.]);
        // Reshape with 0 and −1, transpose, matmul, softmax.
        let r = o.reshape(&arr(&[2, 6], &[0.0; 12]), &[0, 3, -1]).unwrap();
        assert_eq!(r.shape(), &[2, 3, 2]);
        let t = o.transpose(&arr(&[2, 3], &[1., 2., 3., 4., 5., 6.]), &[1, 0]).unwrap();
        assert_eq!(dense(&t), vec![1., 4., 2., 5., 3., 6.]);
        let m = o.matmul(&arr(&[1, 1, 2], &[1., 2.]), &arr(&[1, 2, 2], &[1., 0., 0., 1.])).unwrap();
        assert_eq!(dense(&m), vec![1., 2.]);
        let s = o.softmax_last(&arr(&[1, 2], &[0., 2f32.ln()])).unwrap();
        assert!((s[[0, 0]] - 1.0 / 3.0).abs() < 1e-7 && (s[[0, 1]] - 2.0 / 3.0).abs() < 1e-7);
        // Broadcasting add [2,1] + [3] → [2,3].
        let b = o.add(&arr(&[2, 1], &[0., 10.]), &arr(&[3], &[1., 2., 3.])).unwrap();
        assert_eq!(dense(&b), vec![1., 2., 3., 11., 12., 13.]);
        let s = o.silu(&arr(&[1], &[0.0])).unwrap();
        assert_eq!(dense(&s), vec![0.0]);
    }

    /// Shape errors are typed errors, not panics.
    #[test]
    fn shape_errors() {
        let w = Weights::new();
        let mut o = RefOps::new(&w);
        let a = arr(&[2, 3], &[0.0; 6]);
        assert!(o.add(&a, &arr(&[2], &[0.0; 2])).is_err());
        assert!(o.transpose(&a, &[0, 0]).is_err());
        assert!(o.reshape(&a, &[4, -1]).is_err());
        assert!(o.matmul(&a, &a).is_err());
        assert!(o.concat(&[&a, &arr(&[3, 3], &[0.0; 9])], 1).is_err());
        assert!(o.conv2d(&a, &a, &a, 1, 0).is_err());
        assert!(o.param("nope", &[1], Init::Zeros).is_err());
        // Empty spatial sizes give empty results, not a panic.
        let e = arr(&[1, 2, 0, 3], &[]);
        let g = arr(&[2], &[1.0, 1.0]);
        assert_eq!(o.group_norm(&e, 2, 1e-5, &g, &g).unwrap().shape(), &[1, 2, 0, 3]);
        assert_eq!(o.upsample_nearest2x(&e).unwrap().shape(), &[1, 2, 0, 6]);
    }

    /// The U-Net keeps the spatial size and rejects sizes that are not multiples of 2^(L−1).
    #[test]
    fn unet_shapes() {
        let cfg = crate::unet::UNetConfig::tiny(3, 2, 1);
        let w = Weights::for_unet(&cfg, 5, crate::weights::InitMode::Random).unwrap();
        let x = ArrayD::from_elem(IxDyn(&[2, 3, 4, 6]), 0.1f32);
        let c = ArrayD::from_elem(IxDyn(&[2, 2, 4, 6]), -0.2f32);
        let t = arr(&[2], &[0.3, 0.7]);
        let y = unet_reference(&cfg, &w, &x, Some(&c), &t).unwrap();
        assert_eq!(y.shape(), &[2, 1, 4, 6]);
        assert!(y.iter().all(|v| v.is_finite()));
        // Different t per sample → different outputs for equal images.
        assert!((y[[0, 0, 1, 1]] - y[[1, 0, 1, 1]]).abs() > 1e-6);
        let x5 = ArrayD::from_elem(IxDyn(&[2, 3, 5, 6]), 0.1f32);
        let c5 = ArrayD::from_elem(IxDyn(&[2, 2, 5, 6]), 0.1f32);
        assert!(matches!(unet_reference(&cfg, &w, &x5, Some(&c5), &t), Err(Error::Shape(_))));
    }
}
