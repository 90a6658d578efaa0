//! The linear maps between a crop square's frame pixels and the model's S × S grid, one pair per
//! axis. `down` averages the pixels each grid sample covers (it interpolates where the crop is
//! smaller than the grid); `up` is a right inverse of it ([`Upsampling`] says which). Because
//! `down(up(t)) == t` wherever the frame holds the crop, a restore reads back the very grid the
//! model wrote, and a face splits exactly into the band the model sees (`up(down(x))`) and the
//! finer detail above it.

use std::collections::VecDeque;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Axis};

/// How `up` writes a grid onto a crop of at least as many pixels as the grid has samples. Any
/// right inverse of `down` gives the grid back exactly, but the change it writes differs, so a
/// restore must write with the one its stream was anonymized with
/// ([`crate::stream::header::StreamHeader::smooth_upsampling`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Upsampling {
    /// The minimum-norm right inverse, Dᵀ (D Dᵀ)⁻¹: each sample's value repeated over the pixels
    /// it covers, so that a large face's change is a mosaic of square blocks (outputs of builds
    /// before 2026-12-07, night).
    #[default]
    Blocks,
    /// B (D B)⁻¹, B the linear interpolation between the samples' centres: the change ramps from
    /// sample to sample, where a sample covers `SMOOTH_FROM` (1.5) pixels or more. Below that a
    /// block is hardly a pixel, and D B grows ill-conditioned as a sample nears one pixel.
    Smooth,
}

/// The least pixels a grid sample covers for [`Upsampling::Smooth`] to interpolate: D B's
/// condition number, worst over 12 sub-pixel offsets of a 128 grid, is 153 at 1.0 pixel a
/// sample, 3.3 at 1.2 and 2.1-2.4 from 1.5 up (numpy, 2026-12-07).
const SMOOTH_FROM: f64 = 1.5;

/// `down` ([S, W]) and `up` ([W, S]) along one axis of a region W pixels long.
pub struct AxisMap {
    down: Rows,
    up: Up,
    /// Which grid samples the frame holds, written back exactly: the others repeat its edge.
    inside: Vec<bool>,
}

/// A matrix whose rows are each nonzero over one short run of columns: an area kernel, or the
/// pseudo-inverse of one, whose entries fall off fast away from the diagonal.
#[derive(Clone)]
struct Rows {
    /// Per row: the first column of its run and the run's values.
    runs: Vec<(usize, Vec<f32>)>,
}

impl Rows {
    /// The runs of a dense matrix: each row from its first to its last entry above `floor`
    /// times the row's largest (the tails of a pseudo-inverse are far below one 8-bit step).
    fn from_dense(m: &Array2<f64>, floor: f64) -> Self {
        let runs = m
            .rows()
            .into_iter()
            .map(|row| {
                let big = row.iter().fold(0.0f64, |a, v| a.max(v.abs())) * floor;
                let Some(first) = row.iter().position(|v| v.abs() > big) else { return (0, Vec::new()) };
                let last = row.iter().rposition(|v| v.abs() > big).unwrap_or(first);
                (first, row.iter().skip(first).take(last + 1 - first).map(|&v| v as f32).collect())
            })
            .collect();
        Self { runs }
    }

    /// Each row's entries for columns `2k` and `2k + 1` summed into column `k`.
    fn columns_paired(&self) -> Self {
        let runs = self
            .runs
            .iter()
            .map(|(start, values)| {
                let Some(last) = (start + values.len()).checked_sub(1) else { return (0, Vec::new()) };
                let first = start / 2;
                let mut out = vec![0.0; last / 2 + 1 - first];
                for (k, v) in values.iter().enumerate() {
                    out[(start + k) / 2 - first] += v;
                }
                (first, out)
            })
            .collect();
        Self { runs }
    }

    /// Rows `2k` and `2k + 1` averaged into row `k` (the last alone where the count is odd).
    fn rows_paired(&self) -> Self {
        let runs = self
            .runs
            .chunks(2)
            .map(|pair| {
                let full = || pair.iter().filter(|(_, values)| !values.is_empty());
                let Some(first) = full().map(|(start, _)| *start).min() else { return (0, Vec::new()) };
                let end = full().map(|(start, values)| start + values.len()).max().unwrap_or(first);
                let mut out = vec![0.0; end - first];
                for (start, values) in pair {
                    for (k, v) in values.iter().enumerate() {
                        out[start + k - first] += v / pair.len() as f32;
                    }
                }
                (first, out)
            })
            .collect();
        Self { runs }
    }

