//! Integration tests of fake-upstream over real HTTP, one module per provider plus the
//! failure knobs.

mod bro;
mod consent;
mod faults;
mod helpers;
mod jouwomgeving;
mod pass;
mod passolution;
