//! The first stages of the RandomResizedCrop recipe for one record: read it, learn its
//! dimensions from its header, draw its window (the geometry comes before the decode), decode
//! (whole, or only the window: [`DecodeMode`]) and resize the window to the output size. The
//! loader then runs the paper's fused loop (mirror, lighting, normalisation, layout) over the
//! result.

use crate::augment::{DecodeMode, OpDraws, RandomResizedCrop, SampleParams};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::prep::{
    decode_jpeg_window, decode_rgb, image_dims, is_jpeg, DecodeOptions, ResizeCrop, RgbImage,
};
use crate::source::Mode;

/// Per-worker buffers of [`read_window`], reused from record to record.
#[derive(Default)]
pub struct WindowScratch {
    /// The record as stored.
    record: Vec<u8>,
    /// A decoded (or raw) image.
    image: RgbImage,
    /// The window cut out of it (exact mode).
    cut: RgbImage,
}

/// Where a record's output pixels come from, given its dimensions: a window to resize (training)
/// or the evaluation box (resize the short side, centre-crop). The filter is the sample's
/// `draws.filter`.
pub enum Geometry<'a> {
    /// Resize this sample's window (drawn from the dimensions) to the output.
    Window(&'a mut dyn FnMut((u32, u32)) -> SampleParams),
    /// RandomResizedCrop's evaluation: the short side to
    /// [`RandomResizedCrop::eval_resize`], then the output's centre.
    Eval(&'a RandomResizedCrop),
}

/// Record `index` of `ds` through the geometry and decode stages: `out` (`size`×`size`×3, HWC)
/// receives the resized window. Returns the label and the sample's parameters (for evaluation:
/// the centre box, rounded, no mirror, no lighting).
#[allow(clippy::too_many_arguments)]
pub fn read_window(
    ds: &Dataset,
    index: usize,
    geometry: &mut Geometry<'_>,
    decode: DecodeMode,
    size: u32,
    scratch: &mut WindowScratch,
    resize: &mut ResizeCrop,
    out: &mut [u8],
) -> Result<(u32, SampleParams)> {
    let label = ds.read_record(index, &mut scratch.record)?;
    let info = ds.info();
    let opts = DecodeOptions {
        max_pixels: info.build.max_pixels,
        draft_for: None,
    };
    let bad = |why: crate::prep::RejectReason| {
        let fix = match why {
            crate::prep::RejectReason::Corrupt(_) => {
                "; the record is damaged — run `alexpipe verify` and rebuild the dataset"
            }
            _ => "",
        };
        Error::format(ds.location(), format!("record {index}: {why}{fix}"))
    };
    let encoded = info.mode != Mode::Raw;
    let dims = if encoded {
        image_dims(&scratch.record, &opts).map_err(bad)?
    } else {
        (info.size, info.size)
    };
    let params = match &mut *geometry {
        Geometry::Window(draw) => draw(dims),
        Geometry::Eval(rrc) => {
            let [x, y, w, h] = rrc.eval_box(dims.0, dims.1, size);
            SampleParams {
                x: x.round() as u32,
                y: y.round() as u32,
                w: (w.round() as u32).max(1),
                h: (h.round() as u32).max(1),
                flip: false,
                alpha: [0.0; 3],
                draws: OpDraws {
                    filter: rrc.interpolation.eval_filter(),
                    ..OpDraws::default()
                },
            }
        }
    };
    let filter = params.draws.filter;
    if encoded && decode == DecodeMode::CropAware && is_jpeg(&scratch.record) {
        let window = match geometry {
            Geometry::Window(_) => [
                params.x as f64,
                params.y as f64,
                params.w as f64,
                params.h as f64,
            ],
            Geometry::Eval(rrc) => rrc.eval_box(dims.0, dims.1, size),
        };
        let region =
            decode_jpeg_window(&scratch.record, window, size, filter, &opts).map_err(bad)?;
        resize.resize_box(&region.image, region.window, (size, size), filter, out);
        return Ok((label, params));
    }
    if encoded {
        scratch.image = decode_rgb(&scratch.record, &opts).map_err(bad)?;
    } else {
        scratch.image.width = info.size;
        scratch.image.height = info.size;
        std::mem::swap(&mut scratch.image.pixels, &mut scratch.record);
    }
    match geometry {
        Geometry::Window(_) => resize.resized_crop(
            &scratch.image,
            (params.x, params.y, params.w, params.h),
            (size, filter),
            &mut scratch.cut,
            out,
        ),
        Geometry::Eval(rrc) => {
            let resize_to = rrc.eval_resize(size);
            resize.resize_short_center_crop(&scratch.image, resize_to, size, filter, out)
        }
    }
    if !encoded {
        std::mem::swap(&mut scratch.image.pixels, &mut scratch.record);
    }
    Ok((label, params))
}
