//! Image-quality evaluation: PSNR and SSIM, and a model package's scores over image pairs for
//! several samplers and NFEs (what `bridge eval` runs and the model cards report).
//!
//! **Metrics** (images `[B, C, H, W]` in [0, 1], data range 1, every channel of every image):
//!
//! * PSNR = `10·log10(1/MSE)` with the MSE over all values of an image; `+∞` for identical
//!   images. A set's PSNR is the mean of the per-image values.
//! * SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, their reference `ssim_index.m`): 11 × 11
//!   Gaussian window with σ = 1.5 (normalized), `C1 = (0.01)²`, `C2 = (0.03)²`, local statistics
//!   with the window's weights (biased variances), the map over the *valid* region (no padding),
//!   its mean per channel, then the mean over channels (what scikit-image's
//!   `structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
//!   data_range=1, channel_axis=…)` computes). Images need at least 11 × 11 pixels.
//!
//! **Evaluation.** [`evaluate`] restores every degraded image with the package (through the same
//! [`Restorer`] `bridge restore` uses, so tiling, padding and SR up-sampling are the product's),
//! for each [`Setting`] (sampler, NFE, η), with a fixed seed, and averages PSNR/SSIM against the
//! clean image. [`baseline`] scores the input itself, up-sampled by the package's SR kernel
//! (the bicubic baseline for SR, the identity otherwise); [`classical`] scores a classical
//! restorer of [`crate::baseline`] that knows the degradation (Wiener, back-projection, NLM).
//! Besides PSNR/SSIM each row has the **colour shift**: the mean signed error of the output
//! against the ground truth per channel (R, G, B) in 0–255 levels, so a colour cast shows.
//! [`markdown`] and `plot_png` (feature `cli`; `plotters` with a bundled font, so no system
//! font is needed) render the results.

use crate::baseline::Params;
use crate::image::upsample;
use crate::restorer::Restorer;
use crate::runtime::package::Upsample;
use crate::runtime::parse_sampler;
use crate::{Error, Result, Tensor, TensorView};
use std::time::Instant;

/// Side of the SSIM window.
pub const SSIM_WIN: usize = 11;
/// σ of the SSIM window.
pub const SSIM_SIGMA: f64 = 1.5;

fn check_pair(a: TensorView<'_>, b: TensorView<'_>) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape("image pair", a.shape(), b.shape()));
    }
    if a.is_empty() {
        return Err(Error::Image("empty image".into()));
    }
    Ok(())
}

/// Mean PSNR (dB) over the images of a batch, data range 1.
pub fn psnr(a: TensorView<'_>, b: TensorView<'_>) -> Result<f64> {
    check_pair(a, b)?;
    let n = a.shape()[0];
    let mut sum = 0.0;
    for i in 0..n {
        let (x, y) = (a.index_axis(ndarray::Axis(0), i), b.index_axis(ndarray::Axis(0), i));
        let mse = x.iter().zip(y.iter()).map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2)).sum::<f64>() / x.len() as f64;
        sum += if mse == 0.0 { f64::INFINITY } else { -10.0 * mse.log10() };
    }
    Ok(sum / n as f64)
}

/// The normalized 1-D Gaussian of the SSIM window.
fn window() -> [f64; SSIM_WIN] {
    let r = (SSIM_WIN / 2) as f64;
    let mut w = [0.0; SSIM_WIN];
    for (k, v) in w.iter_mut().enumerate() {
        *v = (-(k as f64 - r).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp();
    }
    let s: f64 = w.iter().sum();
    w.map(|v| v / s)
}

/// Valid-mode separable filtering of an `h × w` plane (row-major) with `g`.
fn filter_valid(p: &[f64], h: usize, w: usize, g: &[f64; SSIM_WIN]) -> Vec<f64> {
    let (oh, ow) = (h + 1 - SSIM_WIN, w + 1 - SSIM_WIN);
    let mut rows = vec![0.0; h * ow];
    for y in 0..h {
        for x in 0..ow {
            rows[y * ow + x] = (0..SSIM_WIN).map(|k| g[k] * p[y * w + x + k]).sum();
        }
    }
    let mut out = vec![0.0; oh * ow];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..SSIM_WIN).map(|k| g[k] * rows[(y + k) * ow + x]).sum();
        }
    }
    out
}

