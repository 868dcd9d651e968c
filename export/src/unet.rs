//! The project's one U-Net: configuration and forward pass, written once over [`Ops`].
//!
//! Architecture (details and exact op semantics in `docs/unet.md`):
//!
//! * input `h = concat(x, cond, z)` on channels (no `cond` when `cond_channels == 0`; `z`, a
//!   distilled generator's noise, only when `noise_channels > 0`), `conv_in` 3×3;
//! * time: sinusoidal embedding of `t·time_scale` (`channels` wide) → linear → SiLU → linear
//!   (`4·channels`), passed through SiLU once and projected into every residual block;
//! * `L = channel_mult.len()` levels; level `i` has `channels·channel_mult[i]` channels,
//!   `num_res_blocks` residual blocks (each followed by self-attention if `i ∈ attention_levels`)
//!   and, except the last, a 3×3 stride-2 convolution down;
//! * middle: residual block, attention (if `mid_attention`), residual block;
//! * up path mirrors the down path: every residual block takes the concatenation of the current
//!   features and the matching down block's output; levels are joined by nearest 2× upsampling and a
//!   3×3 convolution;
//! * output: GroupNorm → SiLU → 3×3 conv to `out_channels`.
//!
//! Height and width must be multiples of [`UNetConfig::spatial_multiple`] = `2^(L−1)`.

use crate::error::{Error, Result};
use crate::ops::{Collect, Init, Ops, ParamSpec};
use serde::{Deserialize, Serialize};

/// GroupNorm epsilon (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;

/// Base of the sinusoidal time embedding's frequency ladder.
pub const MAX_PERIOD: f64 = 10_000.0;

/// Largest accepted width (channels of any tensor) in a [`UNetConfig`].
pub const MAX_WIDTH: usize = 1 << 16;

/// Largest accepted `num_res_blocks`.
pub const MAX_RES_BLOCKS: usize = 64;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The U-Net's hyper-parameters. Stored in weights files and ONNX metadata as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UNetConfig {
    /// Channels of the state `x` (e.g. 3).
    pub in_channels: usize,
    /// Channels of the conditioning image `cond`, concatenated to `x`; 0 = unconditional (no `cond` input).
    pub cond_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Channels of a distilled generator's noise input `z`, concatenated after `cond`; 0 = none
    /// (every bridge network). Omitted from the JSON when 0, so older configs read unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noise_channels: usize,
    /// Base width: channels at level 0 and of the sinusoidal time embedding (even).
    pub channels: usize,
    /// Width multiplier per level; its length is the number of levels `L`.
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level (down path; the up path has the same number).
    pub num_res_blocks: usize,
    /// Levels (0-based) whose residual blocks are followed by self-attention.
    pub attention_levels: Vec<usize>,
    /// Self-attention in the middle block.
    pub mid_attention: bool,
    /// Attention heads (divides the width of every level with attention).
    pub heads: usize,
    /// GroupNorm groups (divides every level's width).
    pub groups: usize,
    /// The time input is multiplied by this before the sinusoidal embedding (e.g. 1000 for `t ∈ [0, 1]`).
    pub time_scale: f64,
}

impl UNetConfig {
    /// The tiny test network: 2 levels (16, 32 channels), one residual block per level, 2-head
    /// attention at level 1 and in the middle, 8 groups (138 051 parameters for 3+3 → 3 channels).
    pub fn tiny(in_channels: usize, cond_channels: usize, out_channels: usize) -> Self {
        UNetConfig {
            in_channels,
            cond_channels,
            out_channels,
            noise_channels: 0,
            channels: 16,
            channel_mult: vec![1, 2],
            num_res_blocks: 1,
            attention_levels: vec![1],
            mid_attention: true,
            heads: 2,
            groups: 8,
            time_scale: 1.0,
        }
    }

    /// The demo network (1 339 619 parameters, 5.4 MB of `f32` weights for 3+3 → 3 channels):
    /// 3 levels of 32, 64, 64 channels, 2 residual blocks per level, 4-head attention at the lowest
    /// level and in the middle, spatial multiple 4.
    pub fn demo(in_channels: usize, cond_channels: usize, out_channels: usize) -> Self {
        UNetConfig {
            in_channels,
            cond_channels,
            out_channels,
            noise_channels: 0,
            channels: 32,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 2,
            attention_levels: vec![2],
            mid_attention: true,
            heads: 4,
            groups: 8,
            time_scale: 1.0,
        }
    }

