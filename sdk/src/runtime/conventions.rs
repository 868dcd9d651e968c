//! Checks of the conventions a package exported from an official repository declares, against
//! the family and sampler it will run with: the time input's meaning (`bridge.time_input`),
//! the class label of a class-conditional network, a distilled generator's noise input.

use super::package::{PackageMeta, TimeInput};
use crate::family::Family;
use crate::family::gou::Gou;
use crate::family::i2sb::I2sb;
use crate::family::nadb::Nadb;
use crate::family::rdbm::Rdbm;
use crate::sampler::Sampler;
use crate::{Error, Result};

/// Whether the family's time axis is an integer step index (I2SB's `n`, GOUB/UniDB/RDBM's `t`,
/// NADB's `n`), which `bridge.time_input = index` feeds. DDBM/DBIM time is continuous.
pub fn has_step_index(family: &dyn Family) -> bool {
    family.downcast::<I2sb>().is_some()
        || family.downcast::<Gou>().is_some()
        || family.downcast::<Rdbm>().is_some()
        || family.downcast::<Nadb>().is_some()
}

/// `bridge.time_input = index` needs a family with integer steps.
pub fn check_time_input(meta: &PackageMeta, family: &dyn Family, path: &str) -> Result<()> {
    if meta.time_input == TimeInput::Index && !has_step_index(family) {
        return Err(Error::Package {
            path: path.to_string(),
            reason: format!(
                "bridge.time_input = index, but family `{}` has a continuous time axis with no step index; \
                 export the network to take the time value (bridge.time_input = value)",
                family.name()
            ),
        });
    }
    Ok(())
}

/// The label fed to a `class` input: the caller's, else the package's `bridge.class_label`.
/// A class input without either, or a label for a network without a class input, is an error.
pub fn class_label(meta: &PackageMeta, given: Option<i64>) -> Result<Option<i64>> {
    match (&meta.io.class, given.or(meta.class_label)) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::param("class label", "the network takes no class label (no input has role class)")),
        (Some(name), None) => Err(Error::param(
            "class label",
            format!(
                "the network is class-conditional (input `{name}`) and the package sets no bridge.class_label: give a label (--class N, RestorerBuilder::class_label)"
            ),
        )),
        (Some(_), Some(n)) if n < 0 => Err(Error::param("class label", format!("{n} is negative"))),
        (Some(_), Some(n)) => Ok(Some(n)),
    }
}

/// A generator noise input is fed only by the distilled sampler.
pub fn check_noise_input(noise_channels: usize, sampler: &Sampler, family: &dyn Family) -> Result<()> {
    if noise_channels > 0 && *sampler != Sampler::Distilled {
        return Err(Error::incompatible(
            sampler.name(),
            family.name(),
            format!("the network is a distilled generator with {noise_channels} noise channels; run it with the distilled sampler"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::ddbm::{Ddbm, DdbmParams};
    use crate::family::i2sb::I2sbParams;

    #[test]
    fn index_time_needs_integer_steps() {
        let mut m = PackageMeta::new("i2sb", "i2sb-symmetric", "i2sb", "i2sb", 10);
        m.time_input = TimeInput::Index;
        let i2sb = I2sb::new(I2sbParams::default()).unwrap();
        assert!(check_time_input(&m, &i2sb, "p").is_ok());
        for p in [DdbmParams::vp(), DdbmParams::ve()] {
            let f = Ddbm::new(p).unwrap();
            assert!(matches!(check_time_input(&m, &f, "p"), Err(Error::Package { .. })), "{}", f.name());
            m.time_input = TimeInput::Value;
            assert!(check_time_input(&m, &f, "p").is_ok());
            m.time_input = TimeInput::Index;
        }
    }

    #[test]
    fn class_labels() {
        let mut m = PackageMeta::new("i2sb", "i2sb-symmetric", "i2sb", "i2sb", 10);
        assert_eq!(class_label(&m, None).unwrap(), None);
        assert!(matches!(class_label(&m, Some(3)), Err(Error::InvalidParam { .. })));
        m.io.class = Some("label".into());
        assert!(matches!(class_label(&m, None), Err(Error::InvalidParam { .. })));
        assert!(matches!(class_label(&m, Some(-2)), Err(Error::InvalidParam { .. })));
        assert_eq!(class_label(&m, Some(7)).unwrap(), Some(7));
        m.class_label = Some(1);
        assert_eq!(class_label(&m, None).unwrap(), Some(1));
        assert_eq!(class_label(&m, Some(9)).unwrap(), Some(9));
    }
}
