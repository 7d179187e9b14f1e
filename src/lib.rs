//! Gatehouse records everything a site's turnstiles and cameras do and shows managers what happened.
pub mod domain;
