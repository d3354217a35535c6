//! Authentication compatible with the old service: HS256 JWTs with `user_id`, `iat`, `exp`
//! ([`token`]) and bcrypt `$2b$` cost-12 password hashes ([`password`]), hashed on the
//! blocking pool so a burst of logins never stalls the runtime.

pub mod password;
pub mod token;
