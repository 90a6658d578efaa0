//! Faces: finding them (detectors), following them (tracker, and scene cuts that call for a fresh
//! look), where to cut them (geometry, steady squares for still faces, and quarter turns that stand a face
//! lying on its side upright), and putting a changed
//! face back (blend) or changing it one-way (effects).

pub mod blend;
pub mod changes;
pub mod cuts;
pub mod detect;
pub mod effects;
pub mod geometry;
pub mod resample;
pub mod steady;
pub mod track;
pub mod upright;
