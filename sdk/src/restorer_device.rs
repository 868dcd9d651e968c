//! Restores of frames that already lie in device memory, converted on the device
//! ([`crate::runtime::device_pixels`]) and sampled by the device loop with device values
//! ([`DeviceLoop::sample_values`]): the frame's pixels never go to the host (the noise still
//! comes from it). Taken only where the host path would run the device loop on the whole frame
//! as it is; everything else (super-resolution's upsampling, padding to the spatial multiple
//! or a fixed shape, tiling, a mean network, colour fix, host-only plans) keeps the host round
//! trip, and the caller is told why.

use super::*;
use crate::runtime::device_memory::Memory;
use crate::runtime::device_pixels;
use crate::runtime::pixel_graph::{FrameLayout, ModelRange};

impl Restorer {
    /// Why a `w`×`h` frame cannot be restored on the device, if it cannot (the caller then
    /// takes the host round trip). `memory` must be the network's: CUDA memory for a GPU
    /// network, host memory for one on the CPU provider.
    pub fn device_frame_unsupported(&self, w: usize, h: usize, memory: Memory) -> Option<&'static str> {
        let Network::Onnx(n) = &self.net else { return Some("not an ONNX network") };
        if !self.device_loop || self.device.is_none() {
            return Some("device loop off");
        }
        if (memory == Memory::Host) != (n.provider() == "cpu") {
            return Some("the frame is not in the network's memory");
        }
        if self.meta.channels != 3 {
            return Some("the network does not work on RGB");
        }
        if self.meta.sr_scale != 1 {
            return Some("super-resolution upsamples on the host");
        }
        if self.mean.is_some() {
            return Some("the mean network runs on the host");
        }
        if self.options.color_fix != ColorFix::Off {
            return Some("the colour fix runs on the host");
        }
        if self.meta.prepass.is_some() {
            return Some("the pre-pass runs on the host");
        }
        if self.options.channel_ensemble {
            return Some("the channel ensemble runs on the host");
        }
        let g = self.meta.spatial_multiple;
        let tile = &self.options.tile;
        if round_up(h, g) != h || round_up(w, g) != w || self.fixed_hw.is_some() || (tile.fixed_shape && tile.size.0 > 0 && tile.size.1 > 0)
        {
            return Some("the frame is padded on the host");
        }
        match TileLayout::new(h, w, tile) {
            Ok(l) if l.is_whole() && !tile.fixed_shape => {}
            _ => return Some("tiled frames run on the host"),
        }
        if DeviceLoop::unsupported(n, &[1, 3, h, w]).is_some() {
            return Some("the device loop cannot run this network");
        }
        match plan::plan(self.family.as_ref(), &self.options.sampler, self.options.nfe, false) {
            Ok(Some(p)) if p.host_only().is_none() && p.steps.first().and_then(|s| s.call).is_none_or(|c| c.c_in == 1.0) => None,
            _ => Some("the sampler's plan needs the host"),
        }
    }

    /// Restore the frame `input` (planes laid out as `in_layout`, in `memory`) into `output`
    /// (`out_layout`, same size) on the device: `Ok(None)` when done, `Ok(Some(why))` when
    /// the frame needs the host round trip ([`Restorer::device_frame_unsupported`]; nothing
    /// read or written). The output's bytes are those of `pixel::decode*`, `restore_rgb` and
    /// `pixel::encode*` on the host, row padding kept. [`Restorer::sampling_loop`] is
    /// [`SamplingLoop::Device`] after a device restore.
    ///
    /// # Safety
    /// The planes must be valid in `memory` for their layouts' bytes (see
    /// [`device_pixels::decode`] and [`device_pixels::encode`]); the output planes must not
    /// overlap each other or the input.
    pub unsafe fn restore_frame_on_device(
        &mut self,
        input: &[*mut u8],
        in_layout: &FrameLayout,
        output: &[*mut u8],
        out_layout: &FrameLayout,
        memory: Memory,
    ) -> Result<Option<&'static str>> {
        let (w, h) = in_layout.size();
        if out_layout.size() != (w, h) {
            let (ow, oh) = out_layout.size();
            return Err(Error::shape("output frame", &[h, w], &[oh, ow]));
        }
        self.check_size(w, h)?;
        in_layout.planes()?;
        out_layout.planes()?;
        if let Some(why) = self.device_frame_unsupported(w, h, memory) {
            return Ok(Some(why));
        }
        let range = ModelRange {
            lo: self.meta.value_range.0 as f32,
            hi: self.meta.value_range.1 as f32,
            bgr: self.meta.channel_order == crate::runtime::ChannelOrder::Bgr,
        };
        let plan = plan::plan(self.family.as_ref(), &self.options.sampler, self.options.nfe, false)?
            .ok_or_else(|| Error::Runtime("the sampler has no plan".into()))?;
        self.cancel.reset();
        // SAFETY: by contract.
        let x = unsafe { device_pixels::decode(input, in_layout, range, memory)? };
        let (nfe, seed) = (self.options.nfe, self.options.seed);
        let Restorer { net, progress, device, last_loop, .. } = self;
        let (Network::Onnx(n), Some(dev)) = (net, device.as_mut()) else { return Ok(Some("device loop off")) };
        let mut cb = |p: TileProgress| match progress.as_mut() {
            Some(f) => f(&Progress { stage: Stage::Sampling, call: p.call, calls: nfe, tile: p.done, tiles: p.total, has_mean: false }),
            None => true,
        };
        let out = dev.sample_values(n, &plan, &x, &x, &mut PhiloxNoise::new(seed), Some(&mut cb))?;
        *last_loop = SamplingLoop::Device;
        // SAFETY: by contract.
        unsafe { device_pixels::encode(&out, output, out_layout, range, memory)? };
        Ok(None)
    }
}
