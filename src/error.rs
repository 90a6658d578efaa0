//! The failures a caller must tell apart (to prompt for a password, to say which model a stream
//! needs, to refuse a damaged header). Everything else is an `anyhow` error with its context;
//! these travel inside it and are found again with `downcast_ref::<faceveil::Error>()`.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the sdn mode needs a password (FACEVEIL_PASSWORD, --password-file or the password property), unless its faces are sealed to recipients alone"
    )]
    MissingPassword,
    /// The stream was anonymized with another model than the one loaded for the restore.
    #[error("this output was made with model {made_with}, not the loaded {loaded}")]
    ModelMismatch { made_with: String, loaded: String },
    /// A stream header that cannot be read, is of another format or version, or was altered.
    #[error("{0}")]
    BadHeader(String),
    /// A frame of a stream keyed per track came without the record of its faces (its SEI lost,
    /// no sidecar): the track ids its keys hang on are not in the pixels. Nothing was written to
    /// the frame; it can pass as it is, anonymized.
    #[error(
        "this stream keys each track separately, and this frame has no record of its faces (no SEI, no sidecar): its faces cannot be restored from the pixels alone"
    )]
    UnrecordedFrame,
}
