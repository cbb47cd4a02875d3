//! Where bytes come from. Only source modules do I/O; they hand decode whole lines or whole
//! documents and never look inside a record.

pub mod file;
