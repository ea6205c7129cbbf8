//! The program object: one dump, its kernel address space, the vmlinux symbol table and the
//! kernel's type information, with typed reads on top. Everything else in this crate is built
//! from these reads, the way drgn's helpers are built on its `Program`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use kdive_arch::{
    platform_for_dump, CpuRegisters, KernelSpace, Platform, PlatformError, VirtAddr,
    START_KERNEL_MAP,
};
use kdive_dump::{
    Compression, Format, KdumpHeader, PhysAddr, PhysMem, Vmcore, Vmcoreinfo,
    DUMP_DH_EXCLUDED_VMEMMAP,
};
use kdive_symbols::{
    Btf, ElfImage, Kallsyms, KallsymsError, KallsymsLocation, Member, TypeInfo, Types, SCAN_SPAN,
};

use crate::error::KernelError;

/// Where [`KernelError::NoSymbol`] looked.
const VMLINUX: &str = "the vmlinux";
const KALLSYMS: &str = "the kernel's kallsyms";

/// Longest C string read from the dump unless asked for less (a `comm` is 16 bytes, a
/// `utsname` field 65).
const CSTR_LIMIT: usize = 4096;
/// The largest single read: sizes come from the types and the dump, and a damaged one must
/// not allocate gigabytes (the biggest legitimate read is a 32 MiB printk buffer).
const MAX_READ: u64 = 1 << 26;

/// What the dump file says about itself, kept after its memory moves into the address space.
#[derive(Debug, Clone)]
pub struct DumpInfo {
    pub paths: Vec<PathBuf>,
    pub format: Format,
    pub compression: Compression,
    /// `kdump_sub_header.dump_level`; `None` for ELF dumps.
    pub dump_level: Option<i32>,
    /// The file is shorter than its headers say.
    pub truncated: bool,
    /// The kdump-compressed headers, one per file.
    pub kdump: Vec<KdumpHeader>,
    pub vmcoreinfo: Option<Vmcoreinfo>,
    /// The dump's architecture.
    pub platform: &'static dyn Platform,
    /// Registers saved per CPU (NT_PRSTATUS, else QEMU's CPU state): what `bt` unwinds from.
    pub cpus: Vec<CpuRegisters>,
    /// `CRASHTIME`, else the kdump header's timestamp.
    pub crash_time: Option<i64>,
    pub page_size: u64,
    /// What the dump reader noticed (truncation, damaged notes), worded for the user.
    pub warnings: Vec<String>,
}

impl DumpInfo {
    /// The dump's facts; fails when kdive does not read its architecture, or its notes
    /// are another architecture's than its header says.
    fn from_vmcore(vmcore: &Vmcore) -> Result<DumpInfo, KernelError> {
        let platform_error = |why| KernelError::Platform {
            path: vmcore
                .paths
                .first()
                .map_or_else(|| "the dump".to_owned(), |p| p.display().to_string()),
            why,
        };
        let platform = platform_for_dump(&vmcore.machine, &vmcore.notes).map_err(platform_error)?;
        let cpus = platform
            .cpu_registers(&vmcore.notes)
            .map_err(platform_error)?;
        Ok(DumpInfo {
            paths: vmcore.paths.clone(),
            format: vmcore.format,
            compression: vmcore.compression,
            dump_level: vmcore.dump_level(),
            truncated: vmcore.truncated,
            kdump: vmcore.kdump.clone(),
            vmcoreinfo: vmcore.vmcoreinfo().cloned(),
            platform,
            cpus,
            crash_time: vmcore.crash_time(),
            // The kernel's pages, which the dump's blocks need not be (QEMU writes arm64
            // dumps in 64 KiB blocks whatever the kernel's page size).
            page_size: vmcore
                .vmcoreinfo()
                .and_then(Vmcoreinfo::page_size)
                .filter(|size| size.is_power_of_two() && (512..=1 << 20).contains(size))
                .unwrap_or_else(|| vmcore.page_size()),
            warnings: vmcore.warnings.clone(),
        })
    }

    /// Some file says `DUMP_DH_EXCLUDED_VMEMMAP`.
    pub fn excluded_vmemmap(&self) -> bool {
        self.kdump
            .iter()
            .any(|h| h.status & DUMP_DH_EXCLUDED_VMEMMAP != 0)
    }

    /// Truncated, or flagged incomplete by the tool that wrote it.
    pub fn incomplete(&self) -> bool {
        self.truncated || self.kdump.iter().any(KdumpHeader::flagged_incomplete)
    }
}

/// A vmlinux of another architecture than the dump's is refused before anything is read
/// through it.
fn check_image_machine(platform: &dyn Platform, image: &ElfImage) -> Result<(), KernelError> {
    match image.e_machine() {
        Some(machine) if machine != platform.elf_machine() => Err(KernelError::Platform {
            path: image.path().display().to_string(),
            why: PlatformError::ForeignImage {
                image_machine: machine,
                platform: platform.name(),
            },
        }),
        _ => Ok(()),
    }
}

fn no_kaslr_offset() -> KernelError {
    KernelError::BadData {
        what: "VMCOREINFO KERNELOFFSET".into(),
        addr: VirtAddr(START_KERNEL_MAP),
        why: "the dump has no VMCOREINFO, so the KASLR offset is unknown (for QEMU dumps, start \
              the guest with -device vmcoreinfo)"
            .into(),
    }
}

