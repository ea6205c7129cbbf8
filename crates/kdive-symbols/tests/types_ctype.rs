//! Whole C types (`TypeInfo::c_type` / `c_node`) on synthetic BTF: typedef names kept,
//! qualifiers, anonymous members, bitfields, enums, function prototypes, type tags looked
//! through, declarations; names for completion; hostile graphs end in errors.

use std::sync::Arc;

use kdive_symbols::{
    c_member_names, c_sizeof, c_strip, BaseKind, Btf, CType, Qualifier, TypeInfo, Types,
};
use kdive_testkit::btf::{kind, BtfBuilder, INT_BOOL, INT_SIGNED};

fn types(b: &BtfBuilder) -> Types {
    let btf = Btf::parse(b.build(), None, "synthetic").expect("parses");
    let mut t = Types::new();
    t.push(Arc::new(btf));
    t
}

#[test]
fn nodes_keep_what_c_spells() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let ulong = b.int("long unsigned int", 8, 0);
    let boolean = b.int("_Bool", 1, INT_BOOL);
    let chr = b.int("char", 1, INT_SIGNED);
    let pid = b.typedef("pid_t", int);
    let vol = b.qualifier(kind::VOLATILE, ulong);
    let user = b.type_tag("user", chr);
    let uptr = b.ptr(user);
    let anon = b.union_("", 8, &[("a", int, 0), ("b", ulong, 0)]);
    let proto = b.func_proto(int, &[("x", pid), ("", 0)]);
    let fnp = b.ptr(proto);
    let e = b.enum_("state", 4, true, &[("NEG", -1), ("ZERO", 0)]);
    let fwd = b.fwd("opaque", false);
    let fwdp = b.ptr(fwd);
    b.struct_kflag(
        "s",
        48,
        &[
            ("pid", pid, 0, 0),
            ("j", vol, 64, 0),
            ("", anon, 128, 0),
            ("flag", boolean, 192, 1),
            ("u", uptr, 256, 0),
            ("f", fnp, 320, 0),
            ("e", e, 352, 0),
            ("o", fwdp, 320, 0),
        ],
    );
    let t = types(&b);
    let s = t.c_type("struct s").unwrap();
    let CType::Struct(c) = t.c_node(s).unwrap() else {
        panic!("a struct")
    };
    assert!(!c.union && c.complete && c.tag.as_deref() == Some("s") && c.size == 48);
    let names: Vec<Option<&str>> = c.members.iter().map(|m| m.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            Some("pid"),
            Some("j"),
            None,
            Some("flag"),
            Some("u"),
            Some("f"),
            Some("e"),
            Some("o")
        ]
    );
    assert!(
        matches!(t.c_node(c.members[0].ty).unwrap(), CType::Typedef { ref name, .. } if name == "pid_t")
    );
    let CType::Qualified { qualifier, target } = t.c_node(c.members[1].ty).unwrap() else {
        panic!("volatile")
    };
    assert_eq!(qualifier, Qualifier::Volatile);
    // gdb's spelling of gcc's base type names.
    assert!(
        matches!(t.c_node(target).unwrap(), CType::Base { ref name, size: 8, kind: BaseKind::Unsigned } if name == "unsigned long")
    );
    assert_eq!(c.members[3].bit_size, Some(1));
    assert!(matches!(
        c_strip(&t, c.members[3].ty).unwrap().1,
        CType::Base {
            kind: BaseKind::Bool,
            ..
        }
    ));
    // Type tags are looked through: `char __user *` is `char *`.
    let CType::Pointer(target) = t.c_node(c.members[4].ty).unwrap() else {
        panic!("pointer")
    };
    assert!(matches!(
        t.c_node(target).unwrap(),
        CType::Base {
            kind: BaseKind::SignedChar,
            ..
        }
    ));
    let CType::Pointer(proto) = t.c_node(c.members[5].ty).unwrap() else {
        panic!("function pointer")
    };
    let CType::Function {
        params, variadic, ..
    } = t.c_node(proto).unwrap()
    else {
        panic!("prototype")
    };
    assert_eq!(params.len(), 1);
    assert!(variadic);
    assert!(
        matches!(t.c_node(c.members[6].ty).unwrap(), CType::Enum { signed: true, ref enumerators, .. } if enumerators[0] == ("NEG".to_string(), -1))
    );
    let CType::Pointer(opaque) = t.c_node(c.members[7].ty).unwrap() else {
        panic!("pointer")
    };
    assert!(matches!(t.c_node(opaque).unwrap(), CType::Struct(ref o) if !o.complete));
    assert_eq!(c_sizeof(&t, s).unwrap(), Some(48));
    assert_eq!(
        c_member_names(&t, "s").unwrap(),
        ["pid", "j", "flag", "u", "f", "e", "o", "a", "b"]
    );
    assert_eq!(t.type_names().unwrap(), ["pid_t", "struct s"]);
    // `unsigned long` finds gcc's `long unsigned int`.
    assert!(t.c_type("unsigned long").is_ok());
}

#[test]
fn hostile_graphs_end_in_errors() {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, INT_SIGNED);
    let first = b.next_id();
    b.typedef("a", first + 1);
    b.typedef("b", first);
    let arr = b.array(int, int, u32::MAX);
    let big = b.array(arr, int, u32::MAX);
    b.typedef("big_t", big);
    // Dangling ids.
    b.typedef("dangling", 9999);
    let t = types(&b);
    let a = t.c_type("a").unwrap();
    assert!(c_strip(&t, a).is_err());
    assert!(c_sizeof(&t, a).is_err());
    assert!(c_sizeof(&t, t.c_type("big_t").unwrap()).is_err());
    let d = t.c_type("dangling").unwrap();
    let CType::Typedef { target, .. } = t.c_node(d).unwrap() else {
        panic!("typedef")
    };
    assert!(t.c_node(target).is_err());
    assert!(t.c_type("no_such_type").is_err());
}