/// SSIM of two planes (module docs).
fn ssim_plane(x: &[f64], y: &[f64], h: usize, w: usize) -> f64 {
    const C1: f64 = 0.01 * 0.01;
    const C2: f64 = 0.03 * 0.03;
    let g = window();
    let f = |v: &[f64]| filter_valid(v, h, w, &g);
    let prod = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<f64>>();
    let (mx, my) = (f(x), f(y));
    let (xx, yy, xy) = (f(&prod(x, x)), f(&prod(y, y)), f(&prod(x, y)));
    let n = mx.len();
    let mut s = 0.0;
    for i in 0..n {
        let (a, b) = (mx[i], my[i]);
        let (va, vb, cov) = (xx[i] - a * a, yy[i] - b * b, xy[i] - a * b);
        s += ((2.0 * a * b + C1) * (2.0 * cov + C2)) / ((a * a + b * b + C1) * (va + vb + C2));
    }
    s / n as f64
}

/// Mean SSIM over the images and channels of a batch (module docs).
pub fn ssim(a: TensorView<'_>, b: TensorView<'_>) -> Result<f64> {
    check_pair(a, b)?;
    let (n, c, h, w) = a.dim();
    if h < SSIM_WIN || w < SSIM_WIN {
        return Err(Error::Image(format!("SSIM needs at least {SSIM_WIN}×{SSIM_WIN} pixels, got {h}×{w}")));
    }
    let mut sum = 0.0;
    for i in 0..n {
        for ch in 0..c {
            let plane = |t: TensorView<'_>| t.slice(ndarray::s![i, ch, .., ..]).iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
            sum += ssim_plane(&plane(a), &plane(b), h, w);
        }
    }
    Ok(sum / (n * c) as f64)
}

/// One evaluation image: clean `[1, 3, H, W]` and degraded `[1, 3, H/s, W/s]`, RGB in [0, 1].
#[derive(Clone, Debug)]
pub struct Pair {
    /// File name.
    pub name: String,
    /// The ground truth.
    pub clean: Tensor,
    /// The model's input.
    pub degraded: Tensor,
}

/// A sampler configuration to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// Sampler name (as `bridge restore --sampler`).
    pub sampler: String,
    /// Network evaluations.
    pub nfe: usize,
    /// η for `dbim` / `implicit`.
    pub eta: Option<f64>,
}

impl Setting {
    /// `sampler[@eta]`.
    pub fn label(&self) -> String {
        match self.eta {
            Some(e) => format!("{} (eta {e})", self.sampler),
            None => self.sampler.clone(),
        }
    }
}

/// Scores of one setting (or the baseline) over a set of pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Sampler label (`input` for the baseline).
    pub label: String,
    /// NFE (0 for the baseline).
    pub nfe: usize,
    /// Mean PSNR (dB).
    pub psnr: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// Mean seconds per image (restoration only).
    pub seconds: f64,
    /// Mean signed error (output − truth) per channel, R, G, B, in 0–255 levels.
    pub shift: [f64; 3],
}

/// Mean signed error `a − b` per channel (the first three of `[B, C, H, W]`), in 0–255 levels.
pub fn colour_shift(a: TensorView<'_>, b: TensorView<'_>) -> Result<[f64; 3]> {
    check_pair(a, b)?;
    let c = a.shape()[1];
    let mut out = [0.0; 3];
    for (ch, o) in out.iter_mut().enumerate().take(c) {
        let (x, y) = (a.index_axis(ndarray::Axis(1), ch), b.index_axis(ndarray::Axis(1), ch));
        *o = 255.0 * x.iter().zip(y.iter()).map(|(&p, &q)| f64::from(p) - f64::from(q)).sum::<f64>() / x.len() as f64;
    }
    Ok(out)
}

/// Running sums of a row's scores over images.
#[derive(Default)]
struct Scores {
    psnr: f64,
    ssim: f64,
    shift: [f64; 3],
    seconds: f64,
    n: usize,
}

