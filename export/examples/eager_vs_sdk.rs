//! End-to-end restore time: libbridge (ONNX Runtime + the SDK's step kernel) against an eager
//! libtorch loop of the same network and the same sampler, interleaved in one process.
//!
//! The eager side is what a PyTorch research loop does, minus the Python interpreter: the U-Net
//! runs op by op through libtorch's eager dispatcher (`tch`, the same libtorch 2.11.0 as the
//! PyPI `torch` wheel) under `no_grad`, and each step's update `x ← c_x·x + Σ a_k·src_k + c_z·z`
//! is a handful of tensor ops with `randn` noise. Both sides use the sampler's row plan
//! (`bridge::sampler::plan`), so they do the same arithmetic.
//!
//! ```text
//! scripts/with-torch.sh cargo run --release -p bridge-export --features train --example eager_vs_sdk -- \
//!     models/denoise.onnx 256 512
//! ```
//!
//! Arguments: a package (default `models/denoise.onnx`), then frame sides (default 256 512).
//! Environment: `BENCH_REPS` (default 5), `BENCH_THREADS` (default 2, both sides).

use bridge::Tensor as Nd;
use bridge::restorer::Restorer;
use bridge::runtime::families::default_sampler;
use bridge::sampler::plan::{self, Source};
use bridge_export::package::{build_family, read_package};
use bridge_export::train::tch_ops::{ParamSet, tensor};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let pkg = args.next().unwrap_or_else(|| "models/denoise.onnx".into());
    let mut sides: Vec<usize> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if sides.is_empty() {
        sides = vec![256, 512];
    }
    let reps: usize = std::env::var("BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let threads: usize = std::env::var("BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    tch::set_num_threads(threads as i32);
    tch::set_num_interop_threads(1);

    let (cfg, weights, meta) = read_package(pkg.as_ref())?;
    if meta.sr_scale != 1 {
        return Err("use a package without SR upsampling (e.g. models/denoise.onnx)".into());
    }
    let family = build_family(&meta)?;
    let sampler = default_sampler(&meta)?;
    let nfe = meta.nfe;
    let plan = plan::plan(family.as_ref(), &sampler, nfe, false)?.ok_or("the package's default sampler has no row plan")?;
    let params = ParamSet::from_weights(&weights, Device::Cpu, false)?;
    let mut restorer = Restorer::builder(&pkg).threads(threads).tile(0).seed(1).build()?;
    // The same package with the device loop (IO binding + the SDK's step graph) on the CPU
    // provider: on a GPU this keeps the state on the device; here it shows what it costs.
    let mut dev = Restorer::builder(&pkg).threads(threads).tile(0).seed(1).device_loop(true).build()?;
    println!(
        "{pkg}: family {}, sampler {}, NFE {nfe} ({} network calls), {:.2} M parameters, {threads} threads",
        meta.family,
        meta.sampler,
        plan.calls(),
        weights.numel() as f64 / 1e6
    );

    for side in sides {
        // A smooth test image in the model's range (the timing does not depend on the content).
        let img = Nd::from_shape_fn((1, 3, side, side), |(_, c, y, x)| {
            (((x as f32) * 0.031 + (c as f32)).sin() * ((y as f32) * 0.017).cos()) * 0.8
        });
        let x_end = tensor(img.as_slice().unwrap(), &[1, 3, side, side], Device::Cpu)?;
        let eager = |x_end: &Tensor| -> Result<Tensor, Box<dyn std::error::Error>> {
            let _g = tch::no_grad_guard();
            let mut x = x_end.copy();
            for st in &plan.steps {
                let (raw, x0) = match &st.call {
                    Some(c) => {
                        let t = Tensor::from_slice(&[c.t_net as f32]);
                        let xin = if c.c_in != 1.0 { &x * c.c_in } else { x.shallow_clone() };
                        let raw = params.forward(&cfg, &xin, Some(x_end), &t)?;
                        let x0 = st.x0.map(|l| {
                            let v = &x * l.x + x_end * l.xt + &raw * l.out;
                            match st.clamp {
                                Some((lo, hi)) => v.clamp(lo as f64, hi as f64),
                                None => v,
                            }
                        });
                        (Some(raw), x0)
                    }
                    None => (None, None),
                };
                let mut next = &x * st.c_x;
                for (src, &c) in plan.order.iter().zip(&st.coefs) {
                    if c == 0.0 {
                        continue;
                    }
                    let v = match src {
                        Source::X0 => x0.as_ref().unwrap_or(x_end).shallow_clone(),
                        Source::XEnd => x_end.shallow_clone(),
                        Source::Raw => raw.as_ref().ok_or("raw output without a call")?.shallow_clone(),
                    };
                    next += v * c;
                }
                if let Some((cz, _)) = st.noise {
                    next += Tensor::randn_like(&x) * cz;
                }
                x = next;
            }
            Ok(match plan.clamp {
                Some((lo, hi)) => x.clamp(lo as f64, hi as f64),
                None => x,
            })
        };
        // Warm up both (first-run allocations, ORT's memory arena).
        let a = restorer.restore_tensor(img.view())?;
        let a_dev = dev.restore_tensor(img.view())?;
        if !matches!(dev.sampling_loop(), bridge::runtime::SamplingLoop::Device) {
            return Err(format!("device loop not used: {:?}", dev.sampling_loop()).into());
        }
        let dev_diff = a.iter().zip(a_dev.iter()).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
        let b = eager(&x_end)?;
        let mean_abs = |v: &[f32]| v.iter().map(|x| x.abs() as f64).sum::<f64>() / v.len() as f64;
        let bv: Vec<f32> = Vec::<f32>::try_from(b.to_kind(Kind::Float).flatten(0, -1))?;
        let (mut t_sdk, mut t_eager, mut t_dev) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            let t0 = Instant::now();
            std::hint::black_box(restorer.restore_tensor(img.view())?);
            t_sdk.push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let _ = std::hint::black_box(eager(&x_end)?);
            t_eager.push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(dev.restore_tensor(img.view())?);
            t_dev.push(t0.elapsed().as_secs_f64());
        }
        let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        let (ms, me) = (min(&t_sdk), min(&t_eager));
        let (ds, de) = (med(&mut t_sdk), med(&mut t_eager));
        let (mdv, ddv) = (min(&t_dev), med(&mut t_dev));
        println!(
            "{side}x{side}: libbridge min {:.1} ms (median {:.1}), eager libtorch min {:.1} ms (median {:.1}); eager / libbridge = {:.2}x (medians {:.2}x); mean |x| {:.3} vs {:.3}",
            ms * 1e3,
            ds * 1e3,
            me * 1e3,
            de * 1e3,
            me / ms,
            de / ds,
            mean_abs(a.as_slice().unwrap()),
            mean_abs(&bv)
        );
        println!(
            "{side}x{side}: libbridge device loop (CPU provider) min {:.1} ms (median {:.1}), {:.3}x the host loop (medians {:.3}x); max |device - host| = {dev_diff:e}",
            mdv * 1e3,
            ddv * 1e3,
            mdv / ms,
            ddv / ds
        );
    }
    Ok(())
}
