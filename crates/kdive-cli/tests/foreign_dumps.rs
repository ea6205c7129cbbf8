//! Dumps of an architecture kdive does not read, and dumps whose notes are another
//! architecture's than their header says: each is refused with one line naming the file and
//! what does not fit, exit status 2, never read with the wrong layout.

use std::path::Path;
use std::process::Command;

use kdive_testkit::ElfVmcoreBuilder;

/// ELF `e_machine` numbers (elf.h).
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

fn kdive(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .args(args)
        .output()
        .expect("run kdive");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, bytes: Vec<u8>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the dump");
    path.display().to_string()
}

/// A directory of the test's own (the tests run in parallel).
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kdive-foreign-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_machine_kdive_does_not_read_is_named() {
    let dir = scratch("machine");
    let dump = write(
        &dir,
        "riscv.elf",
        ElfVmcoreBuilder::new()
            .machine(EM_RISCV)
            .vmcoreinfo("OSRELEASE=6.1.0\n")
            .prstatus(1, 0x1000, 0x2000)
            .load(0, vec![0; 4096])
            .build(),
    );
    let (status, stdout, stderr) = kdive(&["open", &dump, "--no-vmlinux", "-c", "sys"]);
    assert_eq!(status, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(&dump), "{stderr}");
    assert!(
        stderr.contains(&format!("ELF e_machine {EM_RISCV}")) && stderr.contains("x86_64"),
        "{stderr}"
    );
    // `info` reads headers whatever the architecture, and says which it is.
    let (_, stdout, stderr) = kdive(&["info", "--json", &dump]);
    let info: serde_json::Value = serde_json::from_str(&stdout).expect("info JSON");
    assert_eq!(
        info["arch"],
        format!("ELF e_machine {EM_RISCV}"),
        "{stderr}"
    );
    assert_eq!(info["cpus"].as_array().map(Vec::len), Some(0));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn notes_of_another_architecture_are_refused() {
    let dir = scratch("notes");
    // An x86_64 header with aarch64-sized NT_PRSTATUS notes (392 bytes: 34 registers).
    let mut builder = ElfVmcoreBuilder::new()
        .machine(EM_X86_64)
        .vmcoreinfo("OSRELEASE=6.1.0\n")
        .load(0, vec![0; 4096]);
    builder.notes.prstatus_words(1, &[0x1000; 34], 392);
    let dump = write(&dir, "mixed.elf", builder.build());
    let (status, stdout, stderr) = kdive(&["open", &dump, "--no-vmlinux", "-c", "sys"]);
    assert_eq!(status, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&dump) && stderr.contains("392 bytes") && stderr.contains("336"),
        "{stderr}"
    );
    // The reverse: an aarch64 header with x86_64's NT_PRSTATUS (336 bytes).
    let reverse = write(
        &dir,
        "reverse.elf",
        ElfVmcoreBuilder::new()
            .machine(EM_AARCH64)
            .vmcoreinfo("OSRELEASE=6.1.0\n")
            .prstatus(1, 0x1000, 0x2000)
            .load(0, vec![0; 4096])
            .build(),
    );
    let (status, _, stderr) = kdive(&["open", &reverse, "--no-vmlinux", "-c", "sys"]);
    assert_eq!(status, 2, "stderr: {stderr}");
    assert!(
        stderr.contains(&reverse)
            && stderr.contains("336 bytes")
            && stderr.contains("aarch64's has 392"),
        "{stderr}"
    );
    // The same header with x86_64's own notes opens past this point.
    let fine = write(
        &dir,
        "fine.elf",
        ElfVmcoreBuilder::new()
            .vmcoreinfo("OSRELEASE=6.1.0\n")
            .load(0, vec![0; 4096])
            .build(),
    );
    let (_, _, stderr) = kdive(&["info", &fine]);
    assert!(!stderr.contains("NT_PRSTATUS"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_vmlinux_of_another_architecture_is_refused() {
    let dir = scratch("vmlinux");
    let dump = write(
        &dir,
        "x86.elf",
        ElfVmcoreBuilder::new()
            .vmcoreinfo("OSRELEASE=6.1.0\n")
            .prstatus(1, 0x1000, 0x2000)
            .load(0, vec![0; 4096])
            .build(),
    );
    // Any aarch64 ELF file stands for an arm64 vmlinux: it is refused on its header alone.
    let vmlinux = write(
        &dir,
        "vmlinux-arm64",
        ElfVmcoreBuilder::new()
            .machine(EM_AARCH64)
            .load(0, vec![0; 4096])
            .build(),
    );
    let (status, stdout, stderr) = kdive(&["open", &dump, "--vmlinux", &vmlinux, "-c", "sys"]);
    assert_eq!(status, 2, "stderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&vmlinux)
            && stderr.contains(&format!("e_machine is {EM_AARCH64}"))
            && stderr.contains("x86_64"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
