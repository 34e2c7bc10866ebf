//! Training curves from `metrics.jsonl`: loss and top-1/top-5 error per epoch, training and
//! validation (the numbers §6 reports), with every learning-rate division (§5) marked by a dashed
//! line at the end of its epoch.

use std::path::Path;

use super::{save_png, Anchor, Canvas, Font, PictureError, Rgb, RgbImage};
use crate::metrics::{read_rows, EpochRow};

/// Width and height of the picture, px.
pub const SIZE: (u32, u32) = (1200, 480);
/// Colour of the learning-rate drop markers (no curve uses it).
pub const LR_DROP: Rgb<u8> = Rgb([214, 39, 40]);
/// Training curves.
pub const TRAIN: Rgb<u8> = Rgb([31, 119, 180]);
/// Training top-5 curve.
pub const TRAIN_TOP5: Rgb<u8> = Rgb([140, 190, 230]);
/// Validation curves.
pub const VAL: Rgb<u8> = Rgb([255, 127, 14]);
/// Validation top-5 curve.
pub const VAL_TOP5: Rgb<u8> = Rgb([255, 195, 130]);

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([232, 232, 232]);
const FRAME: Rgb<u8> = Rgb([150, 150, 150]);

/// One plot: its area on screen and the data ranges it maps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Panel {
    /// Left edge of the plot area, px.
    pub left: i32,
    /// Top edge of the plot area, px.
    pub top: i32,
    /// Width of the plot area, px.
    pub width: i32,
    /// Height of the plot area, px.
    pub height: i32,
    /// Epochs shown, first and last.
    pub x_range: (f64, f64),
    /// Values shown, bottom and top.
    pub y_range: (f64, f64),
}

impl Panel {
    /// Screen column of epoch `x`.
    pub fn px(&self, x: f64) -> i32 {
        let (a, b) = self.x_range;
        self.left + ((x - a) / (b - a) * f64::from(self.width)).round() as i32
    }

    /// Screen row of value `y`.
    pub fn py(&self, y: f64) -> i32 {
        let (a, b) = self.y_range;
        self.top + self.height - ((y - a) / (b - a) * f64::from(self.height)).round() as i32
    }
}

/// The two plots of a run: loss (left) and error in % (right).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Training and validation loss.
    pub loss: Panel,
    /// Top-1 and top-5 error, training and validation, %.
    pub error: Panel,
}

/// A round tick step giving about `target` ticks over `span`: 1, 2 or 5 × 10ᵏ.
pub fn tick_step(span: f64, target: f64) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    mag * if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    }
}

/// The top of an axis from 0 that shows `max` with room: the next multiple of a round step.
fn axis_top(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let step = tick_step(max, 5.0);
    ((max * 1.02) / step).ceil() * step
}

fn finite_max(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(0.0, f64::max)
}

const MARGIN_LEFT: i32 = 64;
const MARGIN_RIGHT: i32 = 24;
const MARGIN_TOP: i32 = 48;
const MARGIN_BOTTOM: i32 = 68;

/// Where the plots of `rows` go.
pub fn layout(rows: &[EpochRow]) -> Layout {
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(1) as f64;
    let x_range = (0.0, last.max(1.0));
    let half = SIZE.0 as i32 / 2;
    let panel = |offset: i32, top_value: f64| Panel {
        left: offset + MARGIN_LEFT,
        top: MARGIN_TOP,
        width: half - MARGIN_LEFT - MARGIN_RIGHT,
        height: SIZE.1 as i32 - MARGIN_TOP - MARGIN_BOTTOM,
        x_range,
        y_range: (0.0, top_value),
    };
    let loss_max = finite_max(rows.iter().flat_map(|r| [r.train_loss, r.val_loss]));
    let err_max = finite_max(rows.iter().flat_map(|r| {
        [
            Some(r.train_top1_err),
            r.train_top5_err,
            Some(r.val_top1_err),
            r.val_top5_err,
        ]
        .into_iter()
        .flatten()
    }));
    Layout {
        loss: panel(0, axis_top(loss_max)),
        error: panel(half, axis_top(err_max).min(100.0)),
    }
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{v:.decimals$}")
}

