//! Synthetic vmcores for kdive's tests: ELF cores (through `object::write`), kdump-compressed
//! files with a chosen compression per page, excluded pages and a shared zero page, the
//! flattened layout, split sets, and helpers to damage them.

pub mod btf;
pub mod debuginfod;
pub mod http_fake;
pub mod lab;
pub mod pagetable;
pub mod pagetable_aarch64;
pub mod phys_pages;
pub mod symtab;
pub mod synthetic;

use std::collections::BTreeMap;
use std::io::Write;

use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::Endianness;

/// A directory of its own under the system's temporary directory, removed when dropped.
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// `kdive-<label>-<pid>-<n>`: unique within the process and across parallel test binaries.
    pub fn new(label: &str) -> std::io::Result<TempDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kdive-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Deterministic mutations of fuzz seeds, for the corpus replays that run on stable Rust:
/// flipped bytes, overwritten little-endian words, and now and then a truncation. One
/// xorshift generator, so each replay sees the same inputs on every run.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed | 1 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// `data` with `edits` edits, each a byte XORed or a `word`-byte (4 or 8) aligned word
    /// overwritten; one time in four, cut short as well.
    pub fn mutate(&mut self, data: &[u8], edits: usize, word: usize) -> Vec<u8> {
        let mut m = data.to_vec();
        let word = word.clamp(1, 8);
        for _ in 0..edits {
            let x = self.next();
            let at = (x >> 16) as usize % m.len().max(1);
            if x & 1 == 0 {
                if let Some(b) = m.get_mut(at) {
                    *b ^= (x >> 8) as u8 | 1;
                }
            } else {
                let start = at - at % word;
                if let Some(w) = m.get_mut(start..start + word) {
                    w.copy_from_slice(&(x | 1).to_le_bytes()[..word]);
                }
            }
        }
        let x = self.next();
        if x & 0x30 == 0 {
            m.truncate((x >> 24) as usize % m.len().max(1));
        }
        m
    }
}

/// Replays the fuzz target `target`'s corpus on stable Rust through its entry point `entry`:
/// `seed` (written as `fuzz/corpus/<target>/<seed_name>` when `KDIVE_UPDATE_CORPUS` is set),
/// every committed file, and 2,000 [`Mutator`] mutations of each. Fails when the corpus
/// directory holds nothing, so that a replay cannot pass on an empty corpus.
pub fn replay_corpus(
    target: &str,
    seed_name: &str,
    seed: Vec<u8>,
    mutator_seed: u64,
    entry: impl Fn(&[u8]),
) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(seed_name), &seed).expect("write seed");
    }
    let mut inputs = vec![seed];
    if let Ok(files) = std::fs::read_dir(&dir) {
        for file in files.flatten() {
            inputs.push(std::fs::read(file.path()).expect("corpus file"));
        }
    }
    assert!(
        inputs.len() > 1,
        "{} holds the committed seed",
        dir.display()
    );
    let mut mutator = Mutator::new(mutator_seed);
    for data in &inputs {
        entry(data);
        for _ in 0..2000 {
            entry(&mutator.mutate(data, 4, 4));
        }
    }
}

