//! Loaded modules: the `modules` list of the dump, each module's memory, its kallsyms, the
//! section addresses the kernel gave it (`sect_attrs`) and its build id (`notes_attrs`); the
//! `.ko` on disk that matches it; and one address lookup over the vmlinux and all modules.
//!
//! Layouts are told apart by the fields the kernel's types have, as drgn's helpers do:
//! `mem[MOD_TEXT..]` (6.4+), `core_layout` (4.5 - 6.3) or `module_core`/`core_size`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use kdive_arch::VirtAddr;
use kdive_symbols::{ElfImage, ModuleIndex, Symbol};
use object::{Object, ObjectSection};

use crate::error::KernelError;
use crate::kernel::Kernel;
use crate::list::{container_of, ListWalk};

/// More modules than any kernel loads (the kernel has no limit; a few hundred is usual).
const MAX_MODULES: usize = 1 << 14;
/// Bound on a module's kallsyms symbol count.
const MAX_MODULE_SYMBOLS: u64 = 1 << 20;
/// Bound on a module's string table read at once.
const MAX_STRTAB: u64 = 1 << 24;
/// Longest symbol name read.
const MAX_SYMBOL_NAME: usize = 512;
/// Bound on `sect_attrs->nsections` and `notes_attrs->notes`.
const MAX_SECTIONS: u64 = 4096;
/// Bound on one note section's size.
const MAX_NOTE_SIZE: u64 = 4096;
/// `sizeof(Elf64_Sym)` and its fields (ELF spec, gABI "Symbol Table"); the layout is the
/// file format's, not the kernel's.
const ELF64_SYM_SIZE: usize = 24;
/// `SHN_UNDEF`
const SHN_UNDEF: u16 = 0;
/// `NT_GNU_BUILD_ID`
const NT_GNU_BUILD_ID: u32 = 3;

/// A region of module memory (`module_memory`, or one of the `module_layout`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleRegion {
    pub base: VirtAddr,
    pub size: u64,
    /// Init memory (freed once `init` returns; a module that crashed in `init` still has it).
    pub init: bool,
}

impl ModuleRegion {
    pub fn contains(&self, addr: VirtAddr) -> bool {
        addr.0 >= self.base.0 && addr.0 - self.base.0 < self.size
    }
}

/// A section address the kernel reports in `/sys/module/<name>/sections/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSection {
    pub name: String,
    pub addr: VirtAddr,
}

/// One symbol of a module's kallsyms (`mod->kallsyms->symtab`), at its runtime address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KallsymsSymbol {
    pub name: String,
    pub addr: VirtAddr,
    pub size: u64,
    /// `t`/`T` in the kernel's type table.
    pub is_function: bool,
    /// The type letter itself (`t`, `T`, `d`, `b`, `r`…), as `nm` would print it.
    pub kind: char,
}

/// One loaded module as the dump shows it.
#[derive(Debug)]
pub struct Module {
    /// The `struct module`.
    pub addr: VirtAddr,
    pub name: String,
    /// Start of the core text (`mem[MOD_TEXT].base`, `core_layout.base`): crash's BASE.
    pub base: VirtAddr,
    /// Core size without init memory: crash's SIZE.
    pub size: u64,
    /// Every region, core and init.
    pub regions: Vec<ModuleRegion>,
    /// kallsyms, sorted by address; empty when the module has none or it is unreadable.
    pub kallsyms: Vec<KallsymsSymbol>,
    /// From `sect_attrs`; empty when unreadable.
    pub sections: Vec<ModuleSection>,
    /// `.note.gnu.build-id` from `notes_attrs`.
    pub build_id: Option<Vec<u8>>,
    /// What of this module could not be read (kallsyms, sections, notes).
    pub errors: Vec<KernelError>,
}

impl Module {
    /// Core and init memory together.
    pub fn total_size(&self) -> u64 {
        self.regions
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.size))
    }

    pub fn contains(&self, addr: VirtAddr) -> bool {
        self.regions.iter().any(|r| r.contains(addr))
    }

    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id.as_deref().map(hex)
    }

    /// The kallsyms symbol at or below `addr` in the module's region that holds it, and the
    /// offset into it. Regions are allocated apart on 6.4+ (`mem[]`): the start of the data,
    /// below its first symbol, is not the last function's `+offset`.
    pub fn kallsyms_at(&self, addr: VirtAddr) -> Option<(&KallsymsSymbol, u64)> {
        let region = self.regions.iter().find(|r| r.contains(addr))?;
        let end = self.kallsyms.partition_point(|s| s.addr.0 <= addr.0);
        let symbol = self.kallsyms.get(..end)?.last()?;
        region
            .contains(symbol.addr)
            .then(|| (symbol, addr.0 - symbol.addr.0))
    }
}

