//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize, eta: f64, order: u8, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , eta, order);
    Err(Error::incompatible("dbim", "any", "not implemented yet"))
}
