//! BTF on synthetic sections: every kind, member paths through anonymous unions, both bitfield
//! encodings, split (module) BTF, and malformed input that must end in errors, never panics.

use std::sync::Arc;

use kdive_symbols::btf::BtfKind;
use kdive_symbols::{fuzz_btf, Btf, SymbolError, TypeClass, TypeError, TypeInfo, Types};
use kdive_testkit::btf::{kind, BtfBuilder, INT_BOOL, INT_CHAR, INT_SIGNED};

/// A small kernel-like type graph; returns the builder so tests can add more.
fn kernel_like() -> BtfBuilder {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED); // 1
    let uint = b.int("unsigned int", 4, 0);
    let ulong = b.int("long unsigned int", 8, 0);
    let chr = b.int("char", 1, INT_SIGNED | INT_CHAR);
    let boolean = b.int("_Bool", 1, INT_BOOL);
    let pid_t = b.typedef("pid_t", int);
    // struct list_head { struct list_head *next, *prev; }: the pointer refers forward.
    let list_head = b.next_id() + 1;
    let list_ptr = b.ptr(list_head);
    b.struct_(
        "list_head",
        16,
        &[("next", list_ptr, 0), ("prev", list_ptr, 64)],
    );
    let thread = b.struct_("thread_struct", 16, &[("ip", ulong, 0), ("sp", ulong, 64)]);
    let index = b.int("__ARRAY_SIZE_TYPE__", 4, 0);
    let comm = b.array(chr, index, 16);
    let matrix_row = b.array(int, index, 3);
    let matrix = b.array(matrix_row, index, 2);
    let volatile_uint = b.qualifier(kind::VOLATILE, uint);
    let anon_union = b.union_("", 8, &[("__state", volatile_uint, 0), ("state", ulong, 0)]);
    let inner_anon = b.struct_("", 4, &[("deep", int, 0)]);
    let anon_struct = b.struct_("", 8, &[("", inner_anon, 0), ("after", int, 32)]);
    let task = b.next_id() + 2;
    let task_ptr = b.ptr(task);
    let const_task_ptr = b.qualifier(kind::CONST, task_ptr);
    b.struct_(
        "task_struct",
        256,
        &[
            ("pid", pid_t, 0),
            ("", anon_union, 64),
            ("comm", comm, 128),
            ("tasks", list_head, 256),
            ("thread", thread, 384),
            ("parent", const_task_ptr, 512),
            ("", anon_struct, 576),
            ("matrix", matrix, 640),
            ("on_cpu", boolean, 832),
        ],
    );
    // Old-style bitfields: INT types carrying offset and width.
    let bits3 = b.int_bits("unsigned int", 4, 0, 0, 3);
    let bits5 = b.int_bits("unsigned int", 4, 0, 0, 5);
    b.struct_("old_bits", 4, &[("a", bits3, 0), ("b", bits5, 3)]);
    // kind_flag bitfields.
    b.struct_kflag(
        "new_bits",
        8,
        &[("x", uint, 0, 1), ("y", uint, 1, 7), ("z", uint, 32, 0)],
    );
    b.struct_kflag("signed_bits", 4, &[("s", int, 4, 3)]);
    b.enum_(
        "pid_type",
        4,
        false,
        &[("PIDTYPE_PID", 0), ("PIDTYPE_TGID", 1), ("PIDTYPE_MAX", 4)],
    );
    b.enum_("", 4, true, &[("TASK_COMM_LEN", 16), ("NEGATIVE", -5)]);
    b.enum64("big", 8, false, &[("BIG", 0xffff_ffff_0000_0001)]);
    b.fwd("opaque", false);
    let proto = b.func_proto(int, &[("task", task_ptr), ("", 0)]);
    b.func("do_task", proto, 1);
    let fn_ptr = b.ptr(proto);
    b.struct_("ops", 8, &[("handler", fn_ptr, 0)]);
    let runqueue = b.struct_("rq", 8, &[("nr_running", uint, 0)]);
    let var = b.var("runqueues", runqueue, 1);
    b.datasec(".data..percpu", 8, &[(var, 0, 8)]);
    b.decl_tag("kfunc", proto, -1);
    let user_char = b.type_tag("user", chr);
    let user_ptr = b.ptr(user_char);
    let restrict_ptr = b.qualifier(kind::RESTRICT, user_ptr);
    b.struct_(
        "iov",
        16,
        &[("base", user_ptr, 0), ("limit", restrict_ptr, 64)],
    );
    b.float("double", 8);
    b
}

fn kernel_btf() -> Btf {
    Btf::parse(kernel_like().build(), None, "test").unwrap()
}