/// The modules found, in list order (newest first), and what broke the walk.
#[derive(Debug, Default)]
pub struct ModuleList {
    pub modules: Vec<Module>,
    pub errors: Vec<KernelError>,
}

/// Walks the `modules` list.
pub fn for_each_module(kernel: &Kernel) -> ModuleList {
    let mut list = ModuleList::default();
    let head = match kernel.symbol("modules") {
        Ok(head) => head,
        Err(err) => {
            list.errors.push(err);
            return list;
        }
    };
    for node in ListWalk::new(kernel, head).with_limit(MAX_MODULES) {
        let module = node
            .and_then(|node| container_of(kernel, node, "module", "list"))
            .and_then(|addr| read_module(kernel, addr));
        match module {
            Ok(module) => list.modules.push(module),
            Err(err) => {
                // An unreadable node breaks the chain: the walk cannot go on from here.
                list.errors.push(err);
                break;
            }
        }
    }
    list
}

/// Reads one `struct module`.
pub fn read_module(kernel: &Kernel, addr: VirtAddr) -> Result<Module, KernelError> {
    let m = kernel.read_struct(addr, "module")?;
    let name = m.field_str("name")?;
    let (regions, base, size) = read_regions(kernel, &m)?;
    let mut module = Module {
        addr,
        name,
        base,
        size,
        regions,
        kallsyms: Vec::new(),
        sections: Vec::new(),
        build_id: None,
        errors: Vec::new(),
    };
    match read_kallsyms(kernel, &m) {
        Ok(symbols) => module.kallsyms = symbols,
        Err(err) => module.errors.push(err),
    }
    match read_sections(kernel, &m) {
        Ok(sections) => module.sections = sections,
        Err(err) => module.errors.push(err),
    }
    match read_build_id(kernel, &m) {
        Ok(id) => module.build_id = id,
        Err(err) => module.errors.push(err),
    }
    Ok(module)
}

type Regions = (Vec<ModuleRegion>, VirtAddr, u64);

fn read_regions(kernel: &Kernel, m: &crate::StructBuf<'_>) -> Result<Regions, KernelError> {
    let region = |base: &str, size: &str, init: bool| -> Result<ModuleRegion, KernelError> {
        Ok(ModuleRegion {
            base: m.field_ptr(base)?,
            size: m.field(size)?,
            init,
        })
    };
    if kernel.has_member("module", "mem")? {
        // 6.4+ (commit ac3b43283923 "module: replace module_layout with module_memory"):
        // `mem[MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_TEXT, ...]`.
        let text = kernel.enum_value(Some("mod_mem_type"), "MOD_TEXT")?;
        let init_text = kernel.enum_value(Some("mod_mem_type"), "MOD_INIT_TEXT")?;
        let count = kernel.enum_value(Some("mod_mem_type"), "MOD_MEM_NUM_TYPES")?;
        let mut regions = Vec::new();
        let mut core_size = 0u64;
        let mut base = None;
        for t in 0..count.clamp(0, 64) {
            let r = region(
                &format!("mem[{t}].base"),
                &format!("mem[{t}].size"),
                t >= init_text,
            )?;
            if t == text {
                base = Some(r.base);
            }
            if t < init_text {
                core_size = core_size.saturating_add(r.size);
            }
            regions.push(r);
        }
        let base = base.ok_or_else(|| KernelError::BadData {
            what: "enum mod_mem_type".into(),
            addr: m.addr(),
            why: format!("MOD_TEXT ({text}) is not below MOD_MEM_NUM_TYPES ({count})"),
        })?;
        Ok((regions, base, core_size))
    } else if kernel.has_member("module", "core_layout")? {
        let core = region("core_layout.base", "core_layout.size", false)?;
        let init = region("init_layout.base", "init_layout.size", true)?;
        Ok((vec![core, init], core.base, core.size))
    } else {
        let core = region("module_core", "core_size", false)?;
        let init = region("module_init", "init_size", true)?;
        Ok((vec![core, init], core.base, core.size))
    }
}

