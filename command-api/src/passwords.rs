//! Password hashing with argon2id (the crate's default parameters, OWASP's recommendation).
//!
//! Each hash needs 19 MiB of working memory. Allocated per hash, a steady trickle of sign-ups
//! and sign-ins churned hundreds of megabytes a second through the allocator, which kept much
//! of it (the soak's memory swung by 150 MiB), and a burst of sign-ins could run as many
//! hashes at once as it had requests. So the process keeps one working memory per core, made
//! on first use and reused: at most that many hashes run at once (the others wait their turn)
//! and their memory stays the same however many come.

use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use domain::PasswordVerifier;

/// The one real password verifier, handed to the `User` aggregate as its service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Passwords;

impl Argon2Passwords {
    /// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::default();
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let hash = output(&argon2, password, salt_bytes, Params::DEFAULT_OUTPUT_LEN)?;
        Ok(PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: (&params).try_into()?,
            salt: Some(salt.as_salt()),
            hash: Some(hash),
        }
        .to_string())
    }
}

/// Whether `password` hashes to `password_hash` under the PHC string's own algorithm, version,
/// parameters and salt; `None` when the string is not a usable argon2 hash.
fn matches(password: &str, password_hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(password_hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .ok()?;
    let params = Params::try_from(&parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = parsed.salt?.decode_b64(&mut salt_bytes).ok()?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = output(&argon2, password, salt_bytes, expected.len()).ok()?;
    // `Output`'s equality takes the same time wherever the outputs differ.
    Some(computed == expected)
}

/// `password`'s argon2 output of `len` bytes, computed in one of the process's working memories.
fn output(
    argon2: &Argon2,
    password: &str,
    salt: &[u8],
    len: usize,
) -> Result<Output, argon2::password_hash::Error> {
    let blocks = argon2.params().block_count();
    Output::init_with(len, |out| {
        working_memory().with(blocks, |memory| {
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, memory)
        })?;
        Ok(())
    })
}

impl PasswordVerifier for Argon2Passwords {
    fn verify(&self, password: &str, password_hash: &str) -> bool {
        let check = || matches(password, password_hash).unwrap_or(false);
        // The aggregate calls this inside async code; argon2 takes tens of milliseconds, so
        // tell a multi-threaded runtime to move other tasks off this thread meanwhile.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(check)
            }
            _ => check(),
        }
    }
}

/// The process's argon2 working memories: one per core, each taken by one hash at a time.
struct WorkingMemory {
    pool: Mutex<Pool>,
    returned: Condvar,
}

struct Pool {
    free: Vec<Vec<Block>>,
    /// Memories not made yet: a hash makes one when none is free and this is above zero.
    unmade: usize,
}

fn working_memory() -> &'static WorkingMemory {
    static MEMORY: OnceLock<WorkingMemory> = OnceLock::new();
    MEMORY.get_or_init(|| WorkingMemory {
        pool: Mutex::new(Pool {
            free: Vec::new(),
            unmade: cores(),
        }),
        returned: Condvar::new(),
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl WorkingMemory {
    /// Runs `work` with `blocks` blocks of working memory, waiting for a memory to come free
    /// when every one is in use. A hash whose parameters need more than the memory holds (one
    /// stored under other parameters) grows it, and the memory keeps that size.
    fn with<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut memory = self.take();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        let result = work(&mut memory[..blocks]);
        self.lock().free.push(memory);
        self.returned.notify_one();
        result
    }

    fn take(&self) -> Vec<Block> {
        let mut pool = self.lock();
        loop {
            if let Some(memory) = pool.free.pop() {
                return memory;
            }
            if pool.unmade > 0 {
                pool.unmade -= 1;
                return Vec::new();
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A hash that panicked returned nothing, which leaves the pool itself consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_password_it_hashed() {
        let passwords = Argon2Passwords;
        let hash = passwords.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(passwords.verify("correct horse", &hash));
        assert!(!passwords.verify("wrong horse", &hash));
        assert!(!passwords.verify("correct horse", "not a phc string"));
    }

    /// Hashes stored by the argon2 crate's own `PasswordHasher` (before the pooled memory), and
    /// under other parameters, still verify.
    #[test]
    fn verifies_hashes_made_by_the_argon2_crate() {
        use argon2::password_hash::PasswordHasher;
        let salt = SaltString::generate(&mut OsRng);
        let default = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"correct horse", &salt)
        .unwrap()
        .to_string();
        for hash in [default, bigger] {
            assert!(Argon2Passwords.verify("correct horse", &hash), "{hash}");
            assert!(!Argon2Passwords.verify("wrong horse", &hash), "{hash}");
        }
    }

    #[test]
    fn hashes_at_once_share_one_working_memory_per_core() {
        let hashes: Vec<String> = std::thread::scope(|scope| {
            let running: Vec<_> = (0..8)
                .map(|n| scope.spawn(move || Argon2Passwords.hash(&format!("password {n}"))))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        for (n, hash) in hashes.iter().enumerate() {
            assert!(Argon2Passwords.verify(&format!("password {n}"), hash));
        }
        let pool = working_memory().lock();
        assert!(pool.free.len() + pool.unmade <= cores());
    }
}