impl Scores {
    fn add(&mut self, out: TensorView<'_>, clean: TensorView<'_>, seconds: f64) -> Result<()> {
        self.psnr += psnr(out, clean)?;
        self.ssim += ssim(out, clean)?;
        for (s, v) in self.shift.iter_mut().zip(colour_shift(out, clean)?) {
            *s += v;
        }
        self.seconds += seconds;
        self.n += 1;
        Ok(())
    }

    fn row(&self, label: String, nfe: usize) -> Row {
        let n = self.n.max(1) as f64;
        Row { label, nfe, psnr: self.psnr / n, ssim: self.ssim / n, seconds: self.seconds / n, shift: self.shift.map(|v| v / n) }
    }
}

/// Score the degraded inputs themselves, up-sampled by `scale` with `kind` (bicubic for SR, the
/// identity for `scale = 1`).
pub fn baseline(pairs: &[Pair], scale: usize, kind: Upsample) -> Result<Row> {
    let mut sc = Scores::default();
    for pair in pairs {
        let up = upsample(pair.degraded.view(), scale, kind)?.mapv(|v| v.clamp(0.0, 1.0));
        sc.add(up.view(), pair.clean.view(), 0.0)?;
    }
    let label = if scale > 1 { format!("input ({} x{scale})", kind.name()) } else { "input (identity)".into() };
    Ok(sc.row(label, 0))
}

/// Score a classical baseline ([`crate::baseline`]) over the pairs (NFE 0; seconds per image
/// are its own run time).
pub fn classical(pairs: &[Pair], params: &Params, mut progress: impl FnMut(usize)) -> Result<Row> {
    if pairs.is_empty() {
        return Err(Error::Image("no image pairs to evaluate".into()));
    }
    let mut sc = Scores::default();
    for (i, pair) in pairs.iter().enumerate() {
        let t0 = Instant::now();
        let out = params.restore(pair.degraded.index_axis(ndarray::Axis(0), 0))?.insert_axis(ndarray::Axis(0));
        let secs = t0.elapsed().as_secs_f64();
        if out.shape() != pair.clean.shape() {
            return Err(Error::shape(format!("baseline output for {}", pair.name), pair.clean.shape(), out.shape()));
        }
        sc.add(out.view(), pair.clean.view(), secs)?;
        progress(i);
    }
    Ok(sc.row(params.label(), 0))
}