    /// Number of levels `L`.
    pub fn levels(&self) -> usize {
        self.channel_mult.len()
    }

    /// Height and width must be multiples of this: `2^(L−1)` (one halving per level but the last).
    pub fn spatial_multiple(&self) -> usize {
        1usize << self.levels().saturating_sub(1)
    }

    /// Width of level `i`.
    pub fn level_channels(&self, i: usize) -> usize {
        self.channels * self.channel_mult[i]
    }

    /// Width of the time embedding after its MLP.
    pub fn time_dim(&self) -> usize {
        4 * self.channels
    }

    /// Check that the configuration builds a network.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.in_channels == 0 || self.out_channels == 0 {
            return bad("in_channels and out_channels must be positive".into());
        }
        if self.channels == 0 || !self.channels.is_multiple_of(2) {
            return bad(format!("channels = {} must be positive and even (sin/cos halves)", self.channels));
        }
        if self.channel_mult.is_empty() || self.channel_mult.len() > 8 {
            return bad(format!("channel_mult must have 1 to 8 levels, has {}", self.channel_mult.len()));
        }
        if self.channel_mult.contains(&0) {
            return bad("channel_mult entries must be positive".into());
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks must be at least 1".into());
        }
        if self.groups == 0 || self.heads == 0 {
            return bad("groups and heads must be positive".into());
        }
        // A config can come from a file: bound every width and the block count so that the
        // products below cannot overflow and the parameter walk stays finite.
        let widths = [self.in_channels, self.cond_channels, self.out_channels, self.noise_channels, self.channels];
        if widths.iter().any(|&w| w > MAX_WIDTH)
            || self.channel_mult.iter().any(|&m| m > MAX_WIDTH / self.channels)
            || self.num_res_blocks > MAX_RES_BLOCKS
        {
            return bad(format!(
                "widths (channels × mult, in/cond/out/noise channels) must be at most {MAX_WIDTH} and \
                 num_res_blocks at most {MAX_RES_BLOCKS}"
            ));
        }
        // conv_in's output (the first residual block's input) is normalized too.
        if !self.channels.is_multiple_of(self.groups) {
            return bad(format!("channels = {} (conv_in's width) is not divisible by groups = {}", self.channels, self.groups));
        }
        let levels = self.levels();
        for i in 0..levels {
            let c = self.level_channels(i);
            if !c.is_multiple_of(self.groups) {
                return bad(format!("level {i} has {c} channels, not divisible by groups = {}", self.groups));
            }
        }
        for &i in &self.attention_levels {
            if i >= levels {
                return bad(format!("attention level {i} does not exist ({levels} levels)"));
            }
        }
        let mut attn: Vec<usize> = self.attention_levels.clone();
        if self.mid_attention {
            attn.push(levels - 1);
        }
        for i in attn {
            let c = self.level_channels(i);
            if !c.is_multiple_of(self.heads) {
                return bad(format!("level {i} has {c} channels, not divisible by heads = {}", self.heads));
            }
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!("time_scale = {} must be finite and positive", self.time_scale));
        }
        Ok(())
    }

    /// Every parameter, in forward order (validates the configuration).
    pub fn params(&self) -> Result<Vec<ParamSpec>> {
        let mut c = Collect::default();
        let cond = (self.cond_channels > 0).then_some(&());
        let z = (self.noise_channels > 0).then_some(&());
        unet_forward_with_noise(&mut c, self, &(), cond, z, &())?;
        Ok(c.params)
    }

    /// Number of scalar parameters (4 bytes each in a weights file or ONNX model).
    pub fn param_count(&self) -> Result<usize> {
        Ok(self.params()?.iter().map(ParamSpec::numel).sum())
    }

    /// The configuration as JSON (stored in weights files and ONNX metadata).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse [`UNetConfig::to_json`]'s output (unknown fields are errors); validates.
    pub fn from_json(s: &str) -> Result<Self> {
        let c: UNetConfig = serde_json::from_str(s).map_err(|e| Error::Config(format!("config JSON: {e}")))?;
        c.validate()?;
        Ok(c)
    }
}