/// A page's content for a test: deterministic, different for every pfn and seed, and
/// compressible (so compressed and raw pages both occur).
pub fn page_pattern(pfn: u64, seed: u64, size: usize) -> Vec<u8> {
    let mut page = vec![0u8; size];
    let mut x = pfn.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed;
    for (i, chunk) in page.chunks_mut(8).enumerate() {
        // Half text-like repeats, half pseudo-random words.
        if i % 4 < 2 {
            chunk.copy_from_slice(&(pfn ^ (i as u64 / 16)).to_le_bytes()[..chunk.len()]);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
    page
}

/// x86_64 `user_regs_struct` with rip and rsp set (the rest numbered for recognition).
pub fn user_regs(rip: u64, rsp: u64) -> [u64; 27] {
    let mut regs = [0u64; 27];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = 0x1000 + i as u64;
    }
    regs[16] = rip;
    regs[19] = rsp;
    regs
}

struct Note {
    name: &'static [u8],
    n_type: u32,
    desc: Vec<u8>,
}

/// Serialized notes, and where the VMCOREINFO desc starts within them.
fn serialize_notes(notes: &[Note]) -> (Vec<u8>, Option<(usize, usize)>) {
    let mut out = Vec::new();
    let mut vmcoreinfo = None;
    for note in notes {
        let namesz = note.name.len() + 1;
        out.extend_from_slice(&(namesz as u32).to_le_bytes());
        out.extend_from_slice(&(note.desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&note.n_type.to_le_bytes());
        out.extend_from_slice(note.name);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        if note.name == b"VMCOREINFO" {
            vmcoreinfo = Some((out.len(), note.desc.len()));
        }
        out.extend_from_slice(&note.desc);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    (out, vmcoreinfo)
}

/// Collects the notes every dump format carries.
#[derive(Default)]
pub struct NoteSet {
    notes: Vec<Note>,
}

impl NoteSet {
    pub fn vmcoreinfo(&mut self, text: &str) {
        self.notes.push(Note {
            name: b"VMCOREINFO",
            n_type: 0,
            desc: text.as_bytes().to_vec(),
        });
    }

    /// An x86_64 NT_PRSTATUS: `pr_pid` at 32, `pr_reg` at 112, 336 bytes in all.
    pub fn prstatus(&mut self, pid: u32, regs: [u64; 27]) {
        self.prstatus_words(pid, &regs, 336);
    }

    /// An NT_PRSTATUS of `size` bytes (x86_64's is 336, aarch64's 392): `pr_pid` at 32,
    /// `regs` from `pr_reg` at 112.
    pub fn prstatus_words(&mut self, pid: u32, regs: &[u64], size: usize) {
        let mut desc = vec![0u8; size.max(112 + regs.len() * 8)];
        desc[32..36].copy_from_slice(&pid.to_le_bytes());
        for (i, r) in regs.iter().enumerate() {
            desc[112 + i * 8..120 + i * 8].copy_from_slice(&r.to_le_bytes());
        }
        self.notes.push(Note {
            name: b"CORE",
            n_type: elf::NT_PRSTATUS,
            desc,
        });
    }

    /// A QEMU "QEMU" note: QEMUCPUState version 1 with rip, rsp and cr3 set.
    pub fn qemu_cpu(&mut self, rip: u64, rsp: u64, cr3: u64) {
        let mut desc = vec![0u8; 440];
        desc[0..4].copy_from_slice(&1u32.to_le_bytes());
        desc[4..8].copy_from_slice(&440u32.to_le_bytes());
        desc[8 + 6 * 8..8 + 7 * 8].copy_from_slice(&rsp.to_le_bytes());
        desc[8 + 16 * 8..8 + 17 * 8].copy_from_slice(&rip.to_le_bytes());
        let cr = 8 + 18 * 8 + 10 * 24;
        desc[cr + 24..cr + 32].copy_from_slice(&cr3.to_le_bytes());
        self.notes.push(Note {
            name: b"QEMU",
            n_type: 0,
            desc,
        });
    }
}

struct Load {
    paddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

/// An ELF64 vmcore (as `/proc/vmcore`, `makedumpfile -E` or QEMU write them).
#[derive(Default)]
pub struct ElfVmcoreBuilder {
    loads: Vec<Load>,
    pub notes: NoteSet,
    qemu_quirks: bool,
    extended_phnum: bool,
    /// `e_machine`; x86_64 unless set.
    machine: Option<u16>,
}

impl ElfVmcoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ELF header's `e_machine` (x86_64 by default).
    pub fn machine(mut self, e_machine: u16) -> Self {
        self.machine = Some(e_machine);
        self
    }

    /// A PT_LOAD with its bytes in the file.
    pub fn load(mut self, paddr: u64, data: Vec<u8>) -> Self {
        let memsz = data.len() as u64;
        self.loads.push(Load { paddr, data, memsz });
        self
    }

    /// A PT_LOAD whose last `memsz - data.len()` bytes are not in the file (makedumpfile -E's
    /// filtered pages).
    pub fn load_with_memsz(mut self, paddr: u64, data: Vec<u8>, memsz: u64) -> Self {
        self.loads.push(Load { paddr, data, memsz });
        self
    }

    pub fn vmcoreinfo(mut self, text: &str) -> Self {
        self.notes.vmcoreinfo(text);
        self
    }

    pub fn prstatus(mut self, pid: u32, rip: u64, rsp: u64) -> Self {
        self.notes.prstatus(pid, user_regs(rip, rsp));
        self
    }

    pub fn qemu_cpu(mut self, rip: u64, rsp: u64, cr3: u64) -> Self {
        self.notes.qemu_cpu(rip, rsp, cr3);
        self
    }

    /// QEMU's header habits: a null section header and a wrong `e_ehsize`.
    pub fn qemu_quirks(mut self) -> Self {
        self.qemu_quirks = true;
        self
    }

    /// Writes `e_phnum = PN_XNUM` and the real count in section 0's `sh_info`, as QEMU does
    /// for guests with many memory ranges.
    pub fn extended_phnum(mut self) -> Self {
        self.extended_phnum = true;
        self.qemu_quirks = true;
        self
    }

    pub fn build(self) -> Vec<u8> {
        let (note_bytes, _) = serialize_notes(&self.notes.notes);
        let mut out = Vec::new();
        let mut w = Writer::new(Endianness::Little, true, &mut out);
        w.reserve_file_header();
        let phnum = 1 + self.loads.len() as u32;
        w.reserve_program_headers(phnum);
        if self.qemu_quirks {
            w.reserve_null_section_index();
            w.reserve_section_headers();
        }
        let note_offset = w.reserve(note_bytes.len(), 4);
        let load_offsets: Vec<usize> = self
            .loads
            .iter()
            .map(|l| w.reserve(l.data.len(), 4096))
            .collect();
        w.write_file_header(&FileHeader {
            os_abi: 0,
            abi_version: 0,
            e_type: elf::ET_CORE,
            e_machine: self.machine.unwrap_or(elf::EM_X86_64),
            e_entry: 0,
            e_flags: 0,
        })
        .expect("ELF header");
        w.write_align_program_headers();
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_NOTE,
            p_flags: 0,
            p_offset: note_offset as u64,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: note_bytes.len() as u64,
            p_memsz: note_bytes.len() as u64,
            p_align: 0,
        });
        for (load, &offset) in self.loads.iter().zip(&load_offsets) {
            w.write_program_header(&ProgramHeader {
                p_type: elf::PT_LOAD,
                p_flags: elf::PF_R | elf::PF_W | elf::PF_X,
                p_offset: offset as u64,
                p_vaddr: 0,
                p_paddr: load.paddr,
                p_filesz: load.data.len() as u64,
                p_memsz: load.memsz,
                p_align: 0,
            });
        }
        if self.qemu_quirks {
            w.write_null_section_header();
        }
        w.pad_until(note_offset);
        w.write(&note_bytes);
        for (load, &offset) in self.loads.iter().zip(&load_offsets) {
            w.pad_until(offset);
            w.write(&load.data);
        }
        if self.qemu_quirks {
            // e_ehsize: QEMU has written values other than sizeof(Elf64_Ehdr).
            out[52..54].copy_from_slice(&0x20u16.to_le_bytes());
        }
        if self.extended_phnum {
            let shoff = u64::from_le_bytes(out[40..48].try_into().unwrap()) as usize;
            out[56..58].copy_from_slice(&elf::PN_XNUM.to_le_bytes());
            out[shoff + 44..shoff + 48].copy_from_slice(&phnum.to_le_bytes());
        }
        out
    }
}

/// How one page of a kdump-compressed file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageCompression {
    None,
    Zlib,
    Lzo,
    Snappy,
    Zstd,
}