fn read_kallsyms(
    kernel: &Kernel,
    m: &crate::StructBuf<'_>,
) -> Result<Vec<KallsymsSymbol>, KernelError> {
    let kallsyms = m.field_ptr("kallsyms")?;
    if kallsyms.0 == 0 {
        return Ok(Vec::new());
    }
    let ks = kernel.read_struct(kallsyms, "mod_kallsyms")?;
    let symtab = ks.field_ptr("symtab")?;
    let count = ks.field("num_symtab")?;
    let strtab = ks.field_ptr("strtab")?;
    let typetab = if kernel.has_member("mod_kallsyms", "typetab")? {
        Some(ks.field_ptr("typetab")?)
    } else {
        None
    };
    if count > MAX_MODULE_SYMBOLS {
        return Err(KernelError::BadData {
            what: format!("kallsyms of module {}", m.field_str("name")?),
            addr: kallsyms,
            why: format!("{count} symbols"),
        });
    }
    let table = kernel.read_bytes(
        symtab,
        count.saturating_mul(ELF64_SYM_SIZE as u64),
        "module kallsyms symtab",
    )?;
    let types = match typetab {
        Some(at) if at.0 != 0 => kernel.read_bytes(at, count, "module kallsyms typetab").ok(),
        _ => None,
    };
    let entries: Vec<Elf64Sym> = table
        .chunks_exact(ELF64_SYM_SIZE)
        .map(Elf64Sym::parse)
        .collect();
    let max_name = entries
        .iter()
        .map(|e| u64::from(e.st_name))
        .max()
        .unwrap_or(0);
    // The string table is read in one piece when it is readable as one; else name by name.
    let strings = kernel
        .read_bytes(
            strtab,
            max_name
                .saturating_add(MAX_SYMBOL_NAME as u64)
                .min(MAX_STRTAB),
            "module kallsyms strtab",
        )
        .ok();
    let mut symbols = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.st_shndx == SHN_UNDEF || e.st_value == 0 || e.st_name == 0 {
            continue;
        }
        let name = match &strings {
            Some(bytes) => cstr_at(bytes, e.st_name),
            None => kernel.read_cstr(
                VirtAddr(strtab.0.wrapping_add(u64::from(e.st_name))),
                MAX_SYMBOL_NAME,
                "module kallsyms name",
            )?,
        };
        if name.is_empty() || kdive_symbols::is_mapping_symbol(&name) {
            continue;
        }
        let kind = match &types {
            Some(t) => t.get(i).copied().unwrap_or(0),
            // Before 5.2 the type letter was stored in `st_info`.
            None => e.st_info,
        };
        symbols.push(KallsymsSymbol {
            name,
            addr: VirtAddr(e.st_value),
            size: e.st_size,
            is_function: kind.eq_ignore_ascii_case(&b't'),
            kind: char::from(kind),
        });
    }
    symbols.sort_by(|a, b| a.addr.0.cmp(&b.addr.0).then(b.size.cmp(&a.size)));
    Ok(symbols)
}

/// The fields of an `Elf64_Sym` kallsyms uses.
struct Elf64Sym {
    st_name: u32,
    st_info: u8,
    st_shndx: u16,
    st_value: u64,
    st_size: u64,
}