/// `conv{k×k}` with bias; `zero` marks a layer that starts at zero in training.
#[allow(clippy::too_many_arguments)]
fn conv<O: Ops>(o: &mut O, path: &str, x: &O::T, cin: usize, cout: usize, k: usize, stride: usize, zero: bool) -> Result<O::T> {
    let fan = cin * k * k;
    let init = if zero { Init::ZeroOr(fan) } else { Init::FanIn(fan) };
    let w = o.param(&format!("{path}.weight"), &[cout, cin, k, k], init)?;
    let b = o.param(&format!("{path}.bias"), &[cout], init)?;
    o.conv2d(x, &w, &b, stride, k / 2)
}

fn linear<O: Ops>(o: &mut O, path: &str, x: &O::T, din: usize, dout: usize) -> Result<O::T> {
    let w = o.param(&format!("{path}.weight"), &[dout, din], Init::FanIn(din))?;
    let b = o.param(&format!("{path}.bias"), &[dout], Init::FanIn(din))?;
    o.linear(x, &w, &b)
}

fn norm<O: Ops>(o: &mut O, path: &str, x: &O::T, c: usize, groups: usize) -> Result<O::T> {
    let g = o.param(&format!("{path}.weight"), &[c], Init::Ones)?;
    let b = o.param(&format!("{path}.bias"), &[c], Init::Zeros)?;
    o.group_norm(x, groups, NORM_EPS, &g, &b)
}

/// Residual block: `skip(x) + conv2(SiLU(GN(conv1(SiLU(GN(x))) + emb_proj))))`.
fn res_block<O: Ops>(o: &mut O, cfg: &UNetConfig, path: &str, x: &O::T, emb: &O::T, cin: usize, cout: usize) -> Result<O::T> {
    let h = norm(o, &format!("{path}.norm1"), x, cin, cfg.groups)?;
    let h = o.silu(&h)?;
    let h = conv(o, &format!("{path}.conv1"), &h, cin, cout, 3, 1, false)?;
    let e = linear(o, &format!("{path}.emb"), emb, cfg.time_dim(), cout)?;
    let e = o.reshape(&e, &[0, -1, 1, 1])?;
    let h = o.add(&h, &e)?;
    let h = norm(o, &format!("{path}.norm2"), &h, cout, cfg.groups)?;
    let h = o.silu(&h)?;
    let h = conv(o, &format!("{path}.conv2"), &h, cout, cout, 3, 1, true)?;
    let skip = if cin == cout { o.share(x) } else { conv(o, &format!("{path}.skip"), x, cin, cout, 1, 1, false)? };
    o.add(&skip, &h)
}

/// Multi-head self-attention over the `H·W` positions: `x + proj(attn(GN(x)))`.
fn attn_block<O: Ops>(o: &mut O, cfg: &UNetConfig, path: &str, x: &O::T, c: usize) -> Result<O::T> {
    let heads = cfg.heads as i64;
    let d = c / cfg.heads;
    let h = norm(o, &format!("{path}.norm"), x, c, cfg.groups)?;
    // [N, C, H, W] → [N, heads, d, H·W] (channel c = head·d + j).
    let split = [0, heads, d as i64, -1];
    let q = conv(o, &format!("{path}.q"), &h, c, c, 1, 1, false)?;
    let q = o.reshape(&q, &split)?;
    let k = conv(o, &format!("{path}.k"), &h, c, c, 1, 1, false)?;
    let k = o.reshape(&k, &split)?;
    let v = conv(o, &format!("{path}.v"), &h, c, c, 1, 1, false)?;
    let v = o.reshape(&v, &split)?;
    // Scores s[i, j] = q_i·k_j/√d, softmax over j; out_i = Σ_j a[i, j]·v_j.
    let qt = o.transpose(&q, &[0, 1, 3, 2])?;
    let qt = o.scale(&qt, (1.0 / (d as f64).sqrt()) as f32)?;
    let s = o.matmul(&qt, &k)?;
    let a = o.softmax_last(&s)?;
    let vt = o.transpose(&v, &[0, 1, 3, 2])?;
    let out = o.matmul(&a, &vt)?;
    let out = o.transpose(&out, &[0, 1, 3, 2])?;
    let out = o.reshape_like(&out, x)?;
    let out = conv(o, &format!("{path}.proj"), &out, c, c, 1, 1, true)?;
    o.add(x, &out)
}

