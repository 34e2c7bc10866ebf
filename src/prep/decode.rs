//! Decoding any supported file to RGB8 (paper §2: "we trained our network on the (centered) raw RGB values").
//!
//! The format is detected from the bytes, never from the file name (ImageNet has PNGs named `.JPEG`
//! and CMYK JPEGs). JPEGs go through libjpeg-turbo (the TurboJPEG 3 API, bundled), which decodes
//! bit-identically to Pillow; everything else goes through the `image` crate. Colour conversion
//! follows Pillow's `Image.convert("RGB")` so that records match what a torchvision user sees:
//! grey is replicated, alpha is dropped (not composited), CMYK uses Pillow's formula. EXIF orientation
//! is not applied, as in Pillow and torchvision's `ImageFolder`.

use std::fmt;
use std::io::Cursor;

use turbojpeg::raw;

/// Why an input file cannot become a record. The `kind` is a stable code written to `rejects.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// The file could not be read from disk.
    Unreadable(String),
    /// The file has zero bytes.
    Empty,
    /// The bytes are not in any image format we know.
    NotAnImage,
    /// A known format, but a variant the decoders do not support.
    Unsupported(String),
    /// The decoder failed: truncated or damaged data.
    Corrupt(String),
    /// Width × height above the pixel limit (a guard against decompression bombs).
    TooLarge {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit in pixels (`--max-pixels`).
        limit: u64,
    },
    /// Zero width or height.
    TooSmall {
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
    },
    /// Not inside a class folder, so it has no label.
    NoClass,
    /// A list-file path that is absolute or climbs out of `--root` with `..`.
    OutsideRoot,
    /// The file is larger than any image the pixel limit allows.
    FileTooLarge {
        /// File size.
        bytes: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The decoder crashed on this file (a bug in a decoder, contained).
    DecoderPanic(String),
    /// A sample of a container (a WebDataset tar, a parquet row) that holds no image: no image
    /// member, a null cell, a path without bytes. The detail says which.
    NoImage(String),
    /// A sample of a container without a usable label: missing, not an integer, negative, or
    /// past the class names. The detail says which.
    NoLabel(String),
}

impl RejectReason {
    /// Stable short code for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            RejectReason::Unreadable(_) => "unreadable",
            RejectReason::Empty => "empty",
            RejectReason::NotAnImage => "not-an-image",
            RejectReason::Unsupported(_) => "unsupported",
            RejectReason::Corrupt(_) => "corrupt",
            RejectReason::TooLarge { .. } => "too-large",
            RejectReason::TooSmall { .. } => "too-small",
            RejectReason::NoClass => "no-class",
            RejectReason::OutsideRoot => "outside-root",
            RejectReason::FileTooLarge { .. } => "too-large",
            RejectReason::DecoderPanic(_) => "decoder-panic",
            RejectReason::NoImage(_) => "no-image",
            RejectReason::NoLabel(_) => "no-label",
        }
    }

    /// Human-readable detail, without the kind.
    pub fn detail(&self) -> String {
        match self {
            RejectReason::Unreadable(m)
            | RejectReason::Unsupported(m)
            | RejectReason::Corrupt(m)
            | RejectReason::DecoderPanic(m)
            | RejectReason::NoImage(m)
            | RejectReason::NoLabel(m) => m.clone(),
            RejectReason::Empty => "the file is empty (0 bytes)".into(),
            RejectReason::NotAnImage => "not a recognised image format (checked the file's bytes, not its name)".into(),
            RejectReason::TooLarge { width, height, limit } => format!(
                "{width}x{height} = {} pixels exceeds the limit of {limit} (possible decompression bomb; raise --max-pixels if it is genuine)",
                width * height
            ),
            RejectReason::TooSmall { width, height } => format!("{width}x{height} has no pixels"),
            RejectReason::NoClass => "not inside a class sub-folder, so it has no label".into(),
            RejectReason::OutsideRoot => {
                "the list-file path is absolute or leaves --root with '..'; list paths relative to --root".into()
            }
            RejectReason::FileTooLarge { bytes, limit } => {
                format!("the file is {bytes} bytes, over the {limit}-byte limit for an image of --max-pixels")
            }
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.detail())
    }
}