fn dump_name(info: &DumpInfo) -> String {
    info.paths
        .first()
        .map_or_else(|| "the dump".to_owned(), |p| p.display().to_string())
}

/// The longest symbol kallsyms is taken to have: it records no sizes, so each symbol runs to
/// the next, except across the gaps between the kernel's parts (drgn's cap).
const MAX_KALLSYMS_SIZE: u64 = 0x10000;

/// kallsyms as a vmlinux's symbol table would have them: kernel-image addresses back at
/// their link addresses (the KASLR offset taken off), sizes up to the next symbol.
fn kallsyms_as_link_symbols<'a>(
    kallsyms: &'a Kallsyms,
    vmcoreinfo: &'a Vmcoreinfo,
    kaslr: u64,
    image_link_base: u64,
) -> Vec<kdive_symbols::Symbol<'a>> {
    let link = |address: u64| {
        if address >= image_link_base.wrapping_add(kaslr) {
            address.wrapping_sub(kaslr)
        } else {
            address
        }
    };
    let mut addresses: Vec<u64> = kallsyms.iter().map(|s| link(s.address)).collect();
    addresses.sort_unstable();
    addresses.dedup();
    kallsyms
        .iter()
        .map(|s| {
            let address = link(s.address);
            let next = addresses
                .get(addresses.partition_point(|&a| a <= address))
                .copied();
            let size = next
                .map(|n| n - address)
                .filter(|&size| size <= MAX_KALLSYMS_SIZE)
                .unwrap_or(0);
            kdive_symbols::Symbol {
                name: s.name,
                address,
                size,
                is_function: matches!(s.kind, 'T' | 't'),
                kind: s.kind,
                // No sections are known: nothing bounds a symbol but its size.
                section_end: u64::MAX,
            }
        })
        .chain(vmcoreinfo_data_symbols(
            kallsyms,
            vmcoreinfo,
            kaslr,
            image_link_base,
        ))
        .collect()
}

/// VMCOREINFO's `SYMBOL(name)` entries in the kernel image that kallsyms lacks: a kernel
/// without `CONFIG_KALLSYMS_ALL` lists only text symbols, and these few variables
/// (`init_uts_ns`, `prb`, `vmap_area_list`, ...) are then all the dump says of its data.
/// Entries outside the image (`mem_section` gives the array's address, not the variable's)
/// are left out.
fn vmcoreinfo_data_symbols<'a>(
    kallsyms: &'a Kallsyms,
    vmcoreinfo: &'a Vmcoreinfo,
    kaslr: u64,
    image_link_base: u64,
) -> impl Iterator<Item = kdive_symbols::Symbol<'a>> + 'a {
    let image_start = image_link_base.wrapping_add(kaslr);
    vmcoreinfo.entries().iter().filter_map(move |(key, value)| {
        let name = key.strip_prefix("SYMBOL(")?.strip_suffix(')')?;
        let address = u64::from_str_radix(value.trim().trim_start_matches("0x"), 16).ok()?;
        if address < image_start || kallsyms.iter().any(|s| s.name == name) {
            return None;
        }
        Some(kdive_symbols::Symbol {
            name,
            address: address.wrapping_sub(kaslr),
            size: 0,
            is_function: false,
            kind: 'D',
            section_end: u64::MAX,
        })
    })
}

/// The kernel's `.BTF`, read from its image between `__start_BTF` and `__stop_BTF`
/// (`at` finds a symbol's runtime address). Kernels without `CONFIG_KALLSYMS_ALL` list only
/// text symbols in kallsyms: there the BTF is looked for where the linker script puts it,
/// in the read-only data between `_etext` and `__init_begin`.
fn btf_in_image(
    space: &dyn KernelSpace,
    at: &dyn Fn(&str) -> Option<VirtAddr>,
    cache_key: Option<&str>,
) -> Result<Btf, KernelError> {
    let missing = |name: &str| KernelError::NoSymbol {
        name: name.into(),
        within: KALLSYMS,
    };
    let (start, stop) = match (at("__start_BTF"), at("__stop_BTF")) {
        (Some(start), Some(stop)) => (start, stop),
        (None, _) => match (
            at("_etext"),
            at("__init_begin").or_else(|| at("_sinittext")),
        ) {
            (Some(from), Some(to)) => btf_between(space, from, to)?,
            _ => return Err(missing("__start_BTF")),
        },
        (Some(_), None) => return Err(missing("__stop_BTF")),
    };
    let len = stop.0.saturating_sub(start.0);
    if len == 0 || len > MAX_READ {
        return Err(KernelError::BadData {
            what: "the kernel's .BTF".into(),
            addr: start,
            why: format!("__start_BTF..__stop_BTF spans {len} bytes"),
        });
    }
    let mut data = vec![0u8; len as usize];
    space
        .read_virt(start, &mut data)
        .map_err(|source| KernelError::Read {
            what: "the kernel's .BTF".into(),
            source,
        })?;
    Btf::parse_and_cache(data, cache_key, ".BTF of the kernel in the dump").map_err(|e| {
        KernelError::BadData {
            what: "the kernel's .BTF".into(),
            addr: start,
            why: e.to_string(),
        }
    })
}

