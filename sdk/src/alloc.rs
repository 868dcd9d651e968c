//! Fallible allocation for buffers whose size comes from the input (image sizes, tile sizes).
//!
//! Rust's ordinary allocation aborts the process when the allocator refuses; a host that caps
//! its memory (`RLIMIT_AS`, a container limit) would lose the whole process to one large frame.
//! Every buffer sized by input goes through here instead, and a refusal becomes
//! [`Error::OutOfMemory`]. The copies and maps here replace `to_owned`, `clone`, `mapv` and
//! `as_standard_layout` on frame-sized tensors.

use crate::{Error, Result};
use ndarray::{Array, ArrayView, CowArray, Dimension, ShapeBuilder};

/// A vector of `n` copies of `fill`, or [`Error::OutOfMemory`] (also when `n` elements of `T`
/// overflow the address space). `what` names the buffer in the message.
pub fn try_vec<T: Clone>(n: usize, fill: T, what: &str) -> Result<Vec<T>> {
    let bytes = n.saturating_mul(std::mem::size_of::<T>());
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::OutOfMemory { what: what.to_string(), bytes })?;
    v.resize(n, fill);
    Ok(v)
}

/// A zero-filled (`A::default()`) array of `shape`, or [`Error::OutOfMemory`].
pub fn try_zeros<A: Clone + Default, D: Dimension, Sh: ShapeBuilder<Dim = D>>(shape: Sh, what: &str) -> Result<Array<A, D>> {
    let shape = shape.into_shape_with_order();
    let n = shape.raw_dim().slice().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let n = n.ok_or_else(|| Error::OutOfMemory { what: what.to_string(), bytes: usize::MAX })?;
    let v = try_vec(n, A::default(), what)?;
    Array::from_shape_vec(shape, v).map_err(|e| Error::OutOfMemory { what: format!("{what} ({e})"), bytes: usize::MAX })
}

/// The error for a refused request of `bytes` bytes.
fn refused(what: &str, bytes: usize) -> Error {
    Error::OutOfMemory { what: what.to_string(), bytes }
}

/// `f` of every element of `src`, in logical order, into a new standard-layout array, or
/// [`Error::OutOfMemory`]. Elementwise like `mapv` (the same `f` gives the same bits), but the
/// buffer is reserved fallibly and filled in one pass.
pub fn try_map<A, B, D: Dimension>(src: ArrayView<'_, A, D>, f: impl FnMut(&A) -> B, what: &str) -> Result<Array<B, D>> {
    let n = src.len();
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| refused(what, n.saturating_mul(std::mem::size_of::<B>())))?;
    v.extend(src.iter().map(f));
    Array::from_shape_vec(src.raw_dim(), v).map_err(|e| refused(&format!("{what} ({e})"), usize::MAX))
}

/// A standard-layout copy of `src` (`to_owned`, `clone`), or [`Error::OutOfMemory`].
pub fn try_copy<A: Clone, D: Dimension>(src: ArrayView<'_, A, D>, what: &str) -> Result<Array<A, D>> {
    if let Some(s) = src.as_slice() {
        let mut v = Vec::new();
        v.try_reserve_exact(s.len()).map_err(|_| refused(what, std::mem::size_of_val(s)))?;
        v.extend_from_slice(s);
        return Array::from_shape_vec(src.raw_dim(), v).map_err(|e| refused(&format!("{what} ({e})"), usize::MAX));
    }
    try_map(src, A::clone, what)
}

/// A copy of `src` (`to_vec`), or [`Error::OutOfMemory`].
pub fn try_to_vec<T: Clone>(src: &[T], what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len()).map_err(|_| refused(what, std::mem::size_of_val(src)))?;
    v.extend_from_slice(src);
    Ok(v)
}

/// `src` itself when it is in standard layout, else a standard-layout copy
/// (`as_standard_layout`), or [`Error::OutOfMemory`].
pub fn try_standard<'a, A: Clone, D: Dimension>(src: ArrayView<'a, A, D>, what: &str) -> Result<CowArray<'a, A, D>> {
    if src.is_standard_layout() { Ok(src.into()) } else { Ok(try_copy(src, what)?.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_allocations_are_errors() {
        // More bytes than any address space: the allocator refuses without touching memory.
        let e = try_vec(usize::MAX / 2, 0u32, "huge").unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { ref what, bytes } if what == "huge" && bytes == usize::MAX), "{e}");
        let e = try_zeros::<f32, _, _>((1usize << 40, 1usize << 40, 1, 1), "overflowing shape").unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { .. }), "{e}");
        let z = try_zeros::<f32, _, _>((1, 3, 2, 5), "small").unwrap();
        assert_eq!(z.shape(), &[1, 3, 2, 5]);
        assert!(z.iter().all(|&v| v == 0.0));
        assert_eq!(try_vec(4, 7u8, "v").unwrap(), vec![7; 4]);
    }

    /// The copies and maps agree with ndarray's `to_owned`/`mapv`, for strided views too, and
    /// come back in standard layout.
    #[test]
    fn copies_and_maps_match_ndarray() {
        let a = ndarray::Array4::from_shape_fn((2, 3, 4, 5), |(b, c, y, x)| (b * 60 + c * 20 + y * 5 + x) as f32 * 0.37 - 9.0);
        let mut flipped = a.view();
        flipped.invert_axis(ndarray::Axis(1));
        let strided = a.slice(ndarray::s![.., .., 1..3, ..;2]);
        for v in [a.view(), flipped, strided] {
            let c = try_copy(v, "copy").unwrap();
            assert_eq!(c, v.to_owned());
            assert!(c.is_standard_layout());
            let m = try_map(v, |&x| 0.5 * x - 1.25, "map").unwrap();
            assert_eq!(m, v.mapv(|x| 0.5 * x - 1.25));
            assert!(m.is_standard_layout());
            let s = try_standard(v, "std").unwrap();
            assert_eq!(s.view(), v);
            assert!(s.is_standard_layout());
            assert_eq!(s.is_view(), v.is_standard_layout());
        }
    }
}
