//! Optional colour correction of a restored image: keep the restoration's detail, take the
//! low frequencies (overall colour and brightness) from the input.
//!
//! Why: a restorer trained on few photographs can shift colours (a red cast, tinted grey
//! photos). The degraded input is blurred, noisy or blocky, but its coarse colours are right,
//! so replacing the output's coarsest wavelet band with the input's removes a cast without
//! touching edges and texture. This is a post-process the user turns on
//! ([`crate::restorer::RestorerBuilder::color_fix`]); it is not how the demo models are meant to
//! get their colours right (that is training's job), and it also undoes any real colour
//! change the model should make (e.g. a colour-cast removal model), so it is off by default.
//!
//! The low band is an à trous ("with holes") wavelet decomposition: `levels` passes of the
//! separable B-spline kernel `[1, 2, 1] / 4` with dilation 1, 2, 4, …, borders clamped. Since the
//! blur is linear, `high(out) + low(in) = out + low(in − out)`: one blurred difference image.
//! The result depends only on the two whole frames, never on tiles or threads.

use crate::{Result, Tensor, TensorView};
use ndarray::{Axis, Zip};

/// Colour correction after restoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorFix {
    /// The network's colours (default).
    #[default]
    Off,
    /// Take the input's lowest wavelet band: `levels` à trous passes (coarsest scale
    /// ≈ 2^levels pixels; 5 ≈ 32 px).
    Wavelet {
        /// Number of passes, 1 to [`ColorFix::MAX_LEVELS`].
        levels: u32,
    },
}

impl ColorFix {
    /// The default number of wavelet levels.
    pub const DEFAULT_LEVELS: u32 = 5;
    /// The largest number of levels (dilation 2^15: beyond any image side we accept).
    pub const MAX_LEVELS: u32 = 16;

    /// Parse `off`, `wavelet` or `wavelet:N`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || crate::Error::param("color fix", format!("`{s}`: expected off, wavelet or wavelet:LEVELS (1–{})", Self::MAX_LEVELS));
        match s.split_once(':') {
            None if s == "off" || s == "none" => Ok(ColorFix::Off),
            None if s == "wavelet" => Ok(ColorFix::Wavelet { levels: Self::DEFAULT_LEVELS }),
            Some(("wavelet", n)) => {
                let levels: u32 = n.parse().map_err(|_| bad())?;
                if levels == 0 || levels > Self::MAX_LEVELS {
                    return Err(bad());
                }
                Ok(ColorFix::Wavelet { levels })
            }
            _ => Err(bad()),
        }
    }

    /// Correct `out` (`[B, C, H, W]`) towards `reference` (same shape) in place.
    pub fn apply(self, out: &mut Tensor, reference: TensorView<'_>) -> Result<()> {
        let ColorFix::Wavelet { levels } = self else { return Ok(()) };
        if out.shape() != reference.shape() {
            return Err(crate::Error::shape("colour-fix reference", out.shape(), reference.shape()));
        }
        if levels == 0 || levels > Self::MAX_LEVELS {
            return Err(crate::Error::param("color fix levels", format!("{levels} is not in 1–{}", Self::MAX_LEVELS)));
        }
        // d = in − out, blurred `levels` times, added back.
        let mut d = crate::alloc::try_copy(reference, "the colour-fix difference")?;
        d -= &*out;
        let (_, _, h, w) = d.dim();
        let mut line = crate::alloc::try_vec(h.max(w), 0f32, "a colour-fix line")?;
        for level in 0..levels {
            let step = 1usize << level;
            for mut img in d.outer_iter_mut() {
                for mut plane in img.outer_iter_mut() {
                    for axis in [Axis(1), Axis(0)] {
                        for mut lane in plane.lanes_mut(axis) {
                            let n = lane.len();
                            let src = &mut line[..n];
                            src.iter_mut().zip(lane.iter()).for_each(|(s, v)| *s = *v);
                            for (i, v) in lane.iter_mut().enumerate() {
                                let (a, c) = (src[i.saturating_sub(step)], src[(i + step).min(n - 1)]);
                                *v = 0.25 * (a + 2.0 * src[i] + c);
                            }
                        }
                    }
                }
            }
        }
        Zip::from(out).and(&d).for_each(|o, &dv| *o += dv);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn image(seed: u32, h: usize, w: usize) -> Tensor {
        Array4::from_shape_fn((1, 3, h, w), |(_, c, y, x)| {
            let v = (seed as usize * 7919 + c * 104729 + y * 31 + x * 17) % 1000;
            v as f32 / 1000.0
        })
    }

    #[test]
    fn a_constant_cast_is_removed_and_detail_kept() {
        let truth = image(1, 48, 40);
        // The output: the truth plus a colour cast (+0.1 red, −0.05 blue); the reference:
        // a blurred truth (right colours, no detail).
        let mut out = truth.clone();
        out.index_axis_mut(Axis(1), 0).mapv_inplace(|v| v + 0.1);
        out.index_axis_mut(Axis(1), 2).mapv_inplace(|v| v - 0.05);
        let mut blurred = truth.clone();
        ColorFix::Wavelet { levels: 3 }.apply(&mut blurred, Array4::zeros(truth.dim()).view()).unwrap();
        // `blurred` is now truth − low(truth): rebuild low(truth) as truth − that.
        let low = &truth - &blurred;
        ColorFix::Wavelet { levels: 5 }.apply(&mut out, low.view()).unwrap();
        for c in 0..3 {
            let mean: f32 = (&out.index_axis(Axis(1), c) - &truth.index_axis(Axis(1), c)).mean().unwrap();
            assert!(mean.abs() < 2e-3, "channel {c}: mean error {mean} after the fix");
        }
        // Detail (the truth's fine structure) survives: the fixed output is much closer to the
        // truth than the detail-free reference is.
        let err = |a: &Tensor| (a - &truth).mapv(|v| v * v).mean().unwrap();
        assert!(err(&out) < 0.1 * err(&low), "fixed {} vs reference {}", err(&out), err(&low));
    }

    #[test]
    fn equal_images_and_off_are_unchanged() {
        let x = image(2, 20, 33);
        let mut y = x.clone();
        ColorFix::Wavelet { levels: 5 }.apply(&mut y, x.view()).unwrap();
        assert_eq!(y, x);
        let mut z = x.clone();
        ColorFix::Off.apply(&mut z, image(3, 20, 33).view()).unwrap();
        assert_eq!(z, x);
    }

    #[test]
    fn parse_and_errors() {
        assert_eq!(ColorFix::parse("off").unwrap(), ColorFix::Off);
        assert_eq!(ColorFix::parse("wavelet").unwrap(), ColorFix::Wavelet { levels: 5 });
        assert_eq!(ColorFix::parse("wavelet:3").unwrap(), ColorFix::Wavelet { levels: 3 });
        for bad in ["wavelet:0", "wavelet:17", "wavelet:x", "fft", ""] {
            assert!(ColorFix::parse(bad).is_err(), "{bad}");
        }
        let mut x = image(1, 8, 8);
        assert!(ColorFix::Wavelet { levels: 2 }.apply(&mut x, image(1, 8, 9).view()).is_err());
        // A one-pixel image: every neighbour is the pixel itself.
        let mut one = image(1, 1, 1);
        ColorFix::Wavelet { levels: 5 }.apply(&mut one, Array4::zeros((1, 3, 1, 1)).view()).unwrap();
        assert!(one.iter().all(|v| *v == 0.0));
    }
}
