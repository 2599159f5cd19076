//! End-to-end tests of the `shanlu` binary, one module per topic.

mod bad_input;
mod browser;
mod classroom;
mod connections;
mod demo;
mod hardening_classroom;
mod hardening_publish;
mod integrity;
mod lesson_fonts;
mod limits;
mod links;
mod pages;
mod pipes;
mod publish;
mod readthrough;
mod schedule;
mod sync;
mod webdriver_selftest;
