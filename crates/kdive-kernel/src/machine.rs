//! Machine data as crash's `mach` shows it. x86_64 (x86_64.c
//! `x86_64_display_machine_stats()`): the hypervisor, the memory regions' bases, the task
//! stack size, and each CPU's IRQ stack and IST exception stacks (named from the IDT's
//! handlers, sized from `struct cea_exception_stacks`, as `x86_64_ist_init()` finds them).
//! arm64 (arm64.c `arm64_display_machine_stats()`): the regions' bases from VMCOREINFO and
//! each CPU's IRQ and overflow stacks.

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;

/// `__START_KERNEL_map`.
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// `MODULES_VADDR` (`__START_KERNEL_map` + `KERNEL_IMAGE_SIZE`, 1 GiB with KASLR).
pub const MODULES_VADDR: u64 = 0xffff_ffff_c000_0000;
/// The IST slots of a TSS (`x86_hw_tss.ist[7]`).
pub const IST_SLOTS: usize = 7;
const NAME_LIMIT: usize = 64;

/// crash's `hypervisor_init()`: `pv_info.name` ("bare hardware", "KVM", ...), `None` when
/// it cannot be read (crash's "(undetermined)").
pub fn hypervisor(kernel: &Kernel) -> Option<String> {
    let info = kernel.symbol("pv_info").ok()?;
    let name = kernel.read_field(info, "pv_info", "name").ok()?;
    kernel
        .read_cstr(VirtAddr(name), NAME_LIMIT, "pv_info.name")
        .ok()
}

/// The direct map's, vmalloc's and vmemmap's bases: the memory-KASLR variables where the
/// kernel has them, else the fixed 4-level layout.
pub fn region_bases(kernel: &Kernel) -> (u64, u64, u64) {
    let read = |name: &str, default: u64| kernel.read_symbol_u64(name).unwrap_or(default);
    (
        read("page_offset_base", 0xffff_8880_0000_0000),
        read("vmalloc_base", 0xffff_c900_0000_0000),
        read("vmemmap_base", 0xffff_ea00_0000_0000),
    )
}

/// A task's stack size (THREAD_SIZE): `sizeof(union thread_union)`, else the init stack's
/// extent (`__start_init_stack`, 5.x's `__start_init_task`), else two pages (crash's order).
pub fn thread_size(kernel: &Kernel) -> u64 {
    if let Ok(size) = kernel.struct_size("thread_union") {
        return size;
    }
    for (start, end) in [
        ("__start_init_stack", "__end_init_stack"),
        ("__start_init_task", "__end_init_task"),
    ] {
        if let (Ok(start), Ok(end)) = (kernel.symbol(start), kernel.symbol(end)) {
            if end.0 > start.0 {
                return end.0 - start.0;
            }
        }
    }
    kernel.page_size() * 2
}

/// The IRQ stack size (`sizeof(struct irq_stack.stack)`, 16 KiB where the type is absent)
/// and each CPU's IRQ stack base: `hardirq_stack_ptr` (per CPU, or in 6.2-6.14's
/// `pcpu_hot`) points at the stack's top (or 8 below it, 5.x), less the size.
pub fn irq_stacks(kernel: &Kernel, cpus: u32) -> Result<(u64, Vec<u64>), KernelError> {
    let size = kernel
        .member("irq_stack", "stack")
        .map(|m| m.size)
        .unwrap_or(16384);
    let pointer =
        if kernel.has_symbol("pcpu_hot") && kernel.has_member("pcpu_hot", "hardirq_stack_ptr")? {
            VirtAddr(
                kernel
                    .symbol("pcpu_hot")?
                    .0
                    .wrapping_add(kernel.offset_of("pcpu_hot", "hardirq_stack_ptr")?),
            )
        } else {
            kernel.symbol("hardirq_stack_ptr")?
        };
    let page_mask = kernel.page_size().wrapping_sub(1);
    let mut bases = Vec::new();
    for cpu in 0..cpus {
        let mut top = kernel.read_u64(kernel.per_cpu_ptr(pointer, cpu)?, "hardirq_stack_ptr")?;
        if top & page_mask != 0 {
            top = top.wrapping_add(8);
        }
        bases.push(top.wrapping_sub(size));
    }
    Ok((size, bases))
}

/// arm64's kernel regions as crash's `mach` names them: `PAGE_OFFSET` (the linear map),
/// and from VMCOREINFO (Linux 5.18 on) `MODULES_VADDR`, `VMALLOC_START` and
/// `VMEMMAP_START`..`VMEMMAP_END`; `None` where the dump does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64Regions {
    pub page_offset: u64,
    pub modules: Option<u64>,
    pub vmalloc: Option<u64>,
    pub vmemmap: Option<u64>,
    pub vmemmap_end: Option<u64>,
}

