//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , sde);
    Err(Error::incompatible("euler", "any", "not implemented yet"))
}
