//! Pictures of a run (§6.1): the learned conv1 kernels (the paper's Figure 3), nearest neighbours
//! in the last hidden layer (Figure 4), and the training curves. Each is a pure function from
//! numbers to an [`RgbImage`]; [`save_png`] writes one atomically.
//!
//! Drawing goes through [`Canvas`]: an RGB image that `embedded-graphics` draws lines and Latin-1
//! bitmap text into, so no font file or system library is needed.

pub mod curves;
pub mod filters;
pub mod neighbours;

use std::path::{Path, PathBuf};

use embedded_graphics::mono_font::{iso_8859_1, MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
pub use image::{Rgb, RgbImage};

use crate::checkpoint::CheckpointError;

/// Why a picture could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// Encoding or writing the PNG failed.
    #[error("{path}: cannot write the picture: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The encoder's or the OS's error.
        source: image::ImageError,
    },
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A dataset, the engine, or syncing and renaming the finished file failed (the error names
    /// the file).
    #[error(transparent)]
    Alexpipe(#[from] alexpipe::Error),
    /// The checkpoint could not be used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A dataset does not fit the checkpoint, or a query index is past its end.
    #[error("{}: {source}", path.display())]
    Dataset {
        /// The dataset.
        path: PathBuf,
        /// What is wrong.
        source: Box<PictureError>,
    },
    /// Nothing to draw, or options that cannot be drawn.
    #[error("{0}")]
    Usage(String),
    /// The engine handed over something the picture code did not ask for (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Writes `image` as a PNG at `path` through [`alexpipe::atomic_file`] (a synced temporary file
/// renamed into place), so a reader (an image viewer refreshing the curves of a running training)
/// never sees half a file.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), PictureError> {
    alexpipe::atomic_file::write_with(path, |tmp| {
        image
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|source| PictureError::Write {
                path: path.to_path_buf(),
                source,
            })
    })
}

/// Text sizes (Latin-1 bitmap fonts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    /// 6×10 px: captions.
    Small,
    /// 7×13 px: ticks and legends.
    Normal,
    /// 9×15 px bold: titles.
    Title,
}

impl Font {
    fn mono(self) -> &'static MonoFont<'static> {
        match self {
            Font::Small => &iso_8859_1::FONT_6X10,
            Font::Normal => &iso_8859_1::FONT_7X13,
            Font::Title => &iso_8859_1::FONT_9X15_BOLD,
        }
    }

    /// Width of one character, px.
    pub fn char_width(self) -> u32 {
        self.mono().character_size.width + self.mono().character_spacing
    }

    /// Height of a line, px.
    pub fn height(self) -> u32 {
        self.mono().character_size.height
    }
}

/// Horizontal anchor of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The text starts at x.
    Left,
    /// The text is centred on x.
    Center,
    /// The text ends at x.
    Right,
}

/// An RGB image being drawn on. Coordinates outside it are clipped.
#[derive(Debug, Clone)]
pub struct Canvas {
    image: RgbImage,
}

fn rgb888(c: Rgb<u8>) -> Rgb888 {
    Rgb888::new(c.0[0], c.0[1], c.0[2])
}

impl Canvas {
    /// A `width`×`height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: Rgb<u8>) -> Canvas {
        Canvas {
            image: RgbImage::from_pixel(width, height, background),
        }
    }

    /// The finished image.
    pub fn into_image(self) -> RgbImage {
        self.image
    }

    /// Fills the rectangle with top-left corner (x, y).
    pub fn fill_rect(&mut self, x: i32, y: i32, width: u32, height: u32, color: Rgb<u8>) {
        let (w, h) = self.image.dimensions();
        let x0 = x.clamp(0, w as i32) as u32;
        let y0 = y.clamp(0, h as i32) as u32;
        let x1 = (x + width as i32).clamp(0, w as i32) as u32;
        let y1 = (y + height as i32).clamp(0, h as i32) as u32;
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.image.put_pixel(xx, yy, color);
            }
        }
    }

    /// Copies `src` with its top-left corner at (x, y).
    pub fn blit(&mut self, x: u32, y: u32, src: &RgbImage) {
        for (sx, sy, p) in src.enumerate_pixels() {
            if x + sx < self.image.width() && y + sy < self.image.height() {
                self.image.put_pixel(x + sx, y + sy, *p);
            }
        }
    }

    /// A straight line `width` px thick.
    pub fn line(&mut self, from: (i32, i32), to: (i32, i32), color: Rgb<u8>, width: u32) {
        let line = Line::new(Point::new(from.0, from.1), Point::new(to.0, to.1));
        // Drawing into an image cannot fail (`Infallible`).
        let _ = line
            .into_styled(PrimitiveStyle::with_stroke(rgb888(color), width))
            .draw(self);
    }

    /// A vertical dashed line at x from y0 to y1 (dashes of `dash` px, gaps as long).
    pub fn dashed_vline(&mut self, x: i32, y0: i32, y1: i32, color: Rgb<u8>, dash: u32) {
        let step = 2 * dash.max(1) as i32;
        let mut y = y0.min(y1);
        while y <= y0.max(y1) {
            let end = (y + dash as i32 - 1).min(y0.max(y1));
            self.line((x, y), (x, end), color, 1);
            y += step;
        }
    }

    /// One line of text; `y` is its top.
    pub fn text(&mut self, x: i32, y: i32, text: &str, color: Rgb<u8>, font: Font, anchor: Anchor) {
        let style = MonoTextStyle::new(font.mono(), rgb888(color));
        let layout = TextStyleBuilder::new()
            .alignment(match anchor {
                Anchor::Left => Alignment::Left,
                Anchor::Center => Alignment::Center,
                Anchor::Right => Alignment::Right,
            })
            .baseline(Baseline::Top)
            .build();
        let _ = Text::with_text_style(text, Point::new(x, y), style, layout).draw(self);
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.image.width(), self.image.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        let (w, h) = self.image.dimensions();
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < w && (p.y as u32) < h {
                self.image
                    .put_pixel(p.x as u32, p.y as u32, Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

/// `text` cut to at most `chars` characters (".." marks the cut; the fonts are Latin-1).
pub fn fit(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let kept: String = text.chars().take(chars.saturating_sub(2)).collect();
    format!("{kept}..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_clips_and_draws_where_asked() {
        let mut c = Canvas::new(20, 10, Rgb([255, 255, 255]));
        c.fill_rect(-5, -5, 8, 8, Rgb([1, 2, 3]));
        c.line((10, 0), (10, 9), Rgb([9, 9, 9]), 1);
        c.dashed_vline(15, 0, 9, Rgb([7, 7, 7]), 2);
        let img = c.into_image();
        assert_eq!(img.get_pixel(2, 2), &Rgb([1, 2, 3]));
        assert_eq!(img.get_pixel(3, 3), &Rgb([255, 255, 255]));
        assert!((0..10).all(|y| img.get_pixel(10, y) == &Rgb([9, 9, 9])));
        let dashes: Vec<bool> = (0..10)
            .map(|y| img.get_pixel(15, y) == &Rgb([7, 7, 7]))
            .collect();
        assert_eq!(
            dashes,
            [true, true, false, false, true, true, false, false, true, true]
        );
    }

    #[test]
    fn fit_cuts_long_names() {
        assert_eq!(fit("tabby", 8), "tabby");
        assert_eq!(fit("tabby cat", 6), "tabb..");
    }
}
