//! The SDN model: its contract (sdn.json) and ONNX Runtime sessions for both directions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, Ix4};
use ort::value::TensorRef;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::faces::blend::BlendShape;
use crate::faces::detect::LANDMARK_VALUES;
use crate::faces::geometry::CropFraming;
use crate::runtime::{self, RuntimeOptions, SharedSession};

/// Which way the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Anonymize,
    Restore,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Variant {
    pub anonymize: String,
    pub restore: String,
    #[serde(default)]
    pub gflops: Option<f64>,
    /// The share of a face's detail the surrogate keeps where the model does not model it (the
    /// runtime applies the same share to the detail finer than the model's grid); none: 0.
    #[serde(default)]
    pub detail_alpha: Option<f32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TensorNames {
    pub image: String,
    /// Key rows, one per face ([N, key_bits]).
    pub key: String,
    pub attributes: String,
    /// Each face's five landmarks relative to its crop ([N, 10]), for models that take them.
    #[serde(default)]
    pub landmarks: Option<String>,
    /// The restore graph's per-face chroma pitch ([N, 1]): for a restore from a 4:2:0 input, how
    /// far apart its chroma samples were in crop pixels; the graph's default, 0, restores exactly.
    #[serde(default)]
    pub chroma_pitch: Option<String>,
    /// Each face's grid samples inside the frame ([N, 1, S, S], 1 inside, 0 past the frame's
    /// edge), for models that fit a face cut by the edge to its part inside; such a model takes
    /// a cut face in a batch of its own.
    #[serde(default)]
    pub inside: Option<String>,
}

/// An earlier model whose streams this one restores with some of its restore graph's scalar
/// inputs set: sdn-0.6.4 restores sdn-0.6.3's streams with its colour face space alone, sdn-0.6.5
/// sdn-0.6.4's with faces cut by the frame's edge analysed whole, as that model made them.
#[derive(Clone, Debug, Deserialize)]
pub struct EarlierMap {
    pub model_id: String,
    /// SHA-256 of its anonymize graphs, as stream headers name them.
    pub graphs: Vec<String>,
    /// What the restore graph's scalar inputs are given for its streams.
    pub restore_inputs: BTreeMap<String, f32>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CropSpec {
    pub detector: String,
    #[serde(flatten)]
    pub framing: CropFraming,
}

/// models/sdn/sdn.json: everything the runtime must know about the model and never hard-codes.
#[derive(Clone, Debug, Deserialize)]
pub struct SdnSpec {
    pub format: String,
    pub version: u32,
    pub model_id: String,
    pub input_size: usize,
    pub key_bits: usize,
    pub attributes: Vec<String>,
    pub attribute_range: [f32; 2],
    pub normalization: String,
    pub crop: CropSpec,
    pub blend: BlendShape,
    pub variants: BTreeMap<String, Variant>,
    pub default_variant: String,
    pub inputs: TensorNames,
    pub output: String,
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    /// SHA-256 of earlier anonymize graphs that compute the same map (a faster rewrite of the
    /// graph, checked equal to float tolerance by export.py): streams whose header names one of
    /// them restore with this model.
    #[serde(default)]
    pub same_map_as: Vec<String>,
    /// Earlier models whose maps this one computes with other restore inputs (export.py checks
    /// each against its graphs): their streams restore with this model too.
    #[serde(default)]
    pub earlier_maps: Vec<EarlierMap>,
    /// The landmarks given for a face the detector gave none (a model with a landmarks input).
    #[serde(default)]
    pub mean_landmarks: Option<[f32; LANDMARK_VALUES]>,
    /// Scalar inputs of the restore graph and what a restore gives them when its input went
    /// through a lossy codec (JPEG, video); left at the graph's defaults, the restore is exact.
    /// sdn-0.6.3: `unbend_knee` (the exact unbend multiplies a codec's error near black and white
    /// up to a hundredfold). A lossy input's faces also get their [`TensorNames::chroma_pitch`].
    #[serde(default)]
    pub lossy_restore: BTreeMap<String, f32>,
}

impl SdnSpec {
    /// Reads sdn.json from a model folder (or the file itself) and checks it is one we understand.
    pub fn load(path: &Path) -> Result<(Self, PathBuf)> {
        let json = if path.is_dir() { path.join("sdn.json") } else { path.to_path_buf() };
        ensure!(json.is_file(), "no SDN model at {} (expected a folder holding sdn.json, or the sdn.json file)", path.display());
        let dir = json.parent().map(Path::to_path_buf).unwrap_or_default();
        let text = std::fs::read_to_string(&json).with_context(|| format!("cannot read model description {}", json.display()))?;
        let spec: SdnSpec = serde_json::from_str(&text).with_context(|| format!("{} is not a valid sdn.json", json.display()))?;
        ensure!(spec.format == "faceveil-sdn", "{}: format '{}' is not faceveil-sdn", json.display(), spec.format);
        ensure!(spec.version == 1, "{}: sdn.json version {} is not supported (expected 1)", json.display(), spec.version);
        ensure!(spec.normalization == "rgb_minus1_1", "unsupported normalization '{}'", spec.normalization);
        ensure!(spec.input_size >= 16 && spec.key_bits >= 64, "implausible input size or key length in sdn.json");
        ensure!(spec.variants.contains_key(&spec.default_variant), "default variant '{}' is not listed", spec.default_variant);
        ensure!(
            spec.inputs.landmarks.is_none() || spec.mean_landmarks.is_some(),
            "{}: a landmarks input needs mean_landmarks for faces without any",
            json.display()
        );
        Ok((spec, dir))
    }

    /// The attribute vector for `name=value` pairs; names are checked against the model's.
    pub fn attribute_vector(&self, pairs: &[(String, f32)]) -> Result<Vec<f32>> {
        let mut v = vec![0.0; self.attributes.len()];
        let [lo, hi] = self.attribute_range;
        for (name, value) in pairs {
            let Some(i) = self.attributes.iter().position(|a| a == name) else {
                bail!("unknown attribute '{name}' (this model has: {})", self.attributes.join(", "));
            };
            ensure!((lo..=hi).contains(value), "attribute {name}={value} outside {lo}..{hi}");
            v[i] = *value;
        }
        Ok(v)
    }
}

/// Parses `smiling=1,male=-0.5` into pairs (names are checked later against the model).
pub fn parse_attributes(text: &str) -> Result<Vec<(String, f32)>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, value) = item.split_once('=').with_context(|| format!("attribute '{item}' is not name=value"))?;
            let value: f32 = value.trim().parse().with_context(|| format!("attribute '{item}': not a number"))?;
            Ok((name.trim().to_string(), value))
        })
        .collect()
}

