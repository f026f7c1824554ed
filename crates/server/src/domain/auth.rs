//! Passwords (argon2id, hashed off the async runtime) and bearer tokens (256 random
//! bits, stored only as a SHA-256 hash).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

use super::{DomainError, DomainResult};

/// A hash of a fixed password, verified against when the user does not exist so that
/// a login for an unknown name costs the same time as one for a known name.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash() -> &'static str {
    DUMMY_HASH.get_or_init(|| hash_blocking("natter-dummy-password").unwrap_or_default())
}

fn hash_blocking(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Threads that hash passwords. Each argon2 hash takes ~19 MiB; a small fixed pool keeps
/// the peak (and what the allocator keeps afterwards) at a few of those however many
/// registrations and logins arrive at once. Callers queue, bounded, and wait their turn.
const HASH_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn hash_pool() -> &'static tokio::sync::mpsc::Sender<Job> {
    static POOL: std::sync::OnceLock<tokio::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = tokio::sync::mpsc::channel::<Job>(1024);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..HASH_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("natter-argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        tx
    })
}

/// Runs `f` on the hashing pool.
async fn on_hash_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> DomainResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    hash_pool()
        .send(Box::new(move || {
            let _ = tx.send(f());
        }))
        .await
        .map_err(|_| DomainError::Internal("password hashing pool is gone".into()))?;
    rx.await
        .map_err(|_| DomainError::Internal("password hashing failed".into()))
}

pub async fn hash_password(password: String) -> DomainResult<String> {
    on_hash_pool(move || hash_blocking(&password))
        .await?
        .map_err(DomainError::Internal)
}

/// Verifies `password` against `hash`, or against a dummy when `hash` is `None` (and
/// then answers false).
pub async fn verify_password(password: String, hash: Option<String>) -> DomainResult<bool> {
    on_hash_pool(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        ok && known
    })
    .await
}

/// A new bearer token: 32 random bytes, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS random source failing is not something to carry on from.
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_round_trip() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(h))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("natter-dummy-password".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