#[test]
fn members_sizes_and_paths() {
    let btf = kernel_btf();
    assert_eq!(btf.struct_size("task_struct").unwrap(), 256);
    assert_eq!(btf.struct_size("struct list_head").unwrap(), 16);

    let pid = btf.member("task_struct", "pid").unwrap();
    assert_eq!((pid.offset, pid.size, pid.bit_size), (0, 4, None));
    assert_eq!(pid.ty.name, "pid_t");
    assert_eq!(pid.ty.class, TypeClass::Integer);
    assert!(pid.ty.signed);

    // Members of anonymous unions and structs are found as in C, at any depth.
    let state = btf.member("task_struct", "__state").unwrap();
    assert_eq!((state.offset, state.size), (8, 4));
    assert_eq!(state.ty.name, "volatile unsigned int");
    assert_eq!(btf.member("task_struct", "state").unwrap().offset, 8);
    assert_eq!(btf.member("task_struct", "deep").unwrap().offset, 72);
    assert_eq!(btf.member("task_struct", "after").unwrap().offset, 76);

    let comm = btf.member("task_struct", "comm").unwrap();
    assert_eq!((comm.offset, comm.size), (16, 16));
    assert_eq!(comm.ty.class, TypeClass::Array);
    assert_eq!(comm.ty.array_len, Some(16));
    assert_eq!(comm.ty.name, "char [16]");
    assert_eq!(comm.ty.target.as_ref().unwrap().size, Some(1));
    assert_eq!(btf.member("task_struct", "comm[3]").unwrap().offset, 19);

    let matrix = btf.member("task_struct", "matrix").unwrap();
    assert_eq!(matrix.ty.name, "int [2][3]");
    assert_eq!(matrix.size, 24);
    assert_eq!(
        btf.member("task_struct", "matrix[1][2]").unwrap().offset,
        80 + 12 + 8
    );

    assert_eq!(btf.member("task_struct", "tasks.prev").unwrap().offset, 40);
    assert_eq!(btf.member("task_struct", "thread.sp").unwrap().offset, 56);
    let next = btf.member("list_head", "next").unwrap();
    assert_eq!(next.ty.class, TypeClass::Pointer);
    assert_eq!(next.ty.name, "struct list_head *");
    assert_eq!(
        next.ty.target.as_ref().unwrap().tag.as_deref(),
        Some("list_head")
    );

    let parent = btf.member("task_struct", "parent").unwrap();
    assert_eq!(parent.ty.name, "struct task_struct * const");
    assert_eq!(parent.ty.class, TypeClass::Pointer);
    assert_eq!(parent.ty.target.as_ref().unwrap().size, Some(256));

    assert_eq!(
        btf.member("task_struct", "on_cpu").unwrap().ty.class,
        TypeClass::Bool
    );
    assert_eq!(
        btf.member("ops", "handler").unwrap().ty.name,
        "int (*)(struct task_struct *, ...)"
    );
    assert_eq!(btf.member("iov", "base").unwrap().ty.name, "char *");
    assert_eq!(
        btf.member("iov", "limit").unwrap().ty.name,
        "char * restrict"
    );

    let members = btf.members("task_struct").unwrap();
    assert_eq!(members.len(), 9);
    assert_eq!(members[1].name, "");
    assert_eq!(members[1].ty.class, TypeClass::Union);

    assert!(btf.has_member("task_struct", "thread.sp").unwrap());
    assert!(!btf.has_member("task_struct", "thread.nope").unwrap());
}

#[test]
fn bitfields_in_both_encodings() {
    let btf = kernel_btf();
    let a = btf.member("old_bits", "a").unwrap();
    let b = btf.member("old_bits", "b").unwrap();
    assert_eq!((a.bit_offset, a.bit_size), (0, Some(3)));
    assert_eq!((b.bit_offset, b.bit_size, b.offset), (3, Some(5), 0));
    let y = btf.member("new_bits", "y").unwrap();
    assert_eq!(
        (y.offset, y.bit_offset, y.bit_size, y.size),
        (0, 1, Some(7), 4)
    );
    // 0b1010_1011: x = 1, y = 0b1010101.
    assert_eq!(y.extract(&[0xab, 0, 0, 0]), Some(0x55));
    assert_eq!(
        btf.member("new_bits", "x")
            .unwrap()
            .extract(&[0xab, 0, 0, 0]),
        Some(1)
    );
    assert_eq!(y.extract_signed(&[0xab, 0, 0, 0]), Some(0x55));
    let pid = btf.member("task_struct", "pid").unwrap();
    assert_eq!(pid.extract_signed(&(-3i32).to_le_bytes()), Some(-3));
    let signed_bits = btf.member("signed_bits", "s").unwrap();
    assert_eq!(
        signed_bits.extract_signed(&[0b0110_0000, 0, 0, 0]),
        Some(-2)
    );
    assert_eq!(signed_bits.extract(&[0b0110_0000, 0, 0, 0]), Some(0b110));
    let z = btf.member("new_bits", "z").unwrap();
    assert_eq!((z.offset, z.bit_size), (4, None));
}

