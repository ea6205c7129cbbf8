//! The debug-info check on the lab's real Debian kernels (`<lab>/kernels/<version>/` is laid out
//! like a root: `usr/lib/debug/boot/vmlinux-<release>`, `usr/lib/debug/lib/modules/<release>/`).
//! Oracles, run at test time: `readelf -n` for the build id, `find` for the module debug files.

use std::process::Command;

use kdive_doctor::debuginfo;
use kdive_doctor::host::RootHost;
use kdive_testkit::lab::lab_root;

/// `readelf -n` prints `Build ID: <hex>` for NT_GNU_BUILD_ID.
fn readelf_build_id(path: &std::path::Path) -> Option<String> {
    let output = Command::new("readelf").arg("-n").arg(path).output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.trim().strip_prefix("Build ID: ").map(str::to_string))
}

fn find_count(dir: &std::path::Path) -> usize {
    let output = Command::new("find")
        .arg(dir)
        .args(["-name", "*.ko*"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).lines().count()
}

#[test]
fn lab_kernels_have_dwarf_and_build_ids() {
    let kernels = lab_root().join("kernels");
    let Ok(entries) = std::fs::read_dir(&kernels) else {
        kdive_testkit::skip!("SKIP (no lab at {})", kernels.display());
        return;
    };
    let mut checked = 0;
    for entry in entries.flatten() {
        let root = entry.path();
        let Ok(boot) = std::fs::read_dir(root.join("usr/lib/debug/boot")) else {
            continue;
        };
        for file in boot.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(release) = name.strip_prefix("vmlinux-") else {
                continue;
            };
            let host = RootHost::new(&root).unwrap();
            let found = debuginfo::find_vmlinux(&host, release);
            let info = found
                .iter()
                .flatten()
                .next()
                .unwrap_or_else(|| panic!("{}: {found:?}", root.display()));
            assert!(info.has_dwarf, "{info:?}");
            let expected = readelf_build_id(&file.path());
            assert_eq!(
                info.build_id.as_deref().map(debuginfo::hex),
                expected,
                "{}",
                file.path().display()
            );
            let modules = debuginfo::modules_debug_dir(release);
            let oracle = find_count(&host.real_path(&modules));
            assert_eq!(
                debuginfo::count_module_debug_files(&host, &modules, 200_000),
                oracle
            );
            checked += 1;
        }
    }
    if checked == 0 {
        kdive_testkit::skip!("SKIP (no debug vmlinux under {})", kernels.display());
    }
}