/// The regions of an arm64 kernel; `None` for another architecture's.
pub fn aarch64_regions(kernel: &Kernel) -> Option<Aarch64Regions> {
    let layout = kernel.address_space().as_aarch64()?.layout();
    let number = |key: &str| kernel.dump().vmcoreinfo.as_ref()?.number_bits(key);
    Some(Aarch64Regions {
        page_offset: layout.page_offset(),
        modules: number("MODULES_VADDR"),
        vmalloc: number("VMALLOC_START"),
        vmemmap: number("VMEMMAP_START"),
        vmemmap_end: number("VMEMMAP_END"),
    })
}

/// arm64's IRQ stacks: each CPU's `irq_stack_ptr` (the stack's base, vmalloc'd since 4.14),
/// and their size, THREAD_SIZE (`IRQ_STACK_SIZE`).
pub fn aarch64_irq_stacks(kernel: &Kernel, cpus: u32) -> Result<(u64, Vec<u64>), KernelError> {
    let pointer = kernel.symbol("irq_stack_ptr")?;
    let mut bases = Vec::new();
    for cpu in 0..cpus {
        bases.push(kernel.read_u64(kernel.per_cpu_ptr(pointer, cpu)?, "irq_stack_ptr")?);
    }
    Ok((thread_size(kernel), bases))
}

/// arm64's overflow stacks: the per-CPU array `overflow_stack`, and its size (the
/// symbol's).
pub fn aarch64_overflow_stacks(kernel: &Kernel, cpus: u32) -> Result<(u64, Vec<u64>), KernelError> {
    let symbol = kernel.symbol("overflow_stack")?;
    let size = kernel.symbol_size("overflow_stack")?;
    let mut bases = Vec::new();
    for cpu in 0..cpus {
        bases.push(kernel.per_cpu_ptr(symbol, cpu)?.0);
    }
    Ok((size, bases))
}

/// One IST stack: crash's name for it, its size, and each CPU's base (0: none) and whether
/// its page is in the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionStacks {
    pub name: &'static str,
    pub size: u64,
    pub bases: Vec<(u64, bool)>,
}

/// crash's name for an IST stack from its IDT handler's symbol (later matches win, as in
/// `x86_64_exception_stacks_init()`).
pub fn ist_name(handler: &str) -> Option<&'static str> {
    let mut name = None;
    for (part, label) in [
        ("nmi", "NMI"),
        ("debug", "DEBUG"),
        ("stack", "STACKFAULT"),
        ("double", "DOUBLEFAULT"),
        ("machine", "MCE"),
        ("vmm", "VC"),
    ] {
        if handler.contains(part) {
            name = Some(label);
        }
    }
    name
}

/// The member of `struct cea_exception_stacks` that sizes a named stack.
fn stack_member(name: &str) -> Option<&'static str> {
    Some(match name {
        "DEBUG" => "DB_stack",
        "NMI" => "NMI_stack",
        "DOUBLEFAULT" => "DF_stack",
        "MCE" => "MCE_stack",
        "VC" => "VC_stack",
        _ => return None,
    })
}

/// The IST stacks of `cpus` CPUs, in IST order up to the first slot CPU 0 leaves empty: each
/// CPU's TSS `ist[]` holds the tops, the IDT's gates say which exception uses which slot.
pub fn exception_stacks(kernel: &Kernel, cpus: u32) -> Result<Vec<ExceptionStacks>, KernelError> {
    let names = ist_names(kernel)?;
    let tss = kernel.symbol("cpu_tss_rw")?;
    let ist = kernel.offset_of("tss_struct", "x86_tss.ist")?;
    let mut tops = Vec::new();
    for cpu in 0..cpus {
        let at = VirtAddr(kernel.per_cpu_ptr(tss, cpu)?.0.wrapping_add(ist));
        let bytes = kernel.read_bytes(at, 8 * IST_SLOTS as u64, "tss_struct ist array")?;
        let words: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|w| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(w);
                u64::from_le_bytes(raw)
            })
            .collect();
        tops.push(words);
    }
    let mut out = Vec::new();
    for (slot, name) in names.iter().enumerate() {
        if tops.first().and_then(|t| t.get(slot)).copied().unwrap_or(0) == 0 {
            break;
        }
        let name = name.unwrap_or("(unknown)");
        let size = stack_member(name)
            .and_then(|m| kernel.member("cea_exception_stacks", m).ok())
            .map_or(0, |m| m.size);
        let mut bases = Vec::new();
        for cpu_tops in &tops {
            let top = cpu_tops.get(slot).copied().unwrap_or(0);
            if top == 0 {
                break;
            }
            let base = top.wrapping_sub(size);
            let available = kernel.read_bytes(VirtAddr(base), 1, "IST stack").is_ok();
            bases.push((base, available));
        }
        out.push(ExceptionStacks { name, size, bases });
    }
    Ok(out)
}