impl Elf64Sym {
    fn parse(raw: &[u8]) -> Elf64Sym {
        let u32_at = |at: usize| {
            raw.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_le_bytes)
        };
        let u64_at = |at: usize| {
            raw.get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        let u16_at = |at: usize| {
            raw.get(at..at + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .map_or(0, u16::from_le_bytes)
        };
        Elf64Sym {
            st_name: u32_at(0),
            st_info: raw.get(4).copied().unwrap_or(0),
            st_shndx: u16_at(6),
            st_value: u64_at(8),
            st_size: u64_at(16),
        }
    }
}

fn cstr_at(bytes: &[u8], offset: u32) -> String {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let rest = bytes.get(start..).unwrap_or_default();
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(rest.len())
        .min(MAX_SYMBOL_NAME);
    String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned()
}

/// How many attributes follow a `module_sect_attrs`/`module_notes_attrs` header: its count
/// member (`nsections`, `notes`) where it has one; after module sysfs moved to attribute
/// groups (2025; 7.x has it) only the NULL-terminated `grp.bin_attrs` array says.
fn attr_count(
    kernel: &Kernel,
    attrs: VirtAddr,
    ty: &str,
    count_member: &str,
) -> Result<u64, KernelError> {
    let count = if kernel.has_member(ty, count_member)? {
        kernel.read_field(attrs, ty, count_member)?
    } else {
        let list = VirtAddr(kernel.read_field(attrs, ty, "grp.bin_attrs")?);
        let mut n = 0;
        while n <= MAX_SECTIONS
            && kernel
                .read_ptr(VirtAddr(list.0.wrapping_add(n * 8)), "grp.bin_attrs")?
                .0
                != 0
        {
            n += 1;
        }
        n
    };
    if count > MAX_SECTIONS {
        return Err(KernelError::BadData {
            what: format!("{ty}.{count_member}"),
            addr: attrs,
            why: format!("{count} attributes"),
        });
    }
    Ok(count)
}

fn read_sections(
    kernel: &Kernel,
    m: &crate::StructBuf<'_>,
) -> Result<Vec<ModuleSection>, KernelError> {
    let attrs = m.field_ptr("sect_attrs")?;
    if attrs.0 == 0 {
        return Ok(Vec::new());
    }
    let count = attr_count(kernel, attrs, "module_sect_attrs", "nsections")?;
    let first = kernel.offset_of("module_sect_attrs", "attrs")?;
    // The name moved into the bin_attribute in 5.8 (commit ed66f991bb19 "module: Refactor
    // section attr into bin attribute"), the address into its `private` with the attribute
    // groups (where `module_sect_attr` is gone and the array holds bin_attributes).
    let (element, name_path, addr_path) = if !kernel.has_member("module_sect_attrs", "nsections")? {
        ("bin_attribute", "attr.name", "private")
    } else if kernel.has_member("module_sect_attr", "battr")? {
        ("module_sect_attr", "battr.attr.name", "address")
    } else {
        ("module_sect_attr", "name", "address")
    };
    let size = kernel.struct_size(element)?;
    let mut sections = Vec::new();
    for i in 0..count {
        let at = VirtAddr(
            attrs
                .0
                .wrapping_add(first)
                .wrapping_add(i.wrapping_mul(size)),
        );
        let attr = kernel.read_struct(at, element)?;
        let name = kernel.read_cstr(attr.field_ptr(name_path)?, 256, "module section name")?;
        sections.push(ModuleSection {
            name,
            addr: attr.field_ptr(addr_path)?,
        });
    }
    Ok(sections)
}

fn read_build_id(
    kernel: &Kernel,
    m: &crate::StructBuf<'_>,
) -> Result<Option<Vec<u8>>, KernelError> {
    let attrs = m.field_ptr("notes_attrs")?;
    if attrs.0 == 0 {
        return Ok(None);
    }
    let count = attr_count(kernel, attrs, "module_notes_attrs", "notes")?;
    let first = kernel.offset_of("module_notes_attrs", "attrs")?;
    let size = kernel.struct_size("bin_attribute")?;
    for i in 0..count {
        let at = VirtAddr(
            attrs
                .0
                .wrapping_add(first)
                .wrapping_add(i.wrapping_mul(size)),
        );
        let attr = kernel.read_struct(at, "bin_attribute")?;
        let data = attr.field_ptr("private")?;
        let len = attr.field("size")?.min(MAX_NOTE_SIZE);
        let bytes = kernel.read_bytes(data, len, "module note")?;
        if let Some(id) = gnu_build_id(&bytes) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The descriptor of the first `NT_GNU_BUILD_ID` note owned by "GNU" in an ELF note section.
pub fn gnu_build_id(mut notes: &[u8]) -> Option<Vec<u8>> {
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_le_bytes)
    };
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    while notes.len() >= 12 {
        let namesz = usize::try_from(word(notes, 0)?).ok()?;
        let descsz = usize::try_from(word(notes, 4)?).ok()?;
        let kind = word(notes, 8)?;
        let name_end = 12usize.checked_add(namesz)?;
        let desc_start = 12usize.checked_add(align4(namesz)?)?;
        let desc_end = desc_start.checked_add(descsz)?;
        let name = notes.get(12..name_end)?;
        let desc = notes.get(desc_start..desc_end)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc.to_vec());
        }
        notes = notes.get(desc_start.checked_add(align4(descsz)?)?..)?;
    }
    None
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- module objects on disk ------------------------------------------------------------

/// Where module objects are looked for: the given directories first, then the usual
/// places for `release` (debug objects before stripped ones).
pub fn module_search_dirs(release: Option<&str>, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    if let Some(release) = release {
        dirs.push(PathBuf::from(format!(
            "/usr/lib/debug/lib/modules/{release}"
        )));
        dirs.push(PathBuf::from(format!("/lib/modules/{release}")));
    }
    dirs
}

/// A `.ko` matched with a loaded module.
#[derive(Debug)]
pub struct ModuleObject {
    pub path: PathBuf,
    /// Shared with triage's symbol lookup.
    pub image: Rc<ElfImage>,
    /// The file carries DWARF (`.debug_info`).
    pub debug: bool,
    /// The file's build id equals the loaded module's (`None`: one of them has none).
    pub build_id_matches: Option<bool>,
}

/// Finds module objects by name under several roots, each root indexed once.
pub struct ModuleFinder {
    roots: Vec<(PathBuf, ModuleIndex)>,
}

impl ModuleFinder {
    /// Indexes every root that exists; missing roots are skipped (the usual places often
    /// are).
    pub fn new(roots: &[PathBuf]) -> ModuleFinder {
        let mut seen = HashSet::new();
        let roots = roots
            .iter()
            .filter(|r| r.exists() && seen.insert((*r).clone()))
            .filter_map(|r| {
                ModuleIndex::scan(std::slice::from_ref(r))
                    .ok()
                    .map(|index| (r.clone(), index))
            })
            .collect();
        ModuleFinder { roots }
    }

