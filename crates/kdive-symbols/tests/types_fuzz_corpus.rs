//! Replays `fuzz/corpus/btf/` through `kdive_symbols::fuzz_btf` (the `btf` fuzz target's entry
//! point) on stable Rust, plus seeds built with kdive-testkit's `BtfBuilder` and mutations of
//! them. `KDIVE_UPDATE_CORPUS=1` writes the seeds into the corpus directory.

use std::path::{Path, PathBuf};

use kdive_symbols::fuzz_btf;
use kdive_testkit::btf::{kind, BtfBuilder, INT_BOOL, INT_CHAR, INT_SIGNED};
use kdive_testkit::Mutator;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/btf")
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let chr = b.int("char", 1, INT_SIGNED | INT_CHAR);
    let boolean = b.int("_Bool", 1, INT_BOOL);
    let list = b.next_id() + 1;
    let list_ptr = b.ptr(list);
    b.struct_(
        "list_head",
        16,
        &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
    );
    let comm = b.array(chr, int, 16);
    let anon = b.union_("", 4, &[("a", int, 0), ("b", boolean, 0)]);
    let cst = b.qualifier(kind::CONST, int);
    let vol = b.qualifier(kind::VOLATILE, cst);
    let pid = b.typedef("pid_t", vol);
    b.struct_(
        "task_struct",
        64,
        &[
            ("pid", pid, 0),
            ("", anon, 32),
            ("comm", comm, 64),
            ("tasks", list, 192),
        ],
    );
    let uint = b.int("unsigned int", 4, 0);
    b.struct_kflag("flags", 4, &[("x", uint, 0, 1), ("y", uint, 1, 3)]);
    b.enum_(
        "pid_type",
        4,
        false,
        &[("PIDTYPE_PID", 0), ("PIDTYPE_MAX", 4)],
    );
    b.enum64("big", 8, true, &[("NEG", u64::MAX)]);
    b.fwd("opaque", true);
    let proto = b.func_proto(int, &[("t", list_ptr)]);
    b.func("f", proto, 1);
    let var = b.var("v", int, 1);
    b.datasec(".data", 4, &[(var, 0, 4)]);
    b.decl_tag("tag", proto, -1);
    b.type_tag("user", chr);
    b.float("double", 8);
    let kernel = b.build();

    let mut loops = BtfBuilder::new();
    let own = loops.next_id();
    loops.typedef("self", own);
    let arr = loops.next_id();
    loops.array(arr, 0, 2);
    let s = loops.next_id();
    loops.struct_("nest", 8, &[("", s, 0), ("arr", arr, 0)]);

    vec![
        ("seed-kernel-like".to_string(), kernel),
        ("seed-loops".to_string(), loops.build()),
    ]
}

#[test]
fn replay_btf_corpus() {
    let seeds = seeds();
    if std::env::var_os("KDIVE_UPDATE_CORPUS").is_some() {
        std::fs::create_dir_all(corpus_dir()).expect("corpus dir");
        for (name, data) in &seeds {
            std::fs::write(corpus_dir().join(name), data).expect("write seed");
        }
    }
    let mut inputs: Vec<Vec<u8>> = seeds.into_iter().map(|(_, d)| d).collect();
    if let Ok(dir) = std::fs::read_dir(corpus_dir()) {
        for entry in dir.flatten() {
            inputs.push(std::fs::read(entry.path()).expect("corpus file"));
        }
    }
    assert!(fuzz_btf(&inputs[0]) > 20, "the kernel-like seed must parse");
    let mut mutator = Mutator::new(0x9e37_79b9_7f4a_7c15);
    for data in &inputs {
        fuzz_btf(data);
        for _ in 0..500 {
            fuzz_btf(&mutator.mutate(data, 6, 4));
        }
    }
}
