//! signin-radar: finds legacy (basic) authentication in Entra ID sign-in logs.
//!
//! Data flows source -> decode -> classify -> dedup -> window -> report; see ARCHITECTURE.md.

pub mod decode;
pub mod model;
