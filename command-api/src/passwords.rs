//! Password hashing with argon2id (the crate's default parameters, OWASP's recommendation).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use domain::PasswordVerifier;

/// The one real password verifier, handed to the `User` aggregate as its service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Argon2Passwords;

impl Argon2Passwords {
    /// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut OsRng);
        Ok(Argon2::default()
            .hash_password(password.as_bytes(), &salt)?
            .to_string())
    }
}

impl PasswordVerifier for Argon2Passwords {
    fn verify(&self, password: &str, password_hash: &str) -> bool {
        let check = || {
            PasswordHash::new(password_hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_password_it_hashed() {
        let passwords = Argon2Passwords;
        let hash = passwords.hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords.verify("correct horse", &hash));
        assert!(!passwords.verify("wrong horse", &hash));
        assert!(!passwords.verify("correct horse", "not a phc string"));
    }
}
