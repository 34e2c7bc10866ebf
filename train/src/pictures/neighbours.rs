//! Nearest neighbours in the last hidden layer (§6.1, Figure 4: "five ILSVRC-2010 test images in
//! the first column. The remaining columns show the six training images that produce feature
//! vectors in the last hidden layer with the smallest Euclidean distance from the feature vector
//! for the test image").
//!
//! The gallery's fc7 features are computed batch by batch through the engine (centre patches,
//! the checkpoint's normalisation and training-set statistics) and compared with the queries' on
//! the device as they come, keeping the k nearest per query: memory stays one batch, whatever the
//! gallery's size. Every forward pass has the same batch shape (the last batch is padded), so an
//! image gets the same features in the query batch as in the gallery: a gallery image queried
//! finds itself at distance exactly 0.

use std::path::Path;
use std::sync::Arc;

use alexpipe::{Dataset, Layout, Loader, LoaderConfig, MeanMode, Stats};
use image::imageops::{self, FilterType};
use tch::{Device, Kind, Tensor};

use super::{fit, Anchor, Canvas, Font, PictureError, Rgb, RgbImage};
use crate::checkpoint::load_network;
use crate::model::AlexNet;

/// One gallery record near a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Its record index in the gallery.
    pub index: usize,
    /// Euclidean distance between the fc7 features.
    pub distance: f32,
}

/// The `k` nearest candidates offered for each query, by distance, then index.
#[derive(Debug, Clone)]
pub struct Nearest {
    k: usize,
    lists: Vec<Vec<Neighbour>>,
}

impl Nearest {
    /// Empty lists for `queries` queries.
    pub fn new(queries: usize, k: usize) -> Nearest {
        Nearest {
            k,
            lists: vec![Vec::with_capacity(k + 1); queries],
        }
    }