/// A decoded image: `height` rows of `width` RGB pixels, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, HWC RGB.
    pub pixels: Vec<u8>,
}

/// How to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Reject images with more pixels than this (before any draft scaling).
    pub max_pixels: u64,
    /// `Some(size)`: decode JPEGs at a reduced DCT scale (1/2, 1/4, 1/8) as long as both sides stay
    /// at least `2 * size`, exactly as Pillow's `Image.draft("RGB", (2*size, 2*size))` picks it.
    pub draft_for: Option<u32>,
}

/// Pillow's `Image.MAX_IMAGE_PIXELS * 2`: the size at which Pillow refuses an image as a bomb.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            draft_for: None,
        }
    }
}

/// The largest file accepted for an image of `max_pixels` pixels: even an uncompressed 16-bit RGBA
/// image of that size, plus 64 MiB of metadata, fits. Bounds a worker's memory on hostile input.
pub fn max_file_bytes(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8).saturating_add(64 << 20)
}

/// True when the first bytes of a file are those of an image format we decode (JPEG or one the
/// `image` crate recognises), so that a huge non-image is refused without being read.
pub fn looks_like_image(head: &[u8]) -> bool {
    is_jpeg(head) || image::guess_format(head).is_ok()
}

/// True when the bytes start with a JPEG SOI marker.
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF
}

/// Decodes `bytes` to RGB8, detecting the format from the content.
pub fn decode_rgb(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage, RejectReason> {
    if bytes.is_empty() {
        return Err(RejectReason::Empty);
    }
    if is_jpeg(bytes) {
        decode_jpeg(bytes, opts)
    } else {
        decode_other(bytes, opts)
    }
}

pub(super) fn check_dims(
    width: u64,
    height: u64,
    opts: &DecodeOptions,
) -> Result<(), RejectReason> {
    if width == 0 || height == 0 {
        return Err(RejectReason::TooSmall { width, height });
    }
    if width.saturating_mul(height) > opts.max_pixels {
        return Err(RejectReason::TooLarge {
            width,
            height,
            limit: opts.max_pixels,
        });
    }
    Ok(())
}

/// The DCT scale denominator (1, 2, 4 or 8) Pillow's `draft("RGB", (2*size, 2*size))` would pick.
pub fn draft_denominator(width: u32, height: u32, size: u32) -> u32 {
    let want = 2 * size.max(1);
    let scale = (width / want).min(height / want);
    [8, 4, 2].into_iter().find(|&d| scale >= d).unwrap_or(1)
}

/// A TurboJPEG decompressor handle, one per thread (handles are not thread-safe, and cheap to keep).
pub(super) struct TjDecompressor(pub(super) raw::tjhandle);

impl TjDecompressor {
    fn new() -> Result<Self, RejectReason> {
        // SAFETY: tj3Init has no preconditions; a null return is handled.
        let handle = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as CInt) };
        if handle.is_null() {
            return Err(RejectReason::Unsupported(
                "cannot initialise libjpeg-turbo".into(),
            ));
        }
        // A progressive JPEG can repeat scans without end, each a pass over the whole image: a
        // CPU bomb in a few kilobytes. Real photos have about 10 scans; libjpeg-turbo's own
        // fuzzers and djpeg's -maxscans use limits like this one.
        // SAFETY: valid handle; SCANLIMIT takes any non-negative int.
        unsafe {
            raw::tj3Set(
                handle,
                raw::TJPARAM_TJPARAM_SCANLIMIT as CInt,
                MAX_JPEG_SCANS,
            )
        };
        Ok(TjDecompressor(handle))
    }

    pub(super) fn error(&self) -> (bool, String) {
        // SAFETY: the handle is valid for the lifetime of self; the string is copied before return.
        unsafe {
            let warning = raw::tj3GetErrorCode(self.0) == raw::TJERR_TJERR_WARNING as CInt;
            let msg = std::ffi::CStr::from_ptr(raw::tj3GetErrorStr(self.0));
            (warning, msg.to_string_lossy().into_owned())
        }
    }

    pub(super) fn get(&self, param: raw::TJPARAM) -> CInt {
        // SAFETY: valid handle, any parameter id is accepted (unknown ones return -1).
        unsafe { raw::tj3Get(self.0, param as CInt) }
    }
}

