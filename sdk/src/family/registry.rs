//! The one table of families and samplers: every name the SDK, its CLI, model packages, the
//! C ABI and the exporter spell, each written once.
//!
//! * [`SAMPLERS`]: a sampler's name (and aliases), its knobs (η, churn), the families it runs
//!   on, how to build it from knob values and how to recognise it. [`Sampler::name`],
//!   [`parse_sampler`], [`sampler_label`] and [`SAMPLER_NAMES`] read it.
//! * [`FAMILIES`]: a family's name, its schedules and parameterizations (first = default), its
//!   default sampler and NFE (what `bridge-export` writes into a new package), and its
//!   constructor from package metadata (`bridge.family_params`, [`build_family`]).
//!
//! Adding a sampler is one [`SAMPLERS`] entry (plus its `Sampler` variant and its plan or loop
//! in [`crate::sampler`]); adding a family is one [`FAMILIES`] entry.

use super::{Family, ddbm, gou, i2sb, nadb, rdbm};
use crate::sampler::Sampler;
use crate::sampler::dbmsolver::Midpoint;
use crate::{Error, Result};
use serde_json::{Map, Value};

/// A sampler knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    /// η of the implicit-type samplers, in [0, 1].
    Eta,
    /// Heun's churn ratio, in [0, 1).
    Churn,
}

impl Knob {
    /// The knob's name in labels, packages (`bridge.sampler_params`) and errors.
    pub fn name(self) -> &'static str {
        match self {
            Knob::Eta => "eta",
            Knob::Churn => "churn",
        }
    }
}

/// Knob values given for a sampler (absent: the knob's default).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Knobs {
    /// η (default 0).
    pub eta: Option<f64>,
    /// Churn (default 0).
    pub churn: Option<f64>,
}

impl Knobs {
    /// η, checked to lie in [0, 1].
    pub fn eta(&self) -> Result<f64> {
        let eta = self.eta.unwrap_or(0.0);
        if !eta.is_finite() || !(0.0..=1.0).contains(&eta) {
            return Err(Error::param("eta", format!("{eta} is outside [0, 1]")));
        }
        Ok(eta)
    }
    /// Churn, checked to lie in [0, 1).
    pub fn churn(&self) -> Result<f64> {
        let churn = self.churn.unwrap_or(0.0);
        if !churn.is_finite() || !(0.0..1.0).contains(&churn) {
            return Err(Error::param("churn", format!("{churn} is outside [0, 1) (the reference requires churn < 1)")));
        }
        Ok(churn)
    }
    fn given(&self, k: Knob) -> bool {
        match k {
            Knob::Eta => self.eta.is_some(),
            Knob::Churn => self.churn.is_some(),
        }
    }
}

/// Which families a sampler runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// Every family (generic samplers).
    All,
    /// Only these.
    Only(&'static [&'static str]),
    /// Every family but these.
    Except(&'static [&'static str]),
}

impl Runs {
    /// Whether family `name` is among them.
    pub fn contains(self, name: &str) -> bool {
        match self {
            Runs::All => true,
            Runs::Only(f) => f.contains(&name),
            Runs::Except(f) => !f.contains(&name),
        }
    }
}

/// One sampler of the table.
#[derive(Clone, Copy)]
pub struct SamplerEntry {
    /// The canonical name (CLI `--sampler`, `bridge.sampler`, the C ABI's `options.sampler`).
    pub name: &'static str,
    /// Other accepted spellings.
    pub aliases: &'static [&'static str],
    /// The knobs it takes (any other given knob is an error).
    pub knobs: &'static [Knob],
    /// The families it runs on (the sampler itself returns `Error::Incompatible` elsewhere).
    pub runs: Runs,
    /// The sampler from (range-checked) knob values.
    pub build: fn(&Knobs) -> Result<Sampler>,
    /// `Some(values of its knobs, in `knobs` order)` if `s` is this entry's sampler.
    pub of: fn(&Sampler) -> Option<Vec<f64>>,
}

