//! From a password to the key vector the model is conditioned on.
//!
//! password --Argon2id, per-stream random salt--> 256-bit secret --SHA-256 counter mode--> K signs.
//! Nothing that could verify a password is stored unless the output's faces are also sealed to
//! the password (`--seal-password`): the secret then wraps the sealed faces' content key too
//! ([`SecretKey::password_wrap_key`]), and a wrong password is told apart. Otherwise a wrong
//! password simply gives another key.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use anyhow::{Result, anyhow, ensure};
use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub const SALT_LEN: usize = 16;

/// Argon2id cost parameters, recorded in every stream header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for KdfParams {
    /// 64 MiB and 3 passes: the floor the project set for a key that guards faces.
    fn default() -> Self {
        Self { m: 64 * 1024, t: 3, p: 1 }
    }
}

impl KdfParams {
    /// Rejects parameters below the project's floor, so a tampered header cannot weaken a key.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.m >= 64 * 1024, "Argon2id memory {} KiB is below the 64 MiB minimum", self.m);
        ensure!(self.t >= 3, "Argon2id passes {} below the minimum of 3", self.t);
        ensure!((1..=16).contains(&self.p), "Argon2id lanes {} outside 1..16", self.p);
        ensure!(self.m <= 4 * 1024 * 1024, "Argon2id memory {} KiB is implausibly large", self.m);
        Ok(())
    }
}

/// A fresh random salt for one output.
pub fn random_salt() -> [u8; SALT_LEN] {
    rand::random()
}

/// The 256-bit secret behind one stream's keys; wiped when dropped (each copy).
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// Runs Argon2id. An empty password is refused rather than silently accepted.
    pub fn derive(password: &[u8], salt: &[u8; SALT_LEN], params: &KdfParams) -> Result<Self> {
        ensure!(!password.is_empty(), "a password is required");
        params.validate()?;
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(params.m, params.t, params.p, Some(32)).map_err(|e| anyhow!("Argon2id parameters: {e}"))?,
        );
        let mut out = Zeroizing::new([0u8; 32]);
        argon.hash_password_into(password, salt, out.as_mut()).map_err(|e| anyhow!("Argon2id failed: {e}"))?;
        Ok(Self(out))
    }

    /// A random secret, kept by no one: the key of an output whose faces only their sealed
    /// copies give back ([`crate::pipeline::Anonymizer::keyed_at_random`]).
    pub fn random() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    /// Expands the secret into `bits` values of +1 or -1, the model's key input: one vector for
    /// every face of a stream ([`Keying::Stream`]).
    pub fn key_vector(&self, bits: usize) -> Zeroizing<Vec<f32>> {
        self.expand(b"faceveil/key-vector/v1", None, bits)
    }

    /// The key vector of one track ([`Keying::Track`]): SHA-256 of the secret and the track id,
    /// so that a key fitted on one face of a stream says nothing of another track's.
    pub fn key_vector_for_track(&self, track: u64, bits: usize) -> Zeroizing<Vec<f32>> {
        self.expand(b"faceveil/key-vector/track/v1", Some(track), bits)
    }

    /// The key a password-sealed output's content key is wrapped under: HKDF-SHA256 of the
    /// secret in a domain of its own, so that it and the key vectors say nothing of each other
    /// (a key vector fitted to a known face gives no way to it).
    pub fn password_wrap_key(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.0.as_ref())
            .expand(b"faceveil/sealed/password-wrap/v1", out.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    fn expand(&self, domain: &[u8], track: Option<u64>, bits: usize) -> Zeroizing<Vec<f32>> {
        let mut out = Zeroizing::new(Vec::with_capacity(bits));
        let mut counter = 0u32;
        while out.len() < bits {
            let mut h = Sha256::new();
            h.update(domain);
            h.update(&self.0[..]);
            if let Some(track) = track {
                h.update(track.to_be_bytes());
            }
            h.update(counter.to_be_bytes());
            let block: Zeroizing<[u8; 32]> = Zeroizing::new(h.finalize().into());
            for byte in block.iter() {
                for bit in 0..8 {
                    if out.len() < bits {
                        out.push(if byte >> bit & 1 == 1 { 1.0 } else { -1.0 });
                    }
                }
            }
            counter += 1;
        }
        out
    }
}

/// One password and the secrets it gave, by salt and cost, for a run that opens many outputs
/// with it: the photos of a folder anonymized in one run share their salt, and their restore
/// then runs Argon2id once, not once a photo. The password and the secrets are wiped when
/// dropped.
pub struct PasswordKeys {
    password: Zeroizing<Vec<u8>>,
    derived: Mutex<HashMap<([u8; SALT_LEN], KdfParams), SecretKey>>,
}

impl PasswordKeys {
    pub fn new(password: &[u8]) -> Self {
        Self { password: Zeroizing::new(password.to_vec()), derived: Mutex::default() }
    }

    /// Whether the password is empty: the sdn mode refuses it as none.
    pub fn is_empty(&self) -> bool {
        self.password.is_empty()
    }

    /// The secret of `salt` and `params`: derived the first time, remembered after. A
    /// derivation that fails (parameters under the floor) is not remembered.
    pub fn derive(&self, salt: &[u8; SALT_LEN], params: &KdfParams) -> Result<SecretKey> {
        let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(secret) = derived.get(&(*salt, *params)) {
            return Ok(secret.clone());
        }
        let secret = SecretKey::derive(&self.password, salt, params)?;
        derived.insert((*salt, *params), secret.clone());
        Ok(secret)
    }
}