fn axes(c: &mut Canvas, p: &Panel, title: &str) {
    let (x0, x1) = (p.left, p.left + p.width);
    let (y0, y1) = (p.top, p.top + p.height);
    let ystep = tick_step(p.y_range.1 - p.y_range.0, 5.0);
    let mut v = p.y_range.0;
    while v <= p.y_range.1 + ystep * 1e-9 {
        let y = p.py(v);
        c.line((x0, y), (x1, y), GRID, 1);
        c.line((x0 - 4, y), (x0, y), FRAME, 1);
        c.text(
            x0 - 7,
            y - 6,
            &tick_label(v, ystep),
            INK,
            Font::Normal,
            Anchor::Right,
        );
        v += ystep;
    }
    let xstep = tick_step(p.x_range.1 - p.x_range.0, 8.0).max(1.0);
    let mut e = p.x_range.0;
    while e <= p.x_range.1 + 1e-9 {
        let x = p.px(e);
        c.line((x, y0), (x, y1), GRID, 1);
        c.line((x, y1), (x, y1 + 4), FRAME, 1);
        c.text(
            x,
            y1 + 7,
            &tick_label(e, 1.0),
            INK,
            Font::Normal,
            Anchor::Center,
        );
        e += xstep;
    }
    for (a, b) in [
        ((x0, y0), (x1, y0)),
        ((x0, y1), (x1, y1)),
        ((x0, y0), (x0, y1)),
        ((x1, y0), (x1, y1)),
    ] {
        c.line(a, b, FRAME, 1);
    }
    c.text(
        x0 + p.width / 2,
        y1 + 23,
        "epoch",
        INK,
        Font::Normal,
        Anchor::Center,
    );
    c.text(x0, 10, title, INK, Font::Title, Anchor::Left);
}

/// One curve: a line through the finite points, a small square on each.
fn series(c: &mut Canvas, p: &Panel, points: &[(f64, f64)], color: Rgb<u8>, width: u32) {
    let finite: Vec<(i32, i32)> = points
        .iter()
        .filter(|(_, y)| y.is_finite())
        .map(|&(x, y)| (p.px(x), p.py(y.clamp(p.y_range.0, p.y_range.1))))
        .collect();
    for w in finite.windows(2) {
        c.line(w[0], w[1], color, width);
    }
    for &(x, y) in &finite {
        c.fill_rect(x - 2, y - 2, 5, 5, color);
    }
}

/// The key, in one row under the plot (outside it, so it never hides a point).
fn legend(c: &mut Canvas, p: &Panel, entries: &[(&str, Rgb<u8>)]) {
    let (mut x, y) = (p.left, p.top + p.height + 44);
    for (label, color) in entries {
        c.line((x, y + 6), (x + 22, y + 6), *color, 2);
        c.fill_rect(x + 9, y + 4, 5, 5, *color);
        c.text(x + 28, y, label, INK, Font::Normal, Anchor::Left);
        x += 28 + label.chars().count() as i32 * Font::Normal.char_width() as i32 + 18;
    }
}

/// The learning-rate drops: a dashed line at the end of each epoch after which the rate was
/// divided, labelled with the new rate (from the next epoch's row) when known.
fn lr_drops(c: &mut Canvas, p: &Panel, rows: &[EpochRow]) {
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.lr_dropped) {
        let x = p.px(r.epoch as f64);
        c.dashed_vline(x, p.top, p.top + p.height, LR_DROP, 4);
        let label = match rows.get(i + 1) {
            Some(next) => format!("lr {:.0e}", next.lr),
            None => "lr drop".into(),
        };
        c.text(x, p.top - 14, &label, LR_DROP, Font::Small, Anchor::Center);
    }
}

