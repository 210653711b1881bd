//! The shared secret: each side proves it knows the secret without sending it. The server sends
//! a fresh random nonce; the client answers with its own nonce and an HMAC-SHA256 over both; the
//! server checks it in constant time and proves itself back the same way, so a client with a
//! secret never talks to a server that does not know it. The labels keep the two proofs apart
//! (a server's proof can never be replayed as a client's).

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;

pub const NONCE_LEN: usize = 32;
pub const TAG_LEN: usize = 32;
const CLIENT_LABEL: &[u8] = b"native-socket-ipc v1 client";
const SERVER_LABEL: &[u8] = b"native-socket-ipc v1 server";

/// The secret as an HMAC key. Its bytes are never printed: `Debug` shows nothing of them.
pub struct Secret(hmac::Key);

impl Secret {
  pub fn new(bytes: &[u8]) -> Secret {
    Secret(hmac::Key::new(hmac::HMAC_SHA256, bytes))
  }

  pub fn client_proof(&self, server_nonce: &[u8], client_nonce: &[u8]) -> Vec<u8> {
    self.tag(CLIENT_LABEL, server_nonce, client_nonce)
  }

  pub fn server_proof(&self, server_nonce: &[u8], client_nonce: &[u8]) -> Vec<u8> {
    self.tag(SERVER_LABEL, server_nonce, client_nonce)
  }

  /// Constant-time check of a client's proof.
  pub fn verify_client(&self, server_nonce: &[u8], client_nonce: &[u8], tag: &[u8]) -> bool {
    self.verify(CLIENT_LABEL, server_nonce, client_nonce, tag)
  }

  /// Constant-time check of the server's proof.
  pub fn verify_server(&self, server_nonce: &[u8], client_nonce: &[u8], tag: &[u8]) -> bool {
    self.verify(SERVER_LABEL, server_nonce, client_nonce, tag)
  }

  fn message(label: &[u8], server_nonce: &[u8], client_nonce: &[u8]) -> Vec<u8> {
    [label, server_nonce, client_nonce].concat()
  }

  fn tag(&self, label: &[u8], server_nonce: &[u8], client_nonce: &[u8]) -> Vec<u8> {
    hmac::sign(&self.0, &Self::message(label, server_nonce, client_nonce))
      .as_ref()
      .to_vec()
  }

  fn verify(&self, label: &[u8], server_nonce: &[u8], client_nonce: &[u8], tag: &[u8]) -> bool {
    hmac::verify(&self.0, &Self::message(label, server_nonce, client_nonce), tag).is_ok()
  }
}

impl fmt::Debug for Secret {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("Secret(<redacted>)")
  }
}

/// A fresh nonce from the OS's CSPRNG.
pub fn nonce() -> [u8; NONCE_LEN] {
  let mut out = [0u8; NONCE_LEN];
  // getrandom(2) does not fail on Linux once the pool is initialised; if it ever did, a
  // zero nonce would make proofs replayable, so refuse to go on rather than weaken them.
  SystemRandom::new()
    .fill(&mut out)
    .expect("the OS random number generator failed");
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_proof_verifies_only_with_the_same_secret_nonces_and_direction() {
    let secret = Secret::new(b"correct horse battery staple");
    let (sn, cn) = (nonce(), nonce());
    let proof = secret.client_proof(&sn, &cn);
    assert!(secret.verify_client(&sn, &cn, &proof));
    assert!(!Secret::new(b"wrong").verify_client(&sn, &cn, &proof));
    assert!(!secret.verify_client(&nonce(), &cn, &proof), "another server nonce");
    assert!(!secret.verify_client(&sn, &nonce(), &proof), "another client nonce");
    assert!(!secret.verify_server(&sn, &cn, &proof), "a client proof is no server proof");
    assert!(!secret.verify_client(&sn, &cn, &proof[..31]), "truncated");
    assert!(secret.verify_server(&sn, &cn, &secret.server_proof(&sn, &cn)));
  }

  #[test]
  fn nonces_differ_and_debug_hides_the_secret() {
    assert_ne!(nonce(), nonce());
    assert_eq!(format!("{:?}", Secret::new(b"hunter2")), "Secret(<redacted>)");
  }
}