impl std::fmt::Debug for SamplerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerEntry").field("name", &self.name).field("knobs", &self.knobs).field("runs", &self.runs).finish()
    }
}

/// I3SB's η when none is given: the official `scripts/sample.sh` value (its CLI default is 1).
pub const I3SB_DEFAULT_ETA: f64 = 0.6;

fn i3sb_eta(k: &Knobs) -> Result<f64> {
    let eta = k.eta.unwrap_or(I3SB_DEFAULT_ETA);
    crate::sampler::i3sb::check_eta(eta)?;
    Ok(eta)
}

const GOU: &[&str] = &["goub", "unidb"];
const DDBM: &[&str] = &["ddbm-vp", "ddbm-ve"];

/// Every sampler (module docs).
pub const SAMPLERS: &[SamplerEntry] = &[
    SamplerEntry {
        name: "i2sb",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["i2sb"]),
        build: |_| Ok(Sampler::I2sb { ot_ode: false }),
        of: |s| matches!(s, Sampler::I2sb { ot_ode: false }).then(Vec::new),
    },
    SamplerEntry {
        name: "i2sb-ot-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["i2sb"]),
        build: |_| Ok(Sampler::I2sb { ot_ode: true }),
        of: |s| matches!(s, Sampler::I2sb { ot_ode: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "heun",
        aliases: &[],
        knobs: &[Knob::Churn],
        runs: Runs::Only(DDBM),
        build: |k| Ok(Sampler::Heun { churn: k.churn()? }),
        of: |s| match *s {
            Sampler::Heun { churn } => Some(vec![churn]),
            _ => None,
        },
    },
    SamplerEntry {
        name: "dbim",
        aliases: &[],
        knobs: &[Knob::Eta],
        runs: Runs::All,
        build: |k| Ok(Sampler::Dbim { eta: k.eta()?, order: 1 }),
        of: |s| match *s {
            Sampler::Dbim { eta, order: 1 } => Some(vec![eta]),
            _ => None,
        },
    },
    // DBIM's high-order samplers are deterministic (η = 0).
    SamplerEntry {
        name: "dbim-2",
        aliases: &[],
        knobs: &[],
        runs: Runs::All,
        build: |_| Ok(Sampler::Dbim { eta: 0.0, order: 2 }),
        of: |s| matches!(s, Sampler::Dbim { order: 2, .. }).then(Vec::new),
    },
    SamplerEntry {
        name: "dbim-3",
        aliases: &[],
        knobs: &[],
        runs: Runs::All,
        build: |_| Ok(Sampler::Dbim { eta: 0.0, order: 3 }),
        of: |s| matches!(s, Sampler::Dbim { order: 3, .. }).then(Vec::new),
    },
    SamplerEntry {
        name: "implicit",
        aliases: &["ddim"],
        knobs: &[Knob::Eta],
        runs: Runs::All,
        build: |k| Ok(Sampler::Implicit { eta: k.eta()? }),
        of: |s| match *s {
            Sampler::Implicit { eta } => Some(vec![eta]),
            _ => None,
        },
    },
    SamplerEntry {
        name: "euler-sde",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::Euler { sde: true }),
        of: |s| matches!(s, Sampler::Euler { sde: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "mean-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::Euler { sde: false }),
        of: |s| matches!(s, Sampler::Euler { sde: false }).then(Vec::new),
    },
    // UniDB++'s `method: euler, solver_type: pf-ode` (½·g²·score, no noise).
    SamplerEntry {
        name: "pf-ode",
        aliases: &["euler-pf-ode"],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::PfOde),
        of: |s| matches!(s, Sampler::PfOde).then(Vec::new),
    },
    SamplerEntry {
        name: "data-solver-1",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::DataSolver1 { sde: true }),
        of: |s| matches!(s, Sampler::DataSolver1 { sde: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "data-solver-1-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::DataSolver1 { sde: false }),
        of: |s| matches!(s, Sampler::DataSolver1 { sde: false }).then(Vec::new),
    },
    SamplerEntry {
        name: "data-solver-2",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::DataSolver2 { sde: true }),
        of: |s| matches!(s, Sampler::DataSolver2 { sde: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "data-solver-2-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::DataSolver2 { sde: false }),
        of: |s| matches!(s, Sampler::DataSolver2 { sde: false }).then(Vec::new),
    },
    SamplerEntry {
        name: "noise-solver-1",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::NoiseSolver1 { sde: true }),
        of: |s| matches!(s, Sampler::NoiseSolver1 { sde: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "noise-solver-1-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(GOU),
        build: |_| Ok(Sampler::NoiseSolver1 { sde: false }),
        of: |s| matches!(s, Sampler::NoiseSolver1 { sde: false }).then(Vec::new),
    },
    // Not GOUB: its A^γ_T = 0 makes noise-solver-2's first step divide by zero.
    SamplerEntry {
        name: "noise-solver-2",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["unidb"]),
        build: |_| Ok(Sampler::NoiseSolver2 { sde: true }),
        of: |s| matches!(s, Sampler::NoiseSolver2 { sde: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "noise-solver-2-ode",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["unidb"]),
        build: |_| Ok(Sampler::NoiseSolver2 { sde: false }),
        of: |s| matches!(s, Sampler::NoiseSolver2 { sde: false }).then(Vec::new),
    },
    SamplerEntry {
        name: "rdbm",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["rdbm"]),
        build: |_| Ok(Sampler::Rdbm { eps_form: false }),
        of: |s| matches!(s, Sampler::Rdbm { eps_form: false }).then(Vec::new),
    },
    SamplerEntry {
        name: "rdbm-eps",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["rdbm"]),
        build: |_| Ok(Sampler::Rdbm { eps_form: true }),
        of: |s| matches!(s, Sampler::Rdbm { eps_form: true }).then(Vec::new),
    },
    SamplerEntry {
        name: "nadb",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(&["nadb"]),
        build: |_| Ok(Sampler::Nadb),
        of: |s| matches!(s, Sampler::Nadb).then(Vec::new),
    },
    // GOUB/UniDB define no x0̂ at their top time, where a generator is read.
    SamplerEntry {
        name: "distilled",
        aliases: &[],
        knobs: &[],
        runs: Runs::Except(GOU),
        build: |_| Ok(Sampler::Distilled),
        of: |s| matches!(s, Sampler::Distilled).then(Vec::new),
    },
    // DBMSolver's options are spelled in the name: λ-midpoint unless `-time`, sde_order 1
    // unless `-sde2`.
    SamplerEntry {
        name: "dbmsolver",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(DDBM),
        build: |_| Ok(Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 }),
        of: |s| matches!(s, Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 1 }).then(Vec::new),
    },
    SamplerEntry {
        name: "dbmsolver-time",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(DDBM),
        build: |_| Ok(Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 1 }),
        of: |s| matches!(s, Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 1 }).then(Vec::new),
    },
    SamplerEntry {
        name: "dbmsolver-sde2",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(DDBM),
        build: |_| Ok(Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 2 }),
        of: |s| matches!(s, Sampler::Dbmsolver { midpoint: Midpoint::Lambda, sde_order: 2 }).then(Vec::new),
    },
    SamplerEntry {
        name: "dbmsolver-time-sde2",
        aliases: &[],
        knobs: &[],
        runs: Runs::Only(DDBM),
        build: |_| Ok(Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 2 }),
        of: |s| matches!(s, Sampler::Dbmsolver { midpoint: Midpoint::Time, sde_order: 2 }).then(Vec::new),
    },
    // I3SB's η may exceed 1 (its clamp branch), so it is checked here, not by `Knobs::eta`;
    // default: the official `scripts/sample.sh` value.
    SamplerEntry {
        name: "i3sb",
        aliases: &[],
        knobs: &[Knob::Eta],
        runs: Runs::Only(&["i2sb"]),
        build: |k| Ok(Sampler::I3sb { eta: i3sb_eta(k)?, ot_ode: false }),
        of: |s| match *s {
            Sampler::I3sb { eta, ot_ode: false } => Some(vec![eta]),
            _ => None,
        },
    },
    SamplerEntry {
        name: "i3sb-ot-ode",
        aliases: &[],
        knobs: &[Knob::Eta],
        runs: Runs::Only(&["i2sb"]),
        build: |k| Ok(Sampler::I3sb { eta: i3sb_eta(k)?, ot_ode: true }),
        of: |s| match *s {
            Sampler::I3sb { eta, ot_ode: true } => Some(vec![eta]),
            _ => None,
        },
    },
];