/// Which exception uses each IST slot: the 256 gates of `idt_table`, each 16 bytes with
/// its IST index at bits 32-34 and the handler's address split over three fields.
fn ist_names(kernel: &Kernel) -> Result<[Option<&'static str>; IST_SLOTS], KernelError> {
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let mut names = [None; IST_SLOTS];
    for gate in idt_gates(kernel)? {
        let ist = usize::from(gate.ist);
        if ist == 0 {
            continue;
        }
        let handler = gate.handler;
        let symbol = kernel
            .vmlinux()
            .symbol_at(handler.wrapping_sub(kaslr))
            .map(|(s, _)| s.name.to_owned());
        if let Some(name) = symbol.as_deref().and_then(ist_name) {
            names[ist - 1] = Some(name);
        }
    }
    Ok(names)
}

/// One gate of the x86_64 IDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdtGate {
    /// The handler's address, split over the gate's three offset fields.
    pub handler: u64,
    /// The IST slot (1-7; 0: none).
    pub ist: u8,
}

/// The 256 gates of `idt_table` (crash's `x86_64_extract_idt_function()`): each gate
/// (`gate_struct`, 16 bytes) holds the handler's bits 0-15 in its first word's low 16
/// bits, bits 16-31 in that word's bits 48-63, bits 32-63 in the second word's low half.
pub fn idt_gates(kernel: &Kernel) -> Result<Vec<IdtGate>, KernelError> {
    let table = kernel.symbol("idt_table")?;
    let size = kernel.struct_size("gate_struct").unwrap_or(16).max(16);
    let bytes = kernel.read_bytes(table, 256 * size, "idt_table")?;
    let stride = usize::try_from(size).unwrap_or(16);
    Ok(bytes
        .chunks_exact(stride)
        .map(|gate| {
            let word = |i: usize| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&gate[i * 8..i * 8 + 8]);
                u64::from_le_bytes(raw)
            };
            let (low, high) = (word(0), word(1));
            IdtGate {
                handler: ((high << 32) & 0xffff_ffff_0000_0000)
                    | (low & 0xffff)
                    | ((low >> 32) & 0xffff_0000),
                ist: u8::try_from((low >> 32) & 7).unwrap_or(0),
            }
        })
        .collect())
}

/// One entry of the firmware's physical memory map (`e820_table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    /// `E820_TYPE_*`: 1 RAM, 2 reserved, 3 ACPI, 4 NVS, 5 unusable, 12 PRAM, 128
    /// reserved-kern.
    pub kind: u32,
}

/// crash's `x86_64_display_memmap()`: the entries of `*e820_table`, `nr_entries` of them
/// (at most the array's length: a corrupt count stops there, with a warning).
pub fn e820_map(
    kernel: &Kernel,
    warnings: &mut Vec<String>,
) -> Result<Vec<E820Entry>, KernelError> {
    let table = VirtAddr(kernel.read_symbol_u64("e820_table")?);
    let count = u64::from(
        kernel.read_u32(
            VirtAddr(
                table
                    .0
                    .wrapping_add(kernel.offset_of("e820_table", "nr_entries")?),
            ),
            "e820_table nr_entries",
        )?,
    );
    let entries = kernel.member("e820_table", "entries")?;
    let entry_size = kernel.struct_size("e820_entry")?;
    let capacity = entries.size.checked_div(entry_size).unwrap_or(0);
    if count > capacity {
        warnings.push(format!(
            "mach: e820_table nr_entries is {count}; the array holds {capacity}"
        ));
    }
    let count = count.min(capacity);
    let bytes = kernel.read_bytes(
        VirtAddr(table.0.wrapping_add(entries.offset)),
        count * entry_size,
        "e820_table entries",
    )?;
    let (addr, size, kind) = (
        kernel.offset_of("e820_entry", "addr")?,
        kernel.offset_of("e820_entry", "size")?,
        kernel.offset_of("e820_entry", "type")?,
    );
    let field = |entry: &[u8], at: u64, len: usize| -> u64 {
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        let mut raw = [0u8; 8];
        if let Some(b) = entry.get(at..at.saturating_add(len)) {
            raw[..len].copy_from_slice(b);
        }
        u64::from_le_bytes(raw)
    };
    Ok(bytes
        .chunks_exact(usize::try_from(entry_size).unwrap_or(1).max(1))
        .map(|e| E820Entry {
            addr: field(e, addr, 8),
            size: field(e, size, 8),
            kind: u32::try_from(field(e, kind, 4)).unwrap_or(0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ist_names_as_crash() {
        assert_eq!(ist_name("asm_exc_nmi"), Some("NMI"));
        assert_eq!(ist_name("asm_exc_double_fault"), Some("DOUBLEFAULT"));
        assert_eq!(ist_name("asm_exc_machine_check"), Some("MCE"));
        assert_eq!(ist_name("asm_exc_debug"), Some("DEBUG"));
        assert_eq!(ist_name("asm_exc_vmm_communication"), Some("VC"));
        assert_eq!(ist_name("asm_exc_page_fault"), None);
    }
}