fn sha256_hex(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// One direction of one variant of the SDN, ready to run.
pub struct SdnModel {
    pub spec: SdnSpec,
    pub variant: String,
    /// SHA-256 of the variant's anonymize graph: the identity a stream header records.
    pub model_hash: String,
    /// Shared with every other user of the same graph in the process (other cameras).
    session: SharedSession,
    direction: Direction,
    /// Whether this restore's input went through a lossy codec (see [`Self::set_lossy_input`]).
    lossy: bool,
    /// The restore inputs of the earlier model whose stream this restores ([`Self::restore_stream_of`]).
    earlier: BTreeMap<String, f32>,
}

/// How far apart a lossy input's chroma samples are, in its pixels: 2, as 4:2:0 has them (H.264
/// as faceveil and most cameras write it, JPEG as most encoders write it).
const LOSSY_CHROMA_STEP: f32 = 2.0;

impl SdnModel {
    pub fn open(path: &Path, variant: Option<&str>, direction: Direction, runtime: &RuntimeOptions) -> Result<Self> {
        let (spec, dir) = SdnSpec::load(path)?;
        let variant = variant.unwrap_or(&spec.default_variant).to_string();
        let Some(files) = spec.variants.get(&variant) else {
            bail!("model has no variant '{variant}' (has: {})", spec.variants.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        let file = match direction {
            Direction::Anonymize => &files.anonymize,
            Direction::Restore => &files.restore,
        };
        // The anonymize graph's hash is the model's identity in stream headers; it is read once.
        let model_hash = sha256_hex(&dir.join(&files.anonymize))?;
        let check = |name: &String, actual: &str| -> Result<()> {
            if let Some(expected) = spec.sha256.get(name) {
                ensure!(
                    actual == expected,
                    "{} does not match sdn.json (sha256 {actual}, expected {expected}): corrupt or wrong model",
                    dir.join(name).display()
                );
            }
            Ok(())
        };
        check(&files.anonymize, &model_hash)?;
        if file != &files.anonymize {
            check(file, &sha256_hex(&dir.join(file))?)?;
        }
        let shared = runtime::shared(&dir.join(file), runtime)?;
        let session = shared.lock();
        // An optional input (landmarks) is an initializer the graph lets a caller override;
        // ONNX Runtime lists those apart from the inputs.
        let overridable: Vec<String> = session.overridable_initializers().iter().map(|i| i.name().to_string()).collect();
        let restore_inputs = spec
            .lossy_restore
            .keys()
            .chain(&spec.inputs.chroma_pitch)
            .chain(spec.earlier_maps.iter().flat_map(|m| m.restore_inputs.keys()))
            .filter(|_| direction == Direction::Restore);
        for name in [&spec.inputs.image, &spec.inputs.key, &spec.inputs.attributes]
            .into_iter()
            .chain(&spec.inputs.landmarks)
            .chain(&spec.inputs.inside)
            .chain(restore_inputs)
        {
            ensure!(
                session.inputs().iter().any(|i| i.name() == name.as_str()) || overridable.contains(name),
                "{} has no input '{name}' that sdn.json promises",
                dir.join(file).display()
            );
        }
        ensure!(
            session.outputs().iter().any(|o| o.name() == spec.output.as_str()),
            "{} has no output '{}'",
            dir.join(file).display(),
            spec.output
        );
        drop(session);
        // A restore takes its input as lossy-coded until told otherwise, as nearly every video is.
        Ok(Self {
            spec,
            variant,
            model_hash,
            session: shared,
            direction,
            lossy: direction == Direction::Restore,
            earlier: BTreeMap::new(),
        })
    }

    /// Whether this model restores the streams of the anonymize graph with SHA-256 `graph`: its
    /// own, an earlier graph of the same map, or a graph of one of its [`SdnSpec::earlier_maps`].
    pub fn restores_streams_of(&self, graph: &str) -> bool {
        graph == self.model_hash
            || self.spec.same_map_as.iter().any(|g| g == graph)
            || self.spec.earlier_maps.iter().any(|m| m.graphs.iter().any(|g| g == graph))
    }

    /// Restores the stream of the anonymize graph with SHA-256 `graph` from here on: with the
    /// restore inputs of the earlier model that made it, if one did.
    pub fn restore_stream_of(&mut self, graph: &str) {
        self.earlier = (self.spec.earlier_maps.iter())
            .find(|m| m.graphs.iter().any(|g| g == graph))
            .map(|m| m.restore_inputs.clone())
            .unwrap_or_default();
    }

    /// Whether the crops a restore reads went through a lossy codec (the default: videos, JPEG),
    /// so that it restores with the model's `lossy_restore` inputs and each face's chroma pitch,
    /// or not (PNG), so that it restores exactly. No effect on an anonymize model or on a model
    /// without such inputs.
    pub fn set_lossy_input(&mut self, lossy: bool) {
        self.lossy = lossy && self.direction == Direction::Restore;
    }

    /// How many users in the process hold this model's session.
    #[cfg(test)]
    pub(crate) fn session_users(&self) -> usize {
        self.session.users()
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn input_size(&self) -> usize {
        self.spec.input_size
    }

    /// The share of the detail finer than the model's grid a surrogate keeps (`detail_alpha`).
    pub fn detail_kept(&self) -> f32 {
        self.spec.variants[&self.variant].detail_alpha.unwrap_or(0.0)
    }

    /// Whether the model fits a face cut by the frame's edge to its part inside (it takes
    /// [`TensorNames::inside`]): such faces then go through [`Self::run`] one at a time.
    pub fn fits_cut_faces(&self) -> bool {
        self.spec.inputs.inside.is_some()
    }

    /// The landmarks of a face without any, where the model takes landmarks at all.
    pub fn landmark_mean(&self) -> Option<[f32; LANDMARK_VALUES]> {
        self.spec.inputs.landmarks.as_ref().and(self.spec.mean_landmarks)
    }

    /// Runs a batch of crops ([N, 3, S, S], RGB in -1..1) through the model, each face with its
    /// own row of `keys` ([N, key_bits]), the same attributes and, for a model that takes them,
    /// its own `landmarks` ([N, 10]). `sides`: each face's square side in the frame (pixels),
    /// which tells a restore from a lossy input how much of the face's chroma the codec kept.
    /// `inside`: for a model that [`Self::fits_cut_faces`], the grid samples of a batch of one
    /// face that lie in the frame ([1, 1, S, S]). Returns the N crops in the same layout.
    pub fn run(
        &mut self,
        crops: ArrayView4<f32>,
        keys: ArrayView2<f32>,
        attributes: &[f32],
        landmarks: Option<ArrayView2<f32>>,
        sides: &[f32],
        inside: Option<ArrayView4<f32>>,
    ) -> Result<Array4<f32>> {
        let s = self.spec.input_size;
        let n = crops.shape()[0];
        ensure!(
            crops.shape() == [n, 3, s, s],
            "a batch of crops of shape {:?} (the model takes [N, 3, {s}, {s}])",
            crops.shape()
        );
        let bits = self.spec.key_bits;
        ensure!(keys.shape() == [n, bits], "key rows of shape {:?} for {n} faces of {bits} bits", keys.shape());
        ensure!(attributes.len() == self.spec.attributes.len(), "attribute vector has the wrong length");
        ensure!(sides.len() == n, "{} square sides for {n} faces", sides.len());
        if n == 0 {
            return Ok(Array4::zeros((0, 3, s, s)));
        }
        let attrs: Zeroizing<Vec<f32>> = Zeroizing::new(attributes.iter().copied().cycle().take(n * attributes.len()).collect());
        let names = &self.spec.inputs;
        let mut inputs = ort::inputs![
            names.image.as_str() => TensorRef::from_array_view(crops)?,
            names.key.as_str() => TensorRef::from_array_view(keys)?,
            names.attributes.as_str() => TensorRef::from_array_view(([n, attributes.len()], attrs.as_slice()))?,
        ];
        if let Some(inside) = inside {
            let name = names.inside.as_ref().context("this model takes no grid of samples inside the frame")?;
            ensure!(n == 1 && inside.shape() == [1, 1, s, s], "inside of shape {:?} for {n} faces", inside.shape());
            inputs.push((name.as_str().into(), TensorRef::from_array_view(inside)?.into()));
        }
        if let Some(name) = &names.landmarks {
            let landmarks = landmarks.context("this model takes landmarks")?;
            ensure!(landmarks.shape() == [n, LANDMARK_VALUES], "landmarks of shape {:?} for {n} faces", landmarks.shape());
            inputs.push((name.as_str().into(), TensorRef::from_array_view(landmarks)?.into()));
        }
        let lossy = self.spec.lossy_restore.iter().filter(|_| self.lossy);
        let earlier = self.earlier.iter().filter(|_| self.direction == Direction::Restore);
        let scalars: Vec<(&String, ndarray::Array0<f32>)> =
            lossy.chain(earlier).map(|(name, &value)| (name, ndarray::arr0(value))).collect();
        for (name, value) in &scalars {
            inputs.push((name.as_str().into(), TensorRef::from_array_view(value.view())?.into()));
        }
        let pitch = names
            .chroma_pitch
            .as_ref()
            .filter(|_| self.lossy)
            .map(|name| (name, Array2::from_shape_fn((n, 1), |(i, _)| LOSSY_CHROMA_STEP * s as f32 / sides[i].max(1.0))));
        if let Some((name, pitch)) = &pitch {
            inputs.push((name.as_str().into(), TensorRef::from_array_view(pitch.view())?.into()));
        }
        let mut session = self.session.lock();
        let outputs = session.run(inputs)?;
        let out = outputs[self.spec.output.as_str()].try_extract_array::<f32>()?;
        let shape = out.shape().to_vec();
        out.into_dimensionality::<Ix4>()
            .ok()
            .filter(|o| o.dim() == (n, 3, s, s))
            .map(|o| o.to_owned())
            .with_context(|| format!("model returned shape {shape:?} for {n} crops"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_strings_parse() {
        let pairs = parse_attributes(" smiling=1.5, male=-1 ").unwrap();
        assert_eq!(pairs, vec![("smiling".into(), 1.5), ("male".into(), -1.0)]);
        assert!(parse_attributes("smiling").is_err());
        assert!(parse_attributes("smiling=lots").is_err());
        assert!(parse_attributes("").unwrap().is_empty());
    }
}