impl PageCompression {
    /// The `DUMP_DH_COMPRESSED_*` bit.
    pub fn flag(self) -> u32 {
        match self {
            PageCompression::None => 0,
            PageCompression::Zlib => 0x1,
            PageCompression::Lzo => 0x2,
            PageCompression::Snappy => 0x4,
            PageCompression::Zstd => 0x20,
        }
    }

    /// Compresses like makedumpfile: `None` when the result would not be smaller.
    pub fn compress(self, page: &[u8]) -> Option<Vec<u8>> {
        let out = match self {
            PageCompression::None => return None,
            PageCompression::Zlib => {
                let mut enc =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(page).ok()?;
                enc.finish().ok()?
            }
            PageCompression::Lzo => lzo1x::compress(page, lzo1x::CompressLevel::default()),
            PageCompression::Snappy => snap::raw::Encoder::new().compress_vec(page).ok()?,
            PageCompression::Zstd => zstd::bulk::compress(page, 1).ok()?,
        };
        (out.len() < page.len()).then_some(out)
    }
}

/// The header fields of a synthetic kdump-compressed file.
#[derive(Clone)]
struct Meta {
    block_size: u32,
    max_mapnr: u64,
    header_version: i32,
    status: u32,
    dump_level: i32,
    release: String,
    timestamp: i64,
    phys_base: u64,
    nr_cpus: i32,
}

