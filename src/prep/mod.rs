//! Preparing inputs (paper §2): discovering files (an ImageFolder, a list file) or reading them from
//! containers (WebDataset tars, parquet / Hugging Face tables), decoding them to RGB, resizing the
//! short side and cropping the centre.

mod decode;
mod decode_window;
mod discover;
mod parquet;
mod pattern;
mod resize;
mod webdataset;

pub use decode::{
    cmyk_to_rgb, decode_rgb, draft_denominator, is_jpeg, looks_like_image, max_file_bytes,
    DecodeOptions, RejectReason, RgbImage, DEFAULT_MAX_PIXELS,
};
pub use decode_window::{
    decode_jpeg_span, decode_jpeg_window, image_dims, window_eighths, ScaledRegion, Window,
};
pub use discover::{
    discover_folder, discover_list, read_class_names, Inputs, Source, SourceStream,
    MAX_NUMBERED_CLASSES,
};
pub use parquet::{
    discover_parquet, hf_dataset_files, ParquetOptions, TableFile, TableKind, IMAGE_COLUMNS,
    LABEL_COLUMNS,
};
pub use pattern::{expand_braces, expand_local, is_pattern, is_url};
pub use resize::{
    capped_dims, center_box, center_crop_offset, center_crop_span, crop_rgb, resized_dims, Filter,
    ResizeCrop,
};
pub use webdataset::{
    discover_webdataset, is_gzipped, is_tar_name, split_member, LabelKey, WebDatasetOptions,
    IMAGE_EXTENSIONS,
};
