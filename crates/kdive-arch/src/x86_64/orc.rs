//! ORC unwind tables (x86_64): `.orc_unwind_ip` (one `s32` per entry, relative to its own
//! address) and `.orc_unwind` (one 6-byte `struct orc_entry` per entry), from vmlinux or from
//! a module, decoded into one normalised [`OrcEntry`] whatever the kernel's layout.
//!
//! `struct orc_entry` is `{ s16 sp_offset; s16 bp_offset; u16 bitfields }`; the bitfields
//! changed (the version numbers are drgn's, `libdrgn/orc.h`; the kernel has none):
//!
//! | [`OrcVersion`] | kernels    | bits 0-3 | 4-7    | 8-10                           | 11     |
//! |----------------|------------|----------|--------|--------------------------------|--------|
//! | `V1`           | 4.14-6.2   | sp_reg   | bp_reg | type:2 (CALL 0, REGS 1, PARTIAL 2), end | -  |
//! | `V2`           | 6.3        | sp_reg   | bp_reg | type:2, signal                 | end    |
//! | `V3`           | 6.4-7.0    | sp_reg   | bp_reg | type:3 (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, PARTIAL 4) | signal |
//! | `V4`           | 7.1-       | as V3, registers renumbered                                 |||
//!
//! The layout is identified by the 20-byte `.orc_header` hash where the kernel has one
//! (since 6.4, backported to 6.3.10) and by the release string only when it does not.

use std::fmt;

use crate::x86_64::unwind::StackMemory;
use crate::{TranslateError, VirtAddr};

/// Size of `.orc_header`: a SHA-1 of `orc_types.h` (`scripts/orc_hash.sh`).
pub const ORC_HEADER_SIZE: usize = 20;
/// `sizeof(struct orc_entry)`.
pub const ORC_ENTRY_SIZE: usize = 6;

/// Kernel commit 1735858caa4b ("objtool/x86: Reorder ORC register numbering"), v7.1.
const ORC_HASH_7_1: [u8; ORC_HEADER_SIZE] = [
    0x13, 0x7c, 0x36, 0xad, 0x76, 0x27, 0xc4, 0xdd, 0x55, 0x93, 0x21, 0x76, 0xbb, 0x0e, 0xcd, 0xbd,
    0x50, 0x41, 0xfc, 0x82,
];
/// Kernel commit fb799447ae29 ("x86,objtool: Split UNWIND_HINT_EMPTY in two"), v6.4.
const ORC_HASH_6_4: [u8; ORC_HEADER_SIZE] = [
    0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5, 0xa6, 0x25,
    0xea, 0xb3, 0xfe, 0x24,
];
/// Kernel commit ffb1b4a41016 ("x86/unwind/orc: Add 'signal' field to ORC metadata"), v6.3
/// (the header itself came with b9f174c811e3, v6.4, backported to 6.3.10).
const ORC_HASH_6_3: [u8; ORC_HEADER_SIZE] = [
    0xdb, 0x84, 0xae, 0xd4, 0x10, 0x3b, 0x31, 0xdd, 0x51, 0xe0, 0x17, 0xf8, 0xf7, 0x97, 0x83, 0xca,
    0x98, 0x5c, 0x2c, 0x51,
];

/// Which `struct orc_entry` layout a table uses (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrcVersion {
    /// ee9f8fce9964 ("x86/unwind: Add the ORC unwinder"), v4.14, up to 6.2.
    V1,
    /// ffb1b4a41016 (v6.3): a `signal` bit before `end`.
    V2,
    /// fb799447ae29 (v6.4): 3-bit `type` with UNDEFINED and END_OF_STACK, no `end`.
    V3,
    /// 1735858caa4b (v7.1): register numbers reordered.
    V4,
}

impl OrcVersion {
    /// The layout a `.orc_header` names, or `None` for a hash kdive does not know.
    pub fn from_header(header: &[u8]) -> Option<OrcVersion> {
        match header {
            h if h == ORC_HASH_7_1 => Some(OrcVersion::V4),
            h if h == ORC_HASH_6_4 => Some(OrcVersion::V3),
            h if h == ORC_HASH_6_3 => Some(OrcVersion::V2),
            _ => None,
        }
    }

