//! Is there a vmlinux with DWARF for the running kernel, and debug files for its modules?
//! Only the ELF headers and section table are read (object's `ReadCache`), never the DWARF.

use object::read::ReadCache;
use object::{Object, ObjectSection, SectionKind};

use crate::host::{self, Host};

/// Where kdive (and crash, drgn) look for the kernel's debug vmlinux, best first.
pub fn vmlinux_candidates(release: &str) -> Vec<String> {
    vec![
        format!("/usr/lib/debug/boot/vmlinux-{release}"),
        format!("/usr/lib/debug/lib/modules/{release}/vmlinux"),
        format!("/boot/vmlinux-{release}"),
        format!("/lib/modules/{release}/build/vmlinux"),
    ]
}

/// The directory of the modules' debug files.
pub fn modules_debug_dir(release: &str) -> String {
    format!("/usr/lib/debug/lib/modules/{release}")
}

/// What one vmlinux candidate holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmlinuxInfo {
    pub path: String,
    pub size: u64,
    /// `.debug_info` is present with contents (not a stripped `NOBITS` placeholder).
    pub has_dwarf: bool,
    pub build_id: Option<Vec<u8>>,
}

/// Reads a candidate's ELF section table; `Err` says why it is not usable.
pub fn inspect_vmlinux(host: &dyn Host, path: &str) -> Result<VmlinuxInfo, String> {
    let file = host.open(path).map_err(|e| format!("{path}: {e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let cache = ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| format!("{path}: not an ELF file ({e})"))?;
    let has_dwarf = elf.section_by_name(".debug_info").is_some_and(|section| {
        section.size() > 0 && section.kind() != SectionKind::UninitializedData
    });
    let build_id = elf.build_id().ok().flatten().map(<[u8]>::to_vec);
    Ok(VmlinuxInfo {
        path: path.to_string(),
        size,
        has_dwarf,
        build_id,
    })
}

/// The running kernel's build id from `/sys/kernel/notes` (its `.notes` section: 4-byte aligned
/// `Elf_Nhdr` records; `NT_GNU_BUILD_ID` = 3 with owner "GNU").
pub fn build_id_from_notes(notes: &[u8]) -> Option<Vec<u8>> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let word = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = notes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_ne_bytes(bytes))
    };
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut at = 0usize;
    // Each record is at least 12 bytes, so this bounds the walk by the buffer length.
    while at.checked_add(12)? <= notes.len() {
        let namesz = usize::try_from(word(at)?).ok()?;
        let descsz = usize::try_from(word(at + 4)?).ok()?;
        let kind = word(at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let next = desc_at.checked_add(align4(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return notes
                .get(desc_at..desc_at.checked_add(descsz)?)
                .map(<[u8]>::to_vec);
        }
        at = next;
    }
    None
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts module debug files (`*.ko`, `*.ko.debug`, `*.ko.xz` ...) under a directory, visiting
/// at most `limit` entries.
pub fn count_module_debug_files(host: &dyn Host, dir: &str, limit: usize) -> usize {
    let mut pending = vec![dir.to_string()];
    let mut visited = 0usize;
    let mut found = 0usize;
    while let Some(current) = pending.pop() {
        let Ok(names) = host.read_dir(&current, limit.saturating_sub(visited)) else {
            continue;
        };
        for name in names {
            visited += 1;
            let path = format!("{current}/{name}");
            if name.contains(".ko") {
                found += 1;
            } else if host.symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
                pending.push(path);
            }
        }
        if visited >= limit {
            break;
        }
    }
    found
}

/// The first candidate that exists, inspected.
pub fn find_vmlinux(host: &dyn Host, release: &str) -> Vec<Result<VmlinuxInfo, String>> {
    vmlinux_candidates(release)
        .into_iter()
        .filter(|path| host::resolve_links(host, path).is_some())
        .map(|path| inspect_vmlinux(host, &path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_ne_bytes());
        out.extend_from_slice(&u32::try_from(desc.len()).unwrap().to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out.extend_from_slice(desc);
        out.resize(out.len().div_ceil(4) * 4, 0);
        out
    }

    #[test]
    fn build_id_after_other_notes() {
        let mut notes = note(b"Xen\0", 6, &[1, 2, 3, 4, 5, 6, 7, 8]);
        notes.extend(note(b"GNU\0", 3, &[0xab; 20]));
        assert_eq!(build_id_from_notes(&notes), Some(vec![0xab; 20]));
    }

    #[test]
    fn build_id_garbage_is_none() {
        assert_eq!(build_id_from_notes(&[]), None);
        assert_eq!(build_id_from_notes(&[0xff; 13]), None);
        let mut notes = note(b"GNU\0", 3, &[1; 20]);
        notes.truncate(30);
        assert_eq!(build_id_from_notes(&notes), None);
    }
}
