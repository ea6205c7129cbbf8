//! Interrupt descriptors, as crash's `irq` reads them (kernel.c `get_irq_desc_addr()`,
//! `generic_dump_irq()`, `generic_show_interrupts()`, `generic_get_irq_affinity()`): the
//! `irq_desc` of each IRQ number from the sparse-IRQ maple tree (`sparse_irqs`, 6.5+),
//! the radix tree/xarray (`irq_desc_tree`) or the static `irq_desc[]` array, with its
//! chain of `irqaction`s. Trees and chains are walked bounded and cycle-checked.

use std::collections::BTreeMap;

use kdive_arch::VirtAddr;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::walk::{
    null_terminated_chain, walk_maple, walk_xarray, MapleLayout, Walk, WordReader, XarrayLayout,
};

/// The most IRQ numbers (`nr_irqs` is at most NR_IRQS + 8 * nr_cpu_ids * 8 or so; a corrupt
/// value stops here).
pub const MAX_IRQS: u32 = 1 << 18;
/// crash's IRQ count where the kernel has no `nr_irqs` symbol ("NR_IRQS (at least)").
pub const NR_IRQS_FLOOR: u32 = 224;
/// The most actions shared on one line.
pub const MAX_ACTIONS: usize = 256;
/// Names are read up to this many bytes.
const NAME_LIMIT: usize = 128;

/// The IRQ descriptors of the kernel by number, and how many numbers there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqDescs {
    /// `nr_irqs`: crash lists numbers `0..nr_irqs`.
    pub nr_irqs: u32,
    /// IRQ number to `irq_desc` address.
    pub descs: BTreeMap<u32, u64>,
}

/// Reads `nr_irqs` and finds every descriptor; a tree walk that stops keeps the
/// descriptors found and warns.
pub fn irq_descs(kernel: &Kernel, warnings: &mut Vec<String>) -> Result<IrqDescs, KernelError> {
    // 6.16+ keep `nr_irqs` static (no symbol): crash then lists NR_IRQS' floor, 224; kdive
    // as many, or up to the highest descriptor found if that is more.
    let known = match kernel.symbol("nr_irqs") {
        Ok(addr) => Some(kernel.read_u32(addr, "nr_irqs")?),
        Err(_) => None,
    };
    let nr_irqs = known.unwrap_or(MAX_IRQS);
    if nr_irqs > MAX_IRQS {
        warnings.push(format!(
            "irq: nr_irqs is {nr_irqs}; only the first {MAX_IRQS} are read"
        ));
    }
    let nr_irqs = nr_irqs.min(MAX_IRQS);
    let limit = usize::try_from(nr_irqs).unwrap_or(0).max(1);
    let mut descs = BTreeMap::new();
    if kernel.has_symbol("sparse_irqs") {
        let root = kernel.symbol("sparse_irqs")?;
        let walk = walk_maple(kernel, root.0, false, MapleLayout::read(kernel)?, limit);
        note_stop(&walk, "sparse_irqs", warnings);
        // The maple tree's index is the range's end, not the IRQ: crash reads irq_data.irq.
        for entry in walk.entries {
            match kernel.read_field(VirtAddr(entry.addr), "irq_desc", "irq_data.irq") {
                Ok(irq) => {
                    descs.insert(u32::try_from(irq & 0xffff_ffff).unwrap_or(0), entry.addr);
                }
                Err(err) => warnings.push(format!("irq: irq_desc {:x}: {err}", entry.addr)),
            }
        }
    } else if kernel.has_symbol("irq_desc_tree") {
        let root = kernel.symbol("irq_desc_tree")?;
        let walk = walk_xarray(kernel, root.0, false, XarrayLayout::read(kernel)?, limit);
        note_stop(&walk, "irq_desc_tree", warnings);
        for entry in walk.entries {
            if let Some(irq) = entry.index.and_then(|i| u32::try_from(i).ok()) {
                descs.insert(irq, entry.addr);
            }
        }
    } else {
        let base = kernel.symbol("irq_desc")?;
        let size = kernel.struct_size("irq_desc")?;
        let count = kernel
            .symbol_size("irq_desc")
            .ok()
            .filter(|_| size > 0)
            .map_or(u64::from(nr_irqs), |total| total / size);
        for irq in 0..u32::try_from(count).unwrap_or(0).min(nr_irqs) {
            descs.insert(irq, base.0.wrapping_add(size * u64::from(irq)));
        }
    }
    let nr_irqs = match known {
        Some(_) => nr_irqs,
        None => descs
            .keys()
            .next_back()
            .map_or(0, |irq| irq.saturating_add(1))
            .max(NR_IRQS_FLOOR),
    };
    Ok(IrqDescs { nr_irqs, descs })
}