#[test]
fn enums_variables_and_names() {
    let btf = kernel_btf();
    assert_eq!(btf.enum_value(Some("pid_type"), "PIDTYPE_MAX").unwrap(), 4);
    assert_eq!(
        btf.enum_value(Some("enum pid_type"), "PIDTYPE_TGID")
            .unwrap(),
        1
    );
    assert_eq!(btf.enum_value(None, "TASK_COMM_LEN").unwrap(), 16);
    assert_eq!(btf.enum_value(None, "NEGATIVE").unwrap(), -5);
    assert_eq!(btf.enum_value(None, "BIG").unwrap(), 0xffff_ffff_0000_0001);
    let err = btf.enum_value(Some("pid_type"), "PIDTYPE_SID").unwrap_err();
    assert!(
        err.to_string().contains("PIDTYPE_SID") && err.to_string().contains("pid_type"),
        "{err}"
    );

    let rq = btf.variable_type("runqueues").unwrap();
    assert_eq!((rq.name.as_str(), rq.size), ("struct rq", Some(8)));
    assert!(matches!(
        btf.variable_type("jiffies"),
        Err(SymbolError::Type(TypeError::UnknownVariable { .. }))
    ));

    let opaque = btf.type_named("opaque").unwrap();
    assert_eq!((opaque.class, opaque.size), (TypeClass::Struct, None));
    assert!(btf.struct_size("opaque").is_err());
    assert_eq!(btf.type_named("double").unwrap().class, TypeClass::Float);
    assert_eq!(btf.type_named("pid_t").unwrap().size, Some(4));

    match btf.member("task_struct", "no_such") {
        Err(SymbolError::Type(TypeError::UnknownMember { ty, member })) => {
            assert_eq!((ty.as_str(), member.as_str()), ("task_struct", "no_such"));
        }
        other => panic!("{other:?}"),
    }
    match btf.struct_size("no_such_struct") {
        Err(SymbolError::Type(TypeError::UnknownType { name })) => {
            assert_eq!(name, "no_such_struct")
        }
        other => panic!("{other:?}"),
    }
    // Every kind decodes.
    let kinds: std::collections::HashSet<BtfKind> = (0..btf.next_id())
        .map(|id| btf.type_by_id(id).unwrap().kind)
        .collect();
    assert_eq!(kinds.len(), 20, "{kinds:?}");
}

#[test]
fn split_btf_of_a_module() {
    let base_builder = kernel_like();
    let base = Arc::new(Btf::parse(base_builder.build(), None, "vmlinux").unwrap());
    let mut m = BtfBuilder::split(base_builder.next_id(), base_builder.str_len());
    let list_head = base.ids_by_name("list_head")[0];
    let int = base.ids_by_name("int")[0];
    let own = m.struct_(
        "kdive_lab_dev",
        24,
        &[("list", list_head, 0), ("id", int, 128)],
    );
    assert_eq!(own, base.next_id());
    let module = Btf::from_elf_data(&m.build_elf(), Some(base.clone()), "kdive_lab.ko").unwrap();
    assert_eq!(
        module.member("kdive_lab_dev", "list.prev").unwrap().offset,
        8
    );
    assert_eq!(module.member("kdive_lab_dev", "id").unwrap().ty.name, "int");
    // The base's types are seen through the module.
    assert_eq!(module.struct_size("task_struct").unwrap(), 256);
    assert!(base.struct_size("kdive_lab_dev").is_err());
}

