//! hieradet (in progress)