/// Restore every pair with each setting (seed `seed`) and score it; `progress` is called after
/// each image with `(setting index, image index)`.
pub fn evaluate(
    restorer: &mut Restorer,
    pairs: &[Pair],
    settings: &[Setting],
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<Row>> {
    if pairs.is_empty() {
        return Err(Error::Image("no image pairs to evaluate".into()));
    }
    let mut rows = Vec::with_capacity(settings.len());
    for (si, st) in settings.iter().enumerate() {
        let opts = restorer.options_mut();
        opts.sampler = parse_sampler(&st.sampler, st.eta, None)?;
        opts.nfe = st.nfe;
        opts.seed = seed;
        let mut sc = Scores::default();
        for (i, pair) in pairs.iter().enumerate() {
            let t0 = Instant::now();
            let out = restorer.restore_rgb(pair.degraded.view())?;
            let secs = t0.elapsed().as_secs_f64();
            if out.shape() != pair.clean.shape() {
                return Err(Error::shape(format!("restored {}", pair.name), pair.clean.shape(), out.shape()));
            }
            sc.add(out.view(), pair.clean.view(), secs)?;
            progress(si, i);
        }
        rows.push(sc.row(st.label() + &option_suffix(restorer.options()), st.nfe));
    }
    Ok(rows)
}

/// What a row's label adds for the restore options that change every network call or the
/// output: the channel ensemble (the caller's or the package's) and the colour fix.
fn option_suffix(o: &crate::restorer::RestoreOptions) -> String {
    let mut s = String::new();
    if o.channel_ensemble {
        s.push_str(" + channel ensemble");
    }
    if let crate::color_fix::ColorFix::Wavelet { levels } = o.color_fix {
        s.push_str(&format!(" + color fix ({levels})"));
    }
    s
}

/// A markdown table of the rows.
pub fn markdown(title: &str, rows: &[Row], images: usize) -> String {
    let mut s = format!(
        "### {title}\n\n{images} image pairs; PSNR (dB) and SSIM on RGB in [0, 1] (mean over images); colour shift: mean signed error of the output against the truth per channel (R / G / B, 0–255 levels).\n\n"
    );
    s.push_str("| sampler | NFE | PSNR | SSIM | s/image | colour shift R / G / B |\n|---|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let nfe = if r.nfe == 0 { "–".to_string() } else { r.nfe.to_string() };
        let secs = if r.nfe == 0 && r.seconds == 0.0 { "–".to_string() } else { format!("{:.2}", r.seconds) };
        let [sr, sg, sb] = r.shift;
        s.push_str(&format!("| {} | {nfe} | {:.2} | {:.4} | {secs} | {sr:+.2} / {sg:+.2} / {sb:+.2} |\n", r.label, r.psnr, r.ssim));
    }
    s
}

/// A PNG plot (`width × height`) of PSNR and SSIM against NFE, one line per sampler, with the
/// baseline (NFE 0 rows) as a dashed level. Text uses the bundled DejaVu Sans, so it renders the
/// same on a headless machine without fonts.
#[cfg(feature = "cli")]
pub fn plot_png(title: &str, rows: &[Row], path: &std::path::Path) -> Result<()> {
    use plotters::prelude::*;
    use std::collections::BTreeMap;
    static FONT: std::sync::Once = std::sync::Once::new();
    FONT.call_once(|| {
        // Registration only fails on a malformed font; the bundled one is fine.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
    let (w, h) = (1000u32, 420u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let err = |e: &dyn std::fmt::Display| Error::Image(format!("plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
        let panels = root.split_evenly((1, 2));
        let mut series: BTreeMap<&str, Vec<(usize, f64, f64)>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.nfe > 0) {
            series.entry(r.label.as_str()).or_default().push((r.nfe, r.psnr, r.ssim));
        }
        let base: Vec<&Row> = rows.iter().filter(|r| r.nfe == 0).collect();
        let max_nfe = rows.iter().map(|r| r.nfe).max().unwrap_or(1).max(2) as f64;
        for (pi, (panel, name)) in panels.iter().zip(["PSNR (dB)", "SSIM"]).enumerate() {
            let val = |r: &Row| if pi == 0 { r.psnr } else { r.ssim };
            let vals: Vec<f64> = rows.iter().map(val).filter(|v| v.is_finite()).collect();
            let (lo, hi) = vals.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let pad = ((hi - lo) * 0.1).max(if pi == 0 { 0.2 } else { 0.005 });
            let (lo, hi) = if vals.is_empty() { (0.0, 1.0) } else { (lo - pad, hi + pad) };
            let mut chart = ChartBuilder::on(panel)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .caption(name, ("sans-serif", 16))
                .build_cartesian_2d((0.5f64..max_nfe * 1.15).log_scale(), lo..hi)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc("NFE")
                .y_desc(name)
                .label_style(("sans-serif", 12))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .draw()
                .map_err(|e| err(&e))?;
            for (si, (label, pts)) in series.iter().enumerate() {
                let color = Palette99::pick(si).to_rgba();
                let line: Vec<(f64, f64)> = pts.iter().map(|&(n, p, s)| (n as f64, if pi == 0 { p } else { s })).collect();
                chart
                    .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                    .map_err(|e| err(&e))?
                    .label(*label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
            }
            for (bi, b) in base.iter().enumerate() {
                let v = val(b);
                // The input level darker, the classical baseline's lighter.
                let color = BLACK.mix(0.6 - 0.25 * bi.min(1) as f64);
                let dashes: Vec<(f64, f64)> = (0..40)
                    .flat_map(|k| {
                        let x0 = 0.5 * (max_nfe * 1.15 / 0.5f64).powf(k as f64 / 40.0);
                        let x1 = 0.5 * (max_nfe * 1.15 / 0.5f64).powf((k as f64 + 0.5) / 40.0);
                        [(x0, v), (x1, v)]
                    })
                    .collect();
                chart
                    .draw_series(dashes.chunks(2).map(|c| PathElement::new(c.to_vec(), color.stroke_width(1))))
                    .map_err(|e| err(&e))?
                    .label(b.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.6 - 0.25 * bi.min(1) as f64)));
            }
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| Error::Image("plot buffer".into()))?;
    // Encoded in memory, then written atomically: a failed plot never costs an existing file.
    // (The format follows the extension, as `image`'s `save` does.)
    let e = |e: image::ImageError| Error::Image(format!("{}: {e}", path.display()));
    let format = image::ImageFormat::from_path(path).map_err(e)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).map_err(e)?;
    crate::atomic_file::write_atomic(path, bytes.get_ref(), || true)
}

/// Read `<dir>/clean/*` and `<dir>/degraded/*` (PNG, JPEG, TIFF; 8 or 16 bit; matched by file
/// stem), sorted by name. Every clean image must have a degraded one.
#[cfg(feature = "cli")]
pub fn load_pairs(dir: &std::path::Path) -> Result<Vec<Pair>> {
    use std::collections::BTreeMap;
    let list = |sub: &str| -> Result<BTreeMap<String, std::path::PathBuf>> {
        let d = dir.join(sub);
        let rd = std::fs::read_dir(&d).map_err(|e| Error::Io { path: d.display().to_string(), source: e })?;
        let mut m = BTreeMap::new();
        for e in rd.flatten() {
            let p = e.path();
            let ext = p.extension().and_then(|x| x.to_str()).map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "tif" | "tiff"))
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                m.insert(stem.to_string(), p);
            }
        }
        Ok(m)
    };
    let read = |p: &std::path::Path| -> Result<Tensor> {
        let img = image::open(p).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?.to_rgb32f();
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.into_raw();
        Ok(Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| raw[(y * w + x) * 3 + c].clamp(0.0, 1.0)))
    };
    let (clean, degraded) = (list("clean")?, list("degraded")?);
    let mut pairs = Vec::new();
    for (stem, cp) in &clean {
        let dp = degraded.get(stem).ok_or_else(|| Error::Image(format!("{}: no degraded/{stem}.*", dir.display())))?;
        pairs.push(Pair { name: stem.clone(), clean: read(cp)?, degraded: read(dp)? });
    }
    if pairs.is_empty() {
        return Err(Error::Image(format!("{}: no images in clean/", dir.display())));
    }
    Ok(pairs)
}