    #[cfg(test)]
    fn dense(&self, cols: usize) -> Array2<f32> {
        let mut m = Array2::zeros((self.runs.len(), cols));
        for (i, (start, values)) in self.runs.iter().enumerate() {
            for (k, v) in values.iter().enumerate() {
                m[[i, start + k]] = *v;
            }
        }
        m
    }
}

/// `up` ([W, S]) as `taps` · `solve`: a solve on the grid ([S, S]; none for blocks and for a crop
/// smaller than the grid, whose `taps` are the whole map), then a few taps from the grid to each
/// pixel. Two short maps cost less than their product, whose rows are as long as the solve's.
struct Up {
    solve: Option<Rows>,
    taps: Rows,
}

/// Entries of a pseudo-inverse below this share of their row's largest are dropped.
const UP_FLOOR: f64 = 1e-6;

impl AxisMap {
    /// The maps for a crop that starts `start` pixels after the region's first pixel (negative
    /// where the crop reaches past the frame) and spans `side` pixels, over a region of `width`
    /// pixels, sampled at `size` grid points, written back as `upsampling` says.
    pub fn new(start: f64, side: f64, width: usize, size: usize, upsampling: Upsampling) -> Self {
        let step = side / size as f64;
        let mut down = Array2::<f64>::zeros((size, width));
        // Grid samples the frame holds; the others repeat the edge pixel for the model's input
        // but have no pixels of their own to be written back to.
        let mut inside = vec![true; size];
        let last = width as f64 - 1.0;
        // Sample `i`'s extent, and the part of it inside the frame.
        let span = |i: usize| {
            let lo = start + i as f64 * step;
            (lo, lo + step, lo.max(0.0), (lo + step).min(width as f64))
        };
        // A sample at least half in the frame averages the part it covers; one mostly outside
        // repeats the nearest edge pixel.
        let half_in = |i: usize| {
            let (_, _, a, b) = span(i);
            b - a >= step / 2.0
        };
        for (i, inside) in inside.iter_mut().enumerate() {
            let (lo, hi, mut a, mut b) = span(i);
            if step >= 1.0 {
                if half_in(i) {
                    // The part of the frame it averages: what it covers, and where the sample
                    // next to it lies mostly past the frame's edge, on to that edge, so that
                    // every pixel of the frame the crop reaches belongs to a sample and takes the
                    // model's change whole. (Without it, a pixel in the edge's part of a sample
                    // mostly outside took a fraction of the change and kept the rest at the
                    // detail's share: a dark, coloured line along the frame's edge wherever a
                    // face reached past it.)
                    if i > 0 && lo > 0.0 && lo < 1.0 + step && !half_in(i - 1) {
                        a = 0.0;
                    }
                    if i + 1 < size && hi < width as f64 && hi > last - step && !half_in(i + 1) {
                        b = width as f64;
                    }
                    for x in (a.floor() as usize)..(b.ceil() as usize).min(width) {
                        let w = b.min(x as f64 + 1.0) - a.max(x as f64);
                        if w > 0.0 {
                            down[[i, x]] = w / (b - a);
                        }
                    }
                    continue;
                }
                *inside = false;
                down[[i, if hi <= step / 2.0 { 0 } else { width - 1 }]] = 1.0;
            } else {
                // Smaller than the grid: bilinear at the sample's centre, clamped to the edge.
                // Every sample counts as held: `up` is then a least-squares inverse, which reads
                // back no sample exactly, and a face this small cut by the frame's edge came back
                // worse through a codec when the model fitted it to the samples inside (the
                // newsroom's faces 10-30% past the edge, 29.5 against 31.0 dB after x264 CRF 23;
                // MODEL_CARD.md, "sdn-0.6.5"), so it is analysed whole.
                let s = (lo + step / 2.0 - 0.5).clamp(0.0, last);
                let f = s.floor();
                let (x0, x1) = (f as usize, (f as usize + 1).min(width - 1));
                down[[i, x0]] += 1.0 - (s - f);
                down[[i, x1]] += s - f;
            }
        }
        let up = if step < 1.0 {
            Up { solve: None, taps: Rows::from_dense(&left_inverse(&down), UP_FLOOR) }
        } else if upsampling == Upsampling::Smooth && step >= SMOOTH_FROM {
            let centres: Vec<f64> = (0..size).map(|i| start + (i as f64 + 0.5) * step).collect();
            let (solve, taps) = smooth_right_inverse(&down, &inside, &centres);
            Up { solve: Some(Rows::from_dense(&solve, UP_FLOOR)), taps: Rows::from_dense(&taps, 0.0) }
        } else {
            Up { solve: None, taps: Rows::from_dense(&right_inverse(&down, &inside), UP_FLOOR) }
        };
        Self { down: Rows::from_dense(&down, 0.0), up, inside }
    }

