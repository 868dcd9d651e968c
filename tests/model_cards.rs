//! The shipped demo models reproduce their model cards: for each `models/<task>.onnx`, the
//! held-out pairs (and the unseen photographs' pairs) are regenerated (`bridge_export::data::write_eval_pairs`, the code behind
//! `bridge-export pairs`) from the test photographs (`scripts/fetch-data.sh`, run here when
//! missing) and scored with `bridge::eval` (the code behind `bridge eval`) at the package's
//! default sampler and NFE (and at NFE 1) and at the card's seed; PSNR and SSIM must match the
//! rows of the card's tables (`models/<task>.md`, sections "Held-out photos" and "Unseen
//! photos"; the unseen one without the NFE-1 row; deblurring also "... , 8-bit inputs"), as must
//! the input row and the classical baseline's row (`bridge::baseline`, its degradation and the
//! images' bit depth read from the pairs' `degradation.json`).

use bridge::baseline::{PairsInfo, Params};
use bridge::eval::{Setting, baseline, classical, evaluate, load_pairs};
use bridge::restorer::Restorer;
use bridge_e2e::repo_root;
use bridge_export::data::write_eval_pairs;
use bridge_export::package::Task;
use std::path::{Path, PathBuf};
use std::process::Command;

fn photos(split: &str) -> PathBuf {
    static FETCH: std::sync::Once = std::sync::Once::new();
    let root = repo_root();
    let data = root.join(".deps/data");
    // The four tests run in parallel: fetch once.
    FETCH.call_once(|| {
        if !data.join("test").is_dir() || !data.join("unseen").is_dir() {
            let st = Command::new(root.join("scripts/fetch-data.sh")).status().expect("run scripts/fetch-data.sh");
            assert!(st.success(), "scripts/fetch-data.sh failed");
        }
    });
    data.join(split)
}

/// `| label | nfe | psnr | ssim |` rows of a card's table.
fn card_rows(card: &str) -> Vec<(String, String, f64, f64)> {
    card.lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
            if c.len() < 4 {
                return None;
            }
            Some((c[0].to_string(), c[1].to_string(), c[2].parse().ok()?, c[3].parse().ok()?))
        })
        .collect()
}

/// The lines of the card's section `### {title}` (up to the next heading or the block's end).
fn section<'a>(card: &'a str, title: &str) -> &'a str {
    let head = format!("### {title}");
    let start = card.find(&head).unwrap_or_else(|| panic!("the card has no `{head}` section"));
    let rest = &card[start + head.len()..];
    let end = ["\n### ", "\n## ", "<!-- eval:end"].iter().filter_map(|m| rest.find(m)).min().unwrap_or(rest.len());
    &rest[..end]
}

