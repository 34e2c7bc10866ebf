//! Affine warps of an HWC u8 RGB image with nearest-neighbour sampling and fill 0, as
//! torchvision.transforms.v2's `affine` and `rotate` compute them on tensors: the inverse matrix
//! of `_get_inverse_affine_matrix`, the sampling grid of `_affine_grid` in f32 and
//! `grid_sample(mode="nearest", padding_mode="zeros", align_corners=False)`, which rounds half to
//! even. The geometric half of [`super::TrivialAugmentWide`]'s set.

/// torchvision's `_get_inverse_affine_matrix` (inverted): the map from output to input
/// coordinates of the rotation by `angle` degrees, `translate`, `scale` and `shear` degrees
/// (x, y) about `center` (in coordinates whose origin is the image's centre), as
/// `[a, b, c, d, e, f]`: x_in = a·x + b·y + c, y_in = d·x + e·y + f.
pub fn inverse_affine_matrix(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    scale: f64,
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear[0].to_radians(), shear[1].to_radians());
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(a * sx.tan() + rot.sin());
    let c = (rot - sy).sin() / sy.cos();
    let d = rot.cos() - c * sx.tan();
    let mut m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0];
    m[2] += cx - m[0] * (cx + tx) - m[1] * (cy + ty);
    m[5] += cy - m[3] * (cx + tx) - m[4] * (cy + ty);
    m
}

/// Warps `img` (`width` pixels per row) in place through the inverse `matrix` (centred
/// coordinates, [`inverse_affine_matrix`]): every output pixel takes the nearest input pixel, or
/// 0 when that falls outside the image.
pub fn warp_nearest(img: &mut [u8], width: usize, matrix: [f64; 6]) {
    let height = img.len() / (3 * width.max(1));
    if width == 0 || height == 0 {
        return;
    }
    let src = img.to_vec();
    let (half_w, half_h) = (0.5 * width as f32, 0.5 * height as f32);
    // `_affine_grid`: theta divided by the half sizes, so the grid is normalised to [-1, 1].
    let t = [
        matrix[0] as f32 / half_w,
        matrix[1] as f32 / half_w,
        matrix[2] as f32 / half_w,
        matrix[3] as f32 / half_h,
        matrix[4] as f32 / half_h,
        matrix[5] as f32 / half_h,
    ];
    for y in 0..height {
        let yb = y as f32 - (height as f32 - 1.0) * 0.5;
        for x in 0..width {
            let xb = x as f32 - (width as f32 - 1.0) * 0.5;
            let gx = xb * t[0] + yb * t[1] + t[2];
            let gy = xb * t[3] + yb * t[4] + t[5];
            // grid_sample's unnormalisation (align_corners=False), then nearest (half to even).
            let ix = ((gx + 1.0) * half_w - 0.5).round_ties_even();
            let iy = ((gy + 1.0) * half_h - 0.5).round_ties_even();
            let out = &mut img[(y * width + x) * 3..(y * width + x) * 3 + 3];
            if ix >= 0.0 && iy >= 0.0 && (ix as usize) < width && (iy as usize) < height {
                let s = (iy as usize * width + ix as usize) * 3;
                out.copy_from_slice(&src[s..s + 3]);
            } else {
                out.fill(0);
            }
        }
    }
}

/// TrivialAugment's ShearX: `affine(shear=[degrees(atan(m)), 0], center=[0, 0])` (about the
/// top-left corner).
pub fn shear_x(img: &mut [u8], width: usize, m: f64) {
    let corner = top_left_corner(img, width);
    let shear = [m.atan().to_degrees(), 0.0];
    warp_nearest(
        img,
        width,
        inverse_affine_matrix(corner, 0.0, [0.0; 2], 1.0, shear),
    );
}

/// TrivialAugment's ShearY: `affine(shear=[0, degrees(atan(m))], center=[0, 0])`.
pub fn shear_y(img: &mut [u8], width: usize, m: f64) {
    let corner = top_left_corner(img, width);
    let shear = [0.0, m.atan().to_degrees()];
    warp_nearest(
        img,
        width,
        inverse_affine_matrix(corner, 0.0, [0.0; 2], 1.0, shear),
    );
}

/// `affine(translate=[dx, dy])`: the content moved right by `dx` and down by `dy` pixels.
pub fn translate(img: &mut [u8], width: usize, dx: i64, dy: i64) {
    let matrix = inverse_affine_matrix([0.0; 2], 0.0, [dx as f64, dy as f64], 1.0, [0.0; 2]);
    warp_nearest(img, width, matrix);
}

/// `rotate(angle)`: counter-clockwise by `angle` degrees about the centre, same size.
pub fn rotate(img: &mut [u8], width: usize, angle: f64) {
    if angle.rem_euclid(360.0) == 0.0 {
        return;
    }
    // torchvision's rotate passes −angle to the affine matrix (its angle convention differs).
    let matrix = inverse_affine_matrix([0.0; 2], -angle, [0.0; 2], 1.0, [0.0; 2]);
    warp_nearest(img, width, matrix);
}

/// The top-left corner in centred coordinates (torchvision's `center=[0, 0]`).
fn top_left_corner(img: &[u8], width: usize) -> [f64; 2] {
    let height = img.len() / (3 * width.max(1));
    [-0.5 * width as f64, -0.5 * height as f64]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`×`h` image whose pixel (x, y) is [x, y, 1].
    fn coords(w: usize, h: usize) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 1]))
            .collect()
    }

    fn pixel(img: &[u8], w: usize, x: usize, y: usize) -> [u8; 3] {
        let s = (y * w + x) * 3;
        [img[s], img[s + 1], img[s + 2]]
    }

    #[test]
    fn warps_move_pixels_where_their_definitions_say() {
        let (w, h) = (7, 5);
        let mut img = coords(w, h);
        translate(&mut img, w, 2, -1);
        // Output (x, y) shows input (x − 2, y + 1); the uncovered band is 0.
        assert_eq!(pixel(&img, w, 2, 0), [0, 1, 1]);
        assert_eq!(pixel(&img, w, 6, 3), [4, 4, 1]);
        assert_eq!(pixel(&img, w, 1, 2), [0, 0, 0]);
        assert_eq!(pixel(&img, w, 3, 4), [0, 0, 0]);

        // A half turn maps (x, y) to (w − 1 − x, h − 1 − y).
        let mut img = coords(w, h);
        rotate(&mut img, w, 180.0);
        assert_eq!(pixel(&img, w, 0, 0), [6, 4, 1]);
        assert_eq!(pixel(&img, w, 5, 1), [1, 3, 1]);

        // A quarter turn counter-clockwise of a square: output (x, y) shows input (n−1−y, x).
        let n = 6;
        let mut img = coords(n, n);
        rotate(&mut img, n, 90.0);
        assert_eq!(pixel(&img, n, 0, 0), [5, 0, 1]);
        assert_eq!(pixel(&img, n, 2, 1), [4, 2, 1]);

        // ShearX about the top-left corner: row y reads from x + m·(y + 0.5), nearest; with
        // m = 0.4, row 0 is unchanged, row 2 shifts by one, row 4 by two.
        let mut img = coords(w, h);
        shear_x(&mut img, w, 0.4);
        assert_eq!(pixel(&img, w, 3, 0), [3, 0, 1]);
        assert_eq!(pixel(&img, w, 0, 2), [1, 2, 1]);
        assert_eq!(pixel(&img, w, 6, 2), [0, 0, 0]);
        assert_eq!(pixel(&img, w, 4, 4), [6, 4, 1]);
        assert_eq!(pixel(&img, w, 5, 4), [0, 0, 0]);
    }
}