    /// The object for `module`: among the files named after it whose build id does not
    /// contradict the module's, the first with DWARF, else the first. Files rejected, with
    /// why, go to `rejected`.
    pub fn find(&self, module: &Module, rejected: &mut Vec<String>) -> Option<ModuleObject> {
        let mut fallback = None;
        for (_, index) in &self.roots {
            let Some(path) = index.path(&module.name) else {
                continue;
            };
            let Some(object) = object_for(path, module, fallback.is_some(), rejected) else {
                continue;
            };
            if object.debug {
                return Some(object);
            }
            fallback = Some(object);
        }
        fallback
    }
}

/// `path` as `module`'s object, unless its build id contradicts the module's (or, with
/// `debug_only`, it has no DWARF); why not goes to `rejected`.
fn object_for(
    path: &Path,
    module: &Module,
    debug_only: bool,
    rejected: &mut Vec<String>,
) -> Option<ModuleObject> {
    let (build_id, debug) = match object_facts(path) {
        Ok(facts) => facts,
        Err(why) => {
            rejected.push(format!("{}: {why}", path.display()));
            return None;
        }
    };
    let build_id_matches = match (&module.build_id, &build_id) {
        (Some(a), Some(b)) => Some(a == b),
        _ => None,
    };
    if build_id_matches == Some(false) {
        rejected.push(format!(
            "{}: build id {} is not the loaded module's {}",
            path.display(),
            build_id.as_deref().map(hex).unwrap_or_default(),
            module.build_id_hex().unwrap_or_default()
        ));
        return None;
    }
    if debug_only && !debug {
        return None;
    }
    match ElfImage::open(path) {
        Ok(image) => Some(ModuleObject {
            path: path.to_path_buf(),
            image: Rc::new(image),
            debug,
            build_id_matches,
        }),
        Err(err) => {
            rejected.push(err.to_string());
            None
        }
    }
}

/// Fetches a module's debug file by its build id when none was found on disk (debuginfod);
/// `None` when it cannot be had (the fetcher reports why itself).
pub type DebugFileFetcher = dyn Fn(&Module) -> Option<PathBuf>;

/// A file's build id and whether it has DWARF, read from its headers only.
fn object_facts(path: &Path) -> Result<(Option<Vec<u8>>, bool), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let cache = object::read::ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| e.to_string())?;
    let build_id = elf
        .build_id()
        .map_err(|e| e.to_string())?
        .map(<[u8]>::to_vec);
    let debug = elf
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0 && s.kind() != object::SectionKind::UninitializedData);
    Ok((build_id, debug))
}

// ---- symbols across the vmlinux and the modules -----------------------------------------

/// Which table answered a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolSource {
    Vmlinux,
    /// The module's `.ko`, with the section addresses of the dump applied.
    ModuleObject,
    /// The module's kallsyms in the dump.
    Kallsyms,
}

/// `addr` is `name+offset` (in `module`, or the vmlinux for `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolHit {
    pub module: Option<String>,
    pub name: String,
    pub offset: u64,
    pub size: u64,
    /// `nm`'s type letter.
    pub kind: char,
    pub source: SymbolSource,
}

/// A loaded module with its object file, if found.
#[derive(Debug)]
pub struct LoadedModule {
    pub module: Module,
    pub object: Option<ModuleObject>,
}

/// The modules of a dump with their objects, and the address lookup over vmlinux and
/// modules that `mod`, `bt` and `sym` use.
#[derive(Debug, Default)]
pub struct KernelModules {
    /// Sorted by base address, as crash lists them.
    pub modules: Vec<LoadedModule>,
    /// What could not be read or matched, worded for the user.
    pub warnings: Vec<String>,
}

impl KernelModules {
    /// Walks the module list and matches each module with its object under `dirs` (see
    /// [`module_search_dirs`]), else with the debug file `fetch` gets by its build id.
    pub fn load(
        kernel: &Kernel,
        dirs: &[PathBuf],
        fetch: Option<&DebugFileFetcher>,
    ) -> KernelModules {
        let list = for_each_module(kernel);
        let mut warnings: Vec<String> = list
            .errors
            .iter()
            .map(|e| format!("module list: {e}"))
            .collect();
        let finder = ModuleFinder::new(dirs);
        let mut modules = Vec::new();
        for mut module in list.modules {
            for err in &module.errors {
                warnings.push(format!("module {}: {err}", module.name));
            }
            let mut rejected = Vec::new();
            let mut object = finder.find(&module, &mut rejected);
            if let (false, Some(fetch)) = (object.as_ref().is_some_and(|o| o.debug), fetch) {
                if let Some(fetched) = module.build_id.as_ref().and_then(|_| fetch(&module)) {
                    object = object_for(&fetched, &module, false, &mut rejected).or(object);
                }
            }
            for why in rejected {
                warnings.push(format!("module {}: {why}", module.name));
            }
            if let (true, Some(object)) = (module.sections.is_empty(), &object) {
                module.sections = sections_from_kallsyms(&module, |name| {
                    let symbol = object.image.lookup_name(name).next()?;
                    let (section, start) = object.image.section_containing(symbol.address)?;
                    Some((section.to_owned(), symbol.address - start))
                });
            }
            modules.push(LoadedModule { module, object });
        }
        modules.sort_by_key(|m| m.module.base.0);
        KernelModules { modules, warnings }
    }