impl Drop for TjDecompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { raw::tj3Destroy(self.0) }
    }
}

pub(super) type CInt = std::os::raw::c_int;

/// Most scans a progressive JPEG may have (more is refused as corrupt).
pub const MAX_JPEG_SCANS: CInt = 500;

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<TjDecompressor>> = const { std::cell::RefCell::new(None) };
}

/// libjpeg warnings that mean data is missing, so part of the image would be filled with grey.
/// Other warnings (e.g. "N extraneous bytes before marker") leave the pixels intact, and Pillow
/// accepts such files too.
fn warning_loses_data(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("premature end") || m.contains("truncated")
}

fn decode_jpeg(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage, RejectReason> {
    with_decompressor(|tj| decode_jpeg_with(tj, bytes, opts))
}

/// Runs `f` with this thread's TurboJPEG handle, made on first use.
pub(super) fn with_decompressor<T>(
    f: impl FnOnce(&TjDecompressor) -> Result<T, RejectReason>,
) -> Result<T, RejectReason> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(TjDecompressor::new()?);
        }
        let tj = slot
            .as_ref()
            .ok_or_else(|| RejectReason::Unsupported("no decompressor".into()))?;
        let result = f(tj);
        if result.is_err() {
            // tj3DecompressHeader returns from an error without resetting libjpeg's state, so a
            // handle that failed mid-header would misread the next file ("two SOF markers"):
            // start the next decode on this thread with a fresh handle (found by fuzzing).
            *slot = None;
        }
        result
    })
}

/// What a JPEG's header says: its size and what the decoder needs to set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JpegHeader {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) cmyk: bool,
    pub(super) lossless: bool,
    /// TurboJPEG's chroma subsampling id (an index into `tjMCUWidth`), or -1 when unknown.
    pub(super) subsamp: CInt,
}