/// The `.BTF` in `[from, to)` of the kernel image: the first 4-byte-aligned header
/// (magic 0xeb9f, version 1, a header of at least 24 bytes) whose type and string sections
/// lie in the window.
fn btf_between(
    space: &dyn KernelSpace,
    from: VirtAddr,
    to: VirtAddr,
) -> Result<(VirtAddr, VirtAddr), KernelError> {
    let not_found = |why: String| KernelError::BadData {
        what: "the kernel's .BTF".into(),
        addr: from,
        why,
    };
    let len = to.0.saturating_sub(from.0);
    if len == 0 || len > MAX_READ {
        return Err(not_found(format!(
            "kallsyms has no __start_BTF, and _etext..__init_begin spans {len} bytes"
        )));
    }
    let mut window = vec![0u8; len as usize];
    // Pages the dump lacks read as zeros: the header is looked for in those it has.
    let page = 4096u64;
    for (i, chunk) in window.chunks_mut(page as usize).enumerate() {
        let addr = VirtAddr(from.0.wrapping_add(i as u64 * page));
        if space.read_virt(addr, chunk).is_err() {
            chunk.fill(0);
        }
    }
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(window.get(at..at + 4)?.try_into().ok()?))
    };
    for at in (0..window.len().saturating_sub(24)).step_by(4) {
        if window[at..at + 4] != [0x9f, 0xeb, 1, 0] {
            continue;
        }
        let fields = (1..6)
            .map(|i| word(at + 4 * i))
            .collect::<Option<Vec<u32>>>();
        let Some(&[hdr_len, type_off, type_len, str_off, str_len]) = fields.as_deref() else {
            continue;
        };
        let end = [(type_off, type_len), (str_off, str_len)]
            .iter()
            .map(|&(off, len)| u64::from(off) + u64::from(len))
            .max()
            .unwrap_or(0)
            + u64::from(hdr_len);
        if hdr_len >= 24 && type_len > 0 && str_len > 0 && at as u64 + end <= len {
            let start = from.0 + at as u64;
            return Ok((VirtAddr(start), VirtAddr(start + end)));
        }
    }
    Err(not_found(
        "kallsyms has no __start_BTF (no CONFIG_KALLSYMS_ALL), and no BTF header lies between _etext and __init_begin"
            .into(),
    ))
}

/// kallsyms read through `space` at the locations `info` gives.
fn kallsyms_in(
    space: &dyn KernelSpace,
    info: &Vmcoreinfo,
) -> Option<Result<Kallsyms, KallsymsError>> {
    let read = |addr: u64, buf: &mut [u8]| space.read_virt(VirtAddr(addr), buf).is_ok();
    let location = match KallsymsLocation::from_symbols(|name| info.symbol(name)) {
        Some(location) => location,
        // Before 6.0 VMCOREINFO names no kallsyms table: look for them in the image.
        None => match KallsymsLocation::scan(info.symbol("_stext")?, SCAN_SPAN, &read) {
            Ok(location) => location,
            Err(err) => return Some(Err(err)),
        },
    };
    // Name lengths took two bytes from 6.1; nothing in the dump says so: both are tried.
    Some(Kallsyms::read(&location, None, &read))
}

/// A kernel inside a dump.
pub struct Kernel {
    info: DumpInfo,
    space: Box<dyn KernelSpace>,
    /// Shared with triage's symbol lookup (one mapping, one DWARF index per session).
    vmlinux: Rc<ElfImage>,
    types: Types,
    /// vmlinux's `_text`..`_end` (link addresses), looked up once.
    image_range: std::sync::OnceLock<Option<(u64, u64)>>,
    /// `cpu_possible_mask`, read once: per-CPU counters of every task are summed over it.
    possible_cpus: std::sync::OnceLock<Vec<u32>>,
    /// Set when the kernel was read without a vmlinux.
    dump_only: Option<DumpOnlySources>,
}

/// What a kernel opened from the dump alone has: its symbols (how many, from kallsyms) and
/// types (the BTF's origin), or why each could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpOnlySources {
    pub symbols: Result<usize, String>,
    pub types: Result<String, String>,
}

impl Kernel {
    /// Opens the kernel of `vmcore` with the symbols and BTF of `vmlinux`. Only the ELF
    /// symbol table and `.BTF` are read (in parallel); DWARF stays untouched.
    pub fn open(vmcore: Vmcore, vmlinux: &Path) -> Result<Kernel, KernelError> {
        let image_error = |source| KernelError::Image {
            path: vmlinux.display().to_string(),
            source,
        };
        // The symbol table and the BTF index are the bulk of opening; build them at once.
        let (image, btf) = std::thread::scope(|scope| {
            let btf = scope.spawn(|| Btf::from_elf_file(vmlinux, None));
            let image = ElfImage::open(vmlinux);
            (image, btf.join())
        });
        let image = image.map_err(image_error)?;
        if let Ok(platform) = platform_for_dump(&vmcore.machine, &vmcore.notes) {
            check_image_machine(platform, &image)?;
        }
        let btf = match btf {
            Ok(btf) => btf.map_err(image_error)?,
            Err(_) => {
                return Err(KernelError::BadData {
                    what: format!("{}: .BTF", vmlinux.display()),
                    addr: VirtAddr(0),
                    why: "the BTF reader stopped unexpectedly".into(),
                })
            }
        };
        // BTF alone: it describes every struct the kernel model reads, and asking DWARF too
        // would index the whole debug info whenever a field-presence check says "no".
        let mut types = Types::new();
        types.push_vmlinux_btf(Arc::new(btf));
        Kernel::new(vmcore, image, types)
    }

