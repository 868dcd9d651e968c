//! Package metadata → the family (through the families' own constructors) and the sampler.

use super::package::PackageMeta;
use crate::family::Family;
use crate::sampler::Sampler;
use crate::{Error, Result};

/// Sampler names accepted by [`parse_sampler`] (the CLI's `--sampler`, `bridge.sampler`).
pub const SAMPLER_NAMES: [&str; 26] = [
    "i2sb",
    "i2sb-ot-ode",
    "heun",
    "dbim",
    "dbim-2",
    "dbim-3",
    "implicit",
    "euler-sde",
    "mean-ode",
    "data-solver-1",
    "data-solver-1-ode",
    "data-solver-2",
    "data-solver-2-ode",
    "noise-solver-1",
    "noise-solver-1-ode",
    "rdbm",
    "rdbm-eps",
    "nadb",
    "distilled",
    "ddim",
    "dbmsolver",
    "dbmsolver-time",
    "dbmsolver-sde2",
    "dbmsolver-time-sde2",
    "i3sb",
    "i3sb-ot-ode",
];

/// I3SB's η when none is given: the official `scripts/sample.sh` value (its CLI default is 1).
pub const I3SB_DEFAULT_ETA: f64 = 0.6;

/// A sampler from its name and knobs: `eta` (DBIM, implicit: in [0, 1], default 0; I3SB: ≥ 0,
/// default [`I3SB_DEFAULT_ETA`]) and `churn` (Heun; default 0). A knob the sampler does not have
/// is an error rather than silently ignored. DBMSolver's options are spelled in the name
/// (`dbmsolver[-time][-sde2]`: λ-midpoint unless `-time`, sde_order 1 unless `-sde2`).
pub fn parse_sampler(name: &str, eta: Option<f64>, churn: Option<f64>) -> Result<Sampler> {
    let name = name.trim().to_ascii_lowercase();
    let takes_eta = matches!(name.as_str(), "dbim" | "implicit" | "ddim" | "i3sb" | "i3sb-ot-ode");
    let takes_churn = name == "heun";
    if eta.is_some() && !takes_eta {
        return Err(Error::param("eta", format!("sampler `{name}` has no η (dbim, implicit and i3sb have)")));
    }
    if churn.is_some() && !takes_churn {
        return Err(Error::param("churn", format!("sampler `{name}` has no churn (heun has)")));
    }
    if name.starts_with("i3sb") {
        // η > 1 is I3SB's clamp branch, not an error.
        let eta = eta.unwrap_or(I3SB_DEFAULT_ETA);
        crate::sampler::i3sb::check_eta(eta)?;
        return Ok(Sampler::I3sb { eta, ot_ode: name == "i3sb-ot-ode" });
    }
    let eta = eta.unwrap_or(0.0);
    let churn = churn.unwrap_or(0.0);
    if !eta.is_finite() || !(0.0..=1.0).contains(&eta) {
        return Err(Error::param("eta", format!("{eta} is outside [0, 1]")));
    }
    if !churn.is_finite() || !(0.0..1.0).contains(&churn) {
        return Err(Error::param("churn", format!("{churn} is outside [0, 1) (the reference requires churn < 1)")));
    }
    Ok(match name.as_str() {
        "i2sb" => Sampler::I2sb { ot_ode: false },
        "i2sb-ot-ode" => Sampler::I2sb { ot_ode: true },
        "heun" => Sampler::Heun { churn },
        "dbim" => Sampler::Dbim { eta, order: 1 },
        "dbim-2" | "dbim-3" => {
            // DBIM's high-order samplers are deterministic (η = 0).
            Sampler::Dbim { eta: 0.0, order: if name == "dbim-2" { 2 } else { 3 } }
        }
        "implicit" | "ddim" => Sampler::Implicit { eta },
        "euler-sde" => Sampler::Euler { sde: true },
        "mean-ode" => Sampler::Euler { sde: false },
        "data-solver-1" => Sampler::DataSolver1 { sde: true },
        "data-solver-1-ode" => Sampler::DataSolver1 { sde: false },
        "data-solver-2" => Sampler::DataSolver2 { sde: true },
        "data-solver-2-ode" => Sampler::DataSolver2 { sde: false },
        "noise-solver-1" => Sampler::NoiseSolver1 { sde: true },
        "noise-solver-1-ode" => Sampler::NoiseSolver1 { sde: false },
        "rdbm" => Sampler::Rdbm { eps_form: false },
        "rdbm-eps" => Sampler::Rdbm { eps_form: true },
        "nadb" => Sampler::Nadb,
        "distilled" => Sampler::Distilled,
        "dbmsolver" | "dbmsolver-time" | "dbmsolver-sde2" | "dbmsolver-time-sde2" => {
            use crate::sampler::dbmsolver::Midpoint;
            let midpoint = if name.contains("-time") { Midpoint::Time } else { Midpoint::Lambda };
            Sampler::Dbmsolver { midpoint, sde_order: if name.ends_with("-sde2") { 2 } else { 1 } }
        }
        _ => return Err(Error::UnknownSampler(format!("{name} (known: {})", SAMPLER_NAMES.join(", ")))),
    })
}

