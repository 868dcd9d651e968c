//! Caps arithmetic for a super-resolution package: the source pad's width and height are the
//! sink pad's times the package's SR scale. Everything else in the caps (format, frame rate,
//! colorimetry, pixel aspect ratio) passes through unchanged.

use gst::glib;
use gst::prelude::*;

/// Largest dimension value GStreamer caps can carry.
const MAX: i32 = i32::MAX;

/// The caps on the other pad for `caps` on the `direction` pad, with `scale` the package's SR
/// factor (`None` before the model is loaded: any size, so that linking in the NULL state
/// succeeds; the real caps are negotiated after `start` has loaded the model).
pub fn transform(caps: &gst::Caps, direction: gst::PadDirection, scale: Option<u32>) -> gst::Caps {
    let mut out = gst::Caps::new_empty();
    {
        let out = out.get_mut().expect("a new caps object is writable");
        for (s, features) in caps.iter_with_features() {
            let mut s = s.to_owned();
            let ok = ["width", "height"].into_iter().all(|field| match map_field(&s, field, direction, scale) {
                Some(v) => {
                    s.set_value(field, v);
                    true
                }
                None => false,
            });
            if ok {
                out.append_structure_full(s, Some(features.to_owned()));
            }
        }
    }
    out
}

/// One dimension mapped to the other pad; `None` when no size maps (the structure is dropped).
fn map_field(s: &gst::StructureRef, field: &str, direction: gst::PadDirection, scale: Option<u32>) -> Option<glib::SendValue> {
    let Some(scale) = scale else {
        return Some(gst::IntRange::new(1, MAX).to_send_value());
    };
    let Ok(k) = i32::try_from(scale) else {
        return None;
    };
    if k <= 1 || !s.has_field(field) {
        // ×1, or a structure without this field: nothing to change.
        return s.value(field).ok().cloned().or_else(|| Some(gst::IntRange::new(1, MAX).to_send_value()));
    }
    let (lo, hi) = match (s.get::<i32>(field), s.get::<gst::IntRange<i32>>(field)) {
        (Ok(v), _) => (v, v),
        (_, Ok(r)) => (r.min(), r.max()),
        // Lists and other forms: any size (the fixed caps are checked again in set_info).
        _ => (1, MAX),
    };
    let (lo, hi) = match direction {
        // Sink caps → source caps: multiply; only multiples of the scale are reachable.
        gst::PadDirection::Sink => (lo.checked_mul(k)?, hi.min(MAX / k) * k),
        // Source caps → sink caps: divide; sizes that are not multiples have no input.
        _ => (lo.checked_add(k - 1)? / k, hi / k),
    };
    match lo.cmp(&hi) {
        std::cmp::Ordering::Greater => None,
        std::cmp::Ordering::Equal => Some(lo.to_send_value()),
        std::cmp::Ordering::Less if direction == gst::PadDirection::Sink => Some(gst::IntRange::with_step(lo, hi, k).to_send_value()),
        std::cmp::Ordering::Less => Some(gst::IntRange::new(lo, hi).to_send_value()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(s: &str) -> gst::Caps {
        gst::init().unwrap();
        s.parse().unwrap()
    }

    fn dims(c: &gst::Caps) -> Vec<(String, String)> {
        c.iter()
            .map(|s| {
                (s.value("width").unwrap().serialize().unwrap().to_string(), s.value("height").unwrap().serialize().unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn fixed_sizes_scale_up_on_the_source_pad_and_down_on_the_sink_pad() {
        let c = caps("video/x-raw,format=NV12,width=64,height=48,framerate=30/1");
        let up = transform(&c, gst::PadDirection::Sink, Some(4));
        assert_eq!(dims(&up), [("256".into(), "192".into())]);
        assert_eq!(up.structure(0).unwrap().get::<&str>("format").unwrap(), "NV12");
        assert_eq!(up.structure(0).unwrap().get::<gst::Fraction>("framerate").unwrap(), gst::Fraction::new(30, 1));
        let down = transform(&up, gst::PadDirection::Src, Some(4));
        assert_eq!(down, c);
    }

    #[test]
    fn sizes_that_are_not_multiples_of_the_scale_have_no_input() {
        let c = caps("video/x-raw,width=65,height=48");
        assert!(transform(&c, gst::PadDirection::Src, Some(4)).is_empty());
    }

    #[test]
    fn ranges_map_to_ranges_and_overflow_is_clamped() {
        let c = caps("video/x-raw,width=[1,2147483647],height=[10,20]");
        let up = transform(&c, gst::PadDirection::Sink, Some(2));
        let s = up.structure(0).unwrap();
        let w = s.get::<gst::IntRange<i32>>("width").unwrap();
        assert_eq!((w.min(), w.max(), w.step()), (2, 2147483646, 2));
        let h = s.get::<gst::IntRange<i32>>("height").unwrap();
        assert_eq!((h.min(), h.max()), (20, 40));
        let down = transform(&caps("video/x-raw,width=[5,9],height=8"), gst::PadDirection::Src, Some(4));
        assert_eq!(dims(&down), [("2".into(), "2".into())]);
    }

    #[test]
    fn unit_scale_is_the_identity_and_an_unloaded_model_admits_any_size() {
        let c = caps("video/x-raw,format=RGB,width=64,height=64");
        assert_eq!(transform(&c, gst::PadDirection::Sink, Some(1)), c);
        let any = transform(&c, gst::PadDirection::Sink, None);
        let w = any.structure(0).unwrap().get::<gst::IntRange<i32>>("width").unwrap();
        assert_eq!((w.min(), w.max()), (1, i32::MAX));
    }
}