    /// A kernel over already opened symbols and types (tests build both in memory).
    pub fn new(vmcore: Vmcore, vmlinux: ElfImage, types: Types) -> Result<Kernel, KernelError> {
        let info = DumpInfo::from_vmcore(&vmcore)?;
        check_image_machine(info.platform, &vmlinux)?;
        let mem: Arc<dyn PhysMem> = Arc::from(vmcore.mem);
        let notes = &vmcore.notes;
        // A QEMU dump of a guest without `-device vmcoreinfo`: the KASLR offset is where the
        // vmlinux's `linux_banner` shows up in the guest's kernel mapping.
        let banner = if notes.vmcoreinfo.is_none() && !notes.qemu_cpus.is_empty() {
            Some(linux_banner(&vmlinux)?)
        } else {
            None
        };
        let banner = banner
            .as_ref()
            .map(|(link, bytes)| (*link, bytes.as_slice()));
        let space = info.platform.kernel_space(mem, notes, banner)?;
        let kernel = Kernel::assemble(info, space, vmlinux, types)?;
        kernel.check_vmlinux()?;
        Ok(kernel)
    }

    /// A kernel read with nothing but the dump: symbols from the kernel's kallsyms, types
    /// from the `.BTF` in its image, both located through VMCOREINFO (Linux 6.0 on). The
    /// symbols stand in for a vmlinux that has no sections and no DWARF, so no source lines.
    /// Where kallsyms or the BTF cannot be read (an older kernel, the image's pages missing)
    /// the kernel still opens, without them: what VMCOREINFO describes (the log) still
    /// reads; [`Kernel::dump_only`] says what is missing and why.
    pub fn open_without_vmlinux(vmcore: Vmcore) -> Result<Kernel, KernelError> {
        let info = DumpInfo::from_vmcore(&vmcore)?;
        let mem: Arc<dyn PhysMem> = Arc::from(vmcore.mem);
        let space = info.platform.kernel_space(mem, &vmcore.notes, None)?;
        let kaslr = space.kaslr_offset().ok_or_else(no_kaslr_offset)?;
        let vmcoreinfo = info.vmcoreinfo.as_ref().ok_or_else(no_kaslr_offset)?;
        let origin = PathBuf::from(format!("kallsyms in {}", dump_name(&info)));
        // The table depends on the build alone (link addresses): one cache entry per build id.
        let cache_key = vmcoreinfo.build_id().map(|id| {
            format!(
                "kallsyms+vmcoreinfo BUILD-ID={id} OSRELEASE={}",
                vmcoreinfo.osrelease().unwrap_or("")
            )
        });
        let cached = cache_key
            .as_deref()
            .filter(|_| KallsymsLocation::can_be_found(|name| vmcoreinfo.symbol(name)))
            .and_then(|key| ElfImage::cached_symbols(origin.clone(), key));
        // The symbols, and the BTF when it was read beside them.
        let btf_key = cache_key.as_deref().map(|key| format!("btf {key}"));
        let (vmlinux, symbols, btf_read) = match cached {
            Some(image) => {
                let count = image.symbols().len();
                (image, Ok(count), None)
            }
            None => match kallsyms_in(space.as_ref(), vmcoreinfo) {
                Some(Ok(table)) => {
                    let at = |name: &str| {
                        table
                            .iter()
                            .find(|s| s.name == name)
                            .map(|s| VirtAddr(s.address))
                    };
                    // Laying the table out (and caching it) and reading the BTF are the bulk
                    // of a first session: at once.
                    let (image, btf) = std::thread::scope(|scope| {
                        let btf =
                            scope.spawn(|| btf_in_image(space.as_ref(), &at, btf_key.as_deref()));
                        let image = ElfImage::from_symbols(
                            origin,
                            cache_key.as_deref(),
                            kallsyms_as_link_symbols(
                                &table,
                                vmcoreinfo,
                                kaslr,
                                space.image_link_base(),
                            ),
                        );
                        (image, btf.join())
                    });
                    let btf = match btf {
                        Ok(read) => read.map_err(|e| e.to_string()),
                        Err(_) => Err("the BTF reader stopped unexpectedly".to_owned()),
                    };
                    (image, Ok(table.len()), Some(btf))
                }
                found => (
                    ElfImage::from_symbols(
                        PathBuf::from(format!("no symbols (VMCOREINFO of {})", dump_name(&info))),
                        None,
                        Vec::new(),
                    ),
                    Err(match found {
                        Some(Err(err)) => err.to_string(),
                        _ => "VMCOREINFO locates neither kallsyms nor _stext to look for it from"
                            .to_owned(),
                    }),
                    None,
                ),
            },
        };
        let mut types = Types::new();
        let btf = match (&symbols, btf_read) {
            (Err(_), _) => Err("no symbols to find it by".to_owned()),
            (Ok(_), Some(read)) => read,
            (Ok(_), None) => match btf_key
                .as_deref()
                .and_then(|key| Btf::from_cache(key, ".BTF of the kernel in the dump"))
            {
                Some(btf) => Ok(btf),
                None => {
                    let at = |name: &str| {
                        vmlinux
                            .lookup_name(name)
                            .next()
                            .map(|s| VirtAddr(s.address.wrapping_add(kaslr)))
                    };
                    btf_in_image(space.as_ref(), &at, btf_key.as_deref()).map_err(|e| e.to_string())
                }
            },
        };
        let types_source = btf.map(|btf| {
            let origin = btf.origin().to_owned();
            types.push_vmlinux_btf(Arc::new(btf));
            origin
        });
        let mut kernel = Kernel::assemble(info, space, vmlinux, types)?;
        kernel.dump_only = Some(DumpOnlySources {
            symbols,
            types: types_source,
        });
        Ok(kernel)
    }