    /// The layout of a kernel without `.orc_header`, from its `OSRELEASE`. Kernels 6.3 and
    /// 6.4 exist with and without the header, hence this fallback. RHEL 9 kernels from
    /// 5.14.0-517.el9 carry the v6.4 layout without the header (as drgn's
    /// `orc_version_from_osrelease` notes).
    pub fn from_release(osrelease: &str) -> OrcVersion {
        let mut numbers = osrelease
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u64>().unwrap_or(0));
        let major = numbers.next().unwrap_or(0);
        let minor = numbers.next().unwrap_or(0);
        if major == 5 && minor == 14 && osrelease.contains(".el9") {
            let build = osrelease
                .split_once('-')
                .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if build >= 517 {
                return OrcVersion::V3;
            }
        }
        match (major, minor) {
            (m, _) if m > 7 => OrcVersion::V4,
            (7, m) if m >= 1 => OrcVersion::V4,
            (7, _) => OrcVersion::V3,
            (6, m) if m >= 4 => OrcVersion::V3,
            (6, 3) => OrcVersion::V2,
            _ => OrcVersion::V1,
        }
    }

    /// The header when there is one (an unknown hash is an error: guessing would misread
    /// every entry), else the release.
    pub fn detect(header: Option<&[u8]>, osrelease: Option<&str>) -> Result<OrcVersion, OrcError> {
        match (header, osrelease) {
            (Some(h), _) => OrcVersion::from_header(h)
                .ok_or_else(|| OrcError::UnknownHeader { header: h.to_vec() }),
            (None, Some(release)) => Ok(OrcVersion::from_release(release)),
            (None, None) => Err(OrcError::NoVersion),
        }
    }
}

/// An ORC base register, in the kernel's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrcReg {
    /// For `sp_reg`: no rule (only in terminators); for `bp_reg`: rbp is unchanged.
    Undefined,
    /// The caller's rsp (the CFA): rbp is saved at CFA + `bp_offset`.
    PrevSp,
    Ax,
    Dx,
    Di,
    Bp,
    Sp,
    R10,
    R13,
    /// The CFA is `*(rbp + sp_offset)`.
    BpIndirect,
    /// The CFA is `*rsp + sp_offset` (the kernel's `call_on_stack()` stack switch; meaning
    /// since 87ccc826bf1c "x86/unwind/orc: Change REG_SP_INDIRECT", v5.12).
    SpIndirect,
    /// A number no layout defines.
    Other(u8),
}

impl OrcReg {
    /// Numbering before v7.1 (`orc_types.h`: UNDEFINED 0, PREV_SP 1, DX 2, DI 3, BP 4,
    /// SP 5, R10 6, R13 7, BP_INDIRECT 8, SP_INDIRECT 9, AX 10).
    fn from_v1(n: u8) -> OrcReg {
        match n {
            0 => OrcReg::Undefined,
            1 => OrcReg::PrevSp,
            2 => OrcReg::Dx,
            3 => OrcReg::Di,
            4 => OrcReg::Bp,
            5 => OrcReg::Sp,
            6 => OrcReg::R10,
            7 => OrcReg::R13,
            8 => OrcReg::BpIndirect,
            9 => OrcReg::SpIndirect,
            10 => OrcReg::Ax,
            n => OrcReg::Other(n),
        }
    }

    /// Numbering since 1735858caa4b (v7.1).
    fn from_v4(n: u8) -> OrcReg {
        match n {
            0 => OrcReg::Undefined,
            1 => OrcReg::Ax,
            2 => OrcReg::Dx,
            3 => OrcReg::Sp,
            4 => OrcReg::Bp,
            5 => OrcReg::Di,
            6 => OrcReg::R10,
            7 => OrcReg::R13,
            8 => OrcReg::PrevSp,
            9 => OrcReg::SpIndirect,
            10 => OrcReg::BpIndirect,
            n => OrcReg::Other(n),
        }
    }
}

/// What an entry says about its code, with v6.4's names for every layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrcType {
    /// No unwind information: section terminators, code objtool could not follow.
    Undefined,
    /// The outermost frame: kernel thread and syscall entry points.
    EndOfStack,
    /// A normal frame: the return address sits at CFA - 8.
    Call,
    /// A full `struct pt_regs` sits at the CFA.
    Regs,
    /// The hardware iret frame (rip, cs, rflags, rsp, ss) sits at the CFA.
    RegsPartial,
    /// A `type` no layout defines.
    Other(u8),
}

