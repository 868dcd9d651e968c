//! Bench `step`: the fused update `x ← a·x0̂ + b·xT + c·x + d·noise` (scaffold; see issue).
use criterion::{Criterion, criterion_group, criterion_main};
fn bench(_c: &mut Criterion) {}
criterion_group!(benches, bench);
criterion_main!(benches);