    /// For a kernel opened without a vmlinux, where its symbols and types came from.
    pub fn dump_only(&self) -> Option<&DumpOnlySources> {
        self.dump_only.as_ref()
    }

    fn assemble(
        info: DumpInfo,
        space: Box<dyn KernelSpace>,
        vmlinux: ElfImage,
        types: Types,
    ) -> Result<Kernel, KernelError> {
        if space.kaslr_offset().is_none() {
            return Err(no_kaslr_offset());
        }
        Ok(Kernel {
            info,
            space,
            vmlinux: Rc::new(vmlinux),
            types,
            image_range: std::sync::OnceLock::new(),
            possible_cpus: std::sync::OnceLock::new(),
            dump_only: None,
        })
    }

    /// VMCOREINFO records where some symbols ended up at run time; the vmlinux plus the
    /// KASLR offset must put them there too, or its symbols and types describe another
    /// kernel.
    fn check_vmlinux(&self) -> Result<(), KernelError> {
        let Some(info) = &self.info.vmcoreinfo else {
            return Ok(());
        };
        for symbol in ["init_uts_ns", "_stext"] {
            let (Some(dump), Ok(image)) = (info.symbol(symbol), self.symbol(symbol)) else {
                continue;
            };
            if dump != image.0 {
                return Err(KernelError::WrongVmlinux {
                    vmlinux: self.vmlinux.path().display().to_string(),
                    symbol,
                    dump,
                    image: image.0,
                });
            }
        }
        Ok(())
    }