/// One ORC entry, normalised across layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrcEntry {
    pub sp_offset: i16,
    pub bp_offset: i16,
    pub sp_reg: OrcReg,
    pub bp_reg: OrcReg,
    pub kind: OrcType,
    /// The next frame's pc is where the CPU was (an interrupt or exception), not a return
    /// address: look it up as is rather than at pc - 1. Before v6.3 this was implied by
    /// REGS and REGS_PARTIAL.
    pub signal: bool,
}

impl OrcEntry {
    /// The kernel's `orc_fp_entry`: the frame-pointer guess used where no entry covers the
    /// pc (CFA = rbp + 16, rbp saved at CFA - 16, return address at CFA - 8).
    pub const FRAME_POINTER: OrcEntry = OrcEntry {
        sp_offset: 16,
        bp_offset: -16,
        sp_reg: OrcReg::Bp,
        bp_reg: OrcReg::PrevSp,
        kind: OrcType::Call,
        signal: false,
    };

    /// Decodes the 6 bytes of one `struct orc_entry` in `version`'s layout.
    pub fn decode(bytes: [u8; ORC_ENTRY_SIZE], version: OrcVersion) -> OrcEntry {
        let [s0, s1, b0, b1, f0, f1] = bytes;
        let flags = u16::from_le_bytes([f0, f1]);
        let sp_n = (flags & 0xf) as u8;
        let bp_n = ((flags >> 4) & 0xf) as u8;
        let (sp_reg, bp_reg) = match version {
            OrcVersion::V4 => (OrcReg::from_v4(sp_n), OrcReg::from_v4(bp_n)),
            _ => (OrcReg::from_v1(sp_n), OrcReg::from_v1(bp_n)),
        };
        // Before v6.4 a terminator was sp_reg == UNDEFINED, and `end` told "end of stack"
        // from "no information".
        let old_type = |end_bit: u16| {
            let t = ((flags >> 8) & 0x3) as u8;
            if sp_reg == OrcReg::Undefined {
                if flags & end_bit != 0 {
                    OrcType::EndOfStack
                } else {
                    OrcType::Undefined
                }
            } else {
                match t {
                    0 => OrcType::Call,
                    1 => OrcType::Regs,
                    2 => OrcType::RegsPartial,
                    t => OrcType::Other(t),
                }
            }
        };
        let (kind, signal) = match version {
            OrcVersion::V1 => {
                let kind = old_type(1 << 10);
                (kind, matches!(kind, OrcType::Regs | OrcType::RegsPartial))
            }
            OrcVersion::V2 => (old_type(1 << 11), flags & (1 << 10) != 0),
            OrcVersion::V3 | OrcVersion::V4 => {
                let kind = match ((flags >> 8) & 0x7) as u8 {
                    0 => OrcType::Undefined,
                    1 => OrcType::EndOfStack,
                    2 => OrcType::Call,
                    3 => OrcType::Regs,
                    4 => OrcType::RegsPartial,
                    t => OrcType::Other(t),
                };
                (kind, flags & (1 << 11) != 0)
            }
        };
        OrcEntry {
            sp_offset: i16::from_le_bytes([s0, s1]),
            bp_offset: i16::from_le_bytes([b0, b1]),
            sp_reg,
            bp_reg,
            kind,
            signal,
        }
    }
}

/// Errors building an ORC table; each names the table (`vmlinux` or the module).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrcError {
    #[error("{table}: .orc_unwind_ip is {ip_len} bytes, not a multiple of 4")]
    BadIpSize { table: String, ip_len: usize },
    #[error("{table}: .orc_unwind is {orc_len} bytes for {entries} entries of .orc_unwind_ip (want {entries} * 6)")]
    SizeMismatch {
        table: String,
        orc_len: usize,
        entries: usize,
    },
    #[error(
        "{table}: entry {index} of .orc_unwind_ip at {ip_addr} points outside the address space"
    )]
    IpOverflow {
        table: String,
        index: usize,
        ip_addr: VirtAddr,
    },
    #[error(
        "unrecognized .orc_header {}: a kernel newer than kdive knows?",
        hex(header)
    )]
    UnknownHeader { header: Vec<u8> },
    #[error("no .orc_header and no OSRELEASE: cannot tell the ORC layout")]
    NoVersion,
}

