//! Short-side resize and center crop (paper §2: "rescaled the image such that the shorter side was of
//! length 256, and then cropped out the central 256×256 patch").
//!
//! Geometry follows torchvision's `Resize(size)` + `CenterCrop(size)` on PIL images exactly; pixels follow
//! Pillow's antialiased `BILINEAR` (a triangle filter widened by the scale factor), or for
//! RandomResizedCrop also its `BICUBIC` ([`Filter`]), implemented by `fast_image_resize`'s SIMD port
//! of Pillow's convolution.

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

/// The resampling filter, as Pillow defines it: both antialiased (the kernel widened by the
/// scale factor when shrinking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Pillow's `BILINEAR`: a triangle of support 1 (torchvision's default).
    #[default]
    Bilinear,
    /// Pillow's `BICUBIC`: Keys' cubic with a = −0.5 (Catmull–Rom), support 2, results clamped to
    /// 0..=255 (timm's evaluation default, and half of its random training choice).
    Bicubic,
}

impl Filter {
    /// The kernel's reach, in output pixels, on each side of a pixel's centre.
    pub fn support(self) -> u32 {
        match self {
            Filter::Bilinear => 1,
            Filter::Bicubic => 2,
        }
    }

    /// The name Python and the CLI use (`"bilinear"`, `"bicubic"`).
    pub fn name(self) -> &'static str {
        match self {
            Filter::Bilinear => "bilinear",
            Filter::Bicubic => "bicubic",
        }
    }

    fn kernel(self) -> FilterType {
        match self {
            Filter::Bilinear => FilterType::Bilinear,
            // fast_image_resize's CatmullRom is Pillow's bicubic_filter (a = −0.5, support 2).
            Filter::Bicubic => FilterType::CatmullRom,
        }
    }
}

/// The part of a `width`×`height` image that torchvision's `Resize(resize_to)` +
/// `CenterCrop(crop)` shows, in the image's own pixels (left, top, width, height; fractional):
/// the centre crop's offset and side scaled back by the resize factor of each axis.
pub fn center_box(width: u32, height: u32, resize_to: u32, crop: u32) -> [f64; 4] {
    let (rw, rh) = resized_dims(width, height, resize_to);
    let (left, top) = (center_crop_offset(rw, crop), center_crop_offset(rh, crop));
    let (sx, sy) = (width as f64 / rw as f64, height as f64 / rh as f64);
    let (x, y) = (left as f64 * sx, top as f64 * sy);
    [
        x,
        y,
        (crop as f64 * sx).min(width as f64 - x),
        (crop as f64 * sy).min(height as f64 - y),
    ]
}

/// The source pixels `[x0, y0, x1, y1)` that [`ResizeCrop::resize_center_crop`] of a
/// `width`×`height` image to `size` reads: its [`center_box`] widened on each axis by the
/// bilinear kernel's reach. What a crop-aware decode must deliver exactly.
pub fn center_crop_span(width: u32, height: u32, size: u32) -> [u32; 4] {
    let [x, y, w, h] = center_box(width, height, size, size);
    let (x0, x1) = filter_span(width, x, w, size, Filter::Bilinear);
    let (y0, y1) = filter_span(height, y, h, size, Filter::Bilinear);
    [x0, y0, x1, y1]
}

/// The input pixels `first..last` of an axis of `len` pixels that `out` outputs resampled from its
/// box `start..start + extent` with `filter` read: each output's centre ± the kernel's support
/// widened by the scale, floored and ceiled as fast_image_resize bounds its coefficients (a
/// superset of Pillow's bounds, which drop only pixels of weight 0), clipped to the axis.
fn filter_span(len: u32, start: f64, extent: f64, out: u32, filter: Filter) -> (u32, u32) {
    let step = extent / out as f64;
    let reach = filter.support() as f64 * step.max(1.0);
    let first = start + 0.5 * step - reach;
    let last = start + (out as f64 - 0.5) * step + reach;
    let first = first.floor().max(0.0) as u32;
    let last = last.ceil().min(len as f64) as u32;
    (first, last.max(first + 1))
}