/// A kdump-compressed file (makedumpfile's layout, `diskdump_mod.h`).
pub struct DiskdumpBuilder {
    meta: Meta,
    /// RAM pfns (1st bitmap) -> dumped content (2nd bitmap set) or `None` (excluded).
    pages: BTreeMap<u64, Option<(Vec<u8>, PageCompression)>>,
    pub notes: NoteSet,
    default_compression: PageCompression,
    share_zero_page: bool,
    single_bitmap: bool,
}

impl DiskdumpBuilder {
    /// An empty dump of `max_mapnr` pfns with `block_size`-byte pages.
    pub fn new(block_size: u32, max_mapnr: u64) -> Self {
        DiskdumpBuilder {
            meta: Meta {
                block_size,
                max_mapnr,
                header_version: 6,
                status: 0,
                dump_level: 0,
                release: "6.1.0-test-amd64".into(),
                timestamp: 1_700_000_000,
                phys_base: 0,
                nr_cpus: 1,
            },
            pages: BTreeMap::new(),
            notes: NoteSet::default(),
            default_compression: PageCompression::None,
            share_zero_page: true,
            single_bitmap: false,
        }
    }

    /// The compression recorded in the header and used for pages without their own.
    pub fn compression(mut self, c: PageCompression) -> Self {
        self.meta.status = (self.meta.status & !0x27) | c.flag();
        self.default_compression = c;
        self
    }

    pub fn page(mut self, pfn: u64, data: Vec<u8>) -> Self {
        let c = self.default_compression;
        self.pages.insert(pfn, Some((data, c)));
        self
    }

    /// A page stored with its own compression.
    pub fn page_with(mut self, pfn: u64, data: Vec<u8>, c: PageCompression) -> Self {
        self.pages.insert(pfn, Some((data, c)));
        self
    }

    /// Pattern pages for `[start, end)`.
    pub fn pattern_pages(mut self, start: u64, end: u64, seed: u64) -> Self {
        let size = self.meta.block_size as usize;
        for pfn in start..end {
            let c = self.default_compression;
            self.pages
                .insert(pfn, Some((page_pattern(pfn, seed, size), c)));
        }
        self
    }

    /// RAM the dump level filtered out: set in the 1st bitmap only.
    pub fn exclude(mut self, pfn: u64) -> Self {
        self.pages.insert(pfn, None);
        self
    }

    pub fn dump_level(mut self, level: i32) -> Self {
        self.meta.dump_level = level;
        self
    }

    pub fn header_version(mut self, v: i32) -> Self {
        self.meta.header_version = v;
        self
    }

    pub fn release(mut self, release: &str) -> Self {
        self.meta.release = release.into();
        self
    }

    pub fn phys_base(mut self, phys_base: u64) -> Self {
        self.meta.phys_base = phys_base;
        self
    }

    /// Sets `DUMP_DH_COMPRESSED_INCOMPLETE`.
    pub fn flag_incomplete(mut self) -> Self {
        self.meta.status |= 0x8;
        self
    }

    /// Writes every zero page as its own raw copy instead of sharing one.
    pub fn no_zero_page_sharing(mut self) -> Self {
        self.share_zero_page = false;
        self
    }

    /// One bitmap serving as both (crash's "partial" case: bitmap_blocks too small for two).
    pub fn single_bitmap(mut self) -> Self {
        self.single_bitmap = true;
        self
    }

    pub fn vmcoreinfo(mut self, text: &str) -> Self {
        self.notes.vmcoreinfo(text);
        self
    }

    pub fn prstatus(mut self, pid: u32, rip: u64, rsp: u64) -> Self {
        self.notes.prstatus(pid, user_regs(rip, rsp));
        self.meta.nr_cpus = self
            .notes
            .notes
            .iter()
            .filter(|n| n.name == b"CORE")
            .count() as i32;
        self
    }

