//! Symbol names as crash shows them: gcc's and LLVM's clones under their function's name, and
//! Rust-for-Linux symbols (v0-mangled, `_R...`) demangled without the crate hashes, as crash 9
//! shows them in `sym`, `bt` and `dis`.

use std::borrow::Cow;

/// What crash's `strip_symbol_end()` cuts a name at when it loads the symbols, in its order
/// (`do_execveat_common.isra.0` is `do_execveat_common`, `NF_HOOK.constprop.0.isra.0` is
/// `NF_HOOK.constprop.0`): every command then shows and finds them so.
const CRASH_STRIPPED_SUFFIXES: [&str; 3] = [".isra.", ".part.", ".llvm."];

/// `name` as crash's symbol table holds it.
pub fn crash_name(name: &str) -> &str {
    CRASH_STRIPPED_SUFFIXES
        .iter()
        .find_map(|suffix| name.find(suffix).and_then(|at| name.get(..at)))
        .unwrap_or(name)
}

/// `name` as crash prints it: clones cut at crash's suffixes; Rust v0 (`_R`) or legacy
/// (`_ZN...E`) mangled names demangled.
pub fn display_symbol(name: &str) -> Cow<'_, str> {
    let name = crash_name(name);
    if !(name.starts_with("_R") || name.starts_with("_ZN")) {
        return Cow::Borrowed(name);
    }
    match rustc_demangle::try_demangle(name) {
        Ok(demangled) => Cow::Owned(format!("{demangled:#}")),
        Err(_) => Cow::Borrowed(name),
    }
}

/// `text` with every `<name>` or `<name+off>` whose name is Rust-mangled demangled (the
/// branch targets of `dis`).
pub fn demangle_in_text(text: &str) -> Cow<'_, str> {
    if !text.contains("<_R") && !text.contains("<_ZN") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let (before, after) = rest.split_at(open + 1);
        out.push_str(before);
        let end = after.find(['+', '>']).unwrap_or(after.len());
        let (name, tail) = after.split_at(end);
        out.push_str(&display_symbol(name));
        rest = tail;
    }
    out.push_str(rest);
    Cow::Owned(out)
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
        assert_eq!(
            display_symbol("do_execveat_common.isra.0"),
            "do_execveat_common"
        );
        assert_eq!(
            crash_name("NF_HOOK.constprop.0.isra.0"),
            "NF_HOOK.constprop.0"
        );
        assert_eq!(crash_name("foo.part.0.isra.0"), "foo.part.0");
        assert_eq!(crash_name("bar.llvm.123456"), "bar");
        assert_eq!(
            crash_name("do_execveat_common.isra.0.cold"),
            "do_execveat_common"
        );
        assert_eq!(display_symbol("_Rubbish"), "_Rubbish");
        assert_eq!(
            demangle_in_text(
                "call   0xffffffffc0001234 <_RNvNtNtNtNtCs92dm3009vxr_4rand4rngs7adapter9reseeding4fork23FORK_HANDLER_REGISTERED+16>"
            ),
            "call   0xffffffffc0001234 <rand::rngs::adapter::reseeding::fork::FORK_HANDLER_REGISTERED+16>"
        );
        assert_eq!(
            demangle_in_text("jmp    0x10 <schedule+5>"),
            "jmp    0x10 <schedule+5>"
        );
        // C++-looking names that are not Rust stay as they are.
        assert_eq!(display_symbol("_ZN3foo3barEv"), "_ZN3foo3barEv");
    }
}