    /// Whether the frame holds grid sample `i` (see [`Self::new`]).
    pub fn holds(&self, i: usize) -> bool {
        self.inside[i]
    }

    /// Whether the frame holds every grid sample.
    pub fn holds_all(&self) -> bool {
        self.inside.iter().all(|&i| i)
    }

    /// The maps of a 4:2:0 chroma axis over the same region (which starts on an even pixel),
    /// one sample for two pixels, that give what this map's pixels give: `down` reads a sample
    /// as both its pixels, `up` writes it the mean of what its pixels would get, as a frame
    /// writes chroma.
    fn halved(&self) -> Self {
        let up = Up { solve: self.up.solve.clone(), taps: self.up.taps.rows_paired() };
        Self { down: self.down.columns_paired(), up, inside: self.inside.clone() }
    }
}

/// The axis maps of the last few crops: a still face keeps its square from frame to frame
/// (`faces::steady`), and its maps need not be solved again. All of them write back as one
/// [`Upsampling`] says.
#[derive(Default)]
pub struct MapCache {
    recent: VecDeque<(MapKey, Arc<AxisMap>)>,
    upsampling: Upsampling,
}

/// What an axis map depends on, exactly.
#[derive(Clone, Copy, PartialEq, Eq)]
struct MapKey {
    start: u64,
    side: u64,
    width: usize,
    size: usize,
    halved: bool,
}

/// Enough for a few faces' two axes, each whole and halved.
const CACHED_MAPS: usize = 32;

impl MapCache {
    /// An empty cache of maps that write back as `upsampling` says.
    pub fn new(upsampling: Upsampling) -> Self {
        Self { recent: VecDeque::new(), upsampling }
    }

    pub fn upsampling(&self) -> Upsampling {
        self.upsampling
    }

    /// The map `AxisMap::new` would make for these arguments and the cache's [`Upsampling`].
    /// With `halved`, the map of a 4:2:0 chroma axis over that region (`AxisMap::halved`).
    pub fn axis(&mut self, start: f64, side: f64, width: usize, size: usize, halved: bool) -> Arc<AxisMap> {
        let key = MapKey { start: start.to_bits(), side: side.to_bits(), width, size, halved };
        if let Some((_, map)) = self.recent.iter().find(|(k, _)| *k == key) {
            return map.clone();
        }
        let map = if halved {
            Arc::new(self.axis(start, side, width, size, false).halved())
        } else {
            Arc::new(AxisMap::new(start, side, width, size, self.upsampling))
        };
        if self.recent.len() == CACHED_MAPS {
            self.recent.pop_back();
        }
        self.recent.push_front((key, map.clone()));
        map
    }
}

/// Both axes of one crop over its region.
pub struct CropMaps {
    pub x: Arc<AxisMap>,
    pub y: Arc<AxisMap>,
}

impl CropMaps {
    /// One plane's [H, W] region pixels to the [S, S] grid.
    pub fn down(&self, image: ArrayView2<f32>) -> Array2<f32> {
        apply(&self.y.down, &self.x.down, image)
    }

    /// An [S, S] grid to one plane's [H, W] region pixels. Both axes of a square have one step,
    /// so both have a solve or neither.
    pub fn up(&self, grid: ArrayView2<f32>) -> Array2<f32> {
        debug_assert_eq!(self.y.up.solve.is_some(), self.x.up.solve.is_some(), "one step, one kind of map");
        match (&self.y.up.solve, &self.x.up.solve) {
            (Some(y), Some(x)) => apply(&self.y.up.taps, &self.x.up.taps, apply(y, x, grid).view()),
            _ => apply(&self.y.up.taps, &self.x.up.taps, grid),
        }
    }
}