    /// The dump's architecture.
    pub fn platform(&self) -> &'static dyn Platform {
        self.dump().platform
    }

    pub fn dump(&self) -> &DumpInfo {
        &self.info
    }

    pub fn vmlinux(&self) -> &ElfImage {
        &self.vmlinux
    }

    /// The vmlinux image itself, for lookups that outlive a borrow (triage's [`KernelImages`]).
    ///
    /// [`KernelImages`]: kdive_symbols::KernelImages
    pub fn vmlinux_shared(&self) -> Rc<ElfImage> {
        self.vmlinux.clone()
    }

    pub fn types(&self) -> &Types {
        &self.types
    }

    pub fn address_space(&self) -> &dyn KernelSpace {
        self.space.as_ref()
    }

    pub fn page_size(&self) -> u64 {
        self.info.page_size
    }

    /// Warnings of the dump reader and the address-space setup.
    pub fn warnings(&self) -> Vec<String> {
        let mut all = self.info.warnings.clone();
        all.extend(self.space.warnings().iter().cloned());
        all
    }

    // ---- symbols ----------------------------------------------------------------------

    /// The runtime address of a vmlinux symbol: kernel-image symbols move with KASLR; per-CPU
    /// symbols (below `__START_KERNEL_map`) are offsets into each CPU's area and do not.
    pub fn symbol(&self, name: &str) -> Result<VirtAddr, KernelError> {
        let symbol = self
            .vmlinux
            .lookup_name(name)
            .next()
            .ok_or_else(|| self.no_symbol(name))?;
        Ok(self.relocate(symbol.address))
    }

    fn no_symbol(&self, name: &str) -> KernelError {
        KernelError::NoSymbol {
            name: name.into(),
            within: if self.dump_only.is_some() {
                KALLSYMS
            } else {
                VMLINUX
            },
        }
    }

    /// Whether the symbol table holds functions only: kallsyms of a kernel built without
    /// `CONFIG_KALLSYMS_ALL` (Debian's 6.1 cloud-arm64), read without a vmlinux. Its
    /// variables (`init_task`, `modules`, the per-CPU offsets) are then out of reach.
    pub fn symbols_are_functions_only(&self) -> bool {
        !self.has_symbol("init_task")
    }

    pub fn has_symbol(&self, name: &str) -> bool {
        self.vmlinux.lookup_name(name).next().is_some()
    }

    /// The size the symbol table gives `name` (an array's length times its element size).
    pub fn symbol_size(&self, name: &str) -> Result<u64, KernelError> {
        self.vmlinux
            .lookup_name(name)
            .next()
            .map(|s| s.size)
            .ok_or_else(|| self.no_symbol(name))
    }

    /// vmlinux's image, `_text`..`_end`, at link addresses: where its symbols name code and
    /// data (per-CPU offsets and absolute symbols lie outside).
    pub fn image_range(&self) -> Option<(u64, u64)> {
        *self.image_range.get_or_init(|| {
            let address = |name: &str| self.vmlinux.lookup_name(name).next().map(|s| s.address);
            // kallsyms without CONFIG_KALLSYMS_ALL (arm64 6.1) has neither `_text` nor
            // `_end`: `_stext` starts the image, its last symbol ends it.
            let start = address("_text").or_else(|| address("_stext"));
            let end = address("_end").or_else(|| {
                let last = self.vmlinux.symbols().last()?;
                Some(last.address.saturating_add(last.size.max(1)))
            });
            start.zip(end)
        })
    }

    /// A vmlinux link-time address where the running kernel has it: kernel-image addresses
    /// move by the KASLR offset; per-CPU offsets and others stay.
    pub fn relocate(&self, link: u64) -> VirtAddr {
        if link >= self.space.image_link_base() {
            VirtAddr(link.wrapping_add(self.space.kaslr_offset().unwrap_or(0)))
        } else {
            VirtAddr(link)
        }
    }

    /// The kernel's own symbol table (kallsyms), read from the dump where VMCOREINFO
    /// locates it (6.0 on); `None` where it does not.
    pub fn kallsyms(&self) -> Option<Result<Kallsyms, KallsymsError>> {
        kallsyms_in(self.space.as_ref(), self.info.vmcoreinfo.as_ref()?)
    }

    // ---- types ------------------------------------------------------------------------

    /// A member of a struct by path (`thread_info.cpu`, `rss_stat.count`), from the
    /// kernel's BTF.
    pub fn member(&self, ty: &str, path: &str) -> Result<Member, KernelError> {
        self.types
            .member(ty, path)
            .map_err(|source| KernelError::Type {
                what: format!("{ty}.{path}"),
                source,
            })
    }

    /// Whether `ty` has the member: layouts are told apart by fields, not by version.
    pub fn has_member(&self, ty: &str, path: &str) -> Result<bool, KernelError> {
        self.types
            .has_member(ty, path)
            .map_err(|source| KernelError::Type {
                what: format!("{ty}.{path}"),
                source,
            })
    }

    pub fn offset_of(&self, ty: &str, path: &str) -> Result<u64, KernelError> {
        Ok(self.member(ty, path)?.offset)
    }

    pub fn struct_size(&self, ty: &str) -> Result<u64, KernelError> {
        self.types
            .struct_size(ty)
            .map_err(|source| KernelError::Type {
                what: format!("sizeof({ty})"),
                source,
            })
    }

    /// An enumerator's value, in the named enum or (with `None`) in any.
    pub fn enum_value(&self, enum_name: Option<&str>, name: &str) -> Result<i128, KernelError> {
        self.types
            .enum_value(enum_name, name)
            .map_err(|source| KernelError::Type {
                what: name.into(),
                source,
            })
    }

    /// The enumerators of `enum TAG`, in their declared order.
    pub fn enumerators(&self, tag: &str) -> Result<Vec<(String, i128)>, KernelError> {
        use kdive_symbols::{CType, TypeInfo};
        let what = format!("enum {tag}");
        let node = self
            .types
            .c_type(&what)
            .and_then(|ty| self.types.c_node(ty))
            .map_err(|source| KernelError::Type {
                what: what.clone(),
                source,
            })?;
        match node {
            CType::Enum { enumerators, .. } => Ok(enumerators),
            _ => Err(KernelError::BadData {
                what,
                addr: VirtAddr(0),
                why: "not an enum".into(),
            }),
        }
    }

    // ---- memory -----------------------------------------------------------------------

    pub fn read(&self, addr: VirtAddr, buf: &mut [u8], what: &str) -> Result<(), KernelError> {
        self.space
            .read_virt(addr, buf)
            .map_err(|source| KernelError::Read {
                what: what.into(),
                source,
            })
    }

    pub fn read_bytes(&self, addr: VirtAddr, len: u64, what: &str) -> Result<Vec<u8>, KernelError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|_| len <= MAX_READ)
            .ok_or_else(|| KernelError::BadData {
                what: what.into(),
                addr,
                why: format!("{len} bytes is more than one read may take ({MAX_READ})"),
            })?;
        let mut buf = vec![0u8; len];
        self.read(addr, &mut buf, what)?;
        Ok(buf)
    }

    pub fn read_u64(&self, addr: VirtAddr, what: &str) -> Result<u64, KernelError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn read_u32(&self, addr: VirtAddr, what: &str) -> Result<u32, KernelError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_ptr(&self, addr: VirtAddr, what: &str) -> Result<VirtAddr, KernelError> {
        self.read_u64(addr, what).map(VirtAddr)
    }

    /// The NUL-terminated text of the `char` array `member` of the `ty` at `addr`, at most
    /// `limit` bytes of it (at least one is read).
    pub fn read_char_array(
        &self,
        addr: VirtAddr,
        ty: &str,
        member: &str,
        limit: u64,
    ) -> Result<String, KernelError> {
        let m = self.member(ty, member)?;
        let bytes = self.read_bytes(
            VirtAddr(addr.0.wrapping_add(m.offset)),
            m.size.min(limit).max(1),
            &format!("{ty}.{member}"),
        )?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned())
    }

    /// A NUL-terminated string, lossily decoded, at most `limit` bytes.
    pub fn read_cstr(
        &self,
        addr: VirtAddr,
        limit: usize,
        what: &str,
    ) -> Result<String, KernelError> {
        let bytes = self
            .space
            .read_cstr(addr, limit.min(CSTR_LIMIT))
            .map_err(|source| KernelError::Read {
                what: what.into(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The `u64` value of a global variable.
    pub fn read_symbol_u64(&self, name: &str) -> Result<u64, KernelError> {
        self.read_u64(self.symbol(name)?, name)
    }

    /// Translates a kernel virtual address.
    pub fn virt_to_phys(&self, addr: VirtAddr) -> Result<PhysAddr, KernelError> {
        self.space
            .translate(addr)
            .map_err(|source| KernelError::Read {
                what: format!("translation of {addr}"),
                source,
            })
    }

    /// Reads a member of the struct at `addr`, zero-extended (bitfields extracted).
    pub fn read_field(&self, addr: VirtAddr, ty: &str, path: &str) -> Result<u64, KernelError> {
        let member = self.member(ty, path)?;
        let at = field_addr(addr, &member, ty, path)?;
        let size = scalar_size(&member, addr, ty, path)?;
        let mut buf = [0u8; 8];
        let dst = buf.get_mut(..size).unwrap_or_default();
        // Described only when it fails: a task list reads millions of fields.
        self.space
            .read_virt(at, dst)
            .map_err(|source| KernelError::Read {
                what: format!("{ty}.{path} at {addr}"),
                source,
            })?;
        extract(&member, &buf, addr, ty, path)
    }

    /// Reads a member as a signed value, sign-extended from its size.
    pub fn read_field_signed(
        &self,
        addr: VirtAddr,
        ty: &str,
        path: &str,
    ) -> Result<i64, KernelError> {
        let member = self.member(ty, path)?;
        let raw = self.read_field(addr, ty, path)?;
        Ok(sign_extend(raw, &member))
    }

    /// Reads the whole struct at `addr` once, so that its fields cost no further reads.
    /// When some page of it is missing, fields are read one by one instead.
    pub fn read_struct(&self, addr: VirtAddr, ty: &str) -> Result<StructBuf<'_>, KernelError> {
        let size = self.struct_size(ty)?;
        let bytes = self.read_bytes(addr, size, &format!("{ty} at {addr}")).ok();
        Ok(StructBuf {
            kernel: self,
            ty: ty.to_owned(),
            addr,
            bytes,
        })
    }

    // ---- CPUs -------------------------------------------------------------------------

    /// `__per_cpu_offset[cpu]`.
    pub fn per_cpu_offset(&self, cpu: u32) -> Result<u64, KernelError> {
        let base = self.symbol("__per_cpu_offset")?;
        let at = base
            .0
            .checked_add(u64::from(cpu) * 8)
            .ok_or_else(|| KernelError::BadData {
                what: "__per_cpu_offset".into(),
                addr: base,
                why: format!("cpu {cpu} is out of range"),
            })?;
        self.read_u64(VirtAddr(at), "__per_cpu_offset")
    }

    /// `per_cpu_ptr(ptr, cpu)`: a per-CPU symbol's or pointer's address on one CPU.
    pub fn per_cpu_ptr(&self, ptr: VirtAddr, cpu: u32) -> Result<VirtAddr, KernelError> {
        Ok(VirtAddr(ptr.0.wrapping_add(self.per_cpu_offset(cpu)?)))
    }

    /// `nr_cpu_ids`, checked against the length of `__per_cpu_offset` (`NR_CPUS`) where the
    /// symbol table gives it: per-CPU loops run this many times.
    pub fn nr_cpu_ids(&self) -> Result<u32, KernelError> {
        let addr = self.symbol("nr_cpu_ids")?;
        let count = self.read_u32(addr, "nr_cpu_ids")?;
        let limit = self
            .symbol_size("__per_cpu_offset")
            .ok()
            .map(|size| size / 8);
        match limit {
            Some(limit) if limit > 0 && u64::from(count) > limit => Err(KernelError::BadData {
                what: "nr_cpu_ids".into(),
                addr,
                why: format!("{count} CPUs, more than the {limit} of __per_cpu_offset"),
            }),
            _ => Ok(count),
        }
    }

    /// The CPUs set in `__cpu_<which>_mask` (`online`, `present`, `possible`, `active`).
    /// The possible CPUs (`__cpu_possible_mask`, else the online ones), read once.
    pub fn possible_cpus(&self) -> Result<&[u32], KernelError> {
        if let Some(cpus) = self.possible_cpus.get() {
            return Ok(cpus);
        }
        let cpus = self.cpu_mask("possible").or_else(|_| self.online_cpus())?;
        Ok(self.possible_cpus.get_or_init(|| cpus))
    }

    pub fn cpu_mask(&self, which: &str) -> Result<Vec<u32>, KernelError> {
        let name = format!("__cpu_{which}_mask");
        let addr = self.symbol(&name)?;
        let size = self.struct_size("cpumask")?;
        let bytes = self.read_bytes(addr, size, &name)?;
        let mut cpus = Vec::new();
        for (word_index, word) in bytes.chunks_exact(8).enumerate() {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(word);
            let bits = u64::from_le_bytes(raw);
            for bit in 0..64u32 {
                if bits & (1u64 << bit) != 0 {
                    let word = u32::try_from(word_index).unwrap_or(u32::MAX);
                    cpus.push(word.saturating_mul(64).saturating_add(bit));
                }
            }
        }
        Ok(cpus)
    }

    /// `for_each_online_cpu`
    pub fn online_cpus(&self) -> Result<Vec<u32>, KernelError> {
        self.cpu_mask("online")
    }
}

/// The link address and bytes of the vmlinux's `linux_banner` ("Linux version ...").
fn linux_banner(image: &ElfImage) -> Result<(VirtAddr, Vec<u8>), KernelError> {
    let symbol = image
        .lookup_name("linux_banner")
        .next()
        .ok_or_else(|| KernelError::NoSymbol {
            name: "linux_banner".into(),
            within: VMLINUX,
        })?;
    let bad = |why: &str| KernelError::BadData {
        what: format!("{}: linux_banner", image.path().display()),
        addr: VirtAddr(symbol.address),
        why: why.into(),
    };
    let (section, start) = image
        .section_containing(symbol.address)
        .ok_or_else(|| bad("in no allocated section"))?;
    let data = image
        .section_data(section)
        .ok_or_else(|| bad("its section has no data in the file"))?;
    let offset = usize::try_from(symbol.address - start).map_err(|_| bad("offset too large"))?;
    let len = usize::try_from(symbol.size).map_err(|_| bad("size too large"))?;
    let bytes = offset
        .checked_add(len)
        .and_then(|end| data.get(offset..end))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| bad("the symbol's bytes lie outside its section"))?;
    Ok((VirtAddr(symbol.address), bytes.to_vec()))
}

/// One struct read from the dump, with its fields looked up by path.
pub struct StructBuf<'k> {
    kernel: &'k Kernel,
    ty: String,
    addr: VirtAddr,
    /// `None` when the whole struct could not be read: fields are then read one by one.
    bytes: Option<Vec<u8>>,
}