/// What `bridge eval` runs (see [`run`]).
#[cfg(feature = "cli")]
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The model package (`None`: score the baselines only).
    pub model: Option<std::path::PathBuf>,
    /// The classical baseline ([`crate::baseline::Method`]; `Auto` picks it from the pairs'
    /// `degradation.json`).
    pub baseline: crate::baseline::Method,
    /// The pairs folder ([`load_pairs`]).
    pub pairs: std::path::PathBuf,
    /// Samplers (empty: the package's default).
    pub samplers: Vec<String>,
    /// NFEs (empty: the package's default).
    pub nfes: Vec<usize>,
    /// η for the samplers that take one.
    pub eta: Option<f64>,
    /// Noise seed.
    pub seed: u64,
    /// Markdown output file.
    pub markdown: Option<std::path::PathBuf>,
    /// PNG plot file.
    pub plot: Option<std::path::PathBuf>,
    /// Threads per restore: ONNX Runtime intra-op threads and the most the sampler step uses (0: one per core).
    pub threads: usize,
    /// Explicit libonnxruntime.
    pub ort_lib: Option<std::path::PathBuf>,
    /// Title of the table and plot (default: the package's name).
    pub title: Option<String>,
    /// Colour correction of the restored images ([`crate::color_fix`]); rows say when it is on.
    pub color_fix: crate::color_fix::ColorFix,
    /// Average the network over the colour channels' cyclic shifts
    /// ([`crate::restorer::RestorerBuilder::channel_ensemble`]; `None`: the package's default);
    /// rows say when it is on.
    pub channel_ensemble: Option<bool>,
}