/// rows · image · colsᵀ, columns first. Where `cols` has long runs (an `up` map's), the first
/// product is taken on the transposed image as sums of whole rows scaled by one entry each,
/// which the compiler vectorizes, as it does the second: a dot product over each output
/// column's run did not vectorize, and took most of a blend's time. An area kernel's runs are
/// two or three long, for which the transposes cost more than they save. Either way each output
/// sums its terms in the same order, so the results are the same to the bit.
fn apply(rows: &Rows, cols: &Rows, image: ArrayView2<f32>) -> Array2<f32> {
    let taps: usize = cols.runs.iter().map(|(_, values)| values.len()).sum();
    let wide = if taps >= LONG_RUNS * cols.runs.len() {
        transposed(scaled_row_sums(cols, &transposed(image)).view())
    } else {
        run_dots(cols, image)
    };
    scaled_row_sums(rows, &wide)
}

/// The mean run length from which [`apply`] transposes: the maps of crops of 58 to 400 px over
/// a grid of 128 have runs of 1.4 to 4.1 on average for `down` and 9 to 43 for `up`.
const LONG_RUNS: usize = 8;

/// image · colsᵀ as one dot product per output entry, over its column's run.
fn run_dots(cols: &Rows, image: ArrayView2<f32>) -> Array2<f32> {
    let mut wide = Array2::<f32>::zeros((image.nrows(), cols.runs.len()));
    for (src, mut out) in image.rows().into_iter().zip(wide.rows_mut()) {
        let src = src.to_slice().expect("planes are in standard layout");
        for ((start, values), o) in cols.runs.iter().zip(out.iter_mut()) {
            *o = values.iter().zip(&src[*start..]).map(|(w, v)| w * v).sum();
        }
    }
    wide
}

/// `a`ᵀ in standard layout, copied in tiles that stay in the cache (ndarray's copy of a
/// transposed view walks it element by element: a fifth of a crop's time).
fn transposed(a: ArrayView2<f32>) -> Array2<f32> {
    const TILE: usize = 16;
    let (h, w) = a.dim();
    let a = a.as_standard_layout();
    let src = a.as_slice().expect("a standard-layout array");
    let mut out = vec![0.0f32; w * h];
    for y0 in (0..h).step_by(TILE) {
        let y1 = (y0 + TILE).min(h);
        for x0 in (0..w).step_by(TILE) {
            let x1 = (x0 + TILE).min(w);
            for (y, row) in src[y0 * w..y1 * w].chunks_exact(w).enumerate() {
                for (x, &v) in row[x0..x1].iter().enumerate() {
                    out[(x0 + x) * h + y0 + y] = v;
                }
            }
        }
    }
    Array2::from_shape_vec((w, h), out).expect("w x h values")
}

/// m · a for a matrix `m` of runs: each output row the sum of `a`'s rows its run covers, each
/// scaled by the run's entry, in the run's order.
fn scaled_row_sums(m: &Rows, a: &Array2<f32>) -> Array2<f32> {
    let (height, width) = a.dim();
    let a = a.as_slice().expect("a fresh standard-layout array");
    let mut out = Array2::<f32>::zeros((m.runs.len(), width));
    let out_rows = out.as_slice_mut().expect("a fresh standard-layout array").chunks_exact_mut(width.max(1));
    for ((start, values), line) in m.runs.iter().zip(out_rows) {
        for (k, &w) in values.iter().enumerate().take(height.saturating_sub(*start)) {
            let src = &a[(start + k) * width..][..width];
            for (o, &v) in line.iter_mut().zip(src) {
                *o += w * v;
            }
        }
    }
    out
}

