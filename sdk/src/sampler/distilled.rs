//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize,  noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise );
    Err(Error::incompatible("distilled", "any", "not implemented yet"))
}
