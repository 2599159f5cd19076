//! End-to-end tests of the `shanlu` binary, one module per topic.

mod bad_input;
mod browser;
mod classroom;
mod demo;
mod hardening_publish;
mod links;
mod pages;
mod publish;
mod readthrough;
mod schedule;
mod sync;
mod webdriver_selftest;
