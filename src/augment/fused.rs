//! The hot loops the loader runs: crop, mirror, lighting, normalisation and layout in one pass
//! (the paper's recipe; RandomResizedCrop runs them over its resized window). They allocate
//! nothing and branch per row, never per pixel; the tests in `mod.rs` check them against the
//! composition of the plain ops.

use super::{Normalize, SampleParams};

/// One output pixel's three destinations, in the R, G and B planes.
type Planes<'a> = (&'a mut f32, &'a mut f32, &'a mut f32);

/// The hot loop for f32 NCHW: crop at (`p.x`, `p.y`), mirror if `p.flip`, add the lighting `delta`,
/// normalise, and write `3 × crop × crop` floats (planes R, G, B) to `out`. `src` is one stored
/// `size`×`size`×3 image.
pub fn fused_f32_nchw(
    src: &[u8],
    size: usize,
    p: &SampleParams,
    crop: usize,
    delta: [f32; 3],
    norm: &Normalize<'_>,
    out: &mut [f32],
) {
    let plane = crop * crop;
    let (r_out, rest) = out[..3 * plane].split_at_mut(plane);
    let (g_out, b_out) = rest.split_at_mut(plane);
    let (x0, y0) = (p.x as usize, p.y as usize);
    for y in 0..crop {
        let start = ((y0 + y) * size + x0) * 3;
        let src_row = &src[start..start + crop * 3];
        let outs = r_out[y * crop..(y + 1) * crop]
            .iter_mut()
            .zip(&mut g_out[y * crop..(y + 1) * crop])
            .zip(&mut b_out[y * crop..(y + 1) * crop])
            .map(|((r, g), b)| (r, g, b));
        match *norm {
            Normalize::MeanImage(mean) => {
                let mean_row = &mean[start..start + crop * 3];
                // Pixel minus mean, plus the lighting shift; the mean is read at the source position.
                let pixels = src_row.chunks_exact(3).zip(mean_row.chunks_exact(3));
                let kernel = |((r, g, b), (px, m)): (Planes, (&[u8], &[f32]))| {
                    *r = px[0] as f32 - m[0] + delta[0];
                    *g = px[1] as f32 - m[1] + delta[1];
                    *b = px[2] as f32 - m[2] + delta[2];
                };
                if p.flip {
                    outs.zip(pixels.rev()).for_each(kernel);
                } else {
                    outs.zip(pixels).for_each(kernel);
                }
            }
            Normalize::Channel { mean, std } => {
                let scale = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
                let offset = [0, 1, 2].map(|c| (delta[c] - mean[c]) * scale[c]);
                let pixels = src_row.chunks_exact(3);
                let kernel = |((r, g, b), px): (Planes, &[u8])| {
                    *r = px[0] as f32 * scale[0] + offset[0];
                    *g = px[1] as f32 * scale[1] + offset[1];
                    *b = px[2] as f32 * scale[2] + offset[2];
                };
                if p.flip {
                    outs.zip(pixels.rev()).for_each(kernel);
                } else {
                    outs.zip(pixels).for_each(kernel);
                }
            }
        }
    }
}

/// The hot loop for u8 NHWC (for normalisation on the GPU): crop at (`p.x`, `p.y`) and mirror if
/// `p.flip`, writing `crop × crop × 3` bytes to `out`.
pub fn fused_u8_nhwc(src: &[u8], size: usize, p: &SampleParams, crop: usize, out: &mut [u8]) {
    let (x0, y0) = (p.x as usize, p.y as usize);
    let row_len = crop * 3;
    for (y, out_row) in out[..crop * row_len].chunks_exact_mut(row_len).enumerate() {
        let start = ((y0 + y) * size + x0) * 3;
        let src_row = &src[start..start + row_len];
        if p.flip {
            for (o, s) in out_row
                .chunks_exact_mut(3)
                .zip(src_row.chunks_exact(3).rev())
            {
                o.copy_from_slice(s);
            }
        } else {
            out_row.copy_from_slice(src_row);
        }
    }
}
