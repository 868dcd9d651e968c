//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn sample(model: &mut Model<'_>, nfe: usize, ot_ode: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , ot_ode);
    Err(Error::incompatible("i2sb", "any", "not implemented yet"))
}