    pub fn module_at(&self, addr: VirtAddr) -> Option<&LoadedModule> {
        self.modules.iter().find(|m| m.module.contains(addr))
    }

    /// `addr` as `name+offset` in a module (object first, then kallsyms) or the vmlinux.
    pub fn lookup(&self, kernel: &Kernel, addr: VirtAddr) -> Option<SymbolHit> {
        if let Some(loaded) = self.module_at(addr) {
            return lookup_module(loaded, addr);
        }
        lookup_vmlinux(kernel, addr)
    }

    /// Where the code of a label at `addr` (a symbol without a size: an assembly label) ends,
    /// as gdb sees it: at the end of a sized symbol around it (`entry_SYSCALL_64` around
    /// `entry_SYSCALL_64_after_hwframe`), else at the next symbol; in vmlinux or in `addr`'s
    /// module.
    pub fn label_end(&self, kernel: &Kernel, addr: VirtAddr) -> Option<VirtAddr> {
        /// How far back a sized symbol around the label is looked for.
        const LOOK_BACK: usize = 256;
        let end_of = |starts: &mut dyn Iterator<Item = (u64, u64)>, next: Option<u64>, at: u64| {
            starts
                .take(LOOK_BACK)
                .find(|(start, size)| start.saturating_add(*size) > at)
                .map(|(start, size)| start.saturating_add(size))
                .or(next)
        };
        if let Some(loaded) = self.module_at(addr) {
            let kallsyms = &loaded.module.kallsyms;
            let after = kallsyms.partition_point(|s| s.addr.0 <= addr.0);
            let mut before = kallsyms[..after].iter().rev().map(|s| (s.addr.0, s.size));
            let next = kallsyms.get(after).map(|s| s.addr.0);
            return end_of(&mut before, next, addr.0).map(VirtAddr);
        }
        let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
        let link = addr.0.wrapping_sub(kaslr);
        let symbols = kernel.vmlinux().symbols();
        let after = symbols.partition_point(|s| s.address <= link);
        let mut before = symbols
            .range(..after)
            .iter()
            .rev()
            .map(|s| (s.address, s.size));
        let next = symbols.get(after).map(|s| s.address);
        end_of(&mut before, next, link).map(|end| VirtAddr(end.wrapping_add(kaslr)))
    }

    /// Every symbol called `name`, at its address in the running kernel: vmlinux's (moved by
    /// KASLR), then each module's (from its object where found, else its kallsyms).
    pub fn lookup_name(&self, kernel: &Kernel, name: &str) -> Vec<(VirtAddr, SymbolHit)> {
        let hit = |symbol: &Symbol, module: Option<&str>, source| SymbolHit {
            module: module.map(str::to_owned),
            name: symbol.name.to_owned(),
            offset: 0,
            size: symbol.size,
            kind: symbol.kind,
            source,
        };
        let mut out: Vec<(VirtAddr, SymbolHit)> = kernel
            .vmlinux()
            .lookup_name(name)
            .map(|s| {
                (
                    kernel.relocate(s.address),
                    hit(&s, None, SymbolSource::Vmlinux),
                )
            })
            .collect();
        for loaded in &self.modules {
            let module = &loaded.module;
            let from_object: Vec<(VirtAddr, SymbolHit)> = loaded
                .object
                .iter()
                .flat_map(|object| object.image.lookup_name(name).map(move |s| (object, s)))
                .filter_map(|(object, s)| {
                    let (section, start) = object.image.section_containing(s.address)?;
                    let base = module.sections.iter().find(|m| m.name == section)?.addr;
                    let addr = VirtAddr(base.0.checked_add(s.address - start)?);
                    Some((
                        addr,
                        hit(&s, Some(&module.name), SymbolSource::ModuleObject),
                    ))
                })
                .collect();
            if !from_object.is_empty() {
                out.extend(from_object);
                continue;
            }
            out.extend(module.kallsyms.iter().filter(|s| s.name == name).map(|s| {
                (
                    s.addr,
                    SymbolHit {
                        module: Some(module.name.clone()),
                        name: s.name.clone(),
                        offset: 0,
                        size: s.size,
                        kind: s.kind,
                        source: SymbolSource::Kallsyms,
                    },
                )
            }));
        }
        out
    }
}

