//! Self-describing model packages: one ONNX file whose `metadata_props` say how to run it.
//!
//! Keys (all under `bridge.`; values are strings, JSON where noted). The full reference, with
//! an example, is `docs/model-package.md`.
//!
//! | key | required | value |
//! |---|---|---|
//! | `bridge.schema_version` | yes | `1` |
//! | `bridge.family` | yes | family name (`i2sb`, `ddbm-vp`, `goub`, …) |
//! | `bridge.schedule` | yes | schedule name the family accepts |
//! | `bridge.parameterization` | yes | what the raw output is (`x0`, `eps`, …) |
//! | `bridge.family_params` | no | JSON object of the family's numeric parameters |
//! | `bridge.inputs` | yes | JSON object: graph input name → role `x_t`, `cond`, `t`, `class` or `noise` |
//! | `bridge.outputs` | yes | JSON object: graph output name → role `raw` |
//! | `bridge.value_range` | yes | JSON `[lo, hi]`: the model's pixel range |
//! | `bridge.channel_order` | yes | `rgb` or `bgr` |
//! | `bridge.channels` | no | 3 (or 1) |
//! | `bridge.sr_scale` | no | integer upscale factor the package expects pre-applied (1) |
//! | `bridge.sr_upsample` | no | `bicubic` (PyTorch, a = −0.75), `bicubic-a0.5`, `nearest` |
//! | `bridge.prepass` | no | JSON: a classical step run before the bridge ([`crate::prepass`]), e.g. `{"kind": "wiener", …}` |
//! | `bridge.spatial_multiple` | no | H and W are padded to a multiple of this (1) |
//! | `bridge.sampler` | yes | default sampler name (see [`crate::runtime::parse_sampler`]) |
//! | `bridge.sampler_params` | no | JSON object: `eta`, `churn` |
//! | `bridge.nfe` | yes | default number of network evaluations |
//! | `bridge.receptive_field` | no | receptive radius in pixels (sets the tile trim) |
//! | `bridge.tile` | no | JSON `{"size": 512, "overlap": 64}`: recommended tiling |
//! | `bridge.channel_ensemble` | no | `true`: run with the channel ensemble by default ([`crate::ChannelCycle`]; 3 channels only; `false`) |
//! | `bridge.mean_network` | NADB | JSON `{"path", "sha256", "t_net", "inputs", "outputs"}` |
//! | `bridge.time_input` | no | `value` (the family's time value, default) or `index` (its integer step) |
//! | `bridge.class_label` | no | default label for a `class` input (an integer ≥ 0) |
//! | `bridge.name`, `bridge.description`, `bridge.license`, `bridge.version` | no | text |
//!
//! Unknown `bridge.*` keys are rejected (a misspelt key must not be silently ignored); other
//! keys are kept and shown by `bridge info`.

use crate::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The metadata schema this SDK reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// Largest `bridge.tile` size or overlap (the largest image side).
pub const MAX_TILE_SIDE: usize = 1 << 16;

/// Pixel channel order the network expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red (OpenCV-trained models).
    Bgr,
}

/// How low-resolution inputs are brought to the output size before the bridge runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Upsample {
    /// Cubic convolution with a = −0.75, half-pixel centres, clamped borders: PyTorch's
    /// `F.interpolate(mode="bicubic", align_corners=False)`.
    Bicubic,
    /// Cubic convolution with a = −0.5 (PIL / MATLAB kernel, no antialiasing: upscaling only).
    BicubicA05,
    /// Pixel replication.
    Nearest,
}

impl Upsample {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "bicubic" => Ok(Upsample::Bicubic),
            "bicubic-a0.5" => Ok(Upsample::BicubicA05),
            "nearest" => Ok(Upsample::Nearest),
            o => Err(format!("bridge.sr_upsample: `{o}` is not one of bicubic, bicubic-a0.5, nearest")),
        }
    }
    /// The metadata spelling.
    pub fn name(self) -> &'static str {
        match self {
            Upsample::Bicubic => "bicubic",
            Upsample::BicubicA05 => "bicubic-a0.5",
            Upsample::Nearest => "nearest",
        }
    }
}

/// Graph tensor names by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoNames {
    /// The state input (`x_t`, or `c_in·x_t` for preconditioned families).
    pub state: String,
    /// The conditioning input (the degraded image), if the graph takes one.
    pub cond: Option<String>,
    /// The time input, if the graph takes one.
    pub time: Option<String>,
    /// A class-label input (int64 `[B]`; class-conditional checkpoints), if any.
    pub class: Option<String>,
    /// A distilled generator's noise input (`[B, C_z, H, W]`), if any.
    pub noise: Option<String>,
    /// The raw output.
    pub output: String,
}

/// What the time input receives (`bridge.time_input`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeInput {
    /// The family's time value `t_net` (what the reference feeds its network).
    #[default]
    Value,
    /// The family's integer step index on its discrete grid (networks that look the noise
    /// level up inside the graph, e.g. I2SB's `Image256Net`). Continuous-time families reject it.
    Index,
}

impl TimeInput {
    /// The metadata spelling.
    pub fn name(self) -> &'static str {
        match self {
            TimeInput::Value => "value",
            TimeInput::Index => "index",
        }
    }
}

/// Recommended tiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileHint {
    /// Tile side in pixels.
    pub size: usize,
    /// Overlap between neighbouring tiles in pixels.
    pub overlap: usize,
}

