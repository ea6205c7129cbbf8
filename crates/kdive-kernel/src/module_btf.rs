//! Modules' own types: the BTF each module brought (`CONFIG_DEBUG_INFO_BTF_MODULES`), which the
//! kernel keeps in `struct btf` objects on its `btf_modules` list (kernel/bpf/btf.c) after the
//! module's `.BTF` section is freed. Each is split BTF on the kernel's own: read from the dump,
//! it needs neither the module's file nor a vmlinux.

use std::sync::Arc;

use kdive_arch::VirtAddr;
use kdive_symbols::Btf;

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};

/// Bound on modules with BTF (a system loads a few hundred modules at most).
const MAX_MODULES: usize = 4096;
/// Bound on one module's BTF (a large module's is a few hundred KiB).
const MAX_MODULE_BTF: u64 = 16 << 20;

/// A module's name and its BTF.
pub type ModuleBtf = (String, Arc<Btf>);

/// The modules' BTF and what of it could not be read.
#[derive(Debug, Default)]
pub struct ModuleBtfs {
    pub btfs: Vec<ModuleBtf>,
    /// A module each, or the list.
    pub warnings: Vec<String>,
}

/// The modules' BTF, each parsed on the kernel's BTF; none when the kernel keeps no
/// `btf_modules` (built without module BTF) or has no BTF of its own to split on. A symbol
/// table without variables (kallsyms of a kernel without `CONFIG_KALLSYMS_ALL`) cannot tell
/// which: a warning says the list was not found.
pub fn read_module_btfs(kernel: &Kernel) -> ModuleBtfs {
    let (mut out, mut warnings) = (Vec::new(), Vec::new());
    let Some(base) = kernel.types().vmlinux_btf().cloned() else {
        return ModuleBtfs::default();
    };
    let head = match kernel.symbol("btf_modules") {
        Ok(head) => head,
        Err(err) if kernel.symbols_are_functions_only() => {
            return ModuleBtfs {
                btfs: Vec::new(),
                warnings: vec![format!("module BTF: {err}")],
            };
        }
        Err(_) => return ModuleBtfs::default(),
    };
    for node in ListWalk::new(kernel, head).with_limit(MAX_MODULES) {
        let btf = node
            .and_then(|node| container_of(kernel, node, "btf_module", "list"))
            .and_then(|entry| read_one(kernel, entry, &base));
        match btf {
            Ok(Some(named)) => out.push(named),
            Ok(None) => {}
            Err(err) => warnings.push(format!("module BTF (btf_modules at {head}): {err}")),
        }
    }
    ModuleBtfs {
        btfs: out,
        warnings,
    }
}

/// One `struct btf_module`'s BTF, named after its `struct btf`'s name.
fn read_one(
    kernel: &Kernel,
    entry: VirtAddr,
    base: &Arc<Btf>,
) -> Result<Option<ModuleBtf>, KernelError> {
    let module = kernel.read_struct(entry, "btf_module")?;
    let btf_at = module.field_ptr("btf")?;
    if btf_at.0 == 0 {
        return Ok(None);
    }
    let btf = kernel.read_struct(btf_at, "btf")?;
    let name = btf.field_str("name")?;
    let data = btf.field_ptr("data")?;
    let size = btf.field("data_size")?;
    if size == 0 || size > MAX_MODULE_BTF {
        return Err(KernelError::BadData {
            what: format!("module {name}'s BTF"),
            addr: btf_at,
            why: format!("btf.data_size is {size} (at most {MAX_MODULE_BTF} expected)"),
        });
    }
    let bytes = kernel.read_bytes(data, size, &format!("module {name}'s BTF"))?;
    let parsed = Btf::parse(
        bytes,
        Some(base.clone()),
        &format!("module {name}'s BTF in the dump"),
    )
    .map_err(|e| KernelError::BadData {
        what: format!("module {name}'s BTF"),
        addr: data,
        why: e.to_string(),
    })?;
    Ok(Some((name, Arc::new(parsed))))
}