/// Section addresses recovered from kallsyms when `sect_attrs` is not readable: a symbol
/// at `offset` into section `S` of the object and at `addr` in the running module puts
/// `S` at `addr - offset`. `object_symbol` gives a name's section and offset in the object.
/// Symbols outside the module's memory are skipped: kallsyms also names symbols of sections
/// the loader does not keep (`.modinfo`, `__versions`) at their place in the temporary copy
/// of the file.
pub fn sections_from_kallsyms(
    module: &Module,
    object_symbol: impl Fn(&str) -> Option<(String, u64)>,
) -> Vec<ModuleSection> {
    let mut sections: Vec<ModuleSection> = Vec::new();
    for symbol in module.kallsyms.iter().filter(|s| module.contains(s.addr)) {
        let Some((name, offset)) = object_symbol(&symbol.name) else {
            continue;
        };
        if sections.iter().any(|s| s.name == name) {
            continue;
        }
        if let Some(base) = symbol.addr.0.checked_sub(offset) {
            sections.push(ModuleSection {
                name,
                addr: VirtAddr(base),
            });
        }
    }
    sections
}

fn lookup_module(loaded: &LoadedModule, addr: VirtAddr) -> Option<SymbolHit> {
    let module = &loaded.module;
    if let Some(object) = &loaded.object {
        if let Some(hit) = lookup_object(module, object, addr) {
            return Some(hit);
        }
    }
    module.kallsyms_at(addr).map(|(symbol, offset)| SymbolHit {
        module: Some(module.name.clone()),
        name: symbol.name.clone(),
        offset,
        size: symbol.size,
        kind: symbol.kind,
        source: SymbolSource::Kallsyms,
    })
}

/// Finds the section of the running module that holds `addr`, moves the address into the
/// object's own layout of that section and looks the symbol up there.
fn lookup_object(module: &Module, object: &ModuleObject, addr: VirtAddr) -> Option<SymbolHit> {
    let (image_addr, image_section_start) = module.sections.iter().find_map(|section| {
        let (start, size) = object.image.section(&section.name)?;
        let offset = addr.0.checked_sub(section.addr.0)?;
        (offset < size).then(|| (start.checked_add(offset), start))
    })?;
    let image_addr = image_addr?;
    let (symbol, offset) = object.image.symbol_at(image_addr)?;
    if symbol.address < image_section_start {
        return None;
    }
    Some(SymbolHit {
        module: Some(module.name.clone()),
        name: symbol.name.to_owned(),
        offset,
        size: symbol.size,
        kind: symbol.kind,
        source: SymbolSource::ModuleObject,
    })
}

