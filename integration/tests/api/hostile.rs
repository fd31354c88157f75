//! Hostile input over gRPC, generated from the descriptor set.