/// NADB's mean network `M(x1)`: a second ONNX file next to the package.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanNetwork {
    /// Path relative to the package file's folder (no `..`, not absolute).
    pub path: String,
    /// Lower-case hex SHA-256 of that file.
    pub sha256: String,
    /// The time value fed to it. NADB takes its own (`noise_levels[1]`); a value given here
    /// must agree with it.
    pub t_net: Option<f64>,
    /// Its tensor names (it takes no conditioning input).
    pub io: IoNames,
}

/// Everything a package's metadata says (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct PackageMeta {
    /// Schema version (1).
    pub schema_version: u32,
    /// Family name.
    pub family: String,
    /// Schedule name.
    pub schedule: String,
    /// Parameterization of the raw output.
    pub parameterization: String,
    /// Family parameters (JSON numbers, booleans or strings).
    pub family_params: Map<String, Value>,
    /// Tensor names.
    pub io: IoNames,
    /// Model pixel range `[lo, hi]` (images map `[0, 1]` onto it).
    pub value_range: (f64, f64),
    /// Channel order.
    pub channel_order: ChannelOrder,
    /// Image channels (3, or 1).
    pub channels: usize,
    /// Super-resolution factor applied before the bridge (1: none).
    pub sr_scale: usize,
    /// Upsampling kernel for `sr_scale > 1`.
    pub sr_upsample: Upsample,
    /// Classical step applied to the degraded image before the bridge (`sr_scale` 1 only).
    pub prepass: Option<crate::prepass::Prepass>,
    /// Height and width are padded to a multiple of this.
    pub spatial_multiple: usize,
    /// Default sampler name.
    pub sampler: String,
    /// Default sampler knobs (`eta`, `churn`).
    pub sampler_params: Map<String, Value>,
    /// Default NFE.
    pub nfe: usize,
    /// Receptive radius of the network in pixels, if known.
    pub receptive_field: Option<usize>,
    /// Recommended tiling.
    pub tile: Option<TileHint>,
    /// Run with the channel ensemble unless the caller says otherwise
    /// ([`crate::restorer::RestorerBuilder::channel_ensemble`]): the model's default, chosen on
    /// validation photos like its sampler and NFE.
    pub channel_ensemble: bool,
    /// NADB mean network.
    pub mean_network: Option<MeanNetwork>,
    /// What the time input receives.
    pub time_input: TimeInput,
    /// Default label for the `class` input.
    pub class_label: Option<i64>,
    /// Free-text `name`, `description`, `license`, `version`.
    pub info: BTreeMap<String, String>,
    /// Keys outside `bridge.*`, kept for display.
    pub other: BTreeMap<String, String>,
}

const INFO_KEYS: [&str; 4] = ["name", "description", "license", "version"];
const KNOWN: [&str; 23] = [
    "schema_version",
    "family",
    "schedule",
    "parameterization",
    "family_params",
    "inputs",
    "outputs",
    "value_range",
    "channel_order",
    "channels",
    "sr_scale",
    "sr_upsample",
    "prepass",
    "spatial_multiple",
    "sampler",
    "sampler_params",
    "nfe",
    "receptive_field",
    "tile",
    "channel_ensemble",
    "mean_network",
    "time_input",
    "class_label",
];

fn package_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Package { path: path.to_string(), reason: reason.into() }
}

fn json_obj(key: &str, v: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(v) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{key}: expected a JSON object, got `{v}`")),
        Err(e) => Err(format!("{key}: invalid JSON ({e})")),
    }
}

fn uint(key: &str, v: &str, lo: usize, hi: usize) -> Result<usize, String> {
    let n: usize = v.trim().parse().map_err(|_| format!("{key}: `{v}` is not a non-negative integer"))?;
    if n < lo || n > hi {
        return Err(format!("{key}: {n} is outside {lo}..={hi}"));
    }
    Ok(n)
}

/// Parse a role map (`{"name": "role"}`) into names; `allowed` lists the roles accepted.
fn roles(key: &str, inputs: &Map<String, Value>, outputs: &Map<String, Value>, allow_cond: bool) -> Result<IoNames, String> {
    let (mut state, mut cond, mut time, mut class, mut noise) = (None, None, None, None, None);
    for (name, role) in inputs {
        let slot = match role.as_str() {
            Some("x_t") => &mut state,
            Some("cond") if allow_cond => &mut cond,
            Some("t") => &mut time,
            Some("class") if allow_cond => &mut class,
            Some("noise") if allow_cond => &mut noise,
            _ => {
                let allowed = if allow_cond { "x_t, cond, t, class, noise" } else { "x_t, t" };
                return Err(format!("{key} inputs: role of `{name}` is {role}, expected one of {allowed}"));
            }
        };
        if slot.replace(name.clone()).is_some() {
            return Err(format!("{key} inputs: role {role} is given to more than one input"));
        }
    }
    let state = state.ok_or_else(|| format!("{key} inputs: no input has role x_t"))?;
    let mut output = None;
    for (name, role) in outputs {
        if role.as_str() != Some("raw") {
            return Err(format!("{key} outputs: role of `{name}` is {role}, expected raw"));
        }
        if output.replace(name.clone()).is_some() {
            return Err(format!("{key} outputs: more than one output has role raw"));
        }
    }
    let output = output.ok_or_else(|| format!("{key} outputs: no output has role raw"))?;
    Ok(IoNames { state, cond, time, class, noise, output })
}

