//! DWARF types on synthetic debug info written with `gimli::write` into an ELF file: members
//! through anonymous unions, both bitfield encodings, arrays, enums, variables, declarations
//! completed from another unit, and self-referencing types that must end in errors.

use std::path::PathBuf;

use gimli::write::{
    AttributeValue, Dwarf, EndianVec, LineProgram, Reference, Sections, Unit, UnitEntryId,
};
use gimli::{DwTag, Encoding, Format};
use kdive_symbols::{DwarfTypes, SymbolError, TypeClass, TypeError, TypeInfo};

struct Builder<'a> {
    unit: &'a mut Unit,
}

impl Builder<'_> {
    fn add(
        &mut self,
        parent: Option<UnitEntryId>,
        tag: DwTag,
        attrs: &[(gimli::DwAt, AttributeValue)],
    ) -> UnitEntryId {
        let parent = parent.unwrap_or_else(|| self.unit.root());
        let id = self.unit.add(parent, tag);
        for (name, value) in attrs {
            self.unit.get_mut(id).set(*name, value.clone());
        }
        id
    }
}

fn name(s: &str) -> (gimli::DwAt, AttributeValue) {
    (
        gimli::DW_AT_name,
        AttributeValue::String(s.as_bytes().to_vec()),
    )
}
fn size(n: u64) -> (gimli::DwAt, AttributeValue) {
    (gimli::DW_AT_byte_size, AttributeValue::Udata(n))
}
fn ty(id: UnitEntryId) -> (gimli::DwAt, AttributeValue) {
    (gimli::DW_AT_type, AttributeValue::UnitRef(id))
}
fn loc(n: u64) -> (gimli::DwAt, AttributeValue) {
    (gimli::DW_AT_data_member_location, AttributeValue::Udata(n))
}

