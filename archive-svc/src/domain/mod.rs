//! The behaviour of archive-svc, free of wire types.

pub mod jobs;
pub mod policy;