/// The curves of a run's rows (`metrics.jsonl`), [`SIZE`] px.
pub fn curves_image(rows: &[EpochRow]) -> Result<RgbImage, PictureError> {
    if rows.is_empty() {
        return Err(PictureError::Usage(
            "no epoch finished yet: metrics.jsonl has no rows to plot".into(),
        ));
    }
    let l = layout(rows);
    let mut c = Canvas::new(SIZE.0, SIZE.1, WHITE);
    axes(&mut c, &l.loss, "loss (cross-entropy)");
    axes(&mut c, &l.error, "error, %");
    lr_drops(&mut c, &l.loss, rows);
    lr_drops(&mut c, &l.error, rows);
    // Epochs without a value (top-5 with 5 classes or fewer) are left out.
    let pts = |f: fn(&EpochRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rows.iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    series(&mut c, &l.loss, &pts(|r| Some(r.train_loss)), TRAIN, 2);
    series(&mut c, &l.loss, &pts(|r| Some(r.val_loss)), VAL, 2);
    let (train5, val5) = (pts(|r| r.train_top5_err), pts(|r| r.val_top5_err));
    series(&mut c, &l.error, &train5, TRAIN_TOP5, 1);
    series(&mut c, &l.error, &val5, VAL_TOP5, 1);
    series(&mut c, &l.error, &pts(|r| Some(r.train_top1_err)), TRAIN, 2);
    series(&mut c, &l.error, &pts(|r| Some(r.val_top1_err)), VAL, 2);
    legend(&mut c, &l.loss, &[("train", TRAIN), ("validation", VAL)]);
    let mut keys = vec![("train top-1", TRAIN)];
    if !train5.is_empty() {
        keys.push(("train top-5", TRAIN_TOP5));
    }
    keys.push(("val top-1", VAL));
    if !val5.is_empty() {
        keys.push(("val top-5", VAL_TOP5));
    }
    legend(&mut c, &l.error, &keys);
    Ok(c.into_image())
}

/// Draws the curves of a run's `metrics.jsonl` into `png` (what `train` does after every epoch);
/// returns the rows drawn.
pub fn redraw(jsonl: &Path, png: &Path) -> Result<Vec<EpochRow>, PictureError> {
    let rows = read_rows(jsonl).map_err(|source| PictureError::Io {
        path: jsonl.to_path_buf(),
        source,
    })?;
    save_png(&curves_image(&rows)?, png)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(2.3, 5.0), 0.5);
        assert_eq!(tick_step(90.0, 8.0), 20.0);
        assert_eq!(tick_step(7.0, 8.0), 1.0);
        assert_eq!(axis_top(2.31), 2.5);
        assert_eq!(axis_top(0.0), 1.0);
        assert_eq!(tick_label(0.5, 0.5), "0.5");
        assert_eq!(tick_label(20.0, 20.0), "20");
    }

    fn rows(drops: &[u64]) -> Vec<EpochRow> {
        (1..=6u64)
            .map(|e| EpochRow {
                epoch: e,
                lr: 0.01,
                train_loss: 3.0 - 0.4 * e as f64,
                train_top1_err: 90.0 - 10.0 * e as f64,
                train_top5_err: Some(50.0 - 5.0 * e as f64),
                val_loss: 3.2 - 0.3 * e as f64,
                val_top1_err: 75.0 - 4.0 * e as f64,
                val_top5_err: Some(35.0 - 5.0 * e as f64),
                images_per_s: 1.0,
                data_wait_pct: 0.0,
                train_s: 1.0,
                val_s: 1.0,
                lr_dropped: drops.contains(&e),
            })
            .collect()
    }

    fn near(img: &RgbImage, x: i32, y: i32, color: Rgb<u8>) -> bool {
        (-2..=2).any(|dx| {
            (-2..=2).any(|dy| {
                let (px, py) = ((x + dx) as u32, (y + dy) as u32);
                img.get_pixel(px, py) == &color
            })
        })
    }

    #[test]
    fn points_and_lr_drops_are_where_the_axes_put_them() {
        let r = rows(&[3, 5]);
        let img = curves_image(&r).expect("rows");
        assert_eq!(img.dimensions(), SIZE);
        let l = layout(&r);
        // Axes from 0: epochs 0..6; loss to 3 (the largest is 2.9), error to 100 (80, steps of 20).
        assert_eq!((l.loss.x_range, l.loss.y_range), ((0.0, 6.0), (0.0, 3.0)));
        assert_eq!(l.error.y_range, (0.0, 100.0));
        assert!(l.loss.left + l.loss.width < l.error.left, "side by side");
        for row in &r {
            let x = row.epoch as f64;
            let (lp, ep) = (&l.loss, &l.error);
            assert!(near(&img, lp.px(x), lp.py(row.train_loss), TRAIN));
            assert!(near(&img, lp.px(x), lp.py(row.val_loss), VAL));
            assert!(near(&img, ep.px(x), ep.py(row.train_top1_err), TRAIN));
            let (t5, v5) = (
                row.train_top5_err.expect("top-5"),
                row.val_top5_err.expect("top-5"),
            );
            assert!(near(&img, ep.px(x), ep.py(t5), TRAIN_TOP5));
            assert!(near(&img, ep.px(x), ep.py(row.val_top1_err), VAL));
            assert!(near(&img, ep.px(x), ep.py(v5), VAL_TOP5));
        }
        // A dashed line down each plot at the end of epochs 3 and 5, nowhere else.
        for p in [&l.loss, &l.error] {
            let column = |x: i32| {
                (p.top..=p.top + p.height)
                    .filter(|&y| img.get_pixel(x as u32, y as u32) == &LR_DROP)
                    .count() as i32
            };
            for e in [3.0, 5.0] {
                assert!(column(p.px(e)) >= p.height / 3, "dashes at epoch {e}");
            }
            for e in [1.0, 2.0, 4.0, 6.0] {
                assert_eq!(column(p.px(e)), 0, "no drop after epoch {e}");
            }
        }
        let plain = curves_image(&rows(&[])).expect("rows");
        assert!(plain.pixels().all(|p| p != &LR_DROP), "no drop, no marker");
        assert!(curves_image(&[]).is_err());
    }

    #[test]
    fn rows_without_top5_draw_no_top5_curves() {
        let top5_colours = |img: &RgbImage| {
            img.pixels()
                .filter(|&p| p == &TRAIN_TOP5 || p == &VAL_TOP5)
                .count()
        };
        assert!(top5_colours(&curves_image(&rows(&[])).expect("rows")) > 0);
        // 5 classes or fewer: no top-5 values (null in metrics.jsonl), no curve, no legend entry.
        let r: Vec<EpochRow> = rows(&[])
            .into_iter()
            .map(|r| EpochRow {
                train_top5_err: None,
                val_top5_err: None,
                ..r
            })
            .collect();
        let img = curves_image(&r).expect("rows");
        assert_eq!(top5_colours(&img), 0);
        let ep = layout(&r).error;
        for row in &r {
            let x = ep.px(row.epoch as f64);
            assert!(near(&img, x, ep.py(row.val_top1_err), VAL));
            assert!(near(&img, x, ep.py(row.train_top1_err), TRAIN));
        }
    }
}
