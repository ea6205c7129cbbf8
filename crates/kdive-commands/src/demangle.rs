//! Rust-for-Linux symbols: v0-mangled names (`_R...`) shown demangled, without the crate
//! hashes, as crash 9 shows them in `sym`, `bt` and `dis`.

use std::borrow::Cow;

/// `name` demangled when it is a Rust v0 (`_R`) or legacy (`_ZN...E`) mangled name; else
/// `name` itself.
pub fn display_symbol(name: &str) -> Cow<'_, str> {
    if !(name.starts_with("_R") || name.starts_with("_ZN")) {
        return Cow::Borrowed(name);
    }
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => Cow::Owned(format!("{demangled:#}")),
        Err(_) => Cow::Borrowed(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v0_names_are_demangled() {
        // A real v0 symbol of the rand crate (rustc-demangle's own test vector).
        assert_eq!(
            display_symbol(
                "_RNvNtNtNtNtCs92dm3009vxr_4rand4rngs7adapter9reseeding4fork23FORK_HANDLER_REGISTERED"
            ),
            "rand::rngs::adapter::reseeding::fork::FORK_HANDLER_REGISTERED"
        );
        assert_eq!(display_symbol("schedule"), "schedule");
        assert_eq!(display_symbol("_Rubbish"), "_Rubbish");
        // C++-looking names that are not Rust stay as they are.
        assert_eq!(display_symbol("_ZN3foo3barEv"), "_ZN3foo3barEv");
    }
}
