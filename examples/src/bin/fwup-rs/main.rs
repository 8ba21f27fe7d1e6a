//! `fwup-rs`: a command line that accepts C fwup's flags, built on `nerveshub-fwup`.
fn main() {
    std::process::exit(1);
}