/// The name [`parse_sampler`] reads back, with its knobs (for logs and `bridge info`).
pub fn sampler_label(s: &Sampler) -> String {
    match *s {
        Sampler::Heun { churn } => format!("heun (churn {churn})"),
        Sampler::Dbim { eta, order: 1 } => format!("dbim (eta {eta})"),
        Sampler::Dbim { order, .. } => format!("dbim-{order}"),
        Sampler::Implicit { eta } => format!("implicit (eta {eta})"),
        Sampler::DataSolver1 { sde: false } => "data-solver-1-ode".into(),
        Sampler::DataSolver2 { sde: false } => "data-solver-2-ode".into(),
        Sampler::NoiseSolver1 { sde: false } => "noise-solver-1-ode".into(),
        Sampler::Rdbm { eps_form: true } => "rdbm-eps".into(),
        Sampler::I3sb { eta, .. } => format!("{} (eta {eta})", s.name()),
        ref other => other.name().to_string(),
    }
}

/// The package's default sampler (`bridge.sampler` + `bridge.sampler_params`).
pub fn default_sampler(meta: &PackageMeta) -> Result<Sampler> {
    let f = |k: &str| meta.sampler_params.get(k).and_then(serde_json::Value::as_f64);
    parse_sampler(&meta.sampler, f("eta"), f("churn"))
}

/// Typed access to `bridge.family_params`; every key must be read (unknown keys are errors).
struct Params<'a> {
    map: &'a serde_json::Map<String, serde_json::Value>,
    used: Vec<&'static str>,
}