#[test]
fn types_stack_falls_through_for_variables_and_to_later_btf() {
    let mut first = BtfBuilder::new();
    let int = first.int("int", 4, INT_SIGNED);
    first.struct_("only_in_first", 4, &[("a", int, 0)]);
    let first = Btf::parse(first.build(), None, "first").unwrap();
    let mut types = Types::new();
    types.push(Arc::new(first));
    types.push(Arc::new(kernel_btf()));
    assert_eq!(types.struct_size("only_in_first").unwrap(), 4);
    assert_eq!(types.offset_of("only_in_first", "a").unwrap(), 0);
    assert!(!types.has_member("only_in_first", "b").unwrap());
    // Variables fall through to the next source ...
    assert_eq!(types.variable_type("runqueues").unwrap().name, "struct rq");
    // ... and types to later BTF (a module's after the kernel's) ...
    assert_eq!(types.struct_size("task_struct").unwrap(), 256);
    // ... but BTF's "unknown type" is final for all else, and names what was asked.
    match types.struct_size("no_such_struct") {
        Err(SymbolError::Type(TypeError::UnknownType { name })) => {
            assert_eq!(name, "no_such_struct")
        }
        other => panic!("{other:?}"),
    }
    match types.variable_type("missing") {
        Err(SymbolError::Type(TypeError::UnknownVariable { name })) => assert_eq!(name, "missing"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn self_referencing_types_end_in_errors() {
    let mut b = BtfBuilder::new();
    let own = b.next_id();
    b.typedef("loop", own); // typedef to itself
    let a = b.next_id();
    b.typedef("a", a + 1);
    b.typedef("b", a); // a -> b -> a
    let arr = b.next_id();
    b.array(arr, 0, 4); // array of itself
    let s = b.next_id();
    b.struct_("nest", 8, &[("", s, 0), ("x", a, 0), ("arr", arr, 0)]); // contains itself
    let btf = Btf::parse(b.build(), None, "loops").unwrap();
    assert!(btf.type_named("loop").is_err());
    assert!(btf.type_named("a").is_err());
    assert!(btf.member("nest", "x").is_err());
    assert!(btf.member("nest", "arr").is_err());
    assert!(btf.member("nest", "missing").is_err());
    assert!(btf.members("nest").is_err());
    assert!(fuzz_btf(&b.build()) > 0);
}

/// The `btf` fuzz target's find: a FUNC whose "prototype" is itself recursed until the stack
/// overflowed when its C type was built.
#[test]
fn func_cycle_is_bounded() {
    let mut b = BtfBuilder::new();
    let own = b.next_id();
    b.func("f", own, 1);
    let g = b.next_id();
    b.func("g", g + 1, 1);
    b.func("h", g, 1);
    let to_f = b.ptr(own);
    let to_g = b.ptr(g);
    b.struct_("s", 16, &[("f", to_f, 0), ("g", to_g, 64)]);
    // The whole-type walk reaches the functions through the pointers.
    assert!(fuzz_btf(&b.build()) > 0);
}

#[test]
fn anonymous_members_of_itself_are_bounded() {
    let mut b = BtfBuilder::new();
    let wide = b.next_id();
    let members: Vec<(&str, u32, u32)> = (0..2000).map(|_| ("", wide, 0)).collect();
    b.struct_("wide", 8, &members);
    let btf = Btf::parse(b.build(), None, "wide").unwrap();
    let start = std::time::Instant::now();
    assert!(btf.member("wide", "x").is_err());
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}

#[test]
fn malformed_headers_are_errors() {
    let good = kernel_like().build();
    let bad = |data: Vec<u8>| Btf::parse(data, None, "bad").unwrap_err();
    assert!(bad(Vec::new()).to_string().contains("magic"));
    let mut v = good.clone();
    v[2] = 2;
    assert!(bad(v).to_string().contains("version"));
    let set = |at: usize, value: u32| {
        let mut v = good.clone();
        v[at..at + 4].copy_from_slice(&value.to_le_bytes());
        v
    };
    bad(set(4, 3)); // header shorter than its fields
    bad(set(4, u32::MAX));
    bad(set(12, u32::MAX)); // type_len
    bad(set(16, u32::MAX - 10)); // str_off
    bad(set(20, u32::MAX)); // str_len
                            // A huge vlen runs past the type section.
    let mut b = BtfBuilder::new();
    b.raw_type(0, kind::STRUCT, false, 0xffff, 8);
    bad(b.build());
    // An unknown kind.
    let mut b = BtfBuilder::new();
    b.raw_type(0, 31, false, 0, 0);
    bad(b.build());
    // Truncated anywhere.
    for len in 0..good.len() {
        let _ = Btf::parse(good[..len].to_vec(), None, "truncated");
    }
    // Name offsets outside the string section decode as errors when used.
    let mut b = BtfBuilder::new();
    b.raw_type(0xffff_fff0, kind::INT, false, 0, 4);
    b.raw_words(&[32]);
    let btf = Btf::parse(b.build(), None, "names").unwrap();
    assert!(btf.name(btf.type_by_id(1).unwrap().name_off).is_err());
    assert!(btf.type_by_id(2).is_err());
}

/// Deterministic mutations of a valid section through the fuzz entry point.
#[test]
fn mutations_never_panic() {
    let good = kernel_like().build();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3000 {
        let mut v = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % v.len();
            v[at] = (x >> 32) as u8;
        }
        fuzz_btf(&v);
    }
    assert_eq!(fuzz_btf(&good), kernel_btf().next_id() as usize);
}

/// The type sources are shared across threads by the kernel model (as `Arc<dyn TypeInfo + Send
/// + Sync>` in [`Types`]).
#[test]
fn type_sources_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Btf>();
    send_sync::<kdive_symbols::DwarfTypes>();
    send_sync::<Types>();
}