fn note_stop(walk: &Walk, tree: &str, warnings: &mut Vec<String>) {
    warnings.extend(walk.warnings.iter().map(|w| format!("irq: {tree}: {w}")));
    if let Some(stop) = &walk.stop {
        warnings.push(format!("irq: {tree}: {stop}"));
    }
}

/// One `irqaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqAction {
    pub addr: u64,
    /// `None` when the name cannot be read (crash prints nothing for it).
    pub name: Option<String>,
}

/// The `irqaction` chain of a descriptor (`action`, then each `next`).
pub fn irq_actions(
    kernel: &Kernel,
    desc: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<IrqAction>, KernelError> {
    let first = kernel.read_field(VirtAddr(desc), "irq_desc", "action")?;
    if first == 0 {
        return Ok(Vec::new());
    }
    let chain = action_chain(kernel, first, kernel.offset_of("irqaction", "next")?);
    if let Some(stop) = chain.1 {
        warnings.push(format!("irq: irq_desc {desc:x} actions: {stop}"));
    }
    Ok(chain
        .0
        .into_iter()
        .map(|addr| IrqAction {
            addr,
            name: kernel
                .read_field(VirtAddr(addr), "irqaction", "name")
                .and_then(|p| kernel.read_cstr(VirtAddr(p), NAME_LIMIT, "irqaction name"))
                .ok(),
        })
        .collect())
}

/// The actions from `first` along `next` (at `next_offset`): bounded, and an action met
/// twice ends the chain before it is repeated.
pub fn action_chain(
    mem: &dyn WordReader,
    first: u64,
    next_offset: u64,
) -> (Vec<u64>, Option<String>) {
    let chain = null_terminated_chain(mem, first, next_offset, 0, MAX_ACTIONS);
    (chain.entries, chain.stop)
}

/// What `irq -s` shows of one line: its chip and descriptor names and per-CPU counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqStats {
    /// `irq_data.chip->name`; `None` when it cannot be read.
    pub chip: Option<String>,
    /// `irq_desc.name` (the flow handler's, `edge`/`fasteoi`).
    pub name: Option<String>,
    /// `kstat_irqs` of each CPU asked for, in order.
    pub counts: Vec<u32>,
}

/// `irq_desc.kstat_irqs` per CPU (a per-CPU `unsigned int`, or 6.10+'s `struct irqstat`
/// whose first member is the count) and the chip's and flow's names.
pub fn irq_stats(kernel: &Kernel, desc: u64, cpus: &[u32]) -> Result<IrqStats, KernelError> {
    let at = VirtAddr(desc);
    let kstat = kernel.read_field(at, "irq_desc", "kstat_irqs")?;
    let mut counts = Vec::with_capacity(cpus.len());
    for &cpu in cpus {
        let ptr = kernel.per_cpu_ptr(VirtAddr(kstat), cpu)?;
        counts.push(kernel.read_u32(ptr, "kstat_irqs")?);
    }
    let string = |p: u64, what: &str| {
        (p != 0)
            .then(|| kernel.read_cstr(VirtAddr(p), NAME_LIMIT, what).ok())
            .flatten()
    };
    let chip = kernel
        .read_field(at, "irq_desc", "irq_data.chip")
        .ok()
        .and_then(|c| {
            (c != 0)
                .then(|| kernel.read_field(VirtAddr(c), "irq_chip", "name").ok())
                .flatten()
        })
        .and_then(|p| string(p, "irq_chip name"));
    let name = kernel
        .read_field(at, "irq_desc", "name")
        .ok()
        .and_then(|p| string(p, "irq_desc name"));
    Ok(IrqStats { chip, name, counts })
}