/// Sinusoidal embedding `[sin(t·f_0), …, sin(t·f_{h−1}), cos(t·f_0), …]` with
/// `f_i = time_scale·MAX_PERIOD^(−i/h)`, `h = channels/2`; `t` `[N]` → `[N, channels]`.
fn time_embedding<O: Ops>(o: &mut O, cfg: &UNetConfig, t: &O::T) -> Result<O::T> {
    let half = cfg.channels / 2;
    let freqs: Vec<f32> = (0..half).map(|i| (cfg.time_scale * (-(MAX_PERIOD.ln()) * i as f64 / half as f64).exp()) as f32).collect();
    let f = o.constant(&[half], &freqs)?;
    let t = o.reshape(t, &[-1, 1])?;
    let args = o.mul(&t, &f)?;
    let s = o.sin(&args)?;
    let c = o.cos(&args)?;
    o.concat(&[&s, &c], 1)
}

/// The U-Net forward pass: `x` `[N, in_channels, H, W]`, `cond` `[N, cond_channels, H, W]` (present
/// exactly when `cond_channels > 0`), `t` `[N]` → `[N, out_channels, H, W]`. A network with noise
/// channels needs [`unet_forward_with_noise`].
pub fn unet_forward<O: Ops>(o: &mut O, cfg: &UNetConfig, x: &O::T, cond: Option<&O::T>, t: &O::T) -> Result<O::T> {
    unet_forward_with_noise(o, cfg, x, cond, None, t)
}