/// `up` for a crop at least as large as the grid: Dᵀ (D Dᵀ)⁻¹ over the samples inside the
/// frame, so that D · up is the identity on them.
fn right_inverse(down: &Array2<f64>, inside: &[bool]) -> Array2<f64> {
    let rows: Vec<usize> = (0..down.nrows()).filter(|&i| inside[i]).collect();
    let d = down.select(Axis(0), &rows);
    // (D Dᵀ)⁻¹ D, solved column by column of D: the transpose of what `up` holds.
    let solved = solve_spd(gram(&d), d);
    let mut up = Array2::zeros((down.ncols(), down.nrows()));
    for (k, &i) in rows.iter().enumerate() {
        up.column_mut(i).assign(&solved.row(k));
    }
    up
}

/// [`Upsampling::Smooth`]'s `up` for a crop at least as large as the grid, as its two factors
/// (D B)⁻¹ ([S, S]) and B ([W, S]): B interpolates linearly between the `centres` of the samples
/// inside the frame (each pixel at its own centre, those before the first centre or past the
/// last taking that sample whole), over the pixels `down` reads, so that D · up is the
/// identity on the samples inside and a flat grid comes up flat. The samples outside get no
/// column, as in [`right_inverse`].
fn smooth_right_inverse(down: &Array2<f64>, inside: &[bool], centres: &[f64]) -> (Array2<f64>, Array2<f64>) {
    let (size, width) = down.dim();
    // Positions among the samples inside, and each pixel's two taps on them.
    let rows: Vec<usize> = (0..size).filter(|&i| inside[i]).collect();
    let n = rows.len();
    let tap = |x: usize| -> [(usize, f64); 2] {
        let p = x as f64 + 0.5;
        let k = rows.partition_point(|&i| centres[i] <= p);
        if k == 0 {
            return [(0, 1.0), (0, 0.0)];
        }
        if k == n {
            return [(n - 1, 1.0), (n - 1, 0.0)];
        }
        let t = (p - centres[rows[k - 1]]) / (centres[rows[k]] - centres[rows[k - 1]]);
        [(k - 1, 1.0 - t), (k, t)]
    };
    let mut b = Array2::<f64>::zeros((width, size));
    if n == 0 {
        return (Array2::zeros((size, size)), b);
    }
    let mut db = Array2::<f64>::zeros((n, n));
    for (k, &i) in rows.iter().enumerate() {
        for x in (0..width).filter(|&x| down[[i, x]] != 0.0) {
            for (l, w) in tap(x).into_iter().filter(|(_, w)| *w != 0.0) {
                b[[x, rows[l]]] = w;
                db[[k, l]] += down[[i, x]] * w;
            }
        }
    }
    // D B is banded, and diagonally dominant from SMOOTH_FROM pixels a sample. Its inverse as
    // ((D B)ᵀ D B)⁻¹ (D B)ᵀ, by the banded solve the other inverses use.
    let dbt = db.t().to_owned();
    let inverse = solve_spd(gram(&dbt), dbt);
    let mut solve = Array2::zeros((size, size));
    for (k, &i) in rows.iter().enumerate() {
        for (l, &j) in rows.iter().enumerate() {
            solve[[i, j]] = inverse[[k, l]];
        }
    }
    (solve, b)
}

/// `up` for a crop smaller than the grid: (Dᵀ D)⁻¹ Dᵀ, the least-squares pixels for a grid.
fn left_inverse(down: &Array2<f64>) -> Array2<f64> {
    let dt = down.t().to_owned();
    solve_spd(gram(&dt), dt)
}

/// m · mᵀ and its band (how far from the diagonal it has entries), for a matrix whose rows are
/// each nonzero over one run of columns, the runs starting in order: only rows whose runs
/// overlap are multiplied.
fn gram(m: &Array2<f64>) -> (Array2<f64>, usize) {
    let runs: Vec<(usize, usize)> = m
        .rows()
        .into_iter()
        .map(|r| match r.iter().position(|v| *v != 0.0) {
            Some(first) => (first, r.iter().rposition(|v| *v != 0.0).unwrap_or(first) + 1),
            None => (0, 0),
        })
        .collect();
    let n = m.nrows();
    let mut g = Array2::zeros((n, n));
    let mut band = 0;
    for i in 0..n {
        for j in i..n {
            let (lo, hi) = (runs[i].0.max(runs[j].0), runs[i].1.min(runs[j].1));
            if runs[j].0 >= runs[i].1 && runs[i].1 > runs[i].0 {
                break;
            }
            let v: f64 = (lo..hi).map(|x| m[[i, x]] * m[[j, x]]).sum();
            if v != 0.0 {
                g[[i, j]] = v;
                g[[j, i]] = v;
                band = band.max(j - i);
            }
        }
    }
    (g, band)
}