/// Regenerate the pairs of one split and score the input, the classical baseline and the
/// default sampler (and NFE 1 when `one_step`); compare with the card's section `title`.
/// `bits`: the depth of the degraded images (16, or 8 for the cards' 8-bit sections).
fn check_section(task: &str, r: &mut Restorer, card: &str, title: &str, split: &str, one_step: bool, bits: u32) -> (f64, f64) {
    let pairs_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("card-pairs-{task}-{split}-{bits}"));
    let _ = std::fs::remove_dir_all(&pairs_dir);
    let n = write_eval_pairs(Task::parse(task).unwrap(), &photos(split), &pairs_dir, 256, 1024, 2024, false, bits).unwrap();
    let pairs = load_pairs(&pairs_dir).unwrap();
    assert_eq!(pairs.len(), n);
    let text = section(card, title);
    assert!(text.contains(&format!("{n} image pairs")), "{task} {title}: the card is over another number of pairs");
    let meta = r.package().clone();
    let base = baseline(&pairs, meta.sr_scale, meta.sr_upsample).unwrap();
    let info = PairsInfo::read(&pairs_dir).unwrap().expect("write_eval_pairs writes degradation.json");
    assert_eq!((info.task.as_str(), info.input_bits), (task, bits));
    let classic = classical(&pairs, &Params::for_pairs(bridge::baseline::Method::Auto, &info).unwrap(), |_| {}).unwrap();
    let st = Setting { sampler: meta.sampler.clone(), nfe: meta.nfe, eta: None };
    let got = evaluate(r, &pairs, std::slice::from_ref(&st), 0, |_, _| {}).unwrap().remove(0);
    let rows = card_rows(text);
    let mut computed = vec![base.clone(), classic.clone(), got.clone()];
    let mut want = vec![
        (base.label.clone(), "–".to_string(), base.psnr, base.ssim),
        (classic.label.clone(), "–".to_string(), classic.psnr, classic.ssim),
        (got.label.clone(), got.nfe.to_string(), got.psnr, got.ssim),
    ];
    // The one-step row, where the default sampler has one (otherwise the card has none).
    let one = Setting { nfe: 1, ..st.clone() };
    if one_step && meta.nfe != 1 {
        match evaluate(r, &pairs, std::slice::from_ref(&one), 0, |_, _| {}) {
            Ok(mut v) => {
                let o = v.remove(0);
                want.push((o.label.clone(), "1".to_string(), o.psnr, o.ssim));
                computed.push(o);
            }
            Err(e @ (bridge::Error::InvalidNfe { .. } | bridge::Error::Incompatible { .. })) => {
                assert!(
                    !rows.iter().any(|(l, n, _, _)| l.starts_with(&st.label()) && n == "1"),
                    "{task}: the card has an NFE-1 row the sampler refuses ({e})"
                );
            }
            Err(e) => panic!("{task}: NFE 1: {e}"),
        }
    }
    // The rows as `bridge eval` prints them (colour shift and timing included), before checking.
    eprintln!("{task} / {title}:\n{}", bridge::eval::markdown(task, &computed, n));
    for (label, nfe, psnr, ssim) in want {
        let row = rows
            .iter()
            .find(|(l, n, _, _)| *l == label && *n == nfe)
            .unwrap_or_else(|| panic!("{task}: no row `{label} | {nfe}` in the card's `{title}` section"));
        eprintln!("{task} {title}: {label} NFE {nfe}: PSNR {psnr:.3} (card {}), SSIM {ssim:.5} (card {})", row.2, row.3);
        // The card rounds to 0.01 dB and 1e-4; allow one unit of the last digit besides rounding
        // (ONNX Runtime's CPU kernels may differ in the last bits between instruction sets).
        assert!((psnr - row.2).abs() <= 0.015, "{task} {title} {label}: PSNR {psnr:.4} vs card {}", row.2);
        assert!((ssim - row.3).abs() <= 1.5e-4, "{task} {title} {label}: SSIM {ssim:.5} vs card {}", row.3);
    }
    (got.psnr, base.psnr)
}

fn check_card(task: &str) {
    let root = repo_root();
    let model = root.join(format!("models/{task}.onnx"));
    let card_path = root.join(format!("models/{task}.md"));
    let size = std::fs::metadata(&model).unwrap_or_else(|e| panic!("{}: {e}", model.display())).len();
    assert!(size <= 8_000_000, "{task}: {size} bytes is over the 8 MB budget of a demo model");
    let card = std::fs::read_to_string(&card_path).unwrap_or_else(|e| panic!("{}: {e}", card_path.display()));
    // The card states how its pairs were made: `bridge-export pairs --task T --out DIR` with
    // the defaults (crop 256, photos shrunk to 1024, seed 2024) and `bridge eval ... --seed 0`.
    assert!(card.contains(&format!("bridge-export --features train -- pairs --task {task}")), "{task}: card lacks the pairs command");
    let mut r = Restorer::builder(&model).threads(2).seed(0).build().unwrap();
    // Held-out photos (with the NFE-1 row) and the unseen ones (input, baseline, default).
    let (got, input) = check_section(task, &mut r, &card, "Held-out photos", "test", true, 16);
    check_section(task, &mut r, &card, "Unseen photos", "unseen", false, 16);
    // Deblurring is also scored on 8-bit inputs (`scripts/model-cards.sh`).
    if task == "deblur" {
        check_section(task, &mut r, &card, "Held-out photos, 8-bit inputs", "test", false, 8);
        check_section(task, &mut r, &card, "Unseen photos, 8-bit inputs", "unseen", false, 8);
    }
    // The model restores: better than its input on the held-out set.
    assert!(got > input, "{task}: PSNR {got} not above the input's {input}");
}

#[test]
fn sr4_card() {
    check_card("sr4");
}

#[test]
fn denoise_card() {
    check_card("denoise");
}

#[test]
fn deblur_card() {
    check_card("deblur");
}

#[test]
fn jpeg_card() {
    check_card("jpeg");
}
