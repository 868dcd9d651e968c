//! Training with libtorch through `tch` (feature `train`).
//!
//! Build and run everything here through `scripts/with-torch.sh` (it installs libtorch 2.11.0 into
//! `.deps/libtorch` and sets `LIBTORCH` and `LD_LIBRARY_PATH`), e.g.
//! `scripts/with-torch.sh cargo test -p bridge-export --features train`.

pub mod device;
pub mod ibmd;
pub mod optim;
pub mod parity;
pub mod tch_ops;
pub mod trainer;

#[cfg(test)]
mod tests {
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::{Device, Kind, Tensor};

    /// One Adam step on a linear least-squares problem, on the CPU.
    /// Adam's first step moves every parameter with a non-zero gradient by lr·sign(−g)
    /// (m̂/√v̂ = g/|g| after bias correction, up to ε), and the loss must drop.
    #[test]
    fn adam_step_on_cpu() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 4, 1, Default::default());
        let x = Tensor::randn([64, 4], (Kind::Float, Device::Cpu));
        let w_true = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([4, 1]);
        let y = x.matmul(&w_true) + 0.25;

        let lr = 1e-2;
        let mut opt = nn::Adam::default().build(&vs, lr).unwrap();
        let before: Vec<f32> = Vec::try_from(lin.ws.flatten(0, -1)).unwrap();
        let loss0 = (lin.forward(&x) - &y).square().mean(Kind::Float);
        opt.backward_step(&loss0);
        let after: Vec<f32> = Vec::try_from(lin.ws.flatten(0, -1)).unwrap();
        let loss1 = (lin.forward(&x) - &y).square().mean(Kind::Float).double_value(&[]);

        for (b, a) in before.iter().zip(&after) {
            let step = (a - b).abs() as f64;
            assert!((step - lr).abs() < 1e-4, "Adam's first step moved a weight by {step}, not lr = {lr}");
        }
        assert!(loss1 < loss0.double_value(&[]), "loss did not drop: {} -> {loss1}", loss0.double_value(&[]));
    }
}
