//! (scaffold: to be implemented)
use super::{GoldenFile, Replayed};
use crate::{Error, Result};

pub(super) fn replay(g: &GoldenFile) -> Result<Replayed> {
    Err(Error::Golden(format!("{}: replay not implemented yet", g.name)))
}
