//! DWARF call frame information (`.debug_frame`, parsed with gimli) as the unwinder's
//! fallback where ORC has nothing: code objtool left without ORC entries (on the lab's 6.1
//! kernel, `__crash_kexec`, where kdump's `crash_setup_regs()` takes the panic CPU's
//! registers), or an image without ORC. drgn prefers CFI over ORC for the same reason.
//!
//! The FDEs are indexed by address once (a sorted list of start, end and section offset);
//! one FDE is parsed and evaluated per lookup.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, DebugFrameOffset, EndianSlice, LittleEndian, Register,
    RegisterRule, UnwindContext, UnwindSection,
};

use crate::x86_64::regs::Reg;
use crate::VirtAddr;

/// How a register of the caller is found, once the CFA is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfiRule {
    /// Not saved by this frame: the caller's value is the current one.
    SameValue,
    /// Not recoverable.
    Undefined,
    /// Saved in memory at CFA + offset.
    AtCfa(i64),
    /// The value is CFA + offset.
    CfaPlus(i64),
    /// In another register of this frame.
    Register(Reg),
}

/// The unwind row for one pc: CFA = register + offset, and the rules of the registers an
/// unwinder needs (rip, rbp, rbx, r12-r15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfiRow {
    pub cfa_reg: Reg,
    pub cfa_offset: i64,
    pub rules: Vec<(Reg, CfiRule)>,
}

/// Registers whose rule a row reports: the return address and the callee-saved ones.
const ROW_REGS: [Reg; 7] = [
    Reg::Rip,
    Reg::Rbp,
    Reg::Rbx,
    Reg::R12,
    Reg::R13,
    Reg::R14,
    Reg::R15,
];

/// Errors of CFI parsing and evaluation; each names the image and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CfiError {
    #[error("{image}: .debug_frame at offset {offset:#x}: {what}")]
    Bad {
        image: String,
        offset: u64,
        what: String,
    },
    #[error("{image}: CFI for {pc} uses a DWARF expression or register kdive does not evaluate ({what})")]
    Unsupported {
        image: String,
        pc: VirtAddr,
        what: String,
    },
}

/// One image's `.debug_frame`, indexed by address.
pub struct DwarfCfi {
    image: String,
    data: Vec<u8>,
    /// Runtime address minus the address in the section (the KASLR offset for vmlinux).
    bias: u64,
    /// (start, end, offset of the FDE), sorted by start, at section addresses.
    index: Vec<(u64, u64, usize)>,
    /// The index stopped early at a damaged entry.
    damaged: Option<CfiError>,
}

impl std::fmt::Debug for DwarfCfi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfCfi")
            .field("image", &self.image)
            .field("fdes", &self.index.len())
            .field("bias", &format_args!("{:#x}", self.bias))
            .field("damaged", &self.damaged)
            .finish()
    }
}

fn section(data: &[u8]) -> DebugFrame<EndianSlice<'_, LittleEndian>> {
    let mut frame = DebugFrame::new(data, LittleEndian);
    frame.set_address_size(8);
    frame
}