/// Reads the header of `bytes` into `tj`, checks the size against `opts.max_pixels` and sets
/// libjpeg-turbo's memory limit; the next decompression on `tj` decodes this image.
pub(super) fn read_jpeg_header(
    tj: &TjDecompressor,
    bytes: &[u8],
    opts: &DecodeOptions,
) -> Result<JpegHeader, RejectReason> {
    // SAFETY: valid handle; the slice outlives the call.
    let rc = unsafe { raw::tj3DecompressHeader(tj.0, bytes.as_ptr(), bytes.len() as raw::size_t) };
    if rc != 0 {
        let (_, msg) = tj.error();
        return Err(RejectReason::Corrupt(format!("JPEG header: {msg}")));
    }
    // TurboJPEG accepts a tables-only (abbreviated) stream as a header with no frame, and then
    // leaves the handle's dimensions as the previous image on this thread set them: the frame's
    // own dimensions, read from its SOF marker, are the authority.
    let Some((width, height)) = frame_dims(bytes) else {
        return Err(RejectReason::Corrupt(
            "JPEG has no image frame (truncated after the header?)".into(),
        ));
    };
    let reported = (
        tj.get(raw::TJPARAM_TJPARAM_JPEGWIDTH).max(0) as u32,
        tj.get(raw::TJPARAM_TJPARAM_JPEGHEIGHT).max(0) as u32,
    );
    if reported != (width, height) || width == 0 || height == 0 {
        return Err(RejectReason::Corrupt(format!(
            "JPEG frame of {width}×{height} read by libjpeg-turbo as {}×{}",
            reported.0, reported.1
        )));
    }
    check_dims(width as u64, height as u64, opts)?;
    // libjpeg-turbo's own working memory (a progressive image keeps every DCT coefficient: up to
    // 2 bytes per sample) within the same per-pixel budget as the other decoders, in MiB.
    let budget_mib = (opts.max_pixels.saturating_mul(8) >> 20).saturating_add(64);
    // SAFETY: valid handle; MAXMEMORY takes a non-negative int (MiB); the all-zero region is
    // TJUNCROPPED (a previous window decode on this handle must not crop this image).
    unsafe {
        raw::tj3Set(
            tj.0,
            raw::TJPARAM_TJPARAM_MAXMEMORY as CInt,
            budget_mib.min(CInt::MAX as u64) as CInt,
        );
        raw::tj3SetCroppingRegion(
            tj.0,
            raw::tjregion {
                x: 0,
                y: 0,
                w: 0,
                h: 0,
            },
        );
    }
    let colorspace = tj.get(raw::TJPARAM_TJPARAM_COLORSPACE);
    Ok(JpegHeader {
        width,
        height,
        cmyk: colorspace == raw::TJCS_TJCS_CMYK as CInt
            || colorspace == raw::TJCS_TJCS_YCCK as CInt,
        lossless: tj.get(raw::TJPARAM_TJPARAM_LOSSLESS) == 1,
        subsamp: tj.get(raw::TJPARAM_TJPARAM_SUBSAMP),
    })
}

/// The width and height in the first frame header (SOFn marker) of a JPEG stream, walking its
/// marker segments from the start (ITU T.81 B.1); `None` when the stream ends, or its scan starts,
/// before a frame header (a tables-only stream, a truncated file).
pub(super) fn frame_dims(bytes: &[u8]) -> Option<(u32, u32)> {
    let be16 = |at: usize| -> Option<usize> {
        Some(usize::from(*bytes.get(at)?) << 8 | usize::from(*bytes.get(at + 1)?))
    };
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        // Fill bytes: any number of 0xFF before the marker code.
        while *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        match marker {
            // SOF0–3, 5–7, 9–11, 13–15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames):
            // length, precision, height, width.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let height = be16(at + 3)? as u32;
                let width = be16(at + 5)? as u32;
                return Some((width, height));
            }
            // Start of scan or end of image before any frame.
            0xDA | 0xD9 => return None,
            // Markers without a segment: TEM, RSTn.
            0x01 | 0xD0..=0xD7 => {}
            _ => at += be16(at)?,
        }
    }
}

/// Decompresses the image whose header `tj` has read at scale `num`/`denom` into `pixels`
/// (`pitch` bytes per row, RGB or, for CMYK, inverted CMYK as libjpeg gives it). A warning that
/// means lost data (a truncated file) is an error.
pub(super) fn decompress_into(
    tj: &TjDecompressor,
    bytes: &[u8],
    header: &JpegHeader,
    pixels: &mut [u8],
    pitch: usize,
) -> Result<(), RejectReason> {
    let pixel_format = if header.cmyk {
        raw::TJPF_TJPF_CMYK
    } else {
        raw::TJPF_TJPF_RGB
    };
    // SAFETY: callers size `pixels` for the rows of `pitch` bytes TurboJPEG writes for the
    // scaling factor and cropping region set on `tj`.
    let rc = unsafe {
        raw::tj3Decompress8(
            tj.0,
            bytes.as_ptr(),
            bytes.len() as raw::size_t,
            pixels.as_mut_ptr(),
            pitch as CInt,
            pixel_format as CInt,
        )
    };
    if rc != 0 {
        let (warning, msg) = tj.error();
        if !warning || warning_loses_data(&msg) {
            return Err(RejectReason::Corrupt(format!("JPEG data: {msg}")));
        }
    }
    Ok(())
}