    /// Considers `candidate` for query `q`.
    pub fn offer(&mut self, q: usize, candidate: Neighbour) {
        let list = &mut self.lists[q];
        let key = |n: &Neighbour| (n.distance, n.index);
        let before = |a: &Neighbour, b: &Neighbour| {
            a.distance
                .total_cmp(&b.distance)
                .then(a.index.cmp(&b.index))
        };
        if list.len() == self.k
            && list
                .last()
                .is_some_and(|worst| before(&candidate, worst).is_ge())
        {
            return;
        }
        let at = list.partition_point(|n| before(n, &candidate).is_lt());
        list.insert(at, candidate);
        list.truncate(self.k);
        debug_assert!(list.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    }

    /// The lists, nearest first.
    pub fn into_lists(self) -> Vec<Vec<Neighbour>> {
        self.lists
    }
}

/// `n` query records spread evenly over a dataset of `len` (records are stored class by class,
/// so the queries cover the classes).
pub fn spread(len: usize, n: usize) -> Vec<usize> {
    let n = n.min(len);
    (0..n).map(|i| i * len / n).collect()
}

/// Hands `each` the record indices and fc7 features (`[n, D]`, on `device`) of every batch of
/// `loader` (f32, not shuffled), computed with a fixed batch shape.
fn for_each_features(
    net: &AlexNet,
    loader: &Loader,
    device: Device,
    progress: bool,
    label: &str,
    mut each: impl FnMut(&[usize], &Tensor) -> Result<(), PictureError>,
) -> Result<(), PictureError> {
    let cfg = loader.config();
    let side = i64::from(cfg.crop);
    let rows = cfg.batch_size as i64;
    let pb = alexpipe::progress::bar(loader.len() as u64, "batches", progress);
    pb.set_prefix(format!("{label} "));
    let _guard = tch::no_grad_guard();
    let padded = Tensor::zeros([rows, 3, side, side], (Kind::Float, device));
    for batch in loader.iter() {
        let batch = batch?;
        let images = batch
            .images_f32()
            .ok_or_else(|| PictureError::Internal("features need f32 batches".into()))?;
        let n = batch.indices().len() as i64;
        let host = Tensor::from_slice(images).view([n, 3, side, side]);
        let mut slots = padded.narrow(0, 0, n);
        slots.copy_(&host);
        let features = net.features_t(&padded, false).narrow(0, 0, n);
        each(batch.indices(), &features)?;
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(())
}

/// Euclidean distances `[q, n]` between rows of `a` (`[q, D]`) and `b` (`[n, D]`), from the
/// differences themselves (no ‖a‖² + ‖b‖² − 2ab cancellation: equal rows give exactly 0).
pub fn distances(a: &Tensor, b: &Tensor) -> Tensor {
    let d = a.size()[1];
    let n = b.size()[0].max(1);
    // At most 2²⁵ differences at a time.
    let chunk = ((1i64 << 25) / (n * d).max(1)).max(1);
    let parts: Vec<Tensor> = (0..a.size()[0])
        .step_by(chunk as usize)
        .map(|start| {
            let len = chunk.min(a.size()[0] - start);
            let diff = a.narrow(0, start, len).unsqueeze(1) - b.unsqueeze(0);
            diff.square().sum_dim_intlist(-1, false, Kind::Float).sqrt()
        })
        .collect();
    Tensor::cat(&parts, 0)
}

/// The `k` gallery records whose fc7 features are nearest to each query's. Both loaders must be
/// f32 evaluation loaders with the same batch size and crop.
pub fn nearest_neighbours(
    net: &AlexNet,
    queries: &Loader,
    gallery: &Loader,
    k: usize,
    device: Device,
    progress: bool,
) -> Result<Vec<Vec<Neighbour>>, PictureError> {
    let mut query_features = Vec::new();
    for_each_features(net, queries, device, false, "queries", |_, f| {
        query_features.push(f.copy());
        Ok(())
    })?;
    if query_features.is_empty() {
        return Ok(Vec::new());
    }
    let q = Tensor::cat(&query_features, 0);
    let mut nearest = Nearest::new(q.size()[0] as usize, k);
    for_each_features(net, gallery, device, progress, "gallery", |indices, g| {
        let d = distances(&q, g).to_device(Device::Cpu);
        let values = Vec::<f32>::try_from(d.flatten(0, -1))
            .map_err(|e| PictureError::Internal(format!("reading distances: {e}")))?;
        for (qi, row) in values.chunks_exact(indices.len()).enumerate() {
            for (&index, &distance) in indices.iter().zip(row) {
                nearest.offer(qi, Neighbour { index, distance });
            }
        }
        Ok(())
    })?;
    Ok(nearest.into_lists())
}

/// One picture in the sheet with its two caption lines.
#[derive(Debug, Clone)]
pub struct Tile {
    /// The picture (any size; drawn scaled to the sheet's thumbnail side).
    pub image: RgbImage,
    /// Class name.
    pub class: String,
    /// Second line (record index, distance).
    pub detail: String,
}

/// Space around the sheet, px.
pub const MARGIN: u32 = 8;
/// Space between pictures, px.
pub const GAP: u32 = 4;
/// Space between the query column and the neighbours (a rule is drawn in it), px.
pub const SEPARATOR: u32 = 16;
/// Height of the column headings, px.
pub const HEADING: u32 = 16;
/// Height of the two caption lines under each picture, px.
pub const CAPTION: u32 = 24;

const SAME_CLASS: Rgb<u8> = Rgb([20, 120, 40]);
const OTHER_CLASS: Rgb<u8> = Rgb([180, 30, 30]);
const INK: Rgb<u8> = Rgb([40, 40, 40]);

/// Width and height of a sheet of `queries` rows of 1 + `k` pictures `thumb` px wide.
pub fn sheet_size(queries: usize, k: usize, thumb: u32) -> (u32, u32) {
    let (q, k) = (queries as u32, k as u32);
    let width = 2 * MARGIN + (k + 1) * thumb + k.saturating_sub(1) * GAP + SEPARATOR;
    let height = 2 * MARGIN + HEADING + q * (thumb + CAPTION) + q.saturating_sub(1) * GAP;
    (width, height)
}

/// Top-left corner of the picture in `row`, `column` (0: the query).
pub fn tile_origin(row: usize, column: usize, thumb: u32) -> (u32, u32) {
    let x = MARGIN
        + match column {
            0 => 0,
            c => thumb + SEPARATOR + (c as u32 - 1) * (thumb + GAP),
        };
    let y = MARGIN + HEADING + row as u32 * (thumb + CAPTION + GAP);
    (x, y)
}

/// The Figure 4 sheet: each row a query, then its neighbours, nearest first. Neighbour class
/// names are green when they are the query's class, red otherwise.
pub fn neighbours_sheet(rows: &[(Tile, Vec<Tile>)], k: usize, thumb: u32) -> RgbImage {
    let (width, height) = sheet_size(rows.len(), k, thumb);
    let mut c = Canvas::new(width, height, Rgb([255, 255, 255]));
    let chars = (thumb / Font::Small.char_width()) as usize;
    let (qx, _) = tile_origin(0, 0, thumb);
    c.text(
        (qx + thumb / 2) as i32,
        MARGIN as i32,
        "query",
        INK,
        Font::Small,
        Anchor::Center,
    );
    for j in 1..=k {
        let (x, _) = tile_origin(0, j, thumb);
        c.text(
            (x + thumb / 2) as i32,
            MARGIN as i32,
            &fit(&format!("nearest {j}"), chars),
            INK,
            Font::Small,
            Anchor::Center,
        );
    }
    let rule_x = (MARGIN + thumb + SEPARATOR / 2) as i32;
    c.line(
        (rule_x, (MARGIN + HEADING) as i32),
        (rule_x, (height - MARGIN) as i32),
        Rgb([170, 170, 170]),
        1,
    );
    for (r, (query, found)) in rows.iter().enumerate() {
        for (j, tile) in std::iter::once(query).chain(found).enumerate().take(k + 1) {
            let (x, y) = tile_origin(r, j, thumb);
            let pic = if tile.image.dimensions() == (thumb, thumb) {
                tile.image.clone()
            } else {
                imageops::resize(&tile.image, thumb, thumb, FilterType::Triangle)
            };
            c.blit(x, y, &pic);
            let color = match j {
                0 => INK,
                _ if tile.class == query.class => SAME_CLASS,
                _ => OTHER_CLASS,
            };
            let (tx, ty) = (x as i32, (y + thumb + 2) as i32);
            c.text(
                tx,
                ty,
                &fit(&tile.class, chars),
                color,
                Font::Small,
                Anchor::Left,
            );
            c.text(
                tx,
                ty + 11,
                &fit(&tile.detail, chars),
                INK,
                Font::Small,
                Anchor::Left,
            );
        }
    }
    c.into_image()
}

/// Which query records to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queries {
    /// This many, spread evenly over the query dataset.
    Spread(usize),
    /// These record indices.
    Indices(Vec<usize>),
}

/// Options of [`neighbours_picture`].
#[derive(Debug, Clone)]
pub struct NeighboursConfig {
    /// Neighbours per query (Figure 4: 6).
    pub k: usize,
    /// The query records.
    pub queries: Queries,
    /// Images per forward pass.
    pub batch_size: usize,
    /// Engine threads (0: all cores).
    pub workers: usize,
    /// Side of each picture in the sheet, px.
    pub thumb: u32,
    /// Where the network runs.
    pub device: Device,
    /// Show a progress bar over the gallery.
    pub progress: bool,
}

/// What [`neighbours_picture`] found and drew.
#[derive(Debug, Clone)]
pub struct NeighboursPicture {
    /// The query records.
    pub queries: Vec<usize>,
    /// Each query's neighbours in the gallery, nearest first.
    pub neighbours: Vec<Vec<Neighbour>>,
    /// The sheet.
    pub image: RgbImage,
}

fn eval_loader(
    ds: &Arc<Dataset>,
    stats: &Stats,
    normalize: MeanMode,
    crop: u32,
    cfg: &NeighboursConfig,
    layout: Layout,
) -> Result<Loader, PictureError> {
    let config = LoaderConfig {
        batch_size: cfg.batch_size,
        train: false,
        shuffle: false,
        drop_last: false,
        threads: cfg.workers,
        layout,
        crop,
        lighting: 0.0,
        flip: 0.0,
        mean: normalize,
        ..LoaderConfig::default()
    };
    Ok(Loader::with_stats(ds.clone(), config, stats)?)
}

/// The centre patches (what the network saw) of records `indices`, with their class names.
fn patches(loader: Loader, indices: Vec<usize>) -> Result<Vec<(RgbImage, String)>, PictureError> {
    let side = loader.config().crop;
    let classes = loader.dataset().classes().to_vec();
    let mut out = Vec::with_capacity(indices.len());
    for batch in loader.with_subset(indices)?.iter() {
        let batch = batch?;
        let pixels = batch
            .images_u8()
            .ok_or_else(|| PictureError::Internal("patches need u8 batches".into()))?;
        let per = (side * side * 3) as usize;
        for (j, &label) in batch.labels().iter().enumerate() {
            let img = RgbImage::from_raw(side, side, pixels[j * per..(j + 1) * per].to_vec())
                .ok_or_else(|| PictureError::Internal("patch size mismatch".into()))?;
            let class = classes
                .get(label as usize)
                .cloned()
                .unwrap_or_else(|| format!("class {label}"));
            out.push((img, class));
        }
    }
    Ok(out)
}

fn short(d: f32) -> String {
    if d == 0.0 {
        "0".into()
    } else if d >= 100.0 {
        format!("{d:.0}")
    } else if d >= 10.0 {
        format!("{d:.1}")
    } else {
        format!("{d:.2}")
    }
}

/// Figure 4 for a checkpoint: the queries from `query` (a dataset), their `k` nearest records of
/// `gallery` by fc7 distance, and the sheet showing them.
pub fn neighbours_picture(
    checkpoint: &Path,
    query: &Path,
    gallery: &Path,
    cfg: &NeighboursConfig,
) -> Result<NeighboursPicture, PictureError> {
    if cfg.k == 0 || cfg.batch_size == 0 || cfg.thumb == 0 {
        return Err(PictureError::Usage(
            "-k, --batch-size and --thumb must be at least 1".into(),
        ));
    }
    let (_vs, net, state, stats) = load_network(checkpoint, cfg.device)?;
    let crop = state.model.input as u32;
    let query_ds = Arc::new(Dataset::open_without_stats(query)?);
    let gallery_ds = Arc::new(Dataset::open_without_stats(gallery)?);
    let picks = match &cfg.queries {
        Queries::Spread(n) => spread(query_ds.len(), *n),
        Queries::Indices(v) => v.clone(),
    };
    if picks.is_empty() {
        return Err(PictureError::Usage(format!(
            "{}: no query images (the dataset is empty, or --queries 0)",
            query.display()
        )));
    }
    let features =
        |ds: &Arc<Dataset>| eval_loader(ds, &stats, state.normalize, crop, cfg, Layout::F32Nchw);
    // Errors name the dataset (images that do not fit the checkpoint, a query index past its end).
    let named = |path: &Path| {
        let path = path.to_path_buf();
        move |e: PictureError| PictureError::Dataset {
            path,
            source: Box::new(e),
        }
    };
    let query_loader = features(&query_ds)
        .and_then(|l| Ok(l.with_subset(picks.clone())?))
        .map_err(named(query))?;
    let gallery_loader = features(&gallery_ds).map_err(named(gallery))?;
    let neighbours = nearest_neighbours(
        &net,
        &query_loader,
        &gallery_loader,
        cfg.k,
        cfg.device,
        cfg.progress,
    )?;
    let pixels =
        |ds: &Arc<Dataset>| eval_loader(ds, &stats, state.normalize, crop, cfg, Layout::U8Nhwc);
    let query_tiles = patches(pixels(&query_ds)?, picks.clone())?;
    let found: Vec<usize> = neighbours.iter().flatten().map(|n| n.index).collect();
    let mut found_tiles = patches(pixels(&gallery_ds)?, found)?.into_iter();
    let mut rows = Vec::with_capacity(picks.len());
    for ((&qi, (image, class)), list) in picks.iter().zip(query_tiles).zip(&neighbours) {
        let query = Tile {
            image,
            class,
            detail: format!("query #{qi}"),
        };
        let tiles = list
            .iter()
            .zip(found_tiles.by_ref())
            .map(|(n, (image, class))| Tile {
                image,
                class,
                detail: format!("#{} d {}", n.index, short(n.distance)),
            })
            .collect();
        rows.push((query, tiles));
    }
    let image = neighbours_sheet(&rows, cfg.k, cfg.thumb);
    Ok(NeighboursPicture {
        queries: picks,
        neighbours,
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_keeps_the_k_smallest_in_order() {
        let mut n = Nearest::new(2, 3);
        for (i, d) in [5.0, 1.0, 4.0, 1.0, 0.5, 9.0, 2.0].into_iter().enumerate() {
            n.offer(
                0,
                Neighbour {
                    index: i,
                    distance: d,
                },
            );
            n.offer(
                1,
                Neighbour {
                    index: 10 + i,
                    distance: -d,
                },
            );
        }
        let lists = n.into_lists();
        let got: Vec<(usize, f32)> = lists[0].iter().map(|n| (n.index, n.distance)).collect();
        // Equal distances: the lower index first.
        assert_eq!(got, [(4, 0.5), (1, 1.0), (3, 1.0)]);
        let got: Vec<usize> = lists[1].iter().map(|n| n.index).collect();
        assert_eq!(got, [15, 10, 12]);
    }

    #[test]
    fn spread_covers_the_dataset() {
        assert_eq!(spread(31, 5), [0, 6, 12, 18, 24]);
        assert_eq!(spread(3, 5), [0, 1, 2]);
        assert!(spread(0, 5).is_empty());
    }

    #[test]
    fn distances_match_a_plain_loop() {
        let a = Tensor::from_slice(&[0.0f32, 0.0, 3.0, 4.0, 1.0, 1.0]).view([3, 2]);
        let b = Tensor::from_slice(&[0.0f32, 0.0, 3.0, 4.0]).view([2, 2]);
        let d = Vec::<f32>::try_from(distances(&a, &b).flatten(0, -1)).expect("f32");
        let plain =
            |p: [f32; 2], q: [f32; 2]| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
        let (a, b) = (
            [[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]],
            [[0.0, 0.0], [3.0, 4.0]],
        );
        let want: Vec<f32> = a
            .iter()
            .flat_map(|&p| b.iter().map(move |&q| plain(p, q)))
            .collect();
        assert_eq!(d, want);
        assert_eq!(d[0], 0.0);
        assert_eq!(d[3], 0.0);
    }

    #[test]
    fn sheet_places_query_then_neighbours() {
        let tile = |v: u8| Tile {
            image: RgbImage::from_pixel(8, 8, Rgb([v, v, v])),
            class: "c".into(),
            detail: String::new(),
        };
        let rows = vec![
            (tile(10), vec![tile(20), tile(30)]),
            (tile(40), vec![tile(50), tile(60)]),
        ];
        let img = neighbours_sheet(&rows, 2, 8);
        assert_eq!(img.dimensions(), sheet_size(2, 2, 8));
        assert_eq!(
            img.dimensions(),
            (2 * 8 + 3 * 8 + 4 + 16, 2 * 8 + 16 + 2 * (8 + 24) + 4)
        );
        for (r, row) in [[10, 20, 30], [40, 50, 60]].iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x, y) = tile_origin(r, j, 8);
                assert_eq!(
                    img.get_pixel(x + 4, y + 4),
                    &Rgb([v, v, v]),
                    "row {r} col {j}"
                );
            }
        }
    }
}
