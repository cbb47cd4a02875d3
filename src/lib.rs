//! signin-radar: finds legacy (basic) authentication in Entra ID sign-in logs.
//!
//! Data flows source -> decode -> classify -> dedup -> window -> report; see ARCHITECTURE.md.

pub mod alert;
pub mod classify;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod detect;
pub mod engine;
pub mod export;
pub mod model;
pub mod replay;
pub mod report;
pub mod service;
pub mod source;
pub mod state;
pub mod synth;
pub mod window;
