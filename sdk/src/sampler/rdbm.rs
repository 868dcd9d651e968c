//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize, eps_form: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , eps_form);
    Err(Error::incompatible("rdbm", "any", "not implemented yet"))
}