/// The most entries a table read from memory may claim (6.12's vmlinux has ~420 000).
pub const MAX_ORCS: usize = 1 << 22;

/// Errors reading an ORC table from the dump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrcReadError {
    #[error("{table}: num_orcs {num_orcs} is not believable")]
    TooMany { table: String, num_orcs: u64 },
    #[error(transparent)]
    Read(#[from] TranslateError),
    #[error(transparent)]
    Table(#[from] OrcError),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ORC entries of one image (vmlinux or a module), sorted by address. Entries stay in
/// their 6 raw bytes (vmlinux has ~400 000) and are decoded when looked up.
#[derive(Clone)]
pub struct OrcTable {
    name: String,
    version: OrcVersion,
    ips: Vec<u64>,
    entries: Vec<[u8; ORC_ENTRY_SIZE]>,
}

impl fmt::Debug for OrcTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrcTable")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("entries", &self.ips.len())
            .field("first", &self.ips.first().map(|ip| VirtAddr(*ip)))
            .field("last", &self.ips.last().map(|ip| VirtAddr(*ip)))
            .finish()
    }
}

impl OrcTable {
    /// Builds a table from the bytes of `.orc_unwind_ip` (which sits at `ip_addr`: its
    /// entries are relative to their own addresses) and `.orc_unwind`, as the image has them
    /// where it runs (vmlinux's sections, or a loaded module's tables read from memory; a
    /// module's `.ko` needs its relocations applied first). `name` labels errors.
    ///
    /// vmlinux's table is sorted at build time since f14bf6a350df (v5.6) and the kernel
    /// sorts a module's at load; anything else is sorted here. Where two entries share an
    /// address, the section terminator (UNDEFINED) gives way to the real entry, as in the
    /// kernel's `orc_sort_cmp`.
    pub fn parse(
        name: &str,
        ip_addr: VirtAddr,
        ip_bytes: &[u8],
        orc_bytes: &[u8],
        version: OrcVersion,
    ) -> Result<OrcTable, OrcError> {
        if ip_bytes.len() % 4 != 0 {
            return Err(OrcError::BadIpSize {
                table: name.to_owned(),
                ip_len: ip_bytes.len(),
            });
        }
        let count = ip_bytes.len() / 4;
        if Some(orc_bytes.len()) != count.checked_mul(ORC_ENTRY_SIZE) {
            return Err(OrcError::SizeMismatch {
                table: name.to_owned(),
                orc_len: orc_bytes.len(),
                entries: count,
            });
        }
        let mut ips = Vec::with_capacity(count);
        let mut entries = Vec::with_capacity(count);
        for (index, (ip, orc)) in ip_bytes
            .chunks_exact(4)
            .zip(orc_bytes.chunks_exact(ORC_ENTRY_SIZE))
            .enumerate()
        {
            let rel = ip.try_into().map(i32::from_le_bytes).unwrap_or_default();
            let at = u64::try_from(index)
                .ok()
                .and_then(|i| i.checked_mul(4))
                .and_then(|off| ip_addr.0.checked_add(off));
            let abs = at.and_then(|a| a.checked_add_signed(i64::from(rel)));
            let Some(abs) = abs else {
                return Err(OrcError::IpOverflow {
                    table: name.to_owned(),
                    index,
                    ip_addr,
                });
            };
            ips.push(abs);
            entries.push(orc.try_into().unwrap_or_default());
        }
        let sorted = ips.windows(2).all(|w| matches!(w, [a, b] if a <= b));
        let mut table = OrcTable {
            name: name.to_owned(),
            version,
            ips,
            entries,
        };
        if !sorted {
            table.sort();
        }
        table.merge_duplicates();
        Ok(table)
    }

