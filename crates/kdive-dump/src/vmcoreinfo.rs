//! VMCOREINFO: the `KEY=VALUE` lines the kernel leaves for dump tools (in an ELF note
//! named "VMCOREINFO", or at `kdump_sub_header.offset_vmcoreinfo`). Keys stay verbatim
//! (`OSRELEASE`, `SYMBOL(swapper_pg_dir)`, `NUMBER(phys_base)`), so one grep finds them
//! here and in the kernel's `kernel/vmcore_info.c`.

use std::collections::BTreeMap;

/// VMCOREINFO parsed once: the generic map plus typed accessors for the keys kdive uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vmcoreinfo {
    entries: BTreeMap<String, String>,
}

/// Values printed with `%lx` (no `0x`): `SYMBOL(...)`, `KERNELOFFSET`, and a few others.
fn parse_hex(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    u64::from_str_radix(digits, 16).ok()
}

/// Values printed with `%lu`/`%ld`/`%d`: `SIZE`, `OFFSET`, `LENGTH`, `NUMBER`, `PAGESIZE`.
fn parse_dec(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

impl Vmcoreinfo {
    /// Parses the note's text. Lines without `=` and non-UTF-8 bytes are skipped; the
    /// first value of a repeated key wins. Never fails: a damaged note gives fewer keys.
    pub fn parse(text: &[u8]) -> Vmcoreinfo {
        let mut entries = BTreeMap::new();
        for line in text.split(|&b| b == b'\n') {
            let Ok(line) = std::str::from_utf8(line) else {
                continue;
            };
            let line = line.trim_end_matches(['\0', '\r']);
            if let Some((key, value)) = line.split_once('=') {
                if !key.is_empty() {
                    entries
                        .entry(key.to_owned())
                        .or_insert_with(|| value.to_owned());
                }
            }
        }
        Vmcoreinfo { entries }
    }

    /// Every key and raw value.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.entries
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// `OSRELEASE`, e.g. `6.1.0-56-cloud-amd64`.
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `PAGESIZE`
    pub fn page_size(&self) -> Option<u64> {
        parse_dec(self.get("PAGESIZE")?).and_then(|v| u64::try_from(v).ok())
    }

    /// `KERNELOFFSET`: the KASLR displacement of the kernel text.
    pub fn kerneloffset(&self) -> Option<u64> {
        parse_hex(self.get("KERNELOFFSET")?)
    }

    /// `NUMBER(phys_base)`
    pub fn phys_base(&self) -> Option<u64> {
        // Printed as a signed long; the bit pattern is the address.
        self.number("phys_base").map(|v| v as u64)
    }

    /// `CRASHTIME`: seconds since the epoch when the kernel crashed.
    pub fn crashtime(&self) -> Option<i64> {
        parse_dec(self.get("CRASHTIME")?)
    }

    /// `BUILD-ID`: the kernel's GNU build id, hex.
    pub fn build_id(&self) -> Option<&str> {
        self.get("BUILD-ID")
    }

    /// `SYMBOL(name)`
    pub fn symbol(&self, name: &str) -> Option<u64> {
        parse_hex(self.get(&format!("SYMBOL({name})"))?)
    }

    /// `SIZE(name)`
    pub fn size(&self, name: &str) -> Option<u64> {
        parse_dec(self.get(&format!("SIZE({name})"))?).and_then(|v| u64::try_from(v).ok())
    }

    /// `OFFSET(type.member)`
    pub fn offset(&self, ty: &str, member: &str) -> Option<u64> {
        parse_dec(self.get(&format!("OFFSET({ty}.{member})"))?).and_then(|v| u64::try_from(v).ok())
    }

    /// `LENGTH(name)`
    pub fn length(&self, name: &str) -> Option<u64> {
        parse_dec(self.get(&format!("LENGTH({name})"))?).and_then(|v| u64::try_from(v).ok())
    }

    /// `NUMBER(name)`: signed, as the kernel prints some negative ones.
    pub fn number(&self, name: &str) -> Option<i64> {
        parse_dec(self.get(&format!("NUMBER({name})"))?)
    }

    /// `NUMBER(name)` as a 64-bit pattern: arm64 prints its addresses and masks in hex with
    /// `0x` (`NUMBER(kimage_voffset)=0xffff...`); a decimal value, signed, is taken as its
    /// two's complement.
    pub fn number_bits(&self, name: &str) -> Option<u64> {
        let value = self.get(&format!("NUMBER({name})"))?.trim();
        match value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
        {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => parse_dec(value).map(|v| v as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys() {
        let info = Vmcoreinfo::parse(
            b"OSRELEASE=6.1.0-56-cloud-amd64\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a12340\n\
              OFFSET(list_head.next)=0\nSIZE(page)=64\nLENGTH(free_area)=11\nNUMBER(phys_base)=-2\n\
              NUMBER(pgtable_l5_enabled)=0\nNUMBER(kimage_voffset)=0xffff800007e00000\nKERNELOFFSET=1e000000\nCRASHTIME=1700000000\n\
              BUILD-ID=0123abcd\ngarbage line\n\0\0",
        );
        assert_eq!(info.osrelease(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(info.page_size(), Some(4096));
        assert_eq!(info.symbol("init_uts_ns"), Some(0xffff_ffff_82a1_2340));
        assert_eq!(info.offset("list_head", "next"), Some(0));
        assert_eq!(info.size("page"), Some(64));
        assert_eq!(info.length("free_area"), Some(11));
        assert_eq!(info.phys_base(), Some(u64::MAX - 1));
        assert_eq!(info.number("pgtable_l5_enabled"), Some(0));
        assert_eq!(info.number_bits("phys_base"), Some(u64::MAX - 1));
        assert_eq!(
            info.number_bits("kimage_voffset"),
            Some(0xffff_8000_07e0_0000)
        );
        assert_eq!(info.kerneloffset(), Some(0x1e00_0000));
        assert_eq!(info.crashtime(), Some(1_700_000_000));
        assert_eq!(info.build_id(), Some("0123abcd"));
        assert_eq!(info.entries().len(), 12);
    }
}
