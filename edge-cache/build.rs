//! Compiles `locales/*.ftl` in and lists the keys the code asks for with
//! `tr!` (see `catalog::i18n::embed`).

#[path = "../catalog/src/i18n/embed.rs"]
mod embed;

fn main() {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    if let Err(err) = embed::generate(manifest_dir.as_ref(), out_dir.as_ref()) {
        panic!("{err}");
    }
}
