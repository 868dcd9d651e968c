//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize, churn: f64, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , churn);
    Err(Error::incompatible("heun", "any", "not implemented yet"))
}