/// Per-thread resize state (Pillow-style convolution buffers), reused across images.
#[derive(Default)]
pub struct ResizeCrop {
    resizer: Resizer,
    /// A bicubic resize's horizontal pass (Pillow's intermediate image).
    horizontal_pass: Vec<u8>,
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
        self.resize_short_center_crop(src, size, size, Filter::Bilinear, out);
    }

    /// torchvision's `Resize(resize_to)` + `CenterCrop(crop)` (evaluation of the RandomResizedCrop
    /// recipe: `resize_to = crop / crop_fraction`): the short side becomes `resize_to`, and the
    /// central `crop`×`crop` patch is written to `out`, resampled with `filter`. As
    /// [`ResizeCrop::resize_center_crop`], only the patch is computed. `crop` must not exceed the
    /// resized short side.
    pub fn resize_short_center_crop(
        &mut self,
        src: &RgbImage,
        resize_to: u32,
        crop: u32,
        filter: Filter,
        out: &mut [u8],
    ) {
        let (rw, rh) = resized_dims(src.width, src.height, resize_to);
        let (left, top) = (center_crop_offset(rw, crop), center_crop_offset(rh, crop));
        if (rw, rh) == (src.width, src.height) {
            crop_rgb(&src.pixels, src.width, src.height, left, top, crop, out);
            return;
        }
        let window = center_box(src.width, src.height, resize_to, crop);
        self.resize_box(src, window, (crop, crop), filter, out);
    }

    /// Pillow's `image.resize((out_w, out_h), filter, box=window)`: the `window` (left, top,
    /// width, height in `src` pixels, fractional allowed) resized to `out_w`×`out_h` with the
    /// antialiased `filter`, which also reads the pixels just around the window.
    ///
    /// Bilinear runs fast_image_resize's one call, which for u8 does the vertical pass first;
    /// the order only moves a rounding by one level, since a triangle never overshoots. Bicubic
    /// overshoots and is clamped between the passes, so there the order changes pixels by many
    /// levels at sharp edges: it runs Pillow's order, the horizontal pass over the rows the
    /// vertical pass reads, then the vertical pass.
    pub fn resize_box(
        &mut self,
        src: &RgbImage,
        window: [f64; 4],
        (out_w, out_h): (u32, u32),
        filter: Filter,
        out: &mut [u8],
    ) {
        let [left, top, width, height] = window;
        match filter {
            Filter::Bilinear => self.convolve(src, window, (out_w, out_h), filter, out),
            Filter::Bicubic => {
                let (first, last) = filter_span(src.height, top, height, out_h, filter);
                let rows = last - first;
                let mut pass = std::mem::take(&mut self.horizontal_pass);
                pass.resize(out_w as usize * rows as usize * 3, 0);
                let strip = [left, first as f64, width, rows as f64];
                self.convolve(src, strip, (out_w, rows), filter, &mut pass);
                let across = RgbImage {
                    width: out_w,
                    height: rows,
                    pixels: pass,
                };
                let down = [0.0, top - first as f64, out_w as f64, height];
                self.convolve(&across, down, (out_w, out_h), filter, out);
                self.horizontal_pass = across.pixels;
            }
        }
    }

    /// fast_image_resize's convolution of `window` of `src` to `out_w`×`out_h` (a pass in a
    /// direction the window already fits is a copy).
    fn convolve(
        &mut self,
        src: &RgbImage,
        window: [f64; 4],
        (out_w, out_h): (u32, u32),
        filter: Filter,
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
            .resize_alg(ResizeAlg::Convolution(filter.kernel()))
            .crop(left, top, width, height);
        if let Err(e) = self.resizer.resize(&src_view, &mut dst_view, &options) {
            unreachable!("U8x3 resize of a window within the image cannot fail: {e}");
        }
    }

    /// torchvision's `resized_crop` on a PIL image (`image.crop(box).resize(size, filter)`):
    /// the integer window (`x`, `y`, `w`, `h`) cut out, then resized to `out_size`×`out_size`, so
    /// the filter sees only the window's pixels. `cut` is scratch for the window's copy.
    pub fn resized_crop(
        &mut self,
        src: &RgbImage,
        (x, y, w, h): (u32, u32, u32, u32),
        (out_size, filter): (u32, Filter),
        cut: &mut RgbImage,
        out: &mut [u8],
    ) {
        let square = (out_size, out_size);
        if (x, y, w, h) == (0, 0, src.width, src.height) {
            let full = [0.0, 0.0, w as f64, h as f64];
            return self.resize_box(src, full, square, filter, out);
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
        self.resize_box(cut, full, square, filter, out);
    }

    /// The whole image resized to `width`×`height` (antialiased bilinear, Pillow's `resize`).
    pub fn resize_whole(&mut self, src: &RgbImage, width: u32, height: u32) -> RgbImage {
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        let full = [0.0, 0.0, src.width as f64, src.height as f64];
        self.resize_box(src, full, (width, height), Filter::Bilinear, &mut pixels);
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

    /// Pillow's filters (`Imaging/Resample.c`): the triangle and Keys' cubic with a = −0.5.
    fn pillow_kernel(filter: Filter, x: f64) -> f64 {
        let (x, a) = (x.abs(), -0.5);
        match filter {
            Filter::Bilinear if x < 1.0 => 1.0 - x,
            Filter::Bicubic if x < 1.0 => ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
            Filter::Bicubic if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * a,
            _ => 0.0,
        }
    }

    /// Pillow's `precompute_coeffs`, in f64: for each output pixel, its first input pixel and
    /// normalised weights over the box `in0..in1` of an axis of `in_size` pixels.
    fn pillow_coeffs(
        in_size: usize,
        (in0, in1): (f64, f64),
        out_size: usize,
        filter: Filter,
    ) -> Vec<(usize, Vec<f64>)> {
        let scale = (in1 - in0) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() as f64 * filterscale;
        (0..out_size)
            .map(|xx| {
                let center = in0 + (xx as f64 + 0.5) * scale;
                // C's (int) cast truncates toward zero.
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let w: Vec<f64> = (xmin..xmax)
                    .map(|x| pillow_kernel(filter, (x as f64 - center + 0.5) / filterscale))
                    .collect();
                let total: f64 = w.iter().sum();
                (xmin, w.iter().map(|v| v / total).collect())
            })
            .collect()
    }

    /// A plain reference of Pillow's `resize(box=window)`: the horizontal pass over every row into
    /// rounded, clamped u8 (as Pillow's intermediate image), then the vertical pass.
    fn pillow_resize(src: &RgbImage, window: [f64; 4], (ow, oh): (u32, u32), f: Filter) -> Vec<u8> {
        let (w, h) = (src.width as usize, src.height as usize);
        let (ow, oh) = (ow as usize, oh as usize);
        let [left, top, bw, bh] = window;
        let to_u8 = |v: f64| v.round().clamp(0.0, 255.0) as u8;
        let horizontal = pillow_coeffs(w, (left, left + bw), ow, f);
        let mut mid = vec![0u8; ow * h * 3];
        for y in 0..h {
            for (x, (first, weights)) in horizontal.iter().enumerate() {
                for c in 0..3 {
                    let at = |i: usize| src.pixels[(y * w + first + i) * 3 + c] as f64;
                    let sum: f64 = weights.iter().enumerate().map(|(i, k)| at(i) * k).sum();
                    mid[(y * ow + x) * 3 + c] = to_u8(sum);
                }
            }
        }
        let vertical = pillow_coeffs(h, (top, top + bh), oh, f);
        let mut out = vec![0u8; ow * oh * 3];
        for (y, (first, weights)) in vertical.iter().enumerate() {
            for x in 0..ow {
                for c in 0..3 {
                    let at = |i: usize| mid[((first + i) * ow + x) * 3 + c] as f64;
                    let sum: f64 = weights.iter().enumerate().map(|(i, k)| at(i) * k).sum();
                    out[(y * ow + x) * 3 + c] = to_u8(sum);
                }
            }
        }
        out
    }

    #[test]
    fn both_filters_match_a_plain_pillow_reference() {
        let src = RgbImage {
            width: 97,
            height: 61,
            pixels: crate::test_pixels::noise(97 * 61 * 3, 5),
        };
        let mut resize = ResizeCrop::new();
        let cases: [([f64; 4], (u32, u32)); 4] = [
            ([0.0, 0.0, 97.0, 61.0], (40, 30)),    // shrink: the kernel widens
            ([10.0, 7.0, 20.0, 15.0], (45, 37)),   // enlarge
            ([3.7, 5.2, 50.3, 30.9], (32, 32)),    // a fractional box
            ([60.5, 20.25, 36.5, 40.75], (23, 9)), // against the edges
        ];
        let mut outputs = Vec::new();
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            for (window, (ow, oh)) in cases {
                let mut ours = vec![0u8; (ow * oh * 3) as usize];
                resize.resize_box(&src, window, (ow, oh), filter, &mut ours);
                let reference = pillow_resize(&src, window, (ow, oh), filter);
                let diffs: Vec<i32> = ours
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (*a as i32 - *b as i32).abs())
                    .collect();
                let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
                let max = diffs.iter().copied().max().unwrap_or(0);
                // Bilinear runs the vertical pass first (Pillow the horizontal), so its
                // intermediate rounds elsewhere: on noise up to a quarter of the values differ by
                // 1. Bicubic runs Pillow's order: only the fixed-point weights' last bit differs.
                // A wrong filter, support, pass order or half-pixel shift differs by far more.
                let mean_bound = match filter {
                    Filter::Bilinear => 0.35,
                    Filter::Bicubic => 0.05,
                };
                assert!(
                    max <= 1 && mean < mean_bound,
                    "{filter:?} {window:?}: max {max}, mean {mean}"
                );
                outputs.push(ours);
            }
        }
        // The filter is used: bicubic's negative lobes change the noise far beyond rounding.
        let (bilinear, bicubic) = outputs.split_at(cases.len());
        for (a, b) in bilinear.iter().zip(bicubic) {
            let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max();
            assert!(max > Some(10), "bilinear and bicubic agree: {max:?}");
        }
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
