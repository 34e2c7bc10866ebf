//! Short-side resize and center crop (paper §2: "rescaled the image such that the shorter side was of
//! length 256, and then cropped out the central 256×256 patch").
//!
//! Geometry follows torchvision's `Resize(size)` + `CenterCrop(size)` on PIL images exactly; pixels follow
//! Pillow's antialiased `BILINEAR` (a triangle filter widened by the scale factor), implemented by
//! `fast_image_resize`'s SIMD port of Pillow's convolution.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::decode::RgbImage;

/// Size after torchvision's `Resize(size)`: the short side becomes `size`, the long side
/// `floor(size * long / short)`. Returns `(width, height)`.
pub fn resized_dims(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (w, h, s) = (width as u64, height as u64, size as u64);
    if w <= h {
        (size, ((s * h) / w) as u32)
    } else {
        (((s * w) / h) as u32, size)
    }
}

/// torchvision's `CenterCrop` offset: `round((len - size) / 2)` with Python's round-half-to-even.
pub fn center_crop_offset(len: u32, size: u32) -> u32 {
    let d = len.saturating_sub(size);
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Per-thread resize state (Pillow-style convolution buffers), reused across images.
#[derive(Default)]
pub struct ResizeCrop {
    resizer: Resizer,
}

impl ResizeCrop {
    /// New state; the first resize sizes the buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resizes `src` so its short side is `size` and writes the central `size`×`size` patch to
    /// `out` (`size * size * 3` bytes, HWC RGB).
    ///
    /// Only the patch is computed: the convolution runs over the source box that maps onto it, with
    /// the full image's scale factor and filter centres, so the result equals resizing the whole
    /// image and then cropping (up to the rounding of the box's float coordinates).
    pub fn resize_center_crop(&mut self, src: &RgbImage, size: u32, out: &mut [u8]) {
        let (rw, rh) = resized_dims(src.width, src.height, size);
        let (left, top) = (center_crop_offset(rw, size), center_crop_offset(rh, size));
        if (rw, rh) == (src.width, src.height) {
            crop_rgb(&src.pixels, src.width, src.height, left, top, size, out);
            return;
        }
        let (sx, sy) = (src.width as f64 / rw as f64, src.height as f64 / rh as f64);
        let (box_left, box_top) = (left as f64 * sx, top as f64 * sy);
        let box_width = (size as f64 * sx).min(src.width as f64 - box_left);
        let box_height = (size as f64 * sy).min(src.height as f64 - box_top);
        let (Ok(src_view), Ok(mut dst_view)) = (
            ImageRef::new(src.width, src.height, &src.pixels, PixelType::U8x3),
            Image::from_slice_u8(size, size, out, PixelType::U8x3),
        ) else {
            unreachable!("callers pass buffers of the stated dimensions");
        };
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(box_left, box_top, box_width, box_height);
        if let Err(e) = self.resizer.resize(&src_view, &mut dst_view, &options) {
            unreachable!("U8x3 resize within the image cannot fail: {e}");
        }
    }
}

/// Copies the `size`×`size` patch at (`left`, `top`) of a `width`×`height` RGB image into `out`.
pub fn crop_rgb(
    pixels: &[u8],
    width: u32,
    height: u32,
    left: u32,
    top: u32,
    size: u32,
    out: &mut [u8],
) {
    debug_assert!(left + size <= width && top + size <= height);
    let row = size as usize * 3;
    for y in 0..size as usize {
        let start = ((top as usize + y) * width as usize + left as usize) * 3;
        out[y * row..(y + 1) * row].copy_from_slice(&pixels[start..start + row]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_match_torchvision() {
        assert_eq!(resized_dims(500, 375, 256), (341, 256));
        assert_eq!(resized_dims(375, 500, 256), (256, 341));
        assert_eq!(resized_dims(1600, 120, 256), (3413, 256));
        assert_eq!(resized_dims(256, 256, 256), (256, 256));
        assert_eq!(resized_dims(1, 1, 256), (256, 256));
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        // Python: round(0.5) == 0, round(1.5) == 2, round(2.5) == 2, round(42.5) == 42.
        assert_eq!(center_crop_offset(257, 256), 0);
        assert_eq!(center_crop_offset(259, 256), 2);
        assert_eq!(center_crop_offset(261, 256), 2);
        assert_eq!(center_crop_offset(341, 256), 42);
        assert_eq!(center_crop_offset(342, 256), 43);
        assert_eq!(center_crop_offset(256, 256), 0);
    }

    #[test]
    fn crop_takes_the_right_window() {
        // 4x3 image whose pixel (x, y) is [x, y, 7].
        let mut px = Vec::new();
        for y in 0..3u8 {
            for x in 0..4u8 {
                px.extend_from_slice(&[x, y, 7]);
            }
        }
        let mut out = vec![0; 2 * 2 * 3];
        crop_rgb(&px, 4, 3, 1, 1, 2, &mut out);
        assert_eq!(out, vec![1, 1, 7, 2, 1, 7, 1, 2, 7, 2, 2, 7]);
    }
}