const fn count_names() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < SAMPLERS.len() {
        n += 1 + SAMPLERS[i].aliases.len();
        i += 1;
    }
    n
}

const fn collect_names() -> [&'static str; count_names()] {
    let mut out = [""; count_names()];
    let (mut n, mut i) = (0, 0);
    while i < SAMPLERS.len() {
        out[n] = SAMPLERS[i].name;
        n += 1;
        let mut j = 0;
        while j < SAMPLERS[i].aliases.len() {
            out[n] = SAMPLERS[i].aliases[j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Every accepted sampler spelling (names, then each entry's aliases after it).
pub const SAMPLER_NAMES: [&str; count_names()] = collect_names();

/// The table entry of `s`.
pub fn sampler_entry(s: &Sampler) -> Option<&'static SamplerEntry> {
    SAMPLERS.iter().find(|e| (e.of)(s).is_some())
}

/// The entry named `name` (or one of its aliases), case-insensitively.
pub fn sampler_by_name(name: &str) -> Option<&'static SamplerEntry> {
    let name = name.trim().to_ascii_lowercase();
    SAMPLERS.iter().find(|e| e.name == name || e.aliases.contains(&name.as_str()))
}

/// Whether sampler `name` (any spelling) takes `knob`.
pub fn takes(name: &str, knob: Knob) -> bool {
    sampler_by_name(name).is_some_and(|e| e.knobs.contains(&knob))
}

/// UniDB++ method × `solver_type` combinations the official release names but cannot run, with
/// why: [`parse_sampler`] refuses them with that reason instead of guessing a meaning.
pub const REFUSED: &[(&str, &str)] = &[
    (
        "data-solver-1-pf-ode",
        "the official unidb_pf_ode_solver_data_prediction (UniDB++ @b128385) reads self.ode_T, which UniDB never \
         sets (AttributeError), so its step count is undefined; use data-solver-1-ode (Mean-ODE) or pf-ode (Euler)",
    ),
    ("data-solver-2-pf-ode", "the official DenoisingModel.test has no pf-ode for data-solver-2 (ValueError)"),
    ("noise-solver-1-pf-ode", "the official DenoisingModel.test has no pf-ode for noise-solver-1 (ValueError)"),
    ("noise-solver-2-pf-ode", "the official DenoisingModel.test has no pf-ode for noise-solver-2 (ValueError)"),
];

/// A sampler from its name and knobs. A knob the sampler does not have is an error rather
/// than silently ignored; a [`REFUSED`] combination is [`Error::InvalidParam`] with its reason; an
/// unknown name is [`Error::UnknownSampler`].
pub fn parse_sampler(name: &str, knobs: &Knobs) -> Result<Sampler> {
    let lower = name.trim().to_ascii_lowercase();
    if let Some((n, why)) = REFUSED.iter().find(|(n, _)| *n == lower) {
        return Err(Error::param("sampler", format!("`{n}` is not supported: {why}")));
    }
    let e = sampler_by_name(name)
        .ok_or_else(|| Error::UnknownSampler(format!("{} (known: {})", name.trim().to_ascii_lowercase(), SAMPLER_NAMES.join(", "))))?;
    for k in [Knob::Eta, Knob::Churn] {
        if knobs.given(k) && !e.knobs.contains(&k) {
            let with: Vec<&str> = SAMPLERS.iter().filter(|s| s.knobs.contains(&k)).map(|s| s.name).collect();
            return Err(Error::param(k.name(), format!("sampler `{}` has no {} ({} have)", e.name, k.name(), with.join(", "))));
        }
    }
    (e.build)(knobs)
}

/// The sampler's canonical name (what [`parse_sampler`] reads back).
pub fn sampler_name(s: &Sampler) -> &'static str {
    sampler_entry(s).map_or("unknown", |e| e.name)
}

/// The name with the knob values, e.g. `heun (churn 0.33)`, for logs and `bridge info`.
pub fn sampler_label(s: &Sampler) -> String {
    match sampler_entry(s) {
        None => format!("{s:?}"),
        Some(e) => {
            let vals = (e.of)(s).unwrap_or_default();
            if vals.is_empty() {
                return e.name.to_string();
            }
            let knobs: Vec<String> = e.knobs.iter().zip(vals).map(|(k, v)| format!("{} {v}", k.name())).collect();
            format!("{} ({})", e.name, knobs.join(", "))
        }
    }
}

/// Whether sampler `s` runs on family `family` (by name).
pub fn supports(family: &str, s: &Sampler) -> bool {
    sampler_entry(s).is_some_and(|e| e.runs.contains(family))
}

/// What a package says about its family (`bridge.family`, `bridge.schedule`,
/// `bridge.parameterization`, `bridge.family_params`, whether it ships a mean network).
#[derive(Clone, Copy, Debug)]
pub struct FamilyArgs<'a> {
    /// `bridge.family`.
    pub family: &'a str,
    /// `bridge.schedule`.
    pub schedule: &'a str,
    /// `bridge.parameterization`.
    pub parameterization: &'a str,
    /// `bridge.family_params`.
    pub params: &'a Map<String, Value>,
    /// The package ships a mean network (`bridge.mean_network`).
    pub has_mean_network: bool,
}

/// One family of the table.
#[derive(Clone, Copy)]
pub struct FamilyEntry {
    /// `bridge.family`.
    pub name: &'static str,
    /// Accepted `bridge.schedule` values; the first is the default.
    pub schedules: &'static [&'static str],
    /// Accepted `bridge.parameterization` values; the first is the default.
    pub parameterizations: &'static [&'static str],
    /// The default sampler of a new package (a [`SAMPLERS`] name).
    pub default_sampler: &'static str,
    /// The default NFE of a new package.
    pub default_nfe: usize,
    /// The family from checked metadata (schedule and parameterization already accepted).
    pub build: fn(&FamilyArgs<'_>, &mut Params<'_>) -> Result<Box<dyn Family>>,
}