impl DwarfCfi {
    /// Indexes the FDEs of a linked image's `.debug_frame` (addresses final, as in vmlinux;
    /// a module's `.ko` would need its relocations applied first). `bias` is added to every
    /// address to get the runtime one. A damaged entry ends the index; what came before
    /// stays usable and [`DwarfCfi::damaged`] says where it stopped.
    pub fn from_debug_frame(image: &str, data: Vec<u8>, bias: u64) -> DwarfCfi {
        let mut index = Vec::new();
        let mut damaged = None;
        {
            let frame = section(&data);
            let bases = BaseAddresses::default();
            let mut entries = frame.entries(&bases);
            loop {
                match entries.next() {
                    Ok(None) => break,
                    Ok(Some(gimli::CieOrFde::Cie(_))) => {}
                    Ok(Some(gimli::CieOrFde::Fde(partial))) => {
                        match partial.parse(DebugFrame::cie_from_offset) {
                            Ok(fde) => {
                                let start = fde.initial_address();
                                let end = start.saturating_add(fde.len());
                                index.push((start, end, fde.offset()));
                            }
                            // One FDE with a bad CIE does not hide the others.
                            Err(err) => {
                                damaged.get_or_insert(CfiError::Bad {
                                    image: image.to_owned(),
                                    offset: 0,
                                    what: err.to_string(),
                                });
                            }
                        }
                    }
                    Err(err) => {
                        damaged = Some(CfiError::Bad {
                            image: image.to_owned(),
                            offset: 0,
                            what: err.to_string(),
                        });
                        break;
                    }
                }
            }
        }
        index.sort_unstable();
        DwarfCfi {
            image: image.to_owned(),
            data,
            bias,
            index,
            damaged,
        }
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    /// Number of FDEs indexed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Why indexing stopped early, if it did.
    pub fn damaged(&self) -> Option<&CfiError> {
        self.damaged.as_ref()
    }

    /// The unwind row for `pc` (a runtime address), or `None` when no FDE covers it.
    pub fn row(&self, pc: VirtAddr) -> Result<Option<CfiRow>, CfiError> {
        let Some(addr) = pc.0.checked_sub(self.bias) else {
            return Ok(None);
        };
        let i = self.index.partition_point(|(start, _, _)| *start <= addr);
        let Some(&(_, end, offset)) = i.checked_sub(1).and_then(|i| self.index.get(i)) else {
            return Ok(None);
        };
        if addr >= end {
            return Ok(None);
        }
        let bad = |what: String| CfiError::Bad {
            image: self.image.clone(),
            offset: u64::try_from(offset).unwrap_or(u64::MAX),
            what,
        };
        let frame = section(&self.data);
        let bases = BaseAddresses::default();
        let fde = frame
            .fde_from_offset(
                &bases,
                DebugFrameOffset(offset),
                DebugFrame::cie_from_offset,
            )
            .map_err(|e| bad(e.to_string()))?;
        let mut ctx = UnwindContext::new();
        let row = match fde.unwind_info_for_address(&frame, &bases, &mut ctx, addr) {
            Ok(row) => row,
            Err(gimli::Error::NoUnwindInfoForAddress) => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        let unsupported = |what: String| CfiError::Unsupported {
            image: self.image.clone(),
            pc,
            what,
        };
        let (cfa_reg, cfa_offset) = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => (
                Reg::from_dwarf(register.0)
                    .ok_or_else(|| unsupported(format!("CFA register {}", register.0)))?,
                *offset,
            ),
            CfaRule::Expression(_) => return Err(unsupported("CFA expression".to_owned())),
        };
        let mut rules = Vec::with_capacity(ROW_REGS.len());
        for reg in ROW_REGS {
            let Some(number) = reg.dwarf() else { continue };
            let rule = match row.register(Register(number)) {
                // An unmentioned callee-saved register keeps its value (the x86_64 CIEs
                // of gcc and clang set no initial rules).
                RegisterRule::Undefined if reg != Reg::Rip => CfiRule::SameValue,
                RegisterRule::Undefined => CfiRule::Undefined,
                RegisterRule::SameValue => CfiRule::SameValue,
                RegisterRule::Offset(n) => CfiRule::AtCfa(n),
                RegisterRule::ValOffset(n) => CfiRule::CfaPlus(n),
                RegisterRule::Register(r) => CfiRule::Register(
                    Reg::from_dwarf(r.0).ok_or_else(|| unsupported(format!("register {}", r.0)))?,
                ),
                other => return Err(unsupported(format!("{reg} rule {other:?}"))),
            };
            rules.push((reg, rule));
        }
        Ok(Some(CfiRow {
            cfa_reg,
            cfa_offset,
            rules,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.debug_frame` with one CIE (CFA = rsp + 8, return address at CFA - 8) and one FDE
    /// for [0x1000, 0x1040): after `push %rbp` at 0x1001, CFA = rsp + 16 and rbp at CFA - 16.
    pub(crate) fn debug_frame() -> Vec<u8> {
        let mut cie = vec![];
        cie.extend_from_slice(&0xffff_ffffu32.to_le_bytes()); // CIE id
        cie.push(4); // version
        cie.push(0); // augmentation ""
        cie.push(8); // address size
        cie.push(0); // segment size
        cie.push(1); // code alignment
        cie.push(0x78); // data alignment -8 (sleb128)
        cie.push(16); // return address register
        cie.extend_from_slice(&[0x0c, 7, 8]); // DW_CFA_def_cfa rsp, 8
        cie.extend_from_slice(&[0x90, 1]); // DW_CFA_offset r16, 1 * -8
        while (cie.len() + 4) % 8 != 0 {
            cie.push(0); // DW_CFA_nop
        }
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(cie.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&cie);
        let mut fde = vec![];
        fde.extend_from_slice(&0u32.to_le_bytes()); // CIE pointer
        fde.extend_from_slice(&0x1000u64.to_le_bytes());
        fde.extend_from_slice(&0x40u64.to_le_bytes());
        fde.push(0x41); // DW_CFA_advance_loc 1
        fde.extend_from_slice(&[0x0e, 16]); // DW_CFA_def_cfa_offset 16
        fde.extend_from_slice(&[0x86, 2]); // DW_CFA_offset rbp, 2 * -8
        while (fde.len() + 4) % 8 != 0 {
            fde.push(0);
        }
        out.extend_from_slice(&u32::try_from(fde.len()).unwrap().to_le_bytes());
        out.extend_from_slice(&fde);
        out
    }

    #[test]
    fn rows_from_a_synthetic_debug_frame() {
        let bias = 0xffff_ffff_8000_0000;
        let cfi = DwarfCfi::from_debug_frame("test", debug_frame(), bias);
        assert_eq!(cfi.len(), 1);
        assert!(cfi.damaged().is_none());
        let row = cfi.row(VirtAddr(bias + 0x1000)).unwrap().unwrap();
        assert_eq!((row.cfa_reg, row.cfa_offset), (Reg::Rsp, 8));
        assert!(row.rules.contains(&(Reg::Rip, CfiRule::AtCfa(-8))));
        assert!(row.rules.contains(&(Reg::Rbp, CfiRule::SameValue)));
        let row = cfi.row(VirtAddr(bias + 0x1020)).unwrap().unwrap();
        assert_eq!((row.cfa_reg, row.cfa_offset), (Reg::Rsp, 16));
        assert!(row.rules.contains(&(Reg::Rbp, CfiRule::AtCfa(-16))));
        assert_eq!(cfi.row(VirtAddr(bias + 0x1040)).unwrap(), None);
        assert_eq!(cfi.row(VirtAddr(bias + 0xfff)).unwrap(), None);
        assert_eq!(cfi.row(VirtAddr(5)).unwrap(), None);
    }

    #[test]
    fn damaged_sections_keep_what_parsed() {
        let mut data = debug_frame();
        let good = data.len();
        data.extend_from_slice(&[0x20, 0, 0, 0, 1, 2, 3]); // an entry cut short
        let cfi = DwarfCfi::from_debug_frame("test", data, 0);
        assert_eq!(cfi.len(), 1);
        assert!(cfi.damaged().is_some());
        assert!(cfi.row(VirtAddr(0x1010)).unwrap().is_some());
        // Garbage throughout: no FDEs, no panic.
        let cfi = DwarfCfi::from_debug_frame("junk", vec![0xff; 64], 0);
        assert!(cfi.is_empty());
        let cfi = DwarfCfi::from_debug_frame("junk", debug_frame()[..good - 3].to_vec(), 0);
        assert!(cfi.len() <= 1);
    }
}