    /// The whole dump as one file.
    pub fn build(&self) -> Vec<u8> {
        self.build_part(None)
    }

    /// A `--split` set: one file per `[start, end)` pfn range.
    pub fn build_split(&self, ranges: &[(u64, u64)]) -> Vec<Vec<u8>> {
        ranges.iter().map(|&r| self.build_part(Some(r))).collect()
    }

    /// Byte offset of descriptor `index` in a file from `build`.
    pub fn desc_offset(&self, index: u64) -> usize {
        let (_, sub_hdr_size, bitmap_blocks) = self.layout();
        let block = self.meta.block_size as usize;
        (1 + sub_hdr_size + bitmap_blocks) * block + index as usize * 24
    }

    fn layout(&self) -> (Vec<u8>, usize, usize) {
        let block = self.meta.block_size as usize;
        let (notes, _) = serialize_notes(&self.notes.notes);
        let sub_hdr_size = (104 + notes.len()).div_ceil(block);
        let one = (self.meta.max_mapnr as usize).div_ceil(8 * block);
        let bitmap_blocks = if self.single_bitmap { one } else { 2 * one };
        (notes, sub_hdr_size, bitmap_blocks)
    }

    fn build_part(&self, split: Option<(u64, u64)>) -> Vec<u8> {
        let m = &self.meta;
        let block = m.block_size as usize;
        let (notes, sub_hdr_size, bitmap_blocks) = self.layout();
        let (_, vmcoreinfo) = serialize_notes(&self.notes.notes);

        let mut out = vec![0u8; block * (1 + sub_hdr_size + bitmap_blocks)];
        // disk_dump_header
        out[0..8].copy_from_slice(b"KDUMP   ");
        out[8..12].copy_from_slice(&m.header_version.to_le_bytes());
        let uts = |i: usize, s: &str, out: &mut Vec<u8>| {
            let at = 12 + i * 65;
            out[at..at + s.len().min(64)].copy_from_slice(&s.as_bytes()[..s.len().min(64)]);
        };
        uts(0, "Linux", &mut out);
        uts(1, "testhost", &mut out);
        uts(2, &m.release, &mut out);
        uts(3, "#1 SMP Debian", &mut out);
        uts(4, "x86_64", &mut out);
        out[408..416].copy_from_slice(&m.timestamp.to_le_bytes());
        out[424..428].copy_from_slice(&m.status.to_le_bytes());
        out[428..432].copy_from_slice(&m.block_size.to_le_bytes());
        out[432..436].copy_from_slice(&(sub_hdr_size as u32).to_le_bytes());
        out[436..440].copy_from_slice(&(bitmap_blocks as u32).to_le_bytes());
        out[440..444].copy_from_slice(&(m.max_mapnr.min(u32::MAX as u64) as u32).to_le_bytes());
        out[460..464].copy_from_slice(&m.nr_cpus.to_le_bytes());
        // kdump_sub_header
        let sub = block;
        out[sub..sub + 8].copy_from_slice(&m.phys_base.to_le_bytes());
        out[sub + 8..sub + 12].copy_from_slice(&m.dump_level.to_le_bytes());
        if let Some((start, end)) = split {
            out[sub + 12..sub + 16].copy_from_slice(&1i32.to_le_bytes());
            out[sub + 16..sub + 24].copy_from_slice(&start.to_le_bytes());
            out[sub + 24..sub + 32].copy_from_slice(&end.to_le_bytes());
            out[sub + 80..sub + 88].copy_from_slice(&start.to_le_bytes());
            out[sub + 88..sub + 96].copy_from_slice(&end.to_le_bytes());
        }
        let offset_note = (sub + 104) as u64;
        if let Some((at, len)) = vmcoreinfo {
            out[sub + 32..sub + 40].copy_from_slice(&(offset_note + at as u64).to_le_bytes());
            out[sub + 40..sub + 48].copy_from_slice(&(len as u64).to_le_bytes());
        }
        if !notes.is_empty() {
            out[sub + 48..sub + 56].copy_from_slice(&offset_note.to_le_bytes());
            out[sub + 56..sub + 64].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        }
        out[sub + 96..sub + 104].copy_from_slice(&m.max_mapnr.to_le_bytes());
        out[sub + 104..sub + 104 + notes.len()].copy_from_slice(&notes);
        // bitmaps
        let bitmap = (1 + sub_hdr_size) * block;
        let half = if self.single_bitmap {
            0
        } else {
            bitmap_blocks * block / 2
        };
        for (&pfn, content) in &self.pages {
            let (byte, bit) = ((pfn / 8) as usize, pfn % 8);
            out[bitmap + byte] |= 1 << bit;
            if content.is_some() {
                out[bitmap + half + byte] |= 1 << bit;
            }
        }
        // descriptors for this file's dumped pfns, then the data
        let dumped: Vec<(&Vec<u8>, PageCompression)> = self
            .pages
            .iter()
            .filter(|(&pfn, _)| split.is_none_or(|(s, e)| pfn >= s && pfn < e))
            .filter_map(|(_, c)| c.as_ref().map(|(d, c)| (d, *c)))
            .collect();
        let desc_start = out.len();
        let mut data_at = (desc_start + dumped.len() * 24) as u64;
        let mut descs = Vec::with_capacity(dumped.len() * 24);
        let mut data = Vec::new();
        let zero_page = vec![0u8; block];
        let zero_offset = data_at;
        if self.share_zero_page {
            data.extend_from_slice(&zero_page);
            data_at += block as u64;
        }
        for (page, c) in dumped {
            let (offset, size, flags) = if self.share_zero_page && *page == zero_page {
                (zero_offset, block as u32, 0)
            } else {
                let (bytes, flags) = match c.compress(page) {
                    Some(z) => (z, c.flag()),
                    None => (page.clone(), 0),
                };
                let at = data_at;
                data_at += bytes.len() as u64;
                data.extend_from_slice(&bytes);
                (at, bytes.len() as u32, flags)
            };
            descs.extend_from_slice(&offset.to_le_bytes());
            descs.extend_from_slice(&size.to_le_bytes());
            descs.extend_from_slice(&flags.to_le_bytes());
            descs.extend_from_slice(&0u64.to_le_bytes());
        }
        out.extend_from_slice(&descs);
        out.extend_from_slice(&data);
        out
    }
}