impl std::fmt::Debug for FamilyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FamilyEntry").field("name", &self.name).field("schedules", &self.schedules).finish()
    }
}

/// Every family (module docs). Parameters and defaults per family: `docs/model-package.md`.
pub const FAMILIES: &[FamilyEntry] = &[
    FamilyEntry {
        name: "i2sb",
        schedules: &["i2sb-symmetric"],
        parameterizations: &["i2sb"],
        default_sampler: "i2sb-ot-ode",
        default_nfe: 5,
        build: |_, p| {
            let d = i2sb::I2sbParams::default();
            let params = i2sb::I2sbParams {
                interval: p.usize("interval", d.interval)?,
                beta_max: p.f64("beta_max", d.beta_max)?,
                t0: p.f64("t0", d.t0)?,
                t_end: p.f64("t_end", d.t_end)?,
                clip: p.bool("clip", d.clip)?,
            };
            Ok(Box::new(i2sb::I2sb::new(params)?))
        },
    },
    FamilyEntry {
        name: "ddbm-vp",
        schedules: &["vp"],
        parameterizations: &["ddbm-precond"],
        default_sampler: "dbim",
        default_nfe: 5,
        build: |_, p| build_ddbm(ddbm::DdbmParams::vp(), p),
    },
    FamilyEntry {
        name: "ddbm-ve",
        schedules: &["ve"],
        parameterizations: &["ddbm-precond"],
        default_sampler: "dbim",
        default_nfe: 5,
        build: |_, p| build_ddbm(ddbm::DdbmParams::ve(), p),
    },
    FamilyEntry {
        name: "dbim-i2sb",
        schedules: &["i2sb"],
        parameterizations: &["i2sb"],
        default_sampler: "dbim",
        default_nfe: 5,
        build: |_, p| build_ddbm(ddbm::DdbmParams::dbim_i2sb(), p),
    },
    // data-solver-1 needs NFE + 1 to divide T = 100 (NFE ∈ {1, 3, 4, 9, 19, …}).
    FamilyEntry {
        name: "goub",
        schedules: &["cosine", "linear", "constant"],
        parameterizations: &["eps"],
        default_sampler: "data-solver-1-ode",
        default_nfe: 4,
        build: |a, p| build_gou(a, p, false),
    },
    FamilyEntry {
        name: "unidb",
        schedules: &["cosine", "linear", "constant"],
        parameterizations: &["eps"],
        default_sampler: "data-solver-1-ode",
        default_nfe: 4,
        build: |a, p| build_gou(a, p, true),
    },
    FamilyEntry {
        name: "rdbm",
        schedules: &["cosine"],
        parameterizations: &["x0", "eps"],
        default_sampler: "rdbm",
        default_nfe: 5,
        build: |a, p| {
            let d = rdbm::RdbmParams::default();
            let residual = match p.value("residual_eta") {
                None => None,
                Some(v) => {
                    Some(rdbm::ResidualNoise { eta: v.as_f64().ok_or_else(|| Params::bad("residual_eta", "a number in [0, 1]", v))? })
                }
            };
            let params = rdbm::RdbmParams {
                t_max: p.usize("t_max", d.t_max)?,
                lamb: p.f64("lamb", d.lamb)?,
                objective: if a.parameterization == "eps" { rdbm::Objective::PredNoise } else { rdbm::Objective::PredXStart },
                clip: p.bool("clip", d.clip)?,
                residual,
            };
            Ok(Box::new(rdbm::Rdbm::new(params)?))
        },
    },
    FamilyEntry {
        name: "nadb",
        schedules: &["nadb"],
        parameterizations: &["drift"],
        default_sampler: "nadb",
        default_nfe: 5,
        build: |a, p| {
            let d = nadb::NadbParams::default();
            let threshold = match p.value("d") {
                None => d.d,
                Some(v) if v.as_str() == Some("smallest") => nadb::Threshold::Smallest,
                Some(v) => nadb::Threshold::Value(v.as_f64().ok_or_else(|| Params::bad("d", "\"smallest\" or a number", v))?),
            };
            // Trained with a mean network ⇔ the package ships one.
            let has_mean = a.has_mean_network;
            if p.bool("mean_network", has_mean)? != has_mean {
                return Err(Error::param(
                    "bridge.family_params.mean_network",
                    "contradicts bridge.mean_network (a mean-network checkpoint must ship its mean network, and only then)",
                ));
            }
            let params = nadb::NadbParams { alpha: p.f64("alpha", d.alpha)?, k: p.f64("k", d.k)?, d: threshold, mean_network: has_mean };
            Ok(Box::new(nadb::Nadb::new(params)?))
        },
    },
];