/// [`decompress_into`] a new `width`×`height` buffer (the scaled image, or the cropping region set
/// on `tj`), CMYK converted to RGB as Pillow does.
pub(super) fn decompress_rgb(
    tj: &TjDecompressor,
    bytes: &[u8],
    header: &JpegHeader,
    width: u32,
    height: u32,
) -> Result<RgbImage, RejectReason> {
    let channels = if header.cmyk { 4 } else { 3 };
    let mut pixels = vec![0u8; width as usize * height as usize * channels];
    decompress_into(tj, bytes, header, &mut pixels, width as usize * channels)?;
    if header.cmyk {
        pixels = cmyk_to_rgb(&pixels);
    }
    Ok(RgbImage {
        width,
        height,
        pixels,
    })
}

/// Sets the DCT scaling factor `num`/`denom` for the next decompression on `tj`.
pub(super) fn set_scale(tj: &TjDecompressor, num: u32, denom: u32) -> Result<(), RejectReason> {
    let factor = raw::tjscalingfactor {
        num: num as CInt,
        denom: denom as CInt,
    };
    // SAFETY: valid handle; the factors used (M/8) are among libjpeg-turbo's supported ones.
    if unsafe { raw::tj3SetScalingFactor(tj.0, factor) } != 0 {
        let (_, msg) = tj.error();
        return Err(RejectReason::Unsupported(format!(
            "JPEG scaling {num}/{denom}: {msg}"
        )));
    }
    Ok(())
}

fn decode_jpeg_with(
    tj: &TjDecompressor,
    bytes: &[u8],
    opts: &DecodeOptions,
) -> Result<RgbImage, RejectReason> {
    let header = read_jpeg_header(tj, bytes, opts)?;
    let denom = match opts.draft_for {
        Some(size) if !header.lossless => draft_denominator(header.width, header.height, size),
        _ => 1,
    };
    set_scale(tj, 1, denom)?;
    // TJSCALED: ceil(dim * num / denom).
    let out_w = header.width.div_ceil(denom);
    let out_h = header.height.div_ceil(denom);
    decompress_rgb(tj, bytes, &header, out_w, out_h)
}

/// Pillow's `(a * b + 128) / 255`, rounded the way its `MULDIV255` macro does.
fn muldiv255(a: u32, b: u32) -> u32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// CMYK as libjpeg returns it (Adobe's inverted convention, which Pillow assumes for every CMYK JPEG)
/// to RGB with Pillow's `cmyk2rgb`: for normal CMYK, `R = (255 - K) - C * (255 - K) / 255`.
pub fn cmyk_to_rgb(inverted_cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inverted_cmyk.len() / 4 * 3);
    for px in inverted_cmyk.chunks_exact(4) {
        let nk = px[3] as u32; // 255 - K where K = 255 - stored
        for &stored in &px[..3] {
            let c = 255 - stored as u32;
            out.push(nk.saturating_sub(muldiv255(c, nk)) as u8);
        }
    }
    out
}

fn decode_other(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage, RejectReason> {
    let reader = || {
        image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| RejectReason::Unreadable(e.to_string()))
    };
    let probe = reader()?;
    let format = probe.format().ok_or(RejectReason::NotAnImage)?;
    let (width, height) = probe
        .into_dimensions()
        .map_err(|e| image_error(format, e))?;
    check_dims(width as u64, height as u64, opts)?;
    let mut full = reader()?;
    let mut limits = image::Limits::no_limits();
    // Decoded size at 16 bits x 4 channels, plus headroom for the decoder's own buffers.
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    full.limits(limits);
    let decoded = full.decode().map_err(|e| image_error(format, e))?;
    let rgb = decoded.to_rgb8();
    Ok(RgbImage {
        width: rgb.width(),
        height: rgb.height(),
        pixels: rgb.into_raw(),
    })
}

