//! Package metadata → the family and the sampler, through the one registry
//! ([`crate::family::registry`]).

use super::package::PackageMeta;
use crate::Result;
use crate::family::Family;
use crate::family::registry::{self, FamilyArgs, Knob, Knobs};
use crate::sampler::Sampler;

pub use crate::family::registry::{I3SB_DEFAULT_ETA, SAMPLER_NAMES, sampler_label};

/// A sampler from its name and knobs: `eta` (DBIM, implicit: in [0, 1], default 0; I3SB: ≥ 0,
/// default [`I3SB_DEFAULT_ETA`]) and `churn` (Heun; default 0). A knob the sampler does not have
/// is an error rather than silently ignored. DBMSolver's options are spelled in the name
/// (`dbmsolver[-time][-sde2]`: λ-midpoint unless `-time`, sde_order 1 unless `-sde2`).
pub fn parse_sampler(name: &str, eta: Option<f64>, churn: Option<f64>) -> Result<Sampler> {
    registry::parse_sampler(name, &Knobs { eta, churn })
}

/// The package's default sampler (`bridge.sampler` + `bridge.sampler_params`).
pub fn default_sampler(meta: &PackageMeta) -> Result<Sampler> {
    let f = |k: Knob| meta.sampler_params.get(k.name()).and_then(serde_json::Value::as_f64);
    parse_sampler(&meta.sampler, f(Knob::Eta), f(Knob::Churn))
}