fn build_ddbm(d: ddbm::DdbmParams, p: &mut Params<'_>) -> Result<Box<dyn Family>> {
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
    Ok(Box::new(ddbm::Ddbm::new(params)?))
}

fn build_gou(a: &FamilyArgs<'_>, p: &mut Params<'_>, unidb: bool) -> Result<Box<dyn Family>> {
    let d = gou::GouParams::goub();
    let gamma_inv = if unidb { p.f64_req("gamma_inv")? } else { 0.0 };
    if unidb && gamma_inv <= 0.0 {
        return Err(Error::param("bridge.family_params.gamma_inv", "UniDB needs γ⁻¹ > 0 (γ⁻¹ = 0 is GOUB: use family goub)"));
    }
    let params = gou::GouParams {
        lambda_square: p.f64("lambda_square", d.lambda_square)?,
        t_max: p.usize("t_max", d.t_max)?,
        eps: p.f64("eps", d.eps)?,
        schedule: match a.schedule {
            "linear" => gou::ThetaSchedule::Linear,
            "constant" => gou::ThetaSchedule::Constant,
            _ => gou::ThetaSchedule::Cosine,
        },
        gamma_inv,
    };
    Ok(Box::new(gou::Gou::new(params)?))
}

/// The entry of family `name`.
pub fn family_entry(name: &str) -> Option<&'static FamilyEntry> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// Every family name, comma-separated (for messages).
pub fn family_names() -> String {
    FAMILIES.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
}