fn image_error(format: image::ImageFormat, e: image::ImageError) -> RejectReason {
    let name = format!("{format:?}");
    match e {
        image::ImageError::Unsupported(u) => RejectReason::Unsupported(format!("{name}: {u}")),
        image::ImageError::Limits(l) => RejectReason::Unsupported(format!(
            "{name}: needs more memory than the pixel limit allows: {l}"
        )),
        other => RejectReason::Corrupt(format!("{name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_denominator_follows_pillow() {
        // scale = min(w // 512, h // 512) for size 256; largest of 8, 4, 2 not above it.
        assert_eq!(draft_denominator(500, 375, 256), 1);
        assert_eq!(draft_denominator(1024, 1024, 256), 2);
        assert_eq!(draft_denominator(4096, 2047, 256), 2);
        assert_eq!(draft_denominator(4096, 3000, 256), 4);
        assert_eq!(draft_denominator(9000, 6000, 256), 8);
    }

    #[test]
    fn cmyk_matches_pillow_formula() {
        // Stored (inverted) 255 everywhere = no ink = white.
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 255]), vec![255, 255, 255]);
        // Full black ink (stored K = 0) = black whatever the colour.
        assert_eq!(cmyk_to_rgb(&[10, 200, 255, 0]), vec![0, 0, 0]);
        // Pure cyan ink: C = 255 -> R = 0, G = B = 255.
        assert_eq!(cmyk_to_rgb(&[0, 255, 255, 255]), vec![0, 255, 255]);
    }

    #[test]
    fn rejects_empty_and_garbage() {
        let o = DecodeOptions::default();
        assert_eq!(decode_rgb(&[], &o), Err(RejectReason::Empty));
        assert_eq!(
            decode_rgb(b"hello, I am text", &o),
            Err(RejectReason::NotAnImage)
        );
        let r = decode_rgb(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0], &o);
        assert!(matches!(r, Err(RejectReason::Corrupt(_))), "{r:?}");
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/images")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn a_frameless_jpeg_after_a_good_one_is_still_rejected() {
        // TurboJPEG keeps the previous image's dimensions on a tables-only stream: this file once
        // became an all-black record when the same thread had just decoded a photo.
        let o = DecodeOptions::default();
        let good = fixture("blobs/blob_000.jpg");
        let frameless = b"\xff\xd8\xff\xe0 cut short";
        let tables_only = [0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1u8, 64))
            .chain([0xFF, 0xD9])
            .collect::<Vec<u8>>();
        for bad in [&frameless[..], &tables_only[..]] {
            assert!(decode_rgb(&good, &o).is_ok());
            let r = decode_rgb(bad, &o);
            assert!(matches!(r, Err(RejectReason::Corrupt(_))), "{r:?}");
        }
        // The next good image still decodes, to the same pixels as on a fresh thread.
        let again = decode_rgb(&good, &o).expect("decodes");
        let fresh = std::thread::spawn(move || decode_rgb(&good, &DecodeOptions::default()))
            .join()
            .expect("thread")
            .expect("decodes");
        assert_eq!(again.pixels, fresh.pixels);
    }

    #[test]
    fn frame_dims_walks_the_markers() {
        let good = fixture("blobs/blob_000.jpg");
        let img = decode_rgb(&good, &DecodeOptions::default()).expect("decodes");
        assert_eq!(frame_dims(&good), Some((img.width, img.height)));
        let progressive = fixture("blobs/blob_002_progressive.jpg");
        let img = decode_rgb(&progressive, &DecodeOptions::default()).expect("decodes");
        assert_eq!(frame_dims(&progressive), Some((img.width, img.height)));
        assert_eq!(frame_dims(b"\xff\xd8\xff\xe0 cut short"), None);
        assert_eq!(frame_dims(&good[..good.len().min(20)]), None);
        assert_eq!(frame_dims(b"not a jpeg"), None);
        // SOS before any SOF: no frame.
        assert_eq!(frame_dims(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
    }
}