/// One output's key, derived ahead of its stream: a fresh random salt and Argon2id on a thread of
/// its own, begun as soon as the password is known. Its deliberate cost (about 0.15 s) then
/// overlaps what the front end does meanwhile (a file's decoder takes as long to start) instead
/// of coming after it, before the first frame. The salt is used by one output only.
pub struct EarlyKey {
    salt: [u8; SALT_LEN],
    kdf: KdfParams,
    derivation: Derivation,
}

enum Derivation {
    Running(std::thread::JoinHandle<Result<SecretKey>>),
    /// Where no thread could be started, derived in place.
    Done(Result<SecretKey>),
}

impl EarlyKey {
    pub fn begin(password: Zeroizing<Vec<u8>>, kdf: KdfParams) -> Self {
        let salt = random_salt();
        let copy = password.clone();
        let derive = move || SecretKey::derive(&copy, &salt, &kdf);
        let derivation = match std::thread::Builder::new().name("faceveil-kdf".into()).spawn(derive) {
            Ok(thread) => Derivation::Running(thread),
            Err(_) => Derivation::Done(SecretKey::derive(&password, &salt, &kdf)),
        };
        Self { salt, kdf, derivation }
    }

    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    pub fn kdf(&self) -> &KdfParams {
        &self.kdf
    }

    /// Waits for the derivation to end.
    pub fn finish(self) -> Result<SecretKey> {
        match self.derivation {
            Derivation::Running(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Derivation::Done(result) => result,
        }
    }
}

/// Whether every face of a stream shares one key vector or each track has its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keying {
    /// One vector for the stream: a restore needs no record of the faces (it can find them
    /// again in the pixels), but a key fitted on one known face opens every other face.
    #[default]
    Stream,
    /// A vector per track: a restore needs the stream's records (SEI or sidecar) for the
    /// track ids.
    Track,
}

impl Keying {
    pub fn is_stream(&self) -> bool {
        *self == Keying::Stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cheap parameters keep unit tests fast; validate() is exercised separately.
    fn derive_fast(password: &[u8], salt: &[u8; SALT_LEN]) -> SecretKey {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, Some(32)).unwrap());
        let mut out = Zeroizing::new([0u8; 32]);
        argon.hash_password_into(password, salt, out.as_mut()).unwrap();
        SecretKey(out)
    }

    #[test]
    fn same_password_and_salt_give_the_same_key_and_others_differ() {
        let salt = [7u8; SALT_LEN];
        let a = derive_fast(b"correct horse", &salt).key_vector(128);
        let b = derive_fast(b"correct horse", &salt).key_vector(128);
        let c = derive_fast(b"correct horsf", &salt).key_vector(128);
        let d = derive_fast(b"correct horse", &[8u8; SALT_LEN]).key_vector(128);
        assert_eq!(*a, *b);
        let flips = |x: &[f32], y: &[f32]| x.iter().zip(y).filter(|(p, q)| p != q).count();
        assert!(flips(&a, &c) > 32, "a one-letter change flipped only {} bits", flips(&a, &c));
        assert!(flips(&a, &d) > 32);
        assert!(a.iter().all(|v| *v == 1.0 || *v == -1.0));
    }

    #[test]
    fn each_track_has_its_own_key_and_keeps_it() {
        let secret = derive_fast(b"correct horse", &[7u8; SALT_LEN]);
        let stream = secret.key_vector(128);
        let (t1, t2) = (secret.key_vector_for_track(1, 128), secret.key_vector_for_track(2, 128));
        assert_eq!(*t1, *secret.key_vector_for_track(1, 128));
        let flips = |x: &[f32], y: &[f32]| x.iter().zip(y).filter(|(p, q)| p != q).count();
        for (a, b) in [(&t1, &t2), (&t1, &stream), (&t2, &stream)] {
            assert!((32..=96).contains(&flips(a, b)), "{} of 128 values differ", flips(a, b));
        }
    }

    #[test]
    fn weak_parameters_and_empty_passwords_are_refused() {
        assert!(KdfParams { m: 1024, t: 3, p: 1 }.validate().is_err());
        assert!(KdfParams { m: 65536, t: 1, p: 1 }.validate().is_err());
        assert!(KdfParams::default().validate().is_ok());
        assert!(SecretKey::derive(b"", &[0; SALT_LEN], &KdfParams::default()).is_err());
    }

    #[test]
    fn a_runs_password_keys_are_the_passwords_own_for_each_salt_and_keep_no_refused_one() {
        let (keys, params) = (PasswordKeys::new(b"alpha"), KdfParams::default());
        let (a, b) = ([1; SALT_LEN], [2; SALT_LEN]);
        let first = keys.derive(&a, &params).unwrap();
        assert_eq!(first.0, SecretKey::derive(b"alpha", &a, &params).unwrap().0, "not the password's secret");
        assert_eq!(keys.derive(&a, &params).unwrap().0, first.0);
        assert_ne!(keys.derive(&b, &params).unwrap().0, first.0, "two salts gave one secret");
        assert!(keys.derive(&a, &KdfParams { t: 1, ..params }).is_err(), "a weakened header was derived");
        assert_eq!(keys.derived.lock().unwrap().len(), 2, "one secret a salt, and nothing refused kept");
    }
}
