//! End-to-end tests of the `shanlu` binary, one module per topic.

mod bad_input;
mod browser;
mod classroom;
mod classroom_house;
mod connections;
mod demo;
mod downloader;
mod edge_names;
mod hardening_classroom;
mod hardening_publish;
mod integrity;
mod lesson_fonts;
mod limits;
mod links;
mod origin_gc;
mod pages;
mod pipelined;
mod pipes;
mod publish;
mod readthrough;
mod roundtrips;
mod schedule;
mod scrub;
mod sync;
mod sync_refusals;
mod webdriver_selftest;