impl StructBuf<'_> {
    pub fn addr(&self) -> VirtAddr {
        self.addr
    }

    /// A member, zero-extended.
    pub fn field(&self, path: &str) -> Result<u64, KernelError> {
        let Some(bytes) = &self.bytes else {
            return self.kernel.read_field(self.addr, &self.ty, path);
        };
        let member = self.kernel.member(&self.ty, path)?;
        let size = scalar_size(&member, self.addr, &self.ty, path)?;
        let start = usize::try_from(member.offset).unwrap_or(usize::MAX);
        let raw = start
            .checked_add(size)
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| self.outside(path))?;
        extract(&member, raw, self.addr, &self.ty, path)
    }

    pub fn field_signed(&self, path: &str) -> Result<i64, KernelError> {
        let member = self.kernel.member(&self.ty, path)?;
        Ok(sign_extend(self.field(path)?, &member))
    }

    pub fn field_ptr(&self, path: &str) -> Result<VirtAddr, KernelError> {
        self.field(path).map(VirtAddr)
    }

    /// The address of a member inside this struct.
    pub fn field_addr(&self, path: &str) -> Result<VirtAddr, KernelError> {
        let member = self.kernel.member(&self.ty, path)?;
        field_addr(self.addr, &member, &self.ty, path)
    }

    /// A `char[]` member as a string, up to its first NUL.
    pub fn field_str(&self, path: &str) -> Result<String, KernelError> {
        let member = self.kernel.member(&self.ty, path)?;
        let raw = match &self.bytes {
            Some(bytes) => {
                let start = usize::try_from(member.offset).unwrap_or(usize::MAX);
                let len = usize::try_from(member.size).unwrap_or(usize::MAX);
                start
                    .checked_add(len)
                    .and_then(|end| bytes.get(start..end))
                    .ok_or_else(|| self.outside(path))?
                    .to_vec()
            }
            None => self.kernel.read_bytes(
                field_addr(self.addr, &member, &self.ty, path)?,
                member.size,
                &format!("{}.{path} at {}", self.ty, self.addr),
            )?,
        };
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned())
    }

    fn outside(&self, path: &str) -> KernelError {
        KernelError::BadData {
            what: format!("{}.{path}", self.ty),
            addr: self.addr,
            why: "the member lies outside the struct's size".into(),
        }
    }
}