    /// Reads a table from the dump, where the running kernel keeps it, relocated and sorted:
    /// for a module `mod->arch.orc_unwind_ip`, `mod->arch.orc_unwind` and
    /// `mod->arch.num_orcs`; for vmlinux `__start_orc_unwind_ip`, `__start_orc_unwind` and
    /// (`__stop_orc_unwind_ip` - `__start_orc_unwind_ip`) / 4 (its `.orc_header`, from 6.4,
    /// at `__start_orc_header`). `num_orcs` above [`MAX_ORCS`] is refused as bad data.
    pub fn read<M: StackMemory + ?Sized>(
        mem: &M,
        name: &str,
        orc_unwind_ip: VirtAddr,
        orc_unwind: VirtAddr,
        num_orcs: u64,
        version: OrcVersion,
    ) -> Result<OrcTable, OrcReadError> {
        let count = usize::try_from(num_orcs)
            .ok()
            .filter(|&n| n <= MAX_ORCS)
            .ok_or_else(|| OrcReadError::TooMany {
                table: name.to_owned(),
                num_orcs,
            })?;
        let mut ips = vec![0u8; count * 4];
        mem.read_stack(orc_unwind_ip, &mut ips)?;
        let mut orcs = vec![0u8; count * ORC_ENTRY_SIZE];
        mem.read_stack(orc_unwind, &mut orcs)?;
        Ok(OrcTable::parse(name, orc_unwind_ip, &ips, &orcs, version)?)
    }

    fn sort(&mut self) {
        let version = self.version;
        let mut pairs: Vec<(u64, [u8; ORC_ENTRY_SIZE])> = self
            .ips
            .iter()
            .copied()
            .zip(self.entries.iter().copied())
            .collect();
        pairs.sort_by_key(|(ip, e)| {
            (
                *ip,
                OrcEntry::decode(*e, version).kind != OrcType::Undefined,
            )
        });
        (self.ips, self.entries) = pairs.into_iter().unzip();
    }

    /// Keeps one entry per address: the real one rather than a terminator.
    fn merge_duplicates(&mut self) {
        if self.ips.windows(2).all(|w| matches!(w, [a, b] if a != b)) {
            return;
        }
        let mut ips = Vec::with_capacity(self.ips.len());
        let mut entries: Vec<[u8; ORC_ENTRY_SIZE]> = Vec::with_capacity(self.entries.len());
        for (ip, entry) in self.ips.iter().zip(&self.entries) {
            if ips.last() == Some(ip) {
                let undefined = |e: &[u8; ORC_ENTRY_SIZE]| {
                    OrcEntry::decode(*e, self.version).kind == OrcType::Undefined
                };
                if let Some(last) = entries.last_mut() {
                    if !undefined(entry) || undefined(last) {
                        *last = *entry;
                    }
                }
            } else {
                ips.push(*ip);
                entries.push(*entry);
            }
        }
        self.ips = ips;
        self.entries = entries;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> OrcVersion {
        self.version
    }

    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// The lowest and highest addresses with an entry. The last entry is a terminator, so
    /// an address past it has no information.
    pub fn ip_range(&self) -> Option<(VirtAddr, VirtAddr)> {
        Some((VirtAddr(*self.ips.first()?), VirtAddr(*self.ips.last()?)))
    }

    /// The entry covering `pc`: the last one at or below it; `None` below the first.
    pub fn find(&self, pc: VirtAddr) -> Option<OrcEntry> {
        let i = self.ips.partition_point(|&ip| ip <= pc.0);
        let raw = self.entries.get(i.checked_sub(1)?)?;
        Some(OrcEntry::decode(*raw, self.version))
    }

    /// Every entry with its address, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (VirtAddr, OrcEntry)> + '_ {
        self.ips
            .iter()
            .zip(&self.entries)
            .map(|(ip, e)| (VirtAddr(*ip), OrcEntry::decode(*e, self.version)))
    }
}

/// The ORC tables of a kernel: vmlinux and its loaded modules. A table answers for the text
/// ranges it was given, or else for `[first entry, last entry]`.
#[derive(Clone, Debug, Default)]
pub struct OrcTables {
    tables: Vec<(Vec<(VirtAddr, VirtAddr)>, OrcTable)>,
}

impl OrcTables {
    pub fn new() -> OrcTables {
        OrcTables::default()
    }

    /// Adds a table that answers for its own address span.
    pub fn push(&mut self, table: OrcTable) {
        self.tables.push((Vec::new(), table));
    }

    /// Adds a table that answers only inside `ranges` (`[start, end)` each): a module's
    /// core and init text lie apart, and another module may sit between them.
    pub fn push_with_ranges(&mut self, table: OrcTable, ranges: Vec<(VirtAddr, VirtAddr)>) {
        self.tables.push((ranges, table));
    }