/// Typed access to `bridge.family_params`; every key must be read (unknown keys are errors).
pub struct Params<'a> {
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Params<'a> {
    fn new(map: &'a Map<String, Value>) -> Self {
        Params { map, used: Vec::new() }
    }
    fn bad(key: &str, want: &str, v: &Value) -> Error {
        Error::param(format!("bridge.family_params.{key}"), format!("expected {want}, got {v}"))
    }
    /// A finite number, `default` if absent.
    pub fn f64(&mut self, key: &'static str, default: f64) -> Result<f64> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| Self::bad(key, "a finite number", v)),
        }
    }
    /// A finite number that must be given.
    pub fn f64_req(&mut self, key: &'static str) -> Result<f64> {
        if !self.map.contains_key(key) {
            return Err(Error::param(format!("bridge.family_params.{key}"), "required for this family"));
        }
        self.f64(key, 0.0)
    }
    /// A non-negative integer, `default` if absent.
    pub fn usize(&mut self, key: &'static str, default: usize) -> Result<usize> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| Self::bad(key, "a non-negative integer", v)),
        }
    }
    /// A boolean, `default` if absent.
    pub fn bool(&mut self, key: &'static str, default: bool) -> Result<bool> {
        self.used.push(key);
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| Self::bad(key, "true or false", v)),
        }
    }
    /// The raw value, if present.
    pub fn value(&mut self, key: &'static str) -> Option<&'a Value> {
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

fn expect(family: &str, key: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::param(
            format!("bridge.{key}"),
            format!("`{value}` is not valid for family `{family}` (expected one of: {})", allowed.join(", ")),
        ))
    }
}

