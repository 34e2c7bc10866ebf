//! The learned conv1 kernels as a grid (§6.1, Figure 3: "96 convolutional kernels of size
//! 11×11×3 learned by the first convolutional layer"; the 48 of the first GPU column above the 48
//! of the second, which learned "largely color-agnostic" and "color-specific" kernels).
//!
//! In this network the columns are conv2's two groups: the first reads conv1's first half of the
//! kernels, the second its second half, so the grid shows each half under its own heading.

use tch::Kind;

use super::{Anchor, Canvas, Font, PictureError, Rgb, RgbImage};
use crate::model::AlexNet;

/// Space around the grid and between groups, px.
pub const MARGIN: u32 = 6;
/// Space between two kernels, px.
pub const GAP: u32 = 2;
/// Height of a group's heading (above its kernels), px.
pub const HEADING: u32 = 16;
/// Extra space between two groups, px.
pub const GROUP_GAP: u32 = 10;

const BACKGROUND: Rgb<u8> = Rgb([32, 32, 32]);
const HEADING_COLOR: Rgb<u8> = Rgb([230, 230, 230]);

/// Where the kernels go: `groups` blocks one under the other, each of rows of `columns` kernels,
/// each kernel pixel a `scale`×`scale` square. The paper's 96 kernels in 2 groups of 12 columns
/// make 8 rows of 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterGrid {
    /// Number of kernels.
    pub kernels: usize,
    /// Kernel side (11 in the paper).
    pub side: usize,
    /// Blocks (2: the paper's GPU columns).
    pub groups: usize,
    /// Kernels per row.
    pub columns: usize,
    /// Screen pixels per kernel pixel.
    pub scale: u32,
}

impl FilterGrid {
    /// Checks that the grid can be drawn.
    pub fn validate(&self) -> Result<(), PictureError> {
        if self.kernels == 0 || self.side == 0 || self.columns == 0 || self.scale == 0 {
            return Err(PictureError::Usage(format!(
                "nothing to draw: {} kernels of side {}, {} columns, scale {}",
                self.kernels, self.side, self.columns, self.scale
            )));
        }
        if self.groups == 0 || !self.kernels.is_multiple_of(self.groups) {
            return Err(PictureError::Usage(format!(
                "{} kernels do not split into {} groups",
                self.kernels, self.groups
            )));
        }
        Ok(())
    }

    /// Kernels in one group.
    pub fn per_group(&self) -> usize {
        self.kernels / self.groups.max(1)
    }

    /// Kernels per row (no wider than a group).
    pub fn row_len(&self) -> usize {
        self.columns.min(self.per_group()).max(1)
    }

    /// Rows of one group.
    pub fn rows_per_group(&self) -> usize {
        self.per_group().div_ceil(self.row_len())
    }

    /// Side of one kernel on screen, px.
    pub fn cell(&self) -> u32 {
        self.side as u32 * self.scale
    }

    fn group_height(&self) -> u32 {
        let rows = self.rows_per_group() as u32;
        HEADING + rows * self.cell() + rows.saturating_sub(1) * GAP
    }

    /// Width and height of the picture, px.
    pub fn size(&self) -> (u32, u32) {
        let cols = self.row_len() as u32;
        let groups = self.groups as u32;
        let width = 2 * MARGIN + cols * self.cell() + (cols - 1) * GAP;
        let height = 2 * MARGIN + groups * self.group_height() + (groups - 1) * GROUP_GAP;
        (width, height)
    }

    /// Top-left corner of kernel `k`'s cell.
    pub fn origin(&self, k: usize) -> (u32, u32) {
        let (group, within) = (k / self.per_group(), k % self.per_group());
        let (row, col) = (within / self.row_len(), within % self.row_len());
        let x = MARGIN + col as u32 * (self.cell() + GAP);
        let y = MARGIN
            + group as u32 * (self.group_height() + GROUP_GAP)
            + HEADING
            + row as u32 * (self.cell() + GAP);
        (x, y)
    }
}

/// One kernel (`[3][side][side]`, channel-major as conv weights are stored) as `side`×`side` RGB
/// pixels, row-major. Its values are stretched to 0–255 over the kernel's own minimum and maximum
/// (one range for the three channels, so the kernel's colour is kept); a constant kernel is grey.
pub fn kernel_rgb(kernel: &[f32], side: usize) -> Vec<u8> {
    let (lo, hi) = kernel
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    let level = |v: f32| {
        if range > 0.0 && range.is_finite() {
            ((v - lo) / range * 255.0).round() as u8
        } else {
            128
        }
    };
    let plane = side * side;
    let mut out = vec![0u8; plane * 3];
    for p in 0..plane {
        for c in 0..3 {
            out[p * 3 + c] = level(kernel[c * plane + p]);
        }
    }
    out
}

