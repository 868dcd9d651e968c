//! (scaffold: to be implemented)
use super::Model;
use crate::rng::NoiseSource;
use crate::{Error, Result, Tensor};

/// (scaffold)
pub fn data_solver_1(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , sde);
    Err(Error::incompatible("data-solver-1", "any", "not implemented yet"))
}
/// (scaffold)
pub fn data_solver_2(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , sde);
    Err(Error::incompatible("data-solver-2", "any", "not implemented yet"))
}
/// (scaffold)
pub fn noise_solver_1(model: &mut Model<'_>, nfe: usize, sde: bool, noise: &mut dyn NoiseSource) -> Result<Tensor> {
    let _ = (model, nfe, noise , sde);
    Err(Error::incompatible("noise-solver-1", "any", "not implemented yet"))
}
