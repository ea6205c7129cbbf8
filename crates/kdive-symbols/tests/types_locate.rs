//! Finding a dump's vmlinux by release and build id: synthetic trees, and the lab's unpacked
//! Debian kernels (build ids checked against `readelf -n`, run at test time).

use std::path::{Path, PathBuf};
use std::process::Command;

use kdive_symbols::{
    find_vmlinux, vmlinux_candidates, Btf, RejectReason, SymbolError, TypeError, TypeInfo, Types,
};
use kdive_testkit::btf::{BtfBuilder, INT_SIGNED};
use kdive_testkit::lab::lab_root;
use kdive_testkit::ElfVmcoreBuilder;

/// A fresh directory under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kdive-locate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(root: &Path, relative: &str, data: &[u8]) -> PathBuf {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    path
}

fn btf_elf(build_id: &[u8]) -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    b.struct_("task_struct", 4, &[("pid", int, 0)]);
    b.build_elf_with_build_id(Some(build_id))
}

const RELEASE: &str = "0.0.1-kdive-test";

#[test]
fn finds_by_release_and_build_id() {
    let root = scratch("find");
    // A stripped image comes first in the search order and is passed over.
    put(
        &root,
        &format!("usr/lib/debug/boot/vmlinux-{RELEASE}"),
        &ElfVmcoreBuilder::new().build(),
    );
    put(
        &root,
        &format!("usr/lib/debug/lib/modules/{RELEASE}/vmlinux"),
        b"not an ELF file",
    );
    put(
        &root,
        &format!("boot/vmlinux-{RELEASE}"),
        &btf_elf(&[0xaa; 20]),
    );
    let wanted = put(
        &root,
        &format!("lib/modules/{RELEASE}/build/vmlinux"),
        &btf_elf(&[0x12; 20]),
    );

    let found = find_vmlinux(
        RELEASE,
        Some(&"12".repeat(20).to_uppercase()),
        std::slice::from_ref(&root),
    )
    .unwrap();
    assert_eq!(found.path, wanted);
    assert_eq!(found.build_id, Some("12".repeat(20)));
    assert!(found.has_btf && !found.has_dwarf);
    let btf = Btf::from_elf_file(&found.path, None).unwrap();
    assert_eq!(btf.struct_size("task_struct").unwrap(), 4);
    // A BTF-only image is enough for `Types`; an image with neither BTF nor DWARF is not.
    let types = Types::open_vmlinux(&found.path).unwrap();
    assert_eq!(types.offset_of("task_struct", "pid").unwrap(), 0);
    assert!(types.vmlinux_btf().is_some());
    let stripped = root.join(format!("usr/lib/debug/boot/vmlinux-{RELEASE}"));
    assert!(matches!(
        Types::open_vmlinux(&stripped),
        Err(SymbolError::NoDebugInfo { .. })
    ));

    // Without a build id the first usable image wins.
    let any = find_vmlinux(RELEASE, None, std::slice::from_ref(&root)).unwrap();
    assert_eq!(any.path, root.join(format!("boot/vmlinux-{RELEASE}")));

    // No match: every path is listed with its reason.
    let err =
        find_vmlinux(RELEASE, Some(&"34".repeat(20)), std::slice::from_ref(&root)).unwrap_err();
    let SymbolError::Type(TypeError::VmlinuxNotFound { release, tried }) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(release, RELEASE);
    let paths: Vec<&PathBuf> = tried.iter().map(|r| &r.path).collect();
    let candidates =
        vmlinux_candidates(RELEASE, Some(&"34".repeat(20)), std::slice::from_ref(&root));
    let by_id = format!("usr/lib/debug/.build-id/34/{}.debug", "34".repeat(19));
    assert!(candidates.iter().any(|c| c.ends_with(&by_id)));
    assert_eq!(paths, candidates.iter().collect::<Vec<_>>());
    assert_eq!(tried[0].reason, RejectReason::NoDebugInfo);
    assert!(matches!(tried[1].reason, RejectReason::NotElf(_)));
    assert_eq!(tried[2].reason, RejectReason::Missing);
    assert!(matches!(
        tried[3].reason,
        RejectReason::BuildIdMismatch { .. }
    ));
    assert!(matches!(
        tried[4].reason,
        RejectReason::BuildIdMismatch { .. }
    ));
    assert!(tried[5..].iter().all(|r| r.reason == RejectReason::Missing));
    let text = err.to_string();
    for path in &candidates {
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
    assert!(
        text.contains("no debug info") && text.contains("missing"),
        "{text}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// `readelf -n`'s "Build ID: <hex>".
fn readelf_build_id(path: &Path) -> Option<String> {
    let out = Command::new("readelf").arg("-n").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Build ID:")
            .map(|id| id.trim().to_string())
    })
}

#[test]
fn lab_kernels_are_found() {
    let Ok(versions) = std::fs::read_dir(lab_root().join("kernels")) else {
        kdive_testkit::skip!("SKIP (no lab at {})", lab_root().display());
        return;
    };
    let mut checked = 0;
    for version in versions.flatten() {
        let root = version.path();
        let Ok(boot) = std::fs::read_dir(root.join("usr/lib/debug/boot")) else {
            continue;
        };
        for entry in boot.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(release) = name.strip_prefix("vmlinux-") else {
                continue;
            };
            let oracle = readelf_build_id(&entry.path()).expect("readelf -n prints a build id");
            let found = find_vmlinux(release, Some(&oracle), std::slice::from_ref(&root)).unwrap();
            assert_eq!(found.path, entry.path());
            assert_eq!(found.build_id.as_deref(), Some(oracle.as_str()));
            assert!(found.has_dwarf && found.has_btf);
            let wrong = find_vmlinux(release, Some(&"0".repeat(40)), std::slice::from_ref(&root))
                .unwrap_err();
            assert!(wrong.to_string().contains(&oracle), "{wrong}");
            checked += 1;
        }
    }
    if checked == 0 {
        kdive_testkit::skip!("SKIP (no lab kernels under {})", lab_root().display());
    }
}

#[test]
fn finds_by_build_id_path() {
    let root = scratch("build-id");
    let id = [0xab; 20];
    let wanted = put(
        &root,
        &format!("usr/lib/debug/.build-id/ab/{}.debug", "ab".repeat(19)),
        &btf_elf(&id),
    );
    let found = find_vmlinux(RELEASE, Some(&"ab".repeat(20)), std::slice::from_ref(&root)).unwrap();
    assert_eq!(found.path, wanted);
    // Without the build id there is no way to that file.
    assert!(find_vmlinux(RELEASE, None, std::slice::from_ref(&root)).is_err());
    std::fs::remove_dir_all(&root).unwrap();
}
