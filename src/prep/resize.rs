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
        self.resize_short_center_crop(src, size, size, out);
    }

    /// torchvision's `Resize(resize_to)` + `CenterCrop(crop)` (evaluation of the RandomResizedCrop
    /// recipe: `resize_to = crop / crop_fraction`): the short side becomes `resize_to`, and the
    /// central `crop`×`crop` patch is written to `out`. As [`ResizeCrop::resize_center_crop`],
    /// only the patch is computed. `crop` must not exceed the resized short side.
    pub fn resize_short_center_crop(
        &mut self,
        src: &RgbImage,
        resize_to: u32,
        crop: u32,
        out: &mut [u8],
    ) {
        let (rw, rh) = resized_dims(src.width, src.height, resize_to);
        let (left, top) = (center_crop_offset(rw, crop), center_crop_offset(rh, crop));
        if (rw, rh) == (src.width, src.height) {
            crop_rgb(&src.pixels, src.width, src.height, left, top, crop, out);
            return;
        }
        let (sx, sy) = (src.width as f64 / rw as f64, src.height as f64 / rh as f64);
        let window = [
            left as f64 * sx,
            top as f64 * sy,
            (crop as f64 * sx).min(src.width as f64 - left as f64 * sx),
            (crop as f64 * sy).min(src.height as f64 - top as f64 * sy),
        ];
        self.resize_box(src, window, crop, crop, out);
    }

    /// Pillow's `image.resize((out_w, out_h), BILINEAR, box=window)`: the `window` (left, top,
    /// width, height in `src` pixels, fractional allowed) resized to `out_w`×`out_h` with the
    /// antialiased bilinear filter, which also reads the pixels just around the window.
    pub fn resize_box(
        &mut self,
        src: &RgbImage,
        window: [f64; 4],
        out_w: u32,
        out_h: u32,
        out: &mut [u8],
    ) {
        let (Ok(src_view), Ok(mut dst_view)) = (
            ImageRef::new(src.width, src.height, &src.pixels, PixelType::U8x3),
            Image::from_slice_u8(out_w, out_h, out, PixelType::U8x3),
        ) else {
            unreachable!("callers pass buffers of the stated dimensions");
        };
        let [left, top, width, height] = window;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(left, top, width, height);
        if let Err(e) = self.resizer.resize(&src_view, &mut dst_view, &options) {
            unreachable!("U8x3 resize of a window within the image cannot fail: {e}");
        }
    }

    /// torchvision's `resized_crop` on a PIL image (`image.crop(box).resize(size, BILINEAR)`):
    /// the integer window (`x`, `y`, `w`, `h`) cut out, then resized to `out_size`×`out_size`, so
    /// the filter sees only the window's pixels. `cut` is scratch for the window's copy.
    #[allow(clippy::too_many_arguments)]
    pub fn resized_crop(
        &mut self,
        src: &RgbImage,
        (x, y, w, h): (u32, u32, u32, u32),
        out_size: u32,
        cut: &mut RgbImage,
        out: &mut [u8],
    ) {
        if (x, y, w, h) == (0, 0, src.width, src.height) {
            let full = [0.0, 0.0, w as f64, h as f64];
            return self.resize_box(src, full, out_size, out_size, out);
        }
        cut.width = w;
        cut.height = h;
        cut.pixels.resize(w as usize * h as usize * 3, 0);
        let row = w as usize * 3;
        for (r, dst) in cut.pixels.chunks_exact_mut(row).enumerate() {
            let start = ((y as usize + r) * src.width as usize + x as usize) * 3;
            dst.copy_from_slice(&src.pixels[start..start + row]);
        }
        let full = [0.0, 0.0, w as f64, h as f64];
        self.resize_box(cut, full, out_size, out_size, out);
    }

    /// The whole image resized to `width`×`height` (antialiased bilinear, Pillow's `resize`).
    pub fn resize_whole(&mut self, src: &RgbImage, width: u32, height: u32) -> RgbImage {
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        let full = [0.0, 0.0, src.width as f64, src.height as f64];
        self.resize_box(src, full, width, height, &mut pixels);
        RgbImage {
            width,
            height,
            pixels,
        }
    }
}

/// Dimensions with the long side capped at `max_side`, aspect kept (FFCV's `max_resolution`):
/// unchanged when the long side is within the cap, else the long side becomes `max_side` and the
/// short side `round(short · max_side / long)`, at least 1.
pub fn capped_dims(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_side {
        return (width, height);
    }
    let scale =
        |v: u32| ((v as u64 * max_side as u64 + long as u64 / 2) / long as u64).max(1) as u32;
    if width >= height {
        (max_side, scale(height))
    } else {
        (scale(width), max_side)
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
    fn capped_dims_keep_the_aspect() {
        assert_eq!(capped_dims(500, 375, 512), (500, 375));
        assert_eq!(capped_dims(2400, 1600, 512), (512, 341));
        assert_eq!(capped_dims(1600, 2400, 512), (341, 512));
        assert_eq!(capped_dims(3000, 2, 512), (512, 1));
        assert_eq!(capped_dims(1023, 1023, 512), (512, 512));
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