fn role_maps(io: &IoNames) -> (Value, Value) {
    let mut i = Map::new();
    i.insert(io.state.clone(), json!("x_t"));
    if let Some(c) = &io.cond {
        i.insert(c.clone(), json!("cond"));
    }
    if let Some(t) = &io.time {
        i.insert(t.clone(), json!("t"));
    }
    if let Some(c) = &io.class {
        i.insert(c.clone(), json!("class"));
    }
    if let Some(z) = &io.noise {
        i.insert(z.clone(), json!("noise"));
    }
    let mut o = Map::new();
    o.insert(io.output.clone(), json!("raw"));
    (Value::Object(i), Value::Object(o))
}

impl PackageMeta {
    /// Parse and check the metadata (`path` is only used in error messages). Graph checks are
    /// separate: [`PackageMeta::check_graph`].
    pub fn from_props(props: &BTreeMap<String, String>, path: &str) -> Result<Self> {
        Self::parse(props).map_err(|r| package_err(path, r))
    }

    fn parse(props: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut info = BTreeMap::new();
        let mut other = BTreeMap::new();
        for (k, v) in props {
            match k.strip_prefix("bridge.") {
                Some(rest) if INFO_KEYS.contains(&rest) => {
                    info.insert(rest.to_string(), v.clone());
                }
                Some(rest) if KNOWN.contains(&rest) => {}
                Some(_) => return Err(format!("unknown key `{k}` (schema version {SCHEMA_VERSION})")),
                None => {
                    other.insert(k.clone(), v.clone());
                }
            }
        }
        let get = |k: &str| props.get(&format!("bridge.{k}")).map(String::as_str);
        let req = |k: &str| {
            get(k).ok_or_else(|| {
                if props.keys().any(|k| k.starts_with("bridge.")) {
                    format!("missing required key `bridge.{k}`")
                } else {
                    format!("missing required key `bridge.{k}`: this ONNX file is not a libbridge model package (no bridge.* metadata)")
                }
            })
        };
        let schema_version = uint("bridge.schema_version", req("schema_version")?, 1, u32::MAX as usize)? as u32;
        if schema_version != SCHEMA_VERSION {
            return Err(format!("schema version {schema_version} is not supported (this SDK reads {SCHEMA_VERSION})"));
        }
        let nonempty = |k: &str| -> Result<String, String> {
            let v = req(k)?.trim();
            if v.is_empty() { Err(format!("bridge.{k} is empty")) } else { Ok(v.to_string()) }
        };
        let family = nonempty("family")?;
        let schedule = nonempty("schedule")?;
        let parameterization = nonempty("parameterization")?;
        let family_params = match get("family_params") {
            Some(v) => json_obj("bridge.family_params", v)?,
            None => Map::new(),
        };
        let io = roles("bridge", &json_obj("bridge.inputs", req("inputs")?)?, &json_obj("bridge.outputs", req("outputs")?)?, true)?;
        let value_range = match serde_json::from_str::<Value>(req("value_range")?) {
            Ok(Value::Array(a)) if a.len() == 2 => match (a[0].as_f64(), a[1].as_f64()) {
                (Some(lo), Some(hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
                _ => return Err("bridge.value_range: expected [lo, hi] with finite lo < hi".into()),
            },
            _ => return Err("bridge.value_range: expected a JSON array [lo, hi]".into()),
        };
        let channel_order = match req("channel_order")?.trim() {
            "rgb" | "RGB" => ChannelOrder::Rgb,
            "bgr" | "BGR" => ChannelOrder::Bgr,
            o => return Err(format!("bridge.channel_order: `{o}` is not rgb or bgr")),
        };
        let channels = match get("channels") {
            Some(v) => uint("bridge.channels", v, 1, 3)?,
            None => 3,
        };
        if channels == 2 {
            return Err("bridge.channels: 2 is not supported (1 or 3)".into());
        }
        let sr_scale = get("sr_scale").map(|v| uint("bridge.sr_scale", v, 1, 16)).transpose()?.unwrap_or(1);
        let sr_upsample = get("sr_upsample").map(Upsample::parse).transpose()?.unwrap_or(Upsample::Bicubic);
        let prepass = get("prepass").map(crate::prepass::Prepass::from_json).transpose()?;
        if prepass.is_some() && sr_scale != 1 {
            return Err(format!("bridge.prepass needs bridge.sr_scale 1 (got {sr_scale}): it runs on the output-sized image"));
        }
        let spatial_multiple = get("spatial_multiple").map(|v| uint("bridge.spatial_multiple", v, 1, 4096)).transpose()?.unwrap_or(1);
        let sampler = nonempty("sampler")?;
        let sampler_params = match get("sampler_params") {
            Some(v) => json_obj("bridge.sampler_params", v)?,
            None => Map::new(),
        };
        for (k, v) in &sampler_params {
            if !matches!(k.as_str(), "eta" | "churn") || !v.as_f64().is_some_and(f64::is_finite) {
                return Err(format!("bridge.sampler_params: `{k}`: {v} (expected eta or churn, a finite number)"));
            }
        }
        let nfe = uint("bridge.nfe", req("nfe")?, 1, 100_000)?;
        let receptive_field = get("receptive_field").map(|v| uint("bridge.receptive_field", v, 0, 1 << 20)).transpose()?;
        let tile = match get("tile") {
            None => None,
            Some(v) => {
                let m = json_obj("bridge.tile", v)?;
                // Bounded like image sides, so no later size arithmetic can overflow.
                let f = |k: &str| {
                    m.get(k)
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n <= MAX_TILE_SIDE)
                        .ok_or_else(|| format!("bridge.tile: `{k}` must be an integer in 0..={MAX_TILE_SIDE}"))
                };
                let (size, overlap) = (f("size")?, f("overlap")?);
                if size == 0 || size % spatial_multiple != 0 || overlap > size / 2 {
                    return Err(format!(
                        "bridge.tile: size {size} must be a positive multiple of the spatial multiple {spatial_multiple} and at least twice the overlap {overlap}"
                    ));
                }
                Some(TileHint { size, overlap })
            }
        };
        let channel_ensemble = match get("channel_ensemble").map(str::trim) {
            None | Some("false") => false,
            Some("true") if channels == 3 => true,
            Some("true") => return Err(format!("bridge.channel_ensemble needs 3 channels (the package has {channels})")),
            Some(o) => return Err(format!("bridge.channel_ensemble: `{o}` is not true or false")),
        };
        let mean_network = get("mean_network").map(parse_mean).transpose()?;
        let (time_input, class_label) = parse_conventions(&get, &io)?;
        Ok(PackageMeta {
            schema_version,
            family,
            schedule,
            parameterization,
            family_params,
            io,
            value_range,
            channel_order,
            channels,
            sr_scale,
            sr_upsample,
            prepass,
            spatial_multiple,
            sampler,
            sampler_params,
            nfe,
            receptive_field,
            tile,
            channel_ensemble,
            mean_network,
            time_input,
            class_label,
            info,
            other,
        })
    }

    /// The metadata as `metadata_props` entries (for package writers; round-trips through
    /// [`PackageMeta::from_props`]).
    pub fn to_props(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            p.insert(format!("bridge.{k}"), v);
        };
        put("schema_version", self.schema_version.to_string());
        put("family", self.family.clone());
        put("schedule", self.schedule.clone());
        put("parameterization", self.parameterization.clone());
        if !self.family_params.is_empty() {
            put("family_params", Value::Object(self.family_params.clone()).to_string());
        }
        let (i, o) = role_maps(&self.io);
        put("inputs", i.to_string());
        put("outputs", o.to_string());
        put("value_range", json!([self.value_range.0, self.value_range.1]).to_string());
        put("channel_order", if self.channel_order == ChannelOrder::Rgb { "rgb" } else { "bgr" }.into());
        put("channels", self.channels.to_string());
        put("sr_scale", self.sr_scale.to_string());
        put("sr_upsample", self.sr_upsample.name().into());
        if let Some(p) = &self.prepass {
            put("prepass", p.to_json());
        }
        put("spatial_multiple", self.spatial_multiple.to_string());
        put("sampler", self.sampler.clone());
        if !self.sampler_params.is_empty() {
            put("sampler_params", Value::Object(self.sampler_params.clone()).to_string());
        }
        put("nfe", self.nfe.to_string());
        if let Some(r) = self.receptive_field {
            put("receptive_field", r.to_string());
        }
        if let Some(t) = self.tile {
            put("tile", json!({"size": t.size, "overlap": t.overlap}).to_string());
        }
        if self.channel_ensemble {
            put("channel_ensemble", "true".into());
        }
        if let Some(m) = &self.mean_network {
            let (i, o) = role_maps(&m.io);
            put(
                "mean_network",
                match m.t_net {
                    Some(t) => json!({"path": m.path, "sha256": m.sha256, "t_net": t, "inputs": i, "outputs": o}),
                    None => json!({"path": m.path, "sha256": m.sha256, "inputs": i, "outputs": o}),
                }
                .to_string(),
            );
        }
        if self.time_input != TimeInput::Value {
            put("time_input", self.time_input.name().into());
        }
        if let Some(c) = self.class_label {
            put("class_label", c.to_string());
        }
        for (k, v) in &self.info {
            put(k, v.clone());
        }
        for (k, v) in &self.other {
            p.insert(k.clone(), v.clone());
        }
        p
    }