/// Rewrites a kdump-compressed file in makedumpfile's flattened layout, in records of at
/// most `record_size` bytes. With `rewrite_header`, the first block is written twice (a
/// zeroed copy first, the real one last) as makedumpfile does when it fills in the header
/// after the pages, so readers must let later records win.
pub fn flatten(kdump: &[u8], record_size: usize, rewrite_header: bool) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    out[..12].copy_from_slice(b"makedumpfile");
    out[16..24].copy_from_slice(&1i64.to_be_bytes());
    out[24..32].copy_from_slice(&1i64.to_be_bytes());
    let record = |out: &mut Vec<u8>, offset: usize, bytes: &[u8]| {
        out.extend_from_slice(&(offset as i64).to_be_bytes());
        out.extend_from_slice(&(bytes.len() as i64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let header_len = 4096.min(kdump.len());
    if rewrite_header {
        record(&mut out, 0, &vec![0u8; header_len]);
    }
    let mut at = if rewrite_header { header_len } else { 0 };
    while at < kdump.len() {
        let end = (at + record_size).min(kdump.len());
        record(&mut out, at, &kdump[at..end]);
        at = end;
    }
    if rewrite_header {
        record(&mut out, 0, &kdump[..header_len]);
    }
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out
}

/// A VMCOREINFO text with the keys `kdive info` shows.
pub fn vmcoreinfo_text(release: &str, kerneloffset: u64, crashtime: i64) -> String {
    format!(
        "OSRELEASE={release}\nBUILD-ID=00112233445566778899aabbccddeeff00112233\nPAGESIZE=4096\n\
         SYMBOL(init_uts_ns)=ffffffff82a12340\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\n\
         SIZE(list_head)=16\nOFFSET(list_head.next)=0\nLENGTH(free_area)=11\n\
         NUMBER(phys_base)=0\nNUMBER(pgtable_l5_enabled)=0\nKERNELOFFSET={kerneloffset:x}\n\
         CRASHTIME={crashtime}\n"
    )
}