/// Solves G X = B for a symmetric positive definite G (a Gram matrix of area or bilinear
/// kernels: banded, small and well conditioned) by a banded Cholesky. A tiny ridge keeps a Gram
/// matrix of repeated edge samples solvable.
fn solve_spd((mut g, band): (Array2<f64>, usize), b: Array2<f64>) -> Array2<f64> {
    let n = g.nrows();
    let ridge = 1e-9 * g.diag().fold(0.0, |a: f64, v| a.max(*v));
    g.diag_mut().mapv_inplace(|v| v + ridge);
    // In place: G = L Lᵀ, L in the lower triangle.
    for j in 0..n {
        let lo = j.saturating_sub(band);
        let d = (g[[j, j]] - (lo..j).map(|k| g[[j, k]] * g[[j, k]]).sum::<f64>()).max(f64::MIN_POSITIVE).sqrt();
        g[[j, j]] = d;
        for i in (j + 1)..(j + band + 1).min(n) {
            let v = g[[i, j]] - (i.saturating_sub(band).max(lo)..j).map(|k| g[[i, k]] * g[[j, k]]).sum::<f64>();
            g[[i, j]] = v / d;
        }
    }
    // One right-hand side per column of B, each solved as a contiguous row of Bᵀ, with the
    // diagonal's reciprocals at hand (divisions were most of the time). A column of B is
    // nonzero over a few entries only, and its solution falls off geometrically away from
    // them: each sweep starts at the first entry that can be nonzero and stops once past the
    // column's own entries its values have stayed negligible for a while.
    let inv: Vec<f64> = g.diag().iter().map(|d| 1.0 / d).collect();
    let mut x = b.t().as_standard_layout().into_owned();
    for mut col in x.rows_mut() {
        let col = col.as_slice_mut().expect("a fresh standard-layout array");
        let Some(first) = col.iter().position(|v| *v != 0.0) else { continue };
        let last = col.iter().rposition(|v| *v != 0.0).unwrap_or(first);
        let mut fading = Fading::default();
        let mut end = n;
        for i in first..n {
            let v = col[i] - (i.saturating_sub(band)..i).map(|k| g[[i, k]] * col[k]).sum::<f64>();
            col[i] = v * inv[i];
            if i > last && fading.negligible(col[i]) {
                end = i + 1;
                break;
            }
        }
        let mut fading = Fading::default();
        for i in (0..end).rev() {
            let v = col[i] - ((i + 1)..(i + band + 1).min(end)).map(|k| g[[k, i]] * col[k]).sum::<f64>();
            col[i] = v * inv[i];
            if i < first && fading.negligible(col[i]) {
                break;
            }
        }
    }
    x.reversed_axes()
}

/// Watches the entries of one sweep: negligible once `QUIET_RUN` in a row are below
/// `QUIET_SHARE` of the largest so far, far below what `UP_FLOOR` keeps (the entries left
/// unswept stay zero).
#[derive(Default)]
struct Fading {
    peak: f64,
    quiet: usize,
}

const QUIET_SHARE: f64 = 1e-10;
const QUIET_RUN: usize = 8;