fn field_addr(
    addr: VirtAddr,
    member: &Member,
    ty: &str,
    path: &str,
) -> Result<VirtAddr, KernelError> {
    addr.0
        .checked_add(member.offset)
        .map(VirtAddr)
        .ok_or_else(|| KernelError::BadData {
            what: format!("{ty}.{path}"),
            addr,
            why: "address overflows".into(),
        })
}

/// The byte count to read for an integer-like member (1, 2, 4 or 8).
fn scalar_size(
    member: &Member,
    addr: VirtAddr,
    ty: &str,
    path: &str,
) -> Result<usize, KernelError> {
    match member.size {
        1 | 2 | 4 | 8 => Ok(usize::try_from(member.size).unwrap_or(8)),
        other => Err(KernelError::BadData {
            what: format!("{ty}.{path}"),
            addr,
            why: format!("a {other}-byte member is not a scalar"),
        }),
    }
}

fn extract(
    member: &Member,
    raw: &[u8],
    addr: VirtAddr,
    ty: &str,
    path: &str,
) -> Result<u64, KernelError> {
    member.extract(raw).ok_or_else(|| KernelError::BadData {
        what: format!("{ty}.{path}"),
        addr,
        why: "bitfield outside its storage".into(),
    })
}

fn sign_extend(raw: u64, member: &Member) -> i64 {
    let bits = member
        .bit_size
        .unwrap_or_else(|| member.size.saturating_mul(8))
        .clamp(1, 64);
    let shift = 64 - u32::try_from(bits).unwrap_or(64);
    ((raw << shift) as i64) >> shift
}
