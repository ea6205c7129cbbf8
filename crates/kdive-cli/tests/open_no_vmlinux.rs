//! `kdive open DUMP --no-vmlinux` in a first session (an empty cache: kallsyms decoded and
//! the BTF read from the dump, both then cached) and in a later one (both from the cache)
//! prints what the session with the vmlinux prints (the oracle, run here on the same dump),
//! but for sys's KERNEL line, which says where the symbols came from. A kernel whose kallsyms
//! holds functions only (no CONFIG_KALLSYMS_ALL) says so, and names each variable it lacked.

use std::process::Command;

use kdive_testkit::lab::{files, lab_root, manifests, null_init_dump_per_series, str_at};

fn kdive(args: &[&str], cache: &std::path::Path) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kdive"))
        .arg("open")
        .args(args)
        .args(["-c", "sys", "-c", "bt -a", "-c", "mod", "-c", "task"])
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run kdive");
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "kdive open {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with("KERNEL:"))
        .collect::<Vec<_>>()
        .join("\n");
    (text, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn first_and_later_sessions_without_a_vmlinux_print_what_the_vmlinux_session_prints() {
    let root = lab_root();
    let all = manifests(&root);
    let chosen = null_init_dump_per_series(&all);
    if chosen.is_empty() {
        kdive_testkit::skip!("SKIP (no lab at {})", root.display());
        return;
    }
    let mut compared = 0;
    for m in chosen {
        let name = str_at(m, &["name"]).unwrap_or("?");
        let (Some(vmlinux), Some(dump)) =
            (str_at(m, &["kernel", "vmlinux"]), files(m).first().cloned())
        else {
            continue;
        };
        let dump = dump.to_str().expect("utf-8 path").to_owned();
        let cache = std::env::temp_dir().join(format!("kdive-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache);
        std::fs::create_dir_all(&cache).expect("cache dir");
        let (expected, _) = kdive(&[&dump, "--vmlinux", vmlinux], &cache);
        let (first, said) = kdive(&[&dump, "--no-vmlinux"], &cache);
        assert!(said.contains("kallsyms"), "{name}: no notice: {said}");
        let (later, _) = kdive(&[&dump, "--no-vmlinux"], &cache);
        if said.contains("CONFIG_KALLSYMS_ALL is off") {
            // Functions only (Debian's arm64 6.1): tasks, modules and counters are out of
            // reach, and each answer says which variable it lacked; the cache changes nothing.
            assert!(
                said.contains("no symbol `init_task` in the kernel's kallsyms")
                    && said.contains("no symbol `modules` in the kernel's kallsyms"),
                "{name}: the missing variables unnamed: {said}"
            );
            assert_eq!(later, first, "{name}: later session without the vmlinux");
            println!("{name}: kallsyms of functions only, as the notice and warnings say");
            let _ = std::fs::remove_dir_all(&cache);
            continue;
        }
        assert_eq!(first, expected, "{name}: first session without the vmlinux");
        assert_eq!(later, expected, "{name}: later session without the vmlinux");
        compared += 1;
        let _ = std::fs::remove_dir_all(&cache);
    }
    assert!(compared > 0, "no dump compared");
    println!("{compared} dumps: first and later sessions without the vmlinux print the same");
}