/// [`unet_forward`] with a distilled generator's noise `z` `[N, noise_channels, H, W]` (present
/// exactly when `noise_channels > 0`), concatenated after `cond`.
pub fn unet_forward_with_noise<O: Ops>(
    o: &mut O,
    cfg: &UNetConfig,
    x: &O::T,
    cond: Option<&O::T>,
    z: Option<&O::T>,
    t: &O::T,
) -> Result<O::T> {
    cfg.validate()?;
    let mut parts = vec![x];
    for (field, what, given, n) in
        [("cond_channels", "a conditioning input", cond, cfg.cond_channels), ("noise_channels", "a noise input", z, cfg.noise_channels)]
    {
        match (given, n) {
            (None, 0) => {}
            (Some(c), n) if n > 0 => parts.push(c),
            (c, n) => {
                return Err(Error::Config(format!("{field} = {n} but {what} was {}", if c.is_some() { "given" } else { "not given" })));
            }
        }
    }
    let input = if parts.len() == 1 { o.share(x) } else { o.concat(&parts, 1)? };
    let levels = cfg.levels();
    let groups = cfg.groups;

    let emb = time_embedding(o, cfg, t)?;
    let emb = linear(o, "time.lin1", &emb, cfg.channels, cfg.time_dim())?;
    let emb = o.silu(&emb)?;
    let emb = linear(o, "time.lin2", &emb, cfg.time_dim(), cfg.time_dim())?;
    // Every residual block applies SiLU before its own projection: compute it once.
    let emb = o.silu(&emb)?;

    let mut h = conv(o, "conv_in", &input, cfg.in_channels + cfg.cond_channels + cfg.noise_channels, cfg.channels, 3, 1, false)?;
    let mut ch = cfg.channels;
    let mut skips: Vec<(O::T, usize)> = Vec::new();
    for i in 0..levels {
        let c = cfg.level_channels(i);
        for j in 0..cfg.num_res_blocks {
            h = res_block(o, cfg, &format!("down.{i}.res.{j}"), &h, &emb, ch, c)?;
            ch = c;
            if cfg.attention_levels.contains(&i) {
                h = attn_block(o, cfg, &format!("down.{i}.attn.{j}"), &h, c)?;
            }
            skips.push((o.share(&h), c));
        }
        if i + 1 < levels {
            h = conv(o, &format!("down.{i}.down"), &h, c, c, 3, 2, false)?;
        }
    }

    h = res_block(o, cfg, "mid.res.0", &h, &emb, ch, ch)?;
    if cfg.mid_attention {
        h = attn_block(o, cfg, "mid.attn", &h, ch)?;
    }
    h = res_block(o, cfg, "mid.res.1", &h, &emb, ch, ch)?;

    for i in (0..levels).rev() {
        let c = cfg.level_channels(i);
        for j in 0..cfg.num_res_blocks {
            let (s, sc) = skips.pop().ok_or_else(|| Error::Config("skip stack underflow".into()))?;
            let cat = o.concat(&[&h, &s], 1)?;
            h = res_block(o, cfg, &format!("up.{i}.res.{j}"), &cat, &emb, ch + sc, c)?;
            ch = c;
            if cfg.attention_levels.contains(&i) {
                h = attn_block(o, cfg, &format!("up.{i}.attn.{j}"), &h, c)?;
            }
        }
        if i > 0 {
            h = o.upsample_nearest2x(&h)?;
            h = conv(o, &format!("up.{i}.up"), &h, c, c, 3, 1, false)?;
        }
    }

    let h = norm(o, "out.norm", &h, ch, groups)?;
    let h = o.silu(&h)?;
    conv(o, "out.conv", &h, ch, cfg.out_channels, 3, 1, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form parameter count of the architecture (written independently of the forward).
    fn formula(c: &UNetConfig) -> usize {
        let t = 4 * c.channels;
        let conv = |ci: usize, co: usize, k: usize| co * ci * k * k + co;
        let res = |ci: usize, co: usize| {
            2 * ci + conv(ci, co, 3) + t * co + co + 2 * co + conv(co, co, 3) + if ci != co { conv(ci, co, 1) } else { 0 }
        };
        let attn = |ch: usize| 2 * ch + 4 * conv(ch, ch, 1);
        let mut n = c.channels * t + t + t * t + t + conv(c.in_channels + c.cond_channels + c.noise_channels, c.channels, 3);
        let (mut ch, mut skips) = (c.channels, vec![]);
        for (i, m) in c.channel_mult.iter().enumerate() {
            let w = c.channels * m;
            for _ in 0..c.num_res_blocks {
                n += res(ch, w) + if c.attention_levels.contains(&i) { attn(w) } else { 0 };
                ch = w;
                skips.push(w);
            }
            n += if i + 1 < c.levels() { conv(w, w, 3) } else { 0 };
        }
        n += 2 * res(ch, ch) + if c.mid_attention { attn(ch) } else { 0 };
        for i in (0..c.levels()).rev() {
            let w = c.level_channels(i);
            for _ in 0..c.num_res_blocks {
                n += res(ch + skips.pop().unwrap(), w) + if c.attention_levels.contains(&i) { attn(w) } else { 0 };
                ch = w;
            }
            n += if i > 0 { conv(w, w, 3) } else { 0 };
        }
        n + 2 * ch + conv(ch, c.out_channels, 3)
    }

    /// Parameter counts agree with the closed form; the tiny and demo sizes are as documented.
    #[test]
    fn param_counts() {
        let mut other = UNetConfig::demo(1, 0, 2);
        other.num_res_blocks = 3;
        other.attention_levels = vec![0, 2];
        other.mid_attention = false;
        for c in [UNetConfig::tiny(3, 3, 3), UNetConfig::demo(3, 3, 3), UNetConfig::tiny(1, 0, 1), other] {
            assert_eq!(c.param_count().unwrap(), formula(&c), "{c:?}");
        }
        assert_eq!(UNetConfig::tiny(3, 3, 3).param_count().unwrap(), 138_051);
        let n = UNetConfig::demo(3, 3, 3).param_count().unwrap();
        assert_eq!(n, 1_339_619);
        assert!(4 * n <= 8_000_000, "demo weights exceed 8 MB");
        // conv_in of the conditional net sees 6 channels, the unconditional one 3.
        let p = UNetConfig::tiny(3, 0, 3).params().unwrap();
        let ci = p.iter().find(|p| p.path == "conv_in.weight").unwrap();
        assert_eq!(ci.shape, vec![16, 3, 3, 3]);
    }

    /// Paths are unique, dotted and stable (`down.1.res.0.conv1.weight` exists in the tiny net).
    #[test]
    fn param_paths() {
        let p = UNetConfig::tiny(3, 3, 3).params().unwrap();
        let mut names: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        for want in ["down.1.res.0.conv1.weight", "down.1.attn.0.q.weight", "mid.attn.proj.bias", "up.1.up.weight", "out.conv.weight"] {
            assert!(names.contains(&want), "{want} missing");
        }
        // Level 0 → 1 changes width: a 1×1 skip conv; up blocks see concatenated inputs.
        let skip = p.iter().find(|p| p.path == "down.1.res.0.skip.weight").unwrap();
        assert_eq!(skip.shape, vec![32, 16, 1, 1]);
        let up = p.iter().find(|p| p.path == "up.0.res.0.norm1.weight").unwrap();
        assert_eq!(up.shape, vec![32 + 16]);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), p.len());
    }

    #[test]
    fn validation_rejects_bad_configs() {
        let ok = UNetConfig::tiny(3, 3, 3);
        ok.validate().unwrap();
        let cases: [fn(&mut UNetConfig); 12] = [
            |c| c.channels = 15,
            // Every level width is a multiple of 8, but conv_in's 12 channels are not.
            |c| (c.channels, c.channel_mult) = (12, vec![2, 4]),
            // Absurd sizes (a config read from a file) are errors, not overflows.
            |c| c.channels = usize::MAX / 2 + 1,
            |c| c.channel_mult = vec![1, usize::MAX],
            |c| c.num_res_blocks = 1 << 40,
            |c| c.groups = 5,
            |c| c.heads = 3,
            |c| c.attention_levels = vec![2],
            |c| c.channel_mult.clear(),
            |c| c.num_res_blocks = 0,
            |c| c.time_scale = f64::NAN,
            |c| c.out_channels = 0,
        ];
        for f in cases {
            let mut c = ok.clone();
            f(&mut c);
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{c:?} accepted");
            assert!(c.params().is_err());
        }
    }

    #[test]
    fn cond_presence_must_match_config() {
        let mut c = Collect::default();
        let e = unet_forward(&mut c, &UNetConfig::tiny(3, 3, 3), &(), None, &()).unwrap_err();
        assert!(e.to_string().contains("not given"));
        let e = unet_forward(&mut c, &UNetConfig::tiny(3, 0, 3), &(), Some(&()), &()).unwrap_err();
        assert!(e.to_string().contains("given"));
    }

    #[test]
    fn config_json_round_trip_and_spatial_multiple() {
        let c = UNetConfig::demo(3, 3, 3);
        assert_eq!(UNetConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(UNetConfig::from_json(r#"{"bogus": 1}"#).is_err());
        assert_eq!(c.spatial_multiple(), 4);
        assert_eq!(UNetConfig::tiny(1, 0, 1).spatial_multiple(), 2);
        // A generator's noise channels widen conv_in only, and appear in the JSON only when set.
        assert!(!c.to_json().contains("noise_channels"));
        let mut g = c.clone();
        g.noise_channels = 2;
        assert_eq!(UNetConfig::from_json(&g.to_json()).unwrap(), g);
        let conv_in = |cfg: &UNetConfig| cfg.params().unwrap().into_iter().find(|p| p.path == "conv_in.weight").unwrap().shape;
        assert_eq!(conv_in(&g), vec![c.channels, 3 + 3 + 2, 3, 3]);
        assert_eq!(g.param_count().unwrap(), c.param_count().unwrap() + 2 * 9 * c.channels);
        let mut col = Collect::default();
        let e = unet_forward(&mut col, &g, &(), Some(&()), &()).unwrap_err();
        assert!(e.to_string().contains("noise_channels = 2"), "{e}");
    }
}