/// How a kernel's three channels are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelView {
    /// Its R, G and B planes as colour (the paper's Figure 3).
    Rgb,
    /// The sum of its three planes, in grey: the filter that acts on a greyscale image (whose
    /// three channels are equal, so only the sum of a kernel's planes is ever trained; their
    /// differences keep their random initial values and would draw as colour noise).
    Sum,
}

impl KernelView {
    /// [`KernelView::Sum`] for a training set of greyscale images (every pixel R = G = B, so the
    /// three channels' means and every covariance entry are equal), [`KernelView::Rgb`] otherwise.
    pub fn for_training_set(stats: &alexpipe::Stats) -> KernelView {
        let c = &stats.covariance;
        let m = &stats.channel_mean;
        let same = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        let grey =
            c.iter().flatten().all(|&v| same(v, c[0][0])) && m.iter().all(|&v| same(v, m[0]));
        if grey {
            KernelView::Sum
        } else {
            KernelView::Rgb
        }
    }

    /// The kernel (`[3][side][side]`) as `side`×`side` RGB pixels.
    pub fn pixels(self, kernel: &[f32], side: usize) -> Vec<u8> {
        match self {
            KernelView::Rgb => kernel_rgb(kernel, side),
            KernelView::Sum => kernel_sum_grey(kernel, side),
        }
    }

    /// Words for the picture's caption.
    pub fn describe(self) -> &'static str {
        match self {
            KernelView::Rgb => "RGB",
            KernelView::Sum => {
                "the sum of each kernel's R, G and B planes (greyscale training set)"
            }
        }
    }
}

/// One kernel's channel sum, stretched to 0–255 over its own range, as grey RGB pixels.
pub fn kernel_sum_grey(kernel: &[f32], side: usize) -> Vec<u8> {
    let plane = side * side;
    let sum: Vec<f32> = (0..plane)
        .map(|p| kernel[p] + kernel[plane + p] + kernel[2 * plane + p])
        .collect();
    let (lo, hi) = sum
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let range = hi - lo;
    sum.iter()
        .flat_map(|&v| {
            let level = if range > 0.0 && range.is_finite() {
                ((v - lo) / range * 255.0).round() as u8
            } else {
                128
            };
            [level; 3]
        })
        .collect()
}

/// The grid of the kernels in `weights` (`[kernels][3][side][side]`, as conv1's weight tensor),
/// each drawn as `view` says (normalised over its own range) and magnified `scale` times, each
/// group under its heading.
pub fn filter_grid(
    weights: &[f32],
    grid: &FilterGrid,
    view: KernelView,
) -> Result<RgbImage, PictureError> {
    grid.validate()?;
    let per_kernel = 3 * grid.side * grid.side;
    if weights.len() != grid.kernels * per_kernel {
        return Err(PictureError::Usage(format!(
            "{} weights are not {} kernels of 3×{}×{}",
            weights.len(),
            grid.kernels,
            grid.side,
            grid.side
        )));
    }
    let (width, height) = grid.size();
    let mut canvas = Canvas::new(width, height, BACKGROUND);
    for g in 0..grid.groups {
        let first = g * grid.per_group();
        let (_, y) = grid.origin(first);
        let heading = format!(
            "column {} - kernels {}-{}",
            g + 1,
            first + 1,
            first + grid.per_group()
        );
        let chars = ((width - 2 * MARGIN) / Font::Small.char_width()) as usize;
        canvas.text(
            MARGIN as i32,
            (y - HEADING + 3) as i32,
            &super::fit(&heading, chars),
            HEADING_COLOR,
            Font::Small,
            Anchor::Left,
        );
    }
    for (k, kernel) in weights.chunks_exact(per_kernel).enumerate() {
        let rgb = view.pixels(kernel, grid.side);
        let (x0, y0) = grid.origin(k);
        for (p, px) in rgb.chunks_exact(3).enumerate() {
            let (r, c) = ((p / grid.side) as u32, (p % grid.side) as u32);
            canvas.fill_rect(
                (x0 + c * grid.scale) as i32,
                (y0 + r * grid.scale) as i32,
                grid.scale,
                grid.scale,
                Rgb([px[0], px[1], px[2]]),
            );
        }
    }
    Ok(canvas.into_image())
}

