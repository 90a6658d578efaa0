//! What the user proves or holds, read from files, the environment or a prompt, never from
//! argv: the password (`password`), logins to cameras and of viewers (`login`, `access`), and
//! who faces are sealed to, signed by and opened with (`sealing`).

pub mod access;
pub mod login;
pub mod password;
pub mod sealing;