/// The CPUs in the descriptor's affinity mask (`irq_common_data.affinity`), of the first
/// `nr_cpus`: a `cpumask_var_t`, a pointer where the kernel allocates masks
/// (CPUMASK_OFFSTACK, crash's test: `alloc_cpumask_var_node` exists) or the mask itself.
pub fn irq_affinity(kernel: &Kernel, desc: u64, nr_cpus: u32) -> Result<Vec<u32>, KernelError> {
    let field = if kernel.has_member("irq_desc", "irq_common_data.affinity")? {
        "irq_common_data.affinity"
    } else {
        "irq_data.affinity"
    };
    let mut mask = desc.wrapping_add(kernel.offset_of("irq_desc", field)?);
    if kernel.has_symbol("alloc_cpumask_var_node") || kernel.has_symbol("alloc_cpumask_var") {
        mask = kernel.read_u64(VirtAddr(mask), "irq_desc affinity")?;
    }
    let words = u64::from(nr_cpus).div_ceil(64).max(1);
    let bytes = kernel.read_bytes(VirtAddr(mask), words * 8, "irq_desc affinity")?;
    Ok(mask_cpus(&bytes, nr_cpus))
}

/// The set bits of a little-endian bitmap, below `nr_cpus`.
pub fn mask_cpus(bytes: &[u8], nr_cpus: u32) -> Vec<u32> {
    (0..nr_cpus)
        .filter(|&cpu| {
            let byte = usize::try_from(cpu / 8).unwrap_or(usize::MAX);
            bytes.get(byte).is_some_and(|b| b & (1 << (cpu % 8)) != 0)
        })
        .collect()
}

/// crash's `display_bh_4()`: the `action` of each `softirq_vec[]` entry (the array's
/// length from its symbol; each `struct softirq_action`, whose first member is `action`).
pub fn softirq_actions(kernel: &Kernel) -> Result<Vec<u64>, KernelError> {
    let vec = kernel.symbol("softirq_vec")?;
    let size = kernel.struct_size("softirq_action")?.max(8);
    let len = kernel.symbol_size("softirq_vec")? / size;
    let bytes = kernel.read_bytes(vec, len * size, "softirq_vec")?;
    Ok(bytes
        .chunks_exact(usize::try_from(size).unwrap_or(8))
        .map(|entry| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&entry[..8]);
            u64::from_le_bytes(raw)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::walk::Mem;

    #[test]
    fn action_chains_end_at_null_stop_on_cycles_and_are_bounded() {
        // `next` at 0x18: 0x100 -> 0x200 -> NULL.
        let mem = Mem(HashMap::from([(0x118, 0x200), (0x218, 0)]));
        assert_eq!(action_chain(&mem, 0x100, 0x18), (vec![0x100, 0x200], None));
        // Back to the first action: crash's do_list() ends there, as a ring.
        let ring = Mem(HashMap::from([(0x118, 0x200), (0x218, 0x100)]));
        assert_eq!(action_chain(&ring, 0x100, 0x18), (vec![0x100, 0x200], None));
        // 0x400 -> 0x300: stopped at the repeat.
        let looped = Mem(HashMap::from([
            (0x118, 0x200),
            (0x218, 0x300),
            (0x318, 0x400),
            (0x418, 0x300),
        ]));
        let (actions, stop) = action_chain(&looped, 0x100, 0x18);
        assert_eq!(actions, vec![0x100, 0x200, 0x300, 0x400]);
        assert!(stop.unwrap().contains("duplicate"));
        // An unreadable next keeps the actions before it.
        let broken = Mem(HashMap::from([(0x118, 0x200)]));
        let (actions, stop) = action_chain(&broken, 0x100, 0x18);
        assert_eq!(actions, vec![0x100, 0x200]);
        assert!(stop.unwrap().contains("invalid"));
        // A chain longer than MAX_ACTIONS.
        let n = MAX_ACTIONS as u64 + 5;
        let long = Mem((1..=n)
            .map(|i| (i * 0x100 + 0x18, (i + 1) * 0x100))
            .collect());
        let (actions, stop) = action_chain(&long, 0x100, 0x18);
        assert_eq!(actions.len(), MAX_ACTIONS);
        assert!(stop.unwrap().contains("limit"));
    }

    #[test]
    fn masks() {
        assert_eq!(mask_cpus(&[0b101], 3), vec![0, 2]);
        assert_eq!(mask_cpus(&[0xff, 0x01], 9), (0..9).collect::<Vec<_>>());
        assert_eq!(mask_cpus(&[0xff], 2), vec![0, 1]);
        assert!(mask_cpus(&[], 4).is_empty());
    }
}