    pub fn tables(&self) -> impl Iterator<Item = &OrcTable> {
        self.tables.iter().map(|(_, t)| t)
    }

    /// The table responsible for `pc`, if any.
    pub fn table_for(&self, pc: VirtAddr) -> Option<&OrcTable> {
        self.tables.iter().find_map(|(ranges, table)| {
            let covers = if ranges.is_empty() {
                table
                    .ip_range()
                    .is_some_and(|(lo, hi)| lo <= pc && pc <= hi)
            } else {
                ranges.iter().any(|(lo, hi)| *lo <= pc && pc < *hi)
            };
            covers.then_some(table)
        })
    }

    /// The entry covering `pc` in the table responsible for it.
    pub fn find(&self, pc: VirtAddr) -> Option<OrcEntry> {
        self.table_for(pc)?.find(pc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(sp_offset: i16, bp_offset: i16, flags: u16) -> [u8; 6] {
        let [a, b] = sp_offset.to_le_bytes();
        let [c, d] = bp_offset.to_le_bytes();
        let [e, f] = flags.to_le_bytes();
        [a, b, c, d, e, f]
    }

    #[test]
    fn versions_from_header_and_release() {
        assert_eq!(OrcVersion::from_header(&ORC_HASH_6_4), Some(OrcVersion::V3));
        assert_eq!(OrcVersion::from_header(&ORC_HASH_6_3), Some(OrcVersion::V2));
        assert_eq!(OrcVersion::from_header(&ORC_HASH_7_1), Some(OrcVersion::V4));
        assert_eq!(OrcVersion::from_header(&[0; 20]), None);
        assert_eq!(
            OrcVersion::from_release("6.1.0-56-cloud-amd64"),
            OrcVersion::V1
        );
        assert_eq!(OrcVersion::from_release("6.3.0"), OrcVersion::V2);
        assert_eq!(OrcVersion::from_release("6.4.1"), OrcVersion::V3);
        assert_eq!(
            OrcVersion::from_release("6.12.117+deb12-cloud-amd64"),
            OrcVersion::V3
        );
        assert_eq!(OrcVersion::from_release("7.0.0"), OrcVersion::V3);
        assert_eq!(
            OrcVersion::from_release("7.2.13+deb14-cloud-amd64"),
            OrcVersion::V4
        );
        assert_eq!(OrcVersion::from_release("8.0"), OrcVersion::V4);
        assert_eq!(OrcVersion::from_release("5.10.0"), OrcVersion::V1);
        assert_eq!(
            OrcVersion::from_release("5.14.0-570.el9.x86_64"),
            OrcVersion::V3
        );
        assert_eq!(
            OrcVersion::from_release("5.14.0-427.el9.x86_64"),
            OrcVersion::V1
        );
        assert_eq!(OrcVersion::from_release("garbage"), OrcVersion::V1);
        // The header wins over the release; an unknown header is an error.
        assert_eq!(
            OrcVersion::detect(Some(&ORC_HASH_6_4), Some("6.1.0")),
            Ok(OrcVersion::V3)
        );
        assert!(matches!(
            OrcVersion::detect(Some(&[1; 20]), Some("6.12.0")),
            Err(OrcError::UnknownHeader { .. })
        ));
        assert_eq!(OrcVersion::detect(None, None), Err(OrcError::NoVersion));
    }

    #[test]
    fn decode_each_layout() {
        // CALL with sp_reg SP (5), bp_reg PREV_SP (1): same bits in V1-V3 except the type.
        let v1 = OrcEntry::decode(raw(16, -16, 0x0015), OrcVersion::V1);
        assert_eq!(
            (v1.sp_reg, v1.bp_reg, v1.kind, v1.signal),
            (OrcReg::Sp, OrcReg::PrevSp, OrcType::Call, false)
        );
        assert_eq!((v1.sp_offset, v1.bp_offset), (16, -16));
        let v3 = OrcEntry::decode(raw(8, 0, 0x0205), OrcVersion::V3);
        assert_eq!(
            (v3.sp_reg, v3.bp_reg, v3.kind),
            (OrcReg::Sp, OrcReg::Undefined, OrcType::Call)
        );
        // REGS: V1 type 1 implies signal; V3 type 3 with the signal bit.
        let v1 = OrcEntry::decode(raw(0, 0, 0x0105), OrcVersion::V1);
        assert_eq!((v1.kind, v1.signal), (OrcType::Regs, true));
        let v2 = OrcEntry::decode(raw(0, 0, 0x0505), OrcVersion::V2);
        assert_eq!((v2.kind, v2.signal), (OrcType::Regs, true));
        let v3 = OrcEntry::decode(raw(0, 0, 0x0b05), OrcVersion::V3);
        assert_eq!((v3.kind, v3.signal), (OrcType::Regs, true));
        let v3 = OrcEntry::decode(raw(0, 0, 0x0c09), OrcVersion::V3);
        assert_eq!(
            (v3.kind, v3.sp_reg),
            (OrcType::RegsPartial, OrcReg::SpIndirect)
        );
        // Terminators: end bit 10 in V1, 11 in V2, type 0/1 in V3.
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0), OrcVersion::V1).kind,
            OrcType::Undefined
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x400), OrcVersion::V1).kind,
            OrcType::EndOfStack
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x400), OrcVersion::V2).kind,
            OrcType::Undefined
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x800), OrcVersion::V2).kind,
            OrcType::EndOfStack
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x100), OrcVersion::V3).kind,
            OrcType::EndOfStack
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x000), OrcVersion::V3).kind,
            OrcType::Undefined
        );
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x700), OrcVersion::V3).kind,
            OrcType::Other(7)
        );
        // V4 numbering: 3 is SP, 8 PREV_SP.
        let v4 = OrcEntry::decode(raw(8, -16, 0x0283), OrcVersion::V4);
        assert_eq!((v4.sp_reg, v4.bp_reg), (OrcReg::Sp, OrcReg::PrevSp));
        assert_eq!(
            OrcEntry::decode(raw(0, 0, 0x20f), OrcVersion::V3).sp_reg,
            OrcReg::Other(15)
        );
    }

    fn build(base: u64, ips: &[u64], entries: &[[u8; 6]]) -> (Vec<u8>, Vec<u8>) {
        let mut ip_bytes = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let rel = i32::try_from(*ip as i64 - (base + 4 * i as u64) as i64).unwrap();
            ip_bytes.extend_from_slice(&rel.to_le_bytes());
        }
        (ip_bytes, entries.concat())
    }

    #[test]
    fn table_lookup_sorting_and_terminators() {
        let base = 0xffff_ffff_8200_0000;
        let call = raw(8, 0, 0x0205);
        let regs = raw(0, 0, 0x0b05);
        let term = raw(0, 0, 0);
        // Unsorted, with a terminator sharing 0x...1100 with a real entry.
        let ips = [
            0xffff_ffff_8100_1100,
            0xffff_ffff_8100_1000,
            0xffff_ffff_8100_1100,
            0xffff_ffff_8100_1200,
        ];
        let (ipb, orcb) = build(base, &ips, &[regs, call, term, term]);
        let t = OrcTable::parse("t", VirtAddr(base), &ipb, &orcb, OrcVersion::V3).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.find(VirtAddr(0xffff_ffff_8100_0fff)), None);
        assert_eq!(
            t.find(VirtAddr(0xffff_ffff_8100_1000)).unwrap().kind,
            OrcType::Call
        );
        assert_eq!(
            t.find(VirtAddr(0xffff_ffff_8100_10ff)).unwrap().kind,
            OrcType::Call
        );
        assert_eq!(
            t.find(VirtAddr(0xffff_ffff_8100_1100)).unwrap().kind,
            OrcType::Regs
        );
        assert_eq!(
            t.find(VirtAddr(0xffff_ffff_8100_1300)).unwrap().kind,
            OrcType::Undefined
        );

        let mut all = OrcTables::new();
        all.push(t.clone());
        assert!(all.find(VirtAddr(0xffff_ffff_8100_1150)).is_some());
        assert!(all.find(VirtAddr(0xffff_ffff_8100_1201)).is_none());
        let mut ranged = OrcTables::new();
        ranged.push_with_ranges(
            t,
            vec![(
                VirtAddr(0xffff_ffff_8100_1000),
                VirtAddr(0xffff_ffff_8100_1100),
            )],
        );
        assert!(ranged.find(VirtAddr(0xffff_ffff_8100_1050)).is_some());
        assert!(ranged.find(VirtAddr(0xffff_ffff_8100_1150)).is_none());
    }

    #[test]
    fn duplicate_addresses_keep_the_real_entry_in_either_order() {
        let base = 0xffff_ffff_8200_0000;
        let call = raw(8, 0, 0x0205);
        let term = raw(0, 0, 0);
        let ips = [
            0xffff_ffff_8100_1000,
            0xffff_ffff_8100_1000,
            0xffff_ffff_8100_1100,
        ];
        for entries in [[call, term, term], [term, call, term]] {
            let (ipb, orcb) = build(base, &ips, &entries);
            let t = OrcTable::parse("t", VirtAddr(base), &ipb, &orcb, OrcVersion::V3).unwrap();
            assert_eq!(t.len(), 2);
            assert_eq!(
                t.find(VirtAddr(0xffff_ffff_8100_1000)).unwrap().kind,
                OrcType::Call
            );
            assert_eq!(t.iter().count(), 2);
        }
    }

    #[test]
    fn module_table_from_memory() {
        struct Mem(Vec<u8>);
        impl StackMemory for Mem {
            fn read_stack_u64(&self, _: VirtAddr) -> Result<u64, TranslateError> {
                unreachable!("tables are read in bulk")
            }
            fn read_stack(&self, addr: VirtAddr, buf: &mut [u8]) -> Result<(), TranslateError> {
                let off = usize::try_from(addr.0 - 0xffff_ffff_c000_0000).unwrap();
                match self.0.get(off..off + buf.len()) {
                    Some(src) => {
                        buf.copy_from_slice(src);
                        Ok(())
                    }
                    None => Err(TranslateError::Overflow {
                        vaddr: addr,
                        len: buf.len(),
                    }),
                }
            }
        }
        let base = 0xffff_ffff_c000_0000;
        let (ipb, orcb) = build(
            base,
            &[base + 0x100, base + 0x200],
            &[raw(8, 0, 0x0205), raw(0, 0, 0)],
        );
        let mut bytes = ipb.clone();
        bytes.extend_from_slice(&orcb);
        let mem = Mem(bytes);
        let t = OrcTable::read(
            &mem,
            "m",
            VirtAddr(base),
            VirtAddr(base + 8),
            2,
            OrcVersion::V3,
        )
        .unwrap();
        assert_eq!(t.find(VirtAddr(base + 0x150)).unwrap().kind, OrcType::Call);
        let e = OrcTable::read(
            &mem,
            "m",
            VirtAddr(base),
            VirtAddr(base + 8),
            3,
            OrcVersion::V3,
        );
        assert!(matches!(e, Err(OrcReadError::Read(_))));
        let e = OrcTable::read(
            &mem,
            "m",
            VirtAddr(base),
            VirtAddr(base),
            u64::MAX,
            OrcVersion::V3,
        );
        assert!(matches!(e, Err(OrcReadError::TooMany { .. })));
    }

    #[test]
    fn bad_sizes_and_overflow() {
        let e = OrcTable::parse("m", VirtAddr(0), &[0; 5], &[], OrcVersion::V1);
        assert!(matches!(e, Err(OrcError::BadIpSize { .. })));
        let e = OrcTable::parse("m", VirtAddr(0), &[0; 8], &[0; 6], OrcVersion::V1);
        assert!(matches!(e, Err(OrcError::SizeMismatch { .. })));
        let e = OrcTable::parse(
            "m",
            VirtAddr(u64::MAX - 1),
            &[0xff, 0xff, 0xff, 0x7f],
            &[0; 6],
            OrcVersion::V1,
        );
        assert!(matches!(e, Err(OrcError::IpOverflow { .. })));
        let e = OrcTable::parse(
            "m",
            VirtAddr(0),
            &[0x00, 0x00, 0x00, 0x80],
            &[0; 6],
            OrcVersion::V1,
        );
        assert!(matches!(e, Err(OrcError::IpOverflow { .. })));
        let empty = OrcTable::parse("m", VirtAddr(0), &[], &[], OrcVersion::V1).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.find(VirtAddr(5)), None);
        assert_eq!(empty.ip_range(), None);
    }
}
