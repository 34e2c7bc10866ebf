//! Crop-aware decoding: a record's crop window is drawn before the record is decoded (from its
//! header's dimensions), so a JPEG decodes only what the window needs — at the smallest DCT
//! scale that keeps the window at least the output size, and only the window's rows and iMCU
//! columns (libjpeg-turbo's cropping region: `jpeg_crop_scanline` + `jpeg_skip_scanlines`).
//! DALI crops without scaling per sample, tf.data's `decode_and_crop_jpeg` scales by a fixed
//! ratio, PIL's `draft` scales the whole frame; this does both, per sample.
//!
//! The result is approximate (the DCT scaling is a box-like downscale ahead of the antialiased
//! resize); [`decode_rgb`](super::decode_rgb) plus an exact crop is the pixel-exact path. The
//! measured difference is in `docs/ENGINE.md`.

use std::io::Cursor;

use turbojpeg::raw;

use super::decode::{
    check_dims, decompress_into, decompress_rgb, read_jpeg_header, set_scale, with_decompressor,
    CInt,
};
use super::{is_jpeg, DecodeOptions, Filter, RejectReason, RgbImage};

/// A crop window in an image's own pixels: left, top, width, height.
pub type Window = (u32, u32, u32, u32);

/// The part of a JPEG [`decode_jpeg_window`] decoded, and where the window lies in it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledRegion {
    /// The decoded pixels: the window's rows and iMCU columns at the chosen scale, plus a small
    /// margin for the resize filter.
    pub image: RgbImage,
    /// The window in `image`'s pixels (left, top, width, height; fractional).
    pub window: [f64; 4],
    /// The DCT scale was `eighths`/8 (8: full size).
    pub eighths: u32,
}

/// Width and height of an encoded image, from its header alone (JPEG through libjpeg-turbo, the
/// other formats through the `image` crate), checked against `opts.max_pixels`.
pub fn image_dims(bytes: &[u8], opts: &DecodeOptions) -> Result<(u32, u32), RejectReason> {
    if bytes.is_empty() {
        return Err(RejectReason::Empty);
    }
    if is_jpeg(bytes) {
        return with_decompressor(|tj| {
            read_jpeg_header(tj, bytes, opts).map(|h| (h.width, h.height))
        });
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| RejectReason::Unreadable(e.to_string()))?;
    if reader.format().is_none() {
        return Err(RejectReason::NotAnImage);
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| RejectReason::Corrupt(e.to_string()))?;
    check_dims(w as u64, h as u64, opts)?;
    Ok((w, h))
}

/// The DCT scale, in eighths, for a `window_w`×`window_h` window resized to `out`×`out`: the
/// smallest M of M/8 among libjpeg-turbo's SIMD-accelerated scales (1/8, 1/4, 1/2, 1: M = 1, 2,
/// 4, 8) for which the scaled window is still at least `out` on both sides (8 when even the full
/// size is smaller: the resize then upsamples). The other eighths (3/8, 5/8, 6/8, 7/8) use
/// libjpeg-turbo's scalar IDCTs, which measured slower than its SIMD full-size IDCT
/// (`benches/rrc.py`, docs/ENGINE.md), so they are never picked.
pub fn window_eighths(window_w: u32, window_h: u32, out: u32) -> u32 {
    let short = window_w.min(window_h).max(1) as u64;
    FAST_EIGHTHS
        .into_iter()
        .find(|&m| short * m as u64 >= 8 * out as u64)
        .unwrap_or(8)
}

/// The DCT scales libjpeg-turbo decodes with SIMD code, in eighths, smallest first.
const FAST_EIGHTHS: [u32; 4] = [1, 2, 4, 8];

/// Margin, in scaled pixels per unit of the resize filter's support, decoded around the window so
/// the filter reads real pixels at the window's edges: it reaches `support` output steps beyond,
/// and at the chosen scale an output step is under 2 scaled pixels.
const MARGIN_PER_SUPPORT: u32 = 2;