    /// A minimal package description (for writers and tests): the given family triple, one
    /// `x_t` / `cond` / `t` input each, output `raw`, range [−1, 1], RGB, 3 channels.
    pub fn new(family: &str, schedule: &str, parameterization: &str, sampler: &str, nfe: usize) -> Self {
        PackageMeta {
            schema_version: SCHEMA_VERSION,
            family: family.into(),
            schedule: schedule.into(),
            parameterization: parameterization.into(),
            family_params: Map::new(),
            io: IoNames {
                state: "x_t".into(),
                cond: Some("cond".into()),
                time: Some("t".into()),
                class: None,
                noise: None,
                output: "raw".into(),
            },
            value_range: (-1.0, 1.0),
            channel_order: ChannelOrder::Rgb,
            channels: 3,
            sr_scale: 1,
            sr_upsample: Upsample::Bicubic,
            prepass: None,
            spatial_multiple: 1,
            sampler: sampler.into(),
            sampler_params: Map::new(),
            nfe,
            receptive_field: None,
            tile: None,
            channel_ensemble: false,
            mean_network: None,
            time_input: TimeInput::Value,
            class_label: None,
            info: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

/// `bridge.time_input` and `bridge.class_label` (conventions of networks exported from the
/// official repositories). A class label needs a `class` input.
fn parse_conventions<'p>(get: &dyn Fn(&str) -> Option<&'p str>, io: &IoNames) -> Result<(TimeInput, Option<i64>), String> {
    let time_input = match get("time_input").map(str::trim) {
        None | Some("value") => TimeInput::Value,
        Some("index") => TimeInput::Index,
        Some(o) => return Err(format!("bridge.time_input: `{o}` is not value or index")),
    };
    if time_input == TimeInput::Index && io.time.is_none() {
        return Err("bridge.time_input = index, but no input has role t".into());
    }
    let class_label = match get("class_label") {
        None => None,
        Some(v) => {
            let n: i64 = v.trim().parse().map_err(|_| format!("bridge.class_label: `{v}` is not an integer"))?;
            if n < 0 {
                return Err(format!("bridge.class_label: {n} is negative"));
            }
            if io.class.is_none() {
                return Err("bridge.class_label is set, but no input has role class".into());
            }
            Some(n)
        }
    };
    Ok((time_input, class_label))
}

fn parse_mean(v: &str) -> Result<MeanNetwork, String> {
    let m = json_obj("bridge.mean_network", v)?;
    let s = |k: &str| {
        m.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("bridge.mean_network: `{k}` must be a string"))
    };
    let path = s("path")?;
    let p = std::path::Path::new(&path);
    if path.is_empty() || p.is_absolute() || p.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("bridge.mean_network: path `{path}` must be relative, inside the package's folder"));
    }
    let sha256 = s("sha256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bridge.mean_network: sha256 must be 64 hex digits".into());
    }
    let t_net = match m.get("t_net") {
        None => None,
        Some(v) => Some(v.as_f64().filter(|t| t.is_finite()).ok_or("bridge.mean_network: `t_net` must be a finite number")?),
    };
    let obj = |k: &str| m.get(k).and_then(Value::as_object).cloned().ok_or_else(|| format!("bridge.mean_network: `{k}` must be an object"));
    let io = roles("bridge.mean_network", &obj("inputs")?, &obj("outputs")?, false)?;
    Ok(MeanNetwork { path, sha256, t_net, io })
}