/// The family a package describes, built with the family's own constructor. A family,
/// schedule or parameterization the SDK does not know — or a combination the family rejects —
/// is an error naming the package key.
pub fn build_family(a: &FamilyArgs<'_>) -> Result<Box<dyn Family>> {
    let e = family_entry(a.family)
        .ok_or_else(|| Error::UnknownFamily(format!("{} (bridge.family; this SDK builds: {})", a.family, family_names())))?;
    expect(a.family, "schedule", a.schedule, e.schedules)?;
    expect(a.family, "parameterization", a.parameterization, e.parameterizations)?;
    let mut p = Params::new(a.params);
    let fam = (e.build)(a, &mut p)?;
    p.finish(a.family)?;
    Ok(fam)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are unique across names and aliases; every entry recognises what it builds, and
    /// its label's first word parses back to the same sampler.
    #[test]
    fn sampler_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for n in SAMPLER_NAMES {
            assert!(seen.insert(n), "{n} twice");
        }
        for e in SAMPLERS {
            let s = (e.build)(&Knobs::default()).unwrap();
            assert_eq!(sampler_entry(&s).map(|x| x.name), Some(e.name));
            assert_eq!((e.of)(&s).unwrap().len(), e.knobs.len(), "{}", e.name);
            assert_eq!(s.name(), e.name);
            let label = sampler_label(&s);
            assert_eq!(parse_sampler(label.split(' ').next().unwrap(), &Knobs::default()).unwrap(), s, "{label}");
        }
        assert_eq!(sampler_label(&Sampler::Heun { churn: 0.33 }), "heun (churn 0.33)");
        assert_eq!(sampler_label(&Sampler::Dbim { eta: 0.5, order: 1 }), "dbim (eta 0.5)");
        assert!(takes("DDIM", Knob::Eta) && !takes("dbim-2", Knob::Eta) && takes("heun", Knob::Churn));
    }

    /// The broken official combination is a typed error that says why, not an unknown name or
    /// a guess; the new UniDB++ names parse.
    #[test]
    fn refused_combinations_say_why() {
        for (n, _) in REFUSED {
            assert!(sampler_by_name(n).is_none(), "{n} is both refused and a sampler");
        }
        match parse_sampler(" Data-Solver-1-PF-ODE", &Knobs::default()) {
            Err(Error::InvalidParam { name, reason }) => {
                assert_eq!(name, "sampler");
                assert!(reason.contains("ode_T") && reason.contains("AttributeError"), "{reason}");
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(parse_sampler("pf-ode", &Knobs::default()).unwrap(), Sampler::PfOde);
        assert_eq!(parse_sampler("euler-pf-ode", &Knobs::default()).unwrap(), Sampler::PfOde);
        assert_eq!(parse_sampler("noise-solver-2", &Knobs::default()).unwrap(), Sampler::NoiseSolver2 { sde: true });
        assert_eq!(parse_sampler("noise-solver-2-ode", &Knobs::default()).unwrap(), Sampler::NoiseSolver2 { sde: false });
        assert!(supports("unidb", &Sampler::NoiseSolver2 { sde: true }) && !supports("goub", &Sampler::NoiseSolver2 { sde: true }));
        assert!(supports("goub", &Sampler::PfOde) && !supports("i2sb", &Sampler::PfOde));
    }

    /// Every default sampler of a family is a sampler that runs on it, and every family builds
    /// from empty parameters with its default schedule and parameterization (UniDB needs γ⁻¹).
    #[test]
    fn family_table_is_consistent() {
        for f in FAMILIES {
            let s = parse_sampler(f.default_sampler, &Knobs::default()).unwrap();
            assert!(supports(f.name, &s), "{} default {}", f.name, f.default_sampler);
            let mut params = Map::new();
            if f.name == "unidb" {
                params.insert("gamma_inv".into(), 1e-7.into());
            }
            let a = FamilyArgs {
                family: f.name,
                schedule: f.schedules[0],
                parameterization: f.parameterizations[0],
                params: &params,
                has_mean_network: f.name == "nadb",
            };
            assert_eq!(build_family(&a).unwrap().name(), f.name);
        }
    }

    /// `supports` agrees with the samplers themselves: on every family with default parameters,
    /// a sampler it does not list fails with `Error::Incompatible` before any call, and one it
    /// lists never does (at a valid NFE).
    #[test]
    fn supports_matches_the_samplers() {
        use crate::sampler::plan::plan;
        for f in FAMILIES {
            let mut params = Map::new();
            if f.name == "unidb" {
                params.insert("gamma_inv".into(), 1e-7.into());
            }
            let a = FamilyArgs {
                family: f.name,
                schedule: f.schedules[0],
                parameterization: f.parameterizations[0],
                params: &params,
                has_mean_network: false,
            };
            let fam = build_family(&a).unwrap();
            for e in SAMPLERS {
                let s = (e.build)(&Knobs::default()).unwrap();
                // Only the planned samplers check compatibility without a network.
                let nfe = match &s {
                    Sampler::Euler { .. } | Sampler::PfOde => 100,
                    _ => 4,
                };
                let r = plan(fam.as_ref(), &s, nfe, false);
                let incompatible = matches!(r, Err(Error::Incompatible { .. }));
                if r.as_ref().is_ok_and(|p| p.is_none()) {
                    continue;
                }
                assert_eq!(!incompatible, supports(f.name, &s), "{} on {}: {r:?}", e.name, f.name);
            }
        }
    }
}