/// Decodes the part of a JPEG that `window` (left, top, width, height in the image's full-size
/// pixels; fractional allowed) needs for an
/// `out`×`out` output: the DCT scale of [`window_eighths`], and only the window's rows and iMCU
/// columns (plus a margin of 2 pixels per unit of `filter`'s support). Lossless JPEGs, and any whose chroma layout libjpeg-turbo
/// cannot crop, decode whole at that scale instead. A decode that loses data midway (a
/// truncated or damaged file) is an error, as in [`decode_rgb`](super::decode_rgb).
pub fn decode_jpeg_window(
    bytes: &[u8],
    window: [f64; 4],
    out: u32,
    filter: Filter,
    opts: &DecodeOptions,
) -> Result<ScaledRegion, RejectReason> {
    let margin = MARGIN_PER_SUPPORT * filter.support();
    with_decompressor(|tj| {
        let header = read_jpeg_header(tj, bytes, opts)?;
        let [x, y, w, h] = window;
        let fits = x >= 0.0 && y >= 0.0 && w > 0.0 && h > 0.0;
        if !fits || x + w > header.width as f64 + 1e-6 || y + h > header.height as f64 + 1e-6 {
            return Err(RejectReason::Unsupported(format!(
                "window {w}x{h} at ({x}, {y}) is outside the {}x{} image",
                header.width, header.height
            )));
        }
        let m = if header.lossless {
            8
        } else {
            window_eighths(w.floor() as u32, h.floor() as u32, out)
        };
        // In lowest terms: libjpeg-turbo lists 1/2, not 4/8.
        let g = gcd(m, 8);
        set_scale(tj, m / g, 8 / g)?;
        // TJSCALED: ceil(dim * M / 8).
        let scaled = |v: u32| (v as u64 * m as u64).div_ceil(8) as u32;
        let (full_w, full_h) = (scaled(header.width), scaled(header.height));
        let f = m as f64 / 8.0;
        let (wx0, wy0) = (x * f, y * f);
        let (wx1, wy1) = (
            ((x + w) * f).min(full_w as f64),
            ((y + h) * f).min(full_h as f64),
        );
        // Rows: any; columns: the left edge on a scaled iMCU boundary (TurboJPEG's rule).
        let top = (wy0.floor() as u32).saturating_sub(margin);
        let bottom = (wy1.ceil() as u32 + margin).min(full_h);
        let mut left = (wx0.floor() as u32).saturating_sub(margin);
        let right = (wx1.ceil() as u32 + margin).min(full_w);
        let mcu = mcu_width(header.subsamp).map(scaled);
        let croppable = !header.lossless && mcu.is_some();
        if let Some(mcu) = mcu.filter(|_| croppable) {
            left -= left % mcu.max(1);
        }
        let region = if croppable {
            raw::tjregion {
                x: left as CInt,
                y: top as CInt,
                w: (right - left) as CInt,
                h: (bottom - top) as CInt,
            }
        } else {
            left = 0;
            raw::tjregion {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            }
        };
        let (rw, rh, ry) = if croppable {
            (right - left, bottom - top, top)
        } else {
            (full_w, full_h, 0)
        };
        // SAFETY: valid handle whose header was read; the region lies within the scaled image
        // and its left edge is on a scaled iMCU boundary.
        if unsafe { raw::tj3SetCroppingRegion(tj.0, region) } != 0 {
            let (_, msg) = tj.error();
            return Err(RejectReason::Unsupported(format!(
                "JPEG cropping region: {msg}"
            )));
        }
        Ok(ScaledRegion {
            image: decompress_rgb(tj, bytes, &header, rw, rh)?,
            window: [
                wx0 - left as f64,
                wy0 - ry as f64,
                (wx1 - wx0).min(rw as f64 - (wx0 - left as f64)),
                (wy1 - wy0).min(rh as f64 - (wy0 - ry as f64)),
            ],
            eighths: m,
        })
    })
}

/// Pixels decoded beyond the span a resize reads, on every side: libjpeg-turbo's fancy
/// upsampling at a cropped region's edges lacks a chroma neighbour, so the first pixel of a
/// region may differ from a whole decode's (with no margin, 4:2:2 images do; one pixel is enough
/// for every layout in the tests), never this far in.
const SPAN_MARGIN: u32 = 8;