/// The family a package describes, built with the family's own constructor from
/// `bridge.family`, `bridge.schedule`, `bridge.parameterization` and `bridge.family_params`.
/// A family, schedule or parameterization the SDK does not know — or a combination the family
/// rejects — is an error naming the package key. Parameters and defaults per family are listed
/// in `docs/model-package.md`.
pub fn build_family(meta: &PackageMeta) -> Result<Box<dyn Family>> {
    registry::build_family(&FamilyArgs {
        family: &meta.family,
        schedule: &meta.schedule,
        parameterization: &meta.parameterization,
        params: &meta.family_params,
        has_mean_network: meta.mean_network.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// Every listed name parses, and its label parses back to the same sampler.
    #[test]
    fn names_round_trip() {
        for n in SAMPLER_NAMES {
            let s = parse_sampler(n, None, None).unwrap();
            let label = sampler_label(&s);
            let base = label.split(' ').next().unwrap();
            assert_eq!(parse_sampler(base, None, None).unwrap(), s, "{n} → {label}");
        }
        assert_eq!(parse_sampler("DBIM", Some(0.5), None).unwrap(), Sampler::Dbim { eta: 0.5, order: 1 });
        assert_eq!(parse_sampler("heun", None, Some(0.33)).unwrap(), Sampler::Heun { churn: 0.33 });
        use crate::sampler::dbmsolver::Midpoint;
        assert_eq!(parse_sampler("dbmsolver", None, None).unwrap(), Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 });
        assert_eq!(
            parse_sampler("DBMSolver-time-sde2", None, None).unwrap(),
            Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 2 }
        );
        assert_eq!(parse_sampler("i3sb", None, None).unwrap(), Sampler::I3sb { eta: I3SB_DEFAULT_ETA, ot_ode: false });
        // η > 1 is I3SB's clamp branch.
        assert_eq!(parse_sampler("i3sb-ot-ode", Some(1.4), None).unwrap(), Sampler::I3sb { eta: 1.4, ot_ode: true });
        let label = sampler_label(&Sampler::I3sb { eta: 1.4, ot_ode: false });
        assert_eq!(label, "i3sb (eta 1.4)");
    }

    #[test]
    fn new_sampler_knobs_are_checked() {
        assert!(matches!(parse_sampler("i3sb", Some(-0.1), None), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("i3sb", Some(f64::NAN), None), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("i3sb", None, Some(0.1)), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("dbmsolver", Some(0.5), None), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("dbmsolver-sde3", None, None), Err(Error::UnknownSampler(_))));
    }

    fn meta(family: &str, schedule: &str, par: &str, params: serde_json::Value) -> PackageMeta {
        let mut m = PackageMeta::new(family, schedule, par, "implicit", 10);
        m.family_params = params.as_object().cloned().unwrap_or_default();
        m
    }

    /// Packages map to the families' own constructors, with defaults and overrides.
    #[test]
    fn families_from_metadata() {
        use serde_json::json;
        let f = build_family(&meta("i2sb", "i2sb-symmetric", "i2sb", json!({"beta_max": 0.3, "interval": 1000}))).unwrap();
        assert_eq!(f.name(), "i2sb");
        for (fam, sched, par) in [("ddbm-vp", "vp", "ddbm-precond"), ("ddbm-ve", "ve", "ddbm-precond"), ("dbim-i2sb", "i2sb", "i2sb")] {
            assert_eq!(build_family(&meta(fam, sched, par, json!({"clip": true}))).unwrap().name(), fam);
        }
        let f = build_family(&meta("ddbm-ve", "ve", "ddbm-precond", json!({"sigma_max": 40.0}))).unwrap();
        assert_eq!(f.downcast::<crate::family::ddbm::Ddbm>().unwrap().t_max(), 40.0);
        let f = build_family(&meta("goub", "cosine", "eps", json!({}))).unwrap();
        assert_eq!(f.name(), "goub");
        let f = build_family(&meta("unidb", "cosine", "eps", json!({"gamma_inv": 1e-7, "t_max": 100}))).unwrap();
        assert_eq!(f.name(), "unidb");
        let f = build_family(&meta("rdbm", "cosine", "x0", json!({"lamb": 1e-4}))).unwrap();
        let r = f.downcast::<crate::family::rdbm::Rdbm>().unwrap();
        assert_eq!(r.objective(), crate::family::rdbm::Objective::PredXStart);
        let f = build_family(&meta("rdbm", "cosine", "eps", json!({}))).unwrap();
        assert_eq!(f.downcast::<crate::family::rdbm::Rdbm>().unwrap().objective(), crate::family::rdbm::Objective::PredNoise);
        let f = build_family(&meta("nadb", "nadb", "drift", json!({"d": 1.0}))).unwrap();
        let n = f.downcast::<crate::family::nadb::Nadb>().unwrap();
        assert_eq!((n.d(), n.out_scale()), (1.0, 1.0));
    }

    /// Unknown, contradictory or out-of-domain metadata is an error naming the key.
    #[test]
    fn contradictory_family_metadata() {
        use serde_json::json;
        let cases = [
            meta("goub", "cosine", "x0", json!({})),
            meta("goub", "karras", "eps", json!({})),
            meta("goub", "cosine", "eps", json!({"gamma_inv": 1e-7})),
            meta("goub", "cosine", "eps", json!({"lambda_square": "30"})),
            meta("goub", "cosine", "eps", json!({"eps": 2.0})),
            meta("unidb", "cosine", "eps", json!({})),
            meta("unidb", "cosine", "eps", json!({"gamma_inv": 0.0})),
            meta("rdbm", "cosine", "v", json!({})),
            meta("rdbm", "cosine", "x0", json!({"residual_eta": 3.0})),
            meta("nadb", "nadb", "drift", json!({"mean_network": true})),
            meta("nadb", "nadb", "drift", json!({"d": 0.1})),
            meta("nadb", "nadb", "drift", json!({"alpha": 1.5})),
            meta("i2sb", "karras", "i2sb", json!({})),
            meta("i2sb", "i2sb-symmetric", "x0", json!({})),
            meta("i2sb", "i2sb-symmetric", "i2sb", json!({"interval": 7})),
            meta("ddbm-vp", "ve", "ddbm-precond", json!({})),
            meta("ddbm-ve", "ve", "ddbm-precond", json!({"beta_d": 2.0})),
            meta("dbim-i2sb", "i2sb", "ddbm-precond", json!({})),
            meta("nope", "x", "y", json!({})),
        ];
        for m in cases {
            let e = build_family(&m).unwrap_err();
            assert!(matches!(e, Error::InvalidParam { .. } | Error::UnknownFamily(_)), "{m:?}: {e}");
        }
    }

    #[test]
    fn bad_knobs_are_errors() {
        assert!(matches!(parse_sampler("nope", None, None), Err(Error::UnknownSampler(_))));
        assert!(matches!(parse_sampler("heun", Some(0.1), None), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("dbim", None, Some(0.1)), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("dbim", Some(1.5), None), Err(Error::InvalidParam { .. })));
        assert!(matches!(parse_sampler("dbim", Some(f64::NAN), None), Err(Error::InvalidParam { .. })));
    }
}