impl<'a> Params<'a> {
    fn new(meta: &'a PackageMeta) -> Self {
        Params { map: &meta.family_params, used: Vec::new() }
    }
    fn bad(key: &str, want: &str, v: &serde_json::Value) -> Error {
        Error::param(format!("bridge.family_params.{key}"), format!("expected {want}, got {v}"))
    }
    fn f64(&mut self, key: &'static str, default: f64) -> Result<f64> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| Self::bad(key, "a finite number", v)),
        }
    }
    fn f64_req(&mut self, key: &'static str) -> Result<f64> {
        if !self.map.contains_key(key) {
            return Err(Error::param(format!("bridge.family_params.{key}"), "required for this family"));
        }
        self.f64(key, 0.0)
    }
    fn usize(&mut self, key: &'static str, default: usize) -> Result<usize> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| Self::bad(key, "a non-negative integer", v)),
        }
    }
    fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| Self::bad(key, "true or false", v)),
        }
    }
    fn value(&mut self, key: &'static str) -> Option<&'a serde_json::Value> {
        self.used.push(key);
        self.map.get(key)
    }
    /// Error on keys the family did not read.
    fn finish(self, family: &str) -> Result<()> {
        for k in self.map.keys() {
            if !self.used.contains(&k.as_str()) {
                return Err(Error::param(
                    format!("bridge.family_params.{k}"),
                    format!("not a parameter of family `{family}` (known: {})", self.used.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn expect(meta: &PackageMeta, key: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::param(
            format!("bridge.{key}"),
            format!("`{value}` is not valid for family `{}` (expected one of: {})", meta.family, allowed.join(", ")),
        ))
    }
}

/// The family a package describes, built with the family's own constructor from
/// `bridge.family`, `bridge.schedule`, `bridge.parameterization` and `bridge.family_params`.
/// A family, schedule or parameterization the SDK does not know — or a combination the family
/// rejects — is an error naming the package key. Parameters and defaults per family are listed
/// in `docs/model-package.md`.
pub fn build_family(meta: &PackageMeta) -> Result<Box<dyn Family>> {
    use crate::family::{ddbm, gou, i2sb, nadb, rdbm};
    let (sched, par) = (meta.schedule.as_str(), meta.parameterization.as_str());
    let mut p = Params::new(meta);
    let fam: Box<dyn Family> = match meta.family.as_str() {
        "i2sb" => {
            expect(meta, "schedule", sched, &["i2sb-symmetric"])?;
            expect(meta, "parameterization", par, &["i2sb"])?;
            let d = i2sb::I2sbParams::default();
            let params = i2sb::I2sbParams {
                interval: p.usize("interval", d.interval)?,
                beta_max: p.f64("beta_max", d.beta_max)?,
                t0: p.f64("t0", d.t0)?,
                t_end: p.f64("t_end", d.t_end)?,
                clip: p.bool("clip", d.clip)?,
            };
            Box::new(i2sb::I2sb::new(params)?)
        }
        name @ ("ddbm-vp" | "ddbm-ve" | "dbim-i2sb") => {
            let (d, want_sched, want_par) = match name {
                "ddbm-vp" => (ddbm::DdbmParams::vp(), "vp", "ddbm-precond"),
                "ddbm-ve" => (ddbm::DdbmParams::ve(), "ve", "ddbm-precond"),
                _ => (ddbm::DdbmParams::dbim_i2sb(), "i2sb", "i2sb"),
            };
            expect(meta, "schedule", sched, &[want_sched])?;
            expect(meta, "parameterization", par, &[want_par])?;
            let schedule = match d.schedule {
                ddbm::Schedule::Vp { beta_d, beta_min } => {
                    ddbm::Schedule::Vp { beta_d: p.f64("beta_d", beta_d)?, beta_min: p.f64("beta_min", beta_min)? }
                }
                ddbm::Schedule::Ve { sigma_max } => ddbm::Schedule::Ve { sigma_max: p.f64("sigma_max", sigma_max)? },
                ddbm::Schedule::I2sb { n_timestep, beta_min, beta_max } => ddbm::Schedule::I2sb {
                    n_timestep: p.usize("n_timestep", n_timestep)?,
                    beta_min: p.f64("beta_min", beta_min)?,
                    beta_max: p.f64("beta_max", beta_max)?,
                },
            };
            let precond = match d.precond {
                ddbm::Precond::Ddbm { sigma_data, cov_xy } => {
                    ddbm::Precond::Ddbm { sigma_data: p.f64("sigma_data", sigma_data)?, cov_xy: p.f64("cov_xy", cov_xy)? }
                }
                ddbm::Precond::I2sb { t0, t_end } => ddbm::Precond::I2sb { t0: p.f64("t0", t0)?, t_end: p.f64("t_end", t_end)? },
            };
            // VE's top time is σ_max unless given.
            let t_max_default = match schedule {
                ddbm::Schedule::Ve { sigma_max } => sigma_max,
                _ => d.t_max,
            };
            let params = ddbm::DdbmParams {
                schedule,
                precond,
                t_min: p.f64("t_min", d.t_min)?,
                t_max: p.f64("t_max", t_max_default)?,
                clip: p.bool("clip", d.clip)?,
            };
            Box::new(ddbm::Ddbm::new(params)?)
        }
        name @ ("goub" | "unidb") => {
            expect(meta, "schedule", sched, &["cosine", "linear", "constant"])?;
            expect(meta, "parameterization", par, &["eps"])?;
            let d = gou::GouParams::goub();
            let gamma_inv = if name == "unidb" { p.f64_req("gamma_inv")? } else { 0.0 };
            if name == "unidb" && gamma_inv <= 0.0 {
                return Err(Error::param("bridge.family_params.gamma_inv", "UniDB needs γ⁻¹ > 0 (γ⁻¹ = 0 is GOUB: use family goub)"));
            }
            let params = gou::GouParams {
                lambda_square: p.f64("lambda_square", d.lambda_square)?,
                t_max: p.usize("t_max", d.t_max)?,
                eps: p.f64("eps", d.eps)?,
                schedule: match sched {
                    "linear" => gou::ThetaSchedule::Linear,
                    "constant" => gou::ThetaSchedule::Constant,
                    _ => gou::ThetaSchedule::Cosine,
                },
                gamma_inv,
            };
            Box::new(gou::Gou::new(params)?)
        }
        "rdbm" => {
            expect(meta, "schedule", sched, &["cosine"])?;
            expect(meta, "parameterization", par, &["x0", "eps"])?;
            let d = rdbm::RdbmParams::default();
            let residual = match p.value("residual_eta") {
                None => None,
                Some(v) => Some(rdbm::ResidualNoise {
                    eta: v.as_f64().ok_or_else(|| Params::bad("residual_eta", "a number in [0, 1]", v))?,
                }),
            };
            let params = rdbm::RdbmParams {
                t_max: p.usize("t_max", d.t_max)?,
                lamb: p.f64("lamb", d.lamb)?,
                objective: if par == "eps" { rdbm::Objective::PredNoise } else { rdbm::Objective::PredXStart },
                clip: p.bool("clip", d.clip)?,
                residual,
            };
            Box::new(rdbm::Rdbm::new(params)?)
        }
        "nadb" => {
            expect(meta, "schedule", sched, &["nadb"])?;
            expect(meta, "parameterization", par, &["drift"])?;
            let d = nadb::NadbParams::default();
            let threshold = match p.value("d") {
                None => d.d,
                Some(v) if v.as_str() == Some("smallest") => nadb::Threshold::Smallest,
                Some(v) => nadb::Threshold::Value(v.as_f64().ok_or_else(|| Params::bad("d", "\"smallest\" or a number", v))?),
            };
            // Trained with a mean network ⇔ the package ships one.
            let has_mean = meta.mean_network.is_some();
            if p.bool("mean_network", has_mean)? != has_mean {
                return Err(Error::param(
                    "bridge.family_params.mean_network",
                    "contradicts bridge.mean_network (a mean-network checkpoint must ship its mean network, and only then)",
                ));
            }
            let params = nadb::NadbParams { alpha: p.f64("alpha", d.alpha)?, k: p.f64("k", d.k)?, d: threshold, mean_network: has_mean };
            Box::new(nadb::Nadb::new(params)?)
        }
        other => {
            return Err(Error::UnknownFamily(format!(
                "{other} (bridge.family; this SDK builds: i2sb, ddbm-vp, ddbm-ve, dbim-i2sb, goub, unidb, rdbm, nadb)"
            )));
        }
    };
    p.finish(&meta.family)?;
    Ok(fam)
}

#[cfg(test)]
mod tests {
    use super::*;

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
