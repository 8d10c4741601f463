//! The end-to-end tests load test guests that the library's build script
//! builds; it passes their directory on through `links` metadata.

fn main() {
    if let Ok(dir) = std::env::var("DEP_PODRUN_TEST_GUESTS") {
        println!("cargo:rustc-env=PODRUN_TEST_GUESTS={dir}");
    }
}
