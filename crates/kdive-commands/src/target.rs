//! What the memory commands (`sym`, `rd`, `dis`) take as a place: a hex address, a symbol of
//! vmlinux or of a module, or `symbol+offset` (decimal, or hex with `0x`), as crash does;
//! and the modules they look symbols up in.

use kdive_kernel::{Kernel, KernelModules, VirtAddr};

/// The lowest address crash takes a bare hex word for (`add` is a name, not 0xadd).
/// With 5-level paging kernel addresses start at 0xff00000000000000.
const KERNEL_SPACE: u64 = 0xff00_0000_0000_0000;

/// `0x…` in hex, or a bare hex word that is a kernel address.
pub(crate) fn parse_address(word: &str) -> Option<VirtAddr> {
    let value = match word.strip_prefix("0x") {
        Some(digits) => u64::from_str_radix(digits, 16).ok()?,
        None => u64::from_str_radix(word, 16)
            .ok()
            .filter(|v| *v >= KERNEL_SPACE)?,
    };
    Some(VirtAddr(value))
}

/// Where `word` points, and whether it named a symbol; with `text_only`, only code symbols
/// count (a function and a variable may share a name).
pub(crate) fn resolve(
    kernel: &Kernel,
    modules: &KernelModules,
    word: &str,
    text_only: bool,
) -> Option<(VirtAddr, bool)> {
    if let Some(addr) = parse_address(word) {
        return Some((addr, false));
    }
    let (name, offset) = match word.split_once('+') {
        Some((name, off)) => {
            let off = match off.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok()?,
                None => off.parse().ok()?,
            };
            (name, off)
        }
        None => (word, 0),
    };
    let (addr, _) = modules
        .lookup_name(kernel, name)
        .into_iter()
        .find(|(_, hit)| !text_only || matches!(hit.kind, 't' | 'T' | 'W' | 'w'))?;
    Some((VirtAddr(addr.0.checked_add(offset)?), offset == 0))
}

/// The x86_64 address space, for the commands that walk x86_64's page-table levels (`vtop`,
/// `search`); other architectures get `command`'s "not available yet".
pub(crate) fn x86_64_space<'k>(
    kernel: &'k Kernel,
    command: &'static str,
) -> Result<
    &'k kdive_arch::x86_64::KernelAddressSpace<std::sync::Arc<dyn kdive_kernel::PhysMem>>,
    crate::CommandError,
> {
    kernel
        .address_space()
        .as_x86_64()
        .ok_or_else(|| crate::CommandError::Failed {
            command,
            what: format!("not available on {} dumps yet", kernel.platform().name()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_crash_reads_them() {
        assert_eq!(
            parse_address("ffffffffa10114f4"),
            Some(VirtAddr(0xffff_ffff_a101_14f4))
        );
        assert_eq!(parse_address("0x10"), Some(VirtAddr(0x10)));
        assert_eq!(parse_address("add"), None);
        assert_eq!(parse_address("schedule"), None);
        assert_eq!(parse_address("0xzz"), None);
    }
}