/// Element type of a graph tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 16-bit float.
    F16,
    /// 64-bit integer.
    I64,
    /// 32-bit integer.
    I32,
    /// Anything else.
    Other,
}

/// A graph input or output as ONNX Runtime reports it (`-1`: dynamic dimension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSig {
    /// Name.
    pub name: String,
    /// Element type.
    pub elem: Elem,
    /// Dimensions (`-1` dynamic); `None` if not a tensor.
    pub shape: Option<Vec<i64>>,
}

/// How the time value is fed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeFeed {
    /// Element type (`F32`, `F64`, `I64`, `I32`; integers get the rounded value).
    pub elem: Elem,
    /// Shape kind: 0 = scalar `[]`, 1 = `[1]`, 2 = `[B]`, 3 = `[B, 1]`.
    pub kind: u8,
}

/// What the graph allows, found by [`check_io`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphPlan {
    /// A static batch size, if the graph fixes one.
    pub fixed_batch: Option<usize>,
    /// A static (height, width), if the graph fixes one.
    pub fixed_hw: Option<(usize, usize)>,
    /// Conditioning channels (the graph's, if static; else the image channels).
    pub cond_channels: usize,
    /// The time input, if any.
    pub time: Option<TimeFeed>,
    /// The class-label input, if any (an integer type).
    pub class: Option<TimeFeed>,
    /// Channels of a distilled generator's noise input (0: no noise input).
    pub noise_channels: usize,
}

fn dim(d: i64) -> Option<usize> {
    usize::try_from(d).ok()
}

/// Largest static batch a graph may declare (the restorer allocates whole batches of tiles).
pub const MAX_STATIC_BATCH: usize = 1024;