/// Two units: the first defines the kernel-like types, the second only declares
/// `struct task_struct` and has a variable of that type and one of a pointer to it.
fn build() -> Vec<u8> {
    let encoding = Encoding {
        format: Format::Dwarf32,
        version: 4,
        address_size: 8,
    };
    let mut dwarf = Dwarf::new();
    let first = dwarf.units.add(Unit::new(encoding, LineProgram::none()));
    let task_struct;
    {
        let mut b = Builder {
            unit: dwarf.units.get_mut(first),
        };
        let int = b.add(
            None,
            gimli::DW_TAG_base_type,
            &[
                name("int"),
                size(4),
                (
                    gimli::DW_AT_encoding,
                    AttributeValue::Encoding(gimli::DW_ATE_signed),
                ),
            ],
        );
        let uint = b.add(
            None,
            gimli::DW_TAG_base_type,
            &[
                name("unsigned int"),
                size(4),
                (
                    gimli::DW_AT_encoding,
                    AttributeValue::Encoding(gimli::DW_ATE_unsigned),
                ),
            ],
        );
        let chr = b.add(
            None,
            gimli::DW_TAG_base_type,
            &[
                name("char"),
                size(1),
                (
                    gimli::DW_AT_encoding,
                    AttributeValue::Encoding(gimli::DW_ATE_signed_char),
                ),
            ],
        );
        let boolean = b.add(
            None,
            gimli::DW_TAG_base_type,
            &[
                name("_Bool"),
                size(1),
                (
                    gimli::DW_AT_encoding,
                    AttributeValue::Encoding(gimli::DW_ATE_boolean),
                ),
            ],
        );
        let pid_t = b.add(None, gimli::DW_TAG_typedef, &[name("pid_t"), ty(int)]);
        let list_head = b.add(
            None,
            gimli::DW_TAG_structure_type,
            &[name("list_head"), size(16)],
        );
        let list_ptr = b.add(None, gimli::DW_TAG_pointer_type, &[size(8), ty(list_head)]);
        b.add(
            Some(list_head),
            gimli::DW_TAG_member,
            &[name("next"), ty(list_ptr), loc(0)],
        );
        b.add(
            Some(list_head),
            gimli::DW_TAG_member,
            &[name("prev"), ty(list_ptr), loc(8)],
        );
        let comm = b.add(None, gimli::DW_TAG_array_type, &[ty(chr)]);
        b.add(
            Some(comm),
            gimli::DW_TAG_subrange_type,
            &[(gimli::DW_AT_upper_bound, AttributeValue::Udata(15))],
        );
        let matrix = b.add(None, gimli::DW_TAG_array_type, &[ty(int)]);
        b.add(
            Some(matrix),
            gimli::DW_TAG_subrange_type,
            &[(gimli::DW_AT_count, AttributeValue::Udata(2))],
        );
        b.add(
            Some(matrix),
            gimli::DW_TAG_subrange_type,
            &[(gimli::DW_AT_count, AttributeValue::Udata(3))],
        );
        let volatile = b.add(None, gimli::DW_TAG_volatile_type, &[ty(uint)]);
        let anon = b.add(None, gimli::DW_TAG_union_type, &[size(4)]);
        b.add(
            Some(anon),
            gimli::DW_TAG_member,
            &[name("__state"), ty(volatile)],
        );
        b.add(Some(anon), gimli::DW_TAG_member, &[name("state"), ty(int)]);
        let task = b.add(
            None,
            gimli::DW_TAG_structure_type,
            &[name("task_struct"), size(96)],
        );
        let task_ptr = b.add(None, gimli::DW_TAG_pointer_type, &[size(8), ty(task)]);
        let const_ptr = b.add(None, gimli::DW_TAG_const_type, &[ty(task_ptr)]);
        let proto = b.add(
            None,
            gimli::DW_TAG_subroutine_type,
            &[
                ty(int),
                (gimli::DW_AT_prototyped, AttributeValue::Flag(true)),
            ],
        );
        b.add(Some(proto), gimli::DW_TAG_formal_parameter, &[ty(task_ptr)]);
        b.add(Some(proto), gimli::DW_TAG_unspecified_parameters, &[]);
        let fn_ptr = b.add(None, gimli::DW_TAG_pointer_type, &[size(8), ty(proto)]);
        for (member, member_ty, offset) in [
            ("pid", pid_t, 0),
            ("", anon, 4),
            ("comm", comm, 8),
            ("tasks", list_head, 24),
            ("parent", const_ptr, 40),
            ("matrix", matrix, 48),
            ("fn", fn_ptr, 72),
            ("on_cpu", boolean, 80),
        ] {
            let attrs = if member.is_empty() {
                vec![ty(member_ty), loc(offset)]
            } else {
                vec![name(member), ty(member_ty), loc(offset)]
            };
            b.add(Some(task), gimli::DW_TAG_member, &attrs);
        }
        // DWARF 4 bitfield: DW_AT_data_bit_offset from the struct's start.
        b.add(
            Some(task),
            gimli::DW_TAG_member,
            &[
                name("flag_a"),
                ty(uint),
                (gimli::DW_AT_bit_size, AttributeValue::Udata(3)),
                (
                    gimli::DW_AT_data_bit_offset,
                    AttributeValue::Udata(84 * 8 + 1),
                ),
            ],
        );
        // DWARF 2 bitfield: DW_AT_bit_offset counted from the storage unit's top bit.
        b.add(
            Some(task),
            gimli::DW_TAG_member,
            &[
                name("flag_b"),
                ty(uint),
                size(4),
                (gimli::DW_AT_bit_size, AttributeValue::Udata(5)),
                (gimli::DW_AT_bit_offset, AttributeValue::Udata(32 - 4 - 5)),
                loc(88),
            ],
        );
        let pid_type = b.add(
            None,
            gimli::DW_TAG_enumeration_type,
            &[name("pid_type"), size(4), ty(int)],
        );
        for (e, v) in [
            ("PIDTYPE_PID", 0i64),
            ("PIDTYPE_MAX", 4),
            ("PIDTYPE_NEG", -1),
        ] {
            let value = if v < 0 {
                AttributeValue::Sdata(v)
            } else {
                AttributeValue::Data1(v as u8)
            };
            b.add(
                Some(pid_type),
                gimli::DW_TAG_enumerator,
                &[name(e), (gimli::DW_AT_const_value, value)],
            );
        }
        // Loops a broken producer could write.
        let own = b.add(None, gimli::DW_TAG_typedef, &[name("loop")]);
        b.unit
            .get_mut(own)
            .set(gimli::DW_AT_type, AttributeValue::UnitRef(own));
        let nest = b.add(None, gimli::DW_TAG_structure_type, &[name("nest"), size(4)]);
        b.add(Some(nest), gimli::DW_TAG_member, &[ty(nest), loc(0)]);
        b.add(
            Some(nest),
            gimli::DW_TAG_member,
            &[name("l"), ty(own), loc(0)],
        );
        task_struct = task;
    }
    let second = dwarf.units.add(Unit::new(encoding, LineProgram::none()));
    {
        let mut b = Builder {
            unit: dwarf.units.get_mut(second),
        };
        let declared = b.add(
            None,
            gimli::DW_TAG_structure_type,
            &[
                name("task_struct"),
                (gimli::DW_AT_declaration, AttributeValue::Flag(true)),
            ],
        );
        let ptr = b.add(None, gimli::DW_TAG_pointer_type, &[size(8), ty(declared)]);
        b.add(
            None,
            gimli::DW_TAG_variable,
            &[name("current_task"), ty(ptr)],
        );
        b.add(
            None,
            gimli::DW_TAG_variable,
            &[
                name("init_task"),
                (
                    gimli::DW_AT_type,
                    AttributeValue::DebugInfoRef(Reference::Entry(first, task_struct)),
                ),
                (gimli::DW_AT_declaration, AttributeValue::Flag(true)),
            ],
        );
    }
    let mut sections = Sections::new(EndianVec::new(gimli::LittleEndian));
    dwarf.write(&mut sections).unwrap();

    let mut obj = object::write::Object::new(
        object::BinaryFormat::Elf,
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    sections
        .for_each(|id, data| -> Result<(), ()> {
            if !data.slice().is_empty() {
                let s = obj.add_section(
                    Vec::new(),
                    id.name().as_bytes().to_vec(),
                    object::SectionKind::Debug,
                );
                obj.set_section_data(s, data.slice().to_vec(), 1);
            }
            Ok(())
        })
        .unwrap();
    obj.write().unwrap()
}

fn open() -> (DwarfTypes, PathBuf) {
    let path = std::env::temp_dir().join(format!("kdive-types-dwarf-{}.o", std::process::id()));
    std::fs::write(&path, build()).unwrap();
    (DwarfTypes::open(&path).unwrap(), path)
}

#[test]
fn synthetic_dwarf_types() {
    let (d, path) = open();
    assert_eq!(d.struct_size("task_struct").unwrap(), 96);
    let pid = d.member("task_struct", "pid").unwrap();
    assert_eq!(
        (pid.offset, pid.size, pid.ty.name.as_str()),
        (0, 4, "pid_t")
    );
    assert!(pid.ty.signed);
    let state = d.member("task_struct", "__state").unwrap();
    assert_eq!(
        (state.offset, state.ty.name.as_str()),
        (4, "volatile unsigned int")
    );
    assert!(!state.ty.signed);
    let comm = d.member("task_struct", "comm").unwrap();
    assert_eq!(
        (comm.offset, comm.size, comm.ty.array_len),
        (8, 16, Some(16))
    );
    assert_eq!(comm.ty.name, "char [16]");
    assert_eq!(d.member("task_struct", "tasks.prev").unwrap().offset, 32);
    let parent = d.member("task_struct", "parent").unwrap();
    assert_eq!(parent.ty.name, "struct task_struct * const");
    assert_eq!(parent.ty.target.as_ref().unwrap().size, Some(96));
    let matrix = d.member("task_struct", "matrix").unwrap();
    assert_eq!((matrix.ty.name.as_str(), matrix.size), ("int [2][3]", 24));
    assert_eq!(
        d.member("task_struct", "matrix[1][2]").unwrap().offset,
        48 + 12 + 8
    );
    assert_eq!(
        d.member("task_struct", "fn").unwrap().ty.name,
        "int (*)(struct task_struct *, ...)"
    );
    assert_eq!(
        d.member("task_struct", "on_cpu").unwrap().ty.class,
        TypeClass::Bool
    );

    let a = d.member("task_struct", "flag_a").unwrap();
    assert_eq!(
        (a.offset, a.bit_offset, a.bit_size),
        (84, 84 * 8 + 1, Some(3))
    );
    let b = d.member("task_struct", "flag_b").unwrap();
    assert_eq!(
        (b.offset, b.bit_offset, b.bit_size),
        (88, 88 * 8 + 4, Some(5))
    );
    assert_eq!(b.extract(&[0xf0, 0x01, 0, 0]), Some(0x1f));

    assert_eq!(d.enum_value(Some("pid_type"), "PIDTYPE_MAX").unwrap(), 4);
    assert_eq!(d.enum_value(None, "PIDTYPE_NEG").unwrap(), -1);
    assert!(d.enum_value(None, "PIDTYPE_SID").is_err());
    assert!(d.type_named("enum pid_type").unwrap().signed);

    // Declared-only in the second unit, completed from the first.
    let current = d.variable_type("current_task").unwrap();
    assert_eq!(current.target.as_ref().unwrap().size, Some(96));
    assert_eq!(
        d.variable_type("init_task").unwrap().name,
        "struct task_struct"
    );
    assert!(matches!(
        d.variable_type("jiffies"),
        Err(SymbolError::Type(TypeError::UnknownVariable { .. }))
    ));
    match d.member("task_struct", "nope") {
        Err(SymbolError::Type(TypeError::UnknownMember { ty, member })) => {
            assert_eq!((ty.as_str(), member.as_str()), ("task_struct", "nope"));
        }
        other => panic!("{other:?}"),
    }

    assert!(d.type_named("loop").is_err());
    assert!(d.member("nest", "l").is_err());
    assert!(d.member("nest", "missing").is_err());
    std::fs::remove_file(path).unwrap();
}