/// Evaluate a package over a pairs folder for every sampler × NFE, print and write the markdown
/// table (and the plot); returns the input row, the classical baseline's row (unless
/// `baseline` is `None` or `Auto` finds no `degradation.json`), then one row per setting. A sampler
/// that does not fit the package's family, or an NFE its grid does not have, is skipped with a
/// note rather than aborting the whole table.
#[cfg(feature = "cli")]
pub fn run(o: &EvalOptions, mut progress: impl FnMut(&str)) -> Result<Vec<Row>> {
    use crate::baseline::{DEGRADATION_FILE, Method, PairsInfo};
    use crate::runtime::package::Upsample;
    let pairs = load_pairs(&o.pairs)?;
    let mut notes = Vec::new();
    let info = PairsInfo::read(&o.pairs)?;
    let params = match (o.baseline, &info) {
        (Method::None, _) => None,
        (Method::Auto, None) => {
            notes.push(format!("no classical baseline: the pairs have no {DEGRADATION_FILE}"));
            None
        }
        (m, None) => {
            return Err(Error::param(
                "baseline",
                format!("{m:?} needs the degradation: {} has no {DEGRADATION_FILE} (`bridge-export pairs` writes one)", o.pairs.display()),
            ));
        }
        (m, Some(i)) => Some(Params::for_pairs(m, i)?),
    };
    let mut restorer = match &o.model {
        Some(m) => {
            let mut b = Restorer::builder(m).threads(o.threads).seed(o.seed).color_fix(o.color_fix).channel_ensemble(o.channel_ensemble);
            if let Some(l) = &o.ort_lib {
                b = b.onnxruntime_library(l);
            }
            Some(b.build()?)
        }
        None => None,
    };
    let meta = restorer.as_ref().map(|r| r.package().clone());
    // Without a package the input is brought to the truth's size by the MATLAB-kernel bicubic.
    let (scale, kind) = match &meta {
        Some(m) => (m.sr_scale, m.sr_upsample),
        None => {
            let (cw, dw) = (pairs[0].clean.shape()[3], pairs[0].degraded.shape()[3]);
            if dw == 0 || cw % dw != 0 {
                return Err(Error::Image(format!("clean width {cw} is not a multiple of the degraded width {dw}")));
            }
            (cw / dw, Upsample::BicubicA05)
        }
    };
    let mut rows = vec![baseline(&pairs, scale, kind)?];
    if let Some(p) = &params {
        let label = p.label();
        rows.push(classical(&pairs, p, |i| progress(&format!("{label}: image {}/{}", i + 1, pairs.len())))?);
    }
    if let (Some(restorer), Some(meta)) = (restorer.as_mut(), &meta) {
        let samplers = if o.samplers.is_empty() { vec![meta.sampler.clone()] } else { o.samplers.clone() };
        let nfes = if o.nfes.is_empty() { vec![meta.nfe] } else { o.nfes.clone() };
        let eta_of = |s: &str| o.eta.filter(|_| crate::family::registry::takes(s, crate::family::registry::Knob::Eta));
        for s in &samplers {
            for &n in &nfes {
                let st = Setting { sampler: s.clone(), nfe: n, eta: eta_of(s) };
                let label = format!("{} NFE {n}", st.label());
                match evaluate(restorer, &pairs, std::slice::from_ref(&st), o.seed, |_, i| {
                    progress(&format!("{label}: image {}/{}", i + 1, pairs.len()))
                }) {
                    Ok(mut r) => rows.append(&mut r),
                    Err(e @ (Error::Incompatible { .. } | Error::InvalidNfe { .. })) => notes.push(format!("{label}: skipped ({e})")),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let file_name = |p: &std::path::Path| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let title = o.title.clone().unwrap_or_else(|| match (&meta, &o.model) {
        (Some(m), Some(path)) => m.info.get("name").cloned().unwrap_or_else(|| file_name(path)),
        _ => format!("baselines on {}", file_name(&o.pairs)),
    });
    let mut md = markdown(&title, &rows, pairs.len());
    match (&meta, &o.model) {
        (Some(meta), Some(model)) => md.push_str(&format!(
            "\nModel `{}` (family {}, default {} at NFE {}), pairs `{}`, seed {}.\n",
            model.display(),
            meta.family,
            meta.sampler,
            meta.nfe,
            o.pairs.display(),
            o.seed
        )),
        _ => md.push_str(&format!("\nNo model (baselines only), pairs `{}`.\n", o.pairs.display())),
    }
    for n in &notes {
        md.push_str(&format!("\n- {n}"));
    }
    println!("{md}");
    if let Some(p) = &o.markdown {
        crate::atomic_file::write_atomic(p, md.as_bytes(), || true)?;
    }
    if let Some(p) = &o.plot {
        plot_png(&title, &rows, p)?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(h: usize, w: usize, f: impl Fn(usize, usize, usize) -> f32) -> Tensor {
        Tensor::from_shape_fn((1, 3, h, w), |(_, c, y, x)| f(c, y, x))
    }

    /// PSNR of a constant offset d is −20·log10(d); identical images give +∞.
    #[test]
    fn psnr_known_values() {
        let a = pattern(16, 16, |c, y, x| ((c + y * 3 + x) % 7) as f32 / 10.0);
        let b = a.mapv(|v| v + 0.1);
        assert!((psnr(a.view(), b.view()).unwrap() - 20.0).abs() < 1e-5);
        let c = a.mapv(|v| v + 0.01);
        assert!((psnr(a.view(), c.view()).unwrap() - 40.0).abs() < 1e-3);
        assert_eq!(psnr(a.view(), a.view()).unwrap(), f64::INFINITY);
        assert!(psnr(a.view(), pattern(8, 16, |_, _, _| 0.0).view()).is_err());
    }

    /// Constant images: the contrast/structure term is C2/C2 = 1, so SSIM is exactly the luminance
    /// term (2ab + C1)/(a² + b² + C1); identical images give 1; too small images are errors.
    #[test]
    fn ssim_known_values() {
        let (a, b) = (0.3f64, 0.5f64);
        let x = pattern(20, 24, |_, _, _| a as f32);
        let y = pattern(20, 24, |_, _, _| b as f32);
        let want = (2.0 * a * b + 1e-4) / (a * a + b * b + 1e-4);
        let got = ssim(x.view(), y.view()).unwrap();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let z = pattern(20, 24, |c, yy, xx| ((c * 5 + yy * 7 + xx * 3) % 11) as f32 / 11.0);
        assert!((ssim(z.view(), z.view()).unwrap() - 1.0).abs() < 1e-12);
        assert!(ssim(pattern(10, 30, |_, _, _| 0.0).view(), pattern(10, 30, |_, _, _| 0.0).view()).is_err());
        // A noisier copy is less similar.
        let n1 =
            pattern(20, 24, |c, yy, xx| ((c * 5 + yy * 7 + xx * 3) % 11) as f32 / 11.0 + if (xx + yy) % 2 == 0 { 0.02 } else { -0.02 });
        let n2 = pattern(20, 24, |c, yy, xx| ((c * 5 + yy * 7 + xx * 3) % 11) as f32 / 11.0 + if (xx + yy) % 2 == 0 { 0.1 } else { -0.1 });
        let (s1, s2) = (ssim(z.view(), n1.view()).unwrap(), ssim(z.view(), n2.view()).unwrap());
        assert!(1.0 > s1 && s1 > s2, "{s1} {s2}");
    }

    /// Agreement with scikit-image 0.26.0 (`structural_similarity(a, b, gaussian_weights=True,
    /// sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=0)` and
    /// `peak_signal_noise_ratio(a, b, data_range=1.0)`) on a fixed float64 pattern; the values were
    /// computed once with that package (float32 pattern, cast to float64; `docs/eval.md`).
    #[test]
    fn matches_scikit_image() {
        let a = pattern(32, 40, |c, y, x| 0.5 + 0.4 * ((x as f32 * 0.3 + c as f32).sin() * (y as f32 * 0.2).cos()));
        let b = pattern(32, 40, |c, y, x| 0.5 + 0.4 * ((x as f32 * 0.3 + c as f32 + 0.2).sin() * (y as f32 * 0.21).cos()));
        let (p, s) = (psnr(a.view(), b.view()).unwrap(), ssim(a.view(), b.view()).unwrap());
        eprintln!("psnr {p:.10} ssim {s:.10}");
        assert!((p - SKIMAGE_PSNR).abs() < 1e-4, "PSNR {p} vs scikit-image {SKIMAGE_PSNR}");
        assert!((s - SKIMAGE_SSIM).abs() < 1e-5, "SSIM {s} vs scikit-image {SKIMAGE_SSIM}");
    }

    const SKIMAGE_PSNR: f64 = 25.551867617870066;
    const SKIMAGE_SSIM: f64 = 0.9483475853313282;

    #[test]
    fn markdown_table() {
        let rows = vec![
            Row { label: "input (identity)".into(), nfe: 0, psnr: 20.0, ssim: 0.5, seconds: 0.0, shift: [0.0; 3] },
            Row { label: "rdbm".into(), nfe: 2, psnr: 25.123, ssim: 0.71234, seconds: 0.5, shift: [1.234, -0.5, 0.0] },
            Row { label: "NLM".into(), nfe: 0, psnr: 24.0, ssim: 0.6, seconds: 1.5, shift: [0.0; 3] },
        ];
        let md = markdown("t", &rows, 3);
        assert!(md.contains("| rdbm | 2 | 25.12 | 0.7123 | 0.50 | +1.23 / -0.50 / +0.00 |"), "{md}");
        assert!(md.contains("| input (identity) | – | 20.00 | 0.5000 | – | +0.00 / +0.00 / +0.00 |"), "{md}");
        // A classical baseline has no NFE but its own run time.
        assert!(md.contains("| NLM | – | 24.00 | 0.6000 | 1.50 |"), "{md}");
    }

    /// The colour shift is the per-channel mean of output − truth in 0–255 levels.
    #[test]
    fn colour_shift_per_channel() {
        let a = pattern(8, 8, |c, y, x| ((c + y + x) % 5) as f32 / 10.0);
        let b = Tensor::from_shape_fn((1, 3, 8, 8), |(_, c, y, x)| {
            a[[0, c, y, x]] + [0.1f32, -0.02, 0.0][c] + if (x + y) % 2 == 0 { 0.01 } else { -0.01 }
        });
        let s = colour_shift(b.view(), a.view()).unwrap();
        for (got, want) in s.iter().zip([25.5, -5.1, 0.0]) {
            assert!((got - want).abs() < 1e-3, "{s:?}");
        }
        assert!(colour_shift(a.view(), pattern(4, 8, |_, _, _| 0.0).view()).is_err());
    }

    /// The plot renders headless (bundled font) into a PNG of the expected size.
    #[cfg(feature = "cli")]
    #[test]
    fn plot_renders_headless() {
        let rows = vec![
            Row { label: "input (identity)".into(), nfe: 0, psnr: 20.0, ssim: 0.5, seconds: 0.0, shift: [0.0; 3] },
            Row { label: "rdbm".into(), nfe: 1, psnr: 24.0, ssim: 0.7, seconds: 0.5, shift: [0.0; 3] },
            Row { label: "rdbm".into(), nfe: 4, psnr: 25.0, ssim: 0.72, seconds: 1.5, shift: [0.0; 3] },
            Row { label: "implicit".into(), nfe: 4, psnr: 24.5, ssim: 0.71, seconds: 1.5, shift: [0.0; 3] },
        ];
        let p = crate::test_support::scratch_root().join(format!("bridge-eval-plot-{}.png", std::process::id()));
        plot_png("test plot", &rows, &p).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1000, 420));
        // Something besides the white background was drawn (lines, text).
        let dark = img.pixels().filter(|px| px.0.iter().all(|&v| v < 100)).count();
        assert!(dark > 500, "only {dark} dark pixels");
        let _ = std::fs::remove_file(&p);
        // A name whose format cannot be written is an error before anything is touched.
        let q = crate::test_support::scratch_root().join(format!("bridge-eval-plot-{}.notanimage", std::process::id()));
        std::fs::write(&q, b"keep").unwrap();
        assert!(plot_png("test plot", &rows, &q).is_err());
        assert_eq!(std::fs::read(&q).unwrap(), b"keep");
        let _ = std::fs::remove_file(&q);
    }
}