/// Check tensor names and roles against a graph's real inputs and outputs.
/// `channels` is the image channel count; `multiple` the spatial multiple.
pub fn check_io(io: &IoNames, channels: usize, multiple: usize, inputs: &[TensorSig], outputs: &[TensorSig]) -> Result<GraphPlan, String> {
    let find = |list: &[TensorSig], name: &str, what: &str| -> Result<TensorSig, String> {
        list.iter().find(|s| s.name == name).cloned().ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
            format!("metadata names {what} `{name}`, but the graph's {what}s are {names:?}")
        })
    };
    let named: Vec<&str> = [Some(io.state.as_str()), io.cond.as_deref(), io.time.as_deref(), io.class.as_deref(), io.noise.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    for s in inputs {
        if !named.contains(&s.name.as_str()) {
            return Err(format!("graph input `{}` has no role in bridge.inputs", s.name));
        }
    }
    let image4 = |s: &TensorSig, what: &str, ch: Option<usize>| -> Result<[i64; 4], String> {
        if s.elem != Elem::F32 {
            return Err(format!(
                "{what} `{}` must be float32 (got {:?}); export fp16 models with float32 inputs and outputs",
                s.name, s.elem
            ));
        }
        let sh = s.shape.as_ref().ok_or_else(|| format!("{what} `{}` is not a tensor", s.name))?;
        let a: [i64; 4] = sh.as_slice().try_into().map_err(|_| format!("{what} `{}` must be 4-D NCHW, has shape {sh:?}", s.name))?;
        if let (Some(c), Some(want)) = (dim(a[1]), ch)
            && c != want
        {
            return Err(format!("{what} `{}` has {c} channels, the package says {want}", s.name));
        }
        Ok(a)
    };
    let x = image4(&find(inputs, &io.state, "input")?, "input", Some(channels))?;
    let out = image4(&find(outputs, &io.output, "output")?, "output", Some(channels))?;
    let mut shapes = vec![("input", x), ("output", out)];
    let mut cond_channels = channels;
    if let Some(c) = &io.cond {
        let cs = image4(&find(inputs, c, "input")?, "conditioning input", None)?;
        if let Some(cc) = dim(cs[1]) {
            cond_channels = cc;
        }
        shapes.push(("conditioning input", cs));
    }
    let mut noise_channels = 0;
    if let Some(z) = &io.noise {
        let zs = image4(&find(inputs, z, "input")?, "noise input", None)?;
        noise_channels =
            dim(zs[1]).filter(|&c| c > 0).ok_or_else(|| format!("noise input `{z}` must have a static, positive channel count"))?;
        shapes.push(("noise input", zs));
    }
    // Batch, height and width must agree where static.
    let mut fixed = [None::<usize>; 3];
    for (what, s) in &shapes {
        for (k, idx) in [0usize, 2, 3].into_iter().enumerate() {
            if let Some(d) = dim(s[idx]) {
                if d == 0 {
                    return Err(format!("{what} has a zero dimension"));
                }
                // Static sizes become allocations: bounded like images and tile batches.
                let limit = if idx == 0 { MAX_STATIC_BATCH } else { MAX_TILE_SIDE };
                if d > limit {
                    return Err(format!("{what} has a static dimension {d} larger than {limit}"));
                }
                match fixed[k] {
                    Some(f) if f != d => return Err(format!("static dimension {idx} disagrees between graph tensors ({f} vs {d})")),
                    _ => fixed[k] = Some(d),
                }
            }
        }
    }
    let fixed_hw = match (fixed[1], fixed[2]) {
        (Some(h), Some(w)) => {
            if h % multiple != 0 || w % multiple != 0 {
                return Err(format!("the graph's fixed size {h}x{w} is not a multiple of bridge.spatial_multiple {multiple}"));
            }
            Some((h, w))
        }
        (None, None) => None,
        _ => return Err("the graph fixes only one of height and width; fix both or neither".into()),
    };
    let time = match &io.time {
        None => None,
        Some(t) => {
            let s = find(inputs, t, "input")?;
            if !matches!(s.elem, Elem::F32 | Elem::F64 | Elem::I64 | Elem::I32) {
                return Err(format!("time input `{t}` must be float32/64 or int32/64 (got {:?})", s.elem));
            }
            let sh = s.shape.ok_or_else(|| format!("time input `{t}` is not a tensor"))?;
            let kind = match sh.as_slice() {
                [] => 0,
                [1] if fixed[0] != Some(1) => 1,
                [_] => 2,
                [_, 1] | [_, -1] => 3,
                other => return Err(format!("time input `{t}` must be a scalar, [1], [B] or [B, 1]; has shape {other:?}")),
            };
            if let (2 | 3, Some(b)) = (kind, sh.first().copied().and_then(dim)) {
                if b == 0 || b > MAX_STATIC_BATCH {
                    return Err(format!("time input `{t}` has a static batch {b} outside 1..={MAX_STATIC_BATCH}"));
                }
                if fixed[0].is_some_and(|f| f != b) {
                    return Err(format!("time input `{t}` has batch {b}, the image inputs {:?}", fixed[0]));
                }
                fixed[0] = Some(b);
            }
            Some(TimeFeed { elem: s.elem, kind })
        }
    };
    let class = match &io.class {
        None => None,
        Some(c) => Some(class_feed(&find(inputs, c, "input")?, fixed[0])?),
    };
    Ok(GraphPlan { fixed_batch: fixed[0], fixed_hw, cond_channels, time, class, noise_channels })
}