/// The grid of `net`'s conv1 kernels in the paper's two groups, `columns` per row, each kernel
/// pixel `scale`×`scale`, drawn as `view` says.
pub fn conv1_grid(
    net: &AlexNet,
    columns: usize,
    scale: u32,
    view: KernelView,
) -> Result<(RgbImage, FilterGrid), PictureError> {
    let w = net.conv1_weight().to_kind(Kind::Float).contiguous();
    let size = w.size();
    let weights = Vec::<f32>::try_from(w.flatten(0, -1))
        .map_err(|e| PictureError::Usage(format!("reading conv1: {e}")))?;
    let grid = FilterGrid {
        kernels: size[0] as usize,
        side: size[2] as usize,
        groups: 2,
        columns,
        scale,
    };
    Ok((filter_grid(&weights, &grid, view)?, grid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_stretch_over_their_own_range_and_keep_colour() {
        // 2×2 kernel: red plane 0..3, green constant 1, blue −1.
        let k = [
            0.0, 1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0,
        ];
        let rgb = kernel_rgb(&k, 2);
        // Range −1..3: 0 → 64 (63.75 rounds up), 1 → 128 (127.5 rounds half away from zero).
        assert_eq!(&rgb[..3], &[64, 128, 0]);
        assert_eq!(&rgb[9..], &[255, 128, 0]);
        assert_eq!(kernel_rgb(&[0.5; 12], 2), vec![128; 12]);
    }

    #[test]
    fn the_sum_view_draws_what_a_grey_image_sees() {
        // 2×2 kernel: planes R, G, B sum to -3, 0, 3, 6 per pixel.
        let k = [
            -1.0, 0.0, 1.0, 2.0, -1.0, 0.0, 1.0, 2.0, -1.0, 0.0, 1.0, 2.0,
        ];
        let grey = kernel_sum_grey(&k, 2);
        assert_eq!(
            grey,
            vec![0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]
        );
        // Planes that differ but sum alike (the untrained colour part) draw alike.
        let noisy = [0.5, 0.0, 1.0, 2.0, -2.0, 0.0, 0.0, 2.0, -1.5, 0.0, 2.0, 2.0];
        assert_eq!(kernel_sum_grey(&noisy, 2), grey);
        assert_ne!(kernel_rgb(&noisy, 2), kernel_rgb(&k, 2));
    }

    #[test]
    fn greyscale_training_sets_are_told_by_their_statistics() {
        let mut stats = alexpipe::Stats {
            images: 2,
            size: 1,
            mean_image: vec![10.0; 3],
            channel_mean: [10.0; 3],
            channel_std: [2.0; 3],
            covariance: [[4.0; 3]; 3],
            eigvals: [12.0, 0.0, 0.0],
            eigvecs: [[0.0; 3]; 3],
        };
        assert_eq!(KernelView::for_training_set(&stats), KernelView::Sum);
        stats.covariance[0][1] = 3.9;
        stats.covariance[1][0] = 3.9;
        assert_eq!(KernelView::for_training_set(&stats), KernelView::Rgb);
    }

    #[test]
    fn the_papers_96_kernels_make_8_rows_of_12() {
        let grid = FilterGrid {
            kernels: 96,
            side: 11,
            groups: 2,
            columns: 12,
            scale: 4,
        };
        assert_eq!((grid.row_len(), grid.rows_per_group()), (12, 4));
        // 12 cells of 44 px with 11 gaps; 2 groups of (heading + 4 rows + 3 gaps), one group gap.
        assert_eq!(
            grid.size(),
            (12 + 12 * 44 + 11 * 2, 12 + 2 * (16 + 4 * 44 + 3 * 2) + 10)
        );
        assert_eq!(grid.origin(0), (6, 6 + 16));
        assert_eq!(grid.origin(13), (6 + 46, 6 + 16 + 46));
        assert_eq!(grid.origin(48), (6, 6 + 16 + 4 * 44 + 3 * 2 + 10 + 16));
        let bad = FilterGrid { groups: 5, ..grid };
        assert!(filter_grid(&[0.0; 96 * 363], &bad, KernelView::Rgb).is_err());
        assert!(filter_grid(&[0.0; 10], &grid, KernelView::Rgb).is_err());
    }
}