impl Fading {
    fn negligible(&mut self, v: f64) -> bool {
        self.peak = self.peak.max(v.abs());
        self.quiet = if v.abs() <= QUIET_SHARE * self.peak { self.quiet + 1 } else { 0 };
        self.quiet >= QUIET_RUN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(map: &AxisMap) -> (Array2<f32>, Array2<f32>) {
        let (size, width) = (map.down.runs.len(), map.up.taps.runs.len());
        let taps = map.up.taps.dense(size);
        let up = match &map.up.solve {
            Some(solve) => taps.dot(&solve.dense(size)),
            None => taps,
        };
        (map.down.dense(width), up)
    }

    /// Each case with each kind of upsampling.
    fn cases<T: Copy, const N: usize>(cases: [T; N]) -> impl Iterator<Item = (T, Upsampling)> {
        cases.into_iter().flat_map(|c| [(c, Upsampling::Blocks), (c, Upsampling::Smooth)])
    }

    fn identity_error(map: &AxisMap, rows: std::ops::Range<usize>) -> f32 {
        let (down, up) = dense(map);
        let p = down.dot(&up);
        rows.flat_map(|i| (0..p.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| (p[[i, j]] - if i == j { 1.0 } else { 0.0 }).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn down_after_up_is_the_identity_for_a_crop_larger_than_the_grid() {
        for ((start, side), upsampling) in cases([(1.3f64, 195.4f64), (0.0, 128.0), (0.7, 411.9), (2.1, 140.2)]) {
            let width = (start + side).ceil() as usize + 2;
            let map = AxisMap::new(start, side, width, 128, upsampling);
            assert!(identity_error(&map, 0..128) < 1e-4, "start {start}, side {side}, {upsampling:?}");
            let sums = dense(&map).0.sum_axis(Axis(1));
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "every sample averages its pixels");
        }
    }

    #[test]
    fn a_halved_map_reads_and_writes_a_chroma_sample_as_its_two_pixels() {
        for ((start, side, width), upsampling) in cases([(1.3f64, 195.4f64, 199usize), (-40.0, 200.0, 161), (0.0, 93.0, 93)]) {
            let full = AxisMap::new(start, side, width, 128, upsampling);
            let (down, up) = dense(&full);
            let (half_down, half_up) = dense(&full.halved());
            let chroma = width.div_ceil(2);
            assert_eq!((half_down.dim(), half_up.dim()), ((128, chroma), (chroma, 128)));
            for k in 0..chroma {
                let pair = (2 * k..(2 * k + 2).min(width)).collect::<Vec<_>>();
                let read = pair.iter().map(|&x| down.column(x).to_owned()).fold(ndarray::Array1::zeros(128), |a, c| a + c);
                let written = pair.iter().map(|&x| up.row(x).to_owned()).fold(ndarray::Array1::zeros(128), |a, r| a + r)
                    / pair.len() as f32;
                let off = |a: ndarray::ArrayView1<f32>, b: &ndarray::Array1<f32>| {
                    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
                };
                assert!(
                    off(half_down.column(k), &read) < 1e-6 && off(half_up.row(k), &written) < 1e-6,
                    "start {start}, sample {k}, {upsampling:?}"
                );
            }
        }
    }

    #[test]
    fn a_solve_whose_sweeps_stop_where_its_values_fade_matches_full_elimination() {
        // An area kernel of 128 samples over 197 pixels, as `AxisMap::new` makes one.
        let (size, width, step) = (128usize, 197usize, 1.53f64);
        let d = Array2::from_shape_fn((size, width), |(i, x)| {
            let (lo, hi) = (0.4 + i as f64 * step, 0.4 + (i + 1) as f64 * step);
            let w = hi.min(x as f64 + 1.0) - lo.max(x as f64);
            if w > 0.0 { w / step } else { 0.0 }
        });
        let fast = solve_spd(gram(&d), d.clone());
        // Gauss-Jordan on [G | D], with the same ridge.
        let mut g = gram(&d).0;
        let ridge = 1e-9 * g.diag().fold(0.0, |a: f64, v| a.max(*v));
        g.diag_mut().mapv_inplace(|v| v + ridge);
        let mut a = ndarray::concatenate![Axis(1), g, d];
        for j in 0..size {
            let pivot = a[[j, j]];
            a.row_mut(j).mapv_inplace(|v| v / pivot);
            let row = a.row(j).to_owned();
            for i in (0..size).filter(|&i| i != j) {
                let f = a[[i, j]];
                a.row_mut(i).scaled_add(-f, &row);
            }
        }
        let full = a.slice(ndarray::s![.., size..]);
        let worst = (&fast - &full).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(worst < 1e-9, "{worst}");
    }

    #[test]
    fn up_after_down_keeps_the_pixels_of_a_crop_smaller_than_the_grid() {
        let map = AxisMap::new(0.0, 93.0, 93, 128, Upsampling::Smooth);
        let (down, up) = dense(&map);
        let p = up.dot(&down);
        let err = p.indexed_iter().map(|((i, j), v)| (v - if i == j { 1.0 } else { 0.0 }).abs()).fold(0.0, f32::max);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn samples_past_the_frame_repeat_its_edge_and_the_rest_stay_exact() {
        // A 200 px crop whose first 40 px lie left of the frame.
        for upsampling in [Upsampling::Blocks, Upsampling::Smooth] {
            samples_past_the_frame_of(upsampling);
        }
    }

    fn samples_past_the_frame_of(upsampling: Upsampling) {
        let map = AxisMap::new(-40.0, 200.0, 161, 128, upsampling);
        let step = 200.0f64 / 128.0;
        let first_inside = (40.0 / step - 0.5).ceil() as usize;
        assert_eq!(dense(&map).0[[0, 0]], 1.0);
        assert!(identity_error(&map, first_inside + 1..128) < 1e-4);
    }

    #[test]
    fn every_pixel_of_a_crop_past_the_frame_takes_a_flat_grid_whole() {
        // Crops reaching past the frame's edge (their region ends there) at the right, at the
        // left, at both, their other ends on a pixel's edge: a flat grid comes up flat on every
        // pixel the crop covers, the frame edge's included, whole and halved (4:2:0 chroma), as
        // the model's flat change must. (Where a crop starts or ends inside a pixel, the mask is
        // nought, and the pixels near it take the least change that gives the grid.)
        for ((start, side, width), upsampling) in
            cases([(0.0, 325.5, 300), (-40.3, 200.3, 160), (-9.7, 325.5, 300), (1.0, 300.0, 250)])
        {
            let map = AxisMap::new(start, side, width, 128, upsampling);
            let covered = |x: usize| x as f64 >= start && x as f64 + 1.0 <= start + side;
            let flat = dense(&map).1.sum_axis(Axis(1));
            let halved = dense(&map.halved()).1.sum_axis(Axis(1));
            let worst = (0..width)
                .filter(|&x| covered(x))
                .map(|x| {
                    let pair = covered(x & !1) && covered(x | 1) && (x | 1) < width;
                    (flat[x] - 1.0).abs().max(if pair { (halved[x / 2] - 1.0).abs() } else { 0.0 })
                })
                .fold(0.0f32, f32::max);
            let at: Vec<usize> = (0..width).filter(|&x| covered(x) && (flat[x] - 1.0).abs() > 1e-4).collect();
            assert!(
                worst < 1e-4,
                "a crop from {start} of {side} over {width} px, {upsampling:?}: a pixel takes {worst} too little or much ({at:?})"
            );
        }
    }

    #[test]
    fn smooth_upsampling_ramps_where_blocks_step() {
        // A grid that alternates between two values every 8 samples, written onto a 650 px crop
        // (5 px a sample, a large face): blocks jump by the whole difference between two pixels,
        // the smooth map by about a sample's share of it.
        let (start, side, width) = (0.3, 650.0, 651);
        let grid = ndarray::Array1::from_shape_fn(128, |i| if (i / 8) % 2 == 0 { 0.0f32 } else { 100.0 });
        let largest_step = |upsampling| {
            let up = dense(&AxisMap::new(start, side, width, 128, upsampling)).1.dot(&grid);
            up.windows(2).into_iter().map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max)
        };
        let (blocks, smooth) = (largest_step(Upsampling::Blocks), largest_step(Upsampling::Smooth));
        assert!(blocks > 90.0, "blocks step by {blocks}");
        assert!(smooth < 40.0, "the smooth map steps by {smooth} between two pixels");
    }

    #[test]
    fn smooth_upsampling_leaves_crops_near_the_grid_size_to_blocks() {
        // Under SMOOTH_FROM pixels a sample the two kinds are one map.
        let [smooth, blocks] = [Upsampling::Smooth, Upsampling::Blocks].map(|u| dense(&AxisMap::new(0.5, 180.0, 182, 128, u)).1);
        assert_eq!(smooth, blocks);
    }

    #[test]
    fn a_square_seen_again_reuses_its_maps_and_a_moved_one_does_not() {
        let mut cache = MapCache::default();
        let a = cache.axis(1.5, 200.0, 203, 128, false);
        assert!(Arc::ptr_eq(&a, &cache.axis(1.5, 200.0, 203, 128, false)));
        assert!(!Arc::ptr_eq(&a, &cache.axis(1.75, 200.0, 203, 128, false)));
    }
}