/// Decodes a JPEG at full size into `frame` (made the image's `width`×`height`), but only the part
/// a resize will read: of `[x0, y0, x1, y1)` = `span(width, height)`, the columns `x0..x1` and the
/// rows from `y0` down, with a margin of 8 pixels, each pixel at its own place. Those pixels are
/// exactly the whole decode's; the others are left as they were and must not be read.
/// libjpeg-turbo then skips the IDCT, upsampling and colour conversion of the columns outside and
/// of the rows above. Every row's entropy data is still decoded and the rows below are decoded
/// whole, so a file truncated or damaged anywhere is the same error as in a whole decode. Returns
/// `false`, decoding nothing, for a JPEG it cannot crop (lossless, CMYK, unknown chroma layout, a
/// region libjpeg-turbo refuses) or a span that covers it whole: decode that one whole.
pub fn decode_jpeg_span(
    bytes: &[u8],
    opts: &DecodeOptions,
    span: impl FnOnce(u32, u32) -> [u32; 4],
    frame: &mut RgbImage,
) -> Result<bool, RejectReason> {
    with_decompressor(|tj| {
        let header = read_jpeg_header(tj, bytes, opts)?;
        let mcu = mcu_width(header.subsamp).filter(|_| !header.lossless && !header.cmyk);
        let Some(mcu) = mcu.filter(|&m| m > 0) else {
            return Ok(false);
        };
        let (width, height) = (header.width, header.height);
        let [x0, y0, x1, _] = span(width, height);
        let left = x0.saturating_sub(SPAN_MARGIN) / mcu * mcu;
        let top = y0.saturating_sub(SPAN_MARGIN);
        let right = x1.saturating_add(SPAN_MARGIN).min(width);
        if left >= right || top >= height || (left, top, right) == (0, 0, width) {
            return Ok(false);
        }
        set_scale(tj, 1, 1)?;
        let region = raw::tjregion {
            x: left as CInt,
            y: top as CInt,
            w: (right - left) as CInt,
            h: (height - top) as CInt,
        };
        // SAFETY: valid handle whose header was read; the region lies within the image and its
        // left edge is on an iMCU boundary. Should libjpeg-turbo refuse it anyway, the image
        // decodes whole (the next header read resets the region).
        if unsafe { raw::tj3SetCroppingRegion(tj.0, region) } != 0 {
            return Ok(false);
        }
        frame.width = width;
        frame.height = height;
        frame.pixels.resize(width as usize * height as usize * 3, 0);
        let pitch = width as usize * 3;
        let start = top as usize * pitch + left as usize * 3;
        // The region's rows land at their own place: `pitch` apart from (left, top).
        decompress_into(tj, bytes, &header, &mut frame.pixels[start..], pitch)?;
        Ok(true)
    })
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// libjpeg-turbo's `tjMCUWidth` (a `static const` of its header, so not a linkable symbol): the
/// iMCU width of 4:4:4, 4:2:2, 4:2:0, grey, 4:4:0, 4:1:1 and 4:4:1.
const MCU_WIDTHS: [u32; 7] = [8, 16, 16, 8, 8, 32, 8];

/// The iMCU width of a chroma subsampling id, or `None` when it is unknown.
fn mcu_width(subsamp: CInt) -> Option<u32> {
    usize::try_from(subsamp)
        .ok()
        .and_then(|i| MCU_WIDTHS.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth 300×200 test picture, baseline 4:2:0 JPEG at quality 95.
    fn jpeg() -> Vec<u8> {
        jpeg_of(300, 200, turbojpeg::Subsamp::Sub2x2)
    }

    /// A `w`×`h` picture with edges and texture in every channel, baseline JPEG at quality 90
    /// with the given chroma layout.
    fn jpeg_of(w: usize, h: usize, subsamp: turbojpeg::Subsamp) -> Vec<u8> {
        let pixels: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                // Smooth waves, a hard diagonal edge and a fine checker texture.
                let edge = if x + 2.0 * y > w as f64 { 60.0 } else { 0.0 };
                let checker = if (i % w / 2 + i / w / 2).is_multiple_of(2) {
                    12.0
                } else {
                    0.0
                };
                [
                    (100.0 + 90.0 * (x / 17.0).sin() + edge) as u8,
                    (100.0 + 90.0 * (y / 11.0).cos() + checker) as u8,
                    ((x + y) / 4.0 % 200.0 + checker) as u8,
                ]
            })
            .collect();
        let mut c = turbojpeg::Compressor::new().expect("compressor");
        c.set_quality(95).expect("quality");
        c.set_subsamp(subsamp).expect("subsampling");
        let image = turbojpeg::Image {
            pixels: &pixels[..],
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        };
        c.compress_to_vec(image).expect("encode")
    }

    #[test]
    fn a_window_decodes_as_the_same_part_of_the_whole_scaled_image() {
        let bytes = jpeg();
        let opts = DecodeOptions::default();
        // The whole frame at 1/4 (short side 200 · 2/8 = 50 ≥ 50 > 200 · 1/8).
        let whole = decode_jpeg_window(
            &bytes,
            [0.0, 0.0, 300.0, 200.0],
            50,
            Filter::Bilinear,
            &opts,
        )
        .expect("whole");
        assert_eq!(
            (whole.eighths, whole.image.width, whole.image.height),
            (2, 75, 50)
        );
        // A 120×100 window for a 25 px output: also 1/4, and only its region decoded.
        let part = decode_jpeg_window(
            &bytes,
            [50.0, 40.0, 120.0, 100.0],
            25,
            Filter::Bilinear,
            &opts,
        )
        .expect("part");
        assert_eq!(part.eighths, 2);
        assert!(
            part.image.width < 40 && part.image.height < 30,
            "{:?}",
            (part.image.width, part.image.height)
        );
        let [wx, wy, ww, wh] = part.window;
        assert!((ww - 30.0).abs() < 1e-9 && (wh - 25.0).abs() < 1e-9);
        // The region's origin in the scaled frame, and the same pixels there (up to the fancy
        // upsampling of chroma at the region's right edge).
        let (left, top) = (50.0 * 2.0 / 8.0 - wx, 40.0 * 2.0 / 8.0 - wy);
        assert_eq!(left.fract(), 0.0);
        assert_eq!(top.fract(), 0.0);
        let (left, top) = (left as usize, top as usize);
        assert_eq!(left % 4, 0, "left edge on a scaled iMCU (16 · 2/8 = 4)");
        let (pw, fw) = (part.image.width as usize, whole.image.width as usize);
        let mut total = 0u64;
        let mut n = 0u64;
        for y in 0..part.image.height as usize {
            for x in 0..(pw - 1) * 3 {
                let a = part.image.pixels[y * pw * 3 + x] as i64;
                let b = whole.image.pixels[(top + y) * fw * 3 + left * 3 + x] as i64;
                total += a.abs_diff(b);
                n += 1;
            }
        }
        assert!(
            (total as f64 / n as f64) < 0.05,
            "mean {}",
            total as f64 / n as f64
        );
    }

    #[test]
    fn a_window_in_lost_data_is_an_error_and_one_before_it_is_exact() {
        let bytes = jpeg();
        let cut = &bytes[..bytes.len() * 2 / 3];
        let opts = DecodeOptions::default();
        // The data for the bottom rows is gone: an error, never grey filler.
        let lost = decode_jpeg_window(
            cut,
            [150.0, 140.0, 150.0, 60.0],
            32,
            Filter::Bilinear,
            &opts,
        );
        assert!(matches!(lost, Err(RejectReason::Corrupt(_))), "{lost:?}");
        // A window in the intact top rows decodes from intact data: the same pixels as from the
        // whole file.
        let top = [0.0, 0.0, 100.0, 50.0];
        let from_cut =
            decode_jpeg_window(cut, top, 32, Filter::Bilinear, &opts).expect("intact rows");
        let from_whole =
            decode_jpeg_window(&bytes, top, 32, Filter::Bilinear, &opts).expect("whole file");
        assert_eq!(from_cut, from_whole);
        // And the handle is fine afterwards.
        assert!(decode_jpeg_window(
            &bytes,
            [0.0, 0.0, 300.0, 200.0],
            224,
            Filter::Bilinear,
            &opts
        )
        .is_ok());
        let outside = decode_jpeg_window(
            &bytes,
            [250.0, 0.0, 100.0, 100.0],
            32,
            Filter::Bilinear,
            &opts,
        );
        assert!(
            matches!(outside, Err(RejectReason::Unsupported(_))),
            "{outside:?}"
        );
    }

    #[test]
    fn a_centre_span_decodes_to_the_same_crop_as_the_whole_image() {
        use crate::prep::{center_crop_span, decode_rgb, ResizeCrop};
        use turbojpeg::Subsamp;
        let opts = DecodeOptions::default();
        let mut resize = ResizeCrop::new();
        let mut frame = RgbImage::default();
        let mut cropped = 0;
        let layouts = [
            Subsamp::None,
            Subsamp::Sub2x1,
            Subsamp::Sub2x2,
            Subsamp::Sub1x2,
            Subsamp::Sub4x1,
            Subsamp::Gray,
        ];
        // Landscape, portrait, square, odd sides, smaller than the output (upscaled), exactly it.
        let sizes = [
            (500, 375),
            (333, 500),
            (300, 300),
            (613, 257),
            (200, 150),
            (256, 256),
        ];
        for subsamp in layouts {
            for (w, h) in sizes {
                let bytes = jpeg_of(w, h, subsamp);
                let whole = decode_rgb(&bytes, &opts).expect("decodes");
                let mut expected = vec![0u8; 256 * 256 * 3];
                resize.resize_center_crop(&whole, 256, &mut expected);
                // Stale pixels from another image must not leak in: start from a bright frame.
                frame.pixels = vec![255; w * h * 3];
                let span = |fw, fh| center_crop_span(fw, fh, 256);
                if decode_jpeg_span(&bytes, &opts, span, &mut frame).expect("decodes") {
                    cropped += 1;
                } else {
                    frame = whole.clone();
                }
                assert_eq!((frame.width, frame.height), (w as u32, h as u32));
                let mut ours = vec![0u8; 256 * 256 * 3];
                resize.resize_center_crop(&frame, 256, &mut ours);
                assert!(ours == expected, "{subsamp:?} {w}x{h}: the crop differs");
            }
        }
        // Every image with columns or rows outside the span took the cropped path.
        assert!(cropped >= layouts.len() * 4, "only {cropped} cropped");
        // A file cut short below the centre is still the whole decode's error.
        let bytes = jpeg_of(333, 500, Subsamp::Sub2x2);
        let cut = &bytes[..bytes.len() * 9 / 10];
        assert!(decode_rgb(cut, &opts).is_err());
        let span = |fw, fh| center_crop_span(fw, fh, 256);
        let lost = decode_jpeg_span(cut, &opts, span, &mut frame);
        assert!(matches!(lost, Err(RejectReason::Corrupt(_))), "{lost:?}");
    }

    #[test]
    fn eighths_keep_the_window_at_least_the_output() {
        assert_eq!(window_eighths(2000, 1500, 224), 2); // 1500 * 2/8 = 375 ≥ 224; 1/8 → 187
        assert_eq!(window_eighths(448, 448, 224), 4);
        assert_eq!(window_eighths(449, 600, 224), 4);
        assert_eq!(window_eighths(447, 600, 224), 8); // 5/8 would do, but is a scalar IDCT
        assert_eq!(window_eighths(224, 224, 224), 8);
        assert_eq!(window_eighths(100, 300, 224), 8); // smaller than the output: full size
        assert_eq!(window_eighths(5000, 5000, 224), 1);
        for (w, h) in [(300, 500), (1234, 987), (225, 4000)] {
            let m = window_eighths(w, h, 224);
            assert!(w.min(h) * m >= 224 * 8 || m == 8);
            assert!(
                m == 1 || w.min(h) * (m / 2) < 224 * 8,
                "{m} is not the smallest"
            );
        }
    }
}