/// `addr` in vmlinux's image (`_text`..`_end`) as `name+offset`.
fn lookup_vmlinux(kernel: &Kernel, addr: VirtAddr) -> Option<SymbolHit> {
    let kaslr = kernel.address_space().kaslr_offset().unwrap_or(0);
    let link = addr.0.wrapping_sub(kaslr);
    let (start, end) = kernel.image_range()?;
    if link < start || link >= end {
        return None;
    }
    let (symbol, offset) = kernel.vmlinux().symbol_at(link)?;
    Some(SymbolHit {
        module: None,
        name: symbol.name.to_owned(),
        offset,
        size: symbol.size,
        kind: symbol.kind,
        source: SymbolSource::Vmlinux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&u32::try_from(desc.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(name);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn build_id_is_found_after_other_notes() {
        let mut notes = note(b"Linux\0", 0x100, b"6.1.0\0");
        notes.extend(note(b"GNU\0", 1, b"abi!"));
        notes.extend(note(b"GNU\0", NT_GNU_BUILD_ID, &[0xf3, 0xb5, 0x7c]));
        assert_eq!(gnu_build_id(&notes), Some(vec![0xf3, 0xb5, 0x7c]));
        assert_eq!(gnu_build_id(&notes[..20]), None);
        // A descriptor size running past the end is no note.
        let mut bad = note(b"GNU\0", NT_GNU_BUILD_ID, &[1, 2, 3, 4]);
        bad[4] = 0xff;
        assert_eq!(gnu_build_id(&bad), None);
    }

    #[test]
    fn elf64_sym_fields() {
        let mut raw = [0u8; ELF64_SYM_SIZE];
        raw[0..4].copy_from_slice(&7u32.to_le_bytes());
        raw[4] = b't';
        raw[6..8].copy_from_slice(&2u16.to_le_bytes());
        raw[8..16].copy_from_slice(&0xffff_ffff_c000_1000u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x40u64.to_le_bytes());
        let sym = Elf64Sym::parse(&raw);
        assert_eq!(
            (
                sym.st_name,
                sym.st_info,
                sym.st_shndx,
                sym.st_value,
                sym.st_size
            ),
            (7, b't', 2, 0xffff_ffff_c000_1000, 0x40)
        );
        assert_eq!(cstr_at(b"\0init\0cleanup\0", 6), "cleanup");
        assert_eq!(cstr_at(b"\0init", 99), "");
    }

    fn module_with(kallsyms: Vec<KallsymsSymbol>) -> Module {
        Module {
            addr: VirtAddr(0xffff_ffff_c000_4040),
            name: "demo".into(),
            base: VirtAddr(0xffff_ffff_c000_0000),
            size: 0x3000,
            regions: vec![
                ModuleRegion {
                    base: VirtAddr(0xffff_ffff_c000_0000),
                    size: 0x3000,
                    init: false,
                },
                ModuleRegion {
                    base: VirtAddr(0xffff_ffff_c000_8000),
                    size: 0x1000,
                    init: true,
                },
            ],
            kallsyms,
            sections: Vec::new(),
            build_id: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn kallsyms_lookup_stays_inside_the_module() {
        let sym = |name: &str, addr: u64| KallsymsSymbol {
            name: name.into(),
            addr: VirtAddr(addr),
            size: 0x10,
            is_function: true,
            kind: 't',
        };
        let m = module_with(vec![
            sym("demo_a", 0xffff_ffff_c000_0000),
            sym("demo_b", 0xffff_ffff_c000_0100),
            sym("init_module", 0xffff_ffff_c000_8000),
        ]);
        assert_eq!(m.total_size(), 0x4000);
        let (s, off) = m.kallsyms_at(VirtAddr(0xffff_ffff_c000_0123)).unwrap();
        assert_eq!((s.name.as_str(), off), ("demo_b", 0x23));
        let (s, off) = m.kallsyms_at(VirtAddr(0xffff_ffff_c000_8004)).unwrap();
        assert_eq!((s.name.as_str(), off), ("init_module", 4));
        assert!(m.kallsyms_at(VirtAddr(0xffff_ffff_c000_3000)).is_none());
        let loaded = LoadedModule {
            module: m,
            object: None,
        };
        let hit = lookup_module(&loaded, VirtAddr(0xffff_ffff_c000_0004)).unwrap();
        assert_eq!(hit.module.as_deref(), Some("demo"));
        assert_eq!((hit.name.as_str(), hit.offset), ("demo_a", 4));
        assert_eq!(hit.source, SymbolSource::Kallsyms);
    }

    #[test]
    fn sections_are_recovered_from_kallsyms() {
        let sym = |name: &str, addr: u64| KallsymsSymbol {
            name: name.into(),
            addr: VirtAddr(addr),
            size: 8,
            is_function: true,
            kind: 't',
        };
        let module = module_with(vec![
            sym("only_in_the_dump", 0xffff_ffff_c000_0010),
            sym("demo_a", 0xffff_ffff_c000_0040),
            sym("demo_b", 0xffff_ffff_c000_0080),
            sym("demo_init", 0xffff_ffff_c000_8010),
            // In the loader's temporary copy, not in module memory.
            sym("__UNIQUE_ID_license", 0xffff_d29f_8041_1572),
        ]);
        let sections = sections_from_kallsyms(&module, |name| match name {
            "demo_a" => Some((".text".to_owned(), 0x40)),
            // A second symbol of the same section does not move it.
            "demo_b" => Some((".text".to_owned(), 0x7f)),
            "demo_init" => Some((".init.text".to_owned(), 0x10)),
            "__UNIQUE_ID_license" => Some((".modinfo".to_owned(), 0x0)),
            _ => None,
        });
        assert_eq!(
            sections,
            vec![
                ModuleSection {
                    name: ".text".into(),
                    addr: VirtAddr(0xffff_ffff_c000_0000)
                },
                ModuleSection {
                    name: ".init.text".into(),
                    addr: VirtAddr(0xffff_ffff_c000_8000)
                },
            ]
        );
    }

    #[test]
    fn search_dirs_put_given_ones_first() {
        let dirs = module_search_dirs(Some("6.1.0-56-cloud-amd64"), &[PathBuf::from("/x")]);
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/x"),
                PathBuf::from("/usr/lib/debug/lib/modules/6.1.0-56-cloud-amd64"),
                PathBuf::from("/lib/modules/6.1.0-56-cloud-amd64"),
            ]
        );
    }
}