/// A class-label input: int64 (or int32), `[B]`, `[1]`, `[]` or `[B, 1]`.
fn class_feed(s: &TensorSig, batch: Option<usize>) -> Result<TimeFeed, String> {
    if !matches!(s.elem, Elem::I64 | Elem::I32) {
        return Err(format!("class input `{}` must be int64 or int32 (got {:?})", s.name, s.elem));
    }
    let sh = s.shape.as_ref().ok_or_else(|| format!("class input `{}` is not a tensor", s.name))?;
    let kind = match sh.as_slice() {
        [] => 0,
        [1] if batch != Some(1) => 1,
        [_] => 2,
        [_, 1] | [_, -1] => 3,
        other => return Err(format!("class input `{}` must be [B], [1], a scalar or [B, 1]; has shape {other:?}", s.name)),
    };
    if let (2 | 3, Some(b), Some(f)) = (kind, sh.first().copied().and_then(dim), batch)
        && b != f
    {
        return Err(format!("class input `{}` has batch {b}, the image inputs {f}", s.name));
    }
    Ok(TimeFeed { elem: s.elem, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(name: &str, shape: &[i64]) -> TensorSig {
        TensorSig { name: name.into(), elem: Elem::F32, shape: Some(shape.to_vec()) }
    }

    fn base() -> PackageMeta {
        let mut m = PackageMeta::new("i2sb", "i2sb-symmetric", "i2sb", "i2sb", 10);
        m.family_params.insert("beta_max".into(), json!(0.3));
        m.tile = Some(TileHint { size: 256, overlap: 32 });
        m.spatial_multiple = 8;
        m.info.insert("name".into(), "test".into());
        m.other.insert("producer_note".into(), "x".into());
        m.mean_network = Some(MeanNetwork {
            path: "mean.onnx".into(),
            sha256: "ab".repeat(32),
            t_net: Some(1.0999),
            io: IoNames { state: "x".into(), cond: None, time: Some("t".into()), class: None, noise: None, output: "y".into() },
        });
        m
    }

    #[test]
    fn round_trip() {
        let mut m = base();
        let back = PackageMeta::from_props(&m.to_props(), "p").unwrap();
        assert_eq!(back, m);
        m.prepass = Some(crate::prepass::Prepass::wiener(3.0, 61).unwrap());
        assert_eq!(PackageMeta::from_props(&m.to_props(), "p").unwrap(), m);
        // A pre-pass runs on the output-sized image: not with an SR factor.
        let mut sr = m.to_props();
        sr.insert("bridge.sr_scale".into(), "4".into());
        let e = PackageMeta::from_props(&sr, "p").unwrap_err();
        assert!(e.to_string().contains("bridge.prepass needs bridge.sr_scale 1"), "{e}");
    }

    /// `bridge.channel_ensemble`: written only when on, read back, off when absent (every older
    /// package); anything but true/false, or on for a one-channel package, is a package error.
    #[test]
    fn channel_ensemble_key() {
        let mut m = base();
        assert!(!m.to_props().contains_key("bridge.channel_ensemble"));
        assert!(!PackageMeta::from_props(&m.to_props(), "p").unwrap().channel_ensemble);
        m.channel_ensemble = true;
        let props = m.to_props();
        assert_eq!(props["bridge.channel_ensemble"], "true");
        assert_eq!(PackageMeta::from_props(&props, "p").unwrap(), m);
        let mut off = props.clone();
        off.insert("bridge.channel_ensemble".into(), "false".into());
        assert!(!PackageMeta::from_props(&off, "p").unwrap().channel_ensemble);
        for v in ["1", "yes", "True", ""] {
            let mut p = props.clone();
            p.insert("bridge.channel_ensemble".into(), v.into());
            let e = PackageMeta::from_props(&p, "m.onnx").unwrap_err();
            assert!(e.to_string().contains("bridge.channel_ensemble"), "{v:?}: {e}");
        }
        let mut grey = props.clone();
        grey.insert("bridge.channels".into(), "1".into());
        let e = PackageMeta::from_props(&grey, "m.onnx").unwrap_err();
        assert!(e.to_string().contains("needs 3 channels"), "{e}");
    }

    /// Every required key, removed, is reported by name; bad values are typed package errors.
    #[test]
    fn missing_and_bad_keys() {
        let props = base().to_props();
        for k in [
            "schema_version",
            "family",
            "schedule",
            "parameterization",
            "inputs",
            "outputs",
            "value_range",
            "channel_order",
            "sampler",
            "nfe",
        ] {
            let mut p = props.clone();
            p.remove(&format!("bridge.{k}"));
            let e = PackageMeta::from_props(&p, "m.onnx").unwrap_err();
            assert!(matches!(&e, Error::Package { reason, .. } if reason.contains(k)), "{k}: {e}");
        }
        let bad = [
            ("schema_version", "2"),
            ("value_range", "[1, -1]"),
            ("value_range", "[0, NaN]"),
            ("value_range", "{}"),
            ("channel_order", "rbg"),
            ("channels", "2"),
            ("sr_scale", "0"),
            ("sr_upsample", "lanczos"),
            ("prepass", r#"{"kind": "median"}"#),
            ("prepass", r#"{"kind": "wiener", "blur_sigma": 3, "taps": 61, "nsr": -1, "nsr_8bit": 1e-3}"#),
            ("nfe", "0"),
            ("nfe", "-3"),
            ("inputs", r#"{"a": "x_t", "b": "x_t"}"#),
            ("inputs", r#"{"a": "cond"}"#),
            ("inputs", r#"{"a": "x_t", "b": "mask"}"#),
            ("outputs", r#"{}"#),
            ("outputs", "not json"),
            ("tile", r#"{"size": 100, "overlap": 8}"#),
            ("tile", r#"{"size": 64, "overlap": 40}"#),
            ("tile", r#"{"size": 64, "overlap": 9223372036854775808}"#),
            ("tile", r#"{"size": 18446744073709551615, "overlap": 8}"#),
            ("tile", r#"{"size": 64, "overlap": -8}"#),
            ("tile", r#"{"size": 64, "overlap": 1e300}"#),
            ("nfe", "18446744073709551616"),
            ("receptive_field", "99999999999999999999999"),
            ("sr_scale", "-1"),
            ("sampler_params", r#"{"etaa": 0.1}"#),
            ("mean_network", r#"{"path": "../m.onnx", "sha256": "00", "t_net": 1, "inputs": {}, "outputs": {}}"#),
            ("spelling_mistake", "1"),
        ];
        for (k, v) in bad {
            let mut p = props.clone();
            p.insert(format!("bridge.{k}"), v.into());
            let e = PackageMeta::from_props(&p, "m.onnx").unwrap_err();
            assert!(matches!(e, Error::Package { .. }), "{k}={v}: {e}");
        }
        let e = PackageMeta::from_props(&BTreeMap::new(), "plain.onnx").unwrap_err();
        assert!(e.to_string().contains("not a libbridge model package"), "{e}");
    }

    #[test]
    fn graph_checks() {
        // `PackageMeta::new`'s names: x_t, cond, t → raw.
        let io = PackageMeta::new("i2sb", "i2sb-symmetric", "i2sb", "i2sb", 10).io;
        let ins = vec![sig("x_t", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])];
        let outs = vec![sig("raw", &[-1, 3, -1, -1])];
        let plan = check_io(&io, 3, 8, &ins, &outs).unwrap();
        assert_eq!(
            plan,
            GraphPlan {
                fixed_batch: None,
                fixed_hw: None,
                cond_channels: 3,
                time: Some(TimeFeed { elem: Elem::F32, kind: 2 }),
                class: None,
                noise_channels: 0
            }
        );
        // Static shapes are found; a static batch of 1 with a [1] time is "[B]" too.
        let ins_fixed = vec![sig("x_t", &[1, 3, 64, 64]), sig("cond", &[1, 6, 64, 64]), sig("t", &[1])];
        let plan = check_io(&io, 3, 8, &ins_fixed, &[sig("raw", &[1, 3, 64, 64])]).unwrap();
        assert_eq!((plan.fixed_batch, plan.fixed_hw, plan.cond_channels), (Some(1), Some((64, 64)), 6));
        // A scalar (rank-0) integer time input.
        let ins_scalar = vec![sig("x_t", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), TensorSig { elem: Elem::I64, ..sig("t", &[]) }];
        assert_eq!(check_io(&io, 3, 8, &ins_scalar, &outs).unwrap().time, Some(TimeFeed { elem: Elem::I64, kind: 0 }));
        // Mismatches are errors with the graph's names.
        let cases: Vec<(Vec<TensorSig>, Vec<TensorSig>)> = vec![
            (vec![sig("x", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (ins.clone(), vec![sig("out", &[-1, 3, -1, -1])]),
            (vec![sig("x_t", &[-1, 4, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, 64, 64]), sig("cond", &[-1, 3, 32, 32]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, 60, 60]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[2, 2])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1]), sig("extra", &[1])], outs.clone()),
            (
                vec![TensorSig { elem: Elem::F16, ..sig("x_t", &[-1, 3, -1, -1]) }, sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])],
                outs.clone(),
            ),
            (vec![sig("x_t", &[-1, 3, 1 << 40, 1 << 40]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[1 << 20, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[-1])], outs.clone()),
            (vec![sig("x_t", &[-1, 3, -1, -1]), sig("cond", &[-1, 3, -1, -1]), sig("t", &[i64::MAX])], outs.clone()),
        ];
        for (i, (ins, outs)) in cases.iter().enumerate() {
            assert!(check_io(&io, 3, 8, ins, outs).is_err(), "case {i} passed");
        }
    }

    /// `bridge.time_input`, `bridge.class_label` and the `class` / `noise` roles round-trip and
    /// are checked against each other and the graph.
    #[test]
    fn conventions() {
        let mut m = base();
        m.time_input = TimeInput::Index;
        m.io.class = Some("label".into());
        m.io.noise = Some("z".into());
        m.class_label = Some(207);
        let props = m.to_props();
        assert_eq!(props["bridge.time_input"], "index");
        assert_eq!(PackageMeta::from_props(&props, "p").unwrap(), m);
        // Defaults: value time, no label, and older packages have neither key.
        let plain = base().to_props();
        assert!(!plain.contains_key("bridge.time_input"));
        assert_eq!(PackageMeta::from_props(&plain, "p").unwrap().time_input, TimeInput::Value);
        let bad = [("time_input", "step"), ("class_label", "-1"), ("class_label", "dog")];
        for (k, v) in bad {
            let mut p = props.clone();
            p.insert(format!("bridge.{k}"), v.into());
            assert!(matches!(PackageMeta::from_props(&p, "m").unwrap_err(), Error::Package { .. }), "{k}={v}");
        }
        // A label without a class input, an index without a time input.
        let mut p = plain.clone();
        p.insert("bridge.class_label".into(), "3".into());
        assert!(PackageMeta::from_props(&p, "m").is_err());
        let mut p = plain.clone();
        p.insert("bridge.time_input".into(), "index".into());
        p.insert("bridge.inputs".into(), r#"{"x_t": "x_t", "cond": "cond"}"#.into());
        assert!(PackageMeta::from_props(&p, "m").is_err());

        // Graph: the class input is an integer [B]; the noise input a static-channel image.
        let io = m.io.clone();
        let int = |name: &str, shape: &[i64]| TensorSig { elem: Elem::I64, ..sig(name, shape) };
        let ins = vec![
            sig("x_t", &[-1, 3, -1, -1]),
            sig("cond", &[-1, 3, -1, -1]),
            sig("t", &[-1]),
            int("label", &[-1]),
            sig("z", &[-1, 2, -1, -1]),
        ];
        let outs = vec![sig("raw", &[-1, 3, -1, -1])];
        let plan = check_io(&io, 3, 1, &ins, &outs).unwrap();
        assert_eq!((plan.class, plan.noise_channels), (Some(TimeFeed { elem: Elem::I64, kind: 2 }), 2));
        let mut float_label = ins.clone();
        float_label[3] = sig("label", &[-1]);
        let mut dyn_noise = ins.clone();
        dyn_noise[4] = sig("z", &[-1, -1, -1, -1]);
        let mut small_noise = ins.clone();
        small_noise[4] = sig("z", &[-1, 2, 8, 8]);
        let mut fixed = ins.clone();
        fixed[0] = sig("x_t", &[2, 3, -1, -1]);
        fixed[3] = int("label", &[3]);
        let mut missing = ins.clone();
        missing.pop();
        for (i, bad) in [float_label, dyn_noise, missing].iter().enumerate() {
            assert!(check_io(&io, 3, 1, bad, &outs).is_err(), "case {i}");
        }
        assert!(check_io(&io, 3, 1, &fixed, &outs).is_err());
        // A static noise size fixes the frame like any image input.
        assert_eq!(check_io(&io, 3, 1, &small_noise, &outs).unwrap().fixed_hw, Some((8, 8)));
    }
}
