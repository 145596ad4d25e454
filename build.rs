//! Tells the black-box tests whether a PostgreSQL server is configured for them
//! (`IG_TEST_POSTGRES_URL`): without one, the PostgreSQL scenarios are reported as ignored, not as
//! passed. Nothing else of the build depends on it.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=IG_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(ig_test_postgres)");
    if std::env::var("IG_TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=ig_test_postgres");
    }
}
