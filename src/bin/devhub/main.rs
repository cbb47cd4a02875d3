//! devhub: a development Event Hubs (being built).
fn main() {}
