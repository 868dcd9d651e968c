//! Fallible allocation for buffers whose size comes from the input (image sizes, tile sizes).
//!
//! Rust's ordinary allocation aborts the process when the allocator refuses; a host that caps
//! its memory (`RLIMIT_AS`, a container limit) would lose the whole process to one large frame.
//! Every buffer sized by input goes through here instead, and a refusal becomes
//! [`Error::OutOfMemory`].

use crate::{Error, Result};
use ndarray::{Array, Dimension, ShapeBuilder};

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
}
